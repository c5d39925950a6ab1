-- The daily digest (issue 16, item 5): a row of a route with `digest = true` waits, pending,
-- for the next `digest_at` (its `due_ms` and `next_ms`), and is then sent with every other
-- due digest row of its channel and recipient as one mail. 1: a digest row; 0: sent alone.
ALTER TABLE outbox ADD COLUMN digest BIGINT NOT NULL DEFAULT 0;
