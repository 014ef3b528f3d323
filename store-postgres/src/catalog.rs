//! [`CatalogStore`]: accounts, sites, the event-type catalog and API keys.

use hookline_core::model::{Account, ApiKey, Cursor, EventType, Page, PageRequest, Role, Site};
use hookline_core::store::{CatalogStore, StoreError};
use hookline_core::{AccountId, EventTypeName, SiteId};
use sqlx::{Postgres, QueryBuilder};

use crate::error::DbError;
use crate::rows::{self, ACCOUNT_COLS, API_KEY_COLS, EVENT_TYPE_COLS, SITE_COLS};
use crate::{PgStore, fetch_limit};

/// Appends `AND (<time>, <id>) < (cursor)` and the newest-first order with a limit. With an
/// index on `(…, <time>, <id>)` this is a backward index scan that stops after `limit + 1` rows.
pub(crate) fn push_page(
    qb: &mut QueryBuilder<'_, Postgres>,
    time_col: &str,
    id_col: &str,
    page: &PageRequest,
) {
    if let Some(c) = &page.after {
        qb.push(format_args!(" AND ({time_col}, {id_col}) < ("))
            .push_bind(c.created_at.as_millis())
            .push(", ")
            .push_bind(c.id.clone())
            .push(")");
    }
    qb.push(format_args!(
        " ORDER BY {time_col} DESC, {id_col} DESC LIMIT "
    ))
    .push_bind(fetch_limit(page.limit));
}

fn account_cursor(a: &Account) -> Cursor {
    Cursor {
        created_at: a.created_at,
        id: a.id.as_str().to_owned(),
    }
}

#[async_trait::async_trait]
impl CatalogStore for PgStore {
    async fn create_account(&self, account: &Account) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO accounts (id, name, created_at, updated_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(account.id.as_str())
        .bind(&account.name)
        .bind(account.created_at.as_millis())
        .bind(account.updated_at.as_millis())
        .execute(&self.pool)
        .await
        .map_err(|e| DbError::from(e).into_store("account"))?;
        Ok(())
    }

    async fn update_account(&self, account: &Account) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE accounts SET name = $1, created_at = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(&account.name)
        .bind(account.created_at.as_millis())
        .bind(account.updated_at.as_millis())
        .bind(account.id.as_str())
        .execute(&self.pool)
        .await
        .map_err(DbError::from)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("account"));
        }
        Ok(())
    }

    async fn account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLS} FROM accounts WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(DbError::from)?;
        Ok(row.as_ref().map(rows::account).transpose()?)
    }

    async fn list_accounts(&self, page: &PageRequest) -> Result<Page<Account>, StoreError> {
        let mut qb = QueryBuilder::new(format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE TRUE"));
        push_page(&mut qb, "created_at", "id", page);
        let found = qb
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(DbError::from)?;
        let items = found.iter().map(rows::account).collect::<Result<_, _>>()?;
        Ok(Page::from_rows(items, page.limit, account_cursor))
    }

    async fn delete_account(&self, id: &AccountId) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(DbError::from)?;
        for sql in [
            "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE account = $1)",
            "DELETE FROM deliveries WHERE account = $1",
            "DELETE FROM events WHERE account = $1",
            "DELETE FROM endpoints WHERE account = $1",
            "DELETE FROM sites WHERE account = $1",
            "DELETE FROM api_keys WHERE account = $1",
        ] {
            sqlx::query(sql)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(DbError::from)?;
        }
        let done = sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_site(&self, site: &Site) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sites (account, id, name, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(site.account.as_str())
        .bind(site.id.as_str())
        .bind(&site.name)
        .bind(site.created_at.as_millis())
        .bind(site.updated_at.as_millis())
        .execute(&self.pool)
        .await
        .map_err(|e| DbError::from(e).into_store("site"))?;
        Ok(())
    }

    async fn update_site(&self, site: &Site) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE sites SET name = $1, created_at = $2, updated_at = $3 \
             WHERE account = $4 AND id = $5",
        )
        .bind(&site.name)
        .bind(site.created_at.as_millis())
        .bind(site.updated_at.as_millis())
        .bind(site.account.as_str())
        .bind(site.id.as_str())
        .execute(&self.pool)
        .await
        .map_err(DbError::from)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("site"));
        }
        Ok(())
    }

    async fn site(&self, account: &AccountId, id: &SiteId) -> Result<Option<Site>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SITE_COLS} FROM sites WHERE account = $1 AND id = $2"
        ))
        .bind(account.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(DbError::from)?;
        Ok(row.as_ref().map(rows::site).transpose()?)
    }

    async fn list_sites(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Site>, StoreError> {
        let mut qb = QueryBuilder::new(format!("SELECT {SITE_COLS} FROM sites WHERE account = "));
        qb.push_bind(account.as_str().to_owned());
        push_page(&mut qb, "created_at", "id", page);
        let found = qb
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(DbError::from)?;
        let items = found.iter().map(rows::site).collect::<Result<_, _>>()?;
        Ok(Page::from_rows(items, page.limit, |s: &Site| Cursor {
            created_at: s.created_at,
            id: s.id.as_str().to_owned(),
        }))
    }

    async fn delete_site(&self, account: &AccountId, id: &SiteId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sites WHERE account = $1 AND id = $2")
            .bind(account.as_str())
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(DbError::from)?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_event_type(&self, et: &EventType) -> Result<(), StoreError> {
        let schema = et
            .schema
            .as_ref()
            .map(|s| rows::to_json(s, "json_schema"))
            .transpose()?;
        sqlx::query(
            "INSERT INTO event_types \
             (name, description, json_schema, archived, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(et.name.as_str())
        .bind(&et.description)
        .bind(schema)
        .bind(et.archived)
        .bind(et.created_at.as_millis())
        .bind(et.updated_at.as_millis())
        .execute(&self.pool)
        .await
        .map_err(|e| DbError::from(e).into_store("event type"))?;
        Ok(())
    }

    async fn update_event_type(&self, et: &EventType) -> Result<(), StoreError> {
        let schema = et
            .schema
            .as_ref()
            .map(|s| rows::to_json(s, "json_schema"))
            .transpose()?;
        let done = sqlx::query(
            "UPDATE event_types SET description = $1, json_schema = $2, archived = $3, \
             created_at = $4, updated_at = $5 WHERE name = $6",
        )
        .bind(&et.description)
        .bind(schema)
        .bind(et.archived)
        .bind(et.created_at.as_millis())
        .bind(et.updated_at.as_millis())
        .bind(et.name.as_str())
        .execute(&self.pool)
        .await
        .map_err(DbError::from)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("event type"));
        }
        Ok(())
    }

    async fn event_type(&self, name: &EventTypeName) -> Result<Option<EventType>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {EVENT_TYPE_COLS} FROM event_types WHERE name = $1"
        ))
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(DbError::from)?;
        Ok(row.as_ref().map(rows::event_type).transpose()?)
    }

    async fn list_event_types(&self, page: &PageRequest) -> Result<Page<EventType>, StoreError> {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {EVENT_TYPE_COLS} FROM event_types WHERE TRUE"
        ));
        push_page(&mut qb, "created_at", "name", page);
        let found = qb
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(DbError::from)?;
        let items = found
            .iter()
            .map(rows::event_type)
            .collect::<Result<_, _>>()?;
        Ok(Page::from_rows(items, page.limit, |e: &EventType| Cursor {
            created_at: e.created_at,
            id: e.name.as_str().to_owned(),
        }))
    }

    async fn delete_event_type(&self, name: &EventTypeName) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM event_types WHERE name = $1")
            .bind(name.as_str())
            .execute(&self.pool)
            .await
            .map_err(DbError::from)?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let account = match &key.role {
            Role::Admin => None,
            Role::Account(a) => Some(a.as_str()),
        };
        sqlx::query(
            "INSERT INTO api_keys (hash, prefix, account, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (hash) DO NOTHING",
        )
        .bind(&key.hash)
        .bind(&key.prefix)
        .bind(account)
        .bind(key.created_at.as_millis())
        .execute(&self.pool)
        .await
        .map_err(DbError::from)?;
        Ok(())
    }

    async fn api_key(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {API_KEY_COLS} FROM api_keys WHERE hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(DbError::from)?;
        Ok(row.as_ref().map(rows::api_key).transpose()?)
    }

    async fn has_admin_key(&self) -> Result<bool, StoreError> {
        let found: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM api_keys WHERE account IS NULL)")
                .fetch_one(&self.pool)
                .await
                .map_err(DbError::from)?;
        Ok(found)
    }
}
