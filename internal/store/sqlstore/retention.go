package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"candor"
	"candor/internal/journal"
	"candor/internal/store"
)

// defaultDeleteChunk is how many entries one transaction of DeleteBefore
// deletes at most. Every write waits for the one writer, so one transaction
// deleting a large prefix holds up every append of every group until it
// commits. Measured with 100,000 entries (BenchmarkDeleteBefore, FULL
// synchronous, 2 shared cores), an append to another group normally takes
// 0.26 ms; during the deletion its longest wait was 815 ms with the whole
// prefix in one transaction (147,000 entries/s), 190 ms with chunks of
// 5,000 (72,000/s) and 25–60 ms with chunks of 500 (40,000/s): a retention
// pass is a background job, the appends are people waiting, so it trades
// throughput for the wait. Smaller chunks gain little more, as the fsync
// of each commit then dominates.
const defaultDeleteChunk = 500

// DeleteBefore deletes the prefix of a group's log before seq and the
// Welcomes queued with it; see [store.Store]. It deletes oldest first, at
// most s.deleteChunk entries per write transaction, each of which moves the
// log's start to its first entry kept and records that entry's
// predecessor's chain hash: every state a reader, or a crash, can see is a
// log cut at its start.
func (s *Store) DeleteBefore(ctx context.Context, id candor.GroupID, seq uint64) (uint64, error) {
	var deleted uint64
	for {
		var n uint64
		var done bool
		err := s.write(ctx, func(ctx context.Context, c conn) error {
			var err error
			n, done, err = deletePrefix(ctx, c, id, seq, s.deleteChunk)
			return err
		})
		if err != nil {
			return deleted, fmt.Errorf("sqlstore: deleting the log of group %s before %d: %w", id, seq, err)
		}
		deleted += n
		if done {
			return deleted, nil
		}
	}
}

// deletePrefix deletes at most chunk entries from the start of a group's log,
// none at or past seq, and moves the start past them. It reports how many
// it deleted and whether the log now starts at seq or later.
func deletePrefix(ctx context.Context, c conn, id candor.GroupID, seq, chunk uint64) (uint64, bool, error) {
	group := []byte(id)
	var head, start int64
	if err := c.queryRow(ctx, `SELECT head, start_seq FROM groups WHERE id = ?`, group).Scan(&head, &start); err != nil {
		return 0, false, noRow(err)
	}
	if seq == 0 || seq > uint64(head) {
		return 0, false, fmt.Errorf("seq %d is not in 1..%d (the head): %w", seq, head, candor.ErrInvalid)
	}
	if seq <= uint64(start) {
		return 0, true, nil
	}
	end := seq
	if seq-uint64(start) > chunk {
		end = uint64(start) + chunk
	}

	// Claim the cut from the start this transaction read. Under
	// PostgreSQL the UPDATE locks the group's row, as Append's does; a
	// concurrent DeleteBefore that moved the start first leaves it
	// matching nothing, and the caller goes round again from the new
	// start. With SQLite's one writer it always matches.
	n, err := affected(c.exec(ctx, `
		UPDATE groups SET start_seq = ? WHERE id = ? AND start_seq = ?`,
		u64(end), group, start))
	if err != nil {
		return 0, false, err
	}
	if n == 0 {
		return 0, false, nil
	}
	// The new start's predecessor is about to go: keep its hash, which
	// the kept entry at end is chained to.
	var prevRaw []byte
	err = c.queryRow(ctx, `SELECT hash FROM entries WHERE group_id = ? AND seq = ?`, group, u64(end-1)).Scan(&prevRaw)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, fmt.Errorf("entry %d, before the start %d, is missing", end-1, start)
	}
	if err != nil {
		return 0, false, err
	}
	prev, err := journal.ParseHash(prevRaw)
	if err != nil {
		// %v: a stored hash missing or malformed is the database's fault,
		// not the caller's ErrInvalid.
		return 0, false, fmt.Errorf("entry %d has no usable chain hash: %v", end-1, err)
	}
	if _, err := c.exec(ctx, `UPDATE groups SET start_prev = ? WHERE id = ?`, prev[:], group); err != nil {
		return 0, false, err
	}
	// Welcomes first: they reference their entries.
	if _, err := c.exec(ctx, `DELETE FROM welcomes WHERE group_id = ? AND seq < ?`, group, u64(end)); err != nil {
		return 0, false, err
	}
	gone, err := affected(c.exec(ctx, `DELETE FROM entries WHERE group_id = ? AND seq < ?`, group, u64(end)))
	if err != nil {
		return 0, false, err
	}
	return uint64(gone), end == seq, nil
}

// LogStart says where a group's log begins.
func (s *Store) LogStart(ctx context.Context, id candor.GroupID) (store.LogStart, error) {
	var (
		start   int64
		prevRaw []byte
	)
	err := s.db(s.rs).queryRow(ctx, `SELECT start_seq, start_prev FROM groups WHERE id = ?`, []byte(id)).Scan(&start, &prevRaw)
	if err != nil {
		return store.LogStart{}, fmt.Errorf("sqlstore: loading the start of group %s: %w", id, noRow(err))
	}
	out := store.LogStart{Seq: uint64(start)}
	if prevRaw != nil {
		if out.Prev, err = journal.ParseHash(prevRaw); err != nil {
			return store.LogStart{}, fmt.Errorf("sqlstore: loading the start of group %s: stored hash: %v", id, err)
		}
	}
	return out, nil
}

// WelcomeSeqs returns where the Welcomes queued for device in a group
// were queued, lowest seq first. An unknown device or group is ErrNotFound.
func (s *Store) WelcomeSeqs(ctx context.Context, device candor.DeviceID, id candor.GroupID) ([]store.WelcomeRef, error) {
	var out []store.WelcomeRef
	err := s.read(ctx, func(c conn) error {
		if err := deviceExists(ctx, c, device); err != nil {
			return err
		}
		if err := groupExists(ctx, c, id); err != nil {
			return fmt.Errorf("group %s: %w", id, err)
		}
		var err error
		out, err = scanList(ctx, c, func(r *sql.Rows) (store.WelcomeRef, error) {
			var seq, ns int64
			err := r.Scan(&seq, &ns)
			return store.WelcomeRef{Seq: uint64(seq), Time: timeOf(ns)}, err
		}, `
			SELECT seq, queued_at FROM welcomes
			WHERE group_id = ? AND device_id = ?
			ORDER BY seq, serial`, []byte(id), string(device))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: loading the Welcomes of device %s in group %s: %w", device, id, err)
	}
	return out, nil
}

// Spans returns every membership of device, past and present, by group
// (in byte order) then joining seq. An unknown device is ErrNotFound.
func (s *Store) Spans(ctx context.Context, device candor.DeviceID) ([]store.Span, error) {
	var out []store.Span
	err := s.read(ctx, func(c conn) error {
		if err := deviceExists(ctx, c, device); err != nil {
			return err
		}
		var err error
		out, err = scanList(ctx, c, func(r *sql.Rows) (store.Span, error) {
			var (
				group  []byte
				joined int64
				left   sql.NullInt64
			)
			err := r.Scan(&group, &joined, &left)
			return store.Span{Group: candor.GroupID(group), Device: device, Joined: uint64(joined), Left: uint64(left.Int64)}, err
		}, `
			SELECT group_id, joined_seq, left_seq FROM spans
			WHERE device_id = ?
			ORDER BY group_id, joined_seq`, string(device))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: loading the memberships of device %s: %w", device, err)
	}
	return out, nil
}
