package loadtest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"candor"
	"candor/api"
)

// relay is the baseline: a bare WebSocket relay of the same messages over
// the same TLS, with the server's endpoints and frames but no storage and
// no checks. A POST to a group's messages is decoded, numbered, encoded as
// an entry frame once, and handed to the live stream of every device that
// subscribed to the group (GET /v1/stream?group=HEX; the server knows a
// device's groups from its database, the relay is told). A stream that
// falls 256 frames behind is closed, as the server's is. Acks are read and
// dropped.
type relay struct {
	life   context.Context
	mu     sync.Mutex
	groups map[candor.GroupID]*relayGroup
}

type relayGroup struct {
	mu   sync.Mutex // held while numbering and fanning out, as the server holds its group lock
	seq  uint64
	subs map[*relaySub]struct{}
}

type relaySub struct {
	frames chan []byte
	cancel context.CancelFunc
}

const relayBuffer = 256

func newRelay(life context.Context) *relay {
	return &relay{life: life, groups: make(map[candor.GroupID]*relayGroup)}
}

func (r *relay) group(id candor.GroupID) *relayGroup {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.groups[id]
	if g == nil {
		g = &relayGroup{subs: make(map[*relaySub]struct{})}
		r.groups[id] = g
	}
	return g
}

func (r *relay) handler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("POST "+api.PathMessages, r.handleSend)
	m.HandleFunc("GET "+api.PathStream, r.handleStream)
	m.HandleFunc("GET "+api.PathMe, func(w http.ResponseWriter, _ *http.Request) {
		relayJSON(w, http.StatusOK, api.Me{})
	})
	return m
}

func relayJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func (r *relay) handleSend(w http.ResponseWriter, req *http.Request) {
	id, err := candor.ParseGroupID(req.PathValue("group"))
	if err != nil {
		relayJSON(w, http.StatusBadRequest, api.Error{Code: api.CodeBadRequest})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, api.MaxBodyBytes))
	if err != nil {
		relayJSON(w, http.StatusBadRequest, api.Error{Code: api.CodeBadRequest})
		return
	}
	var sr api.SendRequest
	if err := json.Unmarshal(body, &sr); err != nil {
		relayJSON(w, http.StatusBadRequest, api.Error{Code: api.CodeBadRequest})
		return
	}
	// The sender's device id is its certificate's OU, as the server's
	// entries name it; read from the verified handshake, not looked up.
	var sender string
	if req.TLS != nil && len(req.TLS.PeerCertificates) > 0 {
		if ou := req.TLS.PeerCertificates[0].Subject.OrganizationalUnit; len(ou) > 0 {
			sender = ou[0]
		}
	}
	g := r.group(id)
	g.mu.Lock()
	g.seq++
	seq := g.seq
	frame, _ := json.Marshal(api.StreamFrame{Type: api.FrameEntry, GroupID: []byte(id), Entry: &api.Entry{
		Seq: seq, Epoch: 1, Sender: sender, Time: time.Now().UTC(), Message: sr.Message,
	}})
	for sub := range g.subs {
		select {
		case sub.frames <- frame:
		default:
			sub.cancel()
			delete(g.subs, sub)
		}
	}
	g.mu.Unlock()
	relayJSON(w, http.StatusOK, api.SendResponse{Seq: seq, Epoch: 1})
}

func (r *relay) handleStream(w http.ResponseWriter, req *http.Request) {
	id, err := candor.ParseGroupID(req.URL.Query().Get("group"))
	if err != nil {
		relayJSON(w, http.StatusBadRequest, api.Error{Code: api.CodeBadRequest})
		return
	}
	conn, err := websocket.Accept(w, req, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return
	}
	conn.SetReadLimit(4 << 10)
	ctx, cancel := context.WithCancel(r.life)
	defer cancel()
	sub := &relaySub{frames: make(chan []byte, relayBuffer), cancel: cancel}
	g := r.group(id)
	g.mu.Lock()
	g.subs[sub] = struct{}{}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.subs, sub)
		g.mu.Unlock()
	}()
	connCtx := context.WithoutCancel(ctx)
	go func() { // acks: read and dropped
		defer cancel()
		for {
			if _, _, err := conn.Read(connCtx); err != nil {
				return
			}
		}
	}()
	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
	status := websocket.StatusNormalClosure
	for loop := true; loop; {
		select {
		case <-ctx.Done():
			if r.life.Err() != nil {
				status = websocket.StatusGoingAway
			} else {
				status = websocket.StatusTryAgainLater
			}
			loop = false
		case <-ping.C:
			pctx, pcancel := context.WithTimeout(connCtx, 10*time.Second)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil {
				loop = false
			}
		case f := <-sub.frames:
			wctx, wcancel := context.WithTimeout(connCtx, 10*time.Second)
			err := conn.Write(wctx, websocket.MessageText, f)
			wcancel()
			if err != nil {
				loop = false
			}
		}
	}
	_ = conn.Close(status, "")
}
