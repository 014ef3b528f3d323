//! Pagination (newest first by `(<time>, <id>)` with a row-value cursor) and running a built
//! query for one row or for its effect.

use hookline_core::model::{Cursor, Page, PageRequest};
use hookline_core::store::StoreError;
use sqlx::QueryBuilder;

use super::dialect::{Db, Row};
use crate::error::{DbError, DbResult};

/// Appends `AND (<time>, <id>) < (cursor)` and the newest-first order with a limit of one row
/// more than the page (to know whether a next page exists). With an index on
/// `(…, <time>, <id>)` this is a backward index scan that stops after `limit + 1` rows.
pub fn push_page(qb: &mut QueryBuilder<'_, Db>, time_col: &str, id_col: &str, page: &PageRequest) {
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
    .push_bind(crate::fetch_limit(page.limit));
}

/// Runs `qb` (which ends with [`push_page`]) on `pool` and makes a page of `page.limit` rows;
/// `key` is the cursor of a row.
pub async fn fetch_page<T>(
    mut qb: QueryBuilder<'_, Db>,
    pool: &sqlx::Pool<Db>,
    page: &PageRequest,
    decode: fn(&Row) -> DbResult<T>,
    key: fn(&T) -> Cursor,
) -> DbResult<Page<T>> {
    let found = qb.build().fetch_all(pool).await?;
    let items = found.iter().map(decode).collect::<Result<_, _>>()?;
    Ok(Page::from_rows(items, page.limit, key))
}

/// Runs `qb` on `pool` for at most one row, decoded with `decode`.
pub(crate) async fn optional<T>(
    mut qb: QueryBuilder<'_, Db>,
    pool: &sqlx::Pool<Db>,
    decode: fn(&Row) -> DbResult<T>,
) -> Result<Option<T>, StoreError> {
    let row = qb
        .build()
        .fetch_optional(pool)
        .await
        .map_err(DbError::from)?;
    Ok(row.as_ref().map(decode).transpose()?)
}

/// Runs `qb` on `pool`; how many rows it changed.
pub(crate) async fn affected(mut qb: QueryBuilder<'_, Db>, pool: &sqlx::Pool<Db>) -> DbResult<u64> {
    Ok(qb.build().execute(pool).await?.rows_affected())
}
