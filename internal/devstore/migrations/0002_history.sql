-- 0002_history.sql: the client's own tables (package client): the
-- conversations this device is in, how far it has read each group's log, and
-- the message history it shows to its person.
--
-- messages.text was plaintext here; 0004_sealed.sql replaces these tables
-- with ones whose private columns are sealed. Times are Unix milliseconds in
-- UTC.

-- One row per group this device has created, joined or been removed from.
-- It outlives the MLS state (table groups), which is forgotten when the
-- device leaves or is removed, so that the history stays readable.
CREATE TABLE conversations (
	group_id BLOB    NOT NULL PRIMARY KEY, -- the MLS group_id, raw bytes
	name     TEXT    NOT NULL DEFAULT '',  -- local only: never sent to the server
	cursor   INTEGER NOT NULL DEFAULT 0,   -- last log entry processed and recorded here
	removed  INTEGER NOT NULL DEFAULT 0 CHECK (removed IN (0, 1)), -- this device is no longer a member
	created  INTEGER NOT NULL              -- when this device first knew the group
) STRICT;

-- One row per application message this device sent or received. A message
-- this device sends is written as 'sending' before it leaves, and gets its
-- log position when the server acknowledges it ('sent').
CREATE TABLE messages (
	id            INTEGER NOT NULL PRIMARY KEY, -- local order
	group_id      BLOB    NOT NULL REFERENCES conversations (group_id) ON DELETE CASCADE,
	seq           INTEGER,                      -- position in the group's log; NULL while sending
	sender_user   TEXT    NOT NULL,
	sender_device TEXT    NOT NULL,
	time          INTEGER NOT NULL,             -- the server's acceptance time; local time while sending
	text          TEXT    NOT NULL,             -- plaintext (secret)
	state         TEXT    NOT NULL CHECK (state IN ('sending', 'sent', 'received')),
	UNIQUE (group_id, seq)
) STRICT;
