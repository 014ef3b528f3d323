//! API keys (of the admin and of each account) and the audit log.

use axum::extract::State;
use axum::http::StatusCode;
use hookline_core::model::{ApiKey, AuditEntry, Role};
use hookline_core::service::{IssuedKey, NewKey};
use hookline_core::{AccountId, KeyId, Timestamp};
use serde::Serialize;

use super::{Body, Json, List, ListOut, PageParams, Path};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::openapi::{ACCOUNT, ADMIN, AUTH, JSON_BODY, PAGING, TEXT, WRITE};
use crate::problems;
use crate::state::AppState;

problems!(
    CreateAdminKeyProblems = [
        AUTH,
        ADMIN,
        WRITE,
        JSON_BODY,
        TEXT,
        &[(422, &["invalid_expiry"])]
    ]
);
problems!(ListAdminKeysProblems = [AUTH, ADMIN, PAGING]);
problems!(
    RevokeAdminKeyProblems = [
        AUTH,
        ADMIN,
        WRITE,
        &[(400, &["invalid_id"]), (404, &["key_not_found"])]
    ]
);
problems!(
    CreateKeyProblems = [
        AUTH,
        ACCOUNT,
        WRITE,
        JSON_BODY,
        TEXT,
        &[(422, &["invalid_expiry"])]
    ]
);
problems!(ListKeysProblems = [AUTH, ACCOUNT, PAGING]);
problems!(RevokeKeyProblems = [AUTH, ACCOUNT, WRITE, &[(404, &["key_not_found"])]]);
problems!(AuditProblems = [AUTH, ACCOUNT, PAGING]);
problems!(AllAuditProblems = [AUTH, ADMIN, PAGING]);

/// Whom a key speaks for.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) enum KeyScope {
    /// The admin: everything.
    Admin,
    /// One account.
    Account,
}

/// An API key as listed: never the key itself, nor its hash.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ApiKey)]
pub(crate) struct KeyView {
    /// Its id (`key_…`), for revoking it.
    id: KeyId,
    /// A name for people (may be empty).
    name: String,
    /// The key's first characters, to recognise it.
    prefix: String,
    /// `admin` or `account`.
    scope: KeyScope,
    /// The account it speaks for (account keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<AccountId>,
    /// A read-only key changes nothing (`read_only_key`).
    read_only: bool,
    /// The key the server was started with (`HOOKLINE_ADMIN_KEY`): replaced when the server
    /// starts with another one.
    bootstrap: bool,
    /// When it was issued.
    created_at: Timestamp,
    /// When it stops working; absent: never.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<Timestamp>,
    /// When it was last accepted (to about a minute); absent: never.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_used_at: Option<Timestamp>,
}

impl From<ApiKey> for KeyView {
    fn from(k: ApiKey) -> Self {
        let (scope, account) = match k.role {
            Role::Admin => (KeyScope::Admin, None),
            Role::Account(a) => (KeyScope::Account, Some(a)),
        };
        Self {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            scope,
            account,
            read_only: k.read_only,
            bootstrap: k.bootstrap,
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
        }
    }
}

/// A newly issued API key: the key itself is shown only in this answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KeyOut {
    /// The key (`hk_…`): shown only here, keep it now.
    key: String,
    /// What is kept of it.
    #[serde(flatten)]
    details: KeyView,
}

impl From<IssuedKey> for KeyOut {
    fn from(k: IssuedKey) -> Self {
        Self {
            key: k.key,
            details: k.details.into(),
        }
    }
}

/// The optional body of the key-creating routes: empty (or `null`) is a key with no name, full
/// access and no expiry.
fn new_key(body: &[u8]) -> Result<NewKey, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(NewKey::new());
    }
    Ok(serde_json::from_slice::<Option<NewKey>>(body)
        .map_err(ApiError::from_json)?
        .unwrap_or_default())
}

/// Issues a new admin key; the key is shown only in this answer.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", operation_id = "createAdminKey",
    request_body(content = Option<NewKey>, content_type = "application/json", description = "Optional.", example = json!({"name": "ops laptop", "expiresAt": "2027-01-01T00:00:00Z"})),
    responses((status = 201, description = "The new key.", body = KeyOut), CreateAdminKeyProblems),
    security(("adminKey" = [])))]
pub(crate) async fn create_admin_key(
    State(state): State<AppState>,
    Caller(by): Caller,
    Body(body): Body,
) -> ApiResult<(StatusCode, Json<KeyOut>)> {
    let input = new_key(&body)?;
    let key = state.hookline.create_key(&by, None, input).await?;
    Ok((StatusCode::CREATED, Json(key.into())))
}

/// Lists the admin keys, newest first.
#[utoipa::path(get, path = "/v1/keys", tag = "keys", operation_id = "listAdminKeys",
    params(PageParams),
    responses((status = 200, description = "A page of admin keys.", body = ListOut<KeyView>), ListAdminKeysProblems),
    security(("adminKey" = [])))]
pub(crate) async fn list_admin_keys(
    State(state): State<AppState>,
    Caller(by): Caller,
    List(paging): List,
) -> ApiResult<Json<ListOut<KeyView>>> {
    let page = state.hookline.list_keys(&by, None, &paging).await?;
    Ok(Json(ListOut::new(page, KeyView::from)))
}

/// Revokes an admin key (the bootstrap key too): refused from now on, by every process within
/// the key cache's time (10 s by default).
#[utoipa::path(delete, path = "/v1/keys/{key}", tag = "keys", operation_id = "revokeAdminKey",
    params(("key" = KeyId, Path, description = "The key's id.")),
    responses((status = 204, description = "Revoked."), RevokeAdminKeyProblems),
    security(("adminKey" = [])))]
pub(crate) async fn revoke_admin_key(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    state.hookline.revoke_key(&by, None, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Issues a new API key for the account; the key is shown only in this answer.
#[utoipa::path(post, path = "/v1/accounts/{account}/keys", tag = "keys", operation_id = "createAccountKey",
    params(("account" = AccountId, Path, description = "The account id.")),
    request_body(content = Option<NewKey>, content_type = "application/json", description = "Optional.", example = json!({"name": "dashboard reader", "readOnly": true})),
    responses((status = 201, description = "The new key.", body = KeyOut), CreateKeyProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
    Body(body): Body,
) -> ApiResult<(StatusCode, Json<KeyOut>)> {
    let input = new_key(&body)?;
    let key = state
        .hookline
        .create_key(&by, Some(&account), input)
        .await?;
    Ok((StatusCode::CREATED, Json(key.into())))
}

/// Lists the account's keys, newest first.
#[utoipa::path(get, path = "/v1/accounts/{account}/keys", tag = "keys", operation_id = "listAccountKeys",
    params(("account" = AccountId, Path, description = "The account id."), PageParams),
    responses((status = 200, description = "A page of the account's keys.", body = ListOut<KeyView>), ListKeysProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
    List(paging): List,
) -> ApiResult<Json<ListOut<KeyView>>> {
    let page = state
        .hookline
        .list_keys(&by, Some(&account), &paging)
        .await?;
    Ok(Json(ListOut::new(page, KeyView::from)))
}

/// Revokes one of the account's keys: refused from now on, by every process within the key
/// cache's time (10 s by default).
#[utoipa::path(delete, path = "/v1/accounts/{account}/keys/{key}", tag = "keys", operation_id = "revokeAccountKey",
    params(("account" = AccountId, Path, description = "The account id."), ("key" = KeyId, Path, description = "The key's id.")),
    responses((status = 204, description = "Revoked."), RevokeKeyProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.hookline.revoke_key(&by, Some(&account), &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The account's audit log, newest first: who changed what, and when (never a secret value).
#[utoipa::path(get, path = "/v1/accounts/{account}/audit", tag = "audit", operation_id = "listAccountAudit",
    params(("account" = AccountId, Path, description = "The account id."), PageParams),
    responses((status = 200, description = "A page of audit entries.", body = ListOut<AuditEntry>), AuditProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn account_audit(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
    List(paging): List,
) -> ApiResult<Json<ListOut<AuditEntry>>> {
    let page = state.hookline.list_audit(&by, &account, &paging).await?;
    Ok(Json(ListOut::new(page, |e| e)))
}

/// The whole deployment's audit log, newest first: the catalog's and admin keys' changes and
/// every account's.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", operation_id = "listAudit",
    params(PageParams),
    responses((status = 200, description = "A page of audit entries.", body = ListOut<AuditEntry>), AllAuditProblems),
    security(("adminKey" = [])))]
pub(crate) async fn all_audit(
    State(state): State<AppState>,
    Caller(by): Caller,
    List(paging): List,
) -> ApiResult<Json<ListOut<AuditEntry>>> {
    let page = state.hookline.list_all_audit(&by, &paging).await?;
    Ok(Json(ListOut::new(page, |e| e)))
}
