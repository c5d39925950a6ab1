-- What people write about incidents (issue 16): a title and an opener for incidents opened by
-- hand, a priority set on the incident (NULL: its service's configured one), who resolved it
-- by hand (a JSON principal; NULL: the probes did, or it is open), the post-mortem (JSON), and
-- the updates, oldest first. An incident resolved by hand keeps its time: the probes'
-- resolution of the same outage changes nothing (see sql.rs).
ALTER TABLE incidents ADD COLUMN title TEXT;
ALTER TABLE incidents ADD COLUMN priority TEXT;
ALTER TABLE incidents ADD COLUMN opened_by TEXT;
ALTER TABLE incidents ADD COLUMN resolved_by TEXT;
ALTER TABLE incidents ADD COLUMN postmortem TEXT;
CREATE TABLE incident_updates (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    node        TEXT NOT NULL,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    at_ms       INTEGER NOT NULL,
    status      TEXT NOT NULL,
    message     TEXT NOT NULL,
    by_who      TEXT NOT NULL
);
CREATE INDEX incident_updates_of ON incident_updates (incident_id, id);
