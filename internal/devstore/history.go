package devstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"candor"
	"candor/internal/journal"
)

// The client's history (migrations 0002 to 0004): the conversations this
// device is in, how far it has read each group's log, and its messages.
// Package client is its one user; the MLS state above is mlsx's.

// Conversation is one group as the device's history knows it.
type Conversation struct {
	Group   candor.GroupID
	Name    string // local only
	Cursor  uint64 // the last log entry processed and recorded
	Removed bool   // this device is no longer a member
	Created time.Time
	// JoinedSeq is the log entry whose Welcome last added this device (0
	// when it created the group), at JoinedAt: entries before it were not
	// encrypted for this device.
	JoinedSeq uint64
	JoinedAt  time.Time
	ReadSeq   uint64 // the last entry its person has seen (MarkRead)
	Unread    int    // messages received after ReadSeq
	// ChainSeq is the last entry whose journal chain hash this device
	// computed itself, ChainHash that hash (Progress.Chain). ChainSeq is 0
	// until the device has a chain: it just joined, or its history is
	// older than the chain. Otherwise it equals Cursor, unless the server's
	// log skipped entries.
	ChainSeq  uint64
	ChainHash journal.Hash
}

// MessageState is where a message is in its delivery.
type MessageState string

// Message states.
const (
	StateSending  MessageState = "sending"  // written here, not yet acknowledged by the server
	StateSent     MessageState = "sent"     // in the group's log at Seq
	StateReceived MessageState = "received" // from another device
)

// Message is one application message in the history.
type Message struct {
	ID           int64 // local order; assigned by the Store
	Group        candor.GroupID
	Seq          uint64 // position in the group's log; 0 while sending
	SenderUser   candor.UserID
	SenderDevice candor.DeviceID
	Time         time.Time
	Text         string
	State        MessageState
}

// Progress is what processing one entry of a group's log leaves in the
// history, written in one transaction by [Store.Advance].
type Progress struct {
	Group   candor.GroupID
	Seq     uint64    // the entry processed: the cursor moves here (never back)
	Time    time.Time // the server's time of the entry; corrects the time of this device's own message at Seq
	Message *Message  // a received message to add, or nil
	Own     []byte    // SHA-256 of the entry's message when this device sent it: a 'sending' message posted as it is now sent at Seq
	Removed bool      // the entry removed this device from the group
	Joined  bool      // the entry is the Welcome that (re-)added this device, at Time (else now)
	// Chain is the journal chain hash of entry Seq as this device computed
	// it, which becomes the conversation's ChainHash; nil when the device
	// could not link the entry to its chain. A Joined entry without a
	// Chain clears the conversation's chain: what came between the
	// device's removal and its return is not its to vouch for.
	Chain *journal.Hash
}

func millis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// AddConversation records a group this device created. A group already
// recorded is reported wrapping candor.ErrConflict.
func (s *Store) AddConversation(ctx context.Context, c Conversation) error {
	res, err := s.w.ExecContext(ctx, `
		INSERT INTO conversations (group_id, name, cursor, removed, created)
		VALUES (?, ?, ?, 0, ?) ON CONFLICT (group_id) DO NOTHING`,
		[]byte(c.Group), s.box.Seal(nameAD(c.Group), []byte(c.Name)), int64(c.Cursor), millis(c.Created))
	if err != nil {
		return fmt.Errorf("devstore: adding conversation %s: %w", c.Group, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("devstore: conversation %s exists: %w", c.Group, errors.Join(candor.ErrConflict, err))
	}
	return nil
}

// SetConversationName renames a conversation. A missing one is reported
// wrapping candor.ErrNotFound.
func (s *Store) SetConversationName(ctx context.Context, group candor.GroupID, name string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE conversations SET name = ? WHERE group_id = ?`,
		s.box.Seal(nameAD(group), []byte(name)), []byte(group))
	if err != nil {
		return fmt.Errorf("devstore: renaming conversation %s: %w", group, err)
	}
	return mustAffect(res, fmt.Sprintf("conversation %s", group))
}

// MarkRead records that the person has seen a conversation up to log entry
// seq; the read position never moves back. A missing conversation is
// reported wrapping candor.ErrNotFound.
func (s *Store) MarkRead(ctx context.Context, group candor.GroupID, seq uint64) error {
	res, err := s.w.ExecContext(ctx, `UPDATE conversations SET read_seq = MAX(read_seq, ?) WHERE group_id = ?`,
		int64(seq), []byte(group))
	if err != nil {
		return fmt.Errorf("devstore: marking %s read: %w", group, err)
	}
	return mustAffect(res, fmt.Sprintf("conversation %s", group))
}

// Conversation returns one conversation. A missing one is reported wrapping
// candor.ErrNotFound.
func (s *Store) Conversation(ctx context.Context, group candor.GroupID) (Conversation, error) {
	row := s.r.QueryRowContext(ctx, `
		SELECT `+conversationColumns+` FROM conversations c WHERE c.group_id = ?`, []byte(group))
	c, err := s.scanConversation(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Conversation{}, fmt.Errorf("devstore: conversation %s: %w", group, candor.ErrNotFound)
	}
	if err != nil {
		return Conversation{}, fmt.Errorf("devstore: loading conversation %s: %w", group, err)
	}
	return c, nil
}

// Conversations lists every conversation, oldest first.
func (s *Store) Conversations(ctx context.Context) ([]Conversation, error) {
	rows, err := s.r.QueryContext(ctx, `
		SELECT `+conversationColumns+` FROM conversations c ORDER BY c.created, c.group_id`)
	if err != nil {
		return nil, fmt.Errorf("devstore: listing conversations: %w", err)
	}
	defer rows.Close()
	out := []Conversation{}
	for rows.Next() {
		c, err := s.scanConversation(rows)
		if err != nil {
			return nil, fmt.Errorf("devstore: listing conversations: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("devstore: listing conversations: %w", err)
	}
	return out, nil
}

// conversationColumns are what scanConversation reads, from conversations
// c: the unread count is of messages received after the read position.
const conversationColumns = `c.group_id, c.name, c.cursor, c.removed, c.created,
	c.joined_seq, c.joined_at, c.read_seq, c.chain_seq, c.chain_hash,
	(SELECT count(*) FROM messages m WHERE m.group_id = c.group_id AND m.state = 'received' AND m.seq > c.read_seq)`

func (s *Store) scanConversation(row interface{ Scan(...any) error }) (Conversation, error) {
	var (
		c       Conversation
		id      []byte
		name    []byte
		cursor  int64
		removed int64
		created int64
		joined  int64
		at      int64
		read    int64
		chain   int64
		hash    []byte
	)
	if err := row.Scan(&id, &name, &cursor, &removed, &created, &joined, &at, &read, &chain, &hash, &c.Unread); err != nil {
		return Conversation{}, err
	}
	if chain > 0 {
		h, err := journal.ParseHash(hash)
		if err != nil {
			return Conversation{}, fmt.Errorf("conversation %s chain hash: %w", candor.GroupID(id), err)
		}
		c.ChainSeq, c.ChainHash = uint64(chain), h
	}
	c.Group, c.Cursor, c.Removed, c.Created = candor.GroupID(id), uint64(cursor), removed != 0, fromMillis(created)
	c.JoinedSeq, c.ReadSeq = uint64(joined), uint64(read)
	if joined > 0 {
		c.JoinedAt = fromMillis(at)
	}
	if name != nil { // NULL: a conversation first seen in the log has no name
		plain, err := s.unseal(fmt.Sprintf("conversation %s name", c.Group), nameAD(c.Group), name)
		if err != nil {
			return Conversation{}, err
		}
		c.Name = string(plain)
	}
	return c, nil
}

// Advance records that the entry p.Seq of a group's log was processed, with
// what it left: the conversation's cursor moves to p.Seq (never back), a
// received message is added, the device is marked removed or, for a
// Welcome, a member again; the time of this device's own message at Seq
// becomes the server's; the conversation's journal chain moves to p.Chain
// (see Progress). A conversation not yet recorded is created. All in one
// transaction, so an entry is recorded whole or not at all, and the chain
// and the cursor never disagree after a crash. A
// message whose (group, seq) is already recorded is not added twice.
func (s *Store) Advance(ctx context.Context, p Progress, now time.Time) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO conversations (group_id, cursor, removed, created) VALUES (?, ?, ?, ?)
			ON CONFLICT (group_id) DO UPDATE SET
				cursor = MAX(cursor, excluded.cursor),
				removed = CASE WHEN ? THEN 1 WHEN ? THEN 0 ELSE removed END`,
			[]byte(p.Group), int64(p.Seq), p.Removed, millis(now), p.Removed, p.Joined); err != nil {
			return err
		}
		if p.Joined {
			at := p.Time
			if at.IsZero() {
				at = now
			}
			if _, err := tx.ExecContext(ctx, `
				UPDATE conversations SET joined_seq = ?, joined_at = ? WHERE group_id = ?`,
				int64(p.Seq), millis(at), []byte(p.Group)); err != nil {
				return err
			}
			if p.Chain == nil {
				if _, err := tx.ExecContext(ctx, `
					UPDATE conversations SET chain_seq = 0, chain_hash = NULL WHERE group_id = ?`,
					[]byte(p.Group)); err != nil {
					return err
				}
			}
		}
		if p.Chain != nil {
			// Like the cursor, the chain never moves back.
			if _, err := tx.ExecContext(ctx, `
				UPDATE conversations SET chain_seq = ?, chain_hash = ? WHERE group_id = ? AND chain_seq < ?`,
				int64(p.Seq), p.Chain[:], []byte(p.Group), int64(p.Seq)); err != nil {
				return err
			}
		}
		if !p.Time.IsZero() && p.Message == nil {
			if _, err := tx.ExecContext(ctx, `
				UPDATE messages SET time = ? WHERE group_id = ? AND seq = ? AND state = ?`,
				millis(p.Time), []byte(p.Group), int64(p.Seq), string(StateSent)); err != nil {
				return err
			}
		}
		if p.Own != nil {
			if _, err := tx.ExecContext(ctx, `
				UPDATE messages SET seq = ?, time = ?, state = ?
				WHERE group_id = ? AND state = ? AND wire_hash = ?`,
				int64(p.Seq), millis(p.Time), string(StateSent), []byte(p.Group), string(StateSending), p.Own); err != nil {
				return err
			}
		}
		if m := p.Message; m != nil {
			id, err := nextMessageID(ctx, tx)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO messages (id, group_id, seq, time, body, state)
				VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (group_id, seq) DO NOTHING`,
				id, []byte(p.Group), int64(p.Seq), millis(m.Time),
				s.sealBody(p.Group, id, *m), string(StateReceived)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("devstore: recording entry %d of %s: %w", p.Seq, p.Group, err)
	}
	return nil
}

// SetOutgoingWire records the SHA-256 of the MLSMessage a 'sending'
// message is about to be posted as (see Progress.Own).
func (s *Store) SetOutgoingWire(ctx context.Context, id int64, hash []byte) error {
	res, err := s.w.ExecContext(ctx, `UPDATE messages SET wire_hash = ? WHERE id = ? AND state = ?`, hash, id, string(StateSending))
	if err != nil {
		return fmt.Errorf("devstore: recording outgoing message %d: %w", id, err)
	}
	return mustAffect(res, fmt.Sprintf("outgoing message %d", id))
}

// AddOutgoing records a message this device is about to send, in state
// sending, and returns its local id. Its conversation must be recorded
// (candor.ErrNotFound otherwise).
func (s *Store) AddOutgoing(ctx context.Context, m Message) (int64, error) {
	var id int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if id, err = nextMessageID(ctx, tx); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `
			INSERT INTO messages (id, group_id, seq, time, body, state)
			SELECT ?, group_id, NULL, ?, ?, ? FROM conversations WHERE group_id = ?`,
			id, millis(m.Time), s.sealBody(m.Group, id, m), string(StateSending), []byte(m.Group))
		if err != nil {
			return err
		}
		return mustAffect(res, fmt.Sprintf("conversation %s", m.Group))
	})
	if err != nil {
		return 0, fmt.Errorf("devstore: recording outgoing message: %w", err)
	}
	return id, nil
}

// MarkSent records that the server accepted outgoing message id at seq, at
// time at. A missing message is reported wrapping candor.ErrNotFound.
func (s *Store) MarkSent(ctx context.Context, id int64, seq uint64, at time.Time) error {
	res, err := s.w.ExecContext(ctx, `
		UPDATE messages SET seq = ?, time = ?, state = ? WHERE id = ?`,
		int64(seq), millis(at), string(StateSent), id)
	if err != nil {
		return fmt.Errorf("devstore: marking message %d sent: %w", id, err)
	}
	return mustAffect(res, fmt.Sprintf("message %d", id))
}

// Messages returns a conversation's messages in log order, those still
// sending last in the order they were written.
func (s *Store) Messages(ctx context.Context, group candor.GroupID) ([]Message, error) {
	rows, err := s.r.QueryContext(ctx, `
		SELECT id, seq, time, body, state FROM messages
		WHERE group_id = ? ORDER BY seq IS NULL, seq, id`, []byte(group))
	if err != nil {
		return nil, fmt.Errorf("devstore: listing messages of %s: %w", group, err)
	}
	defer rows.Close()
	out := []Message{}
	for rows.Next() {
		var (
			m     Message
			seq   sql.NullInt64
			at    int64
			body  []byte
			state string
		)
		if err := rows.Scan(&m.ID, &seq, &at, &body, &state); err != nil {
			return nil, fmt.Errorf("devstore: listing messages of %s: %w", group, err)
		}
		m.Group, m.Seq, m.Time, m.State = group, uint64(seq.Int64), fromMillis(at), MessageState(state)
		if err := s.openBody(&m, body); err != nil {
			return nil, fmt.Errorf("devstore: listing messages of %s: %w", group, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("devstore: listing messages of %s: %w", group, err)
	}
	return out, nil
}

// DeleteOutgoing takes a message that was never sent out of the history. A
// message no longer in state sending is left alone.
func (s *Store) DeleteOutgoing(ctx context.Context, id int64) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM messages WHERE id = ? AND state = ?`, id, string(StateSending)); err != nil {
		return fmt.Errorf("devstore: deleting message %d: %w", id, err)
	}
	return nil
}

// nameAD is where a conversation's sealed name belongs.
func nameAD(g candor.GroupID) []byte { return ad("conversations", "name", []byte(g)) }

// bodyAD is where a message's sealed body belongs: its conversation and
// its local id.
func bodyAD(g candor.GroupID, id int64) []byte {
	return ad("messages", "body", []byte(g), u64(uint64(id)))
}

// nextMessageID is the id the next message gets: SQLite's own choice for
// an INTEGER PRIMARY KEY, made here because the body is sealed under it
// before the row exists. The caller's write transaction holds the lock, so
// no one takes it in between.
func nextMessageID(ctx context.Context, tx *sql.Tx) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) + 1 FROM messages`).Scan(&id)
	return id, err
}

func (s *Store) sealBody(g candor.GroupID, id int64, m Message) []byte {
	return s.box.Seal(bodyAD(g, id), encodeBody(m))
}

// openBody fills m's sender and text from its sealed body.
func (s *Store) openBody(m *Message, sealed []byte) error {
	plain, err := s.unseal(fmt.Sprintf("message %d", m.ID), bodyAD(m.Group, m.ID), sealed)
	if err != nil {
		return err
	}
	if m.SenderUser, m.SenderDevice, m.Text, err = decodeBody(plain); err != nil {
		return fmt.Errorf("message %d: %w", m.ID, err)
	}
	return nil
}
