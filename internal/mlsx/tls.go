package mlsx

import "encoding/binary"

// appendVarBytes appends b as an RFC 9420 §2.1.2 opaque<V>: a variable-size
// length prefix (1, 2 or 4 bytes) and the bytes.
func appendVarBytes(dst, b []byte) []byte {
	n := len(b)
	switch {
	case n < 1<<6:
		dst = append(dst, byte(n))
	case n < 1<<14:
		dst = binary.BigEndian.AppendUint16(dst, uint16(n)|0x4000)
	default:
		dst = binary.BigEndian.AppendUint32(dst, uint32(n)|0x80000000)
	}
	return append(dst, b...)
}

func appendUint64(dst []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(dst, v) }
