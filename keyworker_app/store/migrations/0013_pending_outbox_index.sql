-- 0013: the outbox's state index keeps pending rows only.
-- Sending a row marks it done (or quarantined). The index on (state, seq) then moved the
-- row's entry from the 'pending' range to the 'done' one: a delete and an insert, in two
-- places of the index, for every row ever sent, to keep entries nothing reads. Each index
-- now holds only the rows it is read for: the pending rows, in order (what a sync reads
-- next), and the quarantined rows, by record (what a newer version that gets through
-- resolves). Sending a row now only takes its entry out of the first.
DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox(seq) WHERE state = 'pending';
CREATE INDEX outbox_quarantined ON outbox(record_id) WHERE state = 'quarantined';
