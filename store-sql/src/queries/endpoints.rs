//! [`EndpointStore`](hookline_core::store::EndpointStore): endpoints.

use hookline_core::model::{Cursor, Endpoint, Page, PageRequest};
use hookline_core::store::StoreError;
use hookline_core::{AccountId, EndpointId, EventTypeName, SiteId};
use sqlx::QueryBuilder;

use super::dialect::{self, Db, JSON};
use super::page::{fetch_page, optional, push_page};
use super::rows::{self, ENDPOINT_COLS};
use crate::SqlStore;
use crate::error::{DbError, DbResult};

/// An endpoint's list and JSON columns in the dialect's shapes.
struct Encoded {
    event_types: dialect::Names,
    sites: dialect::Names,
    headers: String,
    secrets: String,
}

fn encode(ep: &Endpoint) -> DbResult<Encoded> {
    Ok(Encoded {
        event_types: dialect::to_names(&ep.event_types, "event_types", EventTypeName::as_str)?,
        sites: dialect::to_names(&ep.sites, "sites", SiteId::as_str)?,
        headers: rows::to_json(&ep.headers, "headers")?,
        secrets: rows::to_json(&ep.secrets, "secrets")?,
    })
}

/// Creates an endpoint.
pub async fn create_endpoint<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    ep: &Endpoint,
) -> Result<(), StoreError> {
    s.endpoints_changed();
    let c = encode(ep)?;
    let mut qb = QueryBuilder::new(
        "INSERT INTO endpoints (id, account, url, description, event_types, sites, headers, \
         rate_limit, max_concurrency, ordered, secrets, enabled, disabled_reason, created_at, \
         updated_at) ",
    );
    qb.push_values([(ep, c)], |mut row, (ep, c)| {
        row.push_bind(ep.id.as_str())
            .push_bind(ep.account.as_str())
            .push_bind(ep.url.as_str())
            .push_bind(&ep.description)
            .push_bind(c.event_types)
            .push_bind(c.sites)
            .push_bind(c.headers)
            .push_unseparated(JSON)
            .push_bind(ep.rate_limit.map(i64::from))
            .push_bind(ep.max_concurrency.map(i64::from))
            .push_bind(ep.ordered)
            .push_bind(c.secrets)
            .push_unseparated(JSON)
            .push_bind(ep.enabled)
            .push_bind(ep.disabled_reason.as_deref())
            .push_bind(ep.created_at.as_millis())
            .push_bind(ep.updated_at.as_millis());
    });
    qb.build()
        .execute(s.write_pool())
        .await
        .map_err(|e| DbError::from(e).into_store("endpoint"))?;
    Ok(())
}

/// Replaces an endpoint (the failure clock stays the store's).
pub async fn update_endpoint<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    ep: &Endpoint,
) -> Result<(), StoreError> {
    s.endpoints_changed();
    let c = encode(ep)?;
    let mut tx = s
        .write_pool()
        .begin_with(dialect::BEGIN_WRITE)
        .await
        .map_err(DbError::from)?;
    let mut qb = QueryBuilder::<Db>::new("UPDATE endpoints SET url = ");
    qb.push_bind(ep.url.as_str())
        .push(", description = ")
        .push_bind(&ep.description)
        .push(", event_types = ")
        .push_bind(c.event_types)
        .push(", sites = ")
        .push_bind(c.sites)
        .push(", headers = ")
        .push_bind(c.headers)
        .push(JSON)
        .push(", rate_limit = ")
        .push_bind(ep.rate_limit.map(i64::from))
        .push(", max_concurrency = ")
        .push_bind(ep.max_concurrency.map(i64::from))
        .push(", ordered = ")
        .push_bind(ep.ordered)
        .push(", secrets = ")
        .push_bind(c.secrets)
        .push(JSON)
        .push(", enabled = ")
        .push_bind(ep.enabled)
        .push(", disabled_reason = ")
        .push_bind(ep.disabled_reason.as_deref())
        .push(", created_at = ")
        .push_bind(ep.created_at.as_millis())
        .push(", updated_at = ")
        .push_bind(ep.updated_at.as_millis())
        .push(" WHERE account = ")
        .push_bind(ep.account.as_str())
        .push(" AND id = ")
        .push_bind(ep.id.as_str());
    let done = qb.build().execute(&mut *tx).await.map_err(DbError::from)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("endpoint"));
    }
    if dialect::ENDPOINT_ENABLED_COPY {
        // Keep the due index's copy of the flag in step. The endpoint row stays locked until
        // commit, so a concurrent update of it runs this after us.
        let mut qb = QueryBuilder::<Db>::new("UPDATE deliveries SET endpoint_enabled = ");
        qb.push_bind(ep.enabled)
            .push(" WHERE endpoint_id = ")
            .push_bind(ep.id.as_str())
            .push(" AND status = 'pending' AND endpoint_enabled <> ")
            .push_bind(ep.enabled);
        qb.build().execute(&mut *tx).await.map_err(DbError::from)?;
    }
    tx.commit().await.map_err(DbError::from)?;
    Ok(())
}

/// One endpoint of an account.
pub async fn endpoint<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    account: &AccountId,
    id: &EndpointId,
) -> Result<Option<Endpoint>, StoreError> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {ENDPOINT_COLS} FROM endpoints WHERE account = "
    ));
    qb.push_bind(account.as_str())
        .push(" AND id = ")
        .push_bind(id.as_str());
    optional(qb, s.read_pool(), rows::endpoint).await
}

/// An account's endpoints, newest first.
pub async fn list_endpoints<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    account: &AccountId,
    page: &PageRequest,
) -> Result<Page<Endpoint>, StoreError> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {ENDPOINT_COLS} FROM endpoints WHERE account = "
    ));
    qb.push_bind(account.as_str());
    push_page(&mut qb, "created_at", "id", page);
    Ok(
        fetch_page(qb, s.read_pool(), page, rows::endpoint, |e| Cursor {
            created_at: e.created_at,
            id: e.id.as_str().to_owned(),
        })
        .await?,
    )
}

/// Removes an endpoint and cancels its pending deliveries, leased ones too: clearing the lease
/// makes a late settle `LeaseLost`.
pub async fn remove_endpoint<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    account: &AccountId,
    id: &EndpointId,
) -> Result<bool, StoreError> {
    let mut tx = s
        .write_pool()
        .begin_with(dialect::BEGIN_WRITE)
        .await
        .map_err(DbError::from)?;
    let mut qb = QueryBuilder::<Db>::new("DELETE FROM endpoints WHERE account = ");
    qb.push_bind(account.as_str())
        .push(" AND id = ")
        .push_bind(id.as_str());
    let done = qb.build().execute(&mut *tx).await.map_err(DbError::from)?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    let mut qb = QueryBuilder::<Db>::new(format!(
        "UPDATE deliveries SET status = 'cancelled', next_attempt_at = NULL, {} \
         WHERE account = ",
        dialect::CLEAR_LEASE
    ));
    qb.push_bind(account.as_str())
        .push(" AND endpoint_id = ")
        .push_bind(id.as_str())
        .push(" AND status = 'pending'");
    qb.build().execute(&mut *tx).await.map_err(DbError::from)?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(true)
}

/// The enabled endpoints of `account` that take events of `kind` from `site`, oldest first.
/// The dialect may pre-filter in SQL (so only subscribers travel); the model's own rule
/// ([`Endpoint::accepts`]) stays the single definition of fan-out.
pub async fn subscribers<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    account: &AccountId,
    site: Option<&SiteId>,
    kind: &EventTypeName,
) -> Result<Vec<Endpoint>, StoreError> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {ENDPOINT_COLS} FROM endpoints WHERE account = "
    ));
    qb.push_bind(account.as_str()).push(" AND enabled = TRUE");
    dialect::push_subscriber_filter(&mut qb, site, kind);
    qb.push(" ORDER BY created_at, id");
    let found = qb
        .build()
        .fetch_all(s.read_pool())
        .await
        .map_err(DbError::from)?;
    let mut subs = Vec::with_capacity(found.len());
    for row in &found {
        let ep = rows::endpoint(row)?;
        if ep.accepts(site, kind) {
            subs.push(ep);
        }
    }
    Ok(subs)
}
