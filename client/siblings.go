package client

import (
	"context"
	"errors"
	"fmt"

	"candor"
)

// addSiblings adds this person's other devices to every conversation this
// device is in and they are not: when someone enrols a new device, their
// devices already in conversations bring it in, so nobody has to re-add
// them. Every such device of the person tries; the first commit wins and
// the others find nothing left to do (AddUsers plans against the winner's
// state). A device that has not uploaded KeyPackages yet is left for the
// next round, which its upload announces (api.FrameDevices).
//
// Failures are logged and reported as EventError, not returned: they must
// not stop this device from receiving.
func (c *Client) addSiblings(ctx context.Context) {
	devs, err := c.Devices(ctx, c.me.User)
	if err != nil {
		c.siblingsFailed(ctx, "", err)
		return
	}
	active := map[candor.DeviceID]bool{}
	for _, d := range devs {
		if d.Revoked.IsZero() && !d.This {
			active[d.ID] = true
		}
	}
	if len(active) == 0 {
		return
	}
	convs, err := c.store.Conversations(ctx)
	if err != nil {
		c.siblingsFailed(ctx, "", err)
		return
	}
	for _, conv := range convs {
		if conv.Removed {
			continue
		}
		missing, err := c.missingSiblings(ctx, conv.Group, active)
		if err != nil || !missing {
			if err != nil && !errors.Is(err, ErrRemoved) {
				c.siblingsFailed(ctx, conv.Group, err)
			}
			continue
		}
		c.log.Info("adding this person's other devices", keyGroup, conv.Group.String())
		switch err := c.AddUsers(ctx, conv.Group, c.me.User); {
		case err == nil, errors.Is(err, ErrRemoved):
		case errors.Is(err, ErrNoKeys):
			// Enrolled but not online yet: its upload announces it.
			c.log.Debug("another device of this person has no keys yet", keyGroup, conv.Group.String())
			return
		default:
			c.siblingsFailed(ctx, conv.Group, err)
		}
	}
}

// missingSiblings reports whether a group lacks one of the devices in
// active.
func (c *Client) missingSiblings(ctx context.Context, gid candor.GroupID, active map[candor.DeviceID]bool) (bool, error) {
	unlock, err := c.lockGroup(ctx, gid)
	if err != nil {
		return false, err
	}
	defer unlock()
	g, err := c.group(ctx, gid)
	if err != nil {
		return false, err
	}
	present := presentDevices(g)
	for d := range active {
		if !present[d] {
			return true, nil
		}
	}
	return false, nil
}

func (c *Client) siblingsFailed(ctx context.Context, gid candor.GroupID, err error) {
	if ctx.Err() != nil {
		return
	}
	c.log.Warn("this person's other devices not added", keyGroup, gid.String(), keyErr, err)
	c.emit(Event{Kind: EventError, Group: gid, Err: fmt.Errorf("adding your other devices: %w", err)})
}
