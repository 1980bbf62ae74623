-- 0003_outgoing_wire.sql: recognise this device's own messages in the log.
--
-- A message whose send got no answer stays 'sending'; it may still have
-- reached the log. wire_hash is the SHA-256 of the MLSMessage it was last
-- posted as, so that when the device reads its own entry back it can mark
-- the message sent at that position.
ALTER TABLE messages ADD COLUMN wire_hash BLOB;
