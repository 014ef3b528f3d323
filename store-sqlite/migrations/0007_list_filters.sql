-- Indexes for the list filters, so every filtered list is an index range read newest first by
-- (time, id) that stops after a page, not a scan of the account's rows:
-- * the deliveries of one event (the old index on `event_id` alone left the planner with the
--   account's index, walking every delivery of the account until it found the event's);
-- * the deliveries to one endpoint, in any state;
-- * an account's deliveries in one state;
-- * an account's events of one type, of one site, with one queue id.
DROP INDEX deliveries_by_event;
CREATE INDEX deliveries_by_event ON deliveries (event_id, created_at, id);
CREATE INDEX deliveries_by_endpoint_created ON deliveries (endpoint_id, created_at, id);
CREATE INDEX deliveries_by_status ON deliveries (account, status, created_at, id);
CREATE INDEX events_by_type ON events (account, event_type, fired_at, id);
CREATE INDEX events_by_site ON events (account, site, fired_at, id) WHERE site IS NOT NULL;
CREATE INDEX events_by_queue_id ON events (account, queue_id, fired_at, id)
    WHERE queue_id IS NOT NULL;
