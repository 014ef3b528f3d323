//! The event-type catalog.

use axum::extract::State;
use axum::http::StatusCode;
use hookline_core::model::EventType;
use hookline_core::service::{EventTypePatch, NewEventType, Paging};

use super::{Json, ListOut, Path, Query};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::state::AppState;

pub(crate) async fn create(
    State(state): State<AppState>,
    Caller(by): Caller,
    Json(body): Json<NewEventType>,
) -> ApiResult<(StatusCode, Json<EventType>)> {
    let et = state.hookline.create_event_type(&by, body).await?;
    Ok((StatusCode::CREATED, Json(et)))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Caller(by): Caller,
    Query(paging): Query<Paging>,
) -> ApiResult<Json<ListOut<EventType>>> {
    let page = state.hookline.list_event_types(&by, &paging).await?;
    Ok(Json(ListOut::new(page, |e| e)))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<EventType>> {
    Ok(Json(state.hookline.event_type(&by, &name).await?))
}

pub(crate) async fn update(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(name): Path<String>,
    Json(body): Json<EventTypePatch>,
) -> ApiResult<Json<EventType>> {
    Ok(Json(
        state.hookline.update_event_type(&by, &name, body).await?,
    ))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    state.hookline.delete_event_type(&by, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
