-- 0006_journal_chain.sql: the archive journal's chain hash of the last
-- entry this device processed in each conversation (package journal's
-- EntryHash), computed here from what the server delivered, so that the
-- device can later check that the server's signed journal heads commit to
-- the same history (docs/design/journal.md, "Who checks").
--
-- It is written in the transaction that moves the cursor: a crash cannot
-- leave the two apart. Hashes are public (the server serves and signs
-- them), so they are not sealed.

ALTER TABLE conversations ADD COLUMN chain_seq  INTEGER NOT NULL DEFAULT 0; -- the entry chain_hash is of; 0: no chain yet (joined, or from before this migration)
ALTER TABLE conversations ADD COLUMN chain_hash BLOB;                       -- its 32-byte chain hash; NULL with chain_seq 0
