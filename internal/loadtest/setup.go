package loadtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"candor"
	"candor/api"
	"candor/internal/ceremony"
	"candor/internal/mlsx"
	"candor/internal/mlsx/mlsxtest"
	"candor/internal/pki"
	"candor/internal/server"
	"candor/internal/store"
)

// device is one simulated device.
type device struct {
	idx     int
	id      candor.DeviceID
	user    candor.UserID
	group   int
	sender  bool
	tlsCert tls.Certificate

	// MLS, during setup only.
	mls        *mlsx.Device
	keyPackage []byte
	mgroup     *mlsx.Group
}

// group is one simulated group: members[0] created it.
type group struct {
	id      candor.GroupID
	hex     string
	b64     string // as stream frames carry it
	members []*device
	senders []*device
}

// org is the organisation the run made.
type org struct {
	dir        string
	caCert     *x509.Certificate
	roots      *x509.CertPool
	sender     mlsx.ExternalSender
	devices    []*device
	groups     []*group
	validator  mlsx.Validator
	serverName string
	// archive is the organisation's archive KeyPackage, which every
	// group's first commit adds, as the server requires.
	archive []byte
}

func (o *org) dropMLS() {
	for _, d := range o.devices {
		d.mls, d.keyPackage, d.mgroup = nil, nil, nil
	}
}

// parallel runs f(0..n-1) on up to workers goroutines and returns the
// first error.
func parallel(ctx context.Context, n, workers int, f func(i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// setupOrg makes the organisation and enrols the devices through the
// store: an invitation and Store.Enrol each, with a certificate the CA
// issues exactly as enrolment does, then one KeyPackage, checked as the
// server checks uploads (mlsx.ParseKeyPackage), in the directory.
func setupOrg(ctx context.Context, cfg Config, dir string) (*org, error) {
	data := filepath.Join(dir, "candord")
	if err := server.Init(ctx, data, server.InitOptions{Org: "Load Test", Hosts: []string{"127.0.0.1"}, OpenStore: openStore}); err != nil {
		return nil, err
	}
	d, err := server.Open(ctx, data, openStore)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	// The archive, as its custodians would make it (rehearsed: the load
	// test opens nothing).
	ca, ok := d.CA.(*pki.CA)
	if !ok {
		return nil, fmt.Errorf("loadtest: the data folder's CA is a %T", d.CA)
	}
	st, _, es, err := ceremony.Rehearse(ceremony.Config{CA: ca, KeyID: "load", K: 2}, []string{"one", "two", "three"})
	if err != nil {
		return nil, err
	}
	endorsements := map[string][]byte{}
	for i, e := range es {
		endorsements[fmt.Sprint(i+1)] = e.Bytes()
	}
	if err := server.PublishArchive(data, st.KeyID(), st.Bytes(), st.KeyPackage(), endorsements); err != nil {
		return nil, err
	}
	caCert := d.CA.Certificate()
	o := &org{dir: data, caCert: caCert, roots: x509.NewCertPool(), serverName: "127.0.0.1", archive: st.KeyPackage(),
		sender: mlsx.ExternalSender{Key: &d.Sender.PublicKey, Chain: [][]byte{d.SenderCert}}}
	o.roots.AddCert(caCert)
	// Devices accept members whose certificate the organisation's CA
	// signed, as the client library's validator does.
	o.validator = mlsx.ValidatorFunc(func(_ context.Context, _ candor.GroupID, m mlsx.Member) error {
		cert, err := m.Credential.Certificate()
		if err != nil {
			return err
		}
		return cert.CheckSignatureFrom(caCert)
	})

	ngroups := cfg.Devices / cfg.GroupSize
	o.devices = make([]*device, cfg.Devices)
	o.groups = make([]*group, ngroups)
	for g := range o.groups {
		raw := make([]byte, 16)
		if _, err := rand.Read(raw); err != nil {
			return nil, err
		}
		id := candor.GroupID(raw)
		o.groups[g] = &group{id: id, hex: id.String(), b64: base64.StdEncoding.EncodeToString(raw)}
	}
	now := time.Now()
	err = parallel(ctx, cfg.Devices, cfg.Workers, func(i int) error {
		dev := &device{idx: i, user: candor.UserID(fmt.Sprintf("load-%05d", i)), group: i / cfg.GroupSize,
			sender: i%cfg.GroupSize < cfg.SendersPerGroup}
		idb := make([]byte, 8)
		if _, err := rand.Read(idb); err != nil {
			return err
		}
		dev.id = candor.DeviceID(hex.EncodeToString(idb))
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		der, err := d.CA.Issue(dev.user, dev.id, &key.PublicKey, now)
		if err != nil {
			return err
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			return err
		}
		dev.tlsCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}

		secret := make([]byte, api.InvitationSecretBytes)
		if _, err := rand.Read(secret); err != nil {
			return err
		}
		hash := sha256.Sum256(secret)
		inv := store.Invitation{ID: hex.EncodeToString(idb) + "i", User: dev.user, SecretHash: hash[:], Created: now, Expires: now.Add(time.Hour)}
		if err := d.Store.CreateInvitation(ctx, inv); err != nil {
			return err
		}
		fp := sha256.Sum256(der)
		sd := store.Device{ID: dev.id, User: dev.user, Name: "load", Certificate: der, Fingerprint: fp[:], EnrolledAt: now}
		if err := d.Store.Enrol(ctx, inv.ID, hash[:], now, sd); err != nil {
			return err
		}

		dev.mls, err = mlsx.NewDevice(ctx, mlsx.Config{Identity: mlsx.Identity{Key: key, Chain: [][]byte{der}}, Store: mlsxtest.NewStore(), Validator: o.validator})
		if err != nil {
			return err
		}
		kps, err := dev.mls.KeyPackages(ctx, 1)
		if err != nil {
			return err
		}
		info, err := mlsx.ParseKeyPackage(kps[0], now)
		if err != nil {
			return err
		}
		if info.Suite != mlsx.DefaultSuite || !bytes.Equal(info.Credential.Chain[0], der) {
			return fmt.Errorf("key package of %s is not the device's", dev.id)
		}
		dev.keyPackage = kps[0]
		kp := store.KeyPackage{Ref: info.Ref, Device: dev.id, Data: kps[0], Added: now}
		if err := d.Store.AddKeyPackages(ctx, dev.id, []store.KeyPackage{kp}, nil); err != nil {
			return err
		}
		o.devices[i] = dev
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loadtest: enrolling devices: %w", err)
	}
	for _, dev := range o.devices {
		g := o.groups[dev.group]
		g.members = append(g.members, dev)
		if dev.sender {
			g.senders = append(g.senders, dev)
		}
	}
	return o, nil
}

// httpClient is a device's HTTPS client: mutual TLS with its certificate,
// the server verified against the CA, HTTP/1.1, at most one connection
// (a device sends one request at a time, as the client library does).
func (o *org) httpClient(dev *device, localAddr net.Addr) *http.Client {
	dialer := &net.Dialer{Timeout: 30 * time.Second, LocalAddr: localAddr}
	tr := &http.Transport{
		DialContext: dialer.DialContext,
		TLSClientConfig: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			ServerName:   o.serverName,
			RootCAs:      o.roots,
			Certificates: []tls.Certificate{dev.tlsCert},
		},
		TLSHandshakeTimeout: 30 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		MaxIdleConnsPerHost: 1,
		MaxConnsPerHost:     1,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr}
}

// call sends one JSON request and decodes a 2xx answer into out.
func call(ctx context.Context, hc *http.Client, method, url string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, bytes.TrimSpace(raw))
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// makeGroups creates every group with real MLS over the real server's API:
// the creator makes the group, registers it, commits the Add of every other
// member with the Welcome, and confirms when the server accepts it. The
// members that will send (and one more, to check a decryption) join from
// the Welcome.
func makeGroups(ctx context.Context, cfg Config, o *org) error {
	c, err := startChild(ctx, TargetServer, o.dir, nil)
	if err != nil {
		return err
	}
	defer c.stop()
	base := "https://" + c.addr
	joiners := max(cfg.SendersPerGroup, 2)
	err = parallel(ctx, len(o.groups), cfg.Workers, func(gi int) error {
		g := o.groups[gi]
		creator := g.members[0]
		hc := o.httpClient(creator, nil)
		defer hc.CloseIdleConnections()
		mg, err := creator.mls.CreateGroup(ctx, g.id, mlsx.GroupOptions{ExternalSenders: []mlsx.ExternalSender{o.sender}})
		if err != nil {
			return err
		}
		if err := call(ctx, hc, "POST", base+api.PathGroups, api.CreateGroup{GroupID: []byte(g.id)}, nil); err != nil {
			return err
		}
		opts := mlsx.CommitOptions{Add: [][]byte{o.archive}}
		for _, m := range g.members[1:] {
			opts.Add = append(opts.Add, m.keyPackage)
		}
		commit, err := mg.Commit(ctx, opts)
		if err != nil {
			return err
		}
		var res api.SendResponse
		if err := call(ctx, hc, "POST", base+"/v1/groups/"+g.hex+"/messages", api.SendRequest{Message: commit.Message, Welcome: commit.Welcome}, &res); err != nil {
			return err
		}
		if _, err := mg.Confirm(ctx); err != nil {
			return err
		}
		creator.mgroup = mg
		for _, m := range g.members[1:joiners] {
			if m.mgroup, err = m.mls.Join(ctx, commit.Welcome); err != nil {
				return fmt.Errorf("joining %s: %w", g.hex, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("loadtest: making groups: %w", err)
	}
	return c.stop()
}

// messages are every rate's messages, encrypted, as POST bodies.
type messages struct {
	rates           [][]outgoing // by rate index, in the order they are due
	keys            map[string]msgRef
	ciphertextBytes int
	checked         int
}

type outgoing struct {
	sender *device
	group  *group
	body   []byte // SendRequest JSON
}

type msgRef struct {
	rate int32
	idx  int32
}

func (m *messages) total() int {
	n := 0
	for _, r := range m.rates {
		n += len(r)
	}
	return n
}

// keyChars is how much of a message's base64 identifies it: the end, which
// holds the AEAD tag.
const keyChars = 32

// encryptAll encrypts every message of every rate: message i of a rate
// goes to group i mod G, from its senders in turn.
func encryptAll(ctx context.Context, cfg Config, o *org) (*messages, error) {
	m := &messages{keys: make(map[string]msgRef)}
	G := len(o.groups)
	pad := bytes.Repeat([]byte("lorem ipsum dolor sit amet "), cfg.MessageBytes/27+1)
	for ri, rate := range cfg.Rates {
		n := int(int64(rate) * int64(cfg.Duration) / int64(time.Second))
		out := make([]outgoing, max(n, 1))
		var size atomic.Int64
		err := parallel(ctx, G, cfg.Workers, func(gi int) error {
			g := o.groups[gi]
			for i, k := gi, 0; i < len(out); i, k = i+G, k+1 {
				s := g.senders[k%len(g.senders)]
				pt := fmt.Appendf(nil, "candor-load rate %d message %d ", rate, i)
				pt = append(pt, pad[:max(cfg.MessageBytes-len(pt), 0)]...)
				ct, err := s.mgroup.Encrypt(ctx, pt)
				if err != nil {
					return err
				}
				size.Store(int64(len(ct)))
				body, err := json.Marshal(api.SendRequest{Message: ct})
				if err != nil {
					return err
				}
				out[i] = outgoing{sender: s, group: g, body: body}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("loadtest: encrypting: %w", err)
		}
		m.ciphertextBytes = int(size.Load())
		for i, msg := range out {
			k := messageKey(msg.body)
			if _, dup := m.keys[k]; dup {
				return nil, fmt.Errorf("loadtest: two messages end alike")
			}
			m.keys[k] = msgRef{rate: int32(ri), idx: int32(i)}
		}
		m.rates = append(m.rates, out)
	}
	// Check that the messages are real: another member decrypts the first
	// message of each of the first groups.
	for gi, g := range o.groups[:min(G, 10)] {
		if gi >= len(m.rates[0]) {
			break
		}
		msg := m.rates[0][gi]
		var reader *device
		for _, d := range g.members {
			if d != msg.sender && d.mgroup != nil {
				reader = d
				break
			}
		}
		if reader == nil {
			continue
		}
		var sr api.SendRequest
		if err := json.Unmarshal(msg.body, &sr); err != nil {
			return nil, err
		}
		ev, err := reader.mgroup.Process(ctx, sr.Message)
		if err != nil {
			return nil, fmt.Errorf("loadtest: a member cannot decrypt a message: %w", err)
		}
		if !bytes.HasPrefix(ev.Plaintext, []byte("candor-load ")) {
			return nil, fmt.Errorf("loadtest: a message decrypted to something else")
		}
		m.checked++
	}
	return m, nil
}

// messageKey identifies a message by the end of its base64, in a POST body
// or a stream frame alike.
func messageKey(body []byte) string {
	b64, ok := jsonString(body, `"message":"`)
	if !ok || len(b64) < keyChars {
		return ""
	}
	return string(b64[len(b64)-keyChars:])
}

// jsonString finds key (with its opening quote) in b and returns the string
// value after it, which must hold no escapes (base64 holds none).
func jsonString(b []byte, key string) ([]byte, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return nil, false
	}
	b = b[i+len(key):]
	j := bytes.IndexByte(b, '"')
	if j < 0 {
		return nil, false
	}
	return b[:j], true
}
