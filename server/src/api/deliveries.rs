//! Deliveries and their attempts.

use axum::extract::State;
use axum::http::StatusCode;
use hookline_core::model::{Attempt, Delivery};
use hookline_core::service::{NewReplay, ReplayJob};
use hookline_core::{AccountId, DeliveryId, EndpointId, EventId, ReplayId};

use super::{
    AttemptListParams, DeliveryListParams, EndpointDeliveryListParams, EventDeliveryListParams,
    Json, List, ListOut, Path,
};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::openapi::{ACCOUNT, AUTH, GONE, JSON_BODY, PAGING, WRITE};
use crate::problems;
use crate::state::AppState;

problems!(ListProblems = [AUTH, ACCOUNT, PAGING]);
problems!(EventListProblems = [AUTH, ACCOUNT, PAGING, &[(404, &["event_not_found"])]]);
problems!(EndpointListProblems = [AUTH, ACCOUNT, PAGING, &[(404, &["endpoint_not_found"])]]);
problems!(GetProblems = [AUTH, ACCOUNT, &[(404, &["delivery_not_found"])]]);
problems!(AttemptsProblems = [AUTH, ACCOUNT, PAGING, &[(404, &["delivery_not_found"])]]);
problems!(
    ReplayProblems = [
        WRITE,
        AUTH,
        ACCOUNT,
        JSON_BODY,
        &[
            (404, &["endpoint_not_found"]),
            (409, &["too_many_replays"]),
            (422, &["invalid_replay"])
        ]
    ]
);
problems!(ReplayGetProblems = [AUTH, ACCOUNT, &[(404, &["replay_not_found"])]]);

/// Lists the account's deliveries, newest first, filtered by state, endpoint, event type and
/// creation time.
#[utoipa::path(get, path = "/v1/accounts/{account}/deliveries", tag = "deliveries", operation_id = "listDeliveries",
    params(("account" = AccountId, Path, description = "The account id."), DeliveryListParams),
    responses((status = 200, description = "A page of deliveries.", body = ListOut<Delivery>), ListProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
    List(query): List,
) -> ApiResult<Json<ListOut<Delivery>>> {
    let page = state
        .hookline
        .list_deliveries(&by, &account, &query)
        .await?;
    Ok(Json(ListOut::new(page, |d| d)))
}
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
    params(("account" = AccountId, Path, description = "The account id."), ("event" = EventId, Path, description = "The event id."), EventDeliveryListParams),
    responses((status = 200, description = "A page of deliveries.", body = ListOut<Delivery>), EventListProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn event_deliveries(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, event)): Path<(String, String)>,
    List(query): List,
) -> ApiResult<Json<ListOut<Delivery>>> {
    let page = state
        .hookline
        .event_deliveries(&by, &account, &event, &query)
        .await?;
    Ok(Json(ListOut::new(page, |d| d)))
}

/// Lists the deliveries to one endpoint, newest first.
#[utoipa::path(get, path = "/v1/accounts/{account}/endpoints/{endpoint}/deliveries", tag = "deliveries", operation_id = "listEndpointDeliveries",
    params(("account" = AccountId, Path, description = "The account id."), ("endpoint" = EndpointId, Path, description = "The endpoint id."), EndpointDeliveryListParams),
    responses((status = 200, description = "A page of deliveries.", body = ListOut<Delivery>), EndpointListProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn endpoint_deliveries(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, endpoint)): Path<(String, String)>,
    List(query): List,
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

/// A delivery's attempts, newest first, filtered by outcome.
#[utoipa::path(get, path = "/v1/accounts/{account}/deliveries/{delivery}/attempts", tag = "deliveries", operation_id = "listAttempts",
    params(("account" = AccountId, Path, description = "The account id."), ("delivery" = DeliveryId, Path, description = "The delivery id."), AttemptListParams),
    responses((status = 200, description = "A page of attempts.", body = ListOut<Attempt>), AttemptsProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn attempts(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, delivery)): Path<(String, String)>,
    List(query): List,
) -> ApiResult<Json<ListOut<Attempt>>> {
    let page = state
        .hookline
        .attempts(&by, &account, &delivery, &query)
        .await?;
    Ok(Json(ListOut::new(page, |a| a)))
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

/// Re-queues the account's deliveries created in `[since, until)` (optionally only to one
/// endpoint, of some event types, in one state; succeeded ones too) as manual attempts, in a
/// background job that walks them newest first in batches of 250. Answers the job; read its
/// progress at `/v1/accounts/{account}/replay/{job}`. Jobs are kept by the process that runs
/// them: after a restart the job is unknown, and its last `reached` tells where to continue.
#[utoipa::path(post, path = "/v1/accounts/{account}/replay", tag = "deliveries", operation_id = "startReplay",
    params(("account" = AccountId, Path, description = "The account id.")),
    request_body(content = NewReplay, example = json!({"since": "2026-11-25T00:00:00Z", "until": "2026-11-26T00:00:00Z", "eventTypes": ["rx.completed"], "status": "failed"})),
    responses((status = 202, description = "The job, started.", body = ReplayJob), ReplayProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn start_replay(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(account): Path<String>,
    Json(body): Json<NewReplay>,
) -> ApiResult<(StatusCode, Json<ReplayJob>)> {
    let job = state.hookline.start_replay(&by, &account, body).await?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// A replay job and its progress.
#[utoipa::path(get, path = "/v1/accounts/{account}/replay/{job}", tag = "deliveries", operation_id = "getReplay",
    params(("account" = AccountId, Path, description = "The account id."), ("job" = ReplayId, Path, description = "The replay job id.")),
    responses((status = 200, description = "The job.", body = ReplayJob), ReplayGetProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn get_replay(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((account, job)): Path<(String, String)>,
) -> ApiResult<Json<ReplayJob>> {
    Ok(Json(state.hookline.replay(&by, &account, &job).await?))
}
