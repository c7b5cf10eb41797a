-- Promo codes: credits a platform admin hands out; each organisation redeems a code once.
CREATE TABLE promo_codes (
    code        TEXT PRIMARY KEY,           -- upper case
    amount_nanos BIGINT NOT NULL,
    max_uses    BIGINT NOT NULL,
    uses        BIGINT NOT NULL DEFAULT 0,
    expires_at  BIGINT,
    created_by  TEXT REFERENCES users(id),
    created_at  BIGINT NOT NULL
);

CREATE TABLE promo_redemptions (
    code        TEXT NOT NULL REFERENCES promo_codes(code),
    org_id      TEXT NOT NULL REFERENCES orgs(id),
    user_id     TEXT REFERENCES users(id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (code, org_id)
);
