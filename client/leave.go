package client

import (
	"context"
	"errors"
	"fmt"

	"candor"
	"candor/api"
)

// Leave takes this person out of a conversation, with all their devices.
// A member cannot commit its own removal in MLS, so the server proposes
// the removal of each of the person's devices, as the group's external
// sender, and the next member to commit includes it (docs/protocol.md,
// §4.15). This device forgets its keys of the group at once and marks the
// conversation as no longer joined; its history stays readable. The
// person's other devices learn of it from that commit.
//
// A conversation this device is no longer in is ErrRemoved; one it does
// not know, ErrUnknownGroup.
func (c *Client) Leave(ctx context.Context, gid candor.GroupID) error {
	unlock, err := c.lockGroup(ctx, gid)
	if err != nil {
		return err
	}
	defer unlock()
	conv, err := c.store.Conversation(ctx, gid)
	if errors.Is(err, candor.ErrNotFound) {
		return ErrUnknownGroup
	}
	if err != nil {
		return err
	}
	if conv.Removed {
		return ErrRemoved
	}
	err = c.tr.call(ctx, "POST", path(api.PathLeave, "group", gid.String()), nil, nil)
	if errors.Is(err, ErrRemoved) || errors.Is(err, ErrUnknownGroup) {
		// Removed meanwhile: the outcome is the one asked for.
		return c.removedLocked(ctx, gid)
	}
	if err != nil {
		return fmt.Errorf("leaving %s: %w", gid, err)
	}
	c.log.Info("left group", keyGroup, gid.String())
	return c.removedLocked(ctx, gid)
}
