-- A key's own default routing preferences (the `provider` object, as JSON): they apply to its requests
-- that do not say otherwise, field by field over its organisation's defaults.
ALTER TABLE api_keys ADD COLUMN provider_prefs TEXT;
