package journal

import (
	"encoding/binary"
	"fmt"

	"candor"
)

// A Head is a group's chain head at some moment: the seq of the group's
// last entry then and that entry's chain hash. The server appends heads to
// its journal-heads transparency log, whose signed checkpoints commit it
// to every group's chain: rewriting a group's log afterwards, even with
// every later hash recomputed, yields a chain that no longer passes
// through a signed head.
//
// # The record, version 1
//
//	"candor/journal/v1/head" || 0x00 ||
//	uint32 len(group) || group || uint64 seq || hash (32 bytes)
//
// Integers are big-endian. The encoding is canonical: exactly one byte
// string encodes a head, so a record in the log is equal to the record a
// reader encodes from the head it expects.
type Head struct {
	Group candor.GroupID
	Seq   uint64 // at least 1: an empty log has no head to sign
	Hash  Hash
}

const headLabel = "candor/journal/v1/head"

// maxGroupID bounds a group id in a head record; the server's group ids
// are far shorter, and a record is read from a log others may have
// written.
const maxGroupID = 1024

func (h Head) valid() error {
	if h.Group == "" || len(h.Group) > maxGroupID {
		return fmt.Errorf("journal: a head's group id must be 1 to %d bytes, not %d: %w", maxGroupID, len(h.Group), candor.ErrInvalid)
	}
	if h.Seq == 0 {
		return fmt.Errorf("journal: a head's seq is at least 1: %w", candor.ErrInvalid)
	}
	return nil
}

// MarshalBinary encodes the head as a journal-heads log record.
func (h Head) MarshalBinary() ([]byte, error) {
	if err := h.valid(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(headLabel)+1+4+len(h.Group)+8+HashSize)
	b = append(b, headLabel...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(len(h.Group)))
	b = append(b, h.Group...)
	b = binary.BigEndian.AppendUint64(b, h.Seq)
	return append(b, h.Hash[:]...), nil
}

// ParseHead decodes a record MarshalBinary wrote. Anything else, including
// trailing bytes, fails with candor.ErrInvalid.
func ParseHead(b []byte) (Head, error) {
	var h Head
	bad := func(what string) (Head, error) {
		return Head{}, fmt.Errorf("journal: not a head record: %s: %w", what, candor.ErrInvalid)
	}
	prefix := headLabel + "\x00"
	if len(b) < len(prefix)+4 || string(b[:len(prefix)]) != prefix {
		return bad("no version 1 label")
	}
	b = b[len(prefix):]
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	if uint64(n) > maxGroupID || len(b) != int(n)+8+HashSize {
		return bad("wrong length")
	}
	h.Group = candor.GroupID(b[:n])
	h.Seq = binary.BigEndian.Uint64(b[n:])
	copy(h.Hash[:], b[n+8:])
	if err := h.valid(); err != nil {
		return Head{}, err
	}
	return h, nil
}
