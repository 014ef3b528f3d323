//! The server on PostgreSQL (feature `postgres`).
