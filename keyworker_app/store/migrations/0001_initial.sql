-- 0001: the first schema. Never edit a released migration: add a new numbered file.
-- One table per record type (keyworker_app/records.py); every column mirrors a field.
-- Several-valued fields are JSON text; dates and moments ISO 8601 text.

CREATE TABLE participant (
    id TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    participant_ref TEXT NOT NULL,
    programme TEXT NOT NULL,
    strand TEXT NOT NULL,
    keyworker_id TEXT NOT NULL,
    status TEXT NOT NULL,
    given_name TEXT NOT NULL,
    family_name TEXT NOT NULL,
    preferred_name TEXT NOT NULL,
    date_of_birth TEXT,
    address_line1 TEXT NOT NULL,
    address_line2 TEXT NOT NULL,
    town TEXT NOT NULL,
    postcode TEXT NOT NULL,
    phone TEXT NOT NULL,
    email TEXT NOT NULL,
    ni_number TEXT NOT NULL,
    nhs_number TEXT NOT NULL,
    gender TEXT NOT NULL,
    ethnicity TEXT NOT NULL,
    language TEXT NOT NULL,
    interpreter_needed INTEGER NOT NULL DEFAULT 0,
    nationality TEXT NOT NULL,
    country_of_birth TEXT NOT NULL,
    religion TEXT NOT NULL,
    sexual_orientation TEXT NOT NULL,
    marital_status TEXT NOT NULL,
    disability TEXT NOT NULL,
    disability_description TEXT NOT NULL,
    health_summary TEXT NOT NULL,
    employment_status TEXT NOT NULL,
    weekly_hours_worked TEXT NOT NULL,
    benefit_status TEXT NOT NULL,
    employer_name TEXT NOT NULL,
    job_role TEXT NOT NULL,
    education TEXT NOT NULL,
    gp_name TEXT NOT NULL,
    gp_practice TEXT NOT NULL,
    health_visitor TEXT NOT NULL,
    social_care_status TEXT NOT NULL,
    review_due TEXT,
    restricted INTEGER NOT NULL DEFAULT 0,
    objections TEXT NOT NULL
);

CREATE TABLE household_member (
    id TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    given_name TEXT NOT NULL,
    family_name TEXT NOT NULL,
    relationship TEXT NOT NULL,
    date_of_birth TEXT,
    gender TEXT NOT NULL,
    ethnicity TEXT NOT NULL,
    language TEXT NOT NULL,
    nationality TEXT NOT NULL,
    religion TEXT NOT NULL,
    country_of_birth TEXT NOT NULL,
    nhs_number TEXT NOT NULL,
    gp_details TEXT NOT NULL,
    health_visitor TEXT NOT NULL,
    education TEXT NOT NULL,
    social_care_status TEXT NOT NULL
);
CREATE INDEX household_member_by_participant ON household_member(participant_id);

CREATE TABLE referral (
    id TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    source_type TEXT NOT NULL,
    source_organisation TEXT NOT NULL,
    referrer_name TEXT NOT NULL,
    referrer_contact TEXT NOT NULL,
    received_on TEXT,
    reason TEXT NOT NULL,
    condition_summary TEXT NOT NULL,
    adjustments_needed TEXT NOT NULL,
    lawful_basis TEXT NOT NULL,
    special_category_basis TEXT NOT NULL,
    controller_referral_id TEXT NOT NULL
);
CREATE INDEX referral_by_participant ON referral(participant_id);

CREATE TABLE enrolment (
    id TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    programme TEXT NOT NULL,
    strand TEXT NOT NULL,
    start_date TEXT,
    planned_end_date TEXT,
    end_date TEXT,
    esf_funded INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX enrolment_by_participant ON enrolment(participant_id);

CREATE TABLE assessment (
    id TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    form_id TEXT NOT NULL,
    form_version INTEGER NOT NULL,
    answers TEXT NOT NULL,
    completed_on TEXT,
    assessor TEXT NOT NULL
);
CREATE INDEX assessment_by_participant ON assessment(participant_id);

CREATE TABLE barrier (
    id TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    category TEXT NOT NULL,
    description TEXT NOT NULL,
    severity INTEGER NOT NULL,
    actions TEXT NOT NULL,
    status TEXT NOT NULL,
    identified_on TEXT
);
CREATE INDEX barrier_by_participant ON barrier(participant_id);

CREATE TABLE barrier_review (
    id TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    barrier_id TEXT NOT NULL,
    reviewed_on TEXT,
    severity INTEGER NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX barrier_review_by_participant ON barrier_review(participant_id);

CREATE TABLE action_plan (
    id TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    goal TEXT NOT NULL,
    steps TEXT NOT NULL,
    agreed_on TEXT,
    review_on TEXT
);
CREATE INDEX action_plan_by_participant ON action_plan(participant_id);

CREATE TABLE case_note (
    id TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    contact_type TEXT NOT NULL,
    contact_on TEXT,
    summary TEXT NOT NULL,
    confidentiality TEXT NOT NULL,
    author TEXT NOT NULL
);
CREATE INDEX case_note_by_participant ON case_note(participant_id);

CREATE TABLE consent (
    id TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    sharing_profile TEXT NOT NULL,
    status TEXT NOT NULL,
    method TEXT NOT NULL,
    notice_version TEXT NOT NULL,
    given_on TEXT,
    withdrawn_on TEXT,
    witness TEXT NOT NULL,
    signature_attachment_id TEXT NOT NULL
);
CREATE INDEX consent_by_participant ON consent(participant_id);

CREATE TABLE esf_form (
    id TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    answers TEXT NOT NULL,
    evidence TEXT NOT NULL,
    leaflet_acknowledged INTEGER NOT NULL DEFAULT 0,
    remote_delivery INTEGER NOT NULL DEFAULT 0,
    signature_owed INTEGER NOT NULL DEFAULT 0,
    signed_on TEXT,
    signature_attachment_id TEXT NOT NULL,
    pdf_attachment_id TEXT NOT NULL,
    pdf_sha256 TEXT NOT NULL
);
CREATE INDEX esf_form_by_participant ON esf_form(participant_id);

CREATE TABLE outcome (
    id TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    outcome_on TEXT,
    employer TEXT NOT NULL,
    job_title TEXT NOT NULL,
    weekly_hours REAL,
    mhsds_employment_status TEXT NOT NULL,
    mhsds_weekly_hours TEXT NOT NULL,
    exit_reason TEXT,
    onward_referrals TEXT NOT NULL,
    further_support_needed TEXT NOT NULL,
    recommendations TEXT NOT NULL
);
CREATE INDEX outcome_by_participant ON outcome(participant_id);

CREATE TABLE attachment (
    id TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    media_type TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    content BLOB NOT NULL
);
CREATE INDEX attachment_by_participant ON attachment(participant_id);

CREATE INDEX participant_by_status ON participant(status);
CREATE INDEX participant_by_ni ON participant(ni_number);
CREATE INDEX participant_by_family_name ON participant(family_name COLLATE NOCASE, given_name COLLATE NOCASE);
CREATE INDEX consent_by_profile ON consent(participant_id, sharing_profile);

-- Search as you type over names, NI number, postcode and participant id. External content:
-- the text lives once, in participant; triggers keep the index in step.
CREATE VIRTUAL TABLE participant_search USING fts5(
    given_name, family_name, preferred_name, ni_number, postcode, participant_ref,
    content='participant', content_rowid='rowid',
    tokenize='unicode61 remove_diacritics 2'
);
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

-- A deleted record leaves a tombstone, so sync can tell recipients and nothing comes back.
CREATE TABLE tombstone (
    record_type TEXT NOT NULL,
    record_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    participant_id TEXT NOT NULL,
    deleted_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (record_type, record_id)
);

-- Written in the same transaction as the change it describes (DESIGN §6). Projection through
-- the sharing profiles happens at push time, so a row only names the record and version.
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record_type TEXT NOT NULL,
    record_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    participant_id TEXT NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('upsert', 'delete', 'withdraw')),
    created_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'quarantined'))
);
CREATE INDEX outbox_pending ON outbox(state, seq);

-- Tamper-evident audit log: each entry's hash covers the previous entry's hash.
-- Details name fields and ids, never the values a person typed.
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    record_type TEXT NOT NULL,
    record_id TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_by_participant ON audit_log(participant_id, seq);

-- Small facts about this store: its profile id, the audit chain's head, sync cursors.
CREATE TABLE meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
