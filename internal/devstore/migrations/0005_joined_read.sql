-- 0005_joined_read.sql: where this device's history of a conversation
-- starts, and how far its person has read it.
--
-- A device added to a conversation reads it from the Welcome that added
-- it: what was sent before was never encrypted for it. joined_seq lets a
-- front end say so at the right place instead of guessing. read_seq is
-- the last log entry the person has seen on this device, for unread
-- counts that survive a restart.

ALTER TABLE conversations ADD COLUMN joined_seq INTEGER NOT NULL DEFAULT 0; -- entry whose Welcome last added this device; 0: it created the group
ALTER TABLE conversations ADD COLUMN joined_at  INTEGER NOT NULL DEFAULT 0; -- when it was added (server time, Unix ms); 0 with joined_seq 0
ALTER TABLE conversations ADD COLUMN read_seq   INTEGER NOT NULL DEFAULT 0; -- last entry its person has seen here
