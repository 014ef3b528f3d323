//! Events: publishing and looking them up.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use hookline_core::EventId;
use hookline_core::model::Event;
use hookline_core::service::{EventQuery, NewEvent};
use hookline_core::store::Receipt;
use serde::Serialize;

use super::{Json, ListOut, Path, Query};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::state::AppState;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreatedOut {
    id: EventId,
    deliveries: usize,
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

#[derive(Debug, Serialize)]
pub(crate) struct BatchOut {
    data: Vec<CreatedOut>,
}

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

pub(crate) async fn list(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
    Query(query): Query<EventQuery>,
) -> ApiResult<Json<ListOut<Event>>> {
    let page = state.hookline.list_events(&by, &account, query).await?;
    Ok(Json(ListOut::new(page, |e| e)))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, event)): Path<(String, String)>,
) -> ApiResult<Json<Event>> {
    Ok(Json(state.hookline.event(&by, &account, &event).await?))
}
