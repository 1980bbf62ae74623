package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"candor"
	"candor/internal/devkey"
)

// The profile folder of one enrolled device. Everything in it is private to
// its owner: the folder is mode 0700, every file 0600. Its secrets are
// sealed under the device's storage key (internal/devkey): the device's
// private key here, the MLS state and the history in the database. The
// storage key itself is in the OS keyring, in storage.key, or wrapped under
// a passphrase in profile.json, as profile.json's "storage" says.
const (
	fileKey         = "device.key"   // the device's P-256 key, PKCS #8, sealed, PEM
	fileCertificate = "device.pem"   // its certificate, PEM
	fileCA          = "ca.pem"       // the organisation's CA certificate, PEM
	fileProfile     = "profile.json" // server address, user, device id; written last
	fileDatabase    = "device.db"    // MLS state and history (internal/devstore)
	fileSender      = "sender.pem"   // the server's external-sender certificate
)

// profile is what profile.json holds.
type profile struct {
	Server  string          `json:"server"` // host:port
	User    candor.UserID   `json:"user"`
	Device  candor.DeviceID `json:"device"`
	Name    string          `json:"name"`    // the device's display name
	Storage devkey.Record   `json:"storage"` // where the storage key is; no secret in the clear
	Archive []byte          `json:"archive"` // SHA-256 of the archive statement pinned, at enrolment or since
	// ArchivePrevious are the SHA-256s of the archive statements the pin
	// moved from, oldest first (client/archive.go).
	ArchivePrevious [][]byte `json:"archive_previous,omitempty"`
}

// EnvPassphrase is the environment variable Config.Passphrase defaults to.
const EnvPassphrase = "CANDOR_PASSPHRASE"

// Passphrase is a passphrase a person chose for a profile. It never
// prints, whether formatted or logged.
type Passphrase string

// String never shows the passphrase.
func (Passphrase) String() string { return "client.Passphrase(redacted)" }

// GoString never shows the passphrase, even under %#v.
func (Passphrase) GoString() string { return "client.Passphrase(redacted)" }

// LogValue never shows the passphrase.
func (Passphrase) LogValue() slog.Value { return slog.StringValue("redacted") }

// Errors opening a profile's storage; each wraps candor.ErrPermission.
var (
	// ErrWrongKey: the passphrase is wrong, or the profile's key file or
	// keyring entry is not the key its data was sealed under. Nothing was
	// changed.
	ErrWrongKey = devkey.ErrWrongKey
	// ErrPassphraseNeeded: the profile's storage is protected by a
	// passphrase and none was given.
	ErrPassphraseNeeded = devkey.ErrPassphraseNeeded
)

// purposeDeviceKey is the storage key's purpose for the device's private
// key; the database has its own (see internal/devstore), so neither's
// records open as the other's.
const purposeDeviceKey = "device private key"

// keyStorage is the log attribute of the storage key's method.
const keyStorage = "storage"

// storageKey is a device's storage key and where it is kept.
type storageKey struct {
	key devkey.Key
	rec devkey.Record
}

// storageConfig is where home's storage key may be kept or found.
func storageConfig(home string, cfg Config) devkey.Config {
	pass := string(cfg.Passphrase)
	if pass == "" {
		pass = os.Getenv(EnvPassphrase)
	}
	label := home
	if abs, err := filepath.Abs(home); err == nil {
		label = abs
	}
	return devkey.Config{
		Dir:        home,
		Passphrase: pass,
		Keyring:    devkey.System(),
		Label:      "device storage key of " + label,
		Logger:     cfg.Logger,
	}
}

// createStorageKey makes the storage key of a profile being enrolled in
// home, creating the folder (mode 0700) for its key file.
func createStorageKey(ctx context.Context, home string, cfg Config) (storageKey, error) {
	if err := makeProfileFolder(home); err != nil {
		return storageKey{}, err
	}
	key, rec, err := devkey.Create(ctx, storageConfig(home, cfg))
	if err != nil {
		return storageKey{}, fmt.Errorf("making the device's storage key: %w", err)
	}
	cfg.Logger.InfoContext(ctx, "made the device's storage key", keyStorage, string(rec.Method))
	return storageKey{key: key, rec: rec}, nil
}

// discard removes the key of an enrolment that failed before its profile
// was written.
func (sk storageKey) discard(ctx context.Context, home string, cfg Config) {
	// Not cancelled with ctx: a cancelled enrolment is one to clean up.
	ctx = context.WithoutCancel(ctx)
	if err := devkey.Discard(ctx, storageConfig(home, cfg), sk.rec); err != nil {
		cfg.Logger.WarnContext(ctx, "could not remove the storage key of a failed enrolment", keyStorage, string(sk.rec.Method), keyErr, err)
	}
}

// deviceKeyAD binds the sealed device key to the device it belongs to.
func deviceKeyAD(p profile) []byte {
	return fmt.Appendf(nil, "%s\x00%s\x00%s", fileKey, p.User, p.Device)
}

// sealedKeyPEM is the PEM type of the sealed device key.
const sealedKeyPEM = "CANDOR SEALED PRIVATE KEY"

// identity is a profile read from its folder.
type identity struct {
	profile
	storage devkey.Key
	key     *ecdsa.PrivateKey
	cert    *x509.Certificate
	ca      *x509.Certificate
	sender  *x509.Certificate // the server's external-sender certificate
}

// enrolled reports whether home holds a profile.
func enrolled(home string) (bool, error) {
	_, err := os.Stat(filepath.Join(home, fileProfile))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// loadIdentity reads the profile in home, obtains its storage key the way
// the profile records and opens the device's private key with it.
func loadIdentity(ctx context.Context, home string, cfg Config) (*identity, error) {
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
	if id.Storage.Method == "" {
		return nil, fmt.Errorf("profile %s was made by a candor that did not encrypt local storage; enrol this device again in a new profile folder: %w", home, candor.ErrInvalid)
	}
	if len(id.Archive) != sha256.Size {
		return nil, fmt.Errorf("profile %s was made by a candor that did not pin the organisation's archive; enrol this device again in a new profile folder: %w", home, candor.ErrInvalid)
	}
	if id.storage, err = devkey.Load(ctx, storageConfig(home, cfg), id.Storage); err != nil {
		return nil, fmt.Errorf("opening the device's storage key: %w", err)
	}
	sealed, err := readPEM(filepath.Join(home, fileKey), sealedKeyPEM)
	if err != nil {
		return nil, err
	}
	box, err := devkey.NewSealer(id.storage, purposeDeviceKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := box.Open(deviceKeyAD(id.profile), sealed)
	if err != nil {
		return nil, fmt.Errorf("%s does not open under the profile's storage key: %w", filepath.Join(home, fileKey), ErrWrongKey)
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
// The device key is sealed under the storage key, which id must hold.
func (id *identity) save(home string) error {
	if err := makeProfileFolder(home); err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(id.key)
	if err != nil {
		return fmt.Errorf("encoding device key: %w", err)
	}
	box, err := devkey.NewSealer(id.storage, purposeDeviceKey)
	if err != nil {
		return err
	}
	prof, err := json.MarshalIndent(id.profile, "", "\t")
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
	}{
		{fileKey, pem.EncodeToMemory(&pem.Block{Type: sealedKeyPEM, Bytes: box.Seal(deviceKeyAD(id.profile), keyDER)})},
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

// saveProfile rewrites profile.json alone, for a change of what it
// records (a new archive pin); the other files stay as they are.
func (id *identity) saveProfile(home string) error {
	prof, err := json.MarshalIndent(id.profile, "", "\t")
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(home, fileProfile), append(prof, '\n'))
}

// makeProfileFolder creates home, private to its owner.
func makeProfileFolder(home string) error {
	if err := os.MkdirAll(home, 0o700); err != nil {
		return fmt.Errorf("creating profile folder: %w", err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		return fmt.Errorf("profile folder: %w", err)
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
