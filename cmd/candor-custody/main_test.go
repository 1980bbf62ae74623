package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"candor/internal/ceremony"
	"candor/internal/ceremony/ceremonytest"
	"candor/internal/custody"
	"candor/internal/server"
	"candor/internal/store"
	"candor/internal/store/sqlstore"
)

// TestMain lets the test binary be candor-custody inside scripts.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"candor-custody": main})
}

// TestScripts runs testdata/script/*.txtar, with candor-custody run as a
// real process. Besides testscript's own commands, scripts have:
//
//	mkorg DIR ORG                 make an organisation's data folder, as candord init does
//	status N PROGRAM ARGS...      run PROGRAM, which must exit with status N
//	swapsealed STATEMENT I J      exchange the sealed ciphertexts of custodians I and J
//	flipbyte FILE OFFSET|@TEXT    flip the low bit of a byte: at OFFSET (negative counts
//	                              from the end) or the first byte of TEXT's first occurrence
//	noleaks STATEMENT DIR KEY=PASSPHRASE...
//	                              open the archive with the custodians' keys given, check
//	                              that its keys derive from the rebuilt seed, and that no
//	                              file under DIR holds the seed or a derived private key
func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir: filepath.Join("testdata", "script"),
		Setup: func(e *testscript.Env) error {
			// Scripts set the passphrase when they mean to.
			e.Setenv(envPassphrase, "")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"mkorg":       cmdMkorg,
			"serverload":  cmdServerLoad,
			"serverchain": cmdServerChain,
			"status":      cmdStatus,
			"swapsealed":  cmdSwapSealed,
			"flipbyte":    cmdFlipByte,
			"noleaks":     cmdNoLeaks,
		},
	})
}

func cmdMkorg(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: mkorg DIR ORG")
	}
	open := func(ctx context.Context, path string) (store.Store, error) { return sqlstore.Open(ctx, path) }
	ts.Check(server.Init(context.Background(), ts.MkAbs(args[0]), server.InitOptions{Org: args[1], OpenStore: open}))
}

// cmdServerLoad checks that the server reads the archive the tool wrote
// in the data folder DIR, with N endorsements: the layout is written here
// and read by internal/server, which this tool must not link.
func cmdServerLoad(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: serverload DIR N")
	}
	a, err := server.LoadArchive(ts.MkAbs(args[0]))
	ts.Check(err)
	if got := fmt.Sprint(len(a.Endorsements)); got != args[1] {
		ts.Fatalf("the server reads %s endorsements, want %s", got, args[1])
	}
	if !bytes.Contains(a.Statement, a.KeyPackage) {
		ts.Fatalf("the server's archive KeyPackage is not the statement's")
	}
}

// cmdServerChain checks the archive chain the server reads from the data
// folder DIR: the current key first, then each key before it, by key id
// (each key's statement as the tool wrote it).
func cmdServerChain(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: serverchain DIR KEYID...")
	}
	dir := ts.MkAbs(args[0])
	a, err := server.LoadArchive(dir)
	if neg {
		if err == nil {
			ts.Fatalf("the server reads the folder")
		}
		ts.Logf("the server refuses the folder: %v", err)
		return
	}
	ts.Check(err)
	for i, id := range args[1:] {
		if a == nil {
			ts.Fatalf("the server's chain ends after %d keys, want %d", i, len(args)-1)
		}
		want := readStatementFile(ts, filepath.Join(args[0], "archive", id, "statement"))
		if !bytes.Equal(a.Statement, want) {
			ts.Fatalf("key %d of the server's chain is not archive key %s", i+1, id)
		}
		if i > 0 && len(a.Successions) != 0 {
			ts.Fatalf("archive key %s, the first, has successions", id)
		}
		a = a.Previous
	}
	if a != nil {
		ts.Fatalf("the server's chain is longer than %d keys", len(args)-1)
	}
}

func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: status N PROGRAM ARGS...")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	got := 0
	var exit *exec.ExitError
	if err := ts.Exec(args[1], args[2:]...); errors.As(err, &exit) {
		got = exit.ExitCode()
	} else if err != nil {
		ts.Fatalf("status: %v", err)
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

func readStatementFile(ts *testscript.TestScript, path string) []byte {
	b, err := os.ReadFile(ts.MkAbs(path))
	ts.Check(err)
	return b
}

// cmdSwapSealed plays a ceremony machine (or anyone on the way) that hands
// custodian I the share sealed for custodian J and the other way round:
// the slots stay, the HPKE ciphertexts move.
func cmdSwapSealed(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: swapsealed STATEMENT I J")
	}
	enc := readStatementFile(ts, args[0])
	st, err := ceremony.ParseStatement(enc)
	ts.Check(err)
	var at [2]int
	var sealed [2][]byte
	for n, arg := range args[1:] {
		i, err := strconv.Atoi(arg)
		ts.Check(err)
		share := st.SealedShares()[i-1].Bytes()
		// A sealed share ends with its HPKE ciphertext: enc, share, tag.
		const sealedLen = 65 + 32 + 16
		at[n] = bytes.Index(enc, share) + len(share) - sealedLen
		sealed[n] = bytes.Clone(share[len(share)-sealedLen:])
	}
	copy(enc[at[0]:], sealed[1])
	copy(enc[at[1]:], sealed[0])
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), enc, 0o644))
}

func cmdFlipByte(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: flipbyte FILE OFFSET|@TEXT")
	}
	b := readStatementFile(ts, args[0])
	at, err := strconv.Atoi(args[1])
	if text, ok := strings.CutPrefix(args[1], "@"); ok {
		at, err = bytes.Index(b, []byte(text)), nil
		if at < 0 {
			ts.Fatalf("flipbyte: %q is not in %s", text, args[0])
		}
	}
	ts.Check(err)
	if at < 0 {
		at += len(b)
	}
	b[at] ^= 1
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), b, 0o644))
}

// cmdNoLeaks opens the archive as an opening will, with the key files and
// passphrases given, which checks that the ceremony's statement is what
// its custodians can open; then it looks for the rebuilt seed and every
// private key derived from it in every file under DIR.
func cmdNoLeaks(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 {
		ts.Fatalf("usage: noleaks STATEMENT DIR KEY=PASSPHRASE...")
	}
	st, err := ceremony.ParseStatement(readStatementFile(ts, args[0]))
	ts.Check(err)
	opening, err := custody.NewOpeningKey()
	ts.Check(err)
	request := custody.RequestID(sha256.Sum256([]byte("leak check")))
	var approvals []*custody.Approval
	for _, kv := range args[2:] {
		file, pass, _ := strings.Cut(kv, "=")
		key, err := custody.DecryptKeyFile(readStatementFile(ts, file), []byte(pass))
		ts.Check(err)
		slot, err := st.Policy().IndexOf(key.PublicKey())
		ts.Check(err)
		a, err := key.Approve(st.Policy(), st.Commitments(), st.SealedShares()[slot-1], request, opening.PublicKey())
		ts.Check(err)
		approvals = append(approvals, a)
	}
	seed, err := custody.Reconstruct(st.Policy(), st.Commitments(), request, opening, approvals)
	ts.Check(err)
	defer seed.Destroy()
	ts.Check(st.MatchesSeed(seed))

	secrets := map[string][]byte{}
	sig, err := seed.SignatureKey()
	ts.Check(err)
	secrets["signature key"], err = sig.Bytes()
	ts.Check(err)
	kp, err := seed.KeyPackageKeys(0)
	ts.Check(err)
	secrets["init key"], secrets["encryption key"] = kp.Init.Bytes(), kp.Encryption.Bytes()

	files := 0
	ts.Check(filepath.WalkDir(ts.MkAbs(args[1]), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for name, secret := range secrets {
			if at := ceremonytest.FindSecret(data, secret); at != "" {
				ts.Fatalf("the archive's %s is in %s (%s)", name, path, at)
			}
		}
		if at := ceremonytest.FindSeed(data, st); at != "" {
			ts.Fatalf("the archive's seed is in %s (%s)", path, at)
		}
		return nil
	}))
	ts.Logf("searched %d files: no seed, no derived private key", files)
}

// TestUsageDocumentsExitCodes keeps the usage text's list of exit
// statuses complete, since scripts rely on it.
func TestUsageDocumentsExitCodes(t *testing.T) {
	t.Parallel()
	for _, code := range []int{exitOK, exitFailure, exitUsage, exitUnendorsed} {
		if !regexp.MustCompile(`(?m)^  ` + strconv.Itoa(code) + `  \S`).MatchString(usage) {
			t.Errorf("the usage text does not document exit status %d", code)
		}
	}
}
