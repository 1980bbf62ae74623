package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"
)

// maxStmts bounds a stmtCache. The store's queries are constants, a few
// dozen in all, so the bound is never reached; it is there so that a query
// built at run time could never make the cache grow without end.
const maxStmts = 256

// A stmtCache holds the statements prepared on one *sql.DB, by query text
// (after the dialect's rebinding), so that SQLite parses each query once per
// connection rather than on every call. database/sql prepares a Stmt again
// on each connection it runs on, and Tx.StmtContext uses the one prepared
// on the transaction's connection.
//
// A statement is prepared on the pool only outside a transaction: with a
// transaction open, preparing on the pool could wait for the very
// connection the transaction holds (the write pool has one). So a query
// first met inside a transaction runs unprepared, and is noted; the
// transaction's end prepares it (see pending).
type stmtCache struct {
	db    *sql.DB
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
	// unprepared counts the queries run without a prepared statement.
	unprepared atomic.Int64
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, stmts: make(map[string]*sql.Stmt)}
}

// get returns the statement prepared for query, or nil.
func (c *stmtCache) get(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stmts[query]
}

// prepare returns the statement for query, preparing it if need be. It
// must not be called while holding a connection of c.db. It returns nil
// when the query cannot be prepared (the caller runs it unprepared and gets
// the error then) or the cache is full.
func (c *stmtCache) prepare(ctx context.Context, query string) *sql.Stmt {
	if st := c.get(query); st != nil {
		return st
	}
	c.mu.Lock()
	full := len(c.stmts) >= maxStmts
	c.mu.Unlock()
	if full {
		return nil
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prior := c.stmts[query]; prior != nil || c.stmts == nil {
		// Prepared meanwhile by another call, or the cache closed.
		_ = st.Close()
		return prior
	}
	c.stmts[query] = st
	return st
}

// close closes the statements; the cache prepares nothing afterwards.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.stmts {
		errs = append(errs, st.Close())
	}
	c.stmts = nil
	return errors.Join(errs...)
}

// pending is what a transaction met that its cache had not prepared.
type pending struct {
	queries []string
}

func (p *pending) add(query string) {
	for _, q := range p.queries {
		if q == query {
			return
		}
	}
	p.queries = append(p.queries, query)
}

// flush prepares the queries noted, once the transaction has ended.
func (p *pending) flush(ctx context.Context, c *stmtCache) {
	for _, q := range p.queries {
		c.prepare(ctx, q)
	}
}
