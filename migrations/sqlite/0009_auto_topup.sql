-- Receipts name the organisation as it wants to be billed.
ALTER TABLE orgs ADD COLUMN billing_name TEXT;
-- A card saved at Stripe for automatic top-ups: the Stripe customer, its payment method, and how to show it.
ALTER TABLE orgs ADD COLUMN stripe_customer_id TEXT;
ALTER TABLE orgs ADD COLUMN card_payment_method TEXT;
ALTER TABLE orgs ADD COLUMN card_label TEXT;
-- Automatic top-up: below the threshold, charge the saved card for the amount (NULL threshold = off).
ALTER TABLE orgs ADD COLUMN topup_threshold_nanos BIGINT;
ALTER TABLE orgs ADD COLUMN topup_amount_nanos BIGINT;
-- 1 while a charge may be made for the current crossing; 0 once one was made, until the balance recovers.
ALTER TABLE orgs ADD COLUMN topup_armed INTEGER NOT NULL DEFAULT 1;
-- Declined charges in a row, when the next may be tried, and what the bank said last.
ALTER TABLE orgs ADD COLUMN topup_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orgs ADD COLUMN topup_retry_at BIGINT;
ALTER TABLE orgs ADD COLUMN topup_error TEXT;
-- How an order was paid: on Stripe Checkout, or off-session by an automatic top-up.
ALTER TABLE orders ADD COLUMN kind TEXT NOT NULL DEFAULT 'checkout';
