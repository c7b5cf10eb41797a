-- Per-key rules the gateway enforces: a credit limit that can reset each day/week/month, an allow-list of
-- models, and a requests-per-minute limit.
ALTER TABLE api_keys ADD COLUMN limit_reset TEXT;                 -- NULL, 'daily', 'weekly' or 'monthly'
ALTER TABLE api_keys ADD COLUMN period_start BIGINT;              -- start of the current limit period (ms)
ALTER TABLE api_keys ADD COLUMN period_usage_nanos BIGINT NOT NULL DEFAULT 0; -- usage counted against the limit
ALTER TABLE api_keys ADD COLUMN allowed_models TEXT;              -- JSON array of model slugs; NULL: all
ALTER TABLE api_keys ADD COLUMN rpm_limit BIGINT;                 -- NULL: no limit
UPDATE api_keys SET period_usage_nanos = usage_nanos;
