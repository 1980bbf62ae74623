package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"candor"
)

// InvitationPrefix starts the text form of every invitation code.
const InvitationPrefix = "candor1:"

// Sizes of an invitation code's fields.
const (
	InvitationSecretBytes = 32
	fingerprintBytes      = 32   // SHA-256
	maxInvitationText     = 1024 // far above a real code (about 290 characters)
	maxInvitationField    = 255
)

// EncodeInvitation returns the text form of c: InvitationPrefix followed by
// base64url without padding of c's JSON encoding.
func EncodeInvitation(c InvitationCode) string {
	b, _ := json.Marshal(c) // strings and byte slices always encode
	return InvitationPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// DecodeInvitation parses the text form of an invitation code, refusing
// anything EncodeInvitation would not have produced for a valid code:
// another prefix, padding, unknown or missing fields, a fingerprint or
// secret of the wrong size, any other JSON spelling of the same value. Surrounding white space is ignored, since codes
// are pasted by people. Errors wrap candor.ErrInvalid and never repeat the
// input, which holds a secret.
func DecodeInvitation(s string) (InvitationCode, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxInvitationText {
		return InvitationCode{}, invitationError("too long")
	}
	rest, ok := strings.CutPrefix(s, InvitationPrefix)
	if !ok {
		return InvitationCode{}, invitationError("does not start with " + InvitationPrefix)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil {
		return InvitationCode{}, invitationError("not base64url without padding")
	}
	var c InvitationCode
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return InvitationCode{}, invitationError("not a JSON invitation")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return InvitationCode{}, invitationError("trailing data")
	}
	switch {
	case c.Server == "" || len(c.Server) > maxInvitationField:
		return InvitationCode{}, invitationError("no server")
	case len(c.CAFingerprint) != fingerprintBytes:
		return InvitationCode{}, invitationError("CA fingerprint is not 32 bytes")
	case c.ID == "" || len(c.ID) > maxInvitationField:
		return InvitationCode{}, invitationError("no invitation id")
	case len(c.Secret) != InvitationSecretBytes:
		return InvitationCode{}, invitationError("secret is not 32 bytes")
	case len(c.Archive) != fingerprintBytes:
		return InvitationCode{}, invitationError("archive statement hash is not 32 bytes")
	}
	// One value, one text: field names in another case, another field
	// order or escaped characters are refused, as EncodeInvitation never
	// writes them.
	if EncodeInvitation(c) != s {
		return InvitationCode{}, invitationError("not in canonical form")
	}
	return c, nil
}

func invitationError(why string) error {
	return fmt.Errorf("invitation code: %s: %w", why, candor.ErrInvalid)
}
