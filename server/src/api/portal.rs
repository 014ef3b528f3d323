//! Customer-portal links: a producer's backend asks for one and hands it to its customer.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use hookline_core::{AccountId, SiteId, Timestamp};
use serde::{Deserialize, Serialize};

use super::{Json, Path};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::openapi::{ACCOUNT, AUTH, JSON_BODY, WRITE};
use crate::problems;
use crate::state::AppState;
use crate::ui::session::{LINK_DEFAULT, LINK_MAX_SECS, LINK_MIN_SECS};

problems!(
    CreateProblems = [
        WRITE,
        AUTH,
        ACCOUNT,
        JSON_BODY,
        &[(404, &["site_not_found"]), (422, &["invalid_expiry"])]
    ]
);

/// What the portal session may see and for how long its link is valid.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct NewPortalSession {
    /// Limit the session to this site of the account: its events, and endpoints created there
    /// take this site.
    #[schema(value_type = Option<SiteId>)]
    site: Option<String>,
    /// Show the account without any form that changes something (default false).
    #[serde(default)]
    read_only: bool,
    /// Seconds the link stays valid before it is opened, 30 to 900 (default 300). Once opened,
    /// the session lasts an hour.
    #[schema(minimum = 30, maximum = 900)]
    expires_in: Option<u64>,
}

/// A single-use portal link.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PortalSessionOut {
    /// The link, relative to the server's base URL (`/ui/portal/…`): open it once, before
    /// `expiresAt`, to start a browser session scoped to the account.
    url: String,
    /// When the unopened link stops working.
    expires_at: Timestamp,
    /// The account the session sees.
    account: AccountId,
    /// The site it is limited to, if any.
    site: Option<SiteId>,
    /// Whether the session is read-only.
    read_only: bool,
}

/// Issues a single-use customer-portal link for the account (a read-only key: read-only links only).
#[utoipa::path(post, path = "/v1/accounts/{account}/portal-sessions", tag = "accounts",
    operation_id = "createPortalSession",
    params(("account" = AccountId, Path, description = "The account id.")),
    request_body(content = NewPortalSession, example = json!({"site": "store-12", "readOnly": false, "expiresIn": 300})),
    responses((status = 201, description = "The link.", body = PortalSessionOut,
        example = json!({"url": "/ui/portal/9f2c…", "expiresAt": "2026-11-25T15:45:55.123Z", "account": "pharma-017", "site": "store-12", "readOnly": false})),
        CreateProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
    Json(body): Json<NewPortalSession>,
) -> ApiResult<(StatusCode, Json<PortalSessionOut>)> {
    let (account, site) = state
        .hookline
        .check_portal_grant(&by, &account, body.site.as_deref(), body.read_only)
        .await?;
    let ttl = match body.expires_in {
        None => LINK_DEFAULT,
        Some(s) if (LINK_MIN_SECS..=LINK_MAX_SECS).contains(&s) => Duration::from_secs(s),
        Some(_) => {
            return Err(ApiError::unprocessable(
                "invalid_expiry",
                format!("expiresIn must be {LINK_MIN_SECS} to {LINK_MAX_SECS} seconds"),
            ));
        }
    };
    let now = state.dispatcher().clock().now();
    let (token, expires_at) =
        state
            .ui
            .issue_link(account.clone(), site.clone(), body.read_only, now, ttl);
    Ok((
        StatusCode::CREATED,
        Json(PortalSessionOut {
            url: format!("/ui/portal/{token}"),
            expires_at,
            account,
            site,
            read_only: body.read_only,
        }),
    ))
}
