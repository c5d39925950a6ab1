-- Rollups (issue 15, item 3): what reports, /metrics and the status page need, kept per
-- service and per hour and day, so that reading a period costs the same after a year as after
-- a day. Computed above the engines (rollup.rs) from the raw events, one closed hour at a time.
--
-- `rolled_until_ms`: every hour before it is rolled up. Storing an event older than it (a
-- journal drained after an outage, the time no daemon watched) moves it back, and those hours
-- are rolled again. `raw_since_ms`: raw events before it were removed by `[daemon] retain`;
-- only the rollups know that time.
CREATE TABLE rollup_marks (
    node            TEXT PRIMARY KEY,
    rolled_until_ms BIGINT NOT NULL,
    raw_since_ms    BIGINT NOT NULL DEFAULT 0
);

-- One row per node, span ('hour' or 'day', UTC), start and service: times in milliseconds and
-- counts, which add across rows (see upkeep_core::report::Tally).
CREATE TABLE rollups (
    node           TEXT NOT NULL,
    span           TEXT NOT NULL CHECK (span IN ('hour', 'day')),
    start_ms       BIGINT NOT NULL,
    service        TEXT NOT NULL,
    available_ms   BIGINT NOT NULL,
    outage_ms      BIGINT NOT NULL,
    maintenance_ms BIGINT NOT NULL,
    unknown_ms     BIGINT NOT NULL,
    drills         BIGINT NOT NULL,
    drill_ms       BIGINT NOT NULL,
    incidents      BIGINT NOT NULL,
    repaired       BIGINT NOT NULL,
    repair_ms      BIGINT NOT NULL,
    heals          BIGINT NOT NULL,
    interventions  BIGINT NOT NULL,
    PRIMARY KEY (node, span, start_ms, service)
);
