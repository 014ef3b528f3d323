-- Deployment settings Hookline keeps for itself, by name (for example `encryption`: which
-- encryption keys sealed values in this store, with a check value per key).
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
