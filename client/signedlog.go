package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"candor/api"
	"candor/internal/translog"
)

// A signedLog is one of the server's transparency logs as a device checks
// it: the access log (Audit) and the journal-heads log (CheckJournal).
// Both are checked the same way: the key pinned at first use, the last
// checkpoint checked kept in the profile, every new one proven to extend
// it, and a contradicting one kept beside it as evidence.
type signedLog struct {
	name    string // for messages: "the access log"
	op      string // what errors begin with: "audit"
	keyPath string // the API path that serves the key
	// The profile files: the pinned key, the last checkpoint checked, and
	// a signed checkpoint that contradicts it.
	keyFile, checkpointFile, presentedFile string
	// keyChanged is the error when the server presents another key.
	keyChanged error
}

var accessLog = signedLog{
	name: "the access log", op: "audit", keyPath: api.PathAccessKey,
	keyFile: "access.pub", checkpointFile: "access.checkpoint", presentedFile: "access.presented",
	keyChanged: ErrAccessKeyChanged,
}

var journalHeadsLog = signedLog{
	name: "the journal-heads log", op: "journal check", keyPath: api.PathJournalKey,
	keyFile: "journal.pub", checkpointFile: "journal.checkpoint", presentedFile: "journal.presented",
	keyChanged: ErrJournalKeyChanged,
}

// A logCheck is one check of a signed log: the verifier, trusting the
// checkpoint the profile kept, which update moves on.
type logCheck struct {
	c    *Client
	l    signedLog
	v    *translog.Verifier
	kept []byte // the signed checkpoint in the profile now
}

// openLog pins the log's key (or checks it against the pinned one) and
// loads the checkpoint this device checked last.
func (c *Client) openLog(ctx context.Context, l signedLog) (*logCheck, error) {
	key, err := c.logKey(ctx, l)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(c.home, l.checkpointFile)
	kept, _, err := readOptional(path)
	if err != nil {
		return nil, err
	}
	v, err := translog.NewVerifier(translog.VerifierConfig{Key: key, Trusted: kept})
	if err != nil {
		return nil, fmt.Errorf("%s: the checkpoint kept in %s: %w", l.op, path, err)
	}
	return &logCheck{c: c, l: l, v: v, kept: kept}, nil
}

// trustedSize is the size of the tree this device trusts now.
func (lc *logCheck) trustedSize() int64 {
	t, _ := lc.v.Trusted()
	return t.Size
}

// update checks the server's signed checkpoint against the trusted one
// with the consistency proof (translog's text form), and keeps it. A log
// that rolled back or forked fails with an error wrapping
// translog.ErrInconsistent, and the presented checkpoint is kept beside
// the trusted one, which does not move: the two are the evidence.
func (lc *logCheck) update(signed, proofText []byte) (translog.Checkpoint, error) {
	l, home := lc.l, lc.c.home
	var proof translog.ConsistencyProof
	if err := proof.UnmarshalText(proofText); err != nil {
		return translog.Checkpoint{}, fmt.Errorf("%s: the server's consistency proof: %w: %w", l.op, ErrProtocol, err)
	}
	current, err := lc.v.Update(signed, proof)
	if ie, ok := errors.AsType[*translog.InconsistentError](err); ok {
		lc.c.log.Error(l.name+" is inconsistent with the checkpoint this device kept", keyErr, err.Error())
		if werr := writeFile(filepath.Join(home, l.presentedFile), ie.PresentedNote); werr != nil {
			return translog.Checkpoint{}, errors.Join(fmt.Errorf("%s: %w", l.op, err), fmt.Errorf("%s: keeping the evidence: %w", l.op, werr))
		}
		return translog.Checkpoint{}, fmt.Errorf("%s: %w (evidence kept in %s and %s)", l.op, err,
			filepath.Join(home, l.checkpointFile), filepath.Join(home, l.presentedFile))
	}
	if err != nil {
		return translog.Checkpoint{}, fmt.Errorf("%s: %w", l.op, err)
	}
	if _, now := lc.v.Trusted(); !bytes.Equal(now, lc.kept) {
		if err := writeFile(filepath.Join(home, l.checkpointFile), now); err != nil {
			return translog.Checkpoint{}, fmt.Errorf("%s: keeping the checkpoint: %w", l.op, err)
		}
		lc.kept = now
	}
	return current, nil
}

// logKey returns a log's key, pinning it at first use.
func (c *Client) logKey(ctx context.Context, l signedLog) (note.Verifier, error) {
	var k api.AccessKey
	if err := c.tr.call(ctx, "GET", l.keyPath, nil, &k); err != nil {
		return nil, fmt.Errorf("%s: %w", l.op, err)
	}
	served, err := note.NewVerifier(k.Key)
	if err != nil {
		return nil, fmt.Errorf("%s: the server's key for %s: %w: %v", l.op, l.name, ErrProtocol, err)
	}
	path := filepath.Join(c.home, l.keyFile)
	pinned, found, err := readOptional(path)
	if err != nil {
		return nil, err
	}
	if !found {
		if err := writeFile(path, []byte(k.Key+"\n")); err != nil {
			return nil, fmt.Errorf("%s: pinning the key of %s: %w", l.op, l.name, err)
		}
		return served, nil
	}
	if want := strings.TrimSpace(string(pinned)); want != k.Key {
		return nil, fmt.Errorf("%s: the server presents %s, this device pinned %s (in %s): %w", l.op, k.Key, want, path, l.keyChanged)
	}
	return served, nil
}

// readOptional reads a profile file that may not exist yet, and reports
// whether it did.
func readOptional(path string) ([]byte, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", path, err)
	}
	return b, true, nil
}
