//! [`EndpointStore`]: endpoints, with filters, headers and secrets as JSON text columns.

use hookline_core::model::{Cursor, Endpoint, Page, PageRequest};
use hookline_core::store::{EndpointStore, StoreError};
use hookline_core::{AccountId, EndpointId, EventTypeName, SiteId};
use sqlx::QueryBuilder;

use crate::SqliteStore;
use crate::catalog::push_page;
use crate::error::{DbError, DbResult};
use crate::rows::{self, ENDPOINT_COLS, ENDPOINT_READ_COLS};

/// The JSON-encoded columns of an endpoint.
struct JsonCols {
    event_types: String,
    sites: String,
    headers: String,
    secrets: String,
}

fn json_cols(ep: &Endpoint) -> DbResult<JsonCols> {
    Ok(JsonCols {
        event_types: rows::to_json(&ep.event_types, "event_types")?,
        sites: rows::to_json(&ep.sites, "sites")?,
        headers: rows::to_json(&ep.headers, "headers")?,
        secrets: rows::to_json(&ep.secrets, "secrets")?,
    })
}

#[async_trait::async_trait]
impl EndpointStore for SqliteStore {
    async fn create_endpoint(&self, ep: &Endpoint) -> Result<(), StoreError> {
        self.limited.clear();
        let j = json_cols(ep)?;
        sqlx::query(&format!(
            "INSERT INTO endpoints ({ENDPOINT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(ep.id.as_str())
        .bind(ep.account.as_str())
        .bind(&ep.url)
        .bind(&ep.description)
        .bind(j.event_types)
        .bind(j.sites)
        .bind(j.headers)
        .bind(ep.rate_limit.map(i64::from))
        .bind(ep.max_concurrency.map(i64::from))
        .bind(ep.ordered)
        .bind(j.secrets)
        .bind(ep.enabled)
        .bind(&ep.disabled_reason)
        .bind(ep.created_at.as_millis())
        .bind(ep.updated_at.as_millis())
        .execute(&self.write)
        .await
        .map_err(|e| DbError::from(e).into_store("endpoint"))?;
        Ok(())
    }

    async fn update_endpoint(&self, ep: &Endpoint) -> Result<(), StoreError> {
        self.limited.clear();
        let j = json_cols(ep)?;
        let done = sqlx::query(
            "UPDATE endpoints SET url = ?, description = ?, event_types = ?, sites = ?, \
             headers = ?, rate_limit = ?, max_concurrency = ?, ordered = ?, secrets = ?, \
             enabled = ?, disabled_reason = ?, created_at = ?, updated_at = ? \
             WHERE account = ? AND id = ?",
        )
        .bind(&ep.url)
        .bind(&ep.description)
        .bind(j.event_types)
        .bind(j.sites)
        .bind(j.headers)
        .bind(ep.rate_limit.map(i64::from))
        .bind(ep.max_concurrency.map(i64::from))
        .bind(ep.ordered)
        .bind(j.secrets)
        .bind(ep.enabled)
        .bind(&ep.disabled_reason)
        .bind(ep.created_at.as_millis())
        .bind(ep.updated_at.as_millis())
        .bind(ep.account.as_str())
        .bind(ep.id.as_str())
        .execute(&self.write)
        .await
        .map_err(DbError::from)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("endpoint"));
        }
        Ok(())
    }

    async fn endpoint(
        &self,
        account: &AccountId,
        id: &EndpointId,
    ) -> Result<Option<Endpoint>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ENDPOINT_READ_COLS} FROM endpoints WHERE account = ? AND id = ?"
        ))
        .bind(account.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.read)
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
            "SELECT {ENDPOINT_READ_COLS} FROM endpoints WHERE account = "
        ));
        qb.push_bind(account.as_str().to_owned());
        push_page(&mut qb, "created_at", "id", page);
        let found = qb
            .build()
            .fetch_all(&self.read)
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
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM endpoints WHERE account = ? AND id = ?")
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
            "UPDATE deliveries SET status = 'cancelled', next_attempt_at = NULL, lease_id = NULL, \
             claimed_due_at = NULL WHERE account = ? AND endpoint_id = ? AND status = 'pending'",
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
        // An account has few endpoints: filter in Rust with the model's own rule.
        let found = sqlx::query(&format!(
            "SELECT {ENDPOINT_READ_COLS} FROM endpoints WHERE account = ? AND enabled = 1 \
             ORDER BY created_at, id"
        ))
        .bind(account.as_str())
        .fetch_all(&self.read)
        .await
        .map_err(DbError::from)?;
        let mut subs = Vec::new();
        for row in &found {
            let ep = rows::endpoint(row)?;
            if ep.accepts(site, kind) {
                subs.push(ep);
            }
        }
        Ok(subs)
    }
}
