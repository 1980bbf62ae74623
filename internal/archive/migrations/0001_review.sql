-- The review store of one opening: what the replay read, and what it needs
-- to resume. It holds plaintext and must be handled as the opening's
-- result: it lives with the reviewers, never on the delivery server.

-- meta says what this file is the replay of, so that a resume with another
-- scope or other archive keys is refused instead of mixing two openings.
CREATE TABLE meta (
	name  TEXT NOT NULL PRIMARY KEY,
	value BLOB NOT NULL
) STRICT;

-- progress is one row per group in scope: how far its replay got. seq and
-- head are the last entry written and its chain hash; member is 1 while
-- the archive follows the group (its MLS state is in mls_groups).
CREATE TABLE progress (
	group_id BLOB    NOT NULL PRIMARY KEY,
	seq      INTEGER NOT NULL,
	head     BLOB    NOT NULL,
	member   INTEGER NOT NULL,
	done     INTEGER NOT NULL,
	records  INTEGER NOT NULL,
	failed   INTEGER NOT NULL,
	error    TEXT    NOT NULL
) STRICT;

-- records are the entries of the journal as the replay read them, one per
-- (group, seq). Entries outside the opening's time range are not written.
-- added and removed are JSON arrays of "user/device" (or "archive/key").
CREATE TABLE records (
	group_id      BLOB    NOT NULL,
	seq           INTEGER NOT NULL,
	epoch         INTEGER NOT NULL,
	kind          TEXT    NOT NULL,
	sender_user   TEXT    NOT NULL,
	sender_device TEXT    NOT NULL,
	sent_at       INTEGER NOT NULL, -- server time, Unix nanoseconds
	text          TEXT    NOT NULL,
	added         TEXT    NOT NULL,
	removed       TEXT    NOT NULL,
	status        TEXT    NOT NULL,
	chain         TEXT    NOT NULL,
	reason        TEXT    NOT NULL,
	PRIMARY KEY (group_id, seq)
) STRICT, WITHOUT ROWID;

-- mls_groups and mls_ratchets are the passive member's MLS state
-- (mlsx.Store), sealed with a key derived from the archive's keys: the
-- state holds epoch secrets, which read every message of their epoch,
-- in the opening's time range or not. A group's rows are deleted when its
-- replay is done.
CREATE TABLE mls_groups (
	group_id BLOB    NOT NULL PRIMARY KEY,
	epoch    INTEGER NOT NULL,
	state    BLOB    NOT NULL
) STRICT;

CREATE TABLE mls_ratchets (
	group_id BLOB    NOT NULL,
	leaf     INTEGER NOT NULL,
	epoch    INTEGER NOT NULL,
	record   BLOB    NOT NULL,
	PRIMARY KEY (group_id, leaf)
) STRICT, WITHOUT ROWID;
