-- Buying credits: orders paid on Stripe Checkout, and the Stripe events already processed.

CREATE TABLE orders (
    id                    TEXT PRIMARY KEY,             -- our order id, sent as client_reference_id
    org_id                TEXT NOT NULL REFERENCES orgs(id),
    created_by            TEXT REFERENCES users(id),
    amount_nanos          BIGINT NOT NULL,              -- credits bought
    fee_nanos             BIGINT NOT NULL,              -- platform fee paid on top
    status                TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'failed', 'canceled', 'refunded', 'disputed')),
    stripe_session_id     TEXT UNIQUE,
    stripe_payment_intent TEXT,
    refunded_nanos        BIGINT NOT NULL DEFAULT 0,
    created_at            BIGINT NOT NULL,
    paid_at               BIGINT
);
CREATE INDEX orders_org ON orders (org_id, created_at);
CREATE INDEX orders_payment_intent ON orders (stripe_payment_intent);

-- Every Stripe event id handled, so that a redelivered event changes nothing.
CREATE TABLE stripe_events (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    order_id    TEXT,
    received_at BIGINT NOT NULL
);
