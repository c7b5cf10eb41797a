-- Dashboard sessions (tower-sessions records), kept in the platform's own database.
CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    record      TEXT NOT NULL,      -- JSON of the session record
    expires_at  BIGINT NOT NULL     -- unix ms
);
CREATE INDEX sessions_expires ON sessions (expires_at);
