package client

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"candor"
)

// The profile folder of one enrolled device. Everything in it is private to
// its owner: the folder is mode 0700, the key and the database 0600.
const (
	fileKey         = "device.key"   // the device's P-256 key, PKCS #8 PEM
	fileCertificate = "device.pem"   // its certificate, PEM
	fileCA          = "ca.pem"       // the organisation's CA certificate, PEM
	fileProfile     = "profile.json" // server address, user, device id; written last
	fileDatabase    = "device.db"    // MLS state and history (internal/devstore)
	fileSender      = "sender.pem"   // the server's external-sender certificate
)

// profile is what profile.json holds.
type profile struct {
	Server string          `json:"server"` // host:port
	User   candor.UserID   `json:"user"`
	Device candor.DeviceID `json:"device"`
	Name   string          `json:"name"` // the device's display name
}

// identity is a profile read from its folder.
type identity struct {
	profile
	key    *ecdsa.PrivateKey
	cert   *x509.Certificate
	ca     *x509.Certificate
	sender *x509.Certificate // the server's external-sender certificate
}

// enrolled reports whether home holds a profile.
func enrolled(home string) (bool, error) {
	_, err := os.Stat(filepath.Join(home, fileProfile))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func loadIdentity(home string) (*identity, error) {
	raw, err := os.ReadFile(filepath.Join(home, fileProfile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotEnrolled
	}
	if err != nil {
		return nil, fmt.Errorf("reading profile: %w", err)
	}
	id := &identity{}
	if err := json.Unmarshal(raw, &id.profile); err != nil || id.Server == "" || id.User == "" || id.Device == "" {
		return nil, fmt.Errorf("profile %s is damaged: %w", filepath.Join(home, fileProfile), candor.ErrInvalid)
	}
	keyDER, err := readPEM(filepath.Join(home, fileKey), "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return nil, fmt.Errorf("device key: %w: %v", candor.ErrInvalid, err)
	}
	var ok bool
	if id.key, ok = k.(*ecdsa.PrivateKey); !ok || id.key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("device key is not ECDSA P-256: %w", candor.ErrInvalid)
	}
	if id.cert, err = readCertificate(filepath.Join(home, fileCertificate)); err != nil {
		return nil, err
	}
	if id.ca, err = readCertificate(filepath.Join(home, fileCA)); err != nil {
		return nil, err
	}
	if id.sender, err = readCertificate(filepath.Join(home, fileSender)); err != nil {
		return nil, err
	}
	if err := id.sender.CheckSignatureFrom(id.ca); err != nil {
		return nil, fmt.Errorf("%s is not from the organisation's CA: %w", fileSender, candor.ErrInvalid)
	}
	if _, ok := id.sender.PublicKey.(*ecdsa.PublicKey); !ok {
		return nil, fmt.Errorf("%s: key is not ECDSA: %w", fileSender, candor.ErrInvalid)
	}
	if pub, ok := id.cert.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&id.key.PublicKey) {
		return nil, fmt.Errorf("device certificate does not certify the device key: %w", candor.ErrInvalid)
	}
	return id, nil
}

// save writes the identity into home: the secrets first, profile.json last,
// so that a folder with a profile is complete.
func (id *identity) save(home string) error {
	if err := os.MkdirAll(home, 0o700); err != nil {
		return fmt.Errorf("creating profile folder: %w", err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		return fmt.Errorf("profile folder: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(id.key)
	if err != nil {
		return fmt.Errorf("encoding device key: %w", err)
	}
	prof, err := json.MarshalIndent(id.profile, "", "\t")
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
	}{
		{fileKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})},
		{fileCertificate, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: id.cert.Raw})},
		{fileCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: id.ca.Raw})},
		{fileSender, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: id.sender.Raw})},
		{fileProfile, append(prof, '\n')},
	}
	for _, f := range files {
		if err := writeFile(filepath.Join(home, f.name), f.data); err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes data to path (mode 0600) through a temporary file and a
// rename, so that path holds either nothing or all of data.
func writeFile(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return errors.Join(fmt.Errorf("writing %s: %w", path, err), f.Close())
	}
	if _, err := f.Write(data); err != nil {
		return errors.Join(fmt.Errorf("writing %s: %w", path, err), f.Close())
	}
	if err := f.Sync(); err != nil {
		return errors.Join(fmt.Errorf("writing %s: %w", path, err), f.Close())
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func readPEM(path, typ string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is missing: %w", path, ErrNotEnrolled)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	b, _ := pem.Decode(raw)
	if b == nil || b.Type != typ {
		return nil, fmt.Errorf("%s holds no %s: %w", path, typ, candor.ErrInvalid)
	}
	return b.Bytes, nil
}

func readCertificate(path string) (*x509.Certificate, error) {
	der, err := readPEM(path, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, candor.ErrInvalid, err)
	}
	return cert, nil
}
