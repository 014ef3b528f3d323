//! The server on Redis (feature `redis`).
