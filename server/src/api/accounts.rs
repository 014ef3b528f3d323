//! Accounts, their API keys and their sites.

use axum::extract::State;
use axum::http::StatusCode;
use hookline_core::model::{Account, Role, Site};
use hookline_core::{AccountId, Timestamp};
use serde::{Deserialize, Serialize};

use super::{Json, ListOut, Paging, Path, Query, account_id, check_len, site_id};
use crate::auth::{Caller, new_key};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const MAX_NAME: usize = 256;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateIn {
    id: String,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchIn {
    name: Option<String>,
}

/// Loads an account the caller may see, or 404.
pub(crate) async fn load_account(
    state: &AppState,
    caller: &Caller,
    raw: &str,
) -> ApiResult<Account> {
    let id = account_id(raw)?;
    caller.require_account(&id)?;
    if let Some(a) = state.cache.accounts.get(&id) {
        return Ok(a);
    }
    let a =
        state.store().account(&id).await?.ok_or_else(|| {
            ApiError::not_found("account_not_found", format!("no account `{id}`"))
        })?;
    state.cache.accounts.put(id, a.clone());
    Ok(a)
}

pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateIn>,
) -> ApiResult<(StatusCode, Json<Account>)> {
    caller.require_admin()?;
    let id = account_id(&body.id)?;
    let name = body.name.unwrap_or_else(|| id.to_string());
    check_len("name", &name, MAX_NAME)?;
    let now = Timestamp::now();
    let account = Account {
        id,
        name,
        created_at: now,
        updated_at: now,
    };
    state
        .store()
        .create_account(&account)
        .await
        .map_err(|e| match e {
            hookline_core::store::StoreError::Conflict(_) => {
                ApiError::conflict("account_exists", format!("account `{}` exists", account.id))
            }
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(account)))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(paging): Query<Paging>,
) -> ApiResult<Json<ListOut<Account>>> {
    caller.require_admin()?;
    let page = state.store().list_accounts(&paging.request()?).await?;
    Ok(Json(ListOut::new(page, |a| a)))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
) -> ApiResult<Json<Account>> {
    Ok(Json(load_account(&state, &caller, &account).await?))
}

pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    Json(body): Json<PatchIn>,
) -> ApiResult<Json<Account>> {
    caller.require_admin()?;
    let mut a = load_account(&state, &caller, &account).await?;
    if let Some(name) = body.name {
        check_len("name", &name, MAX_NAME)?;
        a.name = name;
    }
    a.updated_at = Timestamp::now();
    state.store().update_account(&a).await?;
    state.cache.accounts.invalidate(&a.id);
    Ok(Json(a))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let a = load_account(&state, &caller, &account).await?;
    state.store().delete_account(&a.id).await?;
    state.cache.accounts.invalidate(&a.id);
    // Its keys stop working at once in this process.
    state.cache.keys.clear();
    state.cache.subscribers.clear();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KeyOut {
    key: String,
    prefix: String,
    account: AccountId,
    created_at: Timestamp,
}

pub(crate) async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
) -> ApiResult<(StatusCode, Json<KeyOut>)> {
    caller.require_admin()?;
    let a = load_account(&state, &caller, &account).await?;
    let (key, stored) = new_key(Role::Account(a.id.clone()), Timestamp::now());
    state.store().put_api_key(&stored).await?;
    Ok((
        StatusCode::CREATED,
        Json(KeyOut {
            key,
            prefix: stored.prefix,
            account: a.id,
            created_at: stored.created_at,
        }),
    ))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SiteOut {
    id: hookline_core::SiteId,
    account: AccountId,
    name: String,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<Site> for SiteOut {
    fn from(s: Site) -> Self {
        Self {
            id: s.id,
            account: s.account,
            name: s.name,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

pub(crate) async fn create_site(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    Json(body): Json<CreateIn>,
) -> ApiResult<(StatusCode, Json<SiteOut>)> {
    let a = load_account(&state, &caller, &account).await?;
    let id = site_id(&body.id)?;
    let name = body.name.unwrap_or_else(|| id.to_string());
    check_len("name", &name, MAX_NAME)?;
    let now = Timestamp::now();
    let site = Site {
        account: a.id,
        id,
        name,
        created_at: now,
        updated_at: now,
    };
    state
        .store()
        .create_site(&site)
        .await
        .map_err(|e| match e {
            hookline_core::store::StoreError::Conflict(_) => {
                ApiError::conflict("site_exists", format!("site `{}` exists", site.id))
            }
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(site.into())))
}

pub(crate) async fn list_sites(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    Query(paging): Query<Paging>,
) -> ApiResult<Json<ListOut<SiteOut>>> {
    let a = load_account(&state, &caller, &account).await?;
    let page = state.store().list_sites(&a.id, &paging.request()?).await?;
    Ok(Json(ListOut::new(page, SiteOut::from)))
}

async fn load_site(
    state: &AppState,
    caller: &Caller,
    account: &str,
    site: &str,
) -> ApiResult<Site> {
    let a = load_account(state, caller, account).await?;
    let id = site_id(site)?;
    state.store().site(&a.id, &id).await?.ok_or_else(|| {
        ApiError::not_found(
            "site_not_found",
            format!("no site `{id}` in account `{}`", a.id),
        )
    })
}

pub(crate) async fn get_site(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, site)): Path<(String, String)>,
) -> ApiResult<Json<SiteOut>> {
    Ok(Json(
        load_site(&state, &caller, &account, &site).await?.into(),
    ))
}

pub(crate) async fn update_site(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, site)): Path<(String, String)>,
    Json(body): Json<PatchIn>,
) -> ApiResult<Json<SiteOut>> {
    let mut s = load_site(&state, &caller, &account, &site).await?;
    if let Some(name) = body.name {
        check_len("name", &name, MAX_NAME)?;
        s.name = name;
    }
    s.updated_at = Timestamp::now();
    state.store().update_site(&s).await?;
    Ok(Json(s.into()))
}

pub(crate) async fn delete_site(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, site)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let s = load_site(&state, &caller, &account, &site).await?;
    state.store().delete_site(&s.account, &s.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
