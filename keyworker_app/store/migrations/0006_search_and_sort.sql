-- 0006: search as you type and sorting that stay quick at 100,000 participants.
-- The search index gains prefix indexes for one to three characters, so the first
-- keystrokes ("s", "sm") are answered from the index instead of by expanding every term;
-- the index is rebuilt from the participant table it points at (no text is copied).
DROP TRIGGER participant_search_insert;
DROP TRIGGER participant_search_delete;
DROP TRIGGER participant_search_update;
DROP TABLE participant_search;
CREATE VIRTUAL TABLE participant_search USING fts5(
    given_name, family_name, preferred_name, ni_number, postcode, participant_ref,
    content='participant', content_rowid='rowid',
    tokenize='unicode61 remove_diacritics 2', prefix='1 2 3'
);
INSERT INTO participant_search(participant_search) VALUES ('rebuild');
CREATE TRIGGER participant_search_insert AFTER INSERT ON participant BEGIN
    INSERT INTO participant_search(rowid, given_name, family_name, preferred_name, ni_number, postcode, participant_ref)
    VALUES (new.rowid, new.given_name, new.family_name, new.preferred_name, new.ni_number, new.postcode, new.participant_ref);
END;
CREATE TRIGGER participant_search_delete AFTER DELETE ON participant BEGIN
    INSERT INTO participant_search(participant_search, rowid, given_name, family_name, preferred_name, ni_number, postcode, participant_ref)
    VALUES ('delete', old.rowid, old.given_name, old.family_name, old.preferred_name, old.ni_number, old.postcode, old.participant_ref);
END;
CREATE TRIGGER participant_search_update AFTER UPDATE ON participant BEGIN
    INSERT INTO participant_search(participant_search, rowid, given_name, family_name, preferred_name, ni_number, postcode, participant_ref)
    VALUES ('delete', old.rowid, old.given_name, old.family_name, old.preferred_name, old.ni_number, old.postcode, old.participant_ref);
    INSERT INTO participant_search(rowid, given_name, family_name, preferred_name, ni_number, postcode, participant_ref)
    VALUES (new.rowid, new.given_name, new.family_name, new.preferred_name, new.ni_number, new.postcode, new.participant_ref);
END;

-- Each caseload column sorts by walking an index rather than sorting every row.
CREATE INDEX participant_by_ref ON participant(participant_ref);
CREATE INDEX participant_by_date_of_birth ON participant(date_of_birth);
CREATE INDEX participant_by_postcode ON participant(postcode);
CREATE INDEX participant_by_programme ON participant(programme);
-- Matches the caseload's order (no review date last) and serves the "review due" filter.
CREATE INDEX participant_by_review_due ON participant(review_due IS NULL, review_due);
