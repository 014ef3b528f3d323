//! Deliveries and their attempts.

use axum::extract::State;
use axum::http::StatusCode;
use hookline_core::model::{Attempt, Delivery};
use hookline_core::service::DeliveryQuery;
use hookline_core::{AccountId, DeliveryId, EndpointId, EventId};
use serde::Serialize;

use super::{Json, ListOut, Path, Query};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::openapi::{ACCOUNT, AUTH, GONE, PAGING, WRITE};
use crate::problems;
use crate::state::AppState;

problems!(EventListProblems = [AUTH, ACCOUNT, PAGING, &[(404, &["event_not_found"])]]);
problems!(EndpointListProblems = [AUTH, ACCOUNT, PAGING, &[(404, &["endpoint_not_found"])]]);
problems!(GetProblems = [AUTH, ACCOUNT, &[(404, &["delivery_not_found"])]]);
problems!(
    RetryProblems = [
        WRITE,
        AUTH,
        ACCOUNT,
        GONE,
        &[(404, &["delivery_not_found"])]
    ]
);

/// Lists the deliveries of one event, newest first.
#[utoipa::path(get, path = "/v1/accounts/{account}/events/{event}/deliveries", tag = "deliveries", operation_id = "listEventDeliveries",
    params(("account" = AccountId, Path, description = "The account id."), ("event" = EventId, Path, description = "The event id."), DeliveryQuery),
    responses((status = 200, description = "A page of deliveries.", body = ListOut<Delivery>), EventListProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
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

/// Lists the deliveries to one endpoint, newest first.
#[utoipa::path(get, path = "/v1/accounts/{account}/endpoints/{endpoint}/deliveries", tag = "deliveries", operation_id = "listEndpointDeliveries",
    params(("account" = AccountId, Path, description = "The account id."), ("endpoint" = EndpointId, Path, description = "The endpoint id."), DeliveryQuery),
    responses((status = 200, description = "A page of deliveries.", body = ListOut<Delivery>), EndpointListProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
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

/// One delivery.
#[utoipa::path(get, path = "/v1/accounts/{account}/deliveries/{delivery}", tag = "deliveries", operation_id = "getDelivery",
    params(("account" = AccountId, Path, description = "The account id."), ("delivery" = DeliveryId, Path, description = "The delivery id.")),
    responses((status = 200, description = "The delivery.", body = Delivery), GetProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, delivery)): Path<(String, String)>,
) -> ApiResult<Json<Delivery>> {
    Ok(Json(
        state.hookline.delivery(&by, &account, &delivery).await?,
    ))
}

/// A delivery's attempts, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AttemptsOut {
    /// Every attempt, oldest first.
    data: Vec<Attempt>,
}

/// A delivery's attempts, oldest first.
#[utoipa::path(get, path = "/v1/accounts/{account}/deliveries/{delivery}/attempts", tag = "deliveries", operation_id = "listAttempts",
    params(("account" = AccountId, Path, description = "The account id."), ("delivery" = DeliveryId, Path, description = "The delivery id.")),
    responses((status = 200, description = "The attempts.", body = AttemptsOut), GetProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn attempts(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, delivery)): Path<(String, String)>,
) -> ApiResult<Json<AttemptsOut>> {
    let data = state.hookline.attempts(&by, &account, &delivery).await?;
    Ok(Json(AttemptsOut { data }))
}

/// Makes a delivery pending and due now, as a manual attempt, whatever its state.
#[utoipa::path(post, path = "/v1/accounts/{account}/deliveries/{delivery}/retry", tag = "deliveries", operation_id = "retryDelivery",
    params(("account" = AccountId, Path, description = "The account id."), ("delivery" = DeliveryId, Path, description = "The delivery id.")),
    responses((status = 202, description = "The delivery, pending again.", body = Delivery), RetryProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
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
