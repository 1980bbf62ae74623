package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"candor"
	"candor/internal/journal"
	"candor/internal/store"
)

// CreateGroup registers a group at epoch 0, with an empty log, whose one
// member is creator (its cursor at 0, its span from 0). g.Epoch and g.Head
// are ignored. An unknown creator is ErrNotFound, a revoked one
// ErrPermission; an existing id is ErrConflict.
func (s *Store) CreateGroup(ctx context.Context, g store.Group, creator candor.DeviceID) error {
	err := func() error {
		if g.ID == "" {
			return fmt.Errorf("empty id: %w", candor.ErrInvalid)
		}
		created, err := nanos("creation time", g.Created)
		if err != nil {
			return err
		}
		return s.write(ctx, func(ctx context.Context, c conn) error {
			if err := usableDevice(ctx, c, creator); err != nil {
				return err
			}
			n, err := affected(c.exec(ctx, `
				INSERT INTO groups (id, epoch, head, roster, created)
				VALUES (?, 0, 0, ?, ?)
				ON CONFLICT DO NOTHING`,
				[]byte(g.ID), blob(g.Roster), created))
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("id taken: %w", candor.ErrConflict)
			}
			if _, err := c.exec(ctx, `
				INSERT INTO members (group_id, device_id, cursor) VALUES (?, ?, 0)`,
				[]byte(g.ID), string(creator)); err != nil {
				return err
			}
			_, err = c.exec(ctx, `
				INSERT INTO spans (group_id, device_id, joined_seq) VALUES (?, ?, 0)`,
				[]byte(g.ID), string(creator))
			return err
		})
	}()
	if err != nil {
		return fmt.Errorf("sqlstore: creating group %s: %w", g.ID, err)
	}
	return nil
}

// groupColumns are the columns scanGroup reads, in its order, from a table
// called g.
const groupColumns = `g.id, g.epoch, g.head, g.roster, g.created`

func scanGroup(row scanner, more ...any) (store.Group, error) {
	var (
		g                    store.Group
		id                   []byte
		epoch, head, created int64
	)
	if err := row.Scan(append([]any{&id, &epoch, &head, &g.Roster, &created}, more...)...); err != nil {
		return store.Group{}, err
	}
	g.ID, g.Epoch, g.Head = candor.GroupID(id), candor.Epoch(epoch), uint64(head)
	g.Roster, g.Created = blob(g.Roster), timeOf(created)
	return g, nil
}

// Group returns a group's current state.
func (s *Store) GroupIDs(ctx context.Context) ([]candor.GroupID, error) {
	var out []candor.GroupID
	err := s.read(ctx, func(c conn) error {
		var err error
		out, err = scanList(ctx, c, func(r *sql.Rows) (candor.GroupID, error) {
			var id []byte
			err := r.Scan(&id)
			return candor.GroupID(id), err
		}, `SELECT id FROM groups ORDER BY id`)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: listing groups: %w", err)
	}
	return out, nil
}

func (s *Store) Group(ctx context.Context, id candor.GroupID) (store.Group, error) {
	g, err := scanGroup(s.db(s.rs).queryRow(ctx, `
		SELECT `+groupColumns+` FROM groups g WHERE g.id = ?`, []byte(id)))
	if err != nil {
		return store.Group{}, fmt.Errorf("sqlstore: loading group %s: %w", id, noRow(err))
	}
	return g, nil
}

// GroupsOf returns the groups a device is a member of, with its cursor,
// oldest group first. An unknown device is ErrNotFound.
func (s *Store) GroupsOf(ctx context.Context, device candor.DeviceID) ([]store.Membership, error) {
	var out []store.Membership
	err := s.read(ctx, func(c conn) error {
		if err := deviceExists(ctx, c, device); err != nil {
			return err
		}
		var err error
		out, err = scanList(ctx, c, func(r *sql.Rows) (store.Membership, error) {
			var cursor int64
			g, err := scanGroup(r, &cursor)
			return store.Membership{Group: g, Cursor: uint64(cursor)}, err
		}, `
			SELECT `+groupColumns+`, m.cursor
			FROM members m JOIN groups g ON g.id = m.group_id
			WHERE m.device_id = ?
			ORDER BY g.created, g.id`, string(device))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: loading the groups of device %s: %w", device, err)
	}
	return out, nil
}

// Members returns the devices that are members of a group, sorted.
func (s *Store) Members(ctx context.Context, id candor.GroupID) ([]candor.DeviceID, error) {
	var out []candor.DeviceID
	err := s.read(ctx, func(c conn) error {
		if err := groupExists(ctx, c, id); err != nil {
			return err
		}
		var err error
		out, err = members(ctx, c, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: loading the members of group %s: %w", id, err)
	}
	return out, nil
}

func members(ctx context.Context, c conn, id candor.GroupID) ([]candor.DeviceID, error) {
	return scanList(ctx, c, func(r *sql.Rows) (d candor.DeviceID, err error) {
		return d, r.Scan(&d)
	}, `SELECT device_id FROM members WHERE group_id = ? ORDER BY device_id`, []byte(id))
}

func groupExists(ctx context.Context, c conn, id candor.GroupID) error {
	var one int
	if err := c.queryRow(ctx, `SELECT 1 FROM groups WHERE id = ?`, []byte(id)).Scan(&one); err != nil {
		return noRow(err)
	}
	return nil
}

// Append adds one entry at the end of a group's log; see [store.Store] and
// [store.AppendRequest]. Besides what those say:
//   - req.Entry.Seq is ignored; an empty Message is ErrInvalid;
//   - a commit for an epoch that already has one is ErrConflict;
//   - a device that joins through req.Members must be enrolled
//     (ErrNotFound) and unrevoked (ErrPermission);
//   - a Welcome may only go to a member of the group after the append
//     (ErrPermission), needs an ID unique in the store (ErrConflict), and
//     gets the entry's Time when its own is zero; its Group and Seq are set
//     by Append.
//
// A replay is reported before a stale PrevHead: the message is already in
// the log, whatever the head.
func (s *Store) Append(ctx context.Context, req store.AppendRequest) (uint64, error) {
	seq, f, err := appendTx(req)
	if err == nil {
		err = s.write(ctx, f)
	}
	if err != nil {
		return 0, fmt.Errorf("sqlstore: appending to group %s after %d: %w", req.Group, req.PrevHead, err)
	}
	return seq, nil
}

// appendTx checks req and returns the new entry's seq and the write that
// appends it.
func appendTx(req store.AppendRequest) (uint64, func(ctx context.Context, c conn) error, error) {
	e := req.Entry
	if len(e.Message) == 0 {
		return 0, nil, fmt.Errorf("empty message: %w", candor.ErrInvalid)
	}
	sent, err := nanos("entry time", e.Time)
	if err != nil {
		return 0, nil, err
	}
	queued := make([]int64, len(req.Welcomes))
	for i, w := range req.Welcomes {
		if w.ID == "" || len(w.Data) == 0 {
			return 0, nil, fmt.Errorf("welcome without an id or data: %w", candor.ErrInvalid)
		}
		queued[i] = sent
		if !w.Time.IsZero() {
			if queued[i], err = nanos("welcome time", w.Time); err != nil {
				return 0, nil, err
			}
		}
	}
	// No log reaches 2^63 entries, so a PrevHead that large (and a seq
	// that wraps) matches no head and is a conflict like any stale one.
	seq := req.PrevHead + 1
	hash := sha256.Sum256(e.Message)
	group := []byte(req.Group)

	return seq, func(ctx context.Context, c conn) error {
		if err := replayed(ctx, c, group, hash[:]); err != nil {
			return err
		}
		// The chain: this entry's hash covers it and its predecessor's.
		// A stale PrevHead reads some other head's hash here, and the
		// UPDATE below, which checks PrevHead, then writes nothing.
		var prevRaw []byte
		if err := c.queryRow(ctx, `SELECT head_hash FROM groups WHERE id = ?`, group).Scan(&prevRaw); err != nil {
			return noRow(err)
		}
		prev := journal.Genesis
		if prevRaw != nil {
			h, err := journal.ParseHash(prevRaw)
			if err != nil {
				return fmt.Errorf("group %s head hash: %w", req.Group, err)
			}
			prev = h
		}
		chained := journal.EntryHash(req.Group, journal.Entry{
			Seq: seq, Epoch: e.Epoch, Commit: e.Commit, Sender: e.Sender, Time: e.Time, Message: e.Message,
		}, prev)
		// Move the head, if it is still PrevHead. Under PostgreSQL this
		// UPDATE also locks the group's row, so the rest of the
		// transaction runs alone for this group.
		var roster, epoch any // NULL: keep
		if req.Roster != nil {
			roster, epoch = blob(req.Roster), u64(uint64(req.Epoch))
		}
		n, err := affected(c.exec(ctx, `
			UPDATE groups SET
				head = ?,
				head_hash = ?,
				roster = COALESCE(?, roster),
				epoch = COALESCE(?, epoch)
			WHERE id = ? AND head = ?`,
			u64(seq), chained[:], roster, epoch, group, u64(req.PrevHead)))
		if err != nil {
			return err
		}
		if n == 0 {
			var head int64
			if err := c.queryRow(ctx, `SELECT head FROM groups WHERE id = ?`, group).Scan(&head); err != nil {
				return noRow(err)
			}
			return fmt.Errorf("head is %d: %w", head, candor.ErrConflict)
		}

		n, err = affected(c.exec(ctx, `
			INSERT INTO entries (group_id, seq, epoch, is_commit, sender, sent_at, message, message_hash, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING`,
			group, u64(seq), u64(uint64(e.Epoch)), flag(e.Commit), string(e.Sender), sent, e.Message, hash[:], chained[:]))
		if err != nil {
			return err
		}
		if n == 0 {
			// The head was ours, so the seq is free: the message arrived
			// since replayed looked (only where transactions overlap), or
			// the epoch already has its commit.
			if err := replayed(ctx, c, group, hash[:]); err != nil {
				return err
			}
			var winner int64
			if err := c.queryRow(ctx, `
				SELECT seq FROM entries WHERE group_id = ? AND epoch = ? AND is_commit = 1`,
				group, u64(uint64(e.Epoch))).Scan(&winner); err != nil {
				return err
			}
			return fmt.Errorf("epoch %d already ended with the commit at %d: %w", e.Epoch, winner, candor.ErrConflict)
		}

		if req.Members != nil {
			if err := replaceMembers(ctx, c, req.Group, req.Members, seq); err != nil {
				return err
			}
		}

		for i, w := range req.Welcomes {
			var one int
			err := c.queryRow(ctx, `SELECT 1 FROM members WHERE group_id = ? AND device_id = ?`,
				group, string(w.Device)).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("welcome %s for device %s, not a member: %w", w.ID, w.Device, candor.ErrPermission)
			}
			if err != nil {
				return err
			}
			n, err := affected(c.exec(ctx, `
				INSERT INTO welcomes (id, device_id, group_id, seq, queued_at, data)
				VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT DO NOTHING`,
				w.ID, string(w.Device), group, u64(seq), queued[i], w.Data))
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("welcome id %s taken: %w", w.ID, candor.ErrConflict)
			}
		}
		return nil
	}, nil
}

// EntryOf returns the sequence number of the entry whose message is msg.
func (s *Store) EntryOf(ctx context.Context, id candor.GroupID, msg []byte) (uint64, error) {
	hash := sha256.Sum256(msg)
	var seq int64
	err := s.db(s.rs).queryRow(ctx, `SELECT seq FROM entries WHERE group_id = ? AND message_hash = ?`, []byte(id), hash[:]).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("sqlstore: looking for a message in group %s: %w", id, noRow(err))
	}
	return uint64(seq), nil
}

// replayed reports a *store.ReplayError if a message with this hash is in
// the group's log.
func replayed(ctx context.Context, c conn, group, hash []byte) error {
	var prior int64
	err := c.queryRow(ctx, `SELECT seq FROM entries WHERE group_id = ? AND message_hash = ?`, group, hash).Scan(&prior)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return err
	}
	return &store.ReplayError{Seq: uint64(prior)}
}

// replaceMembers makes want the group's member devices, as of the entry at
// seq. Devices that stay keep their cursors; devices that join get a cursor
// at seq's predecessor and a span from seq; devices that leave end theirs
// at seq. It runs inside the append's write, so that the history in spans
// and the entry that made it are one change.
func replaceMembers(ctx context.Context, c conn, id candor.GroupID, want []candor.DeviceID, seq uint64) error {
	have, err := members(ctx, c, id)
	if err != nil {
		return err
	}
	want = slices.Clone(want)
	slices.Sort(want)
	want = slices.Compact(want)
	for _, d := range have {
		if _, stays := slices.BinarySearch(want, d); stays {
			continue
		}
		if _, err := c.exec(ctx, `DELETE FROM members WHERE group_id = ? AND device_id = ?`,
			[]byte(id), string(d)); err != nil {
			return err
		}
		if _, err := c.exec(ctx, `
			UPDATE spans SET left_seq = ?
			WHERE group_id = ? AND device_id = ? AND left_seq IS NULL`,
			u64(seq), []byte(id), string(d)); err != nil {
			return err
		}
	}
	for _, d := range want {
		if _, stays := slices.BinarySearch(have, d); stays {
			continue
		}
		if err := usableDevice(ctx, c, d); err != nil {
			return fmt.Errorf("new member: %w", err)
		}
		if _, err := c.exec(ctx, `INSERT INTO members (group_id, device_id, cursor) VALUES (?, ?, ?)`,
			[]byte(id), string(d), u64(seq-1)); err != nil {
			return err
		}
		if _, err := c.exec(ctx, `
			INSERT INTO spans (group_id, device_id, joined_seq) VALUES (?, ?, ?)`,
			[]byte(id), string(d), u64(seq)); err != nil {
			return err
		}
	}
	return nil
}

// Log returns up to limit entries of a group's log with Seq > after, in
// order. limit must be positive (else ErrInvalid); an unknown group is
// ErrNotFound. On a cut log an after before the start reads from the
// start: the query asks for seq > after, and the entries below the start
// are gone.
func (s *Store) Log(ctx context.Context, id candor.GroupID, after uint64, limit int) ([]store.Entry, error) {
	var out []store.Entry
	err := s.read(ctx, func(c conn) error {
		if limit <= 0 {
			return fmt.Errorf("limit %d: %w", limit, candor.ErrInvalid)
		}
		var head int64
		if err := c.queryRow(ctx, `SELECT head FROM groups WHERE id = ?`, []byte(id)).Scan(&head); err != nil {
			return noRow(err)
		}
		if after >= uint64(head) {
			out = make([]store.Entry, 0)
			return nil
		}
		var err error
		out, err = scanList(ctx, c, func(r *sql.Rows) (store.Entry, error) {
			var (
				e              store.Entry
				seq, epoch, ns int64
				sender         string
				chained        []byte
			)
			if err := r.Scan(&seq, &epoch, &e.Commit, &sender, &ns, &e.Message, &chained); err != nil {
				return e, err
			}
			e.Seq, e.Epoch, e.Sender, e.Time = uint64(seq), candor.Epoch(epoch), candor.DeviceID(sender), timeOf(ns)
			e.Message = blob(e.Message)
			if chained != nil {
				var err error
				if e.Hash, err = journal.ParseHash(chained); err != nil {
					return e, fmt.Errorf("entry %d hash: %w", seq, err)
				}
			}
			return e, nil
		}, `
			SELECT seq, epoch, is_commit, sender, sent_at, message, hash
			FROM entries WHERE group_id = ? AND seq > ?
			ORDER BY seq LIMIT ?`,
			[]byte(id), u64(after), int64(limit))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: reading the log of group %s after %d: %w", id, after, err)
	}
	return out, nil
}

// CommitSeq returns the sequence number of the commit that ended epoch in
// a group's log.
func (s *Store) CommitSeq(ctx context.Context, id candor.GroupID, epoch candor.Epoch) (uint64, error) {
	var seq int64
	err := s.db(s.rs).queryRow(ctx, `
		SELECT seq FROM entries WHERE group_id = ? AND epoch = ? AND is_commit = 1`,
		[]byte(id), u64(uint64(epoch))).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("sqlstore: finding the commit of group %s epoch %d: %w", id, epoch, noRow(err))
	}
	return uint64(seq), nil
}

// SetCursor records that device has processed a group's log up to seq; a
// lower seq than the cursor's is ignored. A seq past the log's head is
// ErrInvalid; a device that is not a member is ErrNotFound.
func (s *Store) SetCursor(ctx context.Context, device candor.DeviceID, id candor.GroupID, seq uint64) error {
	err := s.write(ctx, func(ctx context.Context, c conn) error {
		var head int64
		if err := c.queryRow(ctx, `SELECT head FROM groups WHERE id = ?`, []byte(id)).Scan(&head); err != nil {
			return noRow(err)
		}
		if seq > uint64(head) {
			return fmt.Errorf("past the head %d: %w", head, candor.ErrInvalid)
		}
		// The CASE keeps the larger, in the statement that writes it, so
		// that racing SetCursors cannot move a cursor back.
		n, err := affected(c.exec(ctx, `
			UPDATE members SET cursor = CASE WHEN cursor < ? THEN ? ELSE cursor END
			WHERE group_id = ? AND device_id = ?`,
			u64(seq), u64(seq), []byte(id), string(device)))
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("not a member: %w", candor.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlstore: setting the cursor of device %s in group %s to %d: %w", device, id, seq, err)
	}
	return nil
}

// Welcomes returns the unacknowledged Welcomes for a device, oldest first.
// An unknown device is ErrNotFound.
func (s *Store) Welcomes(ctx context.Context, device candor.DeviceID) ([]store.Welcome, error) {
	var out []store.Welcome
	err := s.read(ctx, func(c conn) error {
		if err := deviceExists(ctx, c, device); err != nil {
			return err
		}
		var err error
		out, err = scanList(ctx, c, func(r *sql.Rows) (store.Welcome, error) {
			var (
				w       store.Welcome
				group   []byte
				seq, ns int64
			)
			err := r.Scan(&w.ID, &group, &seq, &ns, &w.Data)
			w.Device, w.Group, w.Seq, w.Time = device, candor.GroupID(group), uint64(seq), timeOf(ns)
			w.Data = blob(w.Data)
			return w, err
		}, `
			SELECT id, group_id, seq, queued_at, data
			FROM welcomes WHERE device_id = ? ORDER BY serial`, string(device))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: loading the Welcomes of device %s: %w", device, err)
	}
	return out, nil
}

// DeleteWelcome acknowledges a Welcome. ErrNotFound if it is not the
// device's, or gone.
func (s *Store) DeleteWelcome(ctx context.Context, device candor.DeviceID, id string) error {
	err := s.write(ctx, func(ctx context.Context, c conn) error {
		n, err := affected(c.exec(ctx, `DELETE FROM welcomes WHERE id = ? AND device_id = ?`, id, string(device)))
		if err == nil && n == 0 {
			err = candor.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlstore: deleting Welcome %s of device %s: %w", id, device, err)
	}
	return nil
}
