package devstore

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"candor"
)

// A message's body is who sent it and what it says, encoded as
//
//	version (1 byte, 1)
//	uvarint length of the sender's user id  || the user id
//	uvarint length of the sender's device id || the device id
//	the text, to the end
//
// and sealed as one value, so that a message costs one seal and the
// sender cannot be separated from the text.
const bodyVersion = 1

func encodeBody(m Message) []byte {
	out := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(m.SenderUser)+len(m.SenderDevice)+len(m.Text))
	out = append(out, bodyVersion)
	out = binary.AppendUvarint(out, uint64(len(m.SenderUser)))
	out = append(out, m.SenderUser...)
	out = binary.AppendUvarint(out, uint64(len(m.SenderDevice)))
	out = append(out, m.SenderDevice...)
	return append(out, m.Text...)
}

// decodeBody reads what encodeBody wrote, and only that: anything else,
// lengths in a longer form than needed included, is candor.ErrInvalid.
func decodeBody(b []byte) (candor.UserID, candor.DeviceID, string, error) {
	bad := fmt.Errorf("malformed message body: %w", candor.ErrInvalid)
	if len(b) == 0 || b[0] != bodyVersion {
		return "", "", "", bad
	}
	rest := b[1:]
	field := func() (string, bool) {
		n, size := binary.Uvarint(rest)
		if size <= 0 || n > uint64(len(rest)-size) {
			return "", false
		}
		f := string(rest[size : size+int(n)])
		rest = rest[size+int(n):]
		return f, true
	}
	user, ok := field()
	if !ok {
		return "", "", "", bad
	}
	device, ok := field()
	if !ok {
		return "", "", "", bad
	}
	m := Message{SenderUser: candor.UserID(user), SenderDevice: candor.DeviceID(device), Text: string(rest)}
	if !bytes.Equal(encodeBody(m), b) {
		return "", "", "", bad
	}
	return m.SenderUser, m.SenderDevice, m.Text, nil
}
