package server

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"candor"
	"candor/api"
	"candor/internal/journal"
	"candor/internal/mlsx"
	"candor/internal/pki"
	"candor/internal/store"
)

// maxGroupID is the longest MLS group id candor accepts (mlsx's limit).
const maxGroupID = 255

// pathGroup reads the {group} path parameter.
func pathGroup(r *http.Request) (candor.GroupID, error) {
	id, err := candor.ParseGroupID(r.PathValue("group"))
	if err != nil || len(id) > maxGroupID {
		return "", fail(api.CodeBadRequest, "not a group id (1 to 255 bytes in hex)", err)
	}
	return id, nil
}

// membership returns a group and the device's cursor in it: unknown_group
// if there is no such group, not_member if the device is not in it.
func (s *Server) membership(r *http.Request, dev store.Device, id candor.GroupID) (store.Membership, error) {
	ctx := r.Context()
	g, err := s.store.Group(ctx, id)
	switch {
	case errors.Is(err, candor.ErrNotFound):
		return store.Membership{}, fail(api.CodeUnknownGroup, "no such group", err)
	case err != nil:
		return store.Membership{}, internal(fmt.Errorf("loading group %s: %w", id, err))
	}
	ms, err := s.store.GroupsOf(ctx, dev.ID)
	if err != nil {
		return store.Membership{}, internal(fmt.Errorf("listing groups of %s: %w", dev.ID, err))
	}
	for _, m := range ms {
		if m.Group.ID == id {
			m.Group = g
			return m, nil
		}
	}
	return store.Membership{}, fail(api.CodeNotMember, "the device is not a member of the group", nil)
}

func groupHead(g store.Group, cursor uint64) api.GroupHead {
	return api.GroupHead{GroupID: []byte(g.ID), Epoch: uint64(g.Epoch), Head: g.Head, Cursor: cursor}
}

// apiMembers lists a roster's members by the user and device their
// certificates name. Every member's certificate is an enrolled device's
// (the policy sees to it), whose subject the server wrote at enrolment.
func apiMembers(roster *mlsx.Roster) []api.Member {
	out := []api.Member{}
	for _, m := range roster.Members() {
		am := api.Member{Leaf: m.Leaf}
		if cert, err := m.Credential.Certificate(); err == nil {
			if d, err := pki.DeviceOf(cert); err == nil {
				am.User, am.Device = string(d.User), string(d.Device)
			} else if _, err := pki.ArchiveOf(cert); err == nil {
				am.User, am.Device, am.Archive = string(archiveUser), string(ArchiveDevice(cert.Raw)), true
			}
		}
		out = append(out, am)
	}
	return out
}

// validateCreateGroup checks a CreateGroup body.
func validateCreateGroup(req *api.CreateGroup) error {
	if len(req.GroupID) == 0 || len(req.GroupID) > maxGroupID {
		return fail(api.CodeBadRequest, "group_id: 1 to 255 bytes", nil)
	}
	return nil
}

// creatorMember is the leaf the calling device holds in a group it has
// just created: its certificate as an X.509 credential, its key as the
// signature key.
func creatorMember(dev store.Device) (mlsx.Member, error) {
	cert, err := x509.ParseCertificate(dev.Certificate)
	if err != nil {
		return mlsx.Member{}, err
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return mlsx.Member{}, errors.New("device key is not ECDSA")
	}
	key, err := signatureKey(pub)
	if err != nil {
		return mlsx.Member{}, err
	}
	return mlsx.Member{
		Credential:   mlsx.Credential{Kind: mlsx.CredentialX509, Chain: [][]byte{dev.Certificate}},
		SignatureKey: key,
	}, nil
}

// handleCreateGroup registers a group at epoch 0 with the caller at leaf 0.
func (s *Server) handleCreateGroup(w http.ResponseWriter, r *http.Request, dev store.Device) error {
	ctx := r.Context()
	var req api.CreateGroup
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := validateCreateGroup(&req); err != nil {
		return err
	}
	id := candor.GroupID(req.GroupID)
	creator, err := creatorMember(dev)
	if err != nil {
		return internal(fmt.Errorf("device %s's certificate: %w", dev.ID, err))
	}
	roster := mlsx.NewRoster(id, mlsx.DefaultSuite, creator)
	raw, err := json.Marshal(roster)
	if err != nil {
		return internal(err)
	}
	g := store.Group{ID: id, Roster: raw, Created: s.now()}
	err = s.store.CreateGroup(ctx, g, dev.ID)
	switch {
	case errors.Is(err, candor.ErrConflict):
		return fail(api.CodeGroupExists, "a group with this id exists", err)
	case err != nil:
		return internal(fmt.Errorf("creating group %s: %w", id, err))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "group created", slog.String(keyGroup, id.String()), slog.String(keyDevice, string(dev.ID)))
	head := groupHead(g, 0)
	head.Members = apiMembers(roster)
	writeJSON(w, http.StatusCreated, head)
	return nil
}

// handleListGroups lists the caller's groups.
func (s *Server) handleListGroups(w http.ResponseWriter, r *http.Request, dev store.Device) error {
	ms, err := s.store.GroupsOf(r.Context(), dev.ID)
	if err != nil {
		return internal(fmt.Errorf("listing groups of %s: %w", dev.ID, err))
	}
	out := api.GroupList{Groups: make([]api.GroupHead, 0, len(ms))}
	for _, m := range ms {
		out.Groups = append(out.Groups, groupHead(m.Group, m.Cursor))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleGroup returns one of the caller's groups with its member list.
func (s *Server) handleGroup(w http.ResponseWriter, r *http.Request, dev store.Device) error {
	id, err := pathGroup(r)
	if err != nil {
		return err
	}
	m, err := s.membership(r, dev, id)
	if err != nil {
		return err
	}
	roster, err := mlsx.UnmarshalRoster(m.Group.Roster)
	if err != nil {
		return internal(fmt.Errorf("group %s: %w", id, err))
	}
	head := groupHead(m.Group, m.Cursor)
	head.Members = apiMembers(roster)
	writeJSON(w, http.StatusOK, head)
	return nil
}

func apiEntry(e store.Entry) api.Entry {
	return api.Entry{Seq: e.Seq, Epoch: uint64(e.Epoch), Sender: string(e.Sender), Time: e.Time.UTC(), Message: e.Message}
}

// logQuery reads ?after=N&limit=M: after defaults to 0, limit to (and at
// most) api.MaxLogPage.
func logQuery(r *http.Request) (after uint64, limit int, err error) {
	q := r.URL.Query()
	if v := q.Get("after"); v != "" {
		after, err = strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, fail(api.CodeBadRequest, "after: not a sequence number", nil)
		}
	}
	limit = api.MaxLogPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			return 0, 0, fail(api.CodeBadRequest, "limit: a positive number", nil)
		}
		limit = int(min(n, api.MaxLogPage))
	}
	return after, limit, nil
}

// handleLog returns a page of a group's log.
func (s *Server) handleLog(w http.ResponseWriter, r *http.Request, dev store.Device) error {
	id, err := pathGroup(r)
	if err != nil {
		return err
	}
	after, limit, err := logQuery(r)
	if err != nil {
		return err
	}
	if _, err := s.membership(r, dev, id); err != nil {
		return err
	}
	// One entry more at each end: the one at after, whose chain hash the
	// page's first entry follows, and the one that says More.
	from := after
	if after > 0 {
		from = after - 1
	}
	entries, err := s.store.Log(r.Context(), id, from, limit+2)
	if err != nil {
		return internal(fmt.Errorf("reading the log of %s: %w", id, err))
	}
	var prev journal.Hash
	switch {
	case len(entries) > 0 && after > 0 && entries[0].Seq == after:
		prev, entries = entries[0].Hash, entries[1:]
	case len(entries) > 0 && entries[0].Seq == 1:
		prev = journal.Genesis
	case len(entries) > 0:
		// The entry before the first is gone: the log was cut there.
		start, err := s.store.LogStart(r.Context(), id)
		if err != nil {
			return internal(fmt.Errorf("reading the start of the log of %s: %w", id, err))
		}
		if start.Seq != entries[0].Seq {
			return internal(fmt.Errorf("the log of %s starts at %d, its first entry is %d", id, start.Seq, entries[0].Seq))
		}
		prev = start.Prev
	}
	out := api.Log{Entries: make([]api.Entry, 0, min(len(entries), limit))}
	if len(entries) > 0 {
		out.Prev = prev[:]
	}
	for i, e := range entries {
		if i == limit {
			out.More = true
			break
		}
		out.Entries = append(out.Entries, apiEntry(e))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleCursor records how far the caller has processed a group's log.
func (s *Server) handleCursor(w http.ResponseWriter, r *http.Request, dev store.Device) error {
	id, err := pathGroup(r)
	if err != nil {
		return err
	}
	var req api.Cursor
	if err := decode(w, r, &req); err != nil {
		return err
	}
	m, err := s.membership(r, dev, id)
	if err != nil {
		return err
	}
	if req.Seq > m.Group.Head {
		return fail(api.CodeBadRequest, "seq: beyond the log's head", nil)
	}
	if err := s.store.SetCursor(r.Context(), dev.ID, id, req.Seq); err != nil {
		return internal(fmt.Errorf("setting cursor in %s: %w", id, err))
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func apiWelcome(wl store.Welcome) api.Welcome {
	return api.Welcome{ID: wl.ID, Seq: wl.Seq, Time: wl.Time.UTC(), Welcome: wl.Data}
}

// handleWelcomes lists the caller's unacknowledged Welcomes.
func (s *Server) handleWelcomes(w http.ResponseWriter, r *http.Request, dev store.Device) error {
	ws, err := s.store.Welcomes(r.Context(), dev.ID)
	if err != nil {
		return internal(fmt.Errorf("listing welcomes: %w", err))
	}
	out := api.WelcomeList{Welcomes: make([]api.Welcome, 0, len(ws))}
	for _, wl := range ws {
		out.Welcomes = append(out.Welcomes, apiWelcome(wl))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleDeleteWelcome acknowledges a Welcome.
func (s *Server) handleDeleteWelcome(w http.ResponseWriter, r *http.Request, dev store.Device) error {
	id := r.PathValue("id")
	if id == "" || len(id) > 64 {
		return fail(api.CodeNotFound, "no such welcome", nil)
	}
	err := s.store.DeleteWelcome(r.Context(), dev.ID, id)
	switch {
	case errors.Is(err, candor.ErrNotFound):
		return fail(api.CodeNotFound, "no such welcome", err)
	case err != nil:
		return internal(fmt.Errorf("deleting welcome: %w", err))
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
