-- Hookline's PostgreSQL schema (PostgreSQL 13 or newer: `gen_random_uuid()` is built in).
--
-- * Timestamps are BIGINT milliseconds since the Unix epoch (UTC). They come from the caller's
--   clock (`now: Timestamp`), never from `now()`, so leases and backoff are deterministic in tests
--   and several servers agree on one notion of "due" as long as their clocks are in sync.
-- * Ids are TEXT with the "C" collation: byte order, which is the order of the time-sortable ids
--   in Rust and makes `(created_at, id)` cursors behave the same under every database locale.
-- * Event data is TEXT, not JSONB: receivers must get the producer's bytes unchanged.
-- * Account-owned rows carry no foreign key to `accounts` (as in the SQLite store):
--   `delete_account` removes everything an account owns explicitly, in one transaction.
--   Foreign keys hold inside the delivery pipeline (event -> delivery -> attempt).

CREATE TABLE accounts (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX accounts_by_created ON accounts (created_at, id);

CREATE TABLE sites (
    account     TEXT COLLATE "C" NOT NULL,
    id          TEXT COLLATE "C" NOT NULL,
    name        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (account, id)
);
CREATE INDEX sites_by_created ON sites (account, created_at, id);

CREATE TABLE event_types (
    name        TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    description TEXT    NOT NULL,
    json_schema TEXT,               -- JSON text as given, NULL when none
    archived    BOOLEAN NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX event_types_by_created ON event_types (created_at, name);

CREATE TABLE api_keys (
    hash        TEXT   NOT NULL PRIMARY KEY,  -- lower-case hex SHA-256 of the key
    prefix      TEXT   NOT NULL,
    account     TEXT COLLATE "C",             -- NULL for the admin role
    created_at  BIGINT NOT NULL
);
CREATE INDEX api_keys_by_account ON api_keys (account);

CREATE TABLE endpoints (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    account         TEXT COLLATE "C" NOT NULL,
    url             TEXT    NOT NULL,
    description     TEXT,
    event_types     TEXT[]  NOT NULL,  -- {} = every type
    sites           TEXT[]  NOT NULL,  -- {} = shared endpoint
    headers         JSONB   NOT NULL,  -- object of name -> value
    rate_limit      BIGINT,
    max_concurrency BIGINT,
    ordered         BOOLEAN NOT NULL,
    secrets         JSONB   NOT NULL,  -- array of {key, createdAt, expiresAt}, newest first
    enabled         BOOLEAN NOT NULL,
    disabled_reason TEXT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);
CREATE INDEX endpoints_by_account ON endpoints (account, created_at, id);

CREATE TABLE events (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    account         TEXT COLLATE "C" NOT NULL,
    site            TEXT,
    event_type      TEXT   NOT NULL,
    queue_id        TEXT,
    data            TEXT   NOT NULL,  -- the JSON object, byte for byte as accepted
    idempotency_key TEXT,
    fired_at        BIGINT NOT NULL
);
CREATE INDEX events_by_account ON events (account, fired_at, id);
CREATE INDEX events_by_fired_at ON events (fired_at);  -- retention (`purge`)
CREATE INDEX events_by_queue_id ON events (account, queue_id, fired_at, id)
    WHERE queue_id IS NOT NULL;
CREATE UNIQUE INDEX events_by_idempotency_key ON events (account, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE deliveries (
    id               TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    account          TEXT COLLATE "C" NOT NULL,
    event_id         TEXT COLLATE "C" NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    endpoint_id      TEXT COLLATE "C" NOT NULL,  -- no foreign key: cancelled deliveries outlive their endpoint
    status           TEXT    NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'cancelled')),
    attempts         INTEGER NOT NULL,
    -- Pending: when it is due. A claim moves it to the lease's end, so an expired lease is simply
    -- due again. NULL once terminal.
    next_attempt_at  BIGINT,
    last_attempt_at  BIGINT,
    created_at       BIGINT  NOT NULL,
    -- The current claim, NULL when unclaimed; settle must present it.
    lease_id         TEXT,
    -- When the current claim found it due (orders a claimed batch oldest due first).
    claimed_due_at   BIGINT,
    -- What the next attempt is started by: 'scheduled', or 'manual' after a retry request.
    next_trigger     TEXT    NOT NULL CHECK (next_trigger IN ('scheduled', 'manual')),
    -- A copy of the endpoint's `enabled` flag, kept so that the due index leaves out the backlog
    -- of disabled endpoints. Only ever a hint: claims also check `endpoints.enabled`. Enqueue
    -- always writes TRUE, so a stale copy can only be TRUE for a disabled endpoint (harmless),
    -- never FALSE for an enabled one (which would hide work).
    endpoint_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    -- For an endpoint with ordered delivery (at enqueue time), the event's queue id; NULL
    -- otherwise. A delivery with a key is not claimed while an earlier one (lower id) with the
    -- same endpoint and key is pending (leased ones included).
    ordering_key     TEXT
);
-- The claim query's index: pending work in due order. Partial, so it holds only what can be
-- claimed and stays small however many finished deliveries the table keeps.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id)
    WHERE status = 'pending' AND endpoint_enabled;
CREATE INDEX deliveries_ordered ON deliveries (endpoint_id, ordering_key, id)
    WHERE ordering_key IS NOT NULL AND status = 'pending';
CREATE INDEX deliveries_by_event ON deliveries (event_id);
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, status, created_at);
CREATE INDEX deliveries_by_account ON deliveries (account, created_at, id);

CREATE TABLE attempts (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    delivery_id     TEXT COLLATE "C" NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    number          INTEGER NOT NULL,
    trigger_kind    TEXT    NOT NULL,
    started_at      BIGINT  NOT NULL,
    duration_ms     BIGINT  NOT NULL,
    status_code     INTEGER,
    error           TEXT,
    response_body   TEXT    NOT NULL
);
CREATE INDEX attempts_by_delivery ON attempts (delivery_id, number, started_at);
