package journal_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"

	"candor"
	"candor/internal/journal"
)

// TestHeadByHand encodes a head with the layout the package comment
// gives, written out here independently of the package's encoder.
func TestHeadByHand(t *testing.T) {
	h := journal.Head{Group: "grp", Seq: 7, Hash: sha256.Sum256([]byte("x"))}
	want := []byte("candor/journal/v1/head\x00")
	want = binary.BigEndian.AppendUint32(want, 3)
	want = append(want, "grp"...)
	want = binary.BigEndian.AppendUint64(want, 7)
	want = append(want, h.Hash[:]...)
	got, err := h.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding:\n got %x\nwant %x", got, want)
	}
	back, err := journal.ParseHead(got)
	if err != nil || back != h {
		t.Fatalf("ParseHead = %+v, %v; want %+v", back, err, h)
	}
}

func TestHeadRejects(t *testing.T) {
	for name, h := range map[string]journal.Head{
		"no group":   {Seq: 1},
		"seq 0":      {Group: "g"},
		"long group": {Group: candor.GroupID(bytes.Repeat([]byte{1}, 1025)), Seq: 1},
	} {
		if _, err := h.MarshalBinary(); !errors.Is(err, candor.ErrInvalid) {
			t.Errorf("%s: MarshalBinary err = %v, want ErrInvalid", name, err)
		}
	}
	good, err := journal.Head{Group: "g", Seq: 1}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"empty":     nil,
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte(nil), good...), 0),
		"label v2":  append([]byte("candor/journal/v2/head"), good[len("candor/journal/v1/head"):]...),
		"seq 0":     append(append(append([]byte(nil), good[:len(good)-40]...), make([]byte, 8)...), good[len(good)-32:]...),
		"length":    append(append(append([]byte(nil), good[:23]...), 0xff, 0xff, 0xff, 0xff), good[27:]...),
	} {
		if _, err := journal.ParseHead(b); !errors.Is(err, candor.ErrInvalid) {
			t.Errorf("%s: ParseHead err = %v, want ErrInvalid", name, err)
		}
	}
}

// FuzzParseHead checks that every record ParseHead accepts is canonical:
// encoding the head it returns gives back exactly the record.
func FuzzParseHead(f *testing.F) {
	for _, h := range []journal.Head{
		{Group: "g", Seq: 1},
		{Group: "0123456789abcdef", Seq: 1 << 40, Hash: sha256.Sum256(nil)},
	} {
		b, err := h.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("candor/journal/v1/head\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := journal.ParseHead(b)
		if err != nil {
			if !errors.Is(err, candor.ErrInvalid) {
				t.Fatalf("ParseHead error %v does not wrap ErrInvalid", err)
			}
			return
		}
		again, err := h.MarshalBinary()
		if err != nil {
			t.Fatalf("a parsed head does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("not canonical: %x encodes back as %x", b, again)
		}
	})
}
