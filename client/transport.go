package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"candor/api"
)

// maxResponseBytes bounds what the client reads of one response: a page of
// logPage entries of at most api.MaxMessageBytes each, in base64, with room.
const maxResponseBytes = 64 << 20

// logPage is how many log entries the client asks for at a time: fewer than
// api.MaxLogPage, so that a page of large messages stays a few megabytes.
const logPage = 100

// requestTimeout bounds one request that the caller's context does not.
const requestTimeout = 60 * time.Second

// identityError is a server certificate that does not chain to the
// organisation's CA.
type identityError struct{ err error }

func (e *identityError) Error() string { return "server certificate: " + e.err.Error() }
func (e *identityError) Unwrap() error { return e.err }

// pinnedTLS is the TLS configuration for enrolment, before the device holds
// the CA certificate: the invitation names the CA only by the SHA-256 of its
// DER, so the server must send the CA certificate in its chain. The
// standard verification has no root to start from, so it is replaced, not
// skipped: VerifyConnection finds the pinned CA among the certificates the
// server sent and verifies the server's certificate against it, for the
// server's name and for server authentication, as crypto/tls would.
func pinnedTLS(fingerprint []byte, serverName string) *tls.Config {
	fp := bytes.Clone(fingerprint)
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		ServerName:         serverName,
		InsecureSkipVerify: true, // replaced by VerifyConnection, never skipped
		VerifyConnection: func(cs tls.ConnectionState) error {
			if err := verifyPinned(cs.PeerCertificates, fp, serverName); err != nil {
				return &identityError{err}
			}
			return nil
		},
	}
}

func verifyPinned(chain []*x509.Certificate, fingerprint []byte, serverName string) error {
	if len(chain) == 0 {
		return errors.New("the server sent no certificate")
	}
	var root *x509.Certificate
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		sum := sha256.Sum256(c.Raw)
		if subtle.ConstantTimeCompare(sum[:], fingerprint) == 1 {
			root = c
		} else {
			inter.AddCert(c)
		}
	}
	if root == nil {
		return errors.New("the server did not present the invitation's CA certificate")
	}
	if !root.IsCA {
		return errors.New("the invitation's CA certificate is not a CA")
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	_, err := chain[0].Verify(x509.VerifyOptions{
		DNSName:       serverName,
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err
}

// deviceTLS is the TLS configuration of an enrolled device: mutual TLS with
// its certificate, the server verified against the organisation's CA.
func deviceTLS(id *identity, serverName string) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(id.ca)
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: serverName,
		RootCAs:    roots,
		Certificates: []tls.Certificate{{
			Certificate: [][]byte{id.cert.Raw},
			PrivateKey:  id.key,
			Leaf:        id.cert,
		}},
	}
}

// transport speaks HTTPS to one server.
type transport struct {
	base string // https://host:port
	hc   *http.Client
}

func newTransport(server string, cfg *tls.Config) (*transport, error) {
	host, _, err := net.SplitHostPort(server)
	if err != nil || host == "" {
		return nil, fmt.Errorf("server address %q: %w", server, ErrProtocol)
	}
	cfg.ServerName = host
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     cfg,
		TLSHandshakeTimeout: 15 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		MaxIdleConnsPerHost: 4,
		// HTTP/1.1 only: the live stream is a WebSocket upgrade on the same
		// client.
		ForceAttemptHTTP2: false,
	}
	return &transport{base: "https://" + server, hc: &http.Client{Transport: tr}}, nil
}

func (t *transport) close() { t.hc.CloseIdleConnections() }

// path fills an api path's parameters, escaped.
func path(p string, params ...string) string {
	for i := 0; i+1 < len(params); i += 2 {
		p = strings.Replace(p, "{"+params[i]+"}", url.PathEscape(params[i+1]), 1)
	}
	return p
}

// call sends one request with in as its JSON body (none if nil) and decodes
// a successful answer into out (unless nil). Error answers become
// *ServerError; failures to reach the server wrap ErrUnreachable or
// ErrServerIdentity.
func (t *transport) call(ctx context.Context, method, p string, in, out any) error {
	op := method + " " + p
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		body = bytes.NewReader(b)
	}
	// The request's own timeout is a network failure (ErrUnreachable: the
	// request may or may not have landed); only the caller's cancellation
	// is reported as such.
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, t.base+p, body)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := t.hc.Do(req)
	if err != nil {
		return netError(parent, op, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return netError(parent, op, err)
	}
	if resp.StatusCode/100 != 2 {
		return responseError(op, resp.StatusCode, raw)
	}
	if out == nil || len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s: answer does not parse: %w: %v", op, ErrProtocol, err)
	}
	return nil
}

// responseError turns an error answer into a *ServerError.
func responseError(op string, status int, raw []byte) error {
	var e api.Error
	if err := json.Unmarshal(raw, &e); err != nil || e.Code == "" {
		se := &ServerError{Op: op, Status: status, err: ErrProtocol}
		if status >= 500 {
			se.err = ErrServer
		}
		return se
	}
	return &ServerError{Op: op, Status: status, Code: e.Code, Message: e.Message, Epoch: e.Epoch, Seq: e.Seq, err: sentinelFor(e.Code)}
}

// netError classifies a failure to exchange a request with the server.
func netError(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%s: %w", op, err)
	}
	var ie *identityError
	var ve *tls.CertificateVerificationError
	var ue x509.UnknownAuthorityError
	var he x509.HostnameError
	if errors.As(err, &ie) || errors.As(err, &ve) || errors.As(err, &ue) || errors.As(err, &he) {
		return fmt.Errorf("%w (%s: %v)", ErrServerIdentity, op, err)
	}
	return fmt.Errorf("%w (%s: %v)", ErrUnreachable, op, err)
}

// apiCode returns the catalogued code of a server error, or "".
func apiCode(err error) api.Code {
	var se *ServerError
	if errors.As(err, &se) {
		return se.Code
	}
	return ""
}

// serverError returns the *ServerError in err, or nil.
func serverError(err error) *ServerError {
	var se *ServerError
	if errors.As(err, &se) {
		return se
	}
	return nil
}
