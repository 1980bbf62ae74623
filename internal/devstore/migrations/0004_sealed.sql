-- 0004_sealed.sql: the database encrypted at rest (issue 4).
--
-- From this version on, every secret or private value is sealed by devstore
-- with AES-256-GCM under the device's storage key before it is written (see
-- the package comment and docs/design/client-storage.md). The BLOB columns
-- of 0001_init.sql keep their shape and now hold sealed values: groups.state,
-- groups.pending_commit, groups.pending_state, ratchets.record,
-- key_packages.secrets. The TEXT columns of 0002_history.sql that held
-- private text in the clear are replaced below.
--
-- devstore refuses a database written before this version (ErrUnencrypted)
-- and never migrates it: there are no deployments to carry over, and
-- sealing old rows in place would leave their plaintext in free pages and
-- in the write-ahead log. This migration therefore only ever runs on a new,
-- empty database, in the transaction that creates it, and may drop and
-- recreate tables.

DROP TABLE messages;
DROP TABLE conversations;

-- As in 0002_history.sql, but the local name is sealed: NULL when the
-- conversation has none, else the name sealed under
-- ('conversations', 'name', group_id).
CREATE TABLE conversations (
	group_id BLOB    NOT NULL PRIMARY KEY, -- the MLS group_id, raw bytes
	name     BLOB,                         -- local only, sealed (private)
	cursor   INTEGER NOT NULL DEFAULT 0,   -- last log entry processed and recorded here
	removed  INTEGER NOT NULL DEFAULT 0 CHECK (removed IN (0, 1)), -- this device is no longer a member
	created  INTEGER NOT NULL              -- when this device first knew the group
) STRICT;

-- As in 0002_history.sql and 0003_outgoing_wire.sql, but who sent a message
-- and what it says are one sealed body, under ('messages', 'body',
-- group_id, id): devstore picks the id before it seals, so a body cannot be
-- moved to another message or conversation. What stays clear orders and
-- finds messages: the log position, the time, the delivery state, and the
-- SHA-256 of the ciphertext this device posted (the server holds that
-- ciphertext anyway).
CREATE TABLE messages (
	id        INTEGER NOT NULL PRIMARY KEY, -- local order
	group_id  BLOB    NOT NULL REFERENCES conversations (group_id) ON DELETE CASCADE,
	seq       INTEGER,                      -- position in the group's log; NULL while sending
	time      INTEGER NOT NULL,             -- the server's acceptance time; local time while sending
	body      BLOB    NOT NULL,             -- sender user, sender device and text, sealed (secret)
	state     TEXT    NOT NULL CHECK (state IN ('sending', 'sent', 'received')),
	wire_hash BLOB,                         -- SHA-256 of the MLSMessage last posted, while sending
	UNIQUE (group_id, seq)
) STRICT;

-- One row: an empty value sealed under the database's key when the
-- database was created. devstore opens it before it writes anything, so a
-- wrong key is reported as such and changes nothing.
CREATE TABLE key_check (
	id     INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
	sealed BLOB    NOT NULL
) STRICT;
