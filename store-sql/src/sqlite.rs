//! The shared queries compiled for SQLite (feature `sqlite`), and what SQLite's schema does its
//! own way: an endpoint's event types and sites are JSON text, and a write transaction takes the
//! write lock up front (`BEGIN IMMEDIATE`).

// The same source as the other dialect's: written once, compiled for each (see the crate docs).
#[allow(clippy::duplicate_mod)]
#[path = "queries/mod.rs"]
mod queries;

pub use queries::{audit, catalog, claims, endpoints, history, page, queue, rows};

/// Pool timeouts aside (see [`crate::error::is_unavailable`]): `SQLITE_BUSY` and
/// `SQLITE_LOCKED`, including their extended codes, mean another connection holds a lock.
pub(crate) fn is_transient(e: &sqlx::sqlite::SqliteError) -> bool {
    use sqlx::error::DatabaseError as _;
    e.code().is_some_and(|c| is_busy_code(&c))
}

/// Whether an (extended) result code is `SQLITE_BUSY` (5) or `SQLITE_LOCKED` (6).
fn is_busy_code(code: &str) -> bool {
    code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
}

mod dialect {
    use hookline_core::transport::BoxError;
    use hookline_core::{EventTypeName, SiteId};
    use sqlx::QueryBuilder;

    use crate::error::{DbError, DbResult};

    pub(crate) type Db = sqlx::Sqlite;
    pub(crate) type Row = sqlx::sqlite::SqliteRow;

    /// An endpoint's columns.
    pub const ENDPOINT_COLS: &str = "id, account, url, description, event_types, sites, \
        headers, rate_limit, max_concurrency, ordered, secrets, enabled, disabled_reason, \
        failing_since, created_at, updated_at";
    /// A delivery's columns.
    pub const DELIVERY_COLS: &str = "id, account, event_id, endpoint_id, status, attempts, \
        next_attempt_at, last_attempt_at, created_at";
    /// A claim moves `next_attempt_at` to the lease's end; there is no `lease_until`.
    pub(crate) const LEASE_UNTIL: bool = false;
    /// JSON columns are plain text.
    pub(crate) const JSON: &str = "";
    /// Take the write lock up front, so that a busy database makes the transaction wait
    /// (`busy_timeout`) instead of failing half-way.
    pub(crate) const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";
    /// The assignments that end a delivery's lease.
    pub(crate) const CLEAR_LEASE: &str = "lease_id = NULL, claimed_due_at = NULL";
    /// Deliveries keep no copy of their endpoint's `enabled` flag.
    pub(crate) const ENDPOINT_ENABLED_COPY: bool = false;

    /// `IN (…)` with one parameter per id.
    pub(crate) fn push_id_set<'a>(qb: &mut QueryBuilder<'a, Db>, ids: Vec<&'a str>) {
        qb.push(" IN (");
        let mut sep = qb.separated(", ");
        for id in ids {
            sep.push_bind(id);
        }
        qb.push(")");
    }

    /// A list of names as stored: JSON text.
    pub(crate) type Names = String;

    pub(crate) fn to_names<T: serde::Serialize>(
        items: &[T],
        col: &'static str,
        _name: fn(&T) -> &str,
    ) -> DbResult<Names> {
        serde_json::to_string(items).map_err(|e| DbError::corrupt(col, e))
    }

    pub(crate) fn names<T, E>(
        row: &Row,
        col: &'static str,
        _parse: fn(&str) -> Result<T, E>,
    ) -> DbResult<Vec<T>>
    where
        T: serde::de::DeserializeOwned,
        E: Into<BoxError>,
    {
        let s: &str = sqlx::Row::try_get(row, col)?;
        serde_json::from_str(s).map_err(|e| DbError::corrupt(col, e))
    }

    /// An account has few endpoints: subscribers are filtered in Rust only.
    pub(crate) fn push_subscriber_filter<'a>(
        _qb: &mut QueryBuilder<'a, Db>,
        _site: Option<&'a SiteId>,
        _kind: &'a EventTypeName,
    ) {
    }
}

#[cfg(test)]
mod tests {
    use super::is_busy_code;

    #[test]
    fn busy_and_locked_are_transient() {
        assert!(is_busy_code("5")); // SQLITE_BUSY
        assert!(is_busy_code("517")); // SQLITE_BUSY_SNAPSHOT
        assert!(is_busy_code("262")); // SQLITE_LOCKED_SHAREDCACHE
        assert!(!is_busy_code("2067")); // SQLITE_CONSTRAINT_UNIQUE
        assert!(!is_busy_code("19")); // SQLITE_CONSTRAINT
    }

    #[tokio::test]
    async fn a_unique_violation_is_a_conflict() {
        use hookline_core::store::StoreError;
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE t (id TEXT PRIMARY KEY)")
            .execute(&pool)
            .await
            .unwrap();
        let insert = || sqlx::query("INSERT INTO t (id) VALUES ('a')").execute(&pool);
        insert().await.unwrap();
        let e = crate::DbError::from(insert().await.unwrap_err()).into_store("thing");
        assert!(matches!(e, StoreError::Conflict("thing")), "{e:?}");
    }
}
