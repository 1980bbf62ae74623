package archive

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"candor"
	"candor/internal/journal"
	"candor/internal/sqldb"
)

// Review is an opening's review store: a SQLite file of its own holding the
// records a replay wrote, each group's progress, and the passive member's
// sealed MLS state. It holds plaintext: it is the opening's result and is
// kept, like the JSON Lines export, with the reviewers. It is safe for
// concurrent use.
type Review struct {
	db *sqldb.SQLite
}

//go:embed migrations/*.sql
var migrations embed.FS

// OpenReview opens the review store at path, creating it (mode 0600) with
// its schema if it does not exist. A replay that was interrupted resumes
// from the same file.
//
// The file runs with synchronous=NORMAL: a power loss may lose the last
// batches, but never part of one, and the replay redoes them.
func OpenReview(ctx context.Context, path string) (*Review, error) {
	db, err := sqldb.OpenSQLite(ctx, path, sqldb.Normal)
	if err != nil {
		return nil, fmt.Errorf("archive: review store: %w", err)
	}
	if err := sqldb.Migrate(ctx, db.W, migrations, "migrations", nil); err != nil {
		return nil, errors.Join(fmt.Errorf("archive: review store %s: %w", path, err), db.Close())
	}
	return &Review{db: db}, nil
}

// Close closes the file.
func (r *Review) Close() error { return r.db.Close() }

// Status says what the replay could establish about an entry.
type Status string

const (
	// Verified: the entry was processed by the passive member, which
	// checked its signature (and, for a message, decrypted it).
	Verified Status = "verified"
	// Failed: the entry did not verify or decrypt; Reason says how. It is
	// recorded, never dropped.
	Failed Status = "failed"
	// Joined: the commit that added the archive. The archive was not a
	// member in the epoch it ends, so cannot check its signature; it
	// checked the Welcome that the commit's sender signed and the ratchet
	// tree it carried. The sender is as the log names it.
	Joined Status = "joined"
	// Unreadable: the archive was not a member when the entry was sent
	// (before its first Welcome, or after a commit removed it): the entry
	// is listed, with the log's sender, but was never encrypted to the
	// archive.
	Unreadable Status = "unreadable"
)

// Kind is what an entry was.
type Kind string

const (
	KindMessage  Kind = "message"
	KindCommit   Kind = "commit"
	KindProposal Kind = "proposal"
	// KindUnknown: an entry that could not be read far enough to say.
	KindUnknown Kind = "unknown"
)

// ChainStatus says whether the entry's place in the journal's hash chain
// was checked against the hash the server stored.
type ChainStatus string

const (
	ChainVerified   ChainStatus = "verified"
	ChainUnverified ChainStatus = "unverified" // the source keeps no hashes: order only
)

// Record is one entry of a group's journal as the replay read it.
type Record struct {
	Group  candor.GroupID `json:"group"` // hex in JSON
	Seq    uint64         `json:"seq"`
	Epoch  candor.Epoch   `json:"epoch"`
	Kind   Kind           `json:"kind"`
	Sender Sender         `json:"sender"`
	Time   time.Time      `json:"time"` // the server's time of append
	// Text is a message's text, decoded as candor's clients encode it.
	Text string `json:"text,omitempty"`
	// Added and Removed are the members a commit added and removed.
	Added   []Sender    `json:"added,omitempty"`
	Removed []Sender    `json:"removed,omitempty"`
	Status  Status      `json:"status"`
	Chain   ChainStatus `json:"chain"`
	// Reason says why an entry failed, or what else the replay noticed.
	Reason string `json:"reason,omitempty"`
}

// Sender is a member as its certificate names it, or, where Status says
// so, as the log names the uploading device. External is the server
// (a removal it proposed).
type Sender struct {
	User     candor.UserID   `json:"user,omitempty"`
	Device   candor.DeviceID `json:"device,omitempty"`
	External bool            `json:"external,omitempty"`
}

func (w who) sender() Sender { return Sender{User: w.user, Device: w.device} }

// GroupProgress is how far one group's replay got.
type GroupProgress struct {
	Group   candor.GroupID
	Seq     uint64       // the last entry replayed
	Head    journal.Hash // its chain hash
	Done    bool
	Records int // records written
	Failed  int // of which failed
	Error   string
	// Start is the first entry the replay read, and Prev the chain hash
	// of the entry before it, which the chain check started from (as the
	// source keeps it: the opening checks it against the signed heads).
	// Why says why the replay started there.
	Start uint64
	Prev  journal.Hash
	Why   string
	// Kept is the first entry the log kept when the replay started:
	// entries 1..Kept-1 had been deleted under retention. 1 for a log
	// never cut.
	Kept uint64
}

// Progress returns every group's progress, in group order.
func (r *Review) Progress(ctx context.Context) ([]GroupProgress, error) {
	rows, err := r.db.R.QueryContext(ctx, `
		SELECT `+progressColumns+` FROM progress ORDER BY group_id`)
	if err != nil {
		return nil, fmt.Errorf("archive: progress: %w", err)
	}
	defer rows.Close()
	var out []GroupProgress
	for rows.Next() {
		p, err := scanProgress(rows)
		if err != nil {
			return nil, fmt.Errorf("archive: progress: %w", err)
		}
		out = append(out, p.GroupProgress)
	}
	return out, rows.Err()
}

// progress is a group's progress row; stored is false for a group the
// file holds nothing of yet.
type progress struct {
	GroupProgress
	member bool
	stored bool
}

type scanner interface{ Scan(dest ...any) error }

const progressColumns = `group_id, seq, head, done, records, failed, error, member, start, prev, why, kept`

func scanProgress(row scanner) (progress, error) {
	var (
		p                                               progress
		id, head, prev                                  []byte
		seq, done, records, failed, member, start, kept int64
	)
	if err := row.Scan(&id, &seq, &head, &done, &records, &failed, &p.Error, &member, &start, &prev, &p.Why, &kept); err != nil {
		return progress{}, err
	}
	h, err := journal.ParseHash(head)
	if err != nil {
		return progress{}, fmt.Errorf("stored chain head: %w", err)
	}
	// Rows written before the start was kept (schema 1) started at the
	// log's first entry, from genesis; migration 2 gave them an empty prev.
	p.Prev = journal.Genesis
	if len(prev) > 0 {
		if p.Prev, err = journal.ParseHash(prev); err != nil {
			return progress{}, fmt.Errorf("stored chain start: %w", err)
		}
	}
	p.Group, p.Seq, p.Head, p.Done, p.member = candor.GroupID(id), uint64(seq), h, done == 1, member == 1
	p.Records, p.Failed = int(records), int(failed)
	p.Start, p.Kept, p.stored = uint64(start), uint64(kept), true
	return p, nil
}

// progress returns group's progress, or the start of its chain.
func (r *Review) progress(ctx context.Context, group candor.GroupID) (progress, error) {
	p, err := scanProgress(r.db.R.QueryRowContext(ctx, `SELECT `+progressColumns+` FROM progress WHERE group_id = ?`, []byte(group)))
	if errors.Is(err, sql.ErrNoRows) {
		return progress{GroupProgress: GroupProgress{Group: group, Head: journal.Genesis}}, nil
	}
	return p, err
}

// checkMeta records, or on a resume compares, what this file is the replay
// of: a resume with another scope, or other keys, would mix two openings.
func (r *Review) checkMeta(ctx context.Context, scope, keyCheck []byte) error {
	tx, err := r.db.W.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, kv := range []struct {
		name  string
		value []byte
		what  string
	}{
		{"scope", scope, "another scope"},
		{"keys", keyCheck, "other archive keys"},
	} {
		var have []byte
		err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = ?`, kv.name).Scan(&have)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if _, err := tx.ExecContext(ctx, `INSERT INTO meta (name, value) VALUES (?, ?)`, kv.name, kv.value); err != nil {
				return err
			}
		case err != nil:
			return err
		case !bytes.Equal(have, kv.value):
			return fmt.Errorf("archive: the review store holds a replay with %s; use a new file: %w", kv.what, candor.ErrConflict)
		}
	}
	return tx.Commit()
}

const recordColumns = `group_id, seq, epoch, kind, sender_user, sender_device, sent_at, text, added, removed, status, chain, reason`

// writeBatch writes a group's records, its MLS state and its progress in
// one transaction: the file always holds all three of one moment.
func (r *Review) writeBatch(ctx context.Context, st *stateStore, p progress, recs []Record) error {
	tx, err := r.db.W.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if len(recs) > 0 {
		ins, err := tx.PrepareContext(ctx, `INSERT INTO records (`+recordColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, rec := range recs {
			added, err := json.Marshal(nonNil(rec.Added))
			if err != nil {
				return err
			}
			removed, err := json.Marshal(nonNil(rec.Removed))
			if err != nil {
				return err
			}
			user, device := string(rec.Sender.User), string(rec.Sender.Device)
			if rec.Sender.External {
				user, device = "", externalSender
			}
			if _, err := ins.ExecContext(ctx, []byte(rec.Group), int64(rec.Seq), int64(rec.Epoch), string(rec.Kind),
				user, device, rec.Time.UnixNano(), rec.Text, string(added), string(removed),
				string(rec.Status), string(rec.Chain), rec.Reason); err != nil {
				return fmt.Errorf("record %d: %w", rec.Seq, err)
			}
		}
	}
	if err := st.flush(ctx, tx, p.Group); err != nil {
		return err
	}
	// start, prev, why and kept are set by a group's first batch and
	// never change after it.
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO progress (group_id, seq, head, member, done, records, failed, error, start, prev, why, kept)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (group_id) DO UPDATE SET seq = excluded.seq, head = excluded.head, member = excluded.member,
			done = excluded.done, records = excluded.records, failed = excluded.failed, error = excluded.error`,
		[]byte(p.Group), int64(p.Seq), p.Head[:], flag(p.member), flag(p.Done), p.Records, p.Failed, p.Error,
		int64(p.Start), p.Prev[:], p.Why, int64(p.Kept)); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	st.flushed(p.Group)
	return nil
}

// externalSender is how the server, as an external sender, is stored.
const externalSender = "(server)"

func nonNil(s []Sender) []Sender {
	if s == nil {
		return []Sender{}
	}
	return s
}

func flag(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Records returns up to limit records of group with Seq > after, in order.
func (r *Review) Records(ctx context.Context, group candor.GroupID, after uint64, limit int) ([]Record, error) {
	rows, err := r.db.R.QueryContext(ctx, `SELECT `+recordColumns+` FROM records
		WHERE group_id = ? AND seq > ? ORDER BY seq LIMIT ?`, []byte(group), int64(after), limit)
	if err != nil {
		return nil, fmt.Errorf("archive: records of %s: %w", group, err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		rec, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("archive: records of %s: %w", group, err)
		}
		out = append(out, rec)
	}
	return out, rows.Err()
}

func scanRecord(row scanner) (Record, error) {
	var (
		rec                Record
		id                 []byte
		seq, epoch, sent   int64
		kind, user, device string
		added, removed     string
		status, chain      string
	)
	if err := row.Scan(&id, &seq, &epoch, &kind, &user, &device, &sent, &rec.Text, &added, &removed, &status, &chain, &rec.Reason); err != nil {
		return Record{}, err
	}
	rec.Group, rec.Seq, rec.Epoch, rec.Kind = candor.GroupID(id), uint64(seq), candor.Epoch(epoch), Kind(kind)
	rec.Sender = Sender{User: candor.UserID(user), Device: candor.DeviceID(device)}
	if user == "" && device == externalSender {
		rec.Sender = Sender{External: true}
	}
	rec.Time = time.Unix(0, sent).UTC()
	rec.Status, rec.Chain = Status(status), ChainStatus(chain)
	if err := json.Unmarshal([]byte(added), &rec.Added); err != nil {
		return Record{}, err
	}
	if err := json.Unmarshal([]byte(removed), &rec.Removed); err != nil {
		return Record{}, err
	}
	if len(rec.Added) == 0 {
		rec.Added = nil
	}
	if len(rec.Removed) == 0 {
		rec.Removed = nil
	}
	return rec, nil
}

// Export writes every record as JSON Lines, one Record per line, by group
// and seq.
func (r *Review) Export(ctx context.Context, w io.Writer) error {
	rows, err := r.db.R.QueryContext(ctx, `SELECT `+recordColumns+` FROM records ORDER BY group_id, seq`)
	if err != nil {
		return fmt.Errorf("archive: export: %w", err)
	}
	defer rows.Close()
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for rows.Next() {
		rec, err := scanRecord(rows)
		if err != nil {
			return fmt.Errorf("archive: export: %w", err)
		}
		if err := enc.Encode(rec); err != nil {
			return fmt.Errorf("archive: export: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("archive: export: %w", err)
	}
	return bw.Flush()
}
