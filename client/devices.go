package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"candor"
	"candor/api"
)

// ErrNoSuchDevice: the person has no device with the id given.
var ErrNoSuchDevice = fmt.Errorf("you have no device with this id: %w", candor.ErrNotFound)

// Device is one device of a person, as the organisation's directory lists
// it.
type Device struct {
	ID       candor.DeviceID
	User     candor.UserID
	Name     string    // the name given at enrolment, such as "laptop"
	Enrolled time.Time // when it was enrolled
	Revoked  time.Time // when it was removed; zero while it is enrolled
	This     bool      // it is the device this client is
}

// Devices lists a person's devices in enrolment order, removed ones
// included. A person with no device is ErrUnknownUser.
func (c *Client) Devices(ctx context.Context, user candor.UserID) ([]Device, error) {
	var list api.DeviceList
	if err := c.tr.call(ctx, "GET", path(api.PathDevices, "user", string(user)), nil, &list); err != nil {
		return nil, fmt.Errorf("looking up the devices of %s: %w", user, err)
	}
	out := make([]Device, 0, len(list.Devices))
	for _, d := range list.Devices {
		dev := Device{ID: candor.DeviceID(d.ID), User: candor.UserID(d.User), Name: d.Name, Enrolled: d.EnrolledAt}
		if d.RevokedAt != nil {
			dev.Revoked = *d.RevokedAt
		}
		dev.This = dev.ID == c.me.Device
		out = append(out, dev)
	}
	return out, nil
}

// RemoveDevice removes one of this person's own devices, such as a lost
// phone: the server refuses it from now on and proposes its removal from
// each of its conversations. Then this device commits those removals in
// the conversations it shares with it, so that the removed device's keys
// open nothing sent afterwards, rather than waiting for the next message.
// Removing this device itself is allowed; it can do nothing afterwards.
//
// An id that is not one of the person's devices is ErrNoSuchDevice. When
// the device was removed but a commit failed, the error says so; the
// removal is then committed by the next message or commit in that
// conversation.
func (c *Client) RemoveDevice(ctx context.Context, id candor.DeviceID) error {
	err := c.tr.call(ctx, "DELETE", path(api.PathDevice, "id", string(id)), nil, nil)
	if errors.Is(err, errNotFound) {
		return fmt.Errorf("%s: %w", id, ErrNoSuchDevice)
	}
	if err != nil {
		return fmt.Errorf("removing device %s: %w", id, err)
	}
	c.log.Info("device removed", keyDevice, string(id))
	if id == c.me.Device {
		return nil
	}
	convs, err := c.store.Conversations(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, conv := range convs {
		if conv.Removed {
			continue
		}
		holds, err := c.holdsDevice(ctx, conv.Group, id)
		if err == nil && holds {
			err = c.UpdateKeys(ctx, conv.Group)
		}
		if err != nil && !errors.Is(err, ErrRemoved) {
			errs = append(errs, fmt.Errorf("conversation %s: %w", conv.Group, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("device %s is removed, but its removal from some conversations waits for their next message: %w", id, errors.Join(errs...))
	}
	return nil
}

// holdsDevice reports whether a group, as this device knows it, has the
// device as a member.
func (c *Client) holdsDevice(ctx context.Context, gid candor.GroupID, id candor.DeviceID) (bool, error) {
	unlock, err := c.lockGroup(ctx, gid)
	if err != nil {
		return false, err
	}
	defer unlock()
	g, err := c.group(ctx, gid)
	if err != nil {
		return false, err
	}
	return presentDevices(g)[id], nil
}
