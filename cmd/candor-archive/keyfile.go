package main

import (
	"bytes"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"

	"candor"
	"candor/internal/custody"
)

// The opening key file is one PEM block of type openingKeyPEM holding the
// key's private P-256 scalar (32 bytes), no headers, nothing after it.
// It is kept mode 0600 by whoever runs the opening, from the request to the
// opening, and deleted after it: with it and the approvals, which the
// access log publishes, the archive's seed can be rebuilt, so it is as
// secret as the seed while it exists. It is not passphrase-protected (see
// docs/design/archive.md, "Opening a case").
const openingKeyPEM = "CANDOR OPENING KEY"

// maxKeyFile bounds what is read as a key file.
const maxKeyFile = 4096

// encodeOpeningKey returns the key file of o.
func encodeOpeningKey(o *custody.OpeningKey) ([]byte, error) {
	b, err := o.Bytes()
	if err != nil {
		return nil, err
	}
	defer clear(b)
	return pem.EncodeToMemory(&pem.Block{Type: openingKeyPEM, Bytes: b}), nil
}

// parseOpeningKey decodes a key file; anything but what encodeOpeningKey
// writes fails with candor.ErrInvalid.
func parseOpeningKey(data []byte) (*custody.OpeningKey, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != openingKeyPEM {
		return nil, fmt.Errorf("not an opening key file (no %q block): %w", openingKeyPEM, candor.ErrInvalid)
	}
	defer clear(block.Bytes)
	if len(block.Headers) != 0 || len(rest) != 0 {
		return nil, fmt.Errorf("opening key file: headers or data after the key: %w", candor.ErrInvalid)
	}
	if len(block.Bytes) != 32 {
		return nil, fmt.Errorf("opening key file: a key of %d bytes, want 32: %w", len(block.Bytes), candor.ErrInvalid)
	}
	o, err := custody.ParseOpeningKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("opening key file: %w", errors.Join(err, candor.ErrInvalid))
	}
	// PEM tolerates other line breaks and paddings of the same key; one
	// file per key keeps "is this the file keygen wrote" a byte compare.
	again, err := encodeOpeningKey(o)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, data) {
		return nil, fmt.Errorf("opening key file: not as keygen writes it: %w", candor.ErrInvalid)
	}
	return o, nil
}

func keygenCmd(args []string, stdout, stderr io.Writer) error {
	fs := flags("keygen", "-out KEYFILE", stderr)
	out := fs.String("out", "", "the key file to write; KEYFILE.pub gets the public key")
	if err := parseFlags(fs, args, "out"); err != nil {
		return err
	}
	pubPath := *out + ".pub"
	if _, err := os.Lstat(pubPath); err == nil {
		return fmt.Errorf("%s already exists; not overwriting it", pubPath)
	}
	o, err := custody.NewOpeningKey()
	if err != nil {
		return err
	}
	enc, err := encodeOpeningKey(o)
	if err != nil {
		return err
	}
	if err := writeNew(*out, enc, 0o600); err != nil {
		return err
	}
	pub := o.PublicKey().Bytes()
	if err := writeNew(pubPath, []byte(hex.EncodeToString(pub)+"\n"), 0o644); err != nil {
		return errors.Join(err, os.Remove(*out))
	}
	fmt.Fprintf(stdout, "Opening key written to %s: keep it to yourself until the opening, which deletes it.\n", *out)
	fmt.Fprintf(stdout, "Public key: %s (for candord access request --opening-key)\nFingerprint: %s (read it to each custodian)\n", pubPath, o.PublicKey().Fingerprint())
	return nil
}

// writeNew writes a file that must not exist yet, synced.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if err := errors.Join(werr, f.Close()); err != nil {
		return errors.Join(fmt.Errorf("writing %s: %w", path, err), os.Remove(path))
	}
	return nil
}

// readFile reads a file of at most max bytes.
func readFile(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is over %d bytes: %w", path, max, candor.ErrInvalid)
	}
	return b, nil
}
