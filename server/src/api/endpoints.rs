//! Endpoints, their secrets, and the operations on them.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use hookline_core::model::{Endpoint, EndpointSecret, Event};
use hookline_core::signing::Secret;
use hookline_core::{AccountId, EndpointId, EventId, EventTypeName, SiteId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::catalog::double_option;
use super::{Json, ListOut, Paging, Path, Query, check_len, endpoint_id, event_type_name, site_id};
use crate::api::accounts::load_account;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const MAX_URL: usize = 2048;
const MAX_DESCRIPTION: usize = 1024;
const MAX_HEADERS: usize = 20;
const MAX_FILTER: usize = 100;

/// Headers that Hookline sets itself and an endpoint may not override.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CreateIn {
    url: String,
    description: Option<String>,
    #[serde(default)]
    event_types: Vec<String>,
    #[serde(default)]
    sites: Vec<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    rate_limit: Option<u32>,
    max_concurrency: Option<u32>,
    #[serde(default)]
    ordered: bool,
    secret: Option<String>,
    enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PatchIn {
    url: Option<String>,
    #[serde(default, with = "double_option")]
    description: Option<Option<String>>,
    event_types: Option<Vec<String>>,
    sites: Option<Vec<String>>,
    headers: Option<BTreeMap<String, String>>,
    #[serde(default, with = "double_option")]
    rate_limit: Option<Option<u32>>,
    #[serde(default, with = "double_option")]
    max_concurrency: Option<Option<u32>>,
    ordered: Option<bool>,
    enabled: Option<bool>,
}

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

fn check_url(state: &AppState, raw: &str) -> ApiResult<String> {
    check_len("url", raw, MAX_URL)?;
    let url = url::Url::parse(raw)
        .map_err(|e| ApiError::unprocessable("invalid_url", format!("`url`: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if state.api.allow_http => {}
        "http" => {
            return Err(ApiError::unprocessable(
                "insecure_url",
                "endpoint URLs must be https (this deployment does not allow http)",
            ));
        }
        other => {
            return Err(ApiError::unprocessable(
                "invalid_url",
                format!("unsupported scheme `{other}`"),
            ));
        }
    }
    if url.host().is_none() {
        return Err(ApiError::unprocessable(
            "invalid_url",
            "the URL has no host",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ApiError::unprocessable(
            "invalid_url",
            "credentials in the URL are not allowed; use headers",
        ));
    }
    Ok(url.to_string())
}

async fn check_event_types(state: &AppState, raw: &[String]) -> ApiResult<Vec<EventTypeName>> {
    if raw.len() > MAX_FILTER {
        return Err(ApiError::unprocessable(
            "too_many_items",
            format!("at most {MAX_FILTER} event types"),
        ));
    }
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        let name = event_type_name(r)?;
        if state.store().event_type(&name).await?.is_none() {
            return Err(ApiError::unprocessable(
                "unknown_event_type",
                format!("no event type `{name}` in the catalog"),
            ));
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

async fn check_sites(
    state: &AppState,
    account: &AccountId,
    raw: &[String],
) -> ApiResult<Vec<SiteId>> {
    if raw.len() > MAX_FILTER {
        return Err(ApiError::unprocessable(
            "too_many_items",
            format!("at most {MAX_FILTER} sites"),
        ));
    }
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        let id = site_id(r)?;
        if state.store().site(account, &id).await?.is_none() {
            return Err(ApiError::unprocessable(
                "unknown_site",
                format!("no site `{id}` in account `{account}`"),
            ));
        }
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

fn check_headers(h: BTreeMap<String, String>) -> ApiResult<BTreeMap<String, String>> {
    if h.len() > MAX_HEADERS {
        return Err(ApiError::unprocessable(
            "too_many_items",
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    let mut out = BTreeMap::new();
    for (k, v) in h {
        let name = HeaderName::try_from(k.as_str()).map_err(|_| {
            ApiError::unprocessable("invalid_header", format!("`{k}` is not a header name"))
        })?;
        if RESERVED_HEADERS.contains(&name.as_str()) || name.as_str().starts_with("x-hookline-") {
            return Err(ApiError::unprocessable(
                "reserved_header",
                format!("`{k}` is set by Hookline"),
            ));
        }
        HeaderValue::try_from(v.as_str()).map_err(|_| {
            ApiError::unprocessable("invalid_header", format!("the value of `{k}` is not valid"))
        })?;
        check_len("headers", &v, 1024)?;
        out.insert(name.as_str().to_owned(), v);
    }
    Ok(out)
}

fn check_positive(field: &str, v: Option<u32>) -> ApiResult<Option<u32>> {
    match v {
        Some(0) => Err(ApiError::unprocessable(
            "invalid_limit",
            format!("`{field}` must be at least 1"),
        )),
        other => Ok(other),
    }
}

fn parse_secret(raw: &str) -> ApiResult<Secret> {
    Secret::parse(raw).map_err(|e| ApiError::unprocessable("invalid_secret", e.to_string()))
}

pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    Json(body): Json<CreateIn>,
) -> ApiResult<(StatusCode, Json<EndpointOut>)> {
    let a = load_account(&state, &caller, &account).await?;
    let url = check_url(&state, &body.url)?;
    if let Some(d) = &body.description {
        check_len("description", d, MAX_DESCRIPTION)?;
    }
    let event_types = check_event_types(&state, &body.event_types).await?;
    let sites = check_sites(&state, &a.id, &body.sites).await?;
    let headers = check_headers(body.headers)?;
    let secret = match &body.secret {
        Some(s) => parse_secret(s)?,
        None => Secret::generate(),
    };
    let now = Timestamp::now();
    let mut ep = Endpoint::new(
        EndpointId::generate(),
        a.id,
        url,
        vec![EndpointSecret::new(secret, now)],
        now,
    );
    ep.description = body.description;
    ep.event_types = event_types;
    ep.sites = sites;
    ep.headers = headers;
    ep.rate_limit = check_positive("rateLimit", body.rate_limit)?;
    ep.max_concurrency = check_positive("maxConcurrency", body.max_concurrency)?;
    ep.ordered = body.ordered;
    ep.enabled = body.enabled.unwrap_or(true);
    state.store().create_endpoint(&ep).await?;
    state.cache.subscribers.clear();
    Ok((StatusCode::CREATED, Json(ep.into())))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    Query(paging): Query<Paging>,
) -> ApiResult<Json<ListOut<EndpointOut>>> {
    let a = load_account(&state, &caller, &account).await?;
    let page = state
        .store()
        .list_endpoints(&a.id, &paging.request()?)
        .await?;
    Ok(Json(ListOut::new(page, EndpointOut::from)))
}

pub(crate) async fn load_endpoint(
    state: &AppState,
    caller: &Caller,
    account: &str,
    endpoint: &str,
) -> ApiResult<Endpoint> {
    let a = load_account(state, caller, account).await?;
    let id = endpoint_id(endpoint)?;
    state.store().endpoint(&a.id, &id).await?.ok_or_else(|| {
        ApiError::not_found(
            "endpoint_not_found",
            format!("no endpoint `{id}` in account `{}`", a.id),
        )
    })
}

pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, endpoint)): Path<(String, String)>,
) -> ApiResult<Json<EndpointOut>> {
    Ok(Json(
        load_endpoint(&state, &caller, &account, &endpoint)
            .await?
            .into(),
    ))
}

pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, endpoint)): Path<(String, String)>,
    Json(body): Json<PatchIn>,
) -> ApiResult<Json<EndpointOut>> {
    let mut ep = load_endpoint(&state, &caller, &account, &endpoint).await?;
    if let Some(u) = &body.url {
        ep.url = check_url(&state, u)?;
    }
    if let Some(d) = body.description {
        if let Some(d) = &d {
            check_len("description", d, MAX_DESCRIPTION)?;
        }
        ep.description = d;
    }
    if let Some(t) = &body.event_types {
        ep.event_types = check_event_types(&state, t).await?;
    }
    if let Some(s) = &body.sites {
        ep.sites = check_sites(&state, &ep.account, s).await?;
    }
    if let Some(h) = body.headers {
        ep.headers = check_headers(h)?;
    }
    if let Some(r) = body.rate_limit {
        ep.rate_limit = check_positive("rateLimit", r)?;
    }
    if let Some(c) = body.max_concurrency {
        ep.max_concurrency = check_positive("maxConcurrency", c)?;
    }
    if let Some(o) = body.ordered {
        ep.ordered = o;
    }
    let mut enabled_now = false;
    if let Some(en) = body.enabled {
        enabled_now = set_enabled(&mut ep, en, "disabled through the API") && en;
    }
    ep.updated_at = Timestamp::now();
    state.store().update_endpoint(&ep).await?;
    state.cache.subscribers.clear();
    if enabled_now {
        restart_failure_clock(&state, &mut ep).await?;
    }
    Ok(Json(ep.into()))
}

/// Sets the enabled flag and the reason; true if it changed.
fn set_enabled(ep: &mut Endpoint, enabled: bool, reason: &str) -> bool {
    if ep.enabled == enabled {
        return false;
    }
    ep.enabled = enabled;
    ep.disabled_reason = if enabled {
        None
    } else {
        Some(reason.to_owned())
    };
    true
}

/// An endpoint enabled again starts with a clean failure clock, and its deliveries go at once.
async fn restart_failure_clock(state: &AppState, ep: &mut Endpoint) -> ApiResult<()> {
    state.store().record_healthy(&ep.id).await?;
    *ep = ep.clone().with_failing_since(None);
    state.dispatcher.wake();
    Ok(())
}

pub(crate) async fn enable(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, endpoint)): Path<(String, String)>,
) -> ApiResult<Json<EndpointOut>> {
    let mut ep = load_endpoint(&state, &caller, &account, &endpoint).await?;
    set_enabled(&mut ep, true, "");
    ep.updated_at = Timestamp::now();
    state.store().update_endpoint(&ep).await?;
    state.cache.subscribers.clear();
    restart_failure_clock(&state, &mut ep).await?;
    Ok(Json(ep.into()))
}

pub(crate) async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, endpoint)): Path<(String, String)>,
) -> ApiResult<Json<EndpointOut>> {
    let mut ep = load_endpoint(&state, &caller, &account, &endpoint).await?;
    let _ = set_enabled(&mut ep, false, "disabled through the API");
    ep.updated_at = Timestamp::now();
    state.store().update_endpoint(&ep).await?;
    state.cache.subscribers.clear();
    Ok(Json(ep.into()))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, endpoint)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let ep = load_endpoint(&state, &caller, &account, &endpoint).await?;
    state.store().remove_endpoint(&ep.account, &ep.id).await?;
    state.cache.subscribers.clear();
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

fn secret_out(ep: &Endpoint, now: Timestamp) -> SecretOut {
    let secrets: Vec<SecretEntry> = ep
        .secrets
        .iter()
        .filter(|s| s.expires_at.is_none_or(|t| t > now))
        .map(|s| SecretEntry {
            secret: s.key.expose(),
            created_at: s.created_at,
            expires_at: s.expires_at,
        })
        .collect();
    SecretOut {
        secret: secrets
            .first()
            .map(|s| s.secret.clone())
            .unwrap_or_default(),
        secrets,
    }
}

pub(crate) async fn get_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, endpoint)): Path<(String, String)>,
) -> ApiResult<Json<SecretOut>> {
    let ep = load_endpoint(&state, &caller, &account, &endpoint).await?;
    Ok(Json(secret_out(&ep, Timestamp::now())))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateIn {
    secret: Option<String>,
}

pub(crate) async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, endpoint)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<SecretOut>> {
    let mut ep = load_endpoint(&state, &caller, &account, &endpoint).await?;
    let input: RotateIn = if body.iter().all(u8::is_ascii_whitespace) {
        RotateIn::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("malformed_json", e.to_string()))?
    };
    let new = match &input.secret {
        Some(s) => parse_secret(s)?,
        None => Secret::generate(),
    };
    let now = Timestamp::now();
    let overlap_end = now.add(state.api.rotation_overlap);
    for s in &mut ep.secrets {
        if s.expires_at.is_none_or(|t| t > overlap_end) {
            s.expires_at = Some(overlap_end);
        }
    }
    ep.secrets.retain(|s| s.expires_at.is_none_or(|t| t > now));
    ep.secrets.insert(
        0,
        EndpointSecret {
            key: new,
            created_at: now,
            expires_at: None,
        },
    );
    ep.updated_at = now;
    state.store().update_endpoint(&ep).await?;
    state.cache.subscribers.clear();
    Ok(Json(secret_out(&ep, now)))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TestOut {
    id: EventId,
    deliveries: usize,
}

/// The event type of test events; it need not be in the catalog.
pub(crate) const TEST_EVENT_TYPE: &str = "hookline.test";

pub(crate) async fn send_test(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, endpoint)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<TestOut>)> {
    let ep = load_endpoint(&state, &caller, &account, &endpoint).await?;
    let now = Timestamp::now();
    let data = serde_json::json!({ "message": "test event from Hookline", "endpointId": ep.id });
    let event = Event {
        id: EventId::generate(),
        account: ep.account.clone(),
        site: None,
        event_type: event_type_name(TEST_EVENT_TYPE)?,
        queue_id: None,
        data: RawValue::from_string(data.to_string())
            .map_err(|_| ApiError::bad_request("internal", "bad test data"))?,
        idempotency_key: None,
        timestamp: now,
    };
    let receipt = state
        .dispatcher
        .publish_manual(&event, std::slice::from_ref(&ep.id))
        .await
        .map_err(crate::api::events::publish_error)?;
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
    caller: Caller,
    Path((account, endpoint)): Path<(String, String)>,
    Json(body): Json<RecoverIn>,
) -> ApiResult<(StatusCode, Json<RecoverOut>)> {
    let ep = load_endpoint(&state, &caller, &account, &endpoint).await?;
    let n = state
        .store()
        .recover_failed(&ep.account, &ep.id, body.since, Timestamp::now())
        .await?;
    if n > 0 {
        state.dispatcher.wake();
    }
    Ok((StatusCode::ACCEPTED, Json(RecoverOut { recovered: n })))
}
