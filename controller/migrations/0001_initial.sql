-- Keyworker controller schema, version 1.
-- Plain SQL that runs unchanged on SQLite and PostgreSQL: TEXT, BIGINT and constraints
-- only; no autoincrement (ids are UUIDs, ordering is by fixed-width UTC text plus id).
-- Timestamps are ISO-8601 UTC text, e.g. 2025-01-31T09:00:00.000000Z.

-- One-time enrolment codes. Only a SHA-256 of the code is kept.
CREATE TABLE enrolment_codes (
    code_hash    TEXT PRIMARY KEY,
    keyworker_id TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    used_at      TEXT,
    device_id    TEXT
);

-- Enrolled laptops. Only a SHA-256 of the bearer token is kept.
CREATE TABLE devices (
    id           TEXT PRIMARY KEY,
    keyworker_id TEXT NOT NULL,
    device_name  TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    enrolled_at  TEXT NOT NULL,
    last_seen_at TEXT,
    revoked_at   TEXT
);

-- Every item accepted from a push, exactly once per idempotency key.
CREATE TABLE received_items (
    idempotency_key TEXT PRIMARY KEY,
    recipient       TEXT NOT NULL,
    record_type     TEXT NOT NULL,
    record_id       TEXT NOT NULL,
    version         BIGINT NOT NULL,
    op              TEXT NOT NULL,
    participant_id  TEXT NOT NULL,
    programme       TEXT NOT NULL,
    strand          TEXT NOT NULL,
    payload         TEXT NOT NULL,
    batch_id        TEXT NOT NULL,
    device_id       TEXT NOT NULL REFERENCES devices (id),
    received_at     TEXT NOT NULL
);
CREATE INDEX received_items_recipient ON received_items (recipient, received_at);

-- The newest version held of each record for each recipient: the conflict check.
CREATE TABLE record_heads (
    record_id  TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    version    BIGINT NOT NULL,
    PRIMARY KEY (record_id, recipient)
);

-- Consent withdrawal notices, one per withdraw item accepted.
CREATE TABLE withdrawals (
    idempotency_key TEXT PRIMARY KEY REFERENCES received_items (idempotency_key),
    recipient       TEXT NOT NULL,
    participant_id  TEXT NOT NULL,
    consent_id      TEXT NOT NULL,
    withdrawn_on    TEXT,
    device_id       TEXT NOT NULL REFERENCES devices (id),
    received_at     TEXT NOT NULL
);
CREATE INDEX withdrawals_recipient ON withdrawals (recipient, participant_id);

-- Referrals queued for a keyworker; delivered when first pulled, acked when stored.
CREATE TABLE referrals (
    id              TEXT PRIMARY KEY,
    keyworker_id    TEXT NOT NULL,
    payload         TEXT NOT NULL,
    queued_at       TEXT NOT NULL,
    delivered_at    TEXT,
    acked_at        TEXT,
    acked_by_device TEXT REFERENCES devices (id)
);
CREATE INDEX referrals_queue ON referrals (keyworker_id, queued_at, id);

-- Instructions for one device (lock, revoke): sent at each connection until acked.
CREATE TABLE instructions (
    id           TEXT PRIMARY KEY,
    device_id    TEXT NOT NULL REFERENCES devices (id),
    kind         TEXT NOT NULL,
    action       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    delivered_at TEXT,
    acked_at     TEXT
);
CREATE INDEX instructions_device ON instructions (device_id, created_at);
