-- Per-endpoint hourly counters of settled attempts, for the dashboard's charts: the dispatcher
-- adds what settled every few seconds, so a chart reads at most 24 rows instead of counting
-- attempts.
--   hour:      the hour's start (ms since the epoch, a multiple of 3,600,000)
--   delivered: attempts that got a 2xx; failed: the others
--   l0 … l11:  attempts per latency bucket (≤ 10, 25, 50, 100, 250, 500, 1000, 2500, 5000,
--              10000, 30000 ms, then slower)
CREATE TABLE endpoint_hourly (
    endpoint_id TEXT NOT NULL,
    hour INTEGER NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    l0 INTEGER NOT NULL DEFAULT 0, l1 INTEGER NOT NULL DEFAULT 0, l2 INTEGER NOT NULL DEFAULT 0,
    l3 INTEGER NOT NULL DEFAULT 0, l4 INTEGER NOT NULL DEFAULT 0, l5 INTEGER NOT NULL DEFAULT 0,
    l6 INTEGER NOT NULL DEFAULT 0, l7 INTEGER NOT NULL DEFAULT 0, l8 INTEGER NOT NULL DEFAULT 0,
    l9 INTEGER NOT NULL DEFAULT 0, l10 INTEGER NOT NULL DEFAULT 0, l11 INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (endpoint_id, hour)
);
