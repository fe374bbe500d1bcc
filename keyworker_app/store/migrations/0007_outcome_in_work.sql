-- 0007: a sustainment check is one outcome record. Whether they were still in work
-- (NULL when the question was not asked, as on job starts and exits) and the keyworker's
-- notes move onto the outcome instead of a side assessment.
ALTER TABLE outcome ADD COLUMN in_work INTEGER;
ALTER TABLE outcome ADD COLUMN notes TEXT NOT NULL DEFAULT '';
