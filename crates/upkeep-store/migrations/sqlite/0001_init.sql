-- upkeep's first schema: what the operator wants, what happened, and which config applied.
-- Times are Unix milliseconds (UTC) so that range queries need no date parsing.

-- One row per service ever configured. `desired` survives daemon restarts; `pid` and
-- `start_ticks` name the process the daemon last started, so a restarted daemon can find it
-- (start_ticks guards against a reused pid).
CREATE TABLE services (
    name        TEXT PRIMARY KEY,
    desired     TEXT NOT NULL DEFAULT 'running' CHECK (desired IN ('running', 'stopped')),
    pid         INTEGER,
    start_ticks INTEGER,
    updated_ms  INTEGER NOT NULL
);

-- Every lifecycle fact, append-only. `detail` is the event's JSON.
CREATE TABLE events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms        INTEGER NOT NULL,
    service      TEXT,
    kind         TEXT NOT NULL,
    intervention INTEGER NOT NULL DEFAULT 0,
    detail       TEXT NOT NULL
);
CREATE INDEX events_by_service ON events (service, at_ms);
CREATE INDEX events_by_time ON events (at_ms);

-- Every config the daemon applied, in full.
CREATE TABLE config_revisions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    applied_ms  INTEGER NOT NULL,
    path        TEXT NOT NULL,
    source      TEXT NOT NULL
);
