//! The shared queries compiled for PostgreSQL (feature `postgres`), and what PostgreSQL's schema
//! does its own way: an endpoint's event types and sites are `TEXT[]`, headers and secrets
//! `JSONB`; a claim keeps its lease's end in `lease_until`; deliveries keep a copy of their
//! endpoint's `enabled` flag for the due index.

// The same source as the other dialect's: written once, compiled for each (see the crate docs).
#[allow(clippy::duplicate_mod)]
#[path = "queries/mod.rs"]
mod queries;

pub use queries::{audit, catalog, claims, endpoints, history, page, queue, rows};

/// SQLSTATEs that mean "not now" rather than "never".
pub(crate) fn is_transient_sqlstate(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || matches!(
            code,
            "57P01" // admin_shutdown
                | "57P02" // crash_shutdown
                | "57P03" // cannot_connect_now (starting up, recovering)
                | "53300" // too_many_connections
                | "53400" // configuration_limit_exceeded
                | "40001" // serialization_failure
                | "40P01" // deadlock_detected
                | "55P03" // lock_not_available
                | "25006" // read_only_sql_transaction (a failover in progress)
        )
}

mod dialect {
    use hookline_core::transport::BoxError;
    use hookline_core::{EventTypeName, SiteId};
    use sqlx::QueryBuilder;

    use crate::error::{DbError, DbResult};

    pub(crate) type Db = sqlx::Postgres;
    pub(crate) type Row = sqlx::postgres::PgRow;

    /// An endpoint's columns (headers and secrets as JSON text).
    pub const ENDPOINT_COLS: &str = "id, account, url, description, event_types, sites, \
        headers::text AS headers, rate_limit, max_concurrency, ordered, secrets::text AS secrets, \
        enabled, disabled_reason, failing_since, created_at, updated_at";
    /// A delivery's columns. `lease_until` is read with them: a claimed delivery shows its
    /// lease's end as its next attempt.
    pub const DELIVERY_COLS: &str = "id, account, event_id, endpoint_id, status, attempts, \
        next_attempt_at, lease_until, last_attempt_at, created_at";
    /// A claim keeps `next_attempt_at` and sets `lease_until`.
    pub(crate) const LEASE_UNTIL: bool = true;
    /// JSON parameters are cast to `JSONB`.
    pub(crate) const JSON: &str = "::jsonb";
    /// A plain transaction (row locks do the rest).
    pub(crate) const BEGIN_WRITE: &str = "BEGIN";
    /// The assignments that end a delivery's lease.
    pub(crate) const CLEAR_LEASE: &str =
        "lease_id = NULL, lease_until = NULL, claimed_due_at = NULL";
    /// `deliveries.endpoint_enabled` copies the endpoint's flag (see migration 0001).
    pub(crate) const ENDPOINT_ENABLED_COPY: bool = true;

    /// `= ANY ($n)`: one array parameter, so the statement is the same for any number of ids.
    pub(crate) fn push_id_set<'a>(qb: &mut QueryBuilder<'a, Db>, ids: Vec<&'a str>) {
        qb.push(" = ANY (").push_bind(ids).push(")");
    }

    /// A list of names as stored: `TEXT[]`.
    pub(crate) type Names = Vec<String>;

    pub(crate) fn to_names<T>(
        items: &[T],
        _col: &'static str,
        name: fn(&T) -> &str,
    ) -> DbResult<Names> {
        Ok(items.iter().map(|t| name(t).to_owned()).collect())
    }

    pub(crate) fn names<T, E>(
        row: &Row,
        col: &'static str,
        parse: fn(&str) -> Result<T, E>,
    ) -> DbResult<Vec<T>>
    where
        E: Into<BoxError>,
    {
        let names: Vec<String> = sqlx::Row::try_get(row, col)?;
        names
            .iter()
            .map(|s| parse(s).map_err(|e| DbError::corrupt(col, e)))
            .collect()
    }

    /// The filters in SQL too, so only subscribers travel.
    pub(crate) fn push_subscriber_filter<'a>(
        qb: &mut QueryBuilder<'a, Db>,
        site: Option<&'a SiteId>,
        kind: &'a EventTypeName,
    ) {
        qb.push(" AND (cardinality(event_types) = 0 OR ")
            .push_bind(kind.as_str())
            .push(" = ANY (event_types)) AND (cardinality(sites) = 0 OR ")
            .push_bind(site.map(|s| s.as_str()))
            .push(" = ANY (sites))");
    }
}

#[cfg(test)]
mod tests {
    use super::is_transient_sqlstate;

    #[test]
    fn transient_sqlstates() {
        assert!(is_transient_sqlstate("08006"));
        assert!(is_transient_sqlstate("57P01"));
        assert!(!is_transient_sqlstate("23505"));
    }
}
