-- list_users by balance and by total consumed (keyset pages in the index's
-- order; the descending orders scan these indexes backward), and the
-- ledger's balance version (consumed_seq + payment_seq) when each balance
-- last changed: a walk by balance skips users whose balance changed after it
-- began, who may already have been listed at their old place. Users of an
-- older schema start at version 0, before any walk.
ALTER TABLE users ADD COLUMN balance_changed_seq bigint NOT NULL DEFAULT 0;
CREATE INDEX users_by_balance ON users (balance_cents, user_sid);
CREATE INDEX users_by_consumed ON users (consumed_cents, user_sid);
