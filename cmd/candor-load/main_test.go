package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"candor/internal/loadtest"
)

// TestMain lets the test binary serve as the load test's target child, as
// the command does.
func TestMain(m *testing.M) {
	if loadtest.IsChild() {
		loadtest.ChildMain()
	}
	os.Exit(m.Run())
}

// TestSmoke runs the whole load test small: 20 devices in 2 groups, 100
// messages per second for a second, against the server and the baseline.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two servers")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	out := filepath.Join(t.TempDir(), "results.json")
	var stdout, stderr bytes.Buffer
	args := []string{"-devices", "20", "-group-size", "10", "-rate", "100", "-duration", "1s", "-drain", "10s", "-quiet-wait", "0", "-out", out}
	if err := run(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("candor-load %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	t.Logf("\n%s", stdout.String())
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep loadtest.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Targets) != 2 || rep.Targets[0].Name != loadtest.TargetServer || rep.Targets[1].Name != loadtest.TargetBaseline {
		t.Fatalf("targets %+v, want server and baseline", rep.Targets)
	}
	for _, tr := range rep.Targets {
		if len(tr.Runs) != 1 {
			t.Fatalf("%s: %d runs, want 1", tr.Name, len(tr.Runs))
		}
		r := tr.Runs[0]
		if r.Messages != 100 || r.Accepted != r.Messages || len(r.Failures) != 0 {
			t.Errorf("%s: %d of %d messages accepted; failures %v", tr.Name, r.Accepted, r.Messages, r.Failures)
		}
		if r.Deliveries != r.ExpectedDeliveries || r.Duplicates != 0 {
			t.Errorf("%s: %d deliveries (%d duplicates), want %d", tr.Name, r.Deliveries, r.Duplicates, r.ExpectedDeliveries)
		}
		if r.DeliveryLatency.N == 0 || r.DeliveryLatency.P50 <= 0 {
			t.Errorf("%s: no delivery latency: %+v", tr.Name, r.DeliveryLatency)
		}
		if tr.Idle.RSS == 0 || r.PeakRSS == 0 {
			t.Errorf("%s: no memory measured", tr.Name)
		}
		if tr.LogLines != 0 {
			t.Errorf("%s logged: %s", tr.Name, tr.FirstLogLine)
		}
	}
	if !strings.Contains(stdout.String(), "deliveries/s (in window)") || len(rep.Checks) != 3 {
		t.Errorf("table or checks missing:\n%s", stdout.String())
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"-rate", "fast"},
		{"-ack", "sometimes"},
		{"-server=false", "-baseline=false"},
		{"extra"},
		{"-nope"},
	} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), args, &stdout, &stderr); !errors.Is(err, errUsage) {
			t.Errorf("candor-load %q: %v, want a usage error", args, err)
		}
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"-devices", "15", "-q"}, &stdout, &stderr); err == nil {
		t.Error("15 devices in groups of 10 accepted")
	}
}
