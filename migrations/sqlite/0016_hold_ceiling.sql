-- The hold is a ceiling: what a request may cost is bounded before it runs, and what a provider bills
-- beyond what a tenant was charged is recorded, never lost.

-- Per model: the most choices (`n`) a request may ask for (NULL: the platform default), and the upstream
-- time limits (NULL: the server's): until the first token, and the longest silence after it.
ALTER TABLE models ADD COLUMN max_n BIGINT;
ALTER TABLE models ADD COLUMN first_byte_timeout_ms BIGINT;
ALTER TABLE models ADD COLUMN idle_timeout_ms BIGINT;

-- Per endpoint, the prices of request fields that change what the provider charges: web search (nano-USD
-- per request that searches), audio input (nano-USD per million audio tokens) and service tiers (JSON:
-- tier -> parts per million of the list price). A field an endpoint does not price is refused there.
ALTER TABLE endpoints ADD COLUMN web_search_nanos BIGINT;
ALTER TABLE endpoints ADD COLUMN audio_input_per_mtok_nanos BIGINT;
ALTER TABLE endpoints ADD COLUMN service_tiers TEXT;

-- What was held for each request: charge_nanos never exceeds it.
ALTER TABLE generations ADD COLUMN held_nanos BIGINT NOT NULL DEFAULT 0;
UPDATE generations SET held_nanos = charge_nanos;

-- What providers bill the platform that no tenant was charged for: usage reported above the hold, attempts
-- abandoned after the provider may have started, settlements whose hold was already released, and the
-- holds of an instance that died with requests in flight (generation_id is then the hold's id).
CREATE TABLE operator_losses (
    id                  TEXT PRIMARY KEY,        -- <generation id>:<n>
    generation_id       TEXT NOT NULL,
    org_id              TEXT NOT NULL,
    provider_slug       TEXT NOT NULL,
    endpoint_id         TEXT NOT NULL,
    kind                TEXT NOT NULL CHECK (kind IN ('over_hold', 'abandoned', 'hold_released', 'instance_died')),
    cost_nanos          BIGINT NOT NULL,         -- provider cost at stake (worst case for abandoned attempts)
    uncollected_nanos   BIGINT NOT NULL,         -- what the tenant would have been charged for it
    note                TEXT,
    created_at          BIGINT NOT NULL
);
CREATE INDEX operator_losses_created ON operator_losses (created_at);
CREATE INDEX operator_losses_generation ON operator_losses (generation_id);
