package main

import (
	"context"

	"candor/internal/tui"
)

// runChat opens the full-screen chat (package tui) on this terminal, at
// the conversation named, or the first one.
func runChat(ctx context.Context, e *env, args []string) error {
	group := ""
	if len(args) == 1 {
		// Caught up first, so that a conversation someone just added this
		// device to can be named; offline, the chat shows what it has.
		if err := syncOrWarn(ctx, e); err != nil {
			return err
		}
		g, err := resolveGroup(ctx, e.c, args[0])
		if err != nil {
			return err
		}
		// The whole id: the chat finds it by prefix like the other
		// commands, and a whole id is nobody's prefix but its own.
		group = g.ID.String()
	}
	return tui.Run(ctx, e.c, group, e.in, e.out)
}
