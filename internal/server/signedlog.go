package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"candor"
	"candor/internal/translog"
	"candor/internal/translog/sqllog"
)

// logFiles names the files of one of the server's transparency logs in a
// data folder: its note signing key, the verifier key devices pin, and
// its database; and the suffix that follows the server's first host name
// in the log's origin, which names the log and its key.
type logFiles struct {
	name         string // for messages: "the access log"
	key, pub, db string
	originSuffix string
}

var (
	accessLogFiles  = logFiles{name: "the access log", key: FileAccessKey, pub: FileAccessPub, db: FileAccessDB, originSuffix: accessOriginSuffix}
	journalLogFiles = logFiles{name: "the journal-heads log", key: FileJournalKey, pub: FileJournalPub, db: FileJournalDB, originSuffix: journalOriginSuffix}
)

// createLogKey writes a new signing key for the log f names, named after
// host, and its verifier key, unless dir holds a signing key already.
// It reports whether it wrote one.
func createLogKey(dir, host string, f logFiles) (bool, error) {
	path := filepath.Join(dir, f.key)
	if _, err := os.Lstat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("server: %w", err)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, host+f.originSuffix)
	if err != nil {
		return false, fmt.Errorf("server: making the key of %s: %w", f.name, err)
	}
	if err := writeNewFile(path, []byte(skey+"\n"), 0o600); err != nil {
		return false, err
	}
	if err := os.WriteFile(filepath.Join(dir, f.pub), []byte(vkey+"\n"), 0o644); err != nil {
		return false, errors.Join(fmt.Errorf("server: %w", err), os.Remove(path))
	}
	return true, nil
}

// A signedLog is one of the server's transparency logs, opened.
type signedLog struct {
	db       *sqllog.DB
	log      *translog.Log
	verifier string // the note verifier key, as devices pin it
}

// openSignedLog opens the log f names in the data folder dir, creating
// its database if need be. Its signing key must exist and be readable by
// its owner only, and its verifier key must match it.
func openSignedLog(ctx context.Context, dir string, f logFiles) (*signedLog, error) {
	path := filepath.Join(dir, f.key)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("server: %s is readable by others than its owner (mode %v); chmod 600 it: %w", path, fi.Mode().Perm(), candor.ErrPermission)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("server: %s is not a signing key: %w", path, candor.ErrInvalid)
	}
	pub, err := os.ReadFile(filepath.Join(dir, f.pub))
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	vkey := strings.TrimSpace(string(pub))
	if v, err := note.NewVerifier(vkey); err != nil || v.Name() != signer.Name() || v.KeyHash() != signer.KeyHash() {
		return nil, fmt.Errorf("server: %s does not match %s: %w", f.pub, f.key, candor.ErrInvalid)
	}
	db, err := sqllog.Open(ctx, filepath.Join(dir, f.db))
	if err != nil {
		return nil, fmt.Errorf("server: %s: %w", f.name, err)
	}
	st, err := db.Storage(ctx, signer.Name())
	if err != nil {
		return nil, errors.Join(fmt.Errorf("server: %s: %w", f.name, err), db.Close())
	}
	l, err := translog.New(ctx, translog.Config{Origin: signer.Name(), Signer: signer, Storage: st})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("server: %s: %w", f.name, err), db.Close())
	}
	return &signedLog{db: db, log: l, verifier: vkey}, nil
}

// writeNewFile writes a file that must not exist yet, synced.
func writeNewFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if err := errors.Join(werr, f.Close()); err != nil {
		return errors.Join(fmt.Errorf("server: writing %s: %w", path, err), os.Remove(path))
	}
	return nil
}
