-- Provider-side media locations tenants may name: for a Bedrock provider, the S3 buckets (JSON array of
-- "bucket" or "bucket@account") whose s3:// image and file locations are passed on. NULL: none, so
-- every s3:// location is refused (Bedrock would read it with the platform's AWS identity).
ALTER TABLE providers ADD COLUMN s3_buckets TEXT;
