-- Incidents, kept from the state machine's incident events (which stay in `events` too, as the
-- timeline). `started_ms` is when the outage began, which can be before the incident opened
-- (incident_after); `resolved_ms` is NULL while it is open.
CREATE TABLE incidents (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    service     TEXT NOT NULL,
    started_ms  INTEGER NOT NULL,
    opened_ms   INTEGER NOT NULL,
    resolved_ms INTEGER,
    reason      TEXT NOT NULL,
    UNIQUE (service, started_ms)
);
CREATE INDEX incidents_by_time ON incidents (started_ms);
