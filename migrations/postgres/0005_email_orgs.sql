-- Email verification, password reset, invitations and the dev outbox.

ALTER TABLE users ADD COLUMN email_verified_at BIGINT;
-- Sessions that signed in before this moment are over (a password reset signs out everywhere).
ALTER TABLE users ADD COLUMN password_changed_at BIGINT;
-- Accounts that existed before verification did are taken as verified.
UPDATE users SET email_verified_at = created_at WHERE password_hash IS NOT NULL;

-- Single-use links sent by email: only the SHA-256 of the token is kept.
CREATE TABLE email_tokens (
    hash        TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    purpose     TEXT NOT NULL CHECK (purpose IN ('verify', 'reset')),
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose);

CREATE TABLE invitations (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs(id),
    email       TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    token_hash  TEXT NOT NULL UNIQUE,
    invited_by  TEXT REFERENCES users(id),
    expires_at  BIGINT NOT NULL,
    accepted_at BIGINT,
    accepted_by TEXT REFERENCES users(id),
    revoked_at  BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX invitations_org ON invitations (org_id);

-- Emails written here instead of sent when no SMTP server is configured; platform admins read them.
CREATE TABLE outbox (
    id          TEXT PRIMARY KEY,
    to_email    TEXT NOT NULL,
    subject     TEXT NOT NULL,
    text_body   TEXT NOT NULL,
    html_body   TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX outbox_created ON outbox (created_at);
