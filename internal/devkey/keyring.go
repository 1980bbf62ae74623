package devkey

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/zalando/go-keyring"

	"candor"
)

// Keyring is a store of secrets kept by the operating system, by service
// and account. Implementations are safe for concurrent use.
type Keyring interface {
	// Set stores secret under (service, account), replacing what was there.
	Set(ctx context.Context, service, account, secret string) error
	// Get returns what Set stored; none is an error wrapping
	// candor.ErrNotFound.
	Get(ctx context.Context, service, account string) (string, error)
	// Delete removes the entry; a missing one is no error.
	Delete(ctx context.Context, service, account string) error
}

// System returns the OS keyring: the Keychain on macOS, the Credential
// Manager on Windows, the Secret Service over D-Bus elsewhere. It returns
// nil where no Secret Service can answer because there is no D-Bus session
// (servers, containers, CI): asking there would only make the D-Bus library
// try to start a session bus of its own.
func System() Keyring {
	switch runtime.GOOS {
	case "darwin", "windows":
		return systemKeyring{}
	}
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") != "" {
		return systemKeyring{}
	}
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "bus")); err == nil {
			return systemKeyring{}
		}
	}
	return nil
}

// systemKeyring is go-keyring, whose calls take no context: each runs in
// its own goroutine, so that a keyring waiting for the person to unlock it
// does not outlive the caller's context. (The goroutine does, until the
// keyring answers.)
type systemKeyring struct{}

func (systemKeyring) Set(ctx context.Context, service, account, secret string) error {
	_, err := withContext(ctx, func() (struct{}, error) {
		return struct{}{}, keyring.Set(service, account, secret)
	})
	return err
}

func (systemKeyring) Get(ctx context.Context, service, account string) (string, error) {
	secret, err := withContext(ctx, func() (string, error) { return keyring.Get(service, account) })
	if errors.Is(err, keyring.ErrNotFound) {
		return "", fmt.Errorf("%w: %w", err, candor.ErrNotFound)
	}
	return secret, err
}

func (systemKeyring) Delete(ctx context.Context, service, account string) error {
	_, err := withContext(ctx, func() (struct{}, error) {
		return struct{}{}, keyring.Delete(service, account)
	})
	if errors.Is(err, keyring.ErrNotFound) {
		return nil
	}
	return err
}

func withContext[T any](ctx context.Context, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := f()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}
