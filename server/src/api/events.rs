//! Events, deliveries and attempts.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hookline_core::dispatcher::PublishError;
use hookline_core::model::{Attempt, Delivery, DeliveryFilter, DeliveryStatus, Event, EventFilter};
use hookline_core::{AccountId, EndpointId, EventId, SiteId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::endpoints::load_endpoint;
use super::{
    Json, ListOut, Paging, Path, Query, check_len, delivery_id, event_id, event_type_name, site_id,
};
use crate::api::accounts::load_account;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const MAX_QUEUE_ID: usize = 256;
const MAX_IDEMPOTENCY_KEY: usize = 255;
const MAX_BATCH: usize = 100;

pub(crate) fn publish_error(e: PublishError) -> ApiError {
    match e {
        PublishError::Store(s) => s.into(),
        other => {
            tracing::error!(error = %other, "publish failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct EventIn {
    event: String,
    site: Option<String>,
    queue_id: Option<String>,
    data: Box<RawValue>,
    /// Per-item idempotency key (batch only; single creates use the header).
    idempotency_key: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreatedOut {
    id: EventId,
    deliveries: usize,
    duplicate: bool,
}

fn check_idempotency_key(k: &str) -> ApiResult<()> {
    if k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY || !k.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            format!("an idempotency key is 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
        ));
    }
    Ok(())
}

/// Validates one event against the catalog and the account, without writing anything.
async fn validate(
    state: &AppState,
    account: &AccountId,
    input: EventIn,
    idem: Option<String>,
) -> ApiResult<Event> {
    let kind = event_type_name(&input.event).map_err(|_| {
        ApiError::unprocessable(
            "unknown_event_type",
            format!("`{}` is not a valid event type name", input.event),
        )
    })?;
    let found = match state.cache.event_types.get(&kind) {
        Some(et) => Some(et),
        None => {
            let et = state.store().event_type(&kind).await?;
            if let Some(et) = &et {
                state.cache.event_types.put(kind.clone(), et.clone());
            }
            et
        }
    };
    match found {
        None => {
            return Err(ApiError::unprocessable(
                "unknown_event_type",
                format!("no event type `{kind}` in the catalog"),
            ));
        }
        Some(et) if et.archived => {
            return Err(ApiError::unprocessable(
                "event_type_archived",
                format!("event type `{kind}` is archived"),
            ));
        }
        Some(_) => {}
    }
    let site: Option<SiteId> = match &input.site {
        None => None,
        Some(s) => {
            let id = site_id(s)?;
            if state.store().site(account, &id).await?.is_none() {
                return Err(ApiError::unprocessable(
                    "unknown_site",
                    format!("no site `{id}` in account `{account}`"),
                ));
            }
            Some(id)
        }
    };
    if let Some(q) = &input.queue_id {
        check_len("queueId", q, MAX_QUEUE_ID)?;
    }
    if !input.data.get().trim_start().starts_with('{') {
        return Err(ApiError::unprocessable(
            "invalid_data",
            "`data` must be a JSON object",
        ));
    }
    if input.data.get().len() > state.api.max_event_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "`data` is larger than the limit",
        ));
    }
    let idem = idem.or(input.idempotency_key);
    if let Some(k) = &idem {
        check_idempotency_key(k)?;
    }
    Ok(Event {
        id: EventId::generate(),
        account: account.clone(),
        site,
        event_type: kind,
        queue_id: input.queue_id,
        data: input.data,
        idempotency_key: idem,
        timestamp: Timestamp::now(),
    })
}

async fn publish(state: &AppState, event: &Event) -> ApiResult<CreatedOut> {
    let cache = &state.cache.subscribers;
    let key = (
        event.account.clone(),
        event.site.clone(),
        event.event_type.clone(),
    );
    let targets = match cache.get(&key) {
        Some(targets) => targets,
        None => {
            let generation = cache.generation();
            let targets: Arc<[EndpointId]> = state
                .store()
                .subscribers(&event.account, event.site.as_ref(), &event.event_type)
                .await?
                .into_iter()
                .map(|e| e.id)
                .collect();
            cache.put_if_current(generation, key, targets.clone());
            targets
        }
    };
    let r = state
        .dispatcher
        .publish_to(event, &targets)
        .await
        .map_err(publish_error)?;
    Ok(CreatedOut {
        id: r.event_id,
        deliveries: r.deliveries.len(),
        duplicate: r.duplicate,
    })
}

pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    headers: HeaderMap,
    Json(input): Json<EventIn>,
) -> ApiResult<(StatusCode, Json<CreatedOut>)> {
    caller.require_admin()?;
    let a = load_account(&state, &caller, &account).await?;
    let idem = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    ApiError::bad_request(
                        "invalid_idempotency_key",
                        "the idempotency key is not text",
                    )
                })?
                .to_owned(),
        ),
    };
    if input.idempotency_key.is_some() {
        return Err(ApiError::unprocessable(
            "invalid_body",
            "send the idempotency key in the `Idempotency-Key` header",
        ));
    }
    let event = validate(&state, &a.id, input, idem).await?;
    Ok((StatusCode::ACCEPTED, Json(publish(&state, &event).await?)))
}

#[derive(Debug, Serialize)]
pub(crate) struct BatchOut {
    data: Vec<CreatedOut>,
}

pub(crate) async fn create_batch(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    Json(inputs): Json<Vec<EventIn>>,
) -> ApiResult<(StatusCode, Json<BatchOut>)> {
    caller.require_admin()?;
    let a = load_account(&state, &caller, &account).await?;
    if inputs.is_empty() || inputs.len() > MAX_BATCH {
        return Err(ApiError::unprocessable(
            "invalid_batch",
            format!("a batch holds 1 to {MAX_BATCH} events"),
        ));
    }
    // Validate everything first, so a bad item stores nothing.
    let mut events = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let ev = validate(&state, &a.id, input, None).await.map_err(|e| {
            ApiError::new(
                e.status(),
                e.code(),
                format!("item {i}: rejected ({})", e.code()),
            )
        })?;
        events.push(ev);
    }
    let mut out = Vec::with_capacity(events.len());
    for ev in &events {
        out.push(publish(&state, ev).await?);
    }
    Ok((StatusCode::ACCEPTED, Json(BatchOut { data: out })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct EventsQuery {
    event: Option<String>,
    site: Option<String>,
    queue_id: Option<String>,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    limit: Option<usize>,
    cursor: Option<String>,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<ListOut<Event>>> {
    let a = load_account(&state, &caller, &account).await?;
    let mut filter = EventFilter::default();
    filter.event_type = q.event.as_deref().map(event_type_name).transpose()?;
    filter.site = q.site.as_deref().map(site_id).transpose()?;
    filter.queue_id = q.queue_id;
    filter.since = q.since;
    filter.until = q.until;
    let page = Paging {
        limit: q.limit,
        cursor: q.cursor,
    }
    .request()?;
    let page = state.store().list_events(&a.id, &filter, &page).await?;
    Ok(Json(ListOut::new(page, |e| e)))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, event)): Path<(String, String)>,
) -> ApiResult<Json<Event>> {
    Ok(Json(load_event(&state, &caller, &account, &event).await?))
}

async fn load_event(
    state: &AppState,
    caller: &Caller,
    account: &str,
    event: &str,
) -> ApiResult<Event> {
    let a = load_account(state, caller, account).await?;
    let id = event_id(event)?;
    state.store().event(&a.id, &id).await?.ok_or_else(|| {
        ApiError::not_found(
            "event_not_found",
            format!("no event `{id}` in account `{}`", a.id),
        )
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeliveriesQuery {
    status: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

impl DeliveriesQuery {
    fn status(&self) -> ApiResult<Option<DeliveryStatus>> {
        match &self.status {
            None => Ok(None),
            Some(s) => DeliveryStatus::parse(s).map(Some).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    "status is one of pending, succeeded, failed, cancelled",
                )
            }),
        }
    }

    fn paging(&self) -> ApiResult<hookline_core::model::PageRequest> {
        Paging {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
        .request()
    }
}

pub(crate) async fn event_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, event)): Path<(String, String)>,
    Query(q): Query<DeliveriesQuery>,
) -> ApiResult<Json<ListOut<Delivery>>> {
    let ev = load_event(&state, &caller, &account, &event).await?;
    let mut filter = DeliveryFilter::default();
    filter.event = Some(ev.id);
    filter.status = q.status()?;
    let page = state
        .store()
        .list_deliveries(&ev.account, &filter, &q.paging()?)
        .await?;
    Ok(Json(ListOut::new(page, |d| d)))
}

pub(crate) async fn endpoint_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, endpoint)): Path<(String, String)>,
    Query(q): Query<DeliveriesQuery>,
) -> ApiResult<Json<ListOut<Delivery>>> {
    let ep = load_endpoint(&state, &caller, &account, &endpoint).await?;
    let mut filter = DeliveryFilter::default();
    filter.endpoint = Some(ep.id);
    filter.status = q.status()?;
    let page = state
        .store()
        .list_deliveries(&ep.account, &filter, &q.paging()?)
        .await?;
    Ok(Json(ListOut::new(page, |d| d)))
}

async fn load_delivery(
    state: &AppState,
    caller: &Caller,
    account: &str,
    delivery: &str,
) -> ApiResult<Delivery> {
    let a = load_account(state, caller, account).await?;
    let id = delivery_id(delivery)?;
    state.store().delivery(&a.id, &id).await?.ok_or_else(|| {
        ApiError::not_found(
            "delivery_not_found",
            format!("no delivery `{id}` in account `{}`", a.id),
        )
    })
}

pub(crate) async fn get_delivery(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, delivery)): Path<(String, String)>,
) -> ApiResult<Json<Delivery>> {
    Ok(Json(
        load_delivery(&state, &caller, &account, &delivery).await?,
    ))
}

#[derive(Debug, Serialize)]
pub(crate) struct AttemptsOut {
    data: Vec<Attempt>,
}

pub(crate) async fn attempts(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, delivery)): Path<(String, String)>,
) -> ApiResult<Json<AttemptsOut>> {
    let d = load_delivery(&state, &caller, &account, &delivery).await?;
    Ok(Json(AttemptsOut {
        data: state.store().attempts(&d.account, &d.id).await?,
    }))
}

pub(crate) async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path((account, delivery)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    let d = load_delivery(&state, &caller, &account, &delivery).await?;
    let d = state
        .store()
        .retry_delivery(&d.account, &d.id, Timestamp::now())
        .await?;
    state.dispatcher.wake();
    Ok((StatusCode::ACCEPTED, Json(d)))
}
