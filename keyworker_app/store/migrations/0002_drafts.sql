-- 0002: unsaved form work, kept inside the encrypted store so a lock, a crash or a power
-- cut never loses what a keyworker was typing (and it never touches a temp file).
CREATE TABLE draft (
    key TEXT PRIMARY KEY NOT NULL,      -- e.g. "form:initial_assessment:<participant id>"
    form_id TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    answers TEXT NOT NULL,              -- JSON
    saved_at TEXT NOT NULL
);
