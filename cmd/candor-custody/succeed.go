package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"candor/internal/ceremony"
	"candor/internal/custody"
)

// Moving an organisation to a new archive key (docs/design/archive.md,
// "Rotation"): the second ceremony names the key it succeeds in
// filePredecessor, beside its statement, which is how the server (which
// cannot check signatures) finds the chain; then K custodians of the
// previous key endorse the new statement as its successor (succeed), and
// devices move to it only with both those and the new custodians'
// endorsements.

// filePredecessor holds the hex SHA-256 of the statement a key succeeds
// (internal/server/archivedir.go reads it).
const filePredecessor = "predecessor"

// keyStatementPath is where archive key id's statement is in data.
func keyStatementPath(data, id string) string {
	return filepath.Join(data, dirArchive, id, fileStmt)
}

// predecessorOf reads which statement the key in keyDir succeeds: its
// hash, or "" for a first key.
func predecessorOf(keyDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(keyDir, filePredecessor))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// checkPredecessor decides what a new ceremony in data succeeds: nothing
// in a folder without archive keys; otherwise previous, which must be
// given, must exist and must not already have a successor (the server
// would refuse a folder where two keys succeed one). It returns the
// previous key's statement, or nil.
func checkPredecessor(data, previous string) (*ceremony.Statement, error) {
	entries, err := os.ReadDir(filepath.Join(data, dirArchive))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var keys []string
	for _, e := range entries {
		if e.IsDir() {
			keys = append(keys, e.Name())
		}
	}
	switch {
	case len(keys) == 0 && previous == "":
		return nil, nil
	case len(keys) == 0:
		return nil, fmt.Errorf("-previous %q: %s holds no archive key yet", previous, filepath.Join(data, dirArchive))
	case previous == "":
		return nil, usagef("%s already holds archive keys (%s): name the one this key succeeds with -previous",
			filepath.Join(data, dirArchive), strings.Join(keys, ", "))
	}
	prev, err := readStatement(keyStatementPath(data, previous))
	if err != nil {
		return nil, fmt.Errorf("-previous %q: %w", previous, err)
	}
	h := prev.Hash().String()
	for _, k := range keys {
		if p, err := predecessorOf(filepath.Join(data, dirArchive, k)); err != nil {
			return nil, err
		} else if p == h {
			return nil, fmt.Errorf("archive key %q already succeeds %q; a key has one successor", k, previous)
		}
	}
	return prev, nil
}

func (a *app) succeed(args []string) error {
	set := a.flags("succeed", "-data DIR -previous OLDID -next NEWID -key KEYFILE")
	data := set.String("data", "", "the organisation's data folder")
	previous := set.String("previous", "", "the archive key you are a custodian of")
	next := set.String("next", "", "the new archive key that succeeds it")
	keyPath := set.String("key", "", "your custodian key file (for the previous key)")
	if err := parse(set, args); err != nil {
		return err
	}
	if err := require("data", *data, "previous", *previous, "next", *next, "key", *keyPath); err != nil {
		return err
	}
	prev, err := readStatement(keyStatementPath(*data, *previous))
	if err != nil {
		return err
	}
	nextPath := keyStatementPath(*data, *next)
	st, err := readStatement(nextPath)
	if err != nil {
		return err
	}
	ca, err := readCACert(filepath.Join(*data, fileCACert))
	if err != nil {
		return err
	}
	if err := st.Check(ca, a.now()); err != nil {
		return fmt.Errorf("not endorsing %s as a successor:\n%w", nextPath, err)
	}
	// The server follows the chain by this file, not by signatures: what
	// the custodian signs must be what the server will serve.
	switch p, err := predecessorOf(filepath.Dir(nextPath)); {
	case err != nil:
		return err
	case p != prev.Hash().String():
		return fmt.Errorf("archive key %q does not name %q (statement %s) as its predecessor in %s; not endorsing it as its successor",
			*next, *previous, prev.Hash(), filepath.Join(filepath.Dir(nextPath), filePredecessor))
	}
	keyFile, err := os.ReadFile(*keyPath)
	if err != nil {
		return err
	}
	pass, err := a.passphrase("Passphrase for "+*keyPath, false)
	if err != nil {
		return err
	}
	defer clear(pass)
	key, err := custody.DecryptKeyFile(keyFile, pass)
	if err != nil {
		return fmt.Errorf("%s: %w", *keyPath, err)
	}
	e, err := ceremony.Succeed(prev, st, key)
	if err != nil {
		return fmt.Errorf("not endorsing %q as the successor of %q: %w", *next, *previous, err)
	}
	c, err := prev.Policy().Custodian(e.Slot())
	if err != nil {
		return err
	}
	out := successionPath(nextPath, c.Name)
	if err := writeNew(out, e.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Custodian %d of archive key %q (%s): endorsed archive key %q of %s, statement hash %s, as its successor.\n",
		e.Slot(), prev.KeyID(), c.Name, st.KeyID(), st.Organisation(), st.Hash())
	fmt.Fprintf(a.stdout, "Succession: %s\n", out)
	fmt.Fprintf(a.stdout, "Devices move to the new key once %d of the %d custodians of %q have done this and all of its own custodians have endorsed it.\n",
		prev.Policy().K(), prev.Policy().N(), prev.KeyID())
	return nil
}

// successionPath is where the succession by the previous key's custodian
// named name of the statement in file goes, named as endorsementPath
// names endorsements.
func successionPath(statement, name string) string {
	return statement + ".succession." + safeName(name)
}

// predecessorLine is filePredecessor's content for a key succeeding prev.
func predecessorLine(prev *ceremony.Statement) []byte {
	h := prev.Hash()
	return []byte(hex.EncodeToString(h[:]) + "\n")
}

// findPredecessor returns the statement the key whose statement is at
// stPath succeeds, found among its sibling keys by the hash its
// filePredecessor names; nil for a first key.
func findPredecessor(stPath string) (*ceremony.Statement, error) {
	keyDir := filepath.Dir(stPath)
	want, err := predecessorOf(keyDir)
	if err != nil || want == "" {
		return nil, err
	}
	siblings, err := os.ReadDir(filepath.Dir(keyDir))
	if err != nil {
		return nil, err
	}
	for _, s := range siblings {
		if !s.IsDir() {
			continue
		}
		st, err := readStatement(filepath.Join(filepath.Dir(keyDir), s.Name(), fileStmt))
		if err != nil {
			continue
		}
		if st.Hash().String() == want {
			return st, nil
		}
	}
	return nil, fmt.Errorf("%s names statement %s as its predecessor, and no archive key beside it holds that statement",
		filepath.Join(keyDir, filePredecessor), want)
}

// verifySuccessions reports, for verify, on the successions of the
// statement st at stPath when it succeeds another key: each one found
// beside it is checked (a bad one is a problem), and complete says
// whether K of the previous custodians have signed.
func (a *app) verifySuccessions(stPath string, st *ceremony.Statement) (problems []error, complete bool, err error) {
	prev, err := findPredecessor(stPath)
	if err != nil || prev == nil {
		return nil, true, err
	}
	files, err := filepath.Glob(stPath + ".succession.*")
	if err != nil {
		return nil, false, err
	}
	signed := map[int]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, false, err
		}
		e, err := ceremony.ParseSuccession(b)
		if err == nil {
			err = ceremony.CheckSuccession(prev, st, e)
		}
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", f, err))
			continue
		}
		signed[e.Slot()] = true
	}
	p := prev.Policy()
	fmt.Fprintf(a.stdout, "Succeeds archive key %q (statement %s): %d of its custodians must endorse this as its successor.\n",
		prev.KeyID(), prev.Hash(), p.K())
	for i, c := range p.Custodians() {
		mark := "  not yet"
		if signed[i+1] {
			mark = "  succeeded"
		}
		fmt.Fprintf(a.stdout, "  %d. %s  %s%s\n", i+1, c.Name, c.PublicKey.Fingerprint(), mark)
	}
	return problems, len(signed) >= p.K(), nil
}
