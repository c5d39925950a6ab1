-- Issue 15: every row that belongs to one host carries its `node` (the id kept in the data
-- dir), so that several daemons can later share one PostgreSQL database without a new schema;
-- and every event carries its node's sequence number, so that a write retried after a lost
-- answer is stored once (UNIQUE (node, seq)) and a gap would show.
--
-- Rows stored before this migration get node '' and are claimed by the first daemon that opens
-- the database (this file lives in its data dir); their sequence numbers are their ids.

CREATE TABLE nodes (
    id      TEXT PRIMARY KEY,
    name    TEXT NOT NULL,
    seen_ms INTEGER NOT NULL
);

CREATE TABLE services_by_node (
    node        TEXT NOT NULL,
    name        TEXT NOT NULL,
    desired     TEXT NOT NULL DEFAULT 'running' CHECK (desired IN ('running', 'stopped')),
    pid         INTEGER,
    start_ticks INTEGER,
    updated_ms  INTEGER NOT NULL,
    PRIMARY KEY (node, name)
);
INSERT INTO services_by_node (node, name, desired, pid, start_ticks, updated_ms)
    SELECT '', name, desired, pid, start_ticks, updated_ms FROM services;
DROP TABLE services;
ALTER TABLE services_by_node RENAME TO services;

ALTER TABLE events ADD COLUMN node TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
UPDATE events SET seq = id;
CREATE UNIQUE INDEX events_by_seq ON events (node, seq);
DROP INDEX events_by_service;
CREATE INDEX events_by_service ON events (node, service, at_ms);
DROP INDEX events_by_kind_service;
CREATE INDEX events_by_kind_service ON events (node, kind, service, at_ms);

CREATE TABLE incidents_by_node (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    node        TEXT NOT NULL,
    service     TEXT NOT NULL,
    started_ms  INTEGER NOT NULL,
    opened_ms   INTEGER NOT NULL,
    resolved_ms INTEGER,
    reason      TEXT NOT NULL,
    drill       INTEGER NOT NULL DEFAULT 0,
    UNIQUE (node, service, started_ms)
);
INSERT INTO incidents_by_node (id, node, service, started_ms, opened_ms, resolved_ms, reason, drill)
    SELECT id, '', service, started_ms, opened_ms, resolved_ms, reason, drill FROM incidents;
DROP TABLE incidents;
ALTER TABLE incidents_by_node RENAME TO incidents;
CREATE INDEX incidents_by_time ON incidents (started_ms);

ALTER TABLE config_revisions ADD COLUMN node TEXT NOT NULL DEFAULT '';
CREATE INDEX config_revisions_by_node ON config_revisions (node, id);
