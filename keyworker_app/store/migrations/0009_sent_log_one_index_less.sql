-- 0009: the sent log keeps one index fewer. Every item delivered adds a sent-log line, and
-- each index on it takes a random insert whose page is encrypted and written again at
-- commit; a sync spends much of its time there. sent_log_by_record(record_id, recipient)
-- served one question (which recipients hold a record, asked when it is deleted), which
-- the unique idempotency key '<record_id>:<version>:<recipient>' answers as well: every
-- key of a record starts with '<record_id>:' and so sorts between that and
-- '<record_id>;'. Record ids never contain ':' (UUIDs; ids from the controller are
-- checked against [A-Za-z0-9._-]).
DROP INDEX sent_log_by_record;
