//! [`EndpointStore`]: endpoints, with filters as TEXT[] and headers and secrets as JSONB.

use hookline_core::model::{Cursor, Endpoint, Page, PageRequest};
use hookline_core::store::{EndpointStore, StoreError};
use hookline_core::{AccountId, EndpointId, EventTypeName, SiteId};
use sqlx::QueryBuilder;

use crate::PgStore;
use crate::catalog::push_page;
use crate::error::{DbError, DbResult};
use crate::rows::{self, ENDPOINT_COLS};

/// The columns of an endpoint in their PostgreSQL shapes.
struct Cols {
    event_types: Vec<String>,
    sites: Vec<String>,
    headers: String,
    secrets: String,
}

fn cols(ep: &Endpoint) -> DbResult<Cols> {
    Ok(Cols {
        event_types: ep
            .event_types
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect(),
        sites: ep.sites.iter().map(|s| s.as_str().to_owned()).collect(),
        headers: rows::to_json(&ep.headers, "headers")?,
        secrets: rows::to_json(&ep.secrets, "secrets")?,
    })
}

#[async_trait::async_trait]
impl EndpointStore for PgStore {
    async fn create_endpoint(&self, ep: &Endpoint) -> Result<(), StoreError> {
        self.limited.clear();
        let c = cols(ep)?;
        sqlx::query(
            "INSERT INTO endpoints (id, account, url, description, event_types, sites, headers, \
             rate_limit, max_concurrency, ordered, secrets, enabled, disabled_reason, created_at, \
             updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11::jsonb, $12, $13, $14, $15)",
        )
        .bind(ep.id.as_str())
        .bind(ep.account.as_str())
        .bind(&ep.url)
        .bind(&ep.description)
        .bind(c.event_types)
        .bind(c.sites)
        .bind(c.headers)
        .bind(ep.rate_limit.map(i64::from))
        .bind(ep.max_concurrency.map(i64::from))
        .bind(ep.ordered)
        .bind(c.secrets)
        .bind(ep.enabled)
        .bind(&ep.disabled_reason)
        .bind(ep.created_at.as_millis())
        .bind(ep.updated_at.as_millis())
        .execute(&self.pool)
        .await
        .map_err(|e| DbError::from(e).into_store("endpoint"))?;
        Ok(())
    }

    async fn update_endpoint(&self, ep: &Endpoint) -> Result<(), StoreError> {
        self.limited.clear();
        let c = cols(ep)?;
        let mut tx = self.pool.begin().await.map_err(DbError::from)?;
        let done = sqlx::query(
            "UPDATE endpoints SET url = $1, description = $2, event_types = $3, sites = $4, \
             headers = $5::jsonb, rate_limit = $6, max_concurrency = $7, ordered = $8, \
             secrets = $9::jsonb, enabled = $10, disabled_reason = $11, created_at = $12, \
             updated_at = $13 WHERE account = $14 AND id = $15",
        )
        .bind(&ep.url)
        .bind(&ep.description)
        .bind(c.event_types)
        .bind(c.sites)
        .bind(c.headers)
        .bind(ep.rate_limit.map(i64::from))
        .bind(ep.max_concurrency.map(i64::from))
        .bind(ep.ordered)
        .bind(c.secrets)
        .bind(ep.enabled)
        .bind(&ep.disabled_reason)
        .bind(ep.created_at.as_millis())
        .bind(ep.updated_at.as_millis())
        .bind(ep.account.as_str())
        .bind(ep.id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(DbError::from)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("endpoint"));
        }
        // Keep the due index's copy of the flag in step (see the migration). The endpoint row
        // stays locked until commit, so a concurrent update of it runs this after us.
        sqlx::query(
            "UPDATE deliveries SET endpoint_enabled = $1 \
             WHERE endpoint_id = $2 AND status = 'pending' AND endpoint_enabled <> $1",
        )
        .bind(ep.enabled)
        .bind(ep.id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(())
    }

    async fn endpoint(
        &self,
        account: &AccountId,
        id: &EndpointId,
    ) -> Result<Option<Endpoint>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLS} FROM endpoints WHERE account = $1 AND id = $2"
        ))
        .bind(account.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(DbError::from)?;
        Ok(row.as_ref().map(rows::endpoint).transpose()?)
    }

    async fn list_endpoints(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Endpoint>, StoreError> {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {ENDPOINT_COLS} FROM endpoints WHERE account = "
        ));
        qb.push_bind(account.as_str().to_owned());
        push_page(&mut qb, "created_at", "id", page);
        let found = qb
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(DbError::from)?;
        let items = found.iter().map(rows::endpoint).collect::<Result<_, _>>()?;
        Ok(Page::from_rows(items, page.limit, |e: &Endpoint| Cursor {
            created_at: e.created_at,
            id: e.id.as_str().to_owned(),
        }))
    }

    async fn remove_endpoint(
        &self,
        account: &AccountId,
        id: &EndpointId,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(DbError::from)?;
        let done = sqlx::query("DELETE FROM endpoints WHERE account = $1 AND id = $2")
            .bind(account.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(DbError::from)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        // Leased ones too: clearing the lease makes a late settle `LeaseLost`.
        sqlx::query(
            "UPDATE deliveries SET status = 'cancelled', next_attempt_at = NULL, \
             lease_id = NULL, lease_until = NULL, claimed_due_at = NULL \
             WHERE account = $1 AND endpoint_id = $2 AND status = 'pending'",
        )
        .bind(account.as_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(true)
    }

    async fn subscribers(
        &self,
        account: &AccountId,
        site: Option<&SiteId>,
        kind: &EventTypeName,
    ) -> Result<Vec<Endpoint>, StoreError> {
        // The filters are applied in SQL (so only subscribers travel) and again in Rust with the
        // model's own rule, which stays the single definition of fan-out.
        let found = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLS} FROM endpoints WHERE account = $1 AND enabled \
             AND (cardinality(event_types) = 0 OR $2 = ANY (event_types)) \
             AND (cardinality(sites) = 0 OR $3 = ANY (sites)) \
             ORDER BY created_at, id"
        ))
        .bind(account.as_str())
        .bind(kind.as_str())
        .bind(site.map(|s| s.as_str()))
        .fetch_all(&self.pool)
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
}
