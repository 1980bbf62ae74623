-- Transparency logs. One file may hold several logs (the journal heads,
-- the access log), each named by its origin. Nothing here is secret: the
-- records are public to the log's readers, and the hashes are computed
-- from them.

-- logs: one row per log; size is the number of records, and the row is
-- what an append updates first, conditionally on the size it read, so
-- that two writers can never both append at one index.
CREATE TABLE logs (
	id     INTEGER PRIMARY KEY,
	origin TEXT    NOT NULL UNIQUE,
	size   INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0)
) STRICT;

-- records: the log's records, numbered from 0.
CREATE TABLE records (
	log  INTEGER NOT NULL REFERENCES logs (id),
	idx  INTEGER NOT NULL CHECK (idx >= 0),
	data BLOB    NOT NULL,
	PRIMARY KEY (log, idx)
) STRICT;

-- hashes: the Merkle tree's stored hashes, numbered as
-- golang.org/x/mod/sumdb/tlog.StoredHashIndex numbers them: about two per
-- record, the record's own hash and those of the subtrees it completes.
-- Small fixed-size rows, so no rowid.
CREATE TABLE hashes (
	log  INTEGER NOT NULL REFERENCES logs (id),
	idx  INTEGER NOT NULL CHECK (idx >= 0),
	hash BLOB    NOT NULL CHECK (length(hash) = 32),
	PRIMARY KEY (log, idx)
) STRICT, WITHOUT ROWID;
