-- Probe latency per node, service and hour (issue 15, item 3): a histogram of fixed buckets
-- (upkeep_core::latency), stored as its counts, comma-separated. Histograms add across hours
-- and services, so percentiles can be read over any period. Written by the rollup task as
-- hours close; never derived from events (probes check far too often to store each check).
CREATE TABLE latency (
    node    TEXT NOT NULL,
    service TEXT NOT NULL,
    hour_ms BIGINT NOT NULL,
    counts  TEXT NOT NULL,
    PRIMARY KEY (node, service, hour_ms)
);
