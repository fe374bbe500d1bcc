-- 0012: a save's per-participant bookkeeping is one row, on one page.
-- A save wrote two pages at random places for its participant besides the record itself:
-- the participant's pending count (participant_pending) and the audit log's index entry
-- (audit_by_participant). At 50,000 participants neither page is usually in the cache, so
-- the encrypted store read and decrypted both, and sealed both on the way to the WAL.
--
-- Now one row per participant, in participant_activity, holds the pending count and the seq
-- of the newest audit entry about the participant (last_audit); each audit entry about a
-- participant names the entry before it about the same participant (participant_prev).
-- A participant's history is read by following those links from last_audit, newest first,
-- as the index was read, and audit verification checks every link and every last_audit, so
-- a history cannot be cut short unnoticed. The table is small (a row per participant, not
-- per entry), so it stays in the page cache. Entries about no participant are not linked.
--
-- participant_pending stays, as a view with the same columns and rows (participants with
-- something not yet sent); looking a participant up in it is a primary-key search. It has
-- no index of its own: SQLite rewrites a partial index's entry whenever a column its WHERE
-- names changes, so "WHERE pending > 0" would put a page back on every save. Summing every
-- count (the status bar's "waiting to send") reads one short row per participant.
CREATE TABLE participant_activity (
    participant_id TEXT PRIMARY KEY NOT NULL,
    pending INTEGER NOT NULL DEFAULT 0,   -- outbox rows not yet sent
    last_audit INTEGER                    -- seq of the newest audit entry about them
) WITHOUT ROWID;
INSERT INTO participant_activity (participant_id, pending, last_audit)
    SELECT participant_id, sum(pending), max(last_audit) FROM (
        SELECT participant_id, pending, NULL AS last_audit FROM participant_pending
        UNION ALL
        SELECT participant_id, 0, max(seq) FROM audit_log WHERE participant_id != ''
        GROUP BY participant_id)
    GROUP BY participant_id;

ALTER TABLE audit_log ADD COLUMN participant_prev INTEGER;
UPDATE audit_log SET participant_prev = (
    SELECT max(b.seq) FROM audit_log AS b
    WHERE b.participant_id = audit_log.participant_id AND b.seq < audit_log.seq)
WHERE participant_id != '';
DROP INDEX audit_by_participant;

-- The audit entry's participant_prev is written by the insert itself (see audit.append);
-- the trigger moves the participant's last_audit on to the new entry, whoever inserts it.
CREATE TRIGGER audit_log_participant AFTER INSERT ON audit_log WHEN new.participant_id != '' BEGIN
    INSERT INTO participant_activity (participant_id, last_audit) VALUES (new.participant_id, new.seq)
        ON CONFLICT(participant_id) DO UPDATE SET last_audit = excluded.last_audit;
END;

DROP TRIGGER outbox_pending_insert;
DROP TRIGGER outbox_pending_update;
DROP TRIGGER outbox_pending_delete;
DROP TABLE participant_pending;
CREATE VIEW participant_pending AS
    SELECT participant_id, pending FROM participant_activity WHERE pending > 0;

CREATE TRIGGER outbox_pending_insert AFTER INSERT ON outbox WHEN new.state = 'pending' BEGIN
    INSERT INTO participant_activity (participant_id, pending) VALUES (new.participant_id, 1)
        ON CONFLICT(participant_id) DO UPDATE SET pending = pending + 1;
END;
CREATE TRIGGER outbox_pending_update AFTER UPDATE OF state ON outbox
    WHEN (old.state = 'pending') != (new.state = 'pending') BEGIN
    INSERT INTO participant_activity (participant_id, pending)
        VALUES (new.participant_id, CASE WHEN new.state = 'pending' THEN 1 ELSE 0 END)
        ON CONFLICT(participant_id) DO UPDATE
        SET pending = max(0, pending + CASE WHEN new.state = 'pending' THEN 1 ELSE -1 END);
END;
CREATE TRIGGER outbox_pending_delete AFTER DELETE ON outbox WHEN old.state = 'pending' BEGIN
    UPDATE participant_activity SET pending = max(0, pending - 1) WHERE participant_id = old.participant_id;
END;
