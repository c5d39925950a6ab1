-- Reports read status changes by service and time. The new state becomes a column (no JSON in
-- queries), and an index lets a report find each service's state at the start of its period
-- with one seek per service instead of reading every status change ever stored (issue 14, C13).
ALTER TABLE events ADD COLUMN to_state TEXT;
UPDATE events SET to_state = json_extract(detail, '$.to') WHERE kind = 'status_changed';
CREATE INDEX events_by_kind_service ON events (kind, service, at_ms);
