package mlsx

import (
	"bytes"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The ratchet record is unexported, so its tests live inside the package.

// ratchetOpts lets go-cmp look inside the unexported record.
var ratchetOpts = cmp.AllowUnexported(ratchet{})

// TestRatchetRecordBytes pins the record's encoding byte by byte.
func TestRatchetRecordBytes(t *testing.T) {
	t.Parallel()
	r := ratchet{
		next: 0x0102030405060708,
		top:  0x1112131415161718,
		seen: 0x8000000000000001, // generations top-1 and top-64
	}
	want := []byte{
		// version
		0x01,
		// next: first generation not yet reserved for sending, big-endian uint64
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
		// top: one more than the highest generation received, big-endian uint64
		0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
		// seen: bit i set when generation top-1-i was received, big-endian uint64
		0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
	}
	got := r.encode()
	if !bytes.Equal(got, want) {
		t.Fatalf("encode:\n got %x\nwant %x", got, want)
	}
	back, err := decodeRatchet(want)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if diff := cmp.Diff(r, back, ratchetOpts); diff != "" {
		t.Fatalf("decode (-want +got):\n%s", diff)
	}

	// The zero record: nothing sent, nothing received.
	zero := []byte{
		0x01,                                           // version
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // next
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // top
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // seen
	}
	if got := (ratchet{}).encode(); !bytes.Equal(got, zero) {
		t.Fatalf("zero record:\n got %x\nwant %x", got, zero)
	}
}

func TestDecodeRatchetRefuses(t *testing.T) {
	t.Parallel()
	valid := ratchet{next: 3, top: 9, seen: 0x1ff}.encode()
	tests := []struct {
		name string
		in   []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"version only", []byte{0x01}},
		{"one byte short", valid[:len(valid)-1]},
		{"one byte long", append(bytes.Clone(valid), 0x00)},
		{"version 0", append([]byte{0x00}, valid[1:]...)},
		{"version 2", append([]byte{0x02}, valid[1:]...)},
		{"version 0xff", append([]byte{0xff}, valid[1:]...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if r, err := decodeRatchet(tt.in); err == nil {
				t.Fatalf("decodeRatchet(%x) = %+v, want an error", tt.in, r)
			}
		})
	}
}

// TestReplayWindow walks the receive window through sequences of
// generations. Each step asks fresh and, when fresh, receives.
func TestReplayWindow(t *testing.T) {
	t.Parallel()
	type step struct {
		gen   uint64
		fresh bool
	}
	tests := []struct {
		name  string
		steps []step
		// The record after the last step.
		top, seen uint64
	}{
		{
			name:  "in order",
			steps: []step{{0, true}, {1, true}, {2, true}, {3, true}},
			top:   4, seen: 0b1111,
		},
		{
			name:  "gaps stay open",
			steps: []step{{0, true}, {2, true}, {5, true}},
			top:   6, seen: 0b101001,
		},
		{
			name:  "out of order within the window",
			steps: []step{{5, true}, {3, true}, {4, true}, {0, true}, {2, true}, {1, true}},
			top:   6, seen: 0b111111,
		},
		{
			name:  "replay of the newest",
			steps: []step{{7, true}, {7, false}},
			top:   8, seen: 0b1,
		},
		{
			name:  "replay of an older one",
			steps: []step{{3, true}, {7, true}, {3, false}, {7, false}, {5, true}, {5, false}},
			top:   8, seen: 0b10101,
		},
		{
			name: "63 behind is still in the window, 64 behind is not",
			// top becomes 101; generation 37 is bit 63, generation 36 would be bit 64.
			steps: []step{{100, true}, {37, true}, {36, false}, {0, false}, {37, false}},
			top:   101, seen: 1<<63 | 1,
		},
		{
			name: "a jump of 63 keeps the oldest bit",
			// 10 moves from bit 0 to bit 63: still a replay.
			steps: []step{{10, true}, {73, true}, {10, false}, {11, true}},
			top:   74, seen: 1<<63 | 1<<62 | 1,
		},
		{
			name: "a jump of 64 clears the window",
			// 10 would be bit 64; it is too old rather than remembered.
			steps: []step{{10, true}, {74, true}, {10, false}, {11, true}},
			top:   75, seen: 1<<63 | 1,
		},
		{
			name: "a jump of more than 64 clears the window",
			steps: []step{
				{0, true}, {1, true}, {2, true}, {3, true},
				{200, true},
				{199, true},  // inside the new window
				{137, true},  // 63 behind 200
				{136, false}, // 64 behind 200
				{3, false},   // received, and long gone from the window
				{4, false},   // never received, but too old to tell
			},
			top: 201, seen: 1<<63 | 0b11,
		},
		{
			name:  "generation 0 first",
			steps: []step{{0, true}, {0, false}},
			top:   1, seen: 0b1,
		},
		{
			name:  "generation 0 after later ones",
			steps: []step{{5, true}, {0, true}, {0, false}, {5, false}},
			top:   6, seen: 0b100001,
		},
		{
			name:  "generation 0 once out of the window",
			steps: []step{{64, true}, {0, false}, {1, true}, {1, false}},
			top:   65, seen: 1<<63 | 1,
		},
		{
			name:  "largest uint32 generation",
			steps: []step{{math.MaxUint32, true}, {math.MaxUint32, false}, {math.MaxUint32 - 63, true}, {math.MaxUint32 - 64, false}},
			top:   math.MaxUint32 + 1, seen: 1<<63 | 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var r ratchet
			for i, s := range tt.steps {
				if got := r.fresh(s.gen); got != s.fresh {
					t.Fatalf("step %d: fresh(%d) = %v, want %v (top %d, seen %064b)", i, s.gen, got, s.fresh, r.top, r.seen)
				}
				if s.fresh {
					r = r.receive(s.gen)
				}
				// What is received survives a restart.
				back, err := decodeRatchet(r.encode())
				if err != nil {
					t.Fatalf("step %d: decoding own record: %v", i, err)
				}
				if diff := cmp.Diff(r, back, ratchetOpts); diff != "" {
					t.Fatalf("step %d: record after a round trip (-want +got):\n%s", i, diff)
				}
			}
			want := ratchet{top: tt.top, seen: tt.seen}
			if diff := cmp.Diff(want, r, ratchetOpts); diff != "" {
				t.Fatalf("final record (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReplayWindowLeavesNextAlone: receiving never moves the send counter,
// which the own leaf's record shares with the window.
func TestReplayWindowLeavesNextAlone(t *testing.T) {
	t.Parallel()
	r := ratchet{next: 42}
	for _, gen := range []uint64{0, 1, 500, 499, 1 << 31} {
		r = r.receive(gen)
	}
	if r.next != 42 {
		t.Fatalf("next = %d after receiving, want 42", r.next)
	}
}

// FuzzDecodeRatchet: any input either decodes and encodes back to itself,
// or is refused; a one-byte change to a record is refused or decodes to
// another record.
func FuzzDecodeRatchet(f *testing.F) {
	f.Add([]byte{})
	f.Add(ratchet{}.encode())
	f.Add(ratchet{next: 1, top: 2, seen: 3}.encode())
	f.Add(ratchet{next: math.MaxUint64, top: math.MaxUint64, seen: math.MaxUint64}.encode())
	f.Add(append([]byte{0x02}, make([]byte, ratchetSize-1)...))
	f.Add(make([]byte, ratchetSize+1))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := decodeRatchet(in)
		if err != nil {
			if len(in) == ratchetSize && in[0] == ratchetVersion {
				t.Fatalf("decodeRatchet refused a well-formed record %x: %v", in, err)
			}
			return
		}
		if got := r.encode(); !bytes.Equal(got, in) {
			t.Fatalf("decode then encode:\n got %x\nwant %x", got, in)
		}
		if _, err := decodeRatchet(in[:len(in)-1]); err == nil {
			t.Fatalf("decodeRatchet accepted a truncated record %x", in[:len(in)-1])
		}
		// Tamper with one byte, chosen by the input itself.
		i := int(in[len(in)-1]) % len(in)
		tampered := bytes.Clone(in)
		tampered[i] ^= 0x01
		if r2, err := decodeRatchet(tampered); err == nil && r2 == r {
			t.Fatalf("changing byte %d of %x decoded to the same record", i, in)
		}
	})
}

// windowModel is the replay window's specification, written without
// looking at the implementation: the set of generations received and the
// highest of them. A generation may be refused only if it was received or
// is 64 or more below the highest received; every other one is accepted.
type windowModel struct {
	received map[uint64]bool
	highest  uint64
	any      bool
}

func (m *windowModel) tooOld(gen uint64) bool {
	return m.any && gen < m.highest && m.highest-gen >= 64
}

func (m *windowModel) receive(gen uint64) {
	m.received[gen] = true
	if !m.any || gen > m.highest {
		m.highest, m.any = gen, true
	}
}

// FuzzReplayWindow runs random sequences of generations through the window
// and the model. Each byte of steps picks the next generation relative to the
// highest received: a little behind it (inside or just outside the window),
// a little ahead, or far ahead. base starts the sequence anywhere in the
// uint32 range of RFC 9420 generations; restartEvery, when non-zero, sends
// the record through encode and decode that often, as a restart does.
func FuzzReplayWindow(f *testing.F) {
	f.Add(uint32(0), uint8(0), []byte{0x80, 0x80, 0x00, 0x01, 0x3f, 0x40, 0x7f})
	f.Add(uint32(0), uint8(3), []byte{0x85, 0x02, 0x03, 0x04, 0x00, 0x01, 0xc8, 0x3e, 0x3f, 0x40})
	f.Add(uint32(1000), uint8(1), []byte{0xbf, 0x3e, 0x3f, 0x40, 0xff, 0x00, 0x00})
	f.Add(uint32(math.MaxUint32-200), uint8(2), []byte{0xc1, 0xc1, 0xc1, 0xc1, 0x00, 0x10, 0x7f})
	f.Fuzz(func(t *testing.T, base uint32, restartEvery uint8, steps []byte) {
		if len(steps) > 256 {
			steps = steps[:256]
		}
		model := windowModel{received: make(map[uint64]bool)}
		var r ratchet
		for i, b := range steps {
			ref := uint64(base)
			if model.any {
				ref = model.highest
			}
			var gen uint64
			switch {
			case b < 0x80: // 0..127 behind
				back := uint64(b)
				if back > ref {
					back = ref
				}
				gen = ref - back
			case b < 0xc0: // 1..64 ahead
				gen = ref + uint64(b-0x80) + 1
			default: // 37 to 2,368 ahead, mostly past the window
				gen = ref + uint64(b-0xc0+1)*37
			}
			if gen > math.MaxUint32 {
				gen = math.MaxUint32
			}

			fresh := r.fresh(gen)
			switch {
			case model.received[gen] && fresh:
				t.Fatalf("step %d: replay of generation %d accepted (highest %d)", i, gen, model.highest)
			case !model.received[gen] && !model.tooOld(gen) && !fresh:
				t.Fatalf("step %d: generation %d refused, but it was never received and is within 64 of %d", i, gen, model.highest)
			}
			if fresh {
				r = r.receive(gen)
				model.receive(gen)
			}
			if restartEvery != 0 && i%int(restartEvery) == 0 {
				back, err := decodeRatchet(r.encode())
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				r = back
			}
		}
		if model.any {
			// The record's own view agrees with the model's: top is one past
			// the highest generation received.
			if r.top != model.highest+1 {
				t.Fatalf("top = %d, highest received %d", r.top, model.highest)
			}
		}
	})
}
