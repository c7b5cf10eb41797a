-- A key's limit on requests in flight at once (per instance, as requests per minute); NULL: none.
ALTER TABLE api_keys ADD COLUMN concurrency_limit BIGINT;
