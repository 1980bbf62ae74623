package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"candor"
	"candor/api"
	"candor/internal/mlsx"
	"candor/internal/store"
)

// groupLocks serialises the appends to each group's log within this
// process. Across processes (candord revoke beside candord serve, or
// several servers later) the log head check of Store.Append keeps the log
// from forking, and appends that lose retry.
type groupLocks struct {
	mu sync.Mutex
	m  map[candor.GroupID]*groupLock
}

type groupLock struct {
	ch   chan struct{} // holds a token while locked
	refs int
}

// lock takes a group's lock, or gives up when ctx is done.
func (l *groupLocks) lock(ctx context.Context, id candor.GroupID) (unlock func(), err error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[candor.GroupID]*groupLock)
	}
	gl := l.m[id]
	if gl == nil {
		gl = &groupLock{ch: make(chan struct{}, 1)}
		l.m[id] = gl
	}
	gl.refs++
	l.mu.Unlock()
	release := func() {
		l.mu.Lock()
		gl.refs--
		if gl.refs == 0 {
			delete(l.m, id)
		}
		l.mu.Unlock()
	}
	select {
	case gl.ch <- struct{}{}:
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
	return func() { <-gl.ch; release() }, nil
}

// maxAppendAttempts bounds the retries of an append whose log head moved
// (another process appended in between).
const maxAppendAttempts = 4

// errHeadMoved: the log's head moved between reading the group and
// appending; the whole check is redone.
var errHeadMoved = errors.New("server: the log head moved")

// validateSend checks a SendRequest's shape.
func validateSend(req *api.SendRequest) error {
	switch {
	case len(req.Message) == 0:
		return fail(api.CodeBadRequest, "message: required", nil)
	case len(req.Message) > api.MaxMessageBytes:
		return fail(api.CodeTooLarge, fmt.Sprintf("message: over %d bytes", api.MaxMessageBytes), nil)
	case req.Welcome != nil && len(req.Welcome) == 0:
		return fail(api.CodeBadRequest, "welcome: empty", nil)
	}
	return nil
}

// handleSend appends one MLS message to a group's log; see
// docs/design/server.md, "Delivery".
func (s *Server) handleSend(w http.ResponseWriter, r *http.Request, dev store.Device) error {
	ctx := r.Context()
	id, err := pathGroup(r)
	if err != nil {
		return err
	}
	var req api.SendRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := validateSend(&req); err != nil {
		return err
	}
	info, err := mlsx.Inspect(req.Message)
	if err != nil {
		return fail(api.CodeMalformedMLS, "message: not one canonical MLSMessage", err)
	}
	if info.Wire != mlsx.WirePublic && info.Wire != mlsx.WirePrivate {
		return fail(api.CodeMalformedMLS, "message: not a PublicMessage or PrivateMessage", nil)
	}
	if info.GroupID != id {
		return fail(api.CodeMalformedMLS, "message: for another group", nil)
	}
	if req.Welcome != nil && (info.Wire != mlsx.WirePublic || info.Content != mlsx.ContentCommit) {
		return fail(api.CodeBadRequest, "welcome: only a commit carries one", nil)
	}
	unlock, err := s.locks.lock(ctx, id)
	if err != nil {
		return fail(api.CodeOverloaded, "the request ended while waiting for the group", err)
	}
	defer unlock()
	for attempt := 1; ; attempt++ {
		res, err := s.deliver(ctx, dev, id, &req, info)
		if errors.Is(err, errHeadMoved) {
			if attempt < maxAppendAttempts {
				continue
			}
			return fail(api.CodeOverloaded, "the group is busy; retry", err)
		}
		if err != nil {
			return err
		}
		s.log.LogAttrs(ctx, slog.LevelDebug, "appended", slog.String(keyGroup, id.String()),
			slog.String(keyDevice, string(dev.ID)), slog.Uint64(keySeq, res.Seq), slog.Uint64(keyEpoch, res.Epoch))
		writeJSON(w, http.StatusOK, res)
		return nil
	}
}

// deliver runs the checks and the append of one message, with the group's
// lock held.
func (s *Server) deliver(ctx context.Context, dev store.Device, id candor.GroupID, req *api.SendRequest, info mlsx.Info) (api.SendResponse, error) {
	g, err := s.store.Group(ctx, id)
	switch {
	case errors.Is(err, candor.ErrNotFound):
		return api.SendResponse{}, fail(api.CodeUnknownGroup, "no such group", err)
	case err != nil:
		return api.SendResponse{}, internal(fmt.Errorf("loading group %s: %w", id, err))
	}
	members, err := s.store.Members(ctx, id)
	if err != nil {
		return api.SendResponse{}, internal(fmt.Errorf("members of %s: %w", id, err))
	}
	if !slices.Contains(members, dev.ID) {
		return api.SendResponse{}, fail(api.CodeNotMember, "the device is not a member of the group", nil)
	}
	// The same bytes again are a replay whatever the epoch: a device that
	// lost the answer to a message must learn that it landed, not encrypt
	// it again after the epoch moved on. An application message for the
	// current epoch, the common case, meets no check that a replay would
	// fail, so the append itself reports it (store.ReplayError), without
	// a lookup of its own.
	if info.Wire != mlsx.WirePrivate || info.Epoch != g.Epoch {
		if seq, err := s.store.EntryOf(ctx, id, req.Message); err == nil {
			return api.SendResponse{}, &httpError{public: api.Error{Code: api.CodeReplay, Message: "this message is already in the log", Seq: seq}}
		} else if !errors.Is(err, candor.ErrNotFound) {
			return api.SendResponse{}, internal(fmt.Errorf("looking for a replay in %s: %w", id, err))
		}
	}
	now := s.now()
	app := store.AppendRequest{
		Group:    id,
		PrevHead: g.Head,
		Entry:    store.Entry{Epoch: info.Epoch, Sender: dev.ID, Time: now, Message: req.Message},
	}
	epoch := g.Epoch
	var leaving []candor.DeviceID // members the message removes
	welcomed := map[candor.DeviceID]bool{}

	switch info.Wire {
	case mlsx.WirePrivate:
		if info.Content != mlsx.ContentApplication {
			return api.SendResponse{}, fail(api.CodeMalformedMLS, "message: handshake messages must be PublicMessage", nil)
		}
		if info.Epoch != g.Epoch {
			return api.SendResponse{}, staleEpoch(g.Epoch)
		}
		if g.Epoch == 0 {
			// Before its first commit a group is its creator alone,
			// without the archive, which that commit must add.
			return api.SendResponse{}, fail(api.CodePolicy, "the group has no archive yet: its first commit adds it", nil)
		}
		if !s.hasArchive(members) {
			// Between the two commits of a replay anchor: the next
			// commit must add the archive back before anyone writes.
			return api.SendResponse{}, fail(api.CodePolicy, "the archive is out of the group for a replay anchor: the next commit adds it back", nil)
		}
	case mlsx.WirePublic:
		// Only handshakes need the roster: decoding it for every
		// application message was a tenth of the server's CPU under load.
		roster, err := mlsx.UnmarshalRoster(g.Roster)
		if err != nil {
			return api.SendResponse{}, internal(fmt.Errorf("group %s: %w", id, err))
		}
		if err := checkSender(roster, info.Sender, dev); err != nil {
			return api.SendResponse{}, err
		}
		if info.Content == mlsx.ContentCommit && removalPending(roster, dev) {
			return api.SendResponse{}, fail(api.CodeNotMember, "the device is leaving the group: its removal is proposed", nil)
		}
		next, _, err := roster.Apply(req.Message)
		if err != nil {
			return api.SendResponse{}, s.applyError(ctx, g, info, err)
		}
		raw, err := json.Marshal(next)
		if err != nil {
			return api.SendResponse{}, internal(err)
		}
		app.Roster, app.Epoch = raw, next.Epoch
		if info.Content == mlsx.ContentCommit {
			devices, err := s.checkMembers(ctx, id, next.Members(), members, s.anchorRemoval(roster, next))
			if err != nil {
				return api.SendResponse{}, err
			}
			added := without(devices, members)
			leaving = without(members, devices)
			seq := g.Head + 1
			app.Welcomes, err = s.routeWelcome(ctx, req.Welcome, added, id, seq, now)
			if err != nil {
				return api.SendResponse{}, err
			}
			for _, wl := range app.Welcomes {
				welcomed[wl.Device] = true
			}
			app.Entry.Commit = true
			app.Members = devices
			members = devices
			epoch = next.Epoch
		}
	}

	seq, err := s.store.Append(ctx, app)
	var replay *store.ReplayError
	switch {
	case errors.As(err, &replay):
		return api.SendResponse{}, &httpError{
			public: api.Error{Code: api.CodeReplay, Message: "this message is already in the log", Seq: replay.Seq},
			err:    err,
		}
	case errors.Is(err, candor.ErrConflict):
		return api.SendResponse{}, fmt.Errorf("%w: %w", errHeadMoved, err)
	case errors.Is(err, candor.ErrPermission): // a device revoked meanwhile
		return api.SendResponse{}, fail(api.CodePolicy, "the member list would hold a device that is not enrolled, or revoked", err)
	case err != nil:
		return api.SendResponse{}, internal(fmt.Errorf("appending to %s: %w", id, err))
	}
	s.journal.mark(id)
	// The entry as the store now holds it, encoded once for every stream.
	frame := entryFrame(id, api.Entry{Seq: seq, Epoch: uint64(info.Epoch), Sender: string(dev.ID), Time: now.UTC(), Message: req.Message})
	for _, d := range members {
		s.hub.publish(d, notice{group: id, seq: seq, frame: frame, member: true, welcome: welcomed[d]})
	}
	for _, d := range leaving {
		s.hub.publish(d, notice{group: id, seq: seq, frame: frame})
	}
	return api.SendResponse{Seq: seq, Epoch: uint64(epoch), Time: now.UTC()}, nil
}

// checkSender refuses a PublicMessage that the uploading device did not
// sign as a member: only the server is an external sender, and a device
// uploads only from its own leaf.
func checkSender(roster *mlsx.Roster, sender mlsx.Sender, dev store.Device) error {
	if sender.External {
		return fail(api.CodePolicy, "message: only the server sends as an external sender", nil)
	}
	if int(sender.Index) >= len(roster.Leaves) || roster.Leaves[sender.Index] == nil {
		return fail(api.CodePolicy, "message: the sender's leaf is not a member", nil)
	}
	chain := roster.Leaves[sender.Index].Credential.Chain
	if len(chain) == 0 || !bytes.Equal(fingerprint(chain[0]), dev.Fingerprint) {
		return fail(api.CodePolicy, "message: the sender's leaf is not the uploading device", nil)
	}
	return nil
}

func staleEpoch(current candor.Epoch) error {
	return &httpError{public: api.Error{Code: api.CodeStaleEpoch, Message: "the message is not for the group's current epoch", Epoch: uint64(current)}}
}

// applyError translates a refusal of Roster.Apply. A commit for an epoch
// that has ended lost to the commit that ended it (the same commit sent
// again was answered as a replay before this).
func (s *Server) applyError(ctx context.Context, g store.Group, info mlsx.Info, err error) error {
	var epochErr *mlsx.EpochError
	switch {
	case errors.As(err, &epochErr):
		if info.Content != mlsx.ContentCommit || info.Epoch > g.Epoch {
			return staleEpoch(g.Epoch)
		}
		seq, err := s.store.CommitSeq(ctx, g.ID, info.Epoch)
		if errors.Is(err, candor.ErrNotFound) {
			return staleEpoch(g.Epoch)
		}
		if err != nil {
			return internal(fmt.Errorf("finding the commit that ended epoch %d of %s: %w", info.Epoch, g.ID, err))
		}
		return &httpError{public: api.Error{
			Code: api.CodeCommitConflict, Message: "another commit ended this epoch",
			Epoch: uint64(g.Epoch), Seq: seq,
		}}
	case errors.Is(err, candor.ErrPermission):
		return fail(api.CodePolicy, "message: refused by candor's rules for handshakes", err)
	default:
		return fail(api.CodeMalformedMLS, "message: not a handshake the server can follow", err)
	}
}

// checkMembers applies the built-in policy and then the configured one to
// the member list a commit leads to, and returns the member devices.
// before are the member devices before the commit. archiveOut allows the
// list to lack the archive: the commit takes the server's proposal to
// remove it, for a replay anchor.
func (s *Server) checkMembers(ctx context.Context, id candor.GroupID, members []mlsx.Member, before []candor.DeviceID, archiveOut bool) ([]candor.DeviceID, error) {
	devices, err := s.memberDevices(ctx, members, before, archiveOut)
	switch {
	case errors.Is(err, errPolicy):
		return nil, fail(api.CodePolicy, "the member list would hold a device that is not enrolled, or revoked", err)
	case err != nil:
		return nil, internal(err)
	}
	if s.policy != nil {
		if err := s.policy.CheckMembers(ctx, id, members); err != nil {
			return nil, fail(api.CodePolicy, "the member list breaks the organisation's policy", err)
		}
	}
	return devices, nil
}

// routeWelcome addresses a commit's Welcome: each of its KeyPackageRefs
// must be the KeyPackage of a device the commit adds, and every device the
// commit adds must be addressed.
func (s *Server) routeWelcome(ctx context.Context, welcome []byte, added []candor.DeviceID, id candor.GroupID, seq uint64, now time.Time) ([]store.Welcome, error) {
	if welcome == nil {
		if len(added) > 0 {
			return nil, fail(api.CodeBadRequest, "welcome: a commit that adds devices must carry their Welcome", nil)
		}
		return nil, nil
	}
	if len(added) == 0 {
		return nil, fail(api.CodeBadRequest, "welcome: the commit adds nobody", nil)
	}
	if len(welcome) > api.MaxMessageBytes {
		return nil, fail(api.CodeTooLarge, fmt.Sprintf("welcome: over %d bytes", api.MaxMessageBytes), nil)
	}
	info, err := mlsx.Inspect(welcome)
	if err != nil || info.Wire != mlsx.WireWelcome {
		return nil, fail(api.CodeMalformedMLS, "welcome: not one canonical MLS Welcome", err)
	}
	if info.Suite != mlsx.DefaultSuite {
		return nil, fail(api.CodeMalformedMLS, "welcome: not for ciphersuite 0x0002", nil)
	}
	targets := map[candor.DeviceID]bool{}
	for _, ref := range info.NewMembers {
		d, err := s.store.KeyPackageOwner(ctx, ref)
		switch {
		case errors.Is(err, candor.ErrNotFound):
			return nil, fail(api.CodePolicy, "welcome: addressed to a key package not in the directory", err)
		case err != nil:
			return nil, internal(fmt.Errorf("routing a welcome: %w", err))
		case !slices.Contains(added, d):
			return nil, fail(api.CodePolicy, "welcome: addressed to a device the commit does not add", nil)
		}
		targets[d] = true
	}
	out := make([]store.Welcome, 0, len(added))
	for _, d := range added {
		if !targets[d] {
			return nil, fail(api.CodeBadRequest, "welcome: does not address every device the commit adds", nil)
		}
		wid, err := s.randomID(8)
		if err != nil {
			return nil, internal(err)
		}
		out = append(out, store.Welcome{ID: wid, Device: d, Group: id, Seq: seq, Time: now, Data: welcome})
	}
	return out, nil
}

// without returns the elements of a that are not in b, in a's order.
func without(a, b []candor.DeviceID) []candor.DeviceID {
	var out []candor.DeviceID
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
