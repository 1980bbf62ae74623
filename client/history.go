package client

import (
	"context"
	"errors"

	"candor"
)

// Messages returns a conversation's history: its messages in log order,
// those still sending last.
func (c *Client) Messages(ctx context.Context, gid candor.GroupID) ([]Message, error) {
	if _, err := c.store.Conversation(ctx, gid); errors.Is(err, candor.ErrNotFound) {
		return nil, ErrUnknownGroup
	} else if err != nil {
		return nil, err
	}
	ms, err := c.store.Messages(ctx, gid)
	if err != nil {
		return nil, err
	}
	out := make([]Message, 0, len(ms))
	for _, m := range ms {
		out = append(out, Message{Group: gid, Seq: m.Seq, User: m.SenderUser, Device: m.SenderDevice, Time: m.Time, Text: m.Text, State: m.State})
	}
	return out, nil
}

// Groups lists the conversations this device knows, oldest first,
// including those it was removed from.
func (c *Client) Groups(ctx context.Context) ([]Group, error) {
	convs, err := c.store.Conversations(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Group, 0, len(convs))
	for _, cv := range convs {
		out = append(out, Group{ID: cv.Group, Name: cv.Name, Removed: cv.Removed,
			JoinedSeq: cv.JoinedSeq, Joined: cv.JoinedAt, Unread: cv.Unread, ReadSeq: cv.ReadSeq})
	}
	return out, nil
}

// MarkRead records that this device's person has seen a conversation up
// to log entry seq (a Message's Seq), for Group.Unread. It never moves
// back.
func (c *Client) MarkRead(ctx context.Context, gid candor.GroupID, seq uint64) error {
	err := c.store.MarkRead(ctx, gid, seq)
	if errors.Is(err, candor.ErrNotFound) {
		return ErrUnknownGroup
	}
	return err
}

// Members lists a conversation's devices as this device's MLS state has
// them, in leaf order: the member list every member sees.
func (c *Client) Members(ctx context.Context, gid candor.GroupID) ([]Member, error) {
	unlock, err := c.lockGroup(ctx, gid)
	if err != nil {
		return nil, err
	}
	defer unlock()
	g, err := c.group(ctx, gid)
	if err != nil {
		return nil, err
	}
	return membersOf(g.Members()), nil
}
