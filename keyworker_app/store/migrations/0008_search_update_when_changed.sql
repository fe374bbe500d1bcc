-- 0008: the search index is rewritten only when a searched column changes. The old
-- trigger fired on every UPDATE of a participant and re-indexed every word of their
-- names, NI number, postcode and reference on any edit (a phone number, a review date),
-- dirtying search-index pages that each have to be encrypted and written again. The
-- WHEN clause compares old and new values (IS NOT also catches NULLs); when none of them
-- and not the rowid changed, the row's index entries are already exactly right.
DROP TRIGGER participant_search_update;
CREATE TRIGGER participant_search_update AFTER UPDATE ON participant
    WHEN old.given_name IS NOT new.given_name OR old.family_name IS NOT new.family_name
      OR old.preferred_name IS NOT new.preferred_name OR old.ni_number IS NOT new.ni_number
      OR old.postcode IS NOT new.postcode OR old.participant_ref IS NOT new.participant_ref
      OR old.rowid IS NOT new.rowid BEGIN
    INSERT INTO participant_search(participant_search, rowid, given_name, family_name, preferred_name, ni_number, postcode, participant_ref)
    VALUES ('delete', old.rowid, old.given_name, old.family_name, old.preferred_name, old.ni_number, old.postcode, old.participant_ref);
    INSERT INTO participant_search(rowid, given_name, family_name, preferred_name, ni_number, postcode, participant_ref)
    VALUES (new.rowid, new.given_name, new.family_name, new.preferred_name, new.ni_number, new.postcode, new.participant_ref);
END;
