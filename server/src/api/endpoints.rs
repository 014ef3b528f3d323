//! Endpoints, their secrets, and the operations on them.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use hookline_core::model::{Endpoint, EndpointSecret};
use hookline_core::service::{EndpointPatch, NewEndpoint, SecretRotation};
use hookline_core::{AccountId, EndpointId, EventId, EventTypeName, SiteId, Timestamp};
use serde::{Deserialize, Serialize};

use super::{Body, Json, List, ListOut, MergePatch, PageParams, Path};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::openapi::{ACCOUNT, AUTH, GONE, JSON_BODY, PAGING, TEXT, WRITE};
use crate::problems;
use crate::state::AppState;

/// What a new or changed endpoint's settings may be refused for.
const SETTINGS: crate::openapi::Codes = &[
    (400, &["invalid_id"]),
    (
        422,
        &[
            "invalid_url",
            "insecure_url",
            "forbidden_address",
            "unknown_event_type",
            "unknown_site",
            "too_many_items",
            "reserved_header",
            "invalid_header",
            "invalid_secret",
            "invalid_limit",
        ],
    ),
];
/// Routes under `…/endpoints/{endpoint}`.
const ENDPOINT: crate::openapi::Codes = &[(404, &["endpoint_not_found"])];

problems!(CreateProblems = [WRITE, AUTH, ACCOUNT, JSON_BODY, TEXT, SETTINGS]);
problems!(ListProblems = [AUTH, ACCOUNT, PAGING]);
problems!(GetProblems = [AUTH, ACCOUNT, ENDPOINT]);
problems!(TestProblems = [WRITE, AUTH, ACCOUNT, ENDPOINT]);
problems!(
    UpdateProblems = [
        WRITE, AUTH, ACCOUNT, ENDPOINT, JSON_BODY, TEXT, SETTINGS, GONE
    ]
);
problems!(ChangeProblems = [WRITE, AUTH, ACCOUNT, ENDPOINT, GONE]);
problems!(
    RotateProblems = [
        WRITE,
        AUTH,
        ACCOUNT,
        ENDPOINT,
        GONE,
        &[
            (400, &["malformed_json", "invalid_body"]),
            (413, &["payload_too_large"]),
            (422, &["invalid_body", "invalid_secret"]),
        ]
    ]
);
problems!(RecoverProblems = [WRITE, AUTH, ACCOUNT, ENDPOINT, JSON_BODY]);

/// An endpoint as the API shows it (secrets only through the secret route).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Endpoint)]
pub(crate) struct EndpointOut {
    /// Generated id.
    id: EndpointId,
    /// Owning account.
    account: AccountId,
    /// Target URL.
    url: String,
    /// Free text.
    description: Option<String>,
    /// Event-type filter; empty means every type.
    event_types: Vec<EventTypeName>,
    /// Site filter; empty means a shared endpoint for all sites (and events without a site).
    sites: Vec<SiteId>,
    /// Extra request headers. Their values are write-only, shown masked: `••••` followed by
    /// the value's last four characters when it has at least 16, the mask alone otherwise.
    /// Sending a masked value back in an update keeps the header's value.
    headers: BTreeMap<String, String>,
    /// Requests per second, if limited.
    rate_limit: Option<u32>,
    /// Requests in flight at once, if limited.
    max_concurrency: Option<u32>,
    /// Deliver events that share a `queueId` in order.
    ordered: bool,
    /// Whether deliveries are sent.
    enabled: bool,
    /// Why it was disabled, when it is.
    disabled_reason: Option<String>,
    /// Since when every attempt has failed (absent while the endpoint is healthy).
    #[serde(skip_serializing_if = "Option::is_none")]
    failing_since: Option<Timestamp>,
    /// When it was created.
    created_at: Timestamp,
    /// When it was last changed.
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
            headers: e
                .headers
                .into_iter()
                .map(|(k, v)| {
                    let masked = hookline_core::service::mask_header_value(&v);
                    (k, masked)
                })
                .collect(),
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

/// Creates an endpoint in the account. Only `url` is required; empty filters take every event
/// type and every site, and a signing secret is generated unless one is given.
#[utoipa::path(post, path = "/v1/accounts/{account}/endpoints", tag = "endpoints", operation_id = "createEndpoint",
    params(("account" = AccountId, Path, description = "The account id.")),
    request_body(content = NewEndpoint, example = json!({"url": "http://127.0.0.1:9000/webhooks", "eventTypes": ["rx.completed"], "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})),
    responses((status = 201, description = "The endpoint.", body = EndpointOut, example = json!({"id": "ep_01KB2Z6Q3V8M4J7X0R5T9W1C2D", "account": "pharma-017", "url": "http://127.0.0.1:9000/webhooks", "description": null, "eventTypes": ["rx.completed"], "sites": [], "headers": {}, "rateLimit": null, "maxConcurrency": null, "ordered": false, "enabled": true, "disabledReason": null, "createdAt": "2026-11-25T15:40:55.123Z", "updatedAt": "2026-11-25T15:40:55.123Z"})), CreateProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
    Json(body): Json<NewEndpoint>,
) -> ApiResult<(StatusCode, Json<EndpointOut>)> {
    let ep = state.hookline.create_endpoint(&by, &account, body).await?;
    Ok((StatusCode::CREATED, Json(ep.into())))
}

/// Lists the account's endpoints, newest first.
#[utoipa::path(get, path = "/v1/accounts/{account}/endpoints", tag = "endpoints", operation_id = "listEndpoints",
    params(("account" = AccountId, Path, description = "The account id."), PageParams),
    responses((status = 200, description = "A page of endpoints.", body = ListOut<EndpointOut>), ListProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
    List(paging): List,
) -> ApiResult<Json<ListOut<EndpointOut>>> {
    let page = state
        .hookline
        .list_endpoints(&by, &account, &paging)
        .await?;
    Ok(Json(ListOut::new(page, EndpointOut::from)))
}

/// One endpoint.
#[utoipa::path(get, path = "/v1/accounts/{account}/endpoints/{endpoint}", tag = "endpoints", operation_id = "getEndpoint",
    params(("account" = AccountId, Path, description = "The account id."), ("endpoint" = EndpointId, Path, description = "The endpoint id.")),
    responses((status = 200, description = "The endpoint.", body = EndpointOut), GetProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, endpoint)): Path<(String, String)>,
) -> ApiResult<Json<EndpointOut>> {
    let ep = state.hookline.endpoint(&by, &account, &endpoint).await?;
    Ok(Json(ep.into()))
}

/// Changes an endpoint, a JSON Merge Patch: absent fields stay; `null` clears `description`,
/// `eventTypes` and `sites` (no filter), `headers` (all of them), `rateLimit` and
/// `maxConcurrency`, turns `ordered` off and `enabled` on; `url` cannot be removed. `headers`
/// merges: a header with a value is set, one with `null` removed, the others stay. Enabling it
/// this way restarts its failure clock, as `enable` does.
#[utoipa::path(patch, path = "/v1/accounts/{account}/endpoints/{endpoint}", tag = "endpoints", operation_id = "updateEndpoint",
    params(("account" = AccountId, Path, description = "The account id."), ("endpoint" = EndpointId, Path, description = "The endpoint id.")),
    request_body(description = "A JSON Merge Patch (RFC 7396), sent as `application/merge-patch+json` or `application/json`: absent fields stay, `null` resets a field to its default.",
        content((EndpointPatch = "application/merge-patch+json", example = json!({"rateLimit": 5, "description": null})), (EndpointPatch = "application/json"))),
    responses((status = 200, description = "The changed endpoint.", body = EndpointOut), UpdateProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn update(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, endpoint)): Path<(String, String)>,
    MergePatch(body): MergePatch<EndpointPatch>,
) -> ApiResult<Json<EndpointOut>> {
    let ep = state
        .hookline
        .update_endpoint(&by, &account, &endpoint, body)
        .await?;
    Ok(Json(ep.into()))
}

/// Enables an endpoint (also one disabled after failing): its failure clock starts over and its
/// pending deliveries go at once.
#[utoipa::path(post, path = "/v1/accounts/{account}/endpoints/{endpoint}/enable", tag = "endpoints", operation_id = "enableEndpoint",
    params(("account" = AccountId, Path, description = "The account id."), ("endpoint" = EndpointId, Path, description = "The endpoint id.")),
    responses((status = 200, description = "The endpoint.", body = EndpointOut), ChangeProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
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

/// Disables an endpoint: its deliveries stay pending until it is enabled again.
#[utoipa::path(post, path = "/v1/accounts/{account}/endpoints/{endpoint}/disable", tag = "endpoints", operation_id = "disableEndpoint",
    params(("account" = AccountId, Path, description = "The account id."), ("endpoint" = EndpointId, Path, description = "The endpoint id.")),
    responses((status = 200, description = "The endpoint.", body = EndpointOut), ChangeProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
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

/// Removes an endpoint; its unfinished deliveries are cancelled.
#[utoipa::path(delete, path = "/v1/accounts/{account}/endpoints/{endpoint}", tag = "endpoints", operation_id = "deleteEndpoint",
    params(("account" = AccountId, Path, description = "The account id."), ("endpoint" = EndpointId, Path, description = "The endpoint id.")),
    responses((status = 204, description = "Removed."), ChangeProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
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

/// The secrets that sign an endpoint's requests.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SecretOut {
    /// The current secret.
    secret: String,
    /// Every secret that still signs, newest first, with when it stops.
    secrets: Vec<SecretEntry>,
}

/// A secret that signs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct SecretEntry {
    /// The secret (`whsec_…`).
    secret: String,
    /// When it was created.
    created_at: Timestamp,
    /// When it stops signing; `null` while it is current.
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

/// The secrets that sign the endpoint's requests now, the current one first.
#[utoipa::path(get, path = "/v1/accounts/{account}/endpoints/{endpoint}/secret", tag = "endpoints", operation_id = "getEndpointSecret",
    params(("account" = AccountId, Path, description = "The account id."), ("endpoint" = EndpointId, Path, description = "The endpoint id.")),
    responses((status = 200, description = "The current secret, and every secret that still signs.", body = SecretOut), GetProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
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

/// Rotates the signing secret: the new one (given, or generated for an empty body) signs from
/// now on, and the older ones keep signing for the overlap (24 h by default).
#[utoipa::path(post, path = "/v1/accounts/{account}/endpoints/{endpoint}/secret/rotate", tag = "endpoints", operation_id = "rotateEndpointSecret",
    params(("account" = AccountId, Path, description = "The account id."), ("endpoint" = EndpointId, Path, description = "The endpoint id.")),
    request_body(content = Option<SecretRotation>, content_type = "application/json", description = "Optional: an empty body generates the new secret.", example = json!({})),
    responses((status = 200, description = "The secrets that sign now, newest first.", body = SecretOut), RotateProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn rotate_secret(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, endpoint)): Path<(String, String)>,
    Body(body): Body,
) -> ApiResult<Json<SecretOut>> {
    // The body is optional: empty (or `null`) rotates to a generated secret.
    let rotation: SecretRotation = if body.iter().all(u8::is_ascii_whitespace) {
        SecretRotation::generated()
    } else {
        serde_json::from_slice::<Option<SecretRotation>>(&body)
            .map_err(ApiError::from_json)?
            .unwrap_or_else(SecretRotation::generated)
    };
    let active = state
        .hookline
        .rotate_secret(&by, &account, &endpoint, rotation)
        .await?;
    Ok(Json(active.into()))
}

/// The test event that was sent.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TestOut {
    /// The test event's id.
    id: EventId,
    /// Deliveries created (one, to this endpoint).
    deliveries: usize,
}

/// Sends a test event (`hookline.test`) to this endpoint, whatever its filters.
#[utoipa::path(post, path = "/v1/accounts/{account}/endpoints/{endpoint}/test", tag = "endpoints", operation_id = "sendTestEvent",
    params(("account" = AccountId, Path, description = "The account id."), ("endpoint" = EndpointId, Path, description = "The endpoint id.")),
    responses((status = 202, description = "The test event, queued.", body = TestOut), TestProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
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

/// Which failed deliveries to send again.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecoverIn {
    /// Deliveries created at or after this instant.
    since: Timestamp,
}

/// How many deliveries were queued again.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RecoverOut {
    /// Failed deliveries made pending again.
    recovered: u64,
}

/// Re-queues every failed delivery to this endpoint created at or after `since`.
#[utoipa::path(post, path = "/v1/accounts/{account}/endpoints/{endpoint}/recover", tag = "endpoints", operation_id = "recoverEndpoint",
    params(("account" = AccountId, Path, description = "The account id."), ("endpoint" = EndpointId, Path, description = "The endpoint id.")),
    request_body(content = RecoverIn, example = json!({"since": "2026-11-25T00:00:00Z"})),
    responses((status = 202, description = "How many were queued again.", body = RecoverOut), RecoverProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
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
