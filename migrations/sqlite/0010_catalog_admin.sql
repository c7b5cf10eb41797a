-- The catalog run from the browser: provider details shown to admins, the last characters of a
-- provider's key (the key itself is only stored encrypted), hidden models and explicit sale prices.
ALTER TABLE providers ADD COLUMN website TEXT;
ALTER TABLE providers ADD COLUMN data_policy TEXT;
ALTER TABLE providers ADD COLUMN api_key_last4 TEXT;
ALTER TABLE models ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0;
-- When set, tenants pay these per million tokens instead of cost x markup.
ALTER TABLE models ADD COLUMN sale_input_per_mtok_nanos BIGINT;
ALTER TABLE models ADD COLUMN sale_output_per_mtok_nanos BIGINT;

-- Every change an admin makes: who, when, what, and the record before and after (JSON; secrets redacted).
CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY,
    actor_id    TEXT REFERENCES users(id),
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    before_json TEXT,
    after_json  TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX audit_log_created ON audit_log (created_at);
