-- Per-endpoint limits kept by the claim across processes, and the failure clock.
--   pace_next_us:  the next free send time of a rate-limited endpoint (microseconds since the
--                  epoch); NULL until its first rate-limited claim.
--   failing_since: since when every attempt to the endpoint has failed; NULL while healthy.
ALTER TABLE endpoints ADD COLUMN pace_next_us INTEGER;
ALTER TABLE endpoints ADD COLUMN failing_since INTEGER;

-- Due and leased deliveries of one endpoint, for the limited claim: a pending delivery is due
-- when next_attempt_at <= now, and leased (in flight) when it has a lease that ends after now.
CREATE INDEX deliveries_pending_by_endpoint ON deliveries (endpoint_id, next_attempt_at)
    WHERE status = 'pending';
