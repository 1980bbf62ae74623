package main

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"os"

	"golang.org/x/term"
)

// passphrase returns the passphrase from CANDOR_CUSTODY_PASSPHRASE when it
// is set and not empty, or asks for it on the terminal without echo (twice when confirm
// is set, for a new key file). The caller clears the returned bytes.
func (a *app) passphrase(prompt string, confirm bool) ([]byte, error) {
	if v := os.Getenv(envPassphrase); v != "" {
		return []byte(v), nil
	}
	fd := int(a.stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, fmt.Errorf("no terminal to ask for the passphrase on; set %s", envPassphrase)
	}
	fmt.Fprint(a.stderr, prompt+": ")
	p, err := term.ReadPassword(fd)
	fmt.Fprintln(a.stderr)
	if err != nil {
		return nil, fmt.Errorf("reading the passphrase: %w", err)
	}
	if !confirm {
		return p, nil
	}
	fmt.Fprint(a.stderr, "Again, to confirm: ")
	again, err := term.ReadPassword(fd)
	fmt.Fprintln(a.stderr)
	defer clear(again)
	if err != nil {
		clear(p)
		return nil, fmt.Errorf("reading the passphrase: %w", err)
	}
	if subtle.ConstantTimeCompare(p, again) != 1 {
		clear(p)
		return nil, errors.New("the two passphrases differ")
	}
	return p, nil
}
