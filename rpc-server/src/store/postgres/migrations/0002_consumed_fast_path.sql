-- The consumed index takes a row per applied record, a million in a large
-- pass. Its two foreign keys cost a trigger call per row, more than the
-- insert itself; the store writes a record's user and source in the same
-- transaction before the record, and `verify --full` reports any consumed row
-- whose user or source is missing. Keys compare byte by byte (COLLATE "C"),
-- as in the other key columns: the same order on every server locale, and
-- cheaper comparisons in the index.
ALTER TABLE consumed
    DROP CONSTRAINT consumed_user_sid_fkey,
    DROP CONSTRAINT consumed_source_id_fkey,
    ALTER COLUMN idempotency_key TYPE text COLLATE "C",
    ALTER COLUMN user_sid TYPE text COLLATE "C";
