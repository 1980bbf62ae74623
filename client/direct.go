package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"candor"
)

// directTag ends the id of every direct conversation (one between two
// people), after groupIDBytes random bytes: at the end, so that ids still
// differ in their first characters, by which people name them. The mark is in the id
// rather than in this device's history so that both people's devices know
// the conversation as direct, the ones that joined it too, and so find the
// same one again. It tells the server nothing it did not know: it sees the
// members of every group. It is a label, not a rule: a conversation counts
// as direct only while its members are exactly two people (see Direct).
var directTag = []byte("candor-direct:")

// IsDirect reports whether a conversation was started as a direct one.
func IsDirect(gid candor.GroupID) bool {
	return len(gid) == len(directTag)+groupIDBytes && bytes.HasSuffix([]byte(gid), directTag)
}

// Direct returns the direct conversation between this person and user:
// an existing one this device is in whose members are exactly those two
// people (all their devices), or else a new one (created reports which).
// A conversation the other person started reaches this device by a Sync,
// so call Sync first when online.
func (c *Client) Direct(ctx context.Context, user candor.UserID) (gid candor.GroupID, created bool, err error) {
	if user == c.me.User || user == "" {
		return "", false, fmt.Errorf("a direct conversation is with another person: %w", candor.ErrInvalid)
	}
	// Refused before anything is created: a conversation with nobody
	// else in it would be left behind.
	if err := c.reachable(ctx, user); err != nil {
		return "", false, err
	}
	if _, err := c.archive(ctx); err != nil {
		return "", false, err
	}
	switch gid, err := c.FindDirect(ctx, user); {
	case err == nil:
		return gid, false, nil
	case !errors.Is(err, ErrUnknownGroup):
		return "", false, err
	}
	senders := c.externalSenders()
	for tries := 0; ; tries++ {
		raw := make([]byte, groupIDBytes)
		if _, err := rand.Read(raw); err != nil {
			return "", false, err
		}
		gid = candor.GroupID(append(raw, directTag...))
		err := c.createGroup(ctx, gid, "", senders)
		if err == nil {
			break
		}
		if !errors.Is(err, errGroupExists) || tries >= 2 {
			return "", false, fmt.Errorf("starting a direct conversation: %w", err)
		}
	}
	c.log.Info("direct conversation created", keyGroup, gid.String())
	if err := c.AddUsers(ctx, gid, user, c.me.User); err != nil {
		return gid, true, fmt.Errorf("the conversation was created, but adding %s failed: %w", user, err)
	}
	return gid, true, nil
}

// FindDirect returns the direct conversation between this person and user
// that this device is in and whose members are exactly those two people;
// ErrUnknownGroup when there is none. It does no network I/O.
func (c *Client) FindDirect(ctx context.Context, user candor.UserID) (candor.GroupID, error) {
	convs, err := c.store.Conversations(ctx)
	if err != nil {
		return "", err
	}
	for _, conv := range convs {
		if conv.Removed || !IsDirect(conv.Group) {
			continue
		}
		ms, err := c.Members(ctx, conv.Group)
		if errors.Is(err, ErrRemoved) {
			continue
		}
		if err != nil {
			return "", err
		}
		if samePeople(ms, c.me.User, user) {
			return conv.Group, nil
		}
	}
	return "", fmt.Errorf("no direct conversation with %s: %w", user, ErrUnknownGroup)
}

// samePeople reports whether the members are devices of exactly the two
// people a and b, both present, beside the archive, which is in every
// conversation.
func samePeople(ms []Member, a, b candor.UserID) bool {
	seenA, seenB := false, false
	for _, m := range ms {
		switch {
		case m.Archive:
		case m.User == a:
			seenA = true
		case m.User == b:
			seenB = true
		default:
			return false
		}
	}
	return seenA && seenB
}

// reachable checks that user has an enrolled device to add.
func (c *Client) reachable(ctx context.Context, user candor.UserID) error {
	devs, err := c.Devices(ctx, user)
	if err != nil {
		return err
	}
	for _, d := range devs {
		if d.Revoked.IsZero() {
			return nil
		}
	}
	return fmt.Errorf("%s has no enrolled device: %w", user, ErrNoKeys)
}
