package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"candor"
	"candor/internal/access"
	"candor/internal/custody"
	"candor/internal/server"
	"candor/internal/testenv"
)

// TestApprove runs candor-custody approve on bundles of a real access log,
// as candord access show writes them, and checks that two approvals it
// writes rebuild the archive's seed for the request's opening key, and
// that a tampered bundle, another log's key or a refusal write nothing.
func TestApprove(t *testing.T) {
	env := testenv.New(t)
	ctx := t.Context()
	dir := t.TempDir()
	const pass = "correct horse battery staple"
	t.Setenv(envPassphrase, pass)
	st := env.Archive.Statement
	stmt := filepath.Join(dir, "statement")
	if err := os.WriteFile(stmt, st.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	keyFiles := make([]string, len(env.Archive.Keys))
	for i, k := range env.Archive.Keys {
		enc, err := custody.EncryptKeyFile(k, []byte(pass))
		if err != nil {
			t.Fatal(err)
		}
		keyFiles[i] = filepath.Join(dir, "custodian"+string(rune('1'+i))+".key")
		if err := os.WriteFile(keyFiles[i], enc, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	l, err := server.OpenAccessLog(ctx, env.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	opening, err := custody.NewOpeningKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	id, index, err := l.LogRequest(ctx, &access.Request{
		Case: "CASE-7", Reason: "a regulator's inquiry\ninto March", Requester: "Compliance", Created: now,
		Scope:      access.Scope{Groups: []candor.GroupID{"g1"}, Users: []candor.UserID{"alice"}, From: now.Add(-time.Hour), To: now},
		OpeningKey: opening.PublicKey().Bytes(),
	})
	if err != nil {
		t.Fatal(err)
	}
	writeBundle := func(name string, index int64, change func([]byte)) string {
		t.Helper()
		b, err := l.Bundle(ctx, index)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := b.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if change != nil {
			change(enc)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, enc, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	accessPub := filepath.Join(env.Dir, server.FileAccessPub)
	approve := func(bundle, accessKey string, key int, stdin *os.File, extra ...string) (int, string, string, string) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "approval")
		var stdout, stderr bytes.Buffer
		args := append([]string{"approve", "-bundle", bundle, "-access-key", accessKey, "-statement", stmt, "-key", keyFiles[key], "-out", out}, extra...)
		code := run(args, stdin, &stdout, &stderr)
		if code != exitOK {
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a refused approval wrote %s", out)
			}
		}
		return code, stdout.String(), stderr.String(), out
	}

	good := writeBundle("request.bundle", index, nil)
	var approvals []*custody.Approval
	for _, key := range []int{0, 2} {
		code, stdout, stderr, out := approve(good, accessPub, key, nil, "-yes")
		if code != exitOK {
			t.Fatalf("approve: exit %d: %s", code, stderr)
		}
		for _, want := range []string{"CASE-7", "Compliance", "into March", "group:      " + candor.GroupID("g1").String(), "person:     alice", opening.PublicKey().Fingerprint(), id.String()} {
			if !strings.Contains(stdout, want) {
				t.Errorf("approve does not show %q:\n%s", want, stdout)
			}
		}
		raw, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		a, err := custody.ParseApproval(raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Verify(st.Policy()); err != nil {
			t.Fatal(err)
		}
		approvals = append(approvals, a)
	}
	seed, err := custody.Reconstruct(st.Policy(), st.Commitments(), custody.RequestID(id), opening, approvals)
	if err != nil {
		t.Fatalf("the two approvals do not open: %v", err)
	}
	if err := st.MatchesSeed(seed); err != nil {
		t.Fatalf("the rebuilt seed is not the archive's: %v", err)
	}
	seed.Destroy()

	_, otherPub, err := note.GenerateKey(nil, "elsewhere.example/candor/access")
	if err != nil {
		t.Fatal(err)
	}
	otherKey := filepath.Join(dir, "other-access.pub")
	if err := os.WriteFile(otherKey, []byte(otherPub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// An approval record, logged after the request, is not a request.
	if _, err := l.LogApproval(ctx, &access.Approval{Request: id, Custodian: approvals[0].Index(), CustodianName: "custodian 1", Custody: approvals[0].Bytes()}); err != nil {
		t.Fatal(err)
	}
	no := filepath.Join(dir, "no")
	if err := os.WriteFile(no, []byte("no\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	noIn, err := os.Open(no)
	if err != nil {
		t.Fatal(err)
	}
	defer noIn.Close()
	tests := []struct {
		name      string
		bundle    string
		accessKey string
		stdin     *os.File
		want      string
	}{
		{"record changed", writeBundle("record.bundle", index, func(b []byte) { b[len("cabn")+1+16+3+10] ^= 1 }), accessPub, nil, "the inclusion proof does not check"},
		{"checkpoint changed", writeBundle("cp.bundle", index, func(b []byte) { b[len(b)-1-bytes.IndexByte(reverse(b), '\n')-20] ^= 1 }), accessPub, nil, "the checkpoint does not check"},
		{"another log's key", good, otherKey, nil, "the checkpoint does not check"},
		{"not a request", writeBundle("approval.bundle", index+1, nil), accessPub, nil, "not a request"},
		{"not a bundle", stmt, accessPub, nil, "not an access log bundle"},
		{"answered no", good, accessPub, noIn, "not approved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var extra []string
			if tt.stdin == nil {
				extra = []string{"-yes"}
			}
			code, _, stderr, _ := approve(tt.bundle, tt.accessKey, 1, tt.stdin, extra...)
			if code != exitFailure || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, %q; want a failure saying %q", code, stderr, tt.want)
			}
		})
	}
}

// reverse returns b reversed.
func reverse(b []byte) []byte {
	r := bytes.Clone(b)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return r
}
