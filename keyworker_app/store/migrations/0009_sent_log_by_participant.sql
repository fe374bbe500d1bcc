-- 0009: the sent log is indexed once, by participant, recipient, record and version.
-- Every item a sync delivers adds a sent-log line, and each index on the table takes an
-- insert at a random place; with three (the idempotency key, participant and recipient,
-- record and recipient) those inserts were most of a sync's time on the laptop. One
-- unique index on (participant_id, recipient, record_id, version) answers everything the
-- three did: it is unique exactly when the idempotency key '<record_id>:<version>:
-- <recipient>' is (a record belongs to one participant); the sharing history and the
-- withdrawal notices read a participant's lines (its first column, or two); a deletion
-- reads a record's lines within its participant; and the ledger finds delivered items by
-- all four. A sync writes a participant's items together, so the inserts land side by side.
-- SQLite cannot drop a column's inline UNIQUE, so the table is copied (seq and every value
-- kept, and the AUTOINCREMENT sequence where it was).
CREATE TABLE sent_log_new (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    record_type TEXT NOT NULL,
    record_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('upsert', 'delete', 'withdraw')),
    programme TEXT NOT NULL,
    strand TEXT NOT NULL,
    fields TEXT NOT NULL,                 -- JSON list of field names, never values
    article_6 TEXT NOT NULL,
    article_9 TEXT,                       -- NULL when no special category data went
    one_off_reason TEXT NOT NULL DEFAULT '',
    sent_at TEXT NOT NULL,
    controller_status TEXT NOT NULL CHECK (controller_status IN ('accepted', 'duplicate'))
);
INSERT INTO sent_log_new (seq, idempotency_key, participant_id, recipient, record_type, record_id,
    version, op, programme, strand, fields, article_6, article_9, one_off_reason, sent_at,
    controller_status)
SELECT seq, idempotency_key, participant_id, recipient, record_type, record_id, version, op,
    programme, strand, fields, article_6, article_9, one_off_reason, sent_at, controller_status
FROM sent_log ORDER BY seq;
-- The sequence carries on from the old table's (it may be past the last line kept).
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'sent_log_new', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'sent_log_new');
UPDATE sqlite_sequence SET seq = max(seq, coalesce(
    (SELECT seq FROM sqlite_sequence WHERE name = 'sent_log'), 0)) WHERE name = 'sent_log_new';
DROP TABLE sent_log;
ALTER TABLE sent_log_new RENAME TO sent_log;
CREATE UNIQUE INDEX sent_log_item ON sent_log(participant_id, recipient, record_id, version);
