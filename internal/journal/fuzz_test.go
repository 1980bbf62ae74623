package journal_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"candor"
	"candor/internal/journal"
)

// FuzzVerify builds a chain from the fuzzer's bytes, damages it in one of
// five ways chosen by the fuzzer, and checks that the verifier accepts the
// intact chain and names the damage exactly: the seq of a changed entry,
// the gap a removed one leaves, the seq of a repeated or moved one.
func FuzzVerify(f *testing.F) {
	f.Add([]byte("abc|def|ghi|jkl"), uint8(0), uint8(1), uint8(3))
	f.Add([]byte("one|two|three"), uint8(1), uint8(0), uint8(0))
	f.Add([]byte("x|y|z|w|v"), uint8(2), uint8(2), uint8(0))
	f.Add([]byte("x|y|z|w|v"), uint8(3), uint8(3), uint8(0))
	f.Add([]byte("x|y|z|w|v"), uint8(4), uint8(1), uint8(0))
	f.Add([]byte("same|same|same"), uint8(4), uint8(1), uint8(0))
	f.Add([]byte(""), uint8(0), uint8(0), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, op, at, bit uint8) {
		parts := bytes.Split(data, []byte("|"))
		if len(parts) > 64 {
			parts = parts[:64]
		}
		const group = candor.GroupID("fuzz")
		c := make([]journal.Linked, len(parts))
		prev := journal.Genesis
		for i, p := range parts {
			e := journal.Entry{
				Seq: uint64(i + 1), Epoch: candor.Epoch(len(p)), Commit: len(p)%2 == 1,
				Sender: candor.DeviceID(p[:min(len(p), 3)]), Time: time.UnixMilli(int64(i) * 1000), Message: p,
			}
			prev = journal.EntryHash(group, e, prev)
			c[i] = journal.Linked{Entry: e, Hash: prev}
		}
		head, err := journal.Verify(group, c)
		if err != nil || (len(c) > 0 && head != c[len(c)-1].Hash) || (len(c) == 0 && head != journal.Genesis) {
			t.Fatalf("intact chain: %s, %v", head, err)
		}
		if len(c) == 0 {
			return
		}
		i := int(at) % len(c)
		var want error
		switch op % 5 {
		case 0: // flip one bit of one message
			m := bytes.Clone(c[i].Message)
			if len(m) == 0 {
				m = []byte{0}
			} else {
				m[int(bit)%len(m)] ^= 1 << (bit % 8)
			}
			c[i].Message = m
			want = &journal.TamperError{Group: group, Seq: uint64(i + 1)}
		case 1: // change a stored hash
			c[i].Hash[int(bit)%journal.HashSize] ^= 1
			want = &journal.TamperError{Group: group, Seq: uint64(i + 1)}
		case 2: // drop an entry that has a successor
			if i == len(c)-1 {
				return
			}
			c = append(c[:i:i], c[i+1:]...)
			want = &journal.GapError{Group: group, Want: uint64(i + 1), Got: uint64(i + 2)}
		case 3: // swap two neighbours
			if i == len(c)-1 {
				return
			}
			c[i], c[i+1] = c[i+1], c[i]
			want = &journal.GapError{Group: group, Want: uint64(i + 1), Got: uint64(i + 2)}
		case 4: // deliver an entry twice
			c = append(c[:i+1:i+1], c[i:]...)
			want = &journal.OrderError{Group: group, Want: uint64(i + 2), Got: uint64(i + 1), Duplicate: true}
		}
		_, err = journal.Verify(group, c)
		if !errors.Is(err, journal.ErrBroken) {
			t.Fatalf("damage %d at %d not detected: %v", op%5, i, err)
		}
		if err.Error() != want.Error() {
			t.Fatalf("damage %d at %d reported as %v, want %v", op%5, i, err, want)
		}
	})
}
