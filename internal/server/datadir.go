package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"candor"
	"candor/internal/pki"
	"candor/internal/store"
)

// The files of a data folder. Keys are mode 0600 and never leave it.
const (
	FileCACert     = "ca.pem"
	FileCAKey      = "ca.key"
	FileServerCert = "server.pem"
	FileServerKey  = "server.key"
	FileSenderCert = "sender.pem"
	FileSenderKey  = "sender.key"
	FileDB         = "candor.db"
)

// The external sender's certificate subject.
const (
	senderUser   candor.UserID   = "candord"
	senderDevice candor.DeviceID = "external-sender"
)

// Validity periods of what Init makes.
const (
	serverLifetime = 2 * 365 * 24 * time.Hour
	senderLifetime = pki.CALifetime
)

// DefaultHosts are the names the server certificate is for when Init is
// given none.
var DefaultHosts = []string{"localhost", "127.0.0.1"}

// StoreOpener opens (creating if need be) the store at path.
// sqlstore.Open is one.
type StoreOpener func(ctx context.Context, path string) (store.Store, error)

// InitOptions configure Init.
type InitOptions struct {
	// Org names the organisation in the CA's certificate. Required.
	Org string
	// Hosts are the DNS names and IP addresses the server certificate is
	// for. Nil means DefaultHosts.
	Hosts []string
	// Now tells the time. Nil means time.Now.
	Now func() time.Time
	// OpenStore creates the database. Required.
	OpenStore StoreOpener
}

// Init makes a new organisation in dir: the CA, the server's TLS
// certificate, the MLS external sender's key and certificate, and the
// database. It refuses, wrapping candor.ErrConflict, a folder that already
// holds any of these files, and removes what it wrote if it fails.
func Init(ctx context.Context, dir string, opts InitOptions) (err error) {
	if opts.Org == "" || opts.OpenStore == nil {
		return fmt.Errorf("server: init needs an organisation name and a store: %w", candor.ErrInvalid)
	}
	hosts := opts.Hosts
	if len(hosts) == 0 {
		hosts = DefaultHosts
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	for _, f := range []string{FileCACert, FileCAKey, FileServerCert, FileServerKey, FileSenderCert, FileSenderKey, FileDB, FileAccessKey, FileAccessPub, FileAccessDB, FileJournalKey, FileJournalPub, FileJournalDB} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			return fmt.Errorf("server: %s already holds an organisation (%s exists): %w", dir, f, candor.ErrConflict)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("server: %w", err)
		}
	}
	var written []string
	defer func() {
		if err != nil {
			for _, f := range written {
				_ = os.Remove(f)
			}
		}
	}()
	write := func(name, blockType string, der []byte, mode os.FileMode) error {
		path := filepath.Join(dir, name)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return fmt.Errorf("server: %w", err)
		}
		written = append(written, path)
		if err := pem.Encode(f, &pem.Block{Type: blockType, Bytes: der}); err != nil {
			f.Close()
			return fmt.Errorf("server: writing %s: %w", name, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("server: writing %s: %w", name, err)
		}
		return f.Close()
	}
	writeKey := func(name string, key *ecdsa.PrivateKey) error {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return fmt.Errorf("server: %w", err)
		}
		return write(name, "PRIVATE KEY", der, 0o600)
	}

	t := now()
	ca, err := pki.NewCA(opts.Org, t)
	if err != nil {
		return fmt.Errorf("server: making the CA: %w", err)
	}
	serverKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	serverCert, err := ca.IssueServer(hosts, &serverKey.PublicKey, t, t.Add(serverLifetime))
	if err != nil {
		return fmt.Errorf("server: issuing the server certificate: %w", err)
	}
	senderKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	senderCert, err := ca.IssueUntil(senderUser, senderDevice, &senderKey.PublicKey, t, t.Add(senderLifetime))
	if err != nil {
		return fmt.Errorf("server: issuing the external-sender certificate: %w", err)
	}
	for _, step := range []func() error{
		func() error { return writeKey(FileCAKey, ca.PrivateKey()) },
		func() error { return write(FileCACert, "CERTIFICATE", ca.Certificate().Raw, 0o644) },
		func() error { return writeKey(FileServerKey, serverKey) },
		func() error { return write(FileServerCert, "CERTIFICATE", serverCert, 0o644) },
		func() error { return writeKey(FileSenderKey, senderKey) },
		func() error { return write(FileSenderCert, "CERTIFICATE", senderCert, 0o644) },
		func() error {
			written = append(written, filepath.Join(dir, FileAccessKey), filepath.Join(dir, FileAccessPub))
			_, err := createLogKey(dir, hosts[0], accessLogFiles)
			return err
		},
		func() error {
			written = append(written, filepath.Join(dir, FileJournalKey), filepath.Join(dir, FileJournalPub))
			_, err := createLogKey(dir, hosts[0], journalLogFiles)
			return err
		},
	} {
		if err := step(); err != nil {
			return err
		}
	}
	dbPath := filepath.Join(dir, FileDB)
	written = append(written, dbPath, dbPath+"-wal", dbPath+"-shm")
	st, err := opts.OpenStore(ctx, dbPath)
	if err != nil {
		return fmt.Errorf("server: creating the database: %w", err)
	}
	return st.Close()
}

// DataDir is an organisation's data folder, opened.
type DataDir struct {
	Dir        string
	CA         CA
	Sender     *ecdsa.PrivateKey
	SenderCert []byte // DER
	TLSCert    tls.Certificate
	// Hosts are the names the server certificate is for, in its order.
	Hosts  []string
	Store  store.Store
	Access *AccessLog
	// Journal is the journal-heads log, whose checkpoints the server
	// signs over every group's chain head.
	Journal *JournalLog
	// Archive is the organisation's archive, nil until the custody
	// ceremony has been held (LoadArchive).
	Archive *Archive
}

// Open loads a data folder made by Init and opens its database. It
// refuses private keys that others than their owner may read.
func Open(ctx context.Context, dir string, openStore StoreOpener) (*DataDir, error) {
	if openStore == nil {
		return nil, fmt.Errorf("server: open needs a store: %w", candor.ErrInvalid)
	}
	caCert, err := readCert(dir, FileCACert)
	if err != nil {
		return nil, err
	}
	caKey, err := readKey(dir, FileCAKey)
	if err != nil {
		return nil, err
	}
	ca, err := pki.Load(caCert.Raw, caKey)
	if err != nil {
		return nil, fmt.Errorf("server: %s and %s: %w", FileCACert, FileCAKey, err)
	}
	serverCert, err := readCert(dir, FileServerCert)
	if err != nil {
		return nil, err
	}
	serverKey, err := readKey(dir, FileServerKey)
	if err != nil {
		return nil, err
	}
	senderCert, err := readCert(dir, FileSenderCert)
	if err != nil {
		return nil, err
	}
	senderKey, err := readKey(dir, FileSenderKey)
	if err != nil {
		return nil, err
	}
	for _, c := range []*x509.Certificate{serverCert, senderCert} {
		if err := c.CheckSignatureFrom(caCert); err != nil {
			return nil, fmt.Errorf("server: a certificate in %s is not from its CA: %w", dir, candor.ErrInvalid)
		}
	}
	if pub, ok := serverCert.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&serverKey.PublicKey) {
		return nil, fmt.Errorf("server: %s does not match %s: %w", FileServerKey, FileServerCert, candor.ErrInvalid)
	}
	hosts := append([]string(nil), serverCert.DNSNames...)
	for _, ip := range serverCert.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	archive, err := LoadArchive(dir)
	if err != nil && !errors.Is(err, ErrNoArchive) {
		return nil, err
	}
	// Folders made before the access log or the journal-heads log
	// existed get their keys now.
	if len(hosts) == 0 {
		return nil, fmt.Errorf("server: %s names no host: %w", FileServerCert, candor.ErrInvalid)
	}
	for _, f := range []logFiles{accessLogFiles, journalLogFiles} {
		if _, err := createLogKey(dir, hosts[0], f); err != nil {
			return nil, err
		}
	}
	accessLog, err := OpenAccessLog(ctx, dir)
	if err != nil {
		return nil, err
	}
	journalLog, err := OpenJournalLog(ctx, dir)
	if err != nil {
		return nil, errors.Join(err, accessLog.Close())
	}
	st, err := openStore(ctx, filepath.Join(dir, FileDB))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("server: opening the database: %w", err), accessLog.Close(), journalLog.Close())
	}
	return &DataDir{
		Dir:        dir,
		CA:         ca,
		Sender:     senderKey,
		SenderCert: senderCert.Raw,
		TLSCert:    tls.Certificate{Certificate: [][]byte{serverCert.Raw, caCert.Raw}, PrivateKey: serverKey, Leaf: serverCert},
		Hosts:      hosts,
		Store:      st,
		Access:     accessLog,
		Journal:    journalLog,
		Archive:    archive,
	}, nil
}

// Config returns a server configuration with the folder's store, CA and
// external sender filled in.
func (d *DataDir) Config() Config {
	return Config{Store: d.Store, CA: d.CA, Sender: d.Sender, SenderCert: d.SenderCert, Access: d.Access, Journal: d.Journal, Archive: d.Archive}
}

// Close closes the databases. The journal-heads log is closed first: its
// last batch of heads is read from the store.
func (d *DataDir) Close() error {
	jerr := d.Journal.Close()
	return errors.Join(jerr, d.Store.Close(), d.Access.Close())
}

func readPEM(dir, name, blockType string) ([]byte, os.FileInfo, error) {
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("server: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("server: %w", err)
	}
	block, rest := pem.Decode(b)
	if block == nil || block.Type != blockType || len(rest) != 0 {
		return nil, nil, fmt.Errorf("server: %s: not one PEM %s: %w", path, blockType, candor.ErrInvalid)
	}
	return block.Bytes, fi, nil
}

func readCert(dir, name string) (*x509.Certificate, error) {
	der, _, err := readPEM(dir, name, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("server: %s: %w: %v", name, candor.ErrInvalid, err)
	}
	return c, nil
}

func readKey(dir, name string) (*ecdsa.PrivateKey, error) {
	der, fi, err := readPEM(dir, name, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("server: %s is readable by others than its owner (mode %v); chmod 600 it: %w",
			filepath.Join(dir, name), fi.Mode().Perm(), candor.ErrPermission)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("server: %s: %w: %v", name, candor.ErrInvalid, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("server: %s: not an ECDSA P-256 key: %w", name, candor.ErrInvalid)
	}
	return ek, nil
}
