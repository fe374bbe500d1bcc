-- 0005: what the caseload filters need to answer at 100,000 participants without a scan.
-- "Not yet sent" reads a per-participant count of pending outbox rows, kept by triggers in
-- the same transaction as the outbox change, instead of grouping millions of outbox rows.
CREATE TABLE participant_pending (
    participant_id TEXT PRIMARY KEY NOT NULL,
    pending INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO participant_pending (participant_id, pending)
    SELECT participant_id, count(*) FROM outbox WHERE state = 'pending' GROUP BY participant_id;

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

CREATE INDEX consent_by_status ON consent(status, participant_id);
CREATE INDEX esf_form_signature_owed ON esf_form(signature_owed, participant_id);
