-- Stripe, exactly: every event's outcome is kept (refused events are shown to platform admins), refunds
-- and disputes that arrive before their payment wait for it, and disputes are tracked one by one so that
-- one the platform wins gives back what it took.

ALTER TABLE stripe_events ADD COLUMN outcome TEXT;

-- Credits currently taken back by open or lost disputes (refunded_nanos keeps refunds alone).
ALTER TABLE orders ADD COLUMN disputed_nanos BIGINT NOT NULL DEFAULT 0;

CREATE TABLE disputes (
    id              TEXT PRIMARY KEY,           -- Stripe's dispute id
    order_id        TEXT NOT NULL REFERENCES orders(id),
    amount_nanos    BIGINT NOT NULL,            -- credits it took back
    status          TEXT NOT NULL CHECK (status IN ('open', 'won', 'lost')),
    created_at      BIGINT NOT NULL,
    closed_at       BIGINT
);
CREATE INDEX disputes_order ON disputes (order_id);

-- Refund and dispute events whose payment the platform has not seen yet; applied when it lands.
CREATE TABLE stripe_pending (
    event_id        TEXT PRIMARY KEY,
    type            TEXT NOT NULL,
    payment_intent  TEXT NOT NULL,
    object          TEXT NOT NULL,              -- the event's object, as Stripe sent it
    received_at     BIGINT NOT NULL
);
CREATE INDEX stripe_pending_payment_intent ON stripe_pending (payment_intent);
