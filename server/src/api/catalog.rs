//! The event-type catalog.

use axum::extract::State;
use axum::http::StatusCode;
use hookline_core::Timestamp;
use hookline_core::model::EventType;
use serde::Deserialize;

use super::{Json, ListOut, Paging, Path, Query, check_len, event_type_name};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const MAX_DESCRIPTION: usize = 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateIn {
    name: String,
    #[serde(default)]
    description: String,
    schema: Option<serde_json::Value>,
    #[serde(default)]
    archived: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchIn {
    description: Option<String>,
    #[serde(default, with = "double_option")]
    schema: Option<Option<serde_json::Value>>,
    archived: Option<bool>,
}

/// `null` and absent differ in a PATCH: `null` clears, absent keeps.
pub(crate) mod double_option {
    use serde::{Deserialize, Deserializer};

    pub(crate) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

fn check_schema(schema: &Option<serde_json::Value>) -> Result<(), ApiError> {
    match schema {
        None | Some(serde_json::Value::Object(_)) | Some(serde_json::Value::Bool(_)) => Ok(()),
        Some(_) => Err(ApiError::unprocessable(
            "invalid_schema",
            "`schema` must be a JSON Schema object",
        )),
    }
}

pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateIn>,
) -> ApiResult<(StatusCode, Json<EventType>)> {
    caller.require_admin()?;
    let name = event_type_name(&body.name)?;
    check_len("description", &body.description, MAX_DESCRIPTION)?;
    check_schema(&body.schema)?;
    let now = Timestamp::now();
    let et = EventType {
        name,
        description: body.description,
        schema: body.schema,
        archived: body.archived,
        created_at: now,
        updated_at: now,
    };
    state
        .store()
        .create_event_type(&et)
        .await
        .map_err(|e| match e {
            hookline_core::store::StoreError::Conflict(_) => ApiError::conflict(
                "event_type_exists",
                format!("event type `{}` exists", et.name),
            ),
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(et)))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    Query(paging): Query<Paging>,
) -> ApiResult<Json<ListOut<EventType>>> {
    let page = state.store().list_event_types(&paging.request()?).await?;
    Ok(Json(ListOut::new(page, |e| e)))
}

async fn load(state: &AppState, raw: &str) -> ApiResult<EventType> {
    let name = event_type_name(raw)?;
    state.store().event_type(&name).await?.ok_or_else(|| {
        ApiError::not_found("event_type_not_found", format!("no event type `{name}`"))
    })
}

pub(crate) async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<EventType>> {
    Ok(Json(load(&state, &name).await?))
}

pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<PatchIn>,
) -> ApiResult<Json<EventType>> {
    caller.require_admin()?;
    let mut et = load(&state, &name).await?;
    if let Some(d) = body.description {
        check_len("description", &d, MAX_DESCRIPTION)?;
        et.description = d;
    }
    if let Some(schema) = body.schema {
        check_schema(&schema)?;
        et.schema = schema;
    }
    if let Some(a) = body.archived {
        et.archived = a;
    }
    et.updated_at = Timestamp::now();
    state.store().update_event_type(&et).await?;
    state.cache.event_types.invalidate(&et.name);
    Ok(Json(et))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    let et = load(&state, &name).await?;
    state.store().delete_event_type(&et.name).await?;
    state.cache.event_types.invalidate(&et.name);
    Ok(StatusCode::NO_CONTENT)
}
