//! Endpoints, their secrets, and the operations on them.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use hookline_core::model::{Endpoint, EndpointSecret};
use hookline_core::service::{EndpointPatch, NewEndpoint, Paging, SecretRotation};
use hookline_core::{AccountId, EndpointId, EventId, EventTypeName, SiteId, Timestamp};
use serde::{Deserialize, Serialize};

use super::{Json, ListOut, Path, Query};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// An endpoint as the API shows it (secrets only through the secret route).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EndpointOut {
    id: EndpointId,
    account: AccountId,
    url: String,
    description: Option<String>,
    event_types: Vec<EventTypeName>,
    sites: Vec<SiteId>,
    headers: BTreeMap<String, String>,
    rate_limit: Option<u32>,
    max_concurrency: Option<u32>,
    ordered: bool,
    enabled: bool,
    disabled_reason: Option<String>,
    /// Since when every attempt has failed (absent while the endpoint is healthy).
    #[serde(skip_serializing_if = "Option::is_none")]
    failing_since: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<Endpoint> for EndpointOut {
    fn from(e: Endpoint) -> Self {
        let failing_since = e.failing_since();
        Self {
            id: e.id,
            account: e.account,
            url: e.url,
            description: e.description,
            event_types: e.event_types,
            sites: e.sites,
            headers: e.headers,
            rate_limit: e.rate_limit,
            max_concurrency: e.max_concurrency,
            ordered: e.ordered,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            failing_since,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

pub(crate) async fn create(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
    Json(body): Json<NewEndpoint>,
) -> ApiResult<(StatusCode, Json<EndpointOut>)> {
    let ep = state.hookline.create_endpoint(&by, &account, body).await?;
    Ok((StatusCode::CREATED, Json(ep.into())))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
    Query(paging): Query<Paging>,
) -> ApiResult<Json<ListOut<EndpointOut>>> {
    let page = state
        .hookline
        .list_endpoints(&by, &account, &paging)
        .await?;
    Ok(Json(ListOut::new(page, EndpointOut::from)))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, endpoint)): Path<(String, String)>,
) -> ApiResult<Json<EndpointOut>> {
    let ep = state.hookline.endpoint(&by, &account, &endpoint).await?;
    Ok(Json(ep.into()))
}

pub(crate) async fn update(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, endpoint)): Path<(String, String)>,
    Json(body): Json<EndpointPatch>,
) -> ApiResult<Json<EndpointOut>> {
    let ep = state
        .hookline
        .update_endpoint(&by, &account, &endpoint, body)
        .await?;
    Ok(Json(ep.into()))
}

pub(crate) async fn enable(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, endpoint)): Path<(String, String)>,
) -> ApiResult<Json<EndpointOut>> {
    let ep = state
        .hookline
        .enable_endpoint(&by, &account, &endpoint)
        .await?;
    Ok(Json(ep.into()))
}

pub(crate) async fn disable(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, endpoint)): Path<(String, String)>,
) -> ApiResult<Json<EndpointOut>> {
    let ep = state
        .hookline
        .disable_endpoint(&by, &account, &endpoint)
        .await?;
    Ok(Json(ep.into()))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, endpoint)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .hookline
        .delete_endpoint(&by, &account, &endpoint)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SecretOut {
    /// The current secret.
    secret: String,
    /// Every secret that still signs, newest first, with when it stops.
    secrets: Vec<SecretEntry>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SecretEntry {
    secret: String,
    created_at: Timestamp,
    expires_at: Option<Timestamp>,
}

impl From<Vec<EndpointSecret>> for SecretOut {
    fn from(active: Vec<EndpointSecret>) -> Self {
        let secrets: Vec<SecretEntry> = active
            .into_iter()
            .map(|s| SecretEntry {
                secret: s.key.expose(),
                created_at: s.created_at,
                expires_at: s.expires_at,
            })
            .collect();
        Self {
            secret: secrets
                .first()
                .map(|s| s.secret.clone())
                .unwrap_or_default(),
            secrets,
        }
    }
}

pub(crate) async fn get_secret(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, endpoint)): Path<(String, String)>,
) -> ApiResult<Json<SecretOut>> {
    let active = state
        .hookline
        .endpoint_secrets(&by, &account, &endpoint)
        .await?;
    Ok(Json(active.into()))
}

pub(crate) async fn rotate_secret(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, endpoint)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<SecretOut>> {
    // The body is optional: empty rotates to a generated secret.
    let rotation: SecretRotation = if body.iter().all(u8::is_ascii_whitespace) {
        SecretRotation::generated()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("malformed_json", e.to_string()))?
    };
    let active = state
        .hookline
        .rotate_secret(&by, &account, &endpoint, rotation)
        .await?;
    Ok(Json(active.into()))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TestOut {
    id: EventId,
    deliveries: usize,
}

pub(crate) async fn send_test(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, endpoint)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<TestOut>)> {
    let receipt = state.hookline.send_test(&by, &account, &endpoint).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TestOut {
            id: receipt.event_id,
            deliveries: receipt.deliveries.len(),
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecoverIn {
    since: Timestamp,
}

#[derive(Debug, Serialize)]
pub(crate) struct RecoverOut {
    recovered: u64,
}

pub(crate) async fn recover(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, endpoint)): Path<(String, String)>,
    Json(body): Json<RecoverIn>,
) -> ApiResult<(StatusCode, Json<RecoverOut>)> {
    let recovered = state
        .hookline
        .recover(&by, &account, &endpoint, body.since)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(RecoverOut { recovered })))
}
