package ceremonytest

import (
	"fmt"
	"testing"
	"time"

	"candor/internal/ceremony"
	"candor/internal/custody"
	"candor/internal/pki"
)

// Custody policy of the archives Hold makes.
const (
	Threshold  = 2
	Custodians = 3
	KeyID      = "test"
)

// Archive is a ceremony's result, for tests: the custodians' keys (which a
// real ceremony never sees), the statement and every custodian's
// endorsement, keyed by custodian number as a file-name-safe string; for a
// successor (Succeed), the previous custodians' successions, keyed the
// same way.
type Archive struct {
	Keys         []*custody.CustodianKey
	Statement    *ceremony.Statement
	Endorsements map[string][]byte
	Successions  map[string][]byte
}

// Hold holds a custody ceremony for the organisation of ca at now with
// Custodians custodians, Threshold of whom open the archive
// (ceremony.Rehearse).
func Hold(t testing.TB, ca *pki.CA, now time.Time) Archive {
	t.Helper()
	return hold(t, ca, now, KeyID)
}

func hold(t testing.TB, ca *pki.CA, now time.Time, keyID string) Archive {
	t.Helper()
	names := make([]string, Custodians)
	for i := range names {
		names[i] = fmt.Sprintf("custodian %d", i+1)
	}
	st, keys, es, err := ceremony.Rehearse(ceremony.Config{CA: ca, KeyID: keyID, K: Threshold, Now: func() time.Time { return now }}, names)
	if err != nil {
		t.Fatalf("ceremony: %v", err)
	}
	a := Archive{Keys: keys, Statement: st, Endorsements: map[string][]byte{}}
	for i, e := range es {
		a.Endorsements[fmt.Sprint(i+1)] = e.Bytes()
	}
	return a
}

// Succeed holds a second ceremony for the organisation of ca at now, for
// archive key keyID with custodians of its own, and has the first n
// custodians of prev endorse it as prev's successor (ceremony.Succeed).
func Succeed(t testing.TB, ca *pki.CA, now time.Time, keyID string, prev Archive, n int) Archive {
	t.Helper()
	a := hold(t, ca, now, keyID)
	a.Successions = map[string][]byte{}
	for i, k := range prev.Keys[:n] {
		e, err := ceremony.Succeed(prev.Statement, a.Statement, k)
		if err != nil {
			t.Fatalf("custodian %d of %s succeeding: %v", i+1, prev.Statement.KeyID(), err)
		}
		a.Successions[fmt.Sprint(i+1)] = e.Bytes()
	}
	return a
}
