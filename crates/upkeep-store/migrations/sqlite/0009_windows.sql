-- Maintenance windows (issue 16): what operators scheduled, and each step of each window's
-- life taken so far (announced, reminders, started, ...), stored once: the primary key is
-- what makes a reminder go out once whatever instant the daemon is killed at. `spec` is the
-- window as written (JSON; nothing queries inside it). `revision` counts edits (the
-- iCalendar feed's SEQUENCE). `done`: no occurrence is left, so the planner skips it.
CREATE TABLE windows (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    node       TEXT NOT NULL,
    spec       TEXT NOT NULL,
    start_ms   INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    forced_why TEXT,
    cancelled  INTEGER NOT NULL DEFAULT 0,
    done       INTEGER NOT NULL DEFAULT 0,
    revision   INTEGER NOT NULL DEFAULT 0,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX windows_by_node ON windows (node, done, start_ms);

CREATE TABLE window_steps (
    window_id     INTEGER NOT NULL REFERENCES windows (id),
    occurrence_ms INTEGER NOT NULL,
    step_key      TEXT NOT NULL,
    step          TEXT NOT NULL,
    at_ms         INTEGER NOT NULL,
    by_who        TEXT,
    PRIMARY KEY (window_id, occurrence_ms, step_key)
);
