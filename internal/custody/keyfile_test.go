package custody

import (
	"bytes"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"testing"

	"candor"
)

func TestKeyFile(t *testing.T) {
	t.Parallel()
	k := newKeys(t, 1)[0]
	pass := []byte("correct horse battery staple")
	file, err := EncryptKeyFile(k, pass)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecryptKeyFile(file, pass)
	if err != nil {
		t.Fatal(err)
	}
	if !got.PublicKey().Equal(k.PublicKey()) {
		t.Fatal("key file opened to another key")
	}
	gh, gs, _ := got.scalars()
	kh, ks, _ := k.scalars()
	if !bytes.Equal(gh, kh) || !bytes.Equal(gs, ks) {
		t.Fatal("key file private scalars differ")
	}
	for _, secret := range [][]byte{kh, ks, pass} {
		if bytes.Contains(file, secret) {
			t.Fatal("key file holds a secret in the clear")
		}
	}

	// Each alteration of the encrypted file below keeps its structure
	// valid, so the failure comes from the passphrase check.
	block, _ := pem.Decode(file)
	alter := func(f func(b []byte)) []byte {
		b := append([]byte(nil), block.Bytes...)
		f(b)
		return pem.EncodeToMemory(&pem.Block{Type: keyFilePEMType, Bytes: b})
	}
	const itersAt, saltAt, pubAt = 6, 10, 26
	otherPub := newKeys(t, 1)[0].PublicKey()
	for _, tc := range []struct {
		name string
		file []byte
		pass []byte
		want error
	}{
		{"wrong passphrase", file, []byte("correct horse battery stapler"), ErrPassphrase},
		{"iterations raised", alter(func(b []byte) { binary.BigEndian.PutUint32(b[itersAt:], keyFileIterations+1) }), pass, ErrPassphrase},
		{"salt altered", alter(func(b []byte) { b[saltAt] ^= 1 }), pass, ErrPassphrase},
		{"public key swapped", alter(func(b []byte) { copy(b[pubAt:], otherPub.raw[:]) }), pass, ErrPassphrase},
		{"ciphertext altered", alter(func(b []byte) { b[len(b)-1] ^= 1 }), pass, ErrPassphrase},
		{"iterations too low", alter(func(b []byte) { binary.BigEndian.PutUint32(b[itersAt:], 1000) }), pass, ErrMalformed},
		{"unknown kdf", alter(func(b []byte) { b[5] = 2 }), pass, ErrMalformed},
		{"future version", alter(func(b []byte) { b[4] = 2 }), pass, ErrMalformed},
		{"not PEM", block.Bytes, pass, ErrMalformed},
		{"public key file", pem.EncodeToMemory(&pem.Block{Type: keyFilePEMType, Bytes: k.PublicKey().Bytes()}), pass, ErrMalformed},
		{"empty passphrase", file, nil, candor.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecryptKeyFile(tc.file, tc.pass)
			if !errors.Is(err, tc.want) || got != nil {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestKeyFileShortPassphrase(t *testing.T) {
	t.Parallel()
	k := newKeys(t, 1)[0]
	if _, err := EncryptKeyFile(k, []byte("eleven char")); !errors.Is(err, candor.ErrInvalid) {
		t.Fatalf("11-byte passphrase: %v; want candor.ErrInvalid", err)
	}
}
