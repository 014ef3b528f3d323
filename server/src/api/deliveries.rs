//! Deliveries and their attempts.

use axum::extract::State;
use axum::http::StatusCode;
use hookline_core::model::{Attempt, Delivery};
use hookline_core::service::DeliveryQuery;
use serde::Serialize;

use super::{Json, ListOut, Path, Query};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::state::AppState;

pub(crate) async fn event_deliveries(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, event)): Path<(String, String)>,
    Query(query): Query<DeliveryQuery>,
) -> ApiResult<Json<ListOut<Delivery>>> {
    let page = state
        .hookline
        .event_deliveries(&by, &account, &event, &query)
        .await?;
    Ok(Json(ListOut::new(page, |d| d)))
}

pub(crate) async fn endpoint_deliveries(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, endpoint)): Path<(String, String)>,
    Query(query): Query<DeliveryQuery>,
) -> ApiResult<Json<ListOut<Delivery>>> {
    let page = state
        .hookline
        .endpoint_deliveries(&by, &account, &endpoint, &query)
        .await?;
    Ok(Json(ListOut::new(page, |d| d)))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, delivery)): Path<(String, String)>,
) -> ApiResult<Json<Delivery>> {
    Ok(Json(
        state.hookline.delivery(&by, &account, &delivery).await?,
    ))
}

#[derive(Debug, Serialize)]
pub(crate) struct AttemptsOut {
    data: Vec<Attempt>,
}

pub(crate) async fn attempts(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, delivery)): Path<(String, String)>,
) -> ApiResult<Json<AttemptsOut>> {
    let data = state.hookline.attempts(&by, &account, &delivery).await?;
    Ok(Json(AttemptsOut { data }))
}

pub(crate) async fn retry(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, delivery)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    let d = state
        .hookline
        .retry_delivery(&by, &account, &delivery)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(d)))
}
