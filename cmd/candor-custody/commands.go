package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"candor/internal/ceremony"
	"candor/internal/custody"
)

func (a *app) keygen(args []string) error {
	set := a.flags("keygen", "-name NAME -out FILE")
	name := set.String("name", "", "your name as the ceremony will list it, e.g. \"Ana Lima, Compliance\"")
	out := set.String("out", "", "the key file to write; FILE.pub gets the public key")
	if err := parse(set, args); err != nil {
		return err
	}
	if err := require("name", *name, "out", *out); err != nil {
		return err
	}
	if err := checkName(*name); err != nil {
		return err
	}
	pubPath := *out + ".pub"
	for _, p := range []string{*out, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s already exists; not overwriting it", p)
		}
	}
	pass, err := a.passphrase("Passphrase for the new key file", true)
	if err != nil {
		return err
	}
	defer clear(pass)
	if len(pass) < custody.MinPassphraseLen {
		return fmt.Errorf("the passphrase is %d bytes; use at least %d", len(pass), custody.MinPassphraseLen)
	}
	key, err := custody.GenerateCustodianKey()
	if err != nil {
		return err
	}
	file, err := custody.EncryptKeyFile(key, pass)
	if err != nil {
		return err
	}
	if err := writeNew(*out, file, 0o600); err != nil {
		return err
	}
	pub := key.PublicKey()
	if err := writeNew(pubPath, encodePublicKey(pub, *name), 0o644); err != nil {
		os.Remove(*out)
		return err
	}
	fmt.Fprintf(a.stdout, "Custodian key for %q written to %s: keep it, and its passphrase, to yourself.\n", *name, *out)
	fmt.Fprintf(a.stdout, "Public key: %s\nFingerprint: %s (read it aloud at the ceremony)\n", pubPath, pub.Fingerprint())
	return nil
}

// custodianFlags collects repeated -custodian NAME=FILE flags.
type custodianFlags []string

func (c *custodianFlags) String() string     { return strings.Join(*c, " ") }
func (c *custodianFlags) Set(v string) error { *c = append(*c, v); return nil }

func (a *app) ceremony(args []string) error {
	set := a.flags("ceremony", "-data DIR -key-id ID -k K -custodian NAME=FILE.pub ... [-previous OLDID] [-lifetime D]")
	data := set.String("data", "", "the organisation's data folder, holding ca.pem and ca.key")
	keyID := set.String("key-id", "", "the new archive key's id, e.g. 2026")
	previous := set.String("previous", "", "the archive key this one succeeds, when DIR already holds one")
	k := set.Int("k", 0, "how many custodians must approve an opening")
	lifetime := set.Duration("lifetime", ceremony.DefaultLifetime, "how long the archive key is valid")
	var custodians custodianFlags
	set.Var(&custodians, "custodian", "NAME=FILE.pub, once per custodian, in slot order")
	if err := parse(set, args); err != nil {
		return err
	}
	if err := require("data", *data, "key-id", *keyID); err != nil {
		return err
	}
	if err := checkKeyID(*keyID); err != nil {
		return err
	}
	if *k == 0 || len(custodians) == 0 {
		return usagef("-k and at least %d -custodian flags are required", custody.MinThreshold)
	}
	var cs []custody.Custodian
	for _, c := range custodians {
		name, file, ok := strings.Cut(c, "=")
		if !ok || file == "" {
			return usagef("-custodian %q: want NAME=FILE.pub", c)
		}
		if err := checkName(name); err != nil {
			return err
		}
		pub, keyName, err := readPublicKey(file)
		if err != nil {
			return err
		}
		if keyName != name {
			return fmt.Errorf("%s was made for custodian %q, not %q", file, keyName, name)
		}
		cs = append(cs, custody.Custodian{Name: name, PublicKey: pub})
	}

	archiveDir := filepath.Join(*data, dirArchive, *keyID)
	if _, err := os.Lstat(archiveDir); err == nil {
		return fmt.Errorf("archive key %q already exists (%s); choose a new key id", *keyID, archiveDir)
	}
	ca, err := loadCA(*data)
	if err != nil {
		return err
	}
	prev, err := checkPredecessor(*data, *previous)
	if err != nil {
		return err
	}
	st, err := ceremony.Run(ceremony.Config{CA: ca, KeyID: *keyID, K: *k, Custodians: cs, Now: a.now, Lifetime: *lifetime})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(archiveDir), 0o755); err != nil {
		return err
	}
	// Mkdir, not MkdirAll: two ceremonies for one id cannot both win.
	if err := os.Mkdir(archiveDir, 0o755); errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("archive key %q already exists (%s); choose a new key id", *keyID, archiveDir)
	} else if err != nil {
		return err
	}
	path := filepath.Join(archiveDir, fileStmt)
	if err := writeNew(filepath.Join(archiveDir, fileKeyPackage), st.KeyPackage(), 0o644); err != nil {
		os.Remove(archiveDir)
		return err
	}
	if prev != nil {
		// Written before the statement: a folder whose statement exists
		// always says what it succeeds.
		if err := writeNew(filepath.Join(archiveDir, filePredecessor), predecessorLine(prev), 0o644); err != nil {
			os.Remove(filepath.Join(archiveDir, fileKeyPackage))
			os.Remove(archiveDir)
			return err
		}
	}
	if err := writeNew(path, st.Bytes(), 0o644); err != nil {
		os.Remove(filepath.Join(archiveDir, filePredecessor))
		os.Remove(filepath.Join(archiveDir, fileKeyPackage))
		os.Remove(archiveDir)
		return err
	}

	p := st.Policy()
	fmt.Fprintf(a.stdout, "Archive key %q of %s created: %d of %d custodians open it.\n", st.KeyID(), st.Organisation(), p.K(), p.N())
	a.printCustodians(st, nil)
	fmt.Fprintf(a.stdout, "Valid until %s.\nStatement: %s\nStatement hash: %s\n", st.NotAfter().Format(time.DateOnly), path, st.Hash())
	fmt.Fprintf(a.stdout, "The seed is destroyed. Each custodian now checks their share and endorses the statement:\n")
	fmt.Fprintf(a.stdout, "  candor-custody endorse -statement %s -key KEYFILE -ca %s\n", path, filepath.Join(*data, fileCACert))
	if prev != nil {
		fmt.Fprintf(a.stdout, "It succeeds archive key %q: %d of that key's %d custodians endorse it as its successor:\n",
			prev.KeyID(), prev.Policy().K(), prev.Policy().N())
		fmt.Fprintf(a.stdout, "  candor-custody succeed -data %s -previous %s -next %s -key KEYFILE\n", *data, prev.KeyID(), st.KeyID())
		fmt.Fprintf(a.stdout, "Then restart candord: it serves the new key, and devices move to it.\n")
	}
	return nil
}

// printCustodians lists the policy's custodians, and with endorsed, who
// has endorsed (true), sent an invalid endorsement (false) or nothing.
func (a *app) printCustodians(st *ceremony.Statement, endorsed map[int]bool) {
	for i, c := range st.Policy().Custodians() {
		mark := ""
		if endorsed != nil {
			switch ok, seen := endorsed[i+1]; {
			case !seen:
				mark = "  NOT ENDORSED"
			case ok:
				mark = "  endorsed"
			default:
				mark = "  INVALID ENDORSEMENT"
			}
		}
		fmt.Fprintf(a.stdout, "  %d. %s  %s%s\n", i+1, c.Name, c.PublicKey.Fingerprint(), mark)
	}
}

func readStatement(path string) (*ceremony.Statement, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	st, err := ceremony.ParseStatement(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

func (a *app) endorse(args []string) error {
	set := a.flags("endorse", "-statement FILE -key KEYFILE -ca CA.pem")
	stPath := set.String("statement", "", "the archive statement the ceremony wrote")
	keyPath := set.String("key", "", "your custodian key file")
	caPath := set.String("ca", "", "the organisation's CA certificate (ca.pem)")
	if err := parse(set, args); err != nil {
		return err
	}
	if err := require("statement", *stPath, "key", *keyPath, "ca", *caPath); err != nil {
		return err
	}
	st, err := readStatement(*stPath)
	if err != nil {
		return err
	}
	ca, err := readCACert(*caPath)
	if err != nil {
		return err
	}
	if err := st.Check(ca, a.now()); err != nil {
		return fmt.Errorf("not endorsing %s:\n%w", *stPath, err)
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
	e, err := ceremony.Endorse(st, key)
	if err != nil {
		return fmt.Errorf("not endorsing %s: %w", *stPath, err)
	}
	c, err := st.Policy().Custodian(e.Slot())
	if err != nil {
		return err
	}
	out := endorsementPath(*stPath, c.Name)
	if err := writeNew(out, e.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Custodian %d (%s): your share opened and matches the published commitments.\n", e.Slot(), c.Name)
	fmt.Fprintf(a.stdout, "Endorsed archive key %q of %s, statement hash %s.\nEndorsement: %s\n", st.KeyID(), st.Organisation(), st.Hash(), out)
	return nil
}

func (a *app) verify(args []string) error {
	set := a.flags("verify", "-statement FILE -ca CA.pem")
	stPath := set.String("statement", "", "the archive statement")
	caPath := set.String("ca", "", "the organisation's CA certificate (ca.pem)")
	if err := parse(set, args); err != nil {
		return err
	}
	if err := require("statement", *stPath, "ca", *caPath); err != nil {
		return err
	}
	st, err := readStatement(*stPath)
	if err != nil {
		return err
	}
	ca, err := readCACert(*caPath)
	if err != nil {
		return err
	}
	// Endorsements sit beside the statement; a file that is not one is
	// reported, not skipped, since it was put there as one.
	files, err := filepath.Glob(*stPath + ".endorsement.*")
	if err != nil {
		return err
	}
	var problems []error
	var endorsements []*ceremony.Endorsement
	endorsed := map[int]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		e, err := ceremony.ParseEndorsement(b)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", f, err))
			continue
		}
		if err := st.CheckEndorsement(e); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", f, err))
			if _, seen := endorsed[e.Slot()]; !seen {
				endorsed[e.Slot()] = false
			}
			continue
		}
		endorsed[e.Slot()] = true
		endorsements = append(endorsements, e)
	}
	checkErr := st.Check(ca, a.now())

	p := st.Policy()
	fmt.Fprintf(a.stdout, "Organisation: %s\nArchive key: %s\nStatement hash: %s\n", st.Organisation(), st.KeyID(), st.Hash())
	fmt.Fprintf(a.stdout, "Created: %s\nValid until: %s\n", st.Created().Format(time.RFC3339), st.NotAfter().Format(time.RFC3339))
	fmt.Fprintf(a.stdout, "Policy: %d of %d custodians open the archive; all %d must endorse this statement.\n",
		p.K(), p.N(), ceremony.RequiredEndorsements(p))
	a.printCustodians(st, endorsed)

	succProblems, succeeded, err := a.verifySuccessions(*stPath, st)
	if err != nil {
		return err
	}
	problems = append(problems, succProblems...)

	verifyErr := ceremony.Verify(st, endorsements, ca, a.now())
	switch {
	case checkErr != nil || len(problems) > 0:
		return errors.Join(append([]error{checkErr}, problems...)...)
	case verifyErr != nil:
		// Sound, and every endorsement present is valid: only missing
		// ones remain.
		fmt.Fprintf(a.stdout, "NOT YET ENDORSED by every custodian: clients must not pin it.\n")
		return errUnendorsed
	case !succeeded:
		fmt.Fprintf(a.stdout, "NOT YET SUCCEEDED by enough of the previous key's custodians: devices will not move to it.\n")
		return errUnendorsed
	}
	fmt.Fprintf(a.stdout, "Endorsed by every custodian: clients may pin statement %s.\n", st.Hash())
	return nil
}
