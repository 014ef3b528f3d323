-- Per-endpoint hourly counters of settled attempts, for the dashboard's charts: the dispatcher
-- adds what settled every few seconds, so a chart reads at most 24 rows instead of counting
-- attempts.
--   hour:      the hour's start (ms since the epoch, a multiple of 3,600,000)
--   delivered: attempts that got a 2xx; failed: the others
--   l0 … l11:  attempts per latency bucket (≤ 10, 25, 50, 100, 250, 500, 1000, 2500, 5000,
--              10000, 30000 ms, then slower)
CREATE TABLE endpoint_hourly (
    endpoint_id TEXT NOT NULL,
    hour BIGINT NOT NULL,
    delivered BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    l0 BIGINT NOT NULL DEFAULT 0, l1 BIGINT NOT NULL DEFAULT 0, l2 BIGINT NOT NULL DEFAULT 0,
    l3 BIGINT NOT NULL DEFAULT 0, l4 BIGINT NOT NULL DEFAULT 0, l5 BIGINT NOT NULL DEFAULT 0,
    l6 BIGINT NOT NULL DEFAULT 0, l7 BIGINT NOT NULL DEFAULT 0, l8 BIGINT NOT NULL DEFAULT 0,
    l9 BIGINT NOT NULL DEFAULT 0, l10 BIGINT NOT NULL DEFAULT 0, l11 BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (endpoint_id, hour)
);
