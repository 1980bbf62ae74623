-- 0003_retention.sql: retention (deleting a prefix of a group's log) and
-- the membership history that legal holds and scoped openings read.
--
-- From this version on, a group's log (0001 says "never updated or
-- deleted") loses whole prefixes: DeleteBefore deletes the entries before
-- a replay anchor older than the retention period, and the Welcomes queued
-- with them. What is kept is never changed.
--
-- Where a log begins. Two columns on groups rather than a table of their
-- own: a log has exactly one start, read and moved together with its head
-- (Log compares a cursor with both), and under PostgreSQL the row lock that
-- Append's UPDATE of the head takes is the same one DeleteBefore's UPDATE
-- of the start takes, so the two serialise on one row with no join and no
-- second lock order. A log never cut starts at 1 on nothing (start_prev
-- NULL: its entry 1 is chained to the journal's genesis); a cut one starts
-- at its first entry kept, whose predecessor's chain hash, deleted with
-- it, start_prev keeps so that the chain can still be checked from there.
ALTER TABLE groups ADD COLUMN start_seq INTEGER NOT NULL DEFAULT 1;
ALTER TABLE groups ADD COLUMN start_prev BLOB; -- 32 bytes; NULL: never cut

-- Every membership of a device in a group, past and present: a hold on a
-- user covers every group any of the user's devices was ever in, and
-- members forgets a device once a commit removes it. A span runs from the
-- entry whose commit added the device (0: it created the group) to the one
-- whose commit removed it (NULL: still a member). Rows are never deleted,
-- by retention either: the seqs may name deleted entries, the fact of the
-- membership stays. ("left" is a reserved word in both engines, hence the
-- _seq names.)
CREATE TABLE spans (
	group_id   BLOB    NOT NULL REFERENCES groups (id),
	device_id  TEXT    NOT NULL REFERENCES devices (id),
	joined_seq INTEGER NOT NULL,
	left_seq   INTEGER,                         -- NULL: still a member
	PRIMARY KEY (group_id, device_id, joined_seq)
) STRICT;
-- A device is a member of a group at most once at a time.
CREATE UNIQUE INDEX spans_one_open ON spans (group_id, device_id)
	WHERE left_seq IS NULL;
-- Spans(device) reads them in group then joined order.
CREATE INDEX spans_by_device ON spans (device_id, group_id, joined_seq);

-- Current members get a span from 0: the store did not record when they
-- joined, and no deployment predates this version, so there is nothing
-- better to recover; 0 is the conservative guess, since a span that starts
-- too early makes a hold or an opening cover more of the log, never less.
INSERT INTO spans (group_id, device_id, joined_seq)
	SELECT group_id, device_id, 0 FROM members;

-- Welcomes by the entry they were queued with. DeleteBefore deletes those
-- of a prefix by it, and deleting an entry makes SQLite look for Welcomes
-- that still reference it (the foreign key), which without this index is a
-- scan of every Welcome for every entry deleted. WelcomeSeqs reads a
-- group's Welcomes in seq order through it too.
CREATE INDEX welcomes_by_entry ON welcomes (group_id, seq);
