-- The record's optional `resource` (at most 128 bytes), kept with each applied
-- and held record for `usage_summary` grouped by resource. Records applied
-- before this column existed have none.
ALTER TABLE consumed ADD COLUMN resource text;
ALTER TABLE pending ADD COLUMN resource text;
