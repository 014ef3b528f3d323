//! Accounts, their API keys and their sites.

use axum::extract::State;
use axum::http::StatusCode;
use hookline_core::model::{Account, Site};
use hookline_core::service::{AccountPatch, NewAccount, NewSite, SitePatch};
use hookline_core::{AccountId, SiteId, Timestamp};
use serde::Serialize;

use super::{Json, List, ListOut, MergePatch, PageParams, Path};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::openapi::{ACCOUNT, ADMIN, AUTH, GONE, JSON_BODY, PAGING, TEXT, WRITE};
use crate::problems;
use crate::state::AppState;

problems!(
    CreateProblems = [
        WRITE,
        AUTH,
        ADMIN,
        JSON_BODY,
        TEXT,
        &[(400, &["invalid_id"]), (409, &["account_exists"])]
    ]
);
problems!(ListProblems = [AUTH, ADMIN, PAGING]);
problems!(GetProblems = [AUTH, ACCOUNT]);
problems!(UpdateProblems = [WRITE, AUTH, ACCOUNT, JSON_BODY, TEXT, GONE]);
problems!(DeleteProblems = [WRITE, AUTH, ACCOUNT, GONE]);
problems!(
    CreateSiteProblems = [
        WRITE,
        AUTH,
        ACCOUNT,
        JSON_BODY,
        TEXT,
        &[(409, &["site_exists"])]
    ]
);
problems!(ListSitesProblems = [AUTH, ACCOUNT, PAGING]);
problems!(SiteProblems = [AUTH, ACCOUNT, &[(404, &["site_not_found"])]]);
problems!(
    UpdateSiteProblems = [
        WRITE,
        AUTH,
        ACCOUNT,
        JSON_BODY,
        TEXT,
        GONE,
        &[(404, &["site_not_found"])]
    ]
);
problems!(DeleteSiteProblems = [WRITE, AUTH, ACCOUNT, GONE, &[(404, &["site_not_found"])]]);

/// Creates an account.
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", operation_id = "createAccount",
    request_body(content = NewAccount, example = json!({"id": "pharma-017", "name": "Pharmacy 017"})),
    responses((status = 201, description = "The account.", body = Account,
        example = json!({"id": "pharma-017", "name": "Pharmacy 017", "createdAt": "2026-11-25T15:40:55.123Z", "updatedAt": "2026-11-25T15:40:55.123Z"})),
        CreateProblems),
    security(("adminKey" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Caller(by): Caller,
    Json(body): Json<NewAccount>,
) -> ApiResult<(StatusCode, Json<Account>)> {
    let account = state.hookline.create_account(&by, body).await?;
    Ok((StatusCode::CREATED, Json(account)))
}

/// Lists accounts, newest first.
#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", operation_id = "listAccounts",
    params(PageParams),
    responses((status = 200, description = "A page of accounts.", body = ListOut<Account>), ListProblems),
    security(("adminKey" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Caller(by): Caller,
    List(paging): List,
) -> ApiResult<Json<ListOut<Account>>> {
    let page = state.hookline.list_accounts(&by, &paging).await?;
    Ok(Json(ListOut::new(page, |a| a)))
}

/// One account.
#[utoipa::path(get, path = "/v1/accounts/{account}", tag = "accounts", operation_id = "getAccount",
    params(("account" = AccountId, Path, description = "The account id.")),
    responses((status = 200, description = "The account.", body = Account), GetProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
) -> ApiResult<Json<Account>> {
    Ok(Json(state.hookline.account(&by, &account).await?))
}

/// Changes an account's display name (`null`: back to the account's id). A JSON Merge Patch.
#[utoipa::path(patch, path = "/v1/accounts/{account}", tag = "accounts", operation_id = "updateAccount",
    params(("account" = AccountId, Path, description = "The account id.")),
    request_body(description = "A JSON Merge Patch (RFC 7396), sent as `application/merge-patch+json` or `application/json`: absent fields stay, `null` resets a field to its default.",
        content((AccountPatch = "application/merge-patch+json", example = json!({"name": "Pharmacy 017 (Main St)"})), (AccountPatch = "application/json"))),
    responses((status = 200, description = "The changed account.", body = Account), UpdateProblems),
    security(("adminKey" = [])))]
pub(crate) async fn update(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
    MergePatch(body): MergePatch<AccountPatch>,
) -> ApiResult<Json<Account>> {
    Ok(Json(
        state.hookline.update_account(&by, &account, body).await?,
    ))
}

/// Deletes an account with everything it owns, its keys included.
#[utoipa::path(delete, path = "/v1/accounts/{account}", tag = "accounts", operation_id = "deleteAccount",
    params(("account" = AccountId, Path, description = "The account id.")),
    responses((status = 204, description = "Deleted."), DeleteProblems),
    security(("adminKey" = [])))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
) -> ApiResult<StatusCode> {
    state.hookline.delete_account(&by, &account).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A location inside an account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Site)]
pub(crate) struct SiteOut {
    /// The id, unique within the account.
    id: SiteId,
    /// The account it belongs to.
    account: AccountId,
    /// Display name.
    name: String,
    /// When it was created.
    created_at: Timestamp,
    /// When it was last changed.
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

/// Creates a site in the account.
#[utoipa::path(post, path = "/v1/accounts/{account}/sites", tag = "accounts", operation_id = "createSite",
    params(("account" = AccountId, Path, description = "The account id.")),
    request_body(content = NewSite, example = json!({"id": "store-1", "name": "Main St"})),
    responses((status = 201, description = "The site.", body = SiteOut), CreateSiteProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn create_site(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
    Json(body): Json<NewSite>,
) -> ApiResult<(StatusCode, Json<SiteOut>)> {
    let site = state.hookline.create_site(&by, &account, body).await?;
    Ok((StatusCode::CREATED, Json(site.into())))
}

/// Lists the account's sites, newest first.
#[utoipa::path(get, path = "/v1/accounts/{account}/sites", tag = "accounts", operation_id = "listSites",
    params(("account" = AccountId, Path, description = "The account id."), PageParams),
    responses((status = 200, description = "A page of sites.", body = ListOut<SiteOut>), ListSitesProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn list_sites(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
    List(paging): List,
) -> ApiResult<Json<ListOut<SiteOut>>> {
    let page = state.hookline.list_sites(&by, &account, &paging).await?;
    Ok(Json(ListOut::new(page, SiteOut::from)))
}

/// One site.
#[utoipa::path(get, path = "/v1/accounts/{account}/sites/{site}", tag = "accounts", operation_id = "getSite",
    params(("account" = AccountId, Path, description = "The account id."), ("site" = SiteId, Path, description = "The site id, unique within the account.")),
    responses((status = 200, description = "The site.", body = SiteOut), SiteProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn get_site(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, site)): Path<(String, String)>,
) -> ApiResult<Json<SiteOut>> {
    Ok(Json(
        state.hookline.site(&by, &account, &site).await?.into(),
    ))
}

/// Changes a site's display name (`null`: back to the site's id). A JSON Merge Patch.
#[utoipa::path(patch, path = "/v1/accounts/{account}/sites/{site}", tag = "accounts", operation_id = "updateSite",
    params(("account" = AccountId, Path, description = "The account id."), ("site" = SiteId, Path, description = "The site id, unique within the account.")),
    request_body(description = "A JSON Merge Patch (RFC 7396), sent as `application/merge-patch+json` or `application/json`: absent fields stay, `null` resets a field to its default.",
        content((SitePatch = "application/merge-patch+json", example = json!({"name": "Main St (new)"})), (SitePatch = "application/json"))),
    responses((status = 200, description = "The changed site.", body = SiteOut), UpdateSiteProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn update_site(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, site)): Path<(String, String)>,
    MergePatch(body): MergePatch<SitePatch>,
) -> ApiResult<Json<SiteOut>> {
    let site = state
        .hookline
        .update_site(&by, &account, &site, body)
        .await?;
    Ok(Json(site.into()))
}

/// Deletes a site.
#[utoipa::path(delete, path = "/v1/accounts/{account}/sites/{site}", tag = "accounts", operation_id = "deleteSite",
    params(("account" = AccountId, Path, description = "The account id."), ("site" = SiteId, Path, description = "The site id, unique within the account.")),
    responses((status = 204, description = "Deleted."), DeleteSiteProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn delete_site(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, site)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.hookline.delete_site(&by, &account, &site).await?;
    Ok(StatusCode::NO_CONTENT)
}
