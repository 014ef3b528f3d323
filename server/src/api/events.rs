//! Events: publishing and looking them up.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use hookline_core::model::Event;
use hookline_core::service::NewEvent;
use hookline_core::store::Receipt;
use hookline_core::{AccountId, EventId};
use serde::Serialize;

use super::{EventListParams, Json, List, ListOut, Path};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::openapi::{ACCOUNT, ADMIN, AUTH, JSON_BODY, PAGING, TEXT, WRITE};
use crate::problems;
use crate::state::AppState;

/// What an event may be refused for.
const CHECKS: crate::openapi::Codes = &[
    (400, &["invalid_id"]),
    (409, &["idempotency_conflict"]),
    (413, &["payload_too_large"]),
    (
        422,
        &[
            "invalid_body",
            "invalid_idempotency_key",
            "unknown_event_type",
            "event_type_archived",
            "unknown_site",
            "invalid_data",
            "invalid_schema",
        ],
    ),
];

problems!(CreateProblems = [WRITE, AUTH, ADMIN, ACCOUNT, JSON_BODY, TEXT, CHECKS]);
problems!(
    BatchProblems = [
        WRITE,
        AUTH,
        ADMIN,
        ACCOUNT,
        JSON_BODY,
        TEXT,
        CHECKS,
        &[(422, &["invalid_batch", "batch_too_large"])]
    ]
);
problems!(ListProblems = [AUTH, ACCOUNT, PAGING, &[(400, &["invalid_id"])]]);
problems!(GetProblems = [AUTH, ACCOUNT, &[(404, &["event_not_found"])]]);

/// An accepted event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreatedOut {
    /// The event's id (the original's, for a duplicate).
    id: EventId,
    /// Deliveries created, one per subscribed endpoint.
    deliveries: usize,
    /// Whether an event with this idempotency key was accepted before (and this one was not
    /// stored again).
    duplicate: bool,
}

impl From<Receipt> for CreatedOut {
    fn from(r: Receipt) -> Self {
        Self {
            id: r.event_id,
            deliveries: r.deliveries.len(),
            duplicate: r.duplicate,
        }
    }
}

/// Publishes an event to the account: it is checked (against its type's JSON Schema too, if it
/// has one), stored durably, and delivered to every subscribed endpoint. A repeated
/// `Idempotency-Key` with the same event (type, site, queue id and `data` as JSON) answers with
/// the original event (`duplicate: true`); with another event, 409 `idempotency_conflict`. Keys
/// are per account and kept as long as their event (the retention).
#[utoipa::path(post, path = "/v1/accounts/{account}/events", tag = "events", operation_id = "publishEvent",
    params(("account" = AccountId, Path, description = "The account id."),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters (else 422 `invalid_idempotency_key`); an event with a key already accepted for the account is not stored again: the same event answers with the original, another one with 409 `idempotency_conflict`.", example = "q_8842-done")),
    request_body(content = NewEvent, example = json!({"event": "rx.completed", "queueId": "q_8842", "data": {"patientId": "p_77", "din": "02242903"}})),
    responses((status = 202, description = "Accepted.", body = CreatedOut,
        example = json!({"id": "evt_01KB2Z6Q3V8M4J7X0R5T9W1C2D", "deliveries": 1, "duplicate": false})), CreateProblems),
    security(("adminKey" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
    headers: HeaderMap,
    Json(input): Json<NewEvent>,
) -> ApiResult<(StatusCode, Json<CreatedOut>)> {
    let header_key = headers.get("idempotency-key").map(HeaderValue::as_bytes);
    let event = input.with_header_key(header_key)?;
    let receipt = state.hookline.publish(&by, &account, event).await?;
    Ok((StatusCode::ACCEPTED, Json(receipt.into())))
}

/// The accepted events of a batch, in order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct BatchOut {
    /// One receipt per event, in the batch's order.
    data: Vec<CreatedOut>,
}

/// Publishes 1 to 100 events at once, all or nothing: every event is checked first, and one
/// refused event stores none of them (its problem's `detail` names its position); a batch that
/// would create more than 10,000 deliveries (`--max-batch-deliveries`) is refused with
/// `batch_too_large`; then every event is stored with all its deliveries in one atomic write, or
/// none is. Each event may carry its own `idempotencyKey`; one with the key of an earlier event
/// of the batch, or of an event accepted before, is that event's duplicate if it is the same
/// event, else the batch is refused with 409 `idempotency_conflict` naming its `index`.
#[utoipa::path(post, path = "/v1/accounts/{account}/events/batch", tag = "events", operation_id = "publishEvents",
    params(("account" = AccountId, Path, description = "The account id.")),
    request_body(content = Vec<NewEvent>, example = json!([{"event": "rx.completed", "queueId": "q_8842", "data": {"patientId": "p_77"}, "idempotencyKey": "q_8842-done"}])),
    responses((status = 202, description = "Accepted, in order.", body = BatchOut), BatchProblems),
    security(("adminKey" = [])))]
pub(crate) async fn create_batch(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
    Json(inputs): Json<Vec<NewEvent>>,
) -> ApiResult<(StatusCode, Json<BatchOut>)> {
    let receipts = state.hookline.publish_batch(&by, &account, inputs).await?;
    let data = receipts.into_iter().map(CreatedOut::from).collect();
    Ok((StatusCode::ACCEPTED, Json(BatchOut { data })))
}

/// Lists the account's events, newest first, filtered by type, site, queue id and time.
#[utoipa::path(get, path = "/v1/accounts/{account}/events", tag = "events", operation_id = "listEvents",
    params(("account" = AccountId, Path, description = "The account id."), EventListParams),
    responses((status = 200, description = "A page of events.", body = ListOut<Event>), ListProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
    List(query): List,
) -> ApiResult<Json<ListOut<Event>>> {
    let page = state.hookline.list_events(&by, &account, &query).await?;
    Ok(Json(ListOut::new(page, |e| e)))
}

/// One event, with its `data` as accepted.
#[utoipa::path(get, path = "/v1/accounts/{account}/events/{event}", tag = "events", operation_id = "getEvent",
    params(("account" = AccountId, Path, description = "The account id."), ("event" = EventId, Path, description = "The event id.")),
    responses((status = 200, description = "The event.", body = Event), GetProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, event)): Path<(String, String)>,
) -> ApiResult<Json<Event>> {
    Ok(Json(state.hookline.event(&by, &account, &event).await?))
}
