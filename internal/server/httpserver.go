package server

import (
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"time"
)

// NewHTTPServer returns the http.Server that serves h the way candor does:
// over TLS with tlsConfig (from Server.TLSConfig), HTTP/1.1 only (the live
// stream is a WebSocket upgrade), and timeouts against clients that hold a
// connection without using it. errorLog takes net/http's own messages, such
// as failed TLS handshakes; nil discards them.
func NewHTTPServer(h http.Handler, tlsConfig *tls.Config, errorLog *log.Logger) *http.Server {
	if errorLog == nil {
		errorLog = log.New(io.Discard, "", 0)
	}
	return &http.Server{
		Handler:           h,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          errorLog,
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
}
