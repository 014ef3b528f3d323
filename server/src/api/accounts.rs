//! Accounts, their API keys and their sites.

use axum::extract::State;
use axum::http::StatusCode;
use hookline_core::model::{Account, Site};
use hookline_core::service::{AccountPatch, IssuedKey, NewAccount, NewSite, Paging, SitePatch};
use hookline_core::{AccountId, SiteId, Timestamp};
use serde::Serialize;

use super::{Json, ListOut, Path, Query};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::state::AppState;

pub(crate) async fn create(
    State(state): State<AppState>,
    Caller(by): Caller,
    Json(body): Json<NewAccount>,
) -> ApiResult<(StatusCode, Json<Account>)> {
    let account = state.hookline.create_account(&by, body).await?;
    Ok((StatusCode::CREATED, Json(account)))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Caller(by): Caller,
    Query(paging): Query<Paging>,
) -> ApiResult<Json<ListOut<Account>>> {
    let page = state.hookline.list_accounts(&by, &paging).await?;
    Ok(Json(ListOut::new(page, |a| a)))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
) -> ApiResult<Json<Account>> {
    Ok(Json(state.hookline.account(&by, &account).await?))
}

pub(crate) async fn update(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
    Json(body): Json<AccountPatch>,
) -> ApiResult<Json<Account>> {
    Ok(Json(
        state.hookline.update_account(&by, &account, body).await?,
    ))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
) -> ApiResult<StatusCode> {
    state.hookline.delete_account(&by, &account).await?;
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

impl From<IssuedKey> for KeyOut {
    fn from(k: IssuedKey) -> Self {
        Self {
            key: k.key,
            prefix: k.prefix,
            account: k.account,
            created_at: k.created_at,
        }
    }
}

pub(crate) async fn create_key(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
) -> ApiResult<(StatusCode, Json<KeyOut>)> {
    let key = state.hookline.create_key(&by, &account).await?;
    Ok((StatusCode::CREATED, Json(key.into())))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SiteOut {
    id: SiteId,
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
    Caller(by): Caller,
    Path(account): Path<String>,
    Json(body): Json<NewSite>,
) -> ApiResult<(StatusCode, Json<SiteOut>)> {
    let site = state.hookline.create_site(&by, &account, body).await?;
    Ok((StatusCode::CREATED, Json(site.into())))
}

pub(crate) async fn list_sites(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
    Query(paging): Query<Paging>,
) -> ApiResult<Json<ListOut<SiteOut>>> {
    let page = state.hookline.list_sites(&by, &account, &paging).await?;
    Ok(Json(ListOut::new(page, SiteOut::from)))
}

pub(crate) async fn get_site(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, site)): Path<(String, String)>,
) -> ApiResult<Json<SiteOut>> {
    Ok(Json(
        state.hookline.site(&by, &account, &site).await?.into(),
    ))
}

pub(crate) async fn update_site(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, site)): Path<(String, String)>,
    Json(body): Json<SitePatch>,
) -> ApiResult<Json<SiteOut>> {
    let site = state
        .hookline
        .update_site(&by, &account, &site, body)
        .await?;
    Ok(Json(site.into()))
}

pub(crate) async fn delete_site(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, site)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.hookline.delete_site(&by, &account, &site).await?;
    Ok(StatusCode::NO_CONTENT)
}
