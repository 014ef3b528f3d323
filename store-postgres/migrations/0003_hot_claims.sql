-- Claims no longer move `next_attempt_at`: they stamp the lease (`lease_id`, `lease_until`), and
-- no index covers those columns, so PostgreSQL updates a claimed row in place on its page (a
-- HOT update: no new entries in any of the table's indexes, and no dead ones left at the head
-- of the due index for later claims to step over). A delivery is claimable when it is due and
-- has no live lease: `lease_until IS NULL OR lease_until <= now`.
--   lease_until: when the current claim's lease ends (ms); NULL when unclaimed.
-- Rows claimed before this migration keep their lease's end in `next_attempt_at` and a NULL
-- `lease_until`, which means the same thing: claimable again once the lease has ended.
ALTER TABLE deliveries ADD COLUMN lease_until BIGINT;

-- Room on every page for the updated versions of its rows (HOT updates stay on the page).
ALTER TABLE deliveries SET (fillfactor = 50);
