-- Where each group's replay started, and why. A replay no longer always
-- starts at a log's first entry: a log whose prefix was deleted under
-- retention starts at its first kept entry (kept), and an opening whose
-- time range starts late starts at the archive's latest Welcome at or
-- before it. prev is the chain hash of the entry before start, from which
-- the chain was checked; why says in words which of these it was.
--
-- Rows of files made before this migration started at entry 1 from the
-- chain's genesis: they get start 1, kept 1 and an empty prev, which is
-- read as genesis.
ALTER TABLE progress ADD COLUMN start INTEGER NOT NULL DEFAULT 1;
ALTER TABLE progress ADD COLUMN prev  BLOB    NOT NULL DEFAULT X'';
ALTER TABLE progress ADD COLUMN why   TEXT    NOT NULL DEFAULT '';
ALTER TABLE progress ADD COLUMN kept  INTEGER NOT NULL DEFAULT 1;
