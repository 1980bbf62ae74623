package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"candor"
	"candor/api"
	"candor/internal/devstore"
	"candor/internal/journal"
	"candor/internal/mlsx"
	"candor/internal/translog"
)

// ErrJournalKeyChanged reports that the server presents another
// journal-heads log key than the one this device pinned (see
// ErrAccessKeyChanged: the same, for the other log).
var ErrJournalKeyChanged = errors.New("the journal-heads log's key is not the one this device pinned")

// ErrJournalMismatch reports that the history of a conversation that the
// server's signed journal heads commit to, which is what the archive
// replays, is not the history the server delivered to this device: a
// message left out of the record, one shown to members but not recorded,
// or a record rewritten afterwards. CheckJournal's errors that wrap it
// are *JournalMismatchError values.
var ErrJournalMismatch = errors.New("THE ARCHIVE'S JOURNAL OF A CONVERSATION DIFFERS FROM WHAT THIS DEVICE RECEIVED")

// A JournalMismatchError names the conversation, and the entries of its
// log, where the journal and this device's record part.
type JournalMismatchError struct {
	Group    candor.GroupID
	From, To uint64 // the entries in question, both included
	Detail   string // what differs
}

func (e *JournalMismatchError) Error() string {
	return fmt.Sprintf("%v: conversation %s, entries %d to %d: %s", ErrJournalMismatch, e.Group, e.From, e.To, e.Detail)
}

func (e *JournalMismatchError) Unwrap() error { return ErrJournalMismatch }

// JournalStatus is what CheckJournal found for one conversation.
type JournalStatus int

const (
	// JournalAgrees: the latest signed head and this device's own chain
	// describe the same history.
	JournalAgrees JournalStatus = iota + 1
	// JournalNotCovered: the server has signed no head of the
	// conversation yet (it signs within seconds of each message; an
	// older conversation without one is worth asking about).
	JournalNotCovered
	// JournalNothingYet: this device has not processed an entry of the
	// conversation since it joined, so it has nothing of its own to
	// compare.
	JournalNothingYet
	// JournalDiffers: see ErrJournalMismatch.
	JournalDiffers
)

// A JournalGroup is the check of one conversation this device is in.
type JournalGroup struct {
	Group  candor.GroupID
	Status JournalStatus
	// Seq is the last entry this device chained itself (0 with
	// JournalNothingYet), and Signed the seq of the latest signed head (0
	// when there is none).
	Seq, Signed uint64
}

// A JournalReport is the outcome of CheckJournal.
type JournalReport struct {
	// Size is the number of records in the journal-heads log as of the
	// checkpoint this device now trusts.
	Size   int64
	Groups []JournalGroup
}

// CheckJournal checks that what this device received in each of its
// conversations is what the archive's journal holds: that the server's
// signed journal-heads log commits to the same chain of entries as the
// one this device computed itself while processing them
// (docs/design/journal.md, "Who checks"). On the way it pins the log's key
// at first use (profile file journal.pub; ErrJournalKeyChanged if the
// server later presents another) and moves the checkpoint it trusts
// (journal.checkpoint) only along consistency proofs: a log that rolled
// back or forked fails with an error wrapping translog.ErrInconsistent,
// and the contradicting checkpoint is kept beside it as evidence
// (journal.presented), exactly as Audit does for the access log.
//
// For each conversation, the latest signed head (seq S, hash H), checked
// for inclusion, is related to this device's last link (seq L, hash):
// equal when S = L; when S < L the entries S+1..L, fetched from the
// server, must chain from H to the device's hash; when S > L the entries
// L+1..S must chain from the device's hash to H. A disagreement is a
// *JournalMismatchError (wrapping ErrJournalMismatch) naming the
// conversation and the entries; every conversation is checked, the
// report lists them all, and the error joins every mismatch. Other
// failures (the network, a malformed answer) stop the check.
//
// Conversations this device has left are not checked: the server no
// longer serves their log to it.
func (c *Client) CheckJournal(ctx context.Context) (*JournalReport, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	lc, err := c.openLog(ctx, journalHeadsLog)
	if err != nil {
		return nil, err
	}
	convs, err := c.store.Conversations(ctx)
	if err != nil {
		return nil, err
	}
	out := &JournalReport{Size: lc.trustedSize()}
	var mismatches []error
	for _, conv := range convs {
		if conv.Removed {
			continue
		}
		g, err := c.checkGroupJournal(ctx, lc, conv)
		var me *JournalMismatchError
		switch {
		case errors.As(err, &me):
			g.Status = JournalDiffers
			mismatches = append(mismatches, err)
			c.log.Error("journal mismatch", keyGroup, conv.Group.String(), keyErr, err.Error())
		case err != nil:
			return nil, err
		}
		out.Groups = append(out.Groups, g)
	}
	out.Size = lc.trustedSize()
	return out, errors.Join(mismatches...)
}

// checkGroupJournal relates one conversation's latest signed head to this
// device's chain.
func (c *Client) checkGroupJournal(ctx context.Context, lc *logCheck, conv devstore.Conversation) (JournalGroup, error) {
	gid := conv.Group
	out := JournalGroup{Group: gid, Seq: conv.ChainSeq}
	if conv.ChainSeq == 0 {
		out.Status = JournalNothingYet
		return out, nil
	}
	if conv.Cursor > conv.ChainSeq {
		// Only an entry that does not follow the last one leaves the
		// chain behind the cursor (see chainLink.next).
		return out, &JournalMismatchError{Group: gid, From: conv.ChainSeq + 1, To: conv.Cursor,
			Detail: fmt.Sprintf("the server's log skipped entries after %d: this device's record has a hole", conv.ChainSeq)}
	}
	var hb api.JournalHead
	p := fmt.Sprintf("%s?group=%s&since=%d", api.PathJournalHeads, gid, lc.trustedSize())
	err := c.tr.call(ctx, "GET", p, nil, &hb)
	if errors.Is(err, errNotFound) {
		out.Status = JournalNotCovered
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("journal check: the signed head of %s: %w", gid, err)
	}
	if _, err := lc.update(hb.Checkpoint, hb.Consistency); err != nil {
		return out, err
	}
	var proof translog.InclusionProof
	if err := proof.UnmarshalText(hb.Proof); err != nil {
		return out, fmt.Errorf("journal check: the proof of the head of %s: %w: %w", gid, ErrProtocol, err)
	}
	if proof.Index != hb.Index {
		return out, fmt.Errorf("journal check: the server sent a proof of record %d for record %d: %w", proof.Index, hb.Index, ErrProtocol)
	}
	if err := lc.v.VerifyInclusion(hb.Record, proof); err != nil {
		return out, fmt.Errorf("journal check: the head of %s: %w", gid, err)
	}
	head, err := journal.ParseHead(hb.Record)
	if err != nil {
		return out, fmt.Errorf("journal check: the head of %s: %w: %w", gid, ErrProtocol, err)
	}
	if head.Group != gid {
		return out, fmt.Errorf("journal check: asked for the head of %s, the server sent one of %s: %w", gid, head.Group, ErrProtocol)
	}
	out.Signed = head.Seq
	L, S := conv.ChainSeq, head.Seq
	switch {
	case S == L:
		if !head.Hash.Equal(conv.ChainHash) {
			return out, &JournalMismatchError{Group: gid, From: L, To: L,
				Detail: fmt.Sprintf("the signed head of entry %d is %s, this device computed %s", L, head.Hash, conv.ChainHash)}
		}
	case S < L:
		// Entries arrived after the server last signed: its chain, from
		// the signed head on, must reach what this device computed.
		got, err := c.chainServed(ctx, gid, S, head.Hash, L)
		if err != nil {
			return out, err
		}
		if !got.Equal(conv.ChainHash) {
			return out, &JournalMismatchError{Group: gid, From: S + 1, To: L,
				Detail: fmt.Sprintf("chained from the signed head of entry %d, the server's entries reach %s at entry %d, this device computed %s", S, got, L, conv.ChainHash)}
		}
	default:
		// Entries this device has not processed yet: from its own link,
		// they must reach the signed head.
		got, err := c.chainServed(ctx, gid, L, conv.ChainHash, S)
		if err != nil {
			return out, err
		}
		if !got.Equal(head.Hash) {
			return out, &JournalMismatchError{Group: gid, From: L + 1, To: S,
				Detail: fmt.Sprintf("chained from this device's entry %d, the server's entries reach %s at entry %d, the signed head is %s", L, got, S, head.Hash)}
		}
	}
	out.Status = JournalAgrees
	return out, nil
}

// chainServed fetches entries after+1..to of a group's log from the server
// and chains them from hash, the hash of entry after. A log that does not
// serve exactly those entries is a mismatch of that range.
func (c *Client) chainServed(ctx context.Context, gid candor.GroupID, after uint64, hash journal.Hash, to uint64) (journal.Hash, error) {
	link := chainLink{seq: after, hash: hash, ok: true}
	for link.seq < to {
		var log api.Log
		p := path(api.PathMessages, "group", gid.String()) + fmt.Sprintf("?after=%d&limit=%d", link.seq, min(to-link.seq, logPage))
		if err := c.tr.call(ctx, "GET", p, nil, &log); err != nil {
			return journal.Hash{}, fmt.Errorf("journal check: reading the log of %s: %w", gid, err)
		}
		if len(log.Entries) == 0 {
			return journal.Hash{}, &JournalMismatchError{Group: gid, From: link.seq + 1, To: to,
				Detail: fmt.Sprintf("the server's log ends at entry %d", link.seq)}
		}
		for _, e := range log.Entries {
			if e.Seq > to {
				break
			}
			if link.next(gid, e) == nil {
				return journal.Hash{}, &JournalMismatchError{Group: gid, From: link.seq + 1, To: to,
					Detail: fmt.Sprintf("the server serves entry %d after entry %d", e.Seq, link.seq)}
			}
		}
	}
	return link.hash, nil
}

// A chainLink is where this device's own journal chain of a group
// stands: the hash of entry seq, which it computed itself from the
// entries it processed (or, once, took from the server: see trust).
type chainLink struct {
	seq  uint64
	hash journal.Hash
	ok   bool // false: no chain yet
}

// linkOf is where a conversation's chain stands in the device database.
func linkOf(conv devstore.Conversation) chainLink {
	if conv.ChainSeq == 0 {
		return chainLink{}
	}
	return chainLink{seq: conv.ChainSeq, hash: conv.ChainHash, ok: true}
}

// trust starts a chain that has none at entry seq, whose hash the server
// gave (api.Log.Prev): trust on first use, once per membership. A chain
// that exists is never replaced, so that a server cannot move it along.
func (l *chainLink) trust(seq uint64, served []byte) error {
	if l.ok || seq == 0 || served == nil {
		return nil
	}
	h, err := journal.ParseHash(served)
	if err != nil {
		return fmt.Errorf("the log's predecessor hash: %w: %w", ErrProtocol, err)
	}
	*l = chainLink{seq: seq, hash: h, ok: true}
	return nil
}

// next chains entry e of group gid when it follows the link (entry 1
// always does, from the genesis hash), and returns its hash; nil, and
// the link unchanged, when it does not: no chain yet, or an entry that
// skips some.
func (l *chainLink) next(gid candor.GroupID, e api.Entry) *journal.Hash {
	prev := l.hash
	switch {
	case e.Seq == 1:
		prev = journal.Genesis
	case !l.ok || e.Seq != l.seq+1:
		return nil
	}
	h := journal.EntryHash(gid, journalEntry(e), prev)
	*l = chainLink{seq: e.Seq, hash: h, ok: true}
	return &h
}

// journalEntry is the journal's entry for a delivered one, derived as the
// server derives it when it appends: Commit from the message itself (a
// PublicMessage commit; the server accepts no other kind), the sender and
// time as served (the server's own entries have no sender). Time goes
// through JSON as RFC 3339 with nanoseconds, and the chain hashes
// milliseconds, so the round trip is exact.
func journalEntry(e api.Entry) journal.Entry {
	je := journal.Entry{Seq: e.Seq, Epoch: candor.Epoch(e.Epoch), Sender: candor.DeviceID(e.Sender), Time: e.Time, Message: e.Message}
	if info, err := mlsx.Inspect(e.Message); err == nil {
		je.Commit = info.Content == mlsx.ContentCommit
	}
	return je
}

// ownProgress is what recording this device's own message msg, accepted
// at seq at time at, leaves in the history when the device records it
// without reading it back (the cursor is just before it): the chain moves
// with the cursor. ok is false when recording it so would leave the chain
// behind the cursor (the time is unknown: the server answered with a
// replay), and the entry must be read back from the log instead.
func (c *Client) ownProgress(conv devstore.Conversation, seq uint64, at time.Time, msg []byte) (devstore.Progress, bool) {
	p := devstore.Progress{Group: conv.Group, Seq: seq}
	if at.IsZero() {
		// A device with no chain yet loses nothing: its chain starts at
		// the next page it reads.
		return p, conv.ChainSeq == 0 && seq != 1
	}
	p.Time = at // the server's time, for the history too
	e := api.Entry{Seq: seq, Sender: string(c.me.Device), Time: at, Message: msg}
	if info, err := mlsx.Inspect(msg); err == nil {
		e.Epoch = uint64(info.Epoch)
	}
	link := linkOf(conv)
	p.Chain = link.next(conv.Group, e)
	return p, p.Chain != nil || conv.ChainSeq == 0
}
