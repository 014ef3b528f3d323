-- Claims no longer move `next_attempt_at`: they stamp the lease (`lease_id`, `lease_until`), and
-- no index covers those columns, so PostgreSQL updates a claimed row in place on its page (a
-- HOT update: no new entries in any of the table's indexes, and no dead ones left at the head
-- of the due index for later claims to step over). A delivery is claimable when it is due and
-- has no live lease: `lease_until IS NULL OR lease_until <= now`.
--   lease_until: when the current claim's lease ends (ms); NULL when unclaimed.
-- Rows claimed before this migration keep their lease's end in `next_attempt_at` and a NULL
-- `lease_until`, which means the same thing: claimable again once the lease has ended.
ALTER TABLE deliveries ADD COLUMN lease_until BIGINT;

-- Room on every page for a claimed version of each of its rows (HOT updates stay on the page;
-- claims take runs of rows that were enqueued together, so a page's rows are often claimed at
-- once). The cost is space: new pages of the table are filled to half, so its heap takes up to
-- twice the room; its indexes do not grow. With 80 % only about a third of the claims were HOT.
ALTER TABLE deliveries SET (fillfactor = 50);
