-- 0015: a row leaving 'pending' counts its participant down with a plain UPDATE.
-- Sending marks each outbox row done, and the trigger that keeps participant_activity's
-- pending count ran an upsert for it (an insert attempt that meets the participant's row,
-- then the update). A pending row always has its participant's activity row (the insert
-- and update triggers that made it pending wrote it), so leaving 'pending' only needs the
-- update. Coming back to 'pending' (a requeue, a sync's reset) still upserts.
DROP TRIGGER outbox_pending_update;
CREATE TRIGGER outbox_pending_leave AFTER UPDATE OF state ON outbox
    WHEN old.state = 'pending' AND new.state != 'pending' BEGIN
    UPDATE participant_activity SET pending = max(0, pending - 1) WHERE participant_id = old.participant_id;
END;
CREATE TRIGGER outbox_pending_enter AFTER UPDATE OF state ON outbox
    WHEN old.state != 'pending' AND new.state = 'pending' BEGIN
    INSERT INTO participant_activity (participant_id, pending) VALUES (new.participant_id, 1)
        ON CONFLICT(participant_id) DO UPDATE SET pending = pending + 1;
END;
