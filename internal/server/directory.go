package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"candor"
	"candor/api"
	"candor/internal/mlsx"
	"candor/internal/store"
)

// pathUser reads and checks the {user} path parameter.
func pathUser(r *http.Request) (candor.UserID, error) {
	u := candor.UserID(r.PathValue("user"))
	if !ValidUserID(u) {
		return "", fail(api.CodeBadRequest, "not a user id", nil)
	}
	return u, nil
}

func apiDevice(d store.Device) api.Device {
	out := api.Device{ID: string(d.ID), User: string(d.User), Name: d.Name, Certificate: d.Certificate, EnrolledAt: d.EnrolledAt.UTC()}
	if d.Revoked() {
		at := d.RevokedAt.UTC()
		out.RevokedAt = &at
	}
	return out
}

// handleDevices lists a user's devices, revoked ones included.
func (s *Server) handleDevices(w http.ResponseWriter, r *http.Request, _ store.Device) error {
	user, err := pathUser(r)
	if err != nil {
		return err
	}
	devs, err := s.store.Devices(r.Context(), user)
	if err != nil {
		return internal(fmt.Errorf("listing devices: %w", err))
	}
	if len(devs) == 0 {
		return fail(api.CodeUnknownUser, "the user has no devices", nil)
	}
	out := api.DeviceList{Devices: make([]api.Device, 0, len(devs))}
	for _, d := range devs {
		out.Devices = append(out.Devices, apiDevice(d))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// announceDevice tells the live streams of dev's person's other devices
// that dev can be added to their groups. A device that misses it (offline,
// or its stream full) finds the new device when it next catches up.
func (s *Server) announceDevice(ctx context.Context, dev store.Device) {
	devs, err := s.store.Devices(ctx, dev.User)
	if err != nil {
		s.log.Warn("new device not announced", keyDevice, string(dev.ID), keyErr, err)
		return
	}
	for _, d := range devs {
		if d.ID != dev.ID && !d.Revoked() {
			s.hub.publish(d.ID, notice{devices: true})
		}
	}
}

// validateUpload checks an upload's shape; the KeyPackages themselves are
// checked by checkKeyPackage.
func validateUpload(req *api.UploadKeyPackages) error {
	if req.LastResort != nil && len(req.LastResort) == 0 {
		return fail(api.CodeBadRequest, "last_resort: empty", nil)
	}
	if len(req.KeyPackages) == 0 && req.LastResort == nil {
		return fail(api.CodeBadRequest, "key_packages: nothing to upload", nil)
	}
	if len(req.KeyPackages) > api.MaxKeyPackages {
		return fail(api.CodeTooLarge, fmt.Sprintf("key_packages: at most %d per upload", api.MaxKeyPackages), nil)
	}
	for _, kp := range append([][]byte{req.LastResort}, req.KeyPackages...) {
		if len(kp) > api.MaxMessageBytes {
			return fail(api.CodeTooLarge, "a key package is over the message limit", nil)
		}
	}
	return nil
}

// checkKeyPackage parses one uploaded KeyPackage: it must verify, be for
// candor's suite, carry the uploading device's own certificate, and be a
// last-resort one exactly when lastResort is set.
func checkKeyPackage(msg []byte, dev store.Device, lastResort bool, now time.Time) (store.KeyPackage, error) {
	info, err := mlsx.ParseKeyPackage(msg, now)
	if err != nil {
		return store.KeyPackage{}, fail(api.CodeMalformedMLS, "a key package does not parse, verify, or is outside its lifetime", err)
	}
	if info.Suite != mlsx.DefaultSuite {
		return store.KeyPackage{}, fail(api.CodeMalformedMLS, "a key package is not for ciphersuite 0x0002", nil)
	}
	if info.LastResort != lastResort {
		return store.KeyPackage{}, fail(api.CodeMalformedMLS, "last_resort must carry the last_resort extension and key_packages must not", nil)
	}
	if info.Credential.Kind != mlsx.CredentialX509 || len(info.Credential.Chain) == 0 || !bytes.Equal(info.Credential.Chain[0], dev.Certificate) {
		return store.KeyPackage{}, fail(api.CodePolicy, "a key package's credential is not the uploading device's certificate", nil)
	}
	return store.KeyPackage{Ref: info.Ref, Device: dev.ID, Data: msg, LastResort: lastResort, Added: now}, nil
}

// handleUploadKeyPackages adds KeyPackages to the calling device's stock.
func (s *Server) handleUploadKeyPackages(w http.ResponseWriter, r *http.Request, dev store.Device) error {
	ctx := r.Context()
	var req api.UploadKeyPackages
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := validateUpload(&req); err != nil {
		return err
	}
	now := s.now()
	kps := make([]store.KeyPackage, 0, len(req.KeyPackages))
	seen := make(map[string]bool)
	for _, msg := range req.KeyPackages {
		kp, err := checkKeyPackage(msg, dev, false, now)
		if err != nil {
			return err
		}
		if seen[string(kp.Ref)] {
			return fail(api.CodeBadRequest, "the same key package twice", nil)
		}
		seen[string(kp.Ref)] = true
		kps = append(kps, kp)
	}
	var last *store.KeyPackage
	if req.LastResort != nil {
		kp, err := checkKeyPackage(req.LastResort, dev, true, now)
		if err != nil {
			return err
		}
		last = &kp
	}
	available, hadLast, err := s.store.CountKeyPackages(ctx, dev.ID)
	if err != nil {
		return internal(fmt.Errorf("counting key packages: %w", err))
	}
	err = s.store.AddKeyPackages(ctx, dev.ID, kps, last)
	switch {
	case errors.Is(err, candor.ErrConflict):
		return fail(api.CodeBadRequest, "a key package was uploaded before", err)
	case err != nil:
		return internal(fmt.Errorf("adding key packages: %w", err))
	}
	if available == 0 && !hadLast {
		// A new device can now be added: its person's other devices add
		// it to their groups (api.FrameDevices).
		s.announceDevice(ctx, dev)
	}
	return s.writeCount(w, r, dev)
}

func (s *Server) handleCountKeyPackages(w http.ResponseWriter, r *http.Request, dev store.Device) error {
	return s.writeCount(w, r, dev)
}

func (s *Server) writeCount(w http.ResponseWriter, r *http.Request, dev store.Device) error {
	n, last, err := s.store.CountKeyPackages(r.Context(), dev.ID)
	if err != nil {
		return internal(fmt.Errorf("counting key packages: %w", err))
	}
	writeJSON(w, http.StatusOK, api.KeyPackageCount{Available: n, LastResort: last})
	return nil
}

// readEmpty refuses a body on an endpoint that takes none. An empty JSON
// object is accepted too.
func readEmpty(w http.ResponseWriter, r *http.Request) error {
	b, err := readBody(w, r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	var empty struct{}
	return decodeJSON(b, &empty)
}

// handleClaim hands out one KeyPackage for each unrevoked device of a user,
// for adding them to a group. The calling device is left out when it
// claims for its own user: it is in the group already.
func (s *Server) handleClaim(w http.ResponseWriter, r *http.Request, dev store.Device) error {
	ctx := r.Context()
	user, err := pathUser(r)
	if err != nil {
		return err
	}
	if err := readEmpty(w, r); err != nil {
		return err
	}
	devs, err := s.store.Devices(ctx, user)
	if err != nil {
		return internal(fmt.Errorf("listing devices: %w", err))
	}
	if len(devs) == 0 {
		return fail(api.CodeUnknownUser, "the user has no devices", nil)
	}
	var wanted []candor.DeviceID
	for _, d := range devs {
		if d.Revoked() || d.ID == dev.ID {
			continue
		}
		// Checked before claiming, so that a refusal consumes nothing.
		n, last, err := s.store.CountKeyPackages(ctx, d.ID)
		if err != nil {
			return internal(fmt.Errorf("counting key packages: %w", err))
		}
		if n == 0 && !last {
			return noKeyPackages(d.ID)
		}
		wanted = append(wanted, d.ID)
	}
	out := api.ClaimedKeyPackages{KeyPackages: []api.ClaimedKeyPackage{}}
	if len(wanted) == 0 {
		writeJSON(w, http.StatusOK, out)
		return nil
	}
	kps, err := s.store.ClaimKeyPackages(ctx, user, s.now())
	if err != nil {
		return internal(fmt.Errorf("claiming key packages: %w", err))
	}
	got := make(map[candor.DeviceID][]byte)
	for _, kp := range kps {
		got[kp.Device] = kp.Data
	}
	for _, id := range wanted {
		data, ok := got[id]
		if !ok { // used up since it was counted
			return noKeyPackages(id)
		}
		out.KeyPackages = append(out.KeyPackages, api.ClaimedKeyPackage{Device: string(id), KeyPackage: data})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func noKeyPackages(id candor.DeviceID) error {
	return fail(api.CodeNoKeyPackages, fmt.Sprintf("device %s has no key package left", id), nil)
}
