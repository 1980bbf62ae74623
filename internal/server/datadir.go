package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
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
	caLifetime     = 10 * 365 * 24 * time.Hour
	serverLifetime = 2 * 365 * 24 * time.Hour
	senderLifetime = caLifetime
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
	for _, f := range []string{FileCACert, FileCAKey, FileServerCert, FileServerKey, FileSenderCert, FileSenderKey, FileDB} {
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
	ca, err := newOrgCA(opts.Org, t)
	if err != nil {
		return err
	}
	serverKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	serverCert, err := ca.issueServer(hosts, &serverKey.PublicKey, t)
	if err != nil {
		return err
	}
	senderKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	senderCert, err := ca.issue(senderUser, senderDevice, &senderKey.PublicKey, t, senderLifetime)
	if err != nil {
		return err
	}
	for _, step := range []func() error{
		func() error { return writeKey(FileCAKey, ca.key) },
		func() error { return write(FileCACert, "CERTIFICATE", ca.cert.Raw, 0o644) },
		func() error { return writeKey(FileServerKey, serverKey) },
		func() error { return write(FileServerCert, "CERTIFICATE", serverCert, 0o644) },
		func() error { return writeKey(FileSenderKey, senderKey) },
		func() error { return write(FileSenderCert, "CERTIFICATE", senderCert, 0o644) },
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
	Hosts []string
	Store store.Store
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
	if pub, ok := caCert.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&caKey.PublicKey) {
		return nil, fmt.Errorf("server: %s does not match %s: %w", FileCAKey, FileCACert, candor.ErrInvalid)
	}
	ca := &orgCA{key: caKey, cert: caCert}
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
	st, err := openStore(ctx, filepath.Join(dir, FileDB))
	if err != nil {
		return nil, fmt.Errorf("server: opening the database: %w", err)
	}
	return &DataDir{
		Dir:        dir,
		CA:         ca,
		Sender:     senderKey,
		SenderCert: senderCert.Raw,
		TLSCert:    tls.Certificate{Certificate: [][]byte{serverCert.Raw, caCert.Raw}, PrivateKey: serverKey, Leaf: serverCert},
		Hosts:      hosts,
		Store:      st,
	}, nil
}

// Config returns a server configuration with the folder's store, CA and
// external sender filled in.
func (d *DataDir) Config() Config {
	return Config{Store: d.Store, CA: d.CA, Sender: d.Sender, SenderCert: d.SenderCert}
}

// Close closes the database.
func (d *DataDir) Close() error { return d.Store.Close() }

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

// orgCA is the organisation's CA loaded from a data folder. It issues
// device certificates with exactly the profile of pki.CA.Issue (pki cannot
// yet load a stored CA or issue a TLS server certificate; when it can,
// orgCA gives way to it).
type orgCA struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

// newOrgCA makes a CA with pki.NewCA's profile.
func newOrgCA(org string, now time.Time) (*orgCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{org}, CommonName: org + " device CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("server: making the CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("server: making the CA: %w", err)
	}
	return &orgCA{key: key, cert: cert}, nil
}

func (c *orgCA) Certificate() *x509.Certificate { return c.cert }

// Issue certifies pub as device of user, like pki.CA.Issue.
func (c *orgCA) Issue(user candor.UserID, device candor.DeviceID, pub *ecdsa.PublicKey, now time.Time) ([]byte, error) {
	return c.issue(user, device, pub, now, pki.DeviceCertLifetime)
}

func (c *orgCA) issue(user candor.UserID, device candor.DeviceID, pub *ecdsa.PublicKey, now time.Time, lifetime time.Duration) ([]byte, error) {
	if user == "" || device == "" {
		return nil, fmt.Errorf("server: user and device must be named: %w", candor.ErrInvalid)
	}
	if pub == nil || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("server: device key must be ECDSA P-256: %w", candor.ErrInvalid)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: c.cert.Subject.Organization, CommonName: string(user), OrganizationalUnit: []string{string(device)}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return x509.CreateCertificate(rand.Reader, tmpl, c.cert, pub, c.key)
}

// issueServer certifies pub as the TLS server for hosts.
func (c *orgCA) issueServer(hosts []string, pub *ecdsa.PublicKey, now time.Time) ([]byte, error) {
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: c.cert.Subject.Organization, CommonName: hosts[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(serverLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, pub, c.key)
	if err != nil {
		return nil, fmt.Errorf("server: issuing the server certificate: %w", err)
	}
	return der, nil
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	return n, nil
}
