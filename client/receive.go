package client

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	"candor"
	"candor/api"
	"candor/internal/devstore"
	"candor/internal/journal"
	"candor/internal/mlsx"
)

// Sync catches up once, without a live stream: it joins the groups this
// device was added to, processes every group's log from its cursor, notices
// the groups it was removed from, and tops up its KeyPackages.
func (c *Client) Sync(ctx context.Context) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if err := c.syncWelcomes(ctx); err != nil {
		return err
	}
	var list api.GroupList
	if err := c.tr.call(ctx, "GET", api.PathGroups, nil, &list); err != nil {
		return fmt.Errorf("listing groups: %w", err)
	}
	listed := make(map[candor.GroupID]bool, len(list.Groups))
	for _, h := range list.Groups {
		gid := candor.GroupID(h.GroupID)
		listed[gid] = true
		if err := c.catchUp(ctx, gid, h.Head); err != nil && !errors.Is(err, ErrRemoved) {
			return err
		}
	}
	convs, err := c.store.Conversations(ctx)
	if err != nil {
		return err
	}
	for _, conv := range convs {
		if conv.Removed || listed[conv.Group] {
			continue
		}
		if err := c.checkMembership(ctx, conv.Group); err != nil {
			return err
		}
	}
	if err := c.topUp(ctx); err != nil {
		return err
	}
	c.addSiblings(ctx)
	return nil
}

// checkMembership asks the server whether this device is still in a group
// the group list did not name (it was removed while away, or the group was
// created since the list was read), and records a removal.
func (c *Client) checkMembership(ctx context.Context, gid candor.GroupID) error {
	unlock, err := c.lockGroup(ctx, gid)
	if err != nil {
		return err
	}
	defer unlock()
	var head api.GroupHead
	err = c.tr.call(ctx, "GET", path(api.PathGroup, "group", gid.String()), nil, &head)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrRemoved), errors.Is(err, ErrUnknownGroup):
		return c.removedLocked(ctx, gid)
	}
	return err
}

// removedLocked records that this device is no longer in a group, as the
// server says: it forgets the group's MLS state and marks the conversation
// removed. The caller holds the group's lock.
func (c *Client) removedLocked(ctx context.Context, gid candor.GroupID) error {
	conv, err := c.store.Conversation(ctx, gid)
	if err != nil && !errors.Is(err, candor.ErrNotFound) {
		return err
	}
	if err == nil && conv.Removed {
		return nil
	}
	if err := c.store.DeleteGroup(ctx, gid); err != nil {
		return err
	}
	c.forgetGroup(gid)
	if err := c.store.Advance(ctx, devstore.Progress{Group: gid, Seq: conv.Cursor, Removed: true}, c.now()); err != nil {
		return err
	}
	c.log.Info("removed from group", keyGroup, gid.String())
	c.emit(Event{Kind: EventRemoved, Group: gid, Seq: conv.Cursor})
	return nil
}

// cursor returns how far this device has processed a group's log.
func (c *Client) cursor(ctx context.Context, gid candor.GroupID) (uint64, error) {
	conv, err := c.conversation(ctx, gid)
	return conv.Cursor, err
}

// conversation returns what the history holds of a group: an empty record
// (cursor 0, no chain) for a group it does not know yet.
func (c *Client) conversation(ctx context.Context, gid candor.GroupID) (devstore.Conversation, error) {
	conv, err := c.store.Conversation(ctx, gid)
	if errors.Is(err, candor.ErrNotFound) {
		return devstore.Conversation{Group: gid}, nil
	}
	return conv, err
}

// catchUp processes a group's log from the cursor; head, when non-zero, is
// a known head that saves the request when the cursor is there already.
func (c *Client) catchUp(ctx context.Context, gid candor.GroupID, head uint64) error {
	unlock, err := c.lockGroup(ctx, gid)
	if err != nil {
		return err
	}
	defer unlock()
	if head != 0 {
		if cur, err := c.cursor(ctx, gid); err == nil && cur >= head {
			return nil
		}
	}
	return c.catchUpLocked(ctx, gid, 0)
}

// catchUpLocked processes a group's log from the cursor to its head. The
// caller holds the group's lock. A group this device holds no state of is
// left alone (its Welcome comes first). ownCommit: see processEntries.
func (c *Client) catchUpLocked(ctx context.Context, gid candor.GroupID, ownCommit uint64) error {
	if _, err := c.group(ctx, gid); errors.Is(err, ErrRemoved) {
		c.log.Debug("no state for group; waiting for its welcome", keyGroup, gid.String())
		return nil
	} else if err != nil {
		return err
	}
	for {
		cur, err := c.cursor(ctx, gid)
		if err != nil {
			return err
		}
		var log api.Log
		p := path(api.PathMessages, "group", gid.String()) + fmt.Sprintf("?after=%d&limit=%d", cur, logPage)
		if err := c.tr.call(ctx, "GET", p, nil, &log); err != nil {
			if errors.Is(err, ErrRemoved) || errors.Is(err, ErrUnknownGroup) {
				return errors.Join(err, c.removedLocked(ctx, gid))
			}
			return fmt.Errorf("reading the log of %s: %w", gid, err)
		}
		if err := c.processEntries(ctx, gid, log.Entries, log.Prev, ownCommit); err != nil {
			return err
		}
		if !log.More || len(log.Entries) == 0 {
			return nil
		}
	}
}

// processEntries applies entries of a group's log in order, each recorded
// in the history (with the cursor) before the next, and acknowledges the
// last to the server. The caller holds the group's lock. Entries at or
// before the cursor are skipped, so nothing is processed twice.
//
// Each entry is chained to the journal hash of the one before, as the
// server chains it, and its hash recorded with the cursor (CheckJournal
// compares them with the server's signed heads). prev, the hash of the
// entry before the first (api.Log.Prev; nil from the live stream), starts
// the chain of a group that has none when the entries follow the cursor.
//
// ownCommit, when non-zero, is the position of this device's commit that
// the server has just accepted: proposals before it are skipped (the commit
// ended their epoch without them, and processing one would drop the commit
// this device is waiting to adopt).
func (c *Client) processEntries(ctx context.Context, gid candor.GroupID, entries []api.Entry, prev []byte, ownCommit uint64) error {
	conv, err := c.conversation(ctx, gid)
	if err != nil {
		return err
	}
	cur := conv.Cursor
	link := linkOf(conv)
	if len(entries) > 0 && entries[0].Seq == cur+1 {
		if err := link.trust(cur, prev); err != nil {
			return fmt.Errorf("reading the log of %s: %w", gid, err)
		}
	}
	acked := cur
	defer func() {
		if cur > acked {
			c.ack(ctx, gid, cur)
		}
	}()
	for _, e := range entries {
		if e.Seq <= cur {
			continue
		}
		done, err := c.processEntry(ctx, gid, e, link.next(gid, e), ownCommit)
		if err != nil {
			return err
		}
		if !done {
			return nil
		}
		cur = e.Seq
	}
	return nil
}

// processEntry applies one entry and records it, with chain, its journal
// hash (nil when it could not be chained). done is false when the device
// holds no state for the group any more (removed midway).
func (c *Client) processEntry(ctx context.Context, gid candor.GroupID, e api.Entry, chain *journal.Hash, ownCommit uint64) (done bool, err error) {
	g, err := c.group(ctx, gid)
	if errors.Is(err, ErrRemoved) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	p := devstore.Progress{Group: gid, Seq: e.Seq, Time: e.Time, Chain: chain}
	var events []Event
	if ownCommit != 0 && e.Seq < ownCommit && isProposal(e.Message) {
		return true, c.store.Advance(ctx, p, c.now())
	}
	ev, err := g.Process(ctx, e.Message)
	var epochErr *mlsx.EpochError
	switch {
	case err == nil:
		events = c.eventsOf(g, gid, e, ev, &p)
	case errors.Is(err, mlsx.ErrOwnMessage):
		// Sent by this device: already in the history, and marked sent
		// here if its answer was lost.
		own := sha256.Sum256(e.Message)
		p.Own = own[:]
	case errors.Is(err, mlsx.ErrReplay):
		// Already read.
	case errors.As(err, &epochErr) && epochErr.Got < epochErr.Current:
		// Of an epoch this device has left: its own commit, already
		// adopted, or what came before it joined.
	case errors.Is(err, mlsx.ErrGroupNotFound):
		return false, nil
	case isExternalProposal(e.Message) && errors.Is(err, candor.ErrInvalid):
		// The server's proposal in a group created without the server as
		// external sender (see externalSenders): commitLocked removes the
		// revoked devices itself.
		c.log.Info("server proposal not readable in this group", keyGroup, gid.String(), keySeq, e.Seq, keyErr, err)
	case errors.Is(err, candor.ErrInvalid), errors.Is(err, candor.ErrPermission), errors.As(err, &epochErr):
		// This entry cannot be used, and never will be: say so, and go on.
		c.log.Warn("log entry skipped", keyGroup, gid.String(), keySeq, e.Seq, keyErr, err)
		events = append(events, Event{Kind: EventError, Group: gid, Seq: e.Seq, Err: fmt.Errorf("entry %d of %s: %w", e.Seq, gid, err)})
	default:
		return false, fmt.Errorf("processing entry %d of %s: %w", e.Seq, gid, err)
	}
	if err := c.store.Advance(ctx, p, c.now()); err != nil {
		return false, err
	}
	for _, ev := range events {
		c.emit(ev)
	}
	return !p.Removed, nil
}

// eventsOf turns what processing an entry did into events, and fills in
// what the history records.
func (c *Client) eventsOf(g *mlsx.Group, gid candor.GroupID, e api.Entry, ev mlsx.Event, p *devstore.Progress) []Event {
	switch ev.Kind {
	case mlsx.EventApplication:
		sender := Member{Leaf: ev.Sender.Index}
		for _, m := range g.Members() {
			if m.Leaf == ev.Sender.Index {
				sender = memberOf(m)
			}
		}
		body, err := decodeContent(ev.Plaintext)
		if err != nil {
			c.log.Warn("message content does not parse", keyGroup, gid.String(), keySeq, e.Seq)
			return []Event{{Kind: EventError, Group: gid, Seq: e.Seq, Err: err}}
		}
		m := Message{Group: gid, Seq: e.Seq, User: sender.User, Device: sender.Device, Time: e.Time, Text: body.Text, State: Received}
		p.Message = &devstore.Message{SenderUser: m.User, SenderDevice: m.Device, Time: m.Time, Text: m.Text}
		return []Event{{Kind: EventMessage, Group: gid, Seq: e.Seq, Message: m}}
	case mlsx.EventCommit:
		if ev.SelfRemoved {
			p.Removed = true
			c.forgetGroup(gid)
			c.log.Info("removed from group", keyGroup, gid.String(), keySeq, e.Seq)
			return []Event{{Kind: EventRemoved, Group: gid, Seq: e.Seq}}
		}
		if len(ev.Added) == 0 && len(ev.Removed) == 0 {
			return nil
		}
		return []Event{{Kind: EventMembers, Group: gid, Seq: e.Seq, Added: membersOf(ev.Added), Removed: membersOf(ev.Removed)}}
	}
	return nil
}

// isProposal reports whether msg is a proposal.
func isProposal(msg []byte) bool {
	info, err := mlsx.Inspect(msg)
	return err == nil && info.Content == mlsx.ContentProposal
}

// isExternalProposal reports whether msg is a proposal from outside the
// group (the server).
func isExternalProposal(msg []byte) bool {
	info, err := mlsx.Inspect(msg)
	return err == nil && info.Content == mlsx.ContentProposal && info.Sender.External
}

// ack tells the server this device has recorded a group's log up to seq:
// queued for the live stream when it is up (see streamConn), else with PUT
// cursor. A lost ack is harmless: the entries come again and are skipped.
func (c *Client) ack(ctx context.Context, gid candor.GroupID, seq uint64) {
	if s := c.currentStream(); s != nil && s.queueAck(gid, seq) {
		return
	}
	c.putCursor(ctx, gid, seq)
}

// putCursor acknowledges a group's log up to seq with PUT cursor.
func (c *Client) putCursor(ctx context.Context, gid candor.GroupID, seq uint64) {
	if err := c.tr.call(ctx, "PUT", path(api.PathCursor, "group", gid.String()), api.Cursor{Seq: seq}, nil); err != nil {
		c.log.Debug("cursor not acknowledged", keyGroup, gid.String(), keySeq, seq, keyErr, err)
	}
}

// welcomes serialises the processing of Welcomes, which may arrive both on
// the live stream and in Sync's list, and remembers those handled, so that
// a Welcome to a last-resort KeyPackage (which stays usable) is not joined
// twice.
type welcomes struct {
	mu   sync.Mutex
	done map[string]bool
}

func (c *Client) syncWelcomes(ctx context.Context) error {
	var list api.WelcomeList
	if err := c.tr.call(ctx, "GET", api.PathWelcomes, nil, &list); err != nil {
		return fmt.Errorf("listing welcomes: %w", err)
	}
	for _, w := range list.Welcomes {
		if err := c.processWelcome(ctx, w); err != nil {
			return err
		}
	}
	return nil
}

// processWelcome joins a group from a Welcome, records the conversation
// with its cursor at the commit that added this device, acknowledges the
// Welcome and catches up with the group's log.
func (c *Client) processWelcome(ctx context.Context, w api.Welcome) error {
	c.welcomes.mu.Lock()
	defer c.welcomes.mu.Unlock()
	if c.welcomes.done[w.ID] {
		return nil
	}
	g, err := c.dev.Join(ctx, w.Welcome)
	switch {
	case err == nil:
	case errors.Is(err, candor.ErrInvalid), errors.Is(err, candor.ErrPermission), errors.Is(err, candor.ErrNotFound):
		// Not for this device's keys, malformed, or a group candor's rules
		// refuse: it will never do.
		c.log.Warn("welcome refused", keyWelcome, w.ID, keyErr, err)
		c.emit(Event{Kind: EventError, Err: fmt.Errorf("invitation to a conversation refused: %w", err)})
		return c.deleteWelcome(ctx, w.ID)
	default:
		return fmt.Errorf("joining from welcome %s: %w", w.ID, err)
	}
	gid := g.ID()
	unlock, err := c.lockGroup(ctx, gid)
	if err != nil {
		return err
	}
	c.cacheGroup(g)
	err = c.store.Advance(ctx, devstore.Progress{Group: gid, Seq: w.Seq, Time: w.Time, Joined: true}, c.now())
	if err == nil {
		c.ack(ctx, gid, w.Seq)
	}
	unlock()
	if err != nil {
		return err
	}
	c.welcomes.done[w.ID] = true
	c.log.Info("joined group", keyGroup, gid.String(), keySeq, w.Seq)
	c.emit(Event{Kind: EventJoined, Group: gid, Seq: w.Seq, Added: membersOf(g.Members())})
	if err := c.deleteWelcome(ctx, w.ID); err != nil {
		return err
	}
	if err := c.catchUp(ctx, gid, 0); err != nil && !errors.Is(err, ErrRemoved) {
		return err
	}
	if err := c.topUp(ctx); err != nil {
		c.log.Warn("key packages not topped up", keyErr, err)
	}
	return nil
}

func (c *Client) deleteWelcome(ctx context.Context, id string) error {
	err := c.tr.call(ctx, "DELETE", path(api.PathWelcome, "id", id), nil, nil)
	if err != nil && !errors.Is(err, errNotFound) {
		return fmt.Errorf("acknowledging welcome: %w", err)
	}
	return nil
}
