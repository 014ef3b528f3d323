-- API keys get an id (`key_` + the first 16 hex digits of the hash), a name, read-only and
-- bootstrap flags, an optional expiry and their last use; keys are listed per scope (an
-- account's, or the admin's: `account IS NULL`) newest first. Admin keys stored before are the
-- keys the server was started with (`HOOKLINE_ADMIN_KEY`, or generated at first start): the
-- bootstrap keys.
ALTER TABLE api_keys ADD COLUMN id TEXT NOT NULL DEFAULT '';
UPDATE api_keys SET id = 'key_' || substr(hash, 1, 16);
ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN read_only INTEGER NOT NULL DEFAULT 0;   -- 0 / 1
ALTER TABLE api_keys ADD COLUMN bootstrap INTEGER NOT NULL DEFAULT 0;   -- 0 / 1
UPDATE api_keys SET bootstrap = 1 WHERE account IS NULL;
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER;                      -- NULL: never
ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;                    -- NULL: never used
CREATE INDEX api_keys_by_scope ON api_keys (account, created_at, id);

-- The audit log: who (actor_kind `system` / `key` / `session`, actor_id) did what (action,
-- target: an object id, never a secret) and when, per account (NULL: deployment-wide). Kept as
-- long as events; deleting an account keeps its entries until then.
CREATE TABLE audit_log (
    id          TEXT    NOT NULL PRIMARY KEY,
    account     TEXT,
    actor_kind  TEXT    NOT NULL,
    actor_id    TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    at          INTEGER NOT NULL
) STRICT;
CREATE INDEX audit_log_by_account ON audit_log (account, at, id);
CREATE INDEX audit_log_by_time ON audit_log (at, id);
