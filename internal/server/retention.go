package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"candor"
	"candor/internal/access"
	"candor/internal/store"
)

// Retention (docs/design/journal.md, "Retention and replay anchors").
//
// An organisation keeps its records for a period, Config.Retention, and
// no longer. A replay starts at one of the archive's Welcomes, its
// anchors (anchor.go), so the server deletes only whole prefixes of a
// group's log, up to the latest anchor older than the period: every entry
// kept then still has an anchor at or before it, and an entry goes at
// most an anchor interval after its period ends. A group a legal hold
// covers keeps everything. Each deletion is logged in the access log
// before anything is deleted, with the chain hash the log's new start
// follows, so that no prefix is ever missing without a record that
// explains it and lets a replay check its chain from there.

// Retain deletes, in every group no legal hold covers, the prefix of its
// log before its latest anchor older than the retention period, each
// deletion logged first. It returns the deletions it carried out; a group
// that fails does not stop the others. Without a retention period it does
// nothing.
func (s *Server) Retain(ctx context.Context) ([]access.Deletion, error) {
	if s.retention <= 0 || s.archive == nil {
		return nil, nil
	}
	log, err := s.access.Read(ctx)
	if err != nil {
		return nil, fmt.Errorf("server: retention: reading the access log: %w", err)
	}
	held, err := s.heldGroups(ctx, log)
	if err != nil {
		return nil, fmt.Errorf("server: retention: legal holds: %w", err)
	}
	ids, err := s.store.GroupIDs(ctx)
	if err != nil {
		return nil, fmt.Errorf("server: retention: listing groups: %w", err)
	}
	now := s.now().UTC().Truncate(time.Second)
	cutoff := now.Add(-s.retention)
	var done []access.Deletion
	var errs []error
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		if len(held[id]) > 0 {
			continue
		}
		d, err := s.retainGroup(ctx, log, id, cutoff, now)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("server: retention in %s: %w", id, err))
		case d != nil:
			done = append(done, *d)
		}
	}
	return done, errors.Join(errs...)
}

// heldGroups returns the groups the holds in force cover: those they
// name, and every group any device of a person they name was ever a
// member of.
func (s *Server) heldGroups(ctx context.Context, log *access.Log) (map[candor.GroupID][]*access.HoldState, error) {
	return log.HeldGroups(func(u candor.UserID) ([]candor.GroupID, error) {
		spans, err := store.UserSpans(ctx, s.store, u)
		if err != nil {
			return nil, err
		}
		groups := make([]candor.GroupID, len(spans))
		for i, sp := range spans {
			groups[i] = sp.Group
		}
		return groups, nil
	})
}

// retainGroup deletes group id's prefix before its latest anchor older
// than cutoff, if that is past the log's start, and returns the deletion;
// nil if there is none to make. A deletion the log already records (the
// server stopped between logging it and finishing it) is finished without
// a second record.
func (s *Server) retainGroup(ctx context.Context, log *access.Log, id candor.GroupID, cutoff, now time.Time) (*access.Deletion, error) {
	ws, err := s.archiveWelcomes(ctx, id)
	if err != nil {
		return nil, err
	}
	var anchor *store.WelcomeRef
	for i := range ws {
		if ws[i].Time.Before(cutoff) {
			anchor = &ws[i]
		}
	}
	start, err := s.store.LogStart(ctx, id)
	if err != nil || anchor == nil || anchor.Seq <= start.Seq {
		return nil, err
	}
	last := anchor.Seq - 1
	entries, err := s.store.Log(ctx, id, last-1, 1)
	if err != nil {
		return nil, err
	}
	if len(entries) != 1 || entries[0].Seq != last {
		return nil, fmt.Errorf("entry %d, before the anchor, is not in the log: %w", last, candor.ErrNotFound)
	}
	d := &access.Deletion{Group: id, First: start.Seq, Last: last, LastHash: entries[0].Hash, At: now, Retention: s.retention}
	if !deletionLogged(log, id, last) {
		if _, err := s.access.LogDeletion(ctx, d); err != nil {
			return nil, fmt.Errorf("logging the deletion: %w", err)
		}
	}
	n, err := s.store.DeleteBefore(ctx, id, anchor.Seq)
	if err != nil {
		return nil, err
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "history deleted under retention", slog.String(keyGroup, id.String()),
		slog.Uint64("first", d.First), slog.Uint64("last", d.Last), slog.Uint64("deleted", n))
	return d, nil
}

// deletionLogged reports whether log records the deletion of group id's
// entries up to last.
func deletionLogged(log *access.Log, id candor.GroupID, last uint64) bool {
	for _, e := range log.Deletions {
		if e.Deletion.Group == id && e.Deletion.Last == last {
			return true
		}
	}
	return false
}

// DefaultMaintenanceInterval is how often Maintain runs by default.
const DefaultMaintenanceInterval = time.Hour

// Maintain proposes the anchors that are due and applies the retention
// period, at once and then every interval (zero: the default) until ctx
// is done. Failures are logged; the next round tries again.
func (s *Server) Maintain(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultMaintenanceInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.ProposeAnchors(ctx); err != nil {
			s.log.LogAttrs(ctx, slog.LevelError, "proposing anchors", slog.Int("proposed", n), slog.String(keyErr, err.Error()))
		}
		if ds, err := s.Retain(ctx); err != nil {
			s.log.LogAttrs(ctx, slog.LevelError, "applying retention", slog.Int("deletions", len(ds)), slog.String(keyErr, err.Error()))
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}
