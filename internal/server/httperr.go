package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"candor"
	"candor/api"
	"candor/internal/store"
)

// Log attribute keys. Values logged under them are identifiers, codes and
// counts: never message bodies, key material or invitation secrets.
const (
	keyMethod  = "method"
	keyPath    = "path"
	keyStatus  = "status"
	keyCode    = "code"
	keyErr     = "err"
	keyDevice  = "device"
	keyUser    = "user"
	keyGroup   = "group"
	keySeq     = "seq"
	keyEpoch   = "epoch"
	keyInvite  = "invitation"
	keyLeaf    = "leaf"
	keyElapsed = "elapsed"
	keyReason  = "reason"

	keyArchiveKey = "archive_key"
)

// httpError is a refusal: Public is the body the client receives, err the
// cause the server logs. The two are separate values so that nothing of the
// cause (a store's message, a library's diagnosis) reaches the client.
type httpError struct {
	public api.Error
	err    error
}

func (e *httpError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%s: %v", e.public.Code, e.err)
	}
	return string(e.public.Code) + ": " + e.public.Message
}

func (e *httpError) Unwrap() error { return e.err }

// fail returns a refusal with code and a message for people; cause, which
// may be nil, is logged only.
func fail(code api.Code, message string, cause error) error {
	return &httpError{public: api.Error{Code: code, Message: message}, err: cause}
}

// internal is a failure of the server itself: the client learns nothing
// more than CodeInternal.
func internal(cause error) error {
	return fail(api.CodeInternal, "internal error", cause)
}

// handlerFunc is an endpoint: it writes a response, or returns an error
// that writeError turns into one.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// deviceFunc is an endpoint that needs an enrolled, unrevoked device.
type deviceFunc func(w http.ResponseWriter, r *http.Request, dev store.Device) error

// public serves an endpoint that needs no client certificate.
func (s *Server) public(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		w.Header().Set("Cache-Control", "no-store")
		rw := &statusWriter{ResponseWriter: w}
		err := h(rw, r)
		if err != nil {
			s.writeError(rw, r, err)
		}
		s.log.LogAttrs(r.Context(), slog.LevelDebug, "request",
			slog.String(keyMethod, r.Method), slog.String(keyPath, r.URL.Path),
			slog.Int(keyStatus, rw.status), slog.Duration(keyElapsed, s.now().Sub(start)))
	})
}

// device serves an endpoint that needs a device certificate: the device
// is looked up by the certificate's fingerprint on every request, so a
// revoked device is refused at once.
func (s *Server) device(h deviceFunc) http.Handler {
	return s.public(func(w http.ResponseWriter, r *http.Request) error {
		dev, err := s.authenticate(r)
		if err != nil {
			return err
		}
		return h(w, r, dev)
	})
}

// authenticate resolves the request's client certificate to a device.
func (s *Server) authenticate(r *http.Request) (store.Device, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return store.Device{}, fail(api.CodeNoCertificate, "this endpoint needs a device certificate", nil)
	}
	dev, err := s.store.DeviceByFingerprint(r.Context(), fingerprint(r.TLS.PeerCertificates[0].Raw))
	switch {
	case errors.Is(err, candor.ErrNotFound):
		return store.Device{}, fail(api.CodeUnknownDevice, "the certificate names no enrolled device", err)
	case err != nil:
		return store.Device{}, internal(fmt.Errorf("looking up a device: %w", err))
	case dev.Revoked():
		return store.Device{}, fail(api.CodeRevokedDevice, "the device was revoked", nil)
	case dev.User == archiveUser:
		// The archive is a member, never a client.
		return store.Device{}, fail(api.CodeUnknownDevice, "the archive makes no requests", nil)
	}
	return dev, nil
}

// writeError writes err as an api.Error with its code's status and logs
// the cause.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		he = internal(err).(*httpError)
	}
	status, ok := api.Status[he.public.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	attrs := []slog.Attr{
		slog.String(keyMethod, r.Method), slog.String(keyPath, r.URL.Path),
		slog.Int(keyStatus, status), slog.String(keyCode, string(he.public.Code)),
	}
	if he.err != nil {
		attrs = append(attrs, slog.String(keyErr, he.err.Error()))
	}
	s.log.LogAttrs(r.Context(), level, "refused", attrs...)
	writeJSON(w, status, he.public)
}

// writeJSON writes v as the JSON body of a response with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // the api types always encode
		status, b = http.StatusInternalServerError, []byte(`{"code":"internal","message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// readBody reads a request body of at most api.MaxBodyBytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, api.MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, fail(api.CodeTooLarge, fmt.Sprintf("the body is over %d bytes", api.MaxBodyBytes), nil)
	case err != nil:
		return nil, fail(api.CodeBadRequest, "the body could not be read", err)
	}
	return b, nil
}

// decode reads the request body into v: exactly one JSON value, no unknown
// fields, at most api.MaxBodyBytes.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := readBody(w, r)
	if err != nil {
		return err
	}
	return decodeJSON(b, v)
}

// decodeJSON is decode's strict parser.
func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fail(api.CodeBadRequest, "the body is not the JSON this endpoint takes", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fail(api.CodeBadRequest, "the body holds more than one JSON value", nil)
	}
	return nil
}

// statusWriter remembers the status written, for the request log, and
// lets the WebSocket library reach the connection underneath.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
