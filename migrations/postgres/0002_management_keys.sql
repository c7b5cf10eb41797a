-- Management keys manage an organisation's API keys over the API and cannot call models.
ALTER TABLE api_keys ADD COLUMN kind TEXT NOT NULL DEFAULT 'inference';
ALTER TABLE api_keys ADD COLUMN updated_at BIGINT;
