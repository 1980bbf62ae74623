// Package translog is candor's transparency log: an append-only Merkle
// log (RFC 6962 §2.1 hashing, through golang.org/x/mod/sumdb/tlog) whose
// operator signs checkpoints in the C2SP tlog-checkpoint format as C2SP
// signed notes (through golang.org/x/mod/sumdb/note), and the checks a
// client makes against it. The server keeps two such logs: the heads of
// the groups' journals, and the access log of archive requests, approvals
// and openings. See docs/design/journal.md.
//
// The server side is [Log]: it appends records to a [Storage], signs
// checkpoints, and proves inclusion and consistency. The client side is
// [Open] (check a signed checkpoint), [VerifyInclusion], and [Verifier],
// which keeps the last trusted checkpoint and refuses, with
// [ErrInconsistent], a log that forks or rolls back.
//
// Signatures are Ed25519, note's one algorithm. Go's FIPS 140-3 module
// includes Ed25519 (FIPS 186-5), and signing and verifying checkpoints
// work under GODEBUG=fips140=only; TestFIPS checks it.
package translog

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"candor"
)

// Errors a log's client meets. Each names what was caught; none is
// retried away.
var (
	// ErrInconsistent reports a log that rolled back or forked: two
	// checkpoints it signed cannot both be true. Errors carrying it are
	// *InconsistentError, with both checkpoints.
	ErrInconsistent = errors.New("log is inconsistent with the checkpoint trusted before")
	// ErrBadSignature reports a checkpoint not validly signed by the log's
	// key.
	ErrBadSignature = errors.New("checkpoint is not signed by the log's key")
	// ErrWrongOrigin reports a checkpoint of another log than the one
	// expected.
	ErrWrongOrigin = errors.New("checkpoint is of another log")
	// ErrNotIncluded reports an inclusion proof that fails: the record or
	// the proof was altered, or the record is not in the log.
	ErrNotIncluded = errors.New("record is not included in the log")
	// ErrCorrupt reports that the log's storage no longer holds what was
	// appended: a record whose hash is not the one stored for it, or
	// stored hashes missing. Storage was altered or damaged.
	ErrCorrupt = errors.New("log storage is corrupt")
)

// DefaultMaxRecordSize is the largest record a Log accepts when its Config
// says nothing.
const DefaultMaxRecordSize = 64 << 10

// Storage holds one log's records and the hashes tlog stores for them
// (tlog.StoredHashes, numbered by tlog.StoredHashIndex). It is owned by
// Log, which computes every hash; a Storage only keeps them. An
// implementation must be safe for concurrent use, and its reads must see
// every Append that returned.
type Storage interface {
	// Size returns the number of records stored.
	Size(ctx context.Context) (int64, error)
	// Append stores records as the records numbered start, start+1, …,
	// and hashes as the stored hashes numbered from
	// tlog.StoredHashCount(start) on, all or nothing. It fails with
	// candor.ErrConflict, storing nothing, if the log does not hold
	// exactly start records (another writer appended first).
	Append(ctx context.Context, start int64, records [][]byte, hashes []tlog.Hash) error
	// ReadHashes returns the stored hashes with the given indexes, in
	// their order. An index not stored fails with candor.ErrNotFound.
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
	// Record returns record number index, or candor.ErrNotFound.
	Record(ctx context.Context, index int64) ([]byte, error)
}

// Config configures a Log.
type Config struct {
	// Origin names the log in its checkpoints, for example
	// "candor.example.org/access". Required; it must be the name of
	// Signer's key.
	Origin string
	// Signer signs checkpoints. Required. note.NewSigner makes one from
	// a key note.GenerateKey made.
	Signer note.Signer
	// Storage holds the records and hashes. Required.
	Storage Storage
	// MaxRecordSize bounds a record; zero means DefaultMaxRecordSize.
	MaxRecordSize int
}

// A Log is the operator's side of a transparency log. It is safe for
// concurrent use: appends are serialised in the process (and, across
// processes, refused with candor.ErrConflict by the Storage when another
// writer got there first); reads and proofs run concurrently with them.
type Log struct {
	origin  string
	signer  note.Signer
	storage Storage
	maxRec  int

	// appendMu serialises appends, which read the tree's right edge and
	// then write after it.
	appendMu sync.Mutex
}

// New returns the Log cfg describes, after checking that its storage can
// be read.
func New(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Signer == nil || cfg.Storage == nil {
		return nil, fmt.Errorf("translog: a Log needs a Signer and a Storage: %w", candor.ErrInvalid)
	}
	if !validLine(cfg.Origin) || cfg.Signer.Name() != cfg.Origin {
		return nil, fmt.Errorf("translog: origin %q with signing key %q: the key must be named after the origin: %w", cfg.Origin, cfg.Signer.Name(), candor.ErrInvalid)
	}
	if cfg.MaxRecordSize < 0 {
		return nil, fmt.Errorf("translog: MaxRecordSize %d: %w", cfg.MaxRecordSize, candor.ErrInvalid)
	}
	if cfg.MaxRecordSize == 0 {
		cfg.MaxRecordSize = DefaultMaxRecordSize
	}
	if _, err := cfg.Storage.Size(ctx); err != nil {
		return nil, fmt.Errorf("translog: %s: %w", cfg.Origin, err)
	}
	return &Log{origin: cfg.Origin, signer: cfg.Signer, storage: cfg.Storage, maxRec: cfg.MaxRecordSize}, nil
}

// Origin returns the log's origin.
func (l *Log) Origin() string { return l.origin }

// Size returns the number of records in the log.
func (l *Log) Size(ctx context.Context) (int64, error) {
	n, err := l.storage.Size(ctx)
	if err != nil {
		return 0, fmt.Errorf("translog: %s: %w", l.origin, err)
	}
	return n, nil
}

// Append adds records to the log, in order and all or nothing, and
// returns the index of the first. Records must be non-empty and at most
// Config.MaxRecordSize bytes (candor.ErrInvalid). A record is public to
// everyone who can read the log: it must hold no secret.
func (l *Log) Append(ctx context.Context, records ...[]byte) (int64, error) {
	if len(records) == 0 {
		return 0, fmt.Errorf("translog: appending no records: %w", candor.ErrInvalid)
	}
	for i, r := range records {
		if len(r) == 0 || len(r) > l.maxRec {
			return 0, fmt.Errorf("translog: record %d of %d bytes, want 1 to %d: %w", i, len(r), l.maxRec, candor.ErrInvalid)
		}
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	start, err := l.storage.Size(ctx)
	if err != nil {
		return 0, fmt.Errorf("translog: %s: %w", l.origin, err)
	}
	// Each record's stored hashes need up to log₂ n hashes to its left:
	// the roots of the complete subtrees on the tree's right edge, which
	// are either stored already or made by this batch. Those made are in
	// hashes, and those read are kept in edge, so that a batch reads the
	// storage about as often as a single record does.
	first := tlog.StoredHashCount(start)
	var hashes []tlog.Hash
	edge := make(map[int64]tlog.Hash)
	reader := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		var missing []int64
		for i, x := range indexes {
			switch h, ok := edge[x]; {
			case x >= first:
				out[i] = hashes[x-first]
			case ok:
				out[i] = h
			default:
				missing = append(missing, x)
			}
		}
		if len(missing) == 0 {
			return out, nil
		}
		got, err := l.storage.ReadHashes(ctx, missing)
		if err != nil {
			return nil, err
		}
		for i, x := range missing {
			edge[x] = got[i]
		}
		for i, x := range indexes {
			if x < first {
				out[i] = edge[x]
			}
		}
		return out, nil
	})
	for i, r := range records {
		h, err := tlog.StoredHashes(start+int64(i), r, reader)
		if err != nil {
			return 0, l.storageErr(err)
		}
		hashes = append(hashes, h...)
	}
	if err := l.storage.Append(ctx, start, records, hashes); err != nil {
		return 0, fmt.Errorf("translog: %s: appending at %d: %w", l.origin, start, err)
	}
	return start, nil
}

// storageErr names a hash the storage should hold and does not as
// corruption: once appended, every stored hash stays.
func (l *Log) storageErr(err error) error {
	if errors.Is(err, candor.ErrNotFound) {
		return fmt.Errorf("translog: %s: %w: %w", l.origin, ErrCorrupt, err)
	}
	return fmt.Errorf("translog: %s: %w", l.origin, err)
}

// hashReader reads the log's stored hashes for tlog, under ctx.
func (l *Log) hashReader(ctx context.Context) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		return l.storage.ReadHashes(ctx, indexes)
	})
}

// Record returns the record at index, after checking it against the hash
// stored when it was appended: a record altered in storage fails with
// ErrCorrupt. An index past the end fails with candor.ErrNotFound.
func (l *Log) Record(ctx context.Context, index int64) ([]byte, error) {
	if index < 0 {
		return nil, fmt.Errorf("translog: record %d: %w", index, candor.ErrInvalid)
	}
	r, err := l.storage.Record(ctx, index)
	if errors.Is(err, candor.ErrNotFound) {
		// Missing past the end is the caller's mistake; missing before
		// it, the storage's.
		if n, serr := l.Size(ctx); serr == nil && index < n {
			return nil, fmt.Errorf("translog: %s: record %d of %d is missing: %w", l.origin, index, n, ErrCorrupt)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("translog: %s: record %d: %w", l.origin, index, err)
	}
	h, err := l.storage.ReadHashes(ctx, []int64{tlog.StoredHashIndex(0, index)})
	if err != nil {
		return nil, l.storageErr(err)
	}
	if tlog.RecordHash(r) != h[0] {
		return nil, fmt.Errorf("translog: %s: record %d does not match its stored hash: %w", l.origin, index, ErrCorrupt)
	}
	return r, nil
}

// Checkpoint returns the log's current state, signed. Ed25519 signatures
// are deterministic, so the same state always gives the same bytes.
func (l *Log) Checkpoint(ctx context.Context) ([]byte, error) {
	n, err := l.Size(ctx)
	if err != nil {
		return nil, err
	}
	return l.checkpointAt(ctx, n)
}

// CheckpointSince returns what a client that trusts a checkpoint of from
// records needs to move on: the current signed checkpoint and the proof,
// made at the same size, that the tree of from records is its prefix.
// Checkpoint and ProveConsistency called one after the other could see two
// sizes, if an append came between them.
//
// A from larger than the log is not refused: the checkpoint comes with an
// empty proof, and the client's Verifier reports the rollback, which is
// the client's to see rather than the server's to hide. A negative from
// fails with candor.ErrInvalid.
func (l *Log) CheckpointSince(ctx context.Context, from int64) ([]byte, ConsistencyProof, error) {
	if from < 0 {
		return nil, ConsistencyProof{}, fmt.Errorf("translog: checkpoint since %d: %w", from, candor.ErrInvalid)
	}
	n, err := l.Size(ctx)
	if err != nil {
		return nil, ConsistencyProof{}, err
	}
	signed, err := l.checkpointAt(ctx, n)
	if err != nil {
		return nil, ConsistencyProof{}, err
	}
	if from > n {
		return signed, ConsistencyProof{}, nil
	}
	p, err := l.proveConsistency(ctx, from, n)
	if err != nil {
		return nil, ConsistencyProof{}, err
	}
	return signed, p, nil
}

// checkpointAt signs the tree of the first n records.
func (l *Log) checkpointAt(ctx context.Context, n int64) ([]byte, error) {
	h, err := tlog.TreeHash(n, l.hashReader(ctx))
	if err != nil {
		return nil, l.storageErr(err)
	}
	return Sign(Checkpoint{Origin: l.origin, Size: n, Hash: h}, l.signer)
}

// ProveInclusion returns the proof that record index is in the tree of
// the first size records. size must not exceed the log's size
// (candor.ErrNotFound) and index must be below size (candor.ErrInvalid).
func (l *Log) ProveInclusion(ctx context.Context, index, size int64) (InclusionProof, error) {
	if index < 0 || index >= size {
		return InclusionProof{}, fmt.Errorf("translog: record %d in a tree of %d: %w", index, size, candor.ErrInvalid)
	}
	if err := l.within(ctx, size); err != nil {
		return InclusionProof{}, err
	}
	p, err := tlog.ProveRecord(size, index, l.hashReader(ctx))
	if err != nil {
		return InclusionProof{}, l.storageErr(err)
	}
	return InclusionProof{Index: index, Size: size, Hashes: p}, nil
}

// ProveConsistency returns the proof that the tree of the first older
// records is a prefix of the tree of the first newer. newer must not
// exceed the log's size (candor.ErrNotFound), and 0 ≤ older ≤ newer
// (candor.ErrInvalid). From the empty tree, or between equal sizes, the
// proof holds no hash.
func (l *Log) ProveConsistency(ctx context.Context, older, newer int64) (ConsistencyProof, error) {
	if older < 0 || older > newer {
		return ConsistencyProof{}, fmt.Errorf("translog: consistency from %d to %d: %w", older, newer, candor.ErrInvalid)
	}
	if err := l.within(ctx, newer); err != nil {
		return ConsistencyProof{}, err
	}
	return l.proveConsistency(ctx, older, newer)
}

// proveConsistency is ProveConsistency for sizes already checked.
func (l *Log) proveConsistency(ctx context.Context, older, newer int64) (ConsistencyProof, error) {
	p := ConsistencyProof{Old: older, New: newer}
	if older == 0 || older == newer {
		return p, nil
	}
	hashes, err := tlog.ProveTree(newer, older, l.hashReader(ctx))
	if err != nil {
		return ConsistencyProof{}, l.storageErr(err)
	}
	p.Hashes = hashes
	return p, nil
}

// within checks that the log holds at least size records.
func (l *Log) within(ctx context.Context, size int64) error {
	n, err := l.Size(ctx)
	if err != nil {
		return err
	}
	if size > n {
		return fmt.Errorf("translog: %s has %d records, not %d: %w", l.origin, n, size, candor.ErrNotFound)
	}
	return nil
}
