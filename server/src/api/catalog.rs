//! The event-type catalog.

use axum::extract::State;
use axum::http::StatusCode;
use hookline_core::EventTypeName;
use hookline_core::model::EventType;
use hookline_core::service::{EventTypePatch, NewEventType};

use super::{Json, List, ListOut, MergePatch, PageParams, Path};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::openapi::{ADMIN, AUTH, GONE, JSON_BODY, PAGING, TEXT, WRITE};
use crate::problems;
use crate::state::AppState;

problems!(
    CreateProblems = [
        WRITE,
        AUTH,
        ADMIN,
        JSON_BODY,
        TEXT,
        &[
            (400, &["invalid_id"]),
            (409, &["event_type_exists"]),
            (422, &["invalid_schema"])
        ]
    ]
);
problems!(ListProblems = [AUTH, PAGING]);
problems!(
    GetProblems = [
        AUTH,
        &[(400, &["invalid_id"]), (404, &["event_type_not_found"])]
    ]
);
problems!(
    UpdateProblems = [
        WRITE,
        AUTH,
        ADMIN,
        JSON_BODY,
        TEXT,
        GONE,
        &[
            (400, &["invalid_id"]),
            (404, &["event_type_not_found"]),
            (422, &["invalid_schema"])
        ]
    ]
);
problems!(
    DeleteProblems = [
        WRITE,
        AUTH,
        ADMIN,
        GONE,
        &[(400, &["invalid_id"]), (404, &["event_type_not_found"])]
    ]
);

/// Adds an event type to the catalog.
#[utoipa::path(post, path = "/v1/event-types", tag = "event-types", operation_id = "createEventType",
    request_body(content = NewEventType, example = json!({"name": "rx.completed", "description": "The write succeeded"})),
    responses((status = 201, description = "The catalog entry.", body = EventType, example = json!({"name": "rx.completed", "description": "The write succeeded", "schema": null, "archived": false, "createdAt": "2026-11-25T15:40:55.123Z", "updatedAt": "2026-11-25T15:40:55.123Z"})), CreateProblems),
    security(("adminKey" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Caller(by): Caller,
    Json(body): Json<NewEventType>,
) -> ApiResult<(StatusCode, Json<EventType>)> {
    let et = state.hookline.create_event_type(&by, body).await?;
    Ok((StatusCode::CREATED, Json(et)))
}

/// Lists the catalog, newest first.
#[utoipa::path(get, path = "/v1/event-types", tag = "event-types", operation_id = "listEventTypes",
    params(PageParams),
    responses((status = 200, description = "A page of the catalog.", body = ListOut<EventType>), ListProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Caller(by): Caller,
    List(paging): List,
) -> ApiResult<Json<ListOut<EventType>>> {
    let page = state.hookline.list_event_types(&by, &paging).await?;
    Ok(Json(ListOut::new(page, |e| e)))
}

/// One catalog entry.
#[utoipa::path(get, path = "/v1/event-types/{name}", tag = "event-types", operation_id = "getEventType",
    params(("name" = EventTypeName, Path, description = "The event type name, e.g. `rx.completed`.")),
    responses((status = 200, description = "The catalog entry.", body = EventType), GetProblems),
    security(("adminKey" = []), ("accountKey" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<EventType>> {
    Ok(Json(state.hookline.event_type(&by, &name).await?))
}

/// Changes a catalog entry, a JSON Merge Patch: its description (`null` empties it), its schema
/// (checked as a JSON Schema; `null` removes it), archived or not (`null`: not archived).
#[utoipa::path(patch, path = "/v1/event-types/{name}", tag = "event-types", operation_id = "updateEventType",
    params(("name" = EventTypeName, Path, description = "The event type name, e.g. `rx.completed`.")),
    request_body(description = "A JSON Merge Patch (RFC 7396), sent as `application/merge-patch+json` or `application/json`: absent fields stay, `null` resets a field to its default.",
        content((EventTypePatch = "application/merge-patch+json", example = json!({"archived": true})), (EventTypePatch = "application/json"))),
    responses((status = 200, description = "The changed entry.", body = EventType), UpdateProblems),
    security(("adminKey" = [])))]
pub(crate) async fn update(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(name): Path<String>,
    MergePatch(body): MergePatch<EventTypePatch>,
) -> ApiResult<Json<EventType>> {
    Ok(Json(
        state.hookline.update_event_type(&by, &name, body).await?,
    ))
}

/// Removes a catalog entry.
#[utoipa::path(delete, path = "/v1/event-types/{name}", tag = "event-types", operation_id = "deleteEventType",
    params(("name" = EventTypeName, Path, description = "The event type name, e.g. `rx.completed`.")),
    responses((status = 204, description = "Removed."), DeleteProblems),
    security(("adminKey" = [])))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    state.hookline.delete_event_type(&by, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
