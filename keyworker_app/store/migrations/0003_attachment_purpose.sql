-- 0003: what an attachment is for (e.g. "esf_signed_form", "consent_signature"), so a
-- sharing profile can name a kind of attachment without reading its content.
ALTER TABLE attachment ADD COLUMN purpose TEXT NOT NULL DEFAULT '';
CREATE INDEX attachment_by_purpose ON attachment(participant_id, purpose);
