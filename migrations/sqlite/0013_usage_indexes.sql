-- Found by timing the dashboards on a million generations: the activity log pages by (created_at, id)
-- within an organisation, a key or a model, so the indexes end with both (each page is read in order, no
-- sort); and the analytics read a period's purchases and refunds without reading every usage entry.
DROP INDEX generations_org_created;
CREATE INDEX generations_org_created ON generations (org_id, created_at, id);
DROP INDEX generations_key_created;
CREATE INDEX generations_key_created ON generations (key_id, created_at, id);
DROP INDEX generations_org_model_created;
CREATE INDEX generations_org_model_created ON generations (org_id, model_slug, created_at, id);
CREATE INDEX ledger_kind_created ON ledger (kind, created_at);
