package client

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"candor"
	"candor/api"
	"candor/internal/devstore"
	"candor/internal/mlsx"
)

// maxTextBytes bounds a message's text, well inside api.MaxMessageBytes
// once encoded, padded and encrypted.
const maxTextBytes = api.MaxMessageBytes / 2

// Send encrypts text for a conversation's current epoch and appends it to
// the group's log. The message is in the history from the start, in state
// Sending, and Sent once the server has it. When the group has moved on
// (another member's commit) it catches up and encrypts again; when
// proposals wait to be committed (the server's removal of a revoked
// device) it commits them first. It gives up after a few tries (ErrBusy).
func (c *Client) Send(ctx context.Context, gid candor.GroupID, text string) (Message, error) {
	if len(text) > maxTextBytes {
		return Message{}, ErrTooLarge
	}
	body, err := encodeText(text)
	if err != nil {
		return Message{}, err
	}
	unlock, err := c.lockGroup(ctx, gid)
	if err != nil {
		return Message{}, err
	}
	defer unlock()
	conv, err := c.store.Conversation(ctx, gid)
	if errors.Is(err, candor.ErrNotFound) {
		return Message{}, ErrUnknownGroup
	}
	if err != nil {
		return Message{}, err
	}
	if conv.Removed {
		return Message{}, ErrRemoved
	}
	g, err := c.archivedGroup(ctx, gid)
	if err != nil {
		return Message{}, err
	}
	msg := Message{Group: gid, User: c.me.User, Device: c.me.Device, Time: c.now(), Text: text, State: Sending}
	id, err := c.store.AddOutgoing(ctx, devstore.Message{Group: gid, SenderUser: msg.User, SenderDevice: msg.Device, Time: msg.Time, Text: text})
	if err != nil {
		return Message{}, err
	}
	seq, at, ct, err := c.sendLocked(ctx, g, gid, body, id)
	if err != nil {
		// A message whose fate is unknown (no answer, or the caller gave
		// up waiting) stays as sending; one the server refused, or that
		// never left, is taken out of the history.
		unknown := errors.Is(err, ErrUnreachable) || errors.Is(err, ErrServer) ||
			errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
		if !unknown {
			err = errors.Join(err, c.store.DeleteOutgoing(context.WithoutCancel(ctx), id))
		}
		return Message{}, fmt.Errorf("sending to %s: %w", gid, err)
	}
	// The server has the message: record that even if the caller has
	// stopped waiting.
	if err := c.store.MarkSent(context.WithoutCancel(ctx), id, seq, msg.Time); err != nil {
		return Message{}, err
	}
	msg.Seq, msg.State = seq, Sent
	// When this device had read everything before its message, its cursor
	// (and journal chain) moves past it; otherwise catching up will
	// recognise it as its own.
	if conv, err := c.conversation(ctx, gid); err == nil && conv.Cursor+1 == seq {
		if p, ok := c.ownProgress(conv, seq, at, ct); ok {
			if err := c.store.Advance(ctx, p, c.now()); err == nil {
				c.ack(ctx, gid, seq)
			}
		}
	}
	return msg, nil
}

// sendLocked encrypts and posts body, the content of the outgoing message
// id, catching up and encrypting again while the group's epoch moves on.
// It returns where the log holds the message, when (zero if unknown:
// post), and the MLSMessage posted.
func (c *Client) sendLocked(ctx context.Context, g *mlsx.Group, gid candor.GroupID, body []byte, id int64) (uint64, time.Time, []byte, error) {
	for range maxAttempts {
		ct, err := g.Encrypt(ctx, body)
		switch {
		case errors.Is(err, mlsx.ErrMustCommit):
			c.log.Debug("committing pending proposals before sending", keyGroup, gid.String())
			if err := c.commitLocked(ctx, gid, func(*mlsx.Group) (mlsx.CommitOptions, error) { return mlsx.CommitOptions{}, nil }); err != nil {
				return 0, time.Time{}, nil, err
			}
			if g, err = c.group(ctx, gid); err != nil {
				return 0, time.Time{}, nil, err
			}
			continue
		case errors.Is(err, mlsx.ErrCommitPending):
			if err := g.Discard(ctx); err != nil {
				return 0, time.Time{}, nil, err
			}
			continue
		case errors.Is(err, mlsx.ErrGroupNotFound):
			return 0, time.Time{}, nil, ErrRemoved
		case err != nil:
			return 0, time.Time{}, nil, err
		}
		// If the answer is lost, the device recognises its message when it
		// reads it back from the log.
		wire := sha256.Sum256(ct)
		if err := c.store.SetOutgoingWire(ctx, id, wire[:]); err != nil {
			return 0, time.Time{}, nil, err
		}
		seq, at, err := c.post(ctx, gid, api.SendRequest{Message: ct})
		switch {
		case err == nil:
			return seq, at, ct, nil
		case errors.Is(err, errStaleEpoch):
			c.log.Debug("message for an old epoch; catching up", keyGroup, gid.String())
			if err := c.catchUpLocked(ctx, gid, 0); err != nil {
				return 0, time.Time{}, nil, err
			}
			if g, err = c.group(ctx, gid); err != nil {
				return 0, time.Time{}, nil, err
			}
		case errors.Is(err, ErrRemoved), errors.Is(err, ErrUnknownGroup):
			return 0, time.Time{}, nil, errors.Join(err, c.removedLocked(ctx, gid))
		default:
			return 0, time.Time{}, nil, err
		}
	}
	return 0, time.Time{}, nil, ErrBusy
}
