//! [`CatalogStore`](hookline_core::store::CatalogStore): accounts, sites, the event-type catalog
//! and API keys.

use hookline_core::model::{Account, ApiKey, Cursor, EventType, Page, PageRequest, Role, Site};
use hookline_core::store::StoreError;
use hookline_core::{AccountId, EventTypeName, KeyId, SiteId, Timestamp};
use sqlx::QueryBuilder;

use super::dialect::{self, Db};
use super::page::{affected, fetch_page, optional, push_page};
use super::rows::{self, ACCOUNT_COLS, API_KEY_COLS, EVENT_TYPE_COLS, SITE_COLS};
use crate::SqlStore;
use crate::error::DbError;

/// `rows_affected() > 0` of `qb` run on the write pool.
async fn changed<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    qb: QueryBuilder<'_, Db>,
) -> Result<bool, DbError> {
    Ok(affected(qb, s.write_pool()).await? > 0)
}

/// An `INSERT`; a unique violation is a conflict on `entity`.
async fn insert<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    qb: QueryBuilder<'_, Db>,
    entity: &'static str,
) -> Result<(), StoreError> {
    changed(s, qb).await.map_err(|e| e.into_store(entity))?;
    Ok(())
}

/// An `UPDATE` of one row; no row is `NotFound(entity)`.
async fn update<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    qb: QueryBuilder<'_, Db>,
    entity: &'static str,
) -> Result<(), StoreError> {
    if changed(s, qb).await? {
        Ok(())
    } else {
        Err(StoreError::NotFound(entity))
    }
}

/// Creates an account.
pub async fn create_account<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    account: &Account,
) -> Result<(), StoreError> {
    let mut qb = QueryBuilder::new("INSERT INTO accounts (id, name, created_at, updated_at) ");
    qb.push_values([account], |mut row, a| {
        row.push_bind(a.id.as_str())
            .push_bind(a.name.as_str())
            .push_bind(a.created_at.as_millis())
            .push_bind(a.updated_at.as_millis());
    });
    insert(s, qb, "account").await
}

/// Replaces an account.
pub async fn update_account<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    account: &Account,
) -> Result<(), StoreError> {
    let mut qb = QueryBuilder::new("UPDATE accounts SET name = ");
    qb.push_bind(account.name.as_str())
        .push(", created_at = ")
        .push_bind(account.created_at.as_millis())
        .push(", updated_at = ")
        .push_bind(account.updated_at.as_millis())
        .push(" WHERE id = ")
        .push_bind(account.id.as_str());
    update(s, qb, "account").await
}

/// One account.
pub async fn account<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    id: &AccountId,
) -> Result<Option<Account>, StoreError> {
    let mut qb = QueryBuilder::new(format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE id = "));
    qb.push_bind(id.as_str());
    optional(qb, s.read_pool(), rows::account).await
}

/// Accounts, newest first.
pub async fn list_accounts<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    page: &PageRequest,
) -> Result<Page<Account>, StoreError> {
    let mut qb = QueryBuilder::new(format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE TRUE"));
    push_page(&mut qb, "created_at", "id", page);
    Ok(
        fetch_page(qb, s.read_pool(), page, rows::account, |a| Cursor {
            created_at: a.created_at,
            id: a.id.as_str().to_owned(),
        })
        .await?,
    )
}

/// Deletes an account and everything it owns, children first: foreign keys would cascade, but
/// a pool given by an embedder may have them off.
pub async fn delete_account<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    id: &AccountId,
) -> Result<bool, StoreError> {
    let mut tx = s
        .write_pool()
        .begin_with(dialect::BEGIN_WRITE)
        .await
        .map_err(DbError::from)?;
    for delete in [
        "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE account = ",
        "DELETE FROM deliveries WHERE (account = ",
        "DELETE FROM events WHERE (account = ",
        "DELETE FROM endpoints WHERE (account = ",
        "DELETE FROM sites WHERE (account = ",
        "DELETE FROM api_keys WHERE (account = ",
    ] {
        let mut qb = QueryBuilder::<Db>::new(delete);
        qb.push_bind(id.as_str()).push(")");
        qb.build().execute(&mut *tx).await.map_err(DbError::from)?;
    }
    let mut qb = QueryBuilder::<Db>::new("DELETE FROM accounts WHERE id = ");
    qb.push_bind(id.as_str());
    let done = qb.build().execute(&mut *tx).await.map_err(DbError::from)?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(done.rows_affected() > 0)
}

/// Creates a site.
pub async fn create_site<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    site: &Site,
) -> Result<(), StoreError> {
    let mut qb =
        QueryBuilder::new("INSERT INTO sites (account, id, name, created_at, updated_at) ");
    qb.push_values([site], |mut row, site| {
        row.push_bind(site.account.as_str())
            .push_bind(site.id.as_str())
            .push_bind(site.name.as_str())
            .push_bind(site.created_at.as_millis())
            .push_bind(site.updated_at.as_millis());
    });
    insert(s, qb, "site").await
}

/// Replaces a site.
pub async fn update_site<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    site: &Site,
) -> Result<(), StoreError> {
    let mut qb = QueryBuilder::new("UPDATE sites SET name = ");
    qb.push_bind(site.name.as_str())
        .push(", created_at = ")
        .push_bind(site.created_at.as_millis())
        .push(", updated_at = ")
        .push_bind(site.updated_at.as_millis())
        .push(" WHERE account = ")
        .push_bind(site.account.as_str())
        .push(" AND id = ")
        .push_bind(site.id.as_str());
    update(s, qb, "site").await
}

/// One site of an account.
pub async fn site<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    account: &AccountId,
    id: &SiteId,
) -> Result<Option<Site>, StoreError> {
    let mut qb = QueryBuilder::new(format!("SELECT {SITE_COLS} FROM sites WHERE account = "));
    qb.push_bind(account.as_str())
        .push(" AND id = ")
        .push_bind(id.as_str());
    optional(qb, s.read_pool(), rows::site).await
}

/// An account's sites, newest first.
pub async fn list_sites<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    account: &AccountId,
    page: &PageRequest,
) -> Result<Page<Site>, StoreError> {
    let mut qb = QueryBuilder::new(format!("SELECT {SITE_COLS} FROM sites WHERE account = "));
    qb.push_bind(account.as_str());
    push_page(&mut qb, "created_at", "id", page);
    Ok(
        fetch_page(qb, s.read_pool(), page, rows::site, |site| Cursor {
            created_at: site.created_at,
            id: site.id.as_str().to_owned(),
        })
        .await?,
    )
}

/// Deletes a site.
pub async fn delete_site<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    account: &AccountId,
    id: &SiteId,
) -> Result<bool, StoreError> {
    let mut qb = QueryBuilder::new("DELETE FROM sites WHERE account = ");
    qb.push_bind(account.as_str())
        .push(" AND id = ")
        .push_bind(id.as_str());
    Ok(changed(s, qb).await?)
}

/// Creates an event type.
pub async fn create_event_type<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    et: &EventType,
) -> Result<(), StoreError> {
    let schema = et
        .schema
        .as_ref()
        .map(|v| rows::to_json(v, "json_schema"))
        .transpose()?;
    let mut qb = QueryBuilder::new(
        "INSERT INTO event_types (name, description, json_schema, archived, created_at, \
         updated_at) ",
    );
    qb.push_values([(et, schema)], |mut row, (et, schema)| {
        row.push_bind(et.name.as_str())
            .push_bind(&et.description)
            .push_bind(schema)
            .push_bind(et.archived)
            .push_bind(et.created_at.as_millis())
            .push_bind(et.updated_at.as_millis());
    });
    insert(s, qb, "event type").await
}

/// Replaces an event type.
pub async fn update_event_type<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    et: &EventType,
) -> Result<(), StoreError> {
    let schema = et
        .schema
        .as_ref()
        .map(|v| rows::to_json(v, "json_schema"))
        .transpose()?;
    let mut qb = QueryBuilder::new("UPDATE event_types SET description = ");
    qb.push_bind(&et.description)
        .push(", json_schema = ")
        .push_bind(schema)
        .push(", archived = ")
        .push_bind(et.archived)
        .push(", created_at = ")
        .push_bind(et.created_at.as_millis())
        .push(", updated_at = ")
        .push_bind(et.updated_at.as_millis())
        .push(" WHERE name = ")
        .push_bind(et.name.as_str());
    update(s, qb, "event type").await
}

/// One event type.
pub async fn event_type<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    name: &EventTypeName,
) -> Result<Option<EventType>, StoreError> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {EVENT_TYPE_COLS} FROM event_types WHERE name = "
    ));
    qb.push_bind(name.as_str());
    optional(qb, s.read_pool(), rows::event_type).await
}

/// The catalog, newest first.
pub async fn list_event_types<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    page: &PageRequest,
) -> Result<Page<EventType>, StoreError> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {EVENT_TYPE_COLS} FROM event_types WHERE TRUE"
    ));
    push_page(&mut qb, "created_at", "name", page);
    Ok(
        fetch_page(qb, s.read_pool(), page, rows::event_type, |et| Cursor {
            created_at: et.created_at,
            id: et.name.as_str().to_owned(),
        })
        .await?,
    )
}

/// Deletes an event type.
pub async fn delete_event_type<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    name: &EventTypeName,
) -> Result<bool, StoreError> {
    let mut qb = QueryBuilder::new("DELETE FROM event_types WHERE name = ");
    qb.push_bind(name.as_str());
    Ok(changed(s, qb).await?)
}

/// Stores an API key (a key stored before stays as it is).
pub async fn put_api_key<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    key: &ApiKey,
) -> Result<(), StoreError> {
    let mut qb = QueryBuilder::new(
        "INSERT INTO api_keys (id, hash, prefix, account, name, read_only, bootstrap, \
         created_at, expires_at, last_used_at) ",
    );
    qb.push_values([key], |mut row, key| {
        row.push_bind(key.id.as_str())
            .push_bind(key.hash.as_str())
            .push_bind(key.prefix.as_str())
            .push_bind(match &key.role {
                Role::Admin => None,
                Role::Account(a) => Some(a.as_str()),
            })
            .push_bind(key.name.as_str())
            .push_bind(key.read_only)
            .push_bind(key.bootstrap)
            .push_bind(key.created_at.as_millis())
            .push_bind(key.expires_at.map(Timestamp::as_millis))
            .push_bind(key.last_used_at.map(Timestamp::as_millis));
    });
    qb.push(" ON CONFLICT (hash) DO NOTHING");
    changed(s, qb).await?;
    Ok(())
}

/// `account = <a>`, or `account IS NULL` for the admin scope.
fn push_scope(qb: &mut QueryBuilder<'_, Db>, account: Option<&AccountId>) {
    match account {
        Some(a) => {
            qb.push("account = ").push_bind(a.as_str().to_owned());
        }
        None => {
            qb.push("account IS NULL");
        }
    }
}

/// The keys of one scope, newest first.
pub async fn list_api_keys<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    account: Option<&AccountId>,
    page: &PageRequest,
) -> Result<Page<ApiKey>, StoreError> {
    let mut qb = QueryBuilder::new(format!("SELECT {API_KEY_COLS} FROM api_keys WHERE "));
    push_scope(&mut qb, account);
    push_page(&mut qb, "created_at", "id", page);
    Ok(
        fetch_page(qb, s.read_pool(), page, rows::api_key, |k| Cursor {
            created_at: k.created_at,
            id: k.id.as_str().to_owned(),
        })
        .await?,
    )
}

/// Deletes the key `id` of one scope; the deleted key.
pub async fn delete_api_key<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    account: Option<&AccountId>,
    id: &KeyId,
) -> Result<Option<ApiKey>, StoreError> {
    let mut qb = QueryBuilder::new("DELETE FROM api_keys WHERE id = ");
    qb.push_bind(id.as_str().to_owned()).push(" AND ");
    push_scope(&mut qb, account);
    qb.push(format_args!(" RETURNING {API_KEY_COLS}"));
    let row = qb
        .build()
        .fetch_optional(s.write_pool())
        .await
        .map_err(DbError::from)?;
    Ok(row.as_ref().map(rows::api_key).transpose()?)
}

/// Sets a key's last use.
pub async fn touch_api_key<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    hash: &str,
    at: Timestamp,
) -> Result<(), StoreError> {
    let mut qb = QueryBuilder::new("UPDATE api_keys SET last_used_at = ");
    qb.push_bind(at.as_millis())
        .push(" WHERE hash = ")
        .push_bind(hash.to_owned());
    changed(s, qb).await?;
    Ok(())
}

/// The API key with this hash.
pub async fn api_key<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    hash: &str,
) -> Result<Option<ApiKey>, StoreError> {
    let mut qb = QueryBuilder::new(format!("SELECT {API_KEY_COLS} FROM api_keys WHERE hash = "));
    qb.push_bind(hash);
    optional(qb, s.read_pool(), rows::api_key).await
}

/// Whether an admin key exists.
pub async fn has_admin_key<S: SqlStore<Db = Db> + ?Sized>(s: &S) -> Result<bool, StoreError> {
    let found: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM api_keys WHERE account IS NULL)")
            .fetch_one(s.read_pool())
            .await
            .map_err(DbError::from)?;
    Ok(found)
}

/// A deployment setting.
pub async fn setting<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    name: &str,
) -> Result<Option<String>, StoreError> {
    let mut qb = QueryBuilder::<Db>::new("SELECT value FROM settings WHERE name = ");
    qb.push_bind(name);
    let value: Option<String> = qb
        .build_query_scalar()
        .fetch_optional(s.read_pool())
        .await
        .map_err(DbError::from)?;
    Ok(value)
}

/// Writes a deployment setting.
pub async fn put_setting<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    name: &str,
    value: &str,
) -> Result<(), StoreError> {
    let mut qb = QueryBuilder::new("INSERT INTO settings (name, value) ");
    qb.push_values([(name, value)], |mut row, (n, v)| {
        row.push_bind(n).push_bind(v);
    });
    qb.push(" ON CONFLICT (name) DO UPDATE SET value = excluded.value");
    changed(s, qb).await?;
    Ok(())
}
