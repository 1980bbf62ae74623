package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"candor/internal/access"
	"candor/internal/custody"
)

// maxBundle bounds the bundle file read: a request's record is at most a
// few hundred kilobytes (access.MaxScopeItems ids of each kind).
const maxBundle = 1 << 20

// approve is a custodian's review of one opening request. The request
// comes as a bundle the administrator wrote (candord access show), which
// is checked against the access log's key the custodian was given
// beforehand: only a request every member's device can also see in the
// log is shown, and only the opening key that request names gets the
// share.
func (a *app) approve(args []string) error {
	set := a.flags("approve", "-bundle FILE -access-key access.pub -statement FILE -key KEYFILE -out APPROVAL [-yes]")
	bundlePath := set.String("bundle", "", "the request as candord access show wrote it")
	accessKey := set.String("access-key", "", "the access log's public key (access.pub), as you were given it")
	stPath := set.String("statement", "", "the archive statement you endorsed")
	keyPath := set.String("key", "", "your custodian key file")
	out := set.String("out", "", "the approval file to write, for the administrator to log")
	yes := set.Bool("yes", false, "approve without asking (for scripts that have shown the request otherwise)")
	if err := parse(set, args); err != nil {
		return err
	}
	if err := require("bundle", *bundlePath, "access-key", *accessKey, "statement", *stPath, "key", *keyPath, "out", *out); err != nil {
		return err
	}
	if _, err := os.Lstat(*out); err == nil {
		return fmt.Errorf("%s already exists; not overwriting it", *out)
	}
	verifier, err := readAccessKey(*accessKey)
	if err != nil {
		return err
	}
	raw, err := readLimited(*bundlePath, maxBundle)
	if err != nil {
		return err
	}
	b, err := access.ParseBundle(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", *bundlePath, err)
	}
	rec, cp, err := b.Verify(verifier)
	if err != nil {
		return fmt.Errorf("%s: not approving: %w", *bundlePath, err)
	}
	q := rec.Request
	if q == nil {
		return fmt.Errorf("%s: record %d of the access log is a %s, not a request", *bundlePath, b.Proof.Index, rec.Type())
	}
	id, err := q.ID()
	if err != nil {
		return err
	}
	opening, err := custody.ParseOpeningPublicKey(q.OpeningKey)
	if err != nil {
		return fmt.Errorf("%s: %w", *bundlePath, err)
	}
	st, err := readStatement(*stPath)
	if err != nil {
		return err
	}
	if err := st.Consistent(); err != nil {
		return fmt.Errorf("%s: %w", *stPath, err)
	}

	fmt.Fprintf(a.stdout, "Opening request %s\n", id)
	fmt.Fprintf(a.stdout, "  in the access log %s at record %d of %d (checkpoint signature and inclusion proof verified)\n", cp.Origin, b.Proof.Index, cp.Size)
	fmt.Fprintf(a.stdout, "  case:       %s\n", q.Case)
	fmt.Fprintf(a.stdout, "  requester:  %s\n", q.Requester)
	fmt.Fprintf(a.stdout, "  requested:  %s\n", q.Created.Format("2006-01-02 15:04:05 UTC"))
	fmt.Fprintf(a.stdout, "  reason:     %s\n", strings.ReplaceAll(q.Reason, "\n", "\n              "))
	fmt.Fprintf(a.stdout, "  time range: %s to %s\n", q.Scope.From.Format("2006-01-02 15:04:05"), q.Scope.To.Format("2006-01-02 15:04:05 UTC"))
	for _, g := range q.Scope.Groups {
		fmt.Fprintf(a.stdout, "  group:      %s\n", g)
	}
	for _, u := range q.Scope.Users {
		fmt.Fprintf(a.stdout, "  person:     %s\n", u)
	}
	fmt.Fprintf(a.stdout, "  opening key fingerprint: %s (ask the requester to read theirs aloud)\n", opening.Fingerprint())
	fmt.Fprintf(a.stdout, "  archive:    key %q of %s, statement hash %s\n", st.KeyID(), st.Organisation(), st.Hash())
	if !*yes {
		ok, err := a.confirm("Approve this opening? Type yes to approve: ")
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("not approved; nothing written")
		}
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
	slot, err := st.Policy().IndexOf(key.PublicKey())
	if err != nil {
		return fmt.Errorf("%s: %w", *keyPath, err)
	}
	approval, err := key.Approve(st.Policy(), st.Commitments(), st.SealedShares()[slot-1], custody.RequestID(id), opening)
	if err != nil {
		return fmt.Errorf("not approving: %w", err)
	}
	if err := writeNew(*out, approval.Bytes(), 0o644); err != nil {
		return err
	}
	c, err := st.Policy().Custodian(slot)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Custodian %d (%s): approved request %s, your share sealed to its opening key.\n", slot, c.Name, id)
	fmt.Fprintf(a.stdout, "Approval: %s; the administrator logs it with: candord access approve --custodian %q %s\n", *out, c.Name, *out)
	return nil
}

// readAccessKey reads the access log's verifier key in signed-note form.
func readAccessKey(path string) (note.Verifier, error) {
	raw, err := readLimited(path, 4096)
	if err != nil {
		return nil, err
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("%s is not an access log key (access.pub): %w", path, err)
	}
	return v, nil
}

// readLimited reads a file of at most max bytes.
func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d expected", path, fi.Size(), max)
	}
	buf := make([]byte, fi.Size())
	if _, err := f.ReadAt(buf, 0); err != nil && fi.Size() > 0 {
		return nil, err
	}
	return buf, nil
}

// confirm asks a yes-or-no question on stdin; only "yes" is yes.
func (a *app) confirm(prompt string) (bool, error) {
	fmt.Fprint(a.stderr, prompt)
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && line == "" {
		return false, fmt.Errorf("no answer on standard input; use -yes in scripts: %w", err)
	}
	return strings.TrimSpace(line) == "yes", nil
}
