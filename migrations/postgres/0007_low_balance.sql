-- A low-balance alert per organisation: the threshold, and whether the current crossing was announced.
ALTER TABLE orgs ADD COLUMN low_balance_nanos BIGINT;
ALTER TABLE orgs ADD COLUMN low_balance_notified INTEGER NOT NULL DEFAULT 0;
