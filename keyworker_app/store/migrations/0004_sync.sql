-- 0004: what the sync engine keeps (DESIGN §5-6). Never edit a released migration.
-- Nothing here holds a record's values: only ids, versions, recipients (sharing profile ids),
-- field NAMES, reasons as codes and the controller's plain messages (which name fields and
-- ids, never values). The one exception is a one-off share's reason, typed by the
-- keyworker, which lives here inside the encrypted store like every other note.

-- Delivery state of one item: one record version for one recipient. The idempotency key
-- '<record_id>:<version>:<recipient>' is what the controller applies exactly once.
-- 'pending' means projected and (maybe) sent, with no final answer yet; every other
-- status is final. An outbox row is done once every item projected from it is final.
CREATE TABLE sync_item (
    idempotency_key TEXT PRIMARY KEY NOT NULL,
    outbox_seq INTEGER,                   -- the outbox row it came from, or
    one_off_seq INTEGER,                  -- the one-off share it came from

    record_type TEXT NOT NULL,
    record_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    participant_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('upsert', 'delete', 'withdraw')),
    status TEXT NOT NULL CHECK (status IN
        ('pending', 'accepted', 'duplicate', 'rejected', 'conflict', 'held_back')),
    reason TEXT NOT NULL DEFAULT '',      -- a HoldReason value or the controller's code
    message TEXT NOT NULL DEFAULT '',     -- the controller's plain reason, if any
    attempts INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);
CREATE INDEX sync_item_by_outbox ON sync_item(outbox_seq);
CREATE INDEX sync_item_by_one_off ON sync_item(one_off_seq);
CREATE INDEX sync_item_by_participant ON sync_item(participant_id, recipient, status);
CREATE INDEX sync_item_by_status ON sync_item(status, reason);

-- The participant's sharing history: every item a recipient holds (accepted, or answered
-- duplicate because it already held it), with the field names and the lawful basis it
-- went on. Withdrawal notices and deletions go only to recipients listed here.
CREATE TABLE sent_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
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
CREATE INDEX sent_log_by_participant ON sent_log(participant_id, recipient);
CREATE INDEX sent_log_by_record ON sent_log(record_id, recipient);

-- Items the controller refused, set aside for the keyworker. They never block anything
-- else; saving a corrected record makes a new version, which goes through the outbox
-- again, and marks these resolved once it is accepted.
CREATE TABLE quarantine (
    idempotency_key TEXT PRIMARY KEY NOT NULL,
    record_type TEXT NOT NULL,
    record_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    participant_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    code TEXT NOT NULL,
    reason TEXT NOT NULL,
    quarantined_at TEXT NOT NULL,
    resolved_at TEXT
);
CREATE INDEX quarantine_open ON quarantine(resolved_at, participant_id);
CREATE INDEX quarantine_by_record ON quarantine(record_id, recipient);

-- One-off shares the keyworker asked for (a one-off sharing profile, chosen fields, and
-- the reason), waiting for the next push. Projected at push time like everything else.
CREATE TABLE one_off_share (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record_type TEXT NOT NULL,
    record_id TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    fields TEXT NOT NULL,                 -- JSON list of the chosen field names
    reason TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done'))
);
CREATE INDEX one_off_share_pending ON one_off_share(state, seq);

-- The last run and where the referral pull has got to (one row).
CREATE TABLE sync_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_sync_at TEXT,
    last_outcome TEXT NOT NULL DEFAULT '',
    last_summary TEXT NOT NULL DEFAULT '{}',  -- JSON of counts only
    referral_cursor TEXT
);
INSERT INTO sync_state (id) VALUES (1);
