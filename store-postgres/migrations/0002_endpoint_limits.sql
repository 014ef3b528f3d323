-- Per-endpoint limits kept by the claim across processes, and the failure clock.
--   pace_next_us:  the next free send time of a rate-limited endpoint (microseconds since the
--                  epoch); NULL until its first rate-limited claim.
--   failing_since: since when every attempt to the endpoint has failed; NULL while healthy.
ALTER TABLE endpoints ADD COLUMN pace_next_us BIGINT;
ALTER TABLE endpoints ADD COLUMN failing_since BIGINT;

-- Due and leased deliveries of one endpoint, for the limited claim.
CREATE INDEX deliveries_pending_by_endpoint ON deliveries (endpoint_id, next_attempt_at)
    WHERE status = 'pending';

-- Deliveries are rewritten at every claim and settle (no update can be HOT: the due time is
-- indexed), so the due index collects dead entries quickly: vacuum and analyse this table after
-- 1 % of it changed instead of the default 20 % / 10 %.
ALTER TABLE deliveries SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.01,
    autovacuum_analyze_threshold = 1000
);
