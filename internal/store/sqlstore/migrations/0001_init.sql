-- 0001_init.sql: the delivery server's state, the Store of internal/store.
--
-- Nothing here is secret: hashes of invitation secrets, device certificates,
-- public KeyPackages, MLS messages as devices sent them (application
-- messages are ciphertext, handshake messages are public by design) and the
-- public member lists the server follows.
--
-- The file is written in SQLite's dialect. sqlstore's dialect table rewrites
-- it for PostgreSQL: BLOB becomes BYTEA, INTEGER becomes BIGINT, an
-- "INTEGER PRIMARY KEY" serial becomes an identity column, and STRICT is
-- dropped. Everything else is the common subset of both engines.
--
-- Conventions:
--   - Times are UTC Unix nanoseconds (INTEGER); NULL where "none" is a value
--     (revoked_at, claimed_at).
--   - Booleans are INTEGER 0 or 1: STRICT tables have no BOOLEAN.
--   - Epochs, sequence numbers and cursors are uint64 in Go and a signed
--     64-bit INTEGER here: sqlstore stores the int64 with the same bits.
--   - Group ids are BLOB (the MLS group_id, any bytes); user, device,
--     invitation and Welcome ids are TEXT.
--   - A "serial" column numbers rows in insertion order, for "oldest first"
--     and "enrolment order" without trusting the callers' clocks.
--   - STRICT tables refuse a value of the wrong type (a group id bound as
--     TEXT, say) instead of converting it.
-- Reserved words are avoided: user_id, group_id, never "user" or "group".

-- One-time invitations to enrol a device (candord invite USER).
CREATE TABLE invitations (
	id          TEXT    NOT NULL PRIMARY KEY,
	user_id     TEXT    NOT NULL,               -- the user the device will belong to
	secret_hash BLOB    NOT NULL,               -- SHA-256 of the secret; the secret is never stored
	created     INTEGER NOT NULL,
	expires     INTEGER NOT NULL,               -- unusable from this instant on
	used        INTEGER NOT NULL CHECK (used IN (0, 1))
) STRICT;

-- Enrolled devices, revoked ones included: a device row is never deleted, so
-- its id and fingerprint are never reused.
CREATE TABLE devices (
	serial      INTEGER PRIMARY KEY,            -- enrolment order
	id          TEXT    NOT NULL UNIQUE,        -- assigned by the server; the certificate's OU
	user_id     TEXT    NOT NULL,               -- the certificate's CN
	name        TEXT    NOT NULL,
	certificate BLOB    NOT NULL,               -- DER
	fingerprint BLOB    NOT NULL UNIQUE,        -- SHA-256 of certificate: looked up on every request
	enrolled_at INTEGER NOT NULL,
	revoked_at  INTEGER                         -- NULL: not revoked
) STRICT;
CREATE INDEX devices_by_user ON devices (user_id, serial);

-- The key directory: public KeyPackages (MLSMessage-wrapped), by
-- KeyPackageRef. A one-time KeyPackage is marked claimed when a claim hands
-- it out; a last-resort one is marked claimed when a newer one replaces it.
-- Claimed rows stay, so that KeyPackageOwner still routes the Welcomes sent
-- to them. Revoking a device deletes its rows.
CREATE TABLE key_packages (
	serial      INTEGER PRIMARY KEY,            -- upload order: claims take the oldest first
	ref         BLOB    NOT NULL UNIQUE,        -- KeyPackageRef (RFC 9420 §5.2)
	device_id   TEXT    NOT NULL REFERENCES devices (id),
	data        BLOB    NOT NULL,
	last_resort INTEGER NOT NULL CHECK (last_resort IN (0, 1)),
	added       INTEGER NOT NULL,
	claimed_at  INTEGER                         -- NULL: still offered
) STRICT;
-- What a claim looks for: a device's unclaimed KeyPackages, oldest first.
CREATE INDEX key_packages_offered ON key_packages (device_id, last_resort, serial)
	WHERE claimed_at IS NULL;
-- A device offers at most one last-resort KeyPackage.
CREATE UNIQUE INDEX key_packages_one_last_resort ON key_packages (device_id)
	WHERE last_resort = 1 AND claimed_at IS NULL;

-- Groups as the server follows them.
CREATE TABLE groups (
	id      BLOB    NOT NULL PRIMARY KEY,       -- the MLS group_id
	epoch   INTEGER NOT NULL,
	head    INTEGER NOT NULL,                   -- seq of the last entry; 0 for an empty log
	roster  BLOB    NOT NULL,                   -- the mlsx.Roster, in its stored form
	created INTEGER NOT NULL
) STRICT;

-- The member devices of each group, each with its cursor: the seq up to
-- which it has processed the log. A cursor only moves forward.
CREATE TABLE members (
	group_id  BLOB    NOT NULL REFERENCES groups (id),
	device_id TEXT    NOT NULL REFERENCES devices (id),
	cursor    INTEGER NOT NULL,
	PRIMARY KEY (group_id, device_id)
) STRICT;
CREATE INDEX members_by_device ON members (device_id);

-- Each group's log: ordered, append-only, never updated or deleted. It is
-- also the archive's journal.
CREATE TABLE entries (
	group_id     BLOB    NOT NULL REFERENCES groups (id),
	seq          INTEGER NOT NULL,              -- 1, 2, 3, … with no gaps
	epoch        INTEGER NOT NULL,              -- the epoch the message was sent in
	is_commit    INTEGER NOT NULL CHECK (is_commit IN (0, 1)), -- it ended epoch
	sender       TEXT    NOT NULL,              -- no reference: the server's external sender is no device
	sent_at      INTEGER NOT NULL,              -- when the server accepted it
	message      BLOB    NOT NULL,              -- the MLSMessage as sent
	message_hash BLOB    NOT NULL,              -- SHA-256 of message: the same bytes twice are a replay
	PRIMARY KEY (group_id, seq),
	UNIQUE (group_id, message_hash)
) STRICT;
-- An epoch ends with one commit; CommitSeq finds it.
CREATE UNIQUE INDEX entries_one_commit_per_epoch ON entries (group_id, epoch)
	WHERE is_commit = 1;

-- Welcomes waiting for their devices to acknowledge them.
CREATE TABLE welcomes (
	serial    INTEGER PRIMARY KEY,              -- queueing order
	id        TEXT    NOT NULL UNIQUE,          -- chosen by the server
	device_id TEXT    NOT NULL REFERENCES devices (id),
	group_id  BLOB    NOT NULL,
	seq       INTEGER NOT NULL,                 -- the commit that sent it
	queued_at INTEGER NOT NULL,
	data      BLOB    NOT NULL,                 -- the Welcome, MLSMessage-wrapped
	FOREIGN KEY (group_id, seq) REFERENCES entries (group_id, seq)
) STRICT;
CREATE INDEX welcomes_by_device ON welcomes (device_id, serial);
