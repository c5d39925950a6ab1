-- A lease picks due rows by channel, kind (digest or not) and state, in `next_ms` order:
-- this index gives them in that order, so a lease reads the rows it takes. Without it a lease
-- read every row of its channel, the sent ones too (kept for `notify ls`), under the write
-- lock: 64 ms a lease after a fan-out to 10,000 subscribers, and each mark waited for it
-- (bench/subscribers, session 12).
CREATE INDEX outbox_due_by_digest ON outbox (node, channel, digest, state, next_ms);
