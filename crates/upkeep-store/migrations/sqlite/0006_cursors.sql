-- Durable consumers of committed events (the outbox planner, to come): each keeps the number
-- of the last event it finished, per node, so that it sees each event once across restarts.
CREATE TABLE cursors (
    node       TEXT NOT NULL,
    name       TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (node, name)
);
