-- 0011: a sent-log line keeps only what differs from line to line.
-- A sync writes one line for every item delivered: tens of thousands in a first push. Most
-- of a line was the same for every item of one kind to one recipient: the record type, the
-- op, the programme and strand, the names of the fields sent, and the Article 6 and 9
-- bases. Those are now kept once each, in sent_basis, and a line points at its basis. The
-- idempotency key is not stored either: it is '<record_id>:<version>:<recipient>' by
-- definition (sync.projection.idempotency_key). A line is about a third as long, and
-- writing one costs about half as much.
-- The view sent_log gives every line with the columns the table had, for reading.
CREATE TABLE sent_basis (
    id INTEGER PRIMARY KEY,
    recipient TEXT NOT NULL,
    record_type TEXT NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('upsert', 'delete', 'withdraw')),
    programme TEXT NOT NULL,
    strand TEXT NOT NULL,
    fields TEXT NOT NULL,                 -- JSON list of field names, never values
    article_6 TEXT NOT NULL,
    article_9 TEXT NOT NULL DEFAULT '',   -- '' when no special category data went
    UNIQUE (recipient, record_type, op, programme, strand, fields, article_6, article_9)
);
CREATE TABLE sent_line (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    participant_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    record_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    basis INTEGER NOT NULL REFERENCES sent_basis(id),
    one_off_reason TEXT NOT NULL DEFAULT '',
    sent_at TEXT NOT NULL,
    controller_status TEXT NOT NULL CHECK (controller_status IN ('accepted', 'duplicate'))
);
INSERT INTO sent_basis (recipient, record_type, op, programme, strand, fields, article_6, article_9)
SELECT recipient, record_type, op, programme, strand, fields, article_6, coalesce(article_9, '')
FROM sent_log GROUP BY recipient, record_type, op, programme, strand, fields, article_6,
    coalesce(article_9, '') ORDER BY min(seq);
INSERT INTO sent_line (seq, participant_id, recipient, record_id, version, basis, one_off_reason,
    sent_at, controller_status)
SELECT s.seq, s.participant_id, s.recipient, s.record_id, s.version, b.id, s.one_off_reason,
    s.sent_at, s.controller_status
FROM sent_log AS s JOIN sent_basis AS b ON b.recipient = s.recipient AND b.record_type = s.record_type
    AND b.op = s.op AND b.programme = s.programme AND b.strand = s.strand AND b.fields = s.fields
    AND b.article_6 = s.article_6 AND b.article_9 = coalesce(s.article_9, '')
ORDER BY s.seq;
-- The sequence carries on from the old table's (it may be past the last line kept).
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'sent_line', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'sent_line');
UPDATE sqlite_sequence SET seq = max(seq, coalesce(
    (SELECT seq FROM sqlite_sequence WHERE name = 'sent_log'), 0)) WHERE name = 'sent_line';
DROP TABLE sent_log;
CREATE UNIQUE INDEX sent_line_item ON sent_line(participant_id, recipient, record_id, version);
CREATE VIEW sent_log AS
SELECT l.seq, l.record_id || ':' || l.version || ':' || l.recipient AS idempotency_key,
    l.participant_id, l.recipient, b.record_type, l.record_id, l.version, b.op, b.programme,
    b.strand, b.fields, b.article_6, nullif(b.article_9, '') AS article_9, l.one_off_reason,
    l.sent_at, l.controller_status
FROM sent_line AS l JOIN sent_basis AS b ON b.id = l.basis;
