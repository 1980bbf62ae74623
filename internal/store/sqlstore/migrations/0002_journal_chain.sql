-- 0002_journal_chain.sql: the journal's hash chain (internal/journal).
--
-- Each entry keeps the chain hash the store computed when it appended it,
-- over the entry and its predecessor's hash, and each group keeps its
-- head's hash, so the next append needs no scan. Both are NULL only for
-- what was written before this version (no deployment has any): a NULL
-- head_hash is the chain's genesis.

ALTER TABLE entries ADD COLUMN hash BLOB;      -- journal.EntryHash of the entry, 32 bytes
ALTER TABLE groups ADD COLUMN head_hash BLOB;  -- the hash of the entry at head; NULL: genesis
