-- Hookline's SQLite schema. Timestamps are INTEGER milliseconds since the Unix epoch (UTC).
-- Account-owned rows carry no foreign key to `accounts`: the trait leaves referential checks to
-- the caller, and `delete_account` removes everything an account owns explicitly, in one
-- transaction. Foreign keys hold only inside the delivery pipeline (event → delivery → attempt).

CREATE TABLE accounts (
    id          TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX accounts_by_created ON accounts (created_at, id);

CREATE TABLE sites (
    account     TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (account, id)
) STRICT;
CREATE INDEX sites_by_created ON sites (account, created_at, id);

CREATE TABLE event_types (
    name        TEXT    NOT NULL PRIMARY KEY,
    description TEXT    NOT NULL,
    json_schema TEXT,               -- JSON, NULL when none
    archived    INTEGER NOT NULL,   -- 0 / 1
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX event_types_by_created ON event_types (created_at, name);

CREATE TABLE api_keys (
    hash        TEXT    NOT NULL PRIMARY KEY,  -- lower-case hex SHA-256 of the key
    prefix      TEXT    NOT NULL,
    account     TEXT,                           -- NULL for the admin role
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX api_keys_by_account ON api_keys (account);

CREATE TABLE endpoints (
    id              TEXT    NOT NULL PRIMARY KEY,
    account         TEXT    NOT NULL,
    url             TEXT    NOT NULL,
    description     TEXT,
    event_types     TEXT    NOT NULL,  -- JSON array of names; [] = every type
    sites           TEXT    NOT NULL,  -- JSON array of site ids; [] = shared endpoint
    headers         TEXT    NOT NULL,  -- JSON object
    rate_limit      INTEGER,
    max_concurrency INTEGER,
    ordered         INTEGER NOT NULL,
    secrets         TEXT    NOT NULL,  -- JSON array of {key, createdAt, expiresAt}
    enabled         INTEGER NOT NULL,
    disabled_reason TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX endpoints_by_account ON endpoints (account, created_at, id);

CREATE TABLE events (
    id              TEXT    NOT NULL PRIMARY KEY,
    account         TEXT    NOT NULL,
    site            TEXT,
    event_type      TEXT    NOT NULL,
    queue_id        TEXT,
    data            TEXT    NOT NULL,  -- the JSON object, byte for byte as accepted
    idempotency_key TEXT,
    fired_at        INTEGER NOT NULL
) STRICT;
CREATE INDEX events_by_account ON events (account, fired_at, id);
CREATE UNIQUE INDEX events_by_idempotency_key ON events (account, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE deliveries (
    id              TEXT    NOT NULL PRIMARY KEY,
    account         TEXT    NOT NULL,
    event_id        TEXT    NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    endpoint_id     TEXT    NOT NULL,  -- no foreign key: cancelled deliveries outlive their endpoint
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'cancelled')),
    attempts        INTEGER NOT NULL,
    -- Pending: when it is due. A claim moves it to the lease's end, so an expired lease is simply
    -- due again. NULL once terminal.
    next_attempt_at INTEGER,
    last_attempt_at INTEGER,
    created_at      INTEGER NOT NULL,
    -- The current claim, NULL when unclaimed; settle must present it.
    lease_id        TEXT,
    -- When the current claim found it due (orders a claimed batch oldest due first).
    claimed_due_at  INTEGER,
    -- What the next attempt is started by: 'scheduled', or 'manual' after a retry request.
    next_trigger    TEXT    NOT NULL CHECK (next_trigger IN ('scheduled', 'manual')),
    -- For an endpoint with ordered delivery, the event's queue id (NULL otherwise): a delivery is
    -- not claimed while an earlier one with the same endpoint and key is pending.
    ordering_key    TEXT
) STRICT;
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_by_event ON deliveries (event_id);
CREATE INDEX deliveries_ordered ON deliveries (endpoint_id, ordering_key, id)
    WHERE ordering_key IS NOT NULL AND status = 'pending';
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, status, created_at);
CREATE INDEX deliveries_by_account ON deliveries (account, created_at, id);

CREATE TABLE attempts (
    id              TEXT    NOT NULL PRIMARY KEY,
    delivery_id     TEXT    NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    number          INTEGER NOT NULL,
    trigger_kind    TEXT    NOT NULL,
    started_at      INTEGER NOT NULL,
    duration_ms     INTEGER NOT NULL,
    status_code     INTEGER,
    error           TEXT,
    response_body   TEXT    NOT NULL
) STRICT;
CREATE INDEX attempts_by_delivery ON attempts (delivery_id, number, started_at);
