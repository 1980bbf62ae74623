package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"testing"
)

// A small run generates, replays and reports every figure; without the
// corpus file it uses the built-in texts.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{
		"-messages", "120", "-groups", "3", "-people", "20", "-max-group-size", "6", "-commit-every", "20",
		"-dir", t.TempDir(), "-corpus", filepath.Join(t.TempDir(), "absent.tsv"),
	}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		`texts: 16 in 8 languages from built-in texts`,
		`generated: 120 messages and \d+ commits`,
		`baseline .*: \d+ entries in .*: \d+ entries/s`,
		`replay .*: \d+ entries, \d+ records \(0 failed\)`,
		`export: \d+ records`,
		`ratio: replay takes [0-9.]+x the baseline.s wall time .* and [0-9.]+x its CPU time`,
		`extrapolated from the measured rates, not measured: 27000000 entries`,
	} {
		if !regexp.MustCompile(want).Match(out.Bytes()) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestFlagsChecked(t *testing.T) {
	for _, args := range [][]string{
		{"-groups", "0"},
		{"-messages", "2", "-groups", "3"},
		{"-workers", "0"},
	} {
		if err := run(context.Background(), append(args, "-dir", t.TempDir()), &bytes.Buffer{}); err == nil {
			t.Errorf("run %v: no error", args)
		}
	}
}
