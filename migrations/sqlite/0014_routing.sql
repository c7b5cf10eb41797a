-- Routing: an endpoint's weight is its share among endpoints of equal priority (before the preference for
-- cheaper ones, which OpenRouter weighs by the inverse square of price); 0 keeps it as a fallback only.
-- A provider that keeps or trains on prompts is marked, so requests with `data_collection: "deny"` avoid it.
-- An organisation's default routing preferences (the `provider` object, as JSON) apply to every request
-- that does not say otherwise.
ALTER TABLE endpoints ADD COLUMN weight BIGINT NOT NULL DEFAULT 100;
ALTER TABLE providers ADD COLUMN collects_data INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orgs ADD COLUMN provider_prefs TEXT;
