package opening_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"candor"
	"candor/internal/access"
	"candor/internal/custody"
	"candor/internal/opening"
	"candor/internal/server"
	"candor/internal/testenv"
)

// fixture is an organisation's access log with one request for a group.
type fixture struct {
	env  *testenv.Env
	log  *server.AccessLog
	key  *custody.OpeningKey
	id   access.RequestID
	good []opening.Approval // custodians 1 and 2, logged
}

func newFixture(t *testing.T, users ...candor.UserID) *fixture {
	t.Helper()
	env := testenv.New(t)
	l, err := server.OpenAccessLog(t.Context(), env.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	key, err := custody.NewOpeningKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	id, _, err := l.LogRequest(t.Context(), &access.Request{
		Case: "CASE-1", Reason: "inquiry", Requester: "Compliance", Created: now,
		Scope:      access.Scope{Groups: []candor.GroupID{"g"}, Users: users, From: now.Add(-time.Hour), To: now},
		OpeningKey: key.PublicKey().Bytes(),
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{env: env, log: l, key: key, id: id}
	for i := range 2 {
		f.good = append(f.good, f.approve(t, i, nil))
	}
	return f
}

// approve is custodian i's approval of the request, changed by change
// when not nil, then logged.
func (f *fixture) approve(t *testing.T, i int, change func([]byte)) opening.Approval {
	t.Helper()
	st := f.env.Archive.Statement
	a, err := f.env.Archive.Keys[i].Approve(st.Policy(), st.Commitments(), st.SealedShares()[i], custody.RequestID(f.id), f.key.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	b := a.Bytes()
	if change != nil {
		change(b)
	}
	if _, err := f.log.LogApproval(t.Context(), &access.Approval{Request: f.id, Custodian: i + 1, CustodianName: "custodian", Custody: b}); err != nil {
		t.Fatal(err)
	}
	return opening.Approval{Name: "approval " + string(rune('1'+i)), Data: b}
}

func (f *fixture) config(approvals ...opening.Approval) opening.Config {
	return opening.Config{Access: f.log, Statement: f.env.Archive.Statement, Request: f.id, OpeningKey: f.key, Approvals: slices.Clone(approvals)}
}

func TestPrepare(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	o, err := opening.Prepare(t.Context(), f.config(f.good...))
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	if o.Request().Case != "CASE-1" {
		t.Errorf("prepared request %+v", o.Request())
	}

	other, err := custody.NewOpeningKey()
	if err != nil {
		t.Fatal(err)
	}
	// A tampered approval the log accepted (the server does not check
	// signatures): its last signature byte changed.
	tampered := f.approve(t, 2, func(b []byte) { b[len(b)-1] ^= 1 })
	// Custodian 2 approving again: a valid approval (ECDSA signatures are
	// randomised, so other bytes) that nobody logged.
	st := f.env.Archive.Statement
	again, err := f.env.Archive.Keys[1].Approve(st.Policy(), st.Commitments(), st.SealedShares()[1], custody.RequestID(f.id), f.key.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	unlogged := opening.Approval{Name: "unlogged", Data: again.Bytes()}
	tests := []struct {
		name   string
		change func(*opening.Config)
		is     error
		says   string
	}{
		{"one approval", func(c *opening.Config) { c.Approvals = c.Approvals[:1] }, custody.ErrNotEnoughShares, "1 logged approvals"},
		{"the same approval twice", func(c *opening.Config) { c.Approvals = []opening.Approval{c.Approvals[0], c.Approvals[0]} }, nil, "are both custodian 1's"},
		{"request not logged", func(c *opening.Config) { c.Request[0] ^= 1 }, candor.ErrNotFound, "is not in the access log"},
		{"another opening key", func(c *opening.Config) { c.OpeningKey = other }, nil, "not the one request"},
		{"approval not logged", func(c *opening.Config) { c.Approvals = append(c.Approvals[:1], unlogged) }, nil, "unlogged (custodian 2) is not in the access log"},
		{"tampered approval, logged", func(c *opening.Config) { c.Approvals = append(c.Approvals[:1], tampered) }, nil, "approval 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := f.config(f.good...)
			tt.change(&cfg)
			o, err := opening.Prepare(t.Context(), cfg)
			if err == nil {
				o.Close()
				t.Fatal("prepared")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Prepare = %v, want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("Prepare = %q, want it to say %q", err, tt.says)
			}
		})
	}
}

// A request naming people prepares like one naming groups: which groups
// they select is the replay's business (TestReplayScope).
func TestPreparePeople(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "alice")
	o, err := opening.Prepare(t.Context(), f.config(f.good...))
	if err != nil {
		t.Fatalf("Prepare of a request naming alice = %v", err)
	}
	defer o.Close()
	if users := o.Request().Scope.Users; len(users) != 1 || users[0] != "alice" {
		t.Errorf("prepared request's people: %v", users)
	}
}
