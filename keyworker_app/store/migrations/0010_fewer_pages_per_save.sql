-- 0010: a save writes two pages fewer. With SQLCipher each page a transaction writes is
-- encrypted and sealed (an HMAC) on its way to the WAL, so every page a save touches costs.
-- Two of a save's pages were bookkeeping on tables of their own:
--
-- * The outbox's AUTOINCREMENT rewrote the sqlite_sequence page on every insert. Outbox
--   rows are never deleted, so an INTEGER PRIMARY KEY (the largest seq plus one) already
--   never hands out a seq twice; should the newest rows ever be deleted, the largest seq
--   deleted is kept in meta and a later row is moved past it, so a seq still never comes
--   back (sync_item.outbox_seq names outbox rows by it). Only a delete writes meta.
-- * The audit chain's head (the last entry's seq and hash) was rewritten in meta on every
--   transaction. The last entry now carries a mark itself (chain_end = 1), moved by each
--   transaction to its own last entry: the mark is on the page the new entry is written to
--   anyway. Cutting entries off the end leaves a last entry with no mark. The start of the
--   chain (the hash of entry 1) is kept in meta, written once, so emptying the log or
--   putting another chain in its place is caught as well.
--
-- SQLite cannot drop AUTOINCREMENT in place, so the outbox is copied (every seq and value
-- kept); dropping it drops its index and 0005's triggers, which are made again unchanged.

-- Where a deleted newest row had taken the sequence past the rows kept, remember it.
INSERT INTO meta (key, value)
    SELECT 'outbox_last_seq', seq FROM sqlite_sequence
    WHERE name = 'outbox' AND seq > coalesce((SELECT max(seq) FROM outbox), 0);
CREATE TABLE outbox_new (
    seq INTEGER PRIMARY KEY,
    record_type TEXT NOT NULL,
    record_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    participant_id TEXT NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('upsert', 'delete', 'withdraw')),
    created_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'quarantined'))
);
INSERT INTO outbox_new (seq, record_type, record_id, version, participant_id, op, created_at, state)
    SELECT seq, record_type, record_id, version, participant_id, op, created_at, state
    FROM outbox ORDER BY seq;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_pending ON outbox(state, seq);

CREATE TRIGGER outbox_pending_insert AFTER INSERT ON outbox WHEN new.state = 'pending' BEGIN
    INSERT INTO participant_pending (participant_id, pending) VALUES (new.participant_id, 1)
        ON CONFLICT(participant_id) DO UPDATE SET pending = pending + 1;
END;
CREATE TRIGGER outbox_pending_update AFTER UPDATE OF state ON outbox
    WHEN (old.state = 'pending') != (new.state = 'pending') BEGIN
    INSERT INTO participant_pending (participant_id, pending)
        VALUES (new.participant_id, CASE WHEN new.state = 'pending' THEN 1 ELSE -1 END)
        ON CONFLICT(participant_id) DO UPDATE SET pending = pending + excluded.pending;
    DELETE FROM participant_pending WHERE participant_id = new.participant_id AND pending <= 0;
END;
CREATE TRIGGER outbox_pending_delete AFTER DELETE ON outbox WHEN old.state = 'pending' BEGIN
    UPDATE participant_pending SET pending = pending - 1 WHERE participant_id = old.participant_id;
    DELETE FROM participant_pending WHERE participant_id = old.participant_id AND pending <= 0;
END;

-- A seq is never used twice: deleting the newest row keeps its seq in meta ...
CREATE TRIGGER outbox_seq_kept AFTER DELETE ON outbox
    WHEN old.seq > coalesce((SELECT max(seq) FROM outbox), 0) BEGIN
    INSERT INTO meta (key, value) VALUES ('outbox_last_seq', old.seq)
        ON CONFLICT(key) DO UPDATE
        SET value = max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER));
END;
-- ... and a row that would take a seq at or below it is moved just past it.
CREATE TRIGGER outbox_seq_never_reused AFTER INSERT ON outbox
    WHEN new.seq <= (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'outbox_last_seq') BEGIN
    UPDATE outbox SET seq = (SELECT CAST(value AS INTEGER) + 1 FROM meta WHERE key = 'outbox_last_seq')
        WHERE seq = new.seq;
END;

-- The audit chain's end: the mark goes on the entry the recorded head names, if that entry
-- is there with that hash. A log already cut, extended or edited at its end gets no mark,
-- so verification goes on reporting it.
ALTER TABLE audit_log ADD COLUMN chain_end INTEGER NOT NULL DEFAULT 0;
UPDATE audit_log SET chain_end = 1
    WHERE seq = (SELECT CAST(substr(value, 1, instr(value, ':') - 1) AS INTEGER)
                 FROM meta WHERE key = 'audit_head')
      AND hash = (SELECT substr(value, instr(value, ':') + 1) FROM meta WHERE key = 'audit_head');
-- The chain's start: entry 1's hash, or 'missing' where entry 1 is already gone from a log
-- that was begun (so that is reported too).
INSERT INTO meta (key, value)
    SELECT 'audit_start', coalesce((SELECT hash FROM audit_log WHERE seq = 1), 'missing')
    WHERE EXISTS (SELECT 1 FROM audit_log) OR EXISTS (SELECT 1 FROM meta WHERE key = 'audit_head');
DELETE FROM meta WHERE key = 'audit_head';
