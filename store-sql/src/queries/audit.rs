//! [`AuditStore`](hookline_core::store::AuditStore): the audit log.

use hookline_core::model::{AuditEntry, Cursor, Page, PageRequest};
use hookline_core::store::StoreError;
use hookline_core::{AccountId, Timestamp};
use sqlx::QueryBuilder;

use super::dialect::Db;
use super::page::{affected, fetch_page, push_page};
use super::rows::{self, AUDIT_COLS};
use crate::SqlStore;

/// Appends an entry.
pub async fn record_audit<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    let (kind, actor_id) = entry.actor.parts();
    let mut qb = QueryBuilder::new(format!("INSERT INTO audit_log ({AUDIT_COLS}) "));
    qb.push_values([entry], |mut row, e| {
        row.push_bind(e.id.as_str())
            .push_bind(e.account.as_ref().map(AccountId::as_str))
            .push_bind(kind)
            .push_bind(actor_id)
            .push_bind(e.action.as_str())
            .push_bind(e.target.as_str())
            .push_bind(e.at.as_millis());
    });
    affected(qb, s.write_pool())
        .await
        .map_err(|e| e.into_store("audit entry"))?;
    Ok(())
}

/// An account's entries, or all of them, newest first.
pub async fn list_audit<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    account: Option<&AccountId>,
    page: &PageRequest,
) -> Result<Page<AuditEntry>, StoreError> {
    let mut qb = QueryBuilder::new(format!("SELECT {AUDIT_COLS} FROM audit_log WHERE "));
    match account {
        Some(a) => {
            qb.push("account = ").push_bind(a.as_str().to_owned());
        }
        None => {
            qb.push("TRUE");
        }
    }
    push_page(&mut qb, "at", "id", page);
    Ok(
        fetch_page(qb, s.read_pool(), page, rows::audit_entry, |e| Cursor {
            created_at: e.at,
            id: e.id.as_str().to_owned(),
        })
        .await?,
    )
}

/// Deletes up to `max` entries made before `before`, oldest first.
pub async fn purge_audit<S: SqlStore<Db = Db> + ?Sized>(
    s: &S,
    before: Timestamp,
    max: usize,
) -> Result<u64, StoreError> {
    let mut qb = QueryBuilder::new(
        "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < ",
    );
    qb.push_bind(before.as_millis())
        .push(" ORDER BY at, id LIMIT ")
        .push_bind(i64::try_from(max).unwrap_or(i64::MAX))
        .push(")");
    Ok(affected(qb, s.write_pool()).await?)
}
