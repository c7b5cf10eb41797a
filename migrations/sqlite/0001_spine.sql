-- The spine: accounts, keys, catalog, ledger, holds and the request log.
-- Money is integer nano-USD (BIGINT); timestamps are unix milliseconds (BIGINT); flags are 0/1 integers,
-- so that one set of queries runs unchanged on SQLite and PostgreSQL.

CREATE TABLE orgs (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    credits_nanos   BIGINT NOT NULL DEFAULT 0,  -- projection: sum of every non-usage ledger entry
    usage_nanos     BIGINT NOT NULL DEFAULT 0,  -- projection: sum of usage charges (positive)
    reserved_nanos  BIGINT NOT NULL DEFAULT 0,  -- projection: sum of open holds
    created_at      BIGINT NOT NULL
);

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,
    password_hash   TEXT,
    is_admin        INTEGER NOT NULL DEFAULT 0,
    disabled        INTEGER NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL
);

CREATE TABLE memberships (
    org_id          TEXT NOT NULL REFERENCES orgs(id),
    user_id         TEXT NOT NULL REFERENCES users(id),
    role            TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES orgs(id),
    name            TEXT NOT NULL,
    hash            TEXT NOT NULL UNIQUE,       -- hex SHA-256 of the secret
    prefix          TEXT NOT NULL,              -- shown in lists: sk-sy-v1-abcd…
    limit_nanos     BIGINT,                     -- NULL: no limit
    usage_nanos     BIGINT NOT NULL DEFAULT 0,
    reserved_nanos  BIGINT NOT NULL DEFAULT 0,
    expires_at      BIGINT,
    disabled        INTEGER NOT NULL DEFAULT 0,
    revoked_at      BIGINT,
    created_by      TEXT REFERENCES users(id),
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT
);
CREATE INDEX api_keys_org ON api_keys (org_id);

CREATE TABLE providers (
    id              TEXT PRIMARY KEY,
    slug            TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    base_url        TEXT NOT NULL,
    api_key_enc     TEXT,                       -- AES-256-GCM, base64(nonce || ciphertext)
    enabled         INTEGER NOT NULL DEFAULT 1,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE models (
    id              TEXT PRIMARY KEY,
    slug            TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    context_length  BIGINT NOT NULL,
    max_output_tokens BIGINT,
    enabled         INTEGER NOT NULL DEFAULT 1,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE endpoints (
    id              TEXT PRIMARY KEY,
    model_id        TEXT NOT NULL REFERENCES models(id),
    provider_id     TEXT NOT NULL REFERENCES providers(id),
    upstream_model  TEXT NOT NULL,
    input_per_mtok_nanos  BIGINT NOT NULL,
    output_per_mtok_nanos BIGINT NOT NULL,
    max_output_tokens BIGINT,
    enabled         INTEGER NOT NULL DEFAULT 1,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (model_id, provider_id, upstream_model)
);

-- Markup over provider cost, in parts per million; scope 'default' now, 'provider:…'/'model:…' later.
CREATE TABLE markup_rules (
    scope           TEXT PRIMARY KEY,
    ppm             BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

-- Bumped by every catalog change so that running instances reload their snapshot.
CREATE TABLE catalog_state (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    version         BIGINT NOT NULL
);
INSERT INTO catalog_state (id, version) VALUES (1, 1);

-- Append-only. balance(org) = sum(amount_nanos) = credits_nanos - usage_nanos.
CREATE TABLE ledger (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES orgs(id),
    amount_nanos    BIGINT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('grant', 'purchase', 'usage', 'refund', 'adjustment')),
    idempotency_key TEXT NOT NULL UNIQUE,
    reference       TEXT,
    note            TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX ledger_org_created ON ledger (org_id, created_at);

-- Credit reserved for a request in flight; released when it settles.
CREATE TABLE holds (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES orgs(id),
    key_id          TEXT NOT NULL REFERENCES api_keys(id),
    amount_nanos    BIGINT NOT NULL,
    instance_id     TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX holds_instance ON holds (instance_id);

-- Running gateway processes; holds of an instance that stopped beating are released.
CREATE TABLE instances (
    id              TEXT PRIMARY KEY,
    started_at      BIGINT NOT NULL,
    heartbeat_at    BIGINT NOT NULL
);

-- The request log.
CREATE TABLE generations (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES orgs(id),
    key_id          TEXT NOT NULL REFERENCES api_keys(id),
    model_slug      TEXT NOT NULL,
    provider_slug   TEXT,
    endpoint_id     TEXT,
    upstream_model  TEXT,
    upstream_id     TEXT,
    prompt_tokens   BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    usage_estimated INTEGER NOT NULL DEFAULT 0,
    cost_nanos      BIGINT NOT NULL DEFAULT 0,  -- what the provider charges the platform
    charge_nanos    BIGINT NOT NULL DEFAULT 0,  -- what the org was charged
    latency_ms      BIGINT NOT NULL DEFAULT 0,
    ttft_ms         BIGINT,
    finish_reason   TEXT,
    native_finish_reason TEXT,
    streamed        INTEGER NOT NULL DEFAULT 0,
    cancelled       INTEGER NOT NULL DEFAULT 0,
    status          INTEGER NOT NULL,           -- HTTP status given to the client
    error           TEXT,
    attempts        TEXT NOT NULL DEFAULT '[]', -- JSON: every endpoint tried and what happened
    created_at      BIGINT NOT NULL
);
CREATE INDEX generations_org_created ON generations (org_id, created_at);
CREATE INDEX generations_key_created ON generations (key_id, created_at);
