-- Credential pools: a provider may hold several keys, each with a label, a weight (its share of the
-- traffic) and an enabled flag. The key itself is only stored encrypted; its last characters are kept to
-- tell keys apart on the page.
CREATE TABLE provider_credentials (
    id          TEXT PRIMARY KEY,
    provider_id TEXT NOT NULL REFERENCES providers(id),
    label       TEXT NOT NULL,
    secret_enc  TEXT NOT NULL,
    last4       TEXT NOT NULL,
    weight      BIGINT NOT NULL DEFAULT 1,
    enabled     INTEGER NOT NULL DEFAULT 1,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (provider_id, label)
);
INSERT INTO provider_credentials (id, provider_id, label, secret_enc, last4, weight, enabled, created_at, updated_at)
    SELECT 'cred-' || id, id, 'default', api_key_enc, COALESCE(api_key_last4, ''), 1, 1, created_at, updated_at
    FROM providers WHERE api_key_enc IS NOT NULL;
ALTER TABLE providers DROP COLUMN api_key_enc;
ALTER TABLE providers DROP COLUMN api_key_last4;

-- What a model accepts and produces, which request parameters it honours, and its tokenizer family
-- (comma-separated lists, as OpenRouter's architecture block shows them).
ALTER TABLE models ADD COLUMN input_modalities TEXT NOT NULL DEFAULT 'text';
ALTER TABLE models ADD COLUMN output_modalities TEXT NOT NULL DEFAULT 'text';
ALTER TABLE models ADD COLUMN supported_parameters TEXT NOT NULL
    DEFAULT 'max_tokens,temperature,top_p,stop,stream,seed,tools,tool_choice,response_format';
ALTER TABLE models ADD COLUMN tokenizer TEXT NOT NULL DEFAULT 'Other';

-- Endpoint prices beyond input/output: cached prompt tokens read and written (NULL: the input price),
-- a fixed price per request; and the order endpoints are tried in (lower priority first).
ALTER TABLE endpoints ADD COLUMN cache_read_per_mtok_nanos BIGINT;
ALTER TABLE endpoints ADD COLUMN cache_write_per_mtok_nanos BIGINT;
ALTER TABLE endpoints ADD COLUMN request_nanos BIGINT NOT NULL DEFAULT 0;
ALTER TABLE endpoints ADD COLUMN priority BIGINT NOT NULL DEFAULT 0;

-- The cached prompt tokens of each generation (a part of prompt_tokens), priced apart.
ALTER TABLE generations ADD COLUMN cache_read_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE generations ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;

-- Per-organisation prices: a multiplier on everything the organisation is charged (parts per million;
-- 900000 = a 10 % discount, 1200000 = 20 % more).
CREATE TABLE org_pricing (
    org_id         TEXT PRIMARY KEY REFERENCES orgs(id),
    multiplier_ppm BIGINT NOT NULL,
    note           TEXT NOT NULL DEFAULT '',
    updated_at     BIGINT NOT NULL
);
