-- Usage as the dashboards read it. The request log (generations) grows fastest of all tables; the pages
-- read these rollups instead, kept in the same transaction that records each generation (so they are
-- exactly the log's sums), one row per hour (and per UTC day) per organisation, key, model and endpoint.
-- provider_slug / endpoint_id are '' for requests no provider answered.
ALTER TABLE generations ADD COLUMN reasoning_tokens BIGINT NOT NULL DEFAULT 0;

CREATE TABLE usage_hourly (
    bucket              BIGINT NOT NULL,   -- start of the hour, Unix ms (UTC)
    org_id              TEXT NOT NULL,
    key_id              TEXT NOT NULL,
    model_slug          TEXT NOT NULL,
    provider_slug       TEXT NOT NULL,
    endpoint_id         TEXT NOT NULL,
    requests            BIGINT NOT NULL,
    errors              BIGINT NOT NULL,   -- neither answered (200) nor cancelled by the client (499)
    cancelled           BIGINT NOT NULL,
    prompt_tokens       BIGINT NOT NULL,
    completion_tokens   BIGINT NOT NULL,
    cache_read_tokens   BIGINT NOT NULL,
    cache_write_tokens  BIGINT NOT NULL,
    reasoning_tokens    BIGINT NOT NULL,
    cost_nanos          BIGINT NOT NULL,
    charge_nanos        BIGINT NOT NULL,
    latency_ms_sum      BIGINT NOT NULL,
    ttft_ms_sum         BIGINT NOT NULL,
    ttft_count          BIGINT NOT NULL,
    PRIMARY KEY (org_id, bucket, key_id, model_slug, provider_slug, endpoint_id)
);
CREATE INDEX usage_hourly_bucket ON usage_hourly (bucket);

CREATE TABLE usage_daily (
    bucket              BIGINT NOT NULL,   -- start of the UTC day, Unix ms
    org_id              TEXT NOT NULL,
    key_id              TEXT NOT NULL,
    model_slug          TEXT NOT NULL,
    provider_slug       TEXT NOT NULL,
    endpoint_id         TEXT NOT NULL,
    requests            BIGINT NOT NULL,
    errors              BIGINT NOT NULL,
    cancelled           BIGINT NOT NULL,
    prompt_tokens       BIGINT NOT NULL,
    completion_tokens   BIGINT NOT NULL,
    cache_read_tokens   BIGINT NOT NULL,
    cache_write_tokens  BIGINT NOT NULL,
    reasoning_tokens    BIGINT NOT NULL,
    cost_nanos          BIGINT NOT NULL,
    charge_nanos        BIGINT NOT NULL,
    latency_ms_sum      BIGINT NOT NULL,
    ttft_ms_sum         BIGINT NOT NULL,
    ttft_count          BIGINT NOT NULL,
    PRIMARY KEY (org_id, bucket, key_id, model_slug, provider_slug, endpoint_id)
);
CREATE INDEX usage_daily_bucket ON usage_daily (bucket);

-- The same sums along one dimension at a time, which is what charts and tables group by: per organisation
-- by model and by key; for the whole platform (scope '*') by model, provider and organisation. The full
-- cross product above is sparse (one row per request on a quiet key); these stay small: a year of a
-- dimension is 365 rows per value. width is the bucket's length in ms (3600000 or 86400000).
CREATE TABLE usage_dims (
    scope               TEXT NOT NULL,     -- an organisation's id, or '*' for the whole platform
    dim                 TEXT NOT NULL,     -- 'model', 'key', 'provider' or 'org'
    width               BIGINT NOT NULL,
    bucket              BIGINT NOT NULL,
    value               TEXT NOT NULL,
    requests            BIGINT NOT NULL,
    errors              BIGINT NOT NULL,
    cancelled           BIGINT NOT NULL,
    prompt_tokens       BIGINT NOT NULL,
    completion_tokens   BIGINT NOT NULL,
    cache_read_tokens   BIGINT NOT NULL,
    cache_write_tokens  BIGINT NOT NULL,
    reasoning_tokens    BIGINT NOT NULL,
    cost_nanos          BIGINT NOT NULL,
    charge_nanos        BIGINT NOT NULL,
    latency_ms_sum      BIGINT NOT NULL,
    ttft_ms_sum         BIGINT NOT NULL,
    ttft_count          BIGINT NOT NULL,
    PRIMARY KEY (scope, dim, width, bucket, value)
);

-- What was there before this migration.
INSERT INTO usage_hourly
SELECT created_at - created_at % 3600000, org_id, key_id, model_slug, COALESCE(provider_slug, ''), COALESCE(endpoint_id, ''),
       COUNT(*), SUM(CASE WHEN status IN (200, 499) THEN 0 ELSE 1 END), SUM(cancelled),
       SUM(prompt_tokens), SUM(completion_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), 0,
       SUM(cost_nanos), SUM(charge_nanos), SUM(latency_ms), SUM(COALESCE(ttft_ms, 0)), COUNT(ttft_ms)
FROM generations
GROUP BY created_at - created_at % 3600000, org_id, key_id, model_slug, COALESCE(provider_slug, ''), COALESCE(endpoint_id, '');
INSERT INTO usage_daily
SELECT bucket - bucket % 86400000, org_id, key_id, model_slug, provider_slug, endpoint_id,
       SUM(requests), SUM(errors), SUM(cancelled), SUM(prompt_tokens), SUM(completion_tokens), SUM(cache_read_tokens),
       SUM(cache_write_tokens), SUM(reasoning_tokens), SUM(cost_nanos), SUM(charge_nanos), SUM(latency_ms_sum),
       SUM(ttft_ms_sum), SUM(ttft_count)
FROM usage_hourly
GROUP BY bucket - bucket % 86400000, org_id, key_id, model_slug, provider_slug, endpoint_id;

INSERT INTO usage_dims SELECT org_id, 'model', 3600000, bucket, model_slug, SUM(requests), SUM(errors), SUM(cancelled), SUM(prompt_tokens), SUM(completion_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens), SUM(cost_nanos), SUM(charge_nanos), SUM(latency_ms_sum), SUM(ttft_ms_sum), SUM(ttft_count) FROM usage_hourly GROUP BY org_id, bucket, model_slug;
INSERT INTO usage_dims SELECT org_id, 'key', 3600000, bucket, key_id, SUM(requests), SUM(errors), SUM(cancelled), SUM(prompt_tokens), SUM(completion_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens), SUM(cost_nanos), SUM(charge_nanos), SUM(latency_ms_sum), SUM(ttft_ms_sum), SUM(ttft_count) FROM usage_hourly GROUP BY org_id, bucket, key_id;
INSERT INTO usage_dims SELECT '*', 'model', 3600000, bucket, model_slug, SUM(requests), SUM(errors), SUM(cancelled), SUM(prompt_tokens), SUM(completion_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens), SUM(cost_nanos), SUM(charge_nanos), SUM(latency_ms_sum), SUM(ttft_ms_sum), SUM(ttft_count) FROM usage_hourly GROUP BY bucket, model_slug;
INSERT INTO usage_dims SELECT '*', 'provider', 3600000, bucket, provider_slug, SUM(requests), SUM(errors), SUM(cancelled), SUM(prompt_tokens), SUM(completion_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens), SUM(cost_nanos), SUM(charge_nanos), SUM(latency_ms_sum), SUM(ttft_ms_sum), SUM(ttft_count) FROM usage_hourly GROUP BY bucket, provider_slug;
INSERT INTO usage_dims SELECT '*', 'org', 3600000, bucket, org_id, SUM(requests), SUM(errors), SUM(cancelled), SUM(prompt_tokens), SUM(completion_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens), SUM(cost_nanos), SUM(charge_nanos), SUM(latency_ms_sum), SUM(ttft_ms_sum), SUM(ttft_count) FROM usage_hourly GROUP BY bucket, org_id;
INSERT INTO usage_dims SELECT org_id, 'model', 86400000, bucket, model_slug, SUM(requests), SUM(errors), SUM(cancelled), SUM(prompt_tokens), SUM(completion_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens), SUM(cost_nanos), SUM(charge_nanos), SUM(latency_ms_sum), SUM(ttft_ms_sum), SUM(ttft_count) FROM usage_daily GROUP BY org_id, bucket, model_slug;
INSERT INTO usage_dims SELECT org_id, 'key', 86400000, bucket, key_id, SUM(requests), SUM(errors), SUM(cancelled), SUM(prompt_tokens), SUM(completion_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens), SUM(cost_nanos), SUM(charge_nanos), SUM(latency_ms_sum), SUM(ttft_ms_sum), SUM(ttft_count) FROM usage_daily GROUP BY org_id, bucket, key_id;
INSERT INTO usage_dims SELECT '*', 'model', 86400000, bucket, model_slug, SUM(requests), SUM(errors), SUM(cancelled), SUM(prompt_tokens), SUM(completion_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens), SUM(cost_nanos), SUM(charge_nanos), SUM(latency_ms_sum), SUM(ttft_ms_sum), SUM(ttft_count) FROM usage_daily GROUP BY bucket, model_slug;
INSERT INTO usage_dims SELECT '*', 'provider', 86400000, bucket, provider_slug, SUM(requests), SUM(errors), SUM(cancelled), SUM(prompt_tokens), SUM(completion_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens), SUM(cost_nanos), SUM(charge_nanos), SUM(latency_ms_sum), SUM(ttft_ms_sum), SUM(ttft_count) FROM usage_daily GROUP BY bucket, provider_slug;
INSERT INTO usage_dims SELECT '*', 'org', 86400000, bucket, org_id, SUM(requests), SUM(errors), SUM(cancelled), SUM(prompt_tokens), SUM(completion_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens), SUM(cost_nanos), SUM(charge_nanos), SUM(latency_ms_sum), SUM(ttft_ms_sum), SUM(ttft_count) FROM usage_daily GROUP BY bucket, org_id;

-- The activity log pages by time within an organisation, optionally one model or status.
CREATE INDEX generations_org_model_created ON generations (org_id, model_slug, created_at);
CREATE INDEX generations_created ON generations (created_at);

-- Prompt logging: off unless the organisation turns it on; kept for log_retention_days (NULL: 30).
ALTER TABLE orgs ADD COLUMN prompt_logging INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orgs ADD COLUMN log_retention_days BIGINT;
CREATE TABLE generation_content (
    generation_id   TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL,
    request         TEXT NOT NULL,     -- the request's messages, as sent (JSON)
    response        TEXT NOT NULL,     -- the answer's text
    created_at      BIGINT NOT NULL
);
CREATE INDEX generation_content_created ON generation_content (created_at);
