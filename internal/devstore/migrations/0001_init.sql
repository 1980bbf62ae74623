-- 0001_init.sql: the device's MLS state, the Store of internal/mlsx.
--
-- Every BLOB here except group ids and KeyPackageRefs is secret: snapshots
-- hold the epoch's secrets and this device's private HPKE keys, ratchet
-- records say which message keys were used, key_packages holds private init
-- and encryption keys. From 0004_sealed.sql on, devstore seals each of
-- them under the device's storage key before writing it.
--
-- Epochs are uint64 in Go and SQLite's INTEGER is a signed 64-bit number:
-- devstore stores the int64 with the same bits, so an epoch past 2^63 reads
-- back negative in the sqlite3 shell and correctly through devstore.
--
-- STRICT tables refuse a value of the wrong type, such as a group id bound
-- as TEXT instead of BLOB, instead of converting it.

-- One row per group this device holds: the snapshot taken at the group's
-- last epoch change and, while a commit of this device's own awaits the
-- server's answer, that commit and the state it leads to (both NULL
-- otherwise).
CREATE TABLE groups (
	group_id       BLOB    NOT NULL PRIMARY KEY, -- the MLS group_id, raw bytes
	epoch          INTEGER NOT NULL,             -- the epoch of state
	state          BLOB    NOT NULL,             -- the adapter's snapshot (secret)
	pending_commit BLOB,                         -- this device's commit, an MLSMessage
	pending_state  BLOB,                         -- the state it leads to (secret)
	CHECK ((pending_commit IS NULL) = (pending_state IS NULL))
) STRICT;

-- One row per sender leaf whose ratchet moved since the snapshot, written
-- for every message sent (before it is encrypted: the reservation of its
-- generation) and every message received. SaveGroup deletes the group's
-- rows in the transaction that replaces its snapshot; deleting the group
-- deletes them through the foreign key. A row may carry another epoch than
-- the snapshot's; the adapter ignores those.
CREATE TABLE ratchets (
	group_id BLOB    NOT NULL REFERENCES groups (group_id) ON DELETE CASCADE,
	leaf     INTEGER NOT NULL, -- the sender's leaf index
	epoch    INTEGER NOT NULL, -- the epoch the record belongs to
	record   BLOB    NOT NULL, -- the adapter's fixed-size ratchet record
	PRIMARY KEY (group_id, leaf)
) STRICT, WITHOUT ROWID;

-- The private halves of this device's unused KeyPackages (RFC 9420 §10),
-- by KeyPackageRef (§5.2).
CREATE TABLE key_packages (
	ref     BLOB NOT NULL PRIMARY KEY, -- KeyPackageRef
	secrets BLOB NOT NULL              -- the adapter's encoding (secret)
) STRICT;
