-- Indexes for the list filters, so every filtered list is an index range read newest first by
-- (time, id) that stops after a page, not a scan of the account's rows:
-- * the deliveries of one event (replacing the index on `event_id` alone);
-- * the deliveries to one endpoint, in any state;
-- * an account's deliveries in one state;
-- * an account's events of one type, of one site (queue ids have theirs since 0001).
-- None covers a column a claim writes, so claims stay HOT updates.
DROP INDEX deliveries_by_event;
CREATE INDEX deliveries_by_event ON deliveries (event_id, created_at, id);
CREATE INDEX deliveries_by_endpoint_created ON deliveries (endpoint_id, created_at, id);
CREATE INDEX deliveries_by_status ON deliveries (account, status, created_at, id);
CREATE INDEX events_by_type ON events (account, event_type, fired_at, id);
CREATE INDEX events_by_site ON events (account, site, fired_at, id) WHERE site IS NOT NULL;
