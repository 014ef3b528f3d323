//! The JSON API under `/v1`. Every handler parses the request, makes one call to the
//! [`Hookline`](hookline_core::service::Hookline) façade (which holds every rule) and renders
//! the answer.

use axum::extract::{FromRequest, FromRequestParts};
use hookline_core::model::Page;
use hookline_core::service::ListQuery;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::AppState;

mod accounts;
mod catalog;
mod deliveries;
mod endpoints;
mod events;
mod keys;
mod portal;

/// A JSON body whose rejections are problem documents.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(crate) struct Json<T>(pub(crate) T);

impl<T: Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// A JSON Merge Patch body (RFC 7396), `application/merge-patch+json` or `application/json`
/// (any `application/*+json`): a JSON object, read into the façade's patch type. A patch that
/// is not an object (which would replace the whole resource) is refused with `invalid_body`.
#[derive(Debug)]
pub(crate) struct MergePatch<T>(pub(crate) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for MergePatch<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<serde_json::Value>::from_request(req, state).await?;
        if !value.is_object() {
            return Err(ApiError::unprocessable(
                "invalid_body",
                "a merge patch is a JSON object of the fields to change",
            ));
        }
        serde_path_to_error::deserialize(value)
            .map(Self)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let detail = if path == "." {
                    inner.to_string()
                } else {
                    format!("{path}: {inner}")
                };
                ApiError::unprocessable("invalid_body", detail)
            })
    }
}

/// A raw request body whose rejections are problem documents.
#[derive(Debug)]
pub(crate) struct Body(pub(crate) axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        Ok(Self(axum::body::Bytes::from_request(req, state).await?))
    }
}

/// A query string whose rejections are problem documents.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct Query<T>(pub(crate) T);

/// The query string of every list route: paging and the filters of [`ListQuery`], a parameter
/// it does not know refused with `invalid_query` (each listing operation then refuses the
/// filters that are not its list's own, alike).
#[derive(Debug)]
pub(crate) struct List(pub(crate) ListQuery);

impl<S: Send + Sync> FromRequestParts<S> for List {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        let Query(q) = Query::<ListQuery>::from_request_parts(parts, state).await?;
        Ok(Self(q))
    }
}

/// Path parameters whose rejections are problem documents.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct Path<T>(pub(crate) T);

/// The query parameters of a list that takes no filter (documentation of [`List`]).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct PageParams {
    /// Rows at most, 1 to 250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    limit: Option<usize>,
    /// Where the previous page ended: the `nextCursor` of the page before.
    cursor: Option<String>,
}

/// The query parameters of the account's events (documentation of [`List`]).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct EventListParams {
    /// Only events of this type (`event` is accepted as its older name).
    event_type: Option<hookline_core::EventTypeName>,
    /// Only events of this site.
    site: Option<hookline_core::SiteId>,
    /// Only events with this queue id.
    #[param(min_length = 1, max_length = 256)]
    queue_id: Option<String>,
    /// Only events at or after this instant (RFC 3339).
    since: Option<hookline_core::Timestamp>,
    /// Only events before this instant (RFC 3339; after `since`).
    until: Option<hookline_core::Timestamp>,
    /// Rows at most, 1 to 250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    limit: Option<usize>,
    /// Where the previous page ended: the `nextCursor` of the page before.
    cursor: Option<String>,
}

/// The query parameters of the account's deliveries (documentation of [`List`]); the
/// deliveries of one event take all but `eventType`, those to one endpoint all but `endpoint`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct DeliveryListParams {
    /// Only deliveries in this state.
    status: Option<hookline_core::model::DeliveryStatus>,
    /// Only deliveries to this endpoint.
    endpoint: Option<hookline_core::EndpointId>,
    /// Only deliveries of events of this type.
    event_type: Option<hookline_core::EventTypeName>,
    /// Only deliveries created at or after this instant (RFC 3339).
    since: Option<hookline_core::Timestamp>,
    /// Only deliveries created before this instant (RFC 3339; after `since`).
    until: Option<hookline_core::Timestamp>,
    /// Rows at most, 1 to 250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    limit: Option<usize>,
    /// Where the previous page ended: the `nextCursor` of the page before.
    cursor: Option<String>,
}

/// The query parameters of the deliveries of one event.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct EventDeliveryListParams {
    /// Only deliveries in this state.
    status: Option<hookline_core::model::DeliveryStatus>,
    /// Only deliveries to this endpoint.
    endpoint: Option<hookline_core::EndpointId>,
    /// Only deliveries created at or after this instant (RFC 3339).
    since: Option<hookline_core::Timestamp>,
    /// Only deliveries created before this instant (RFC 3339; after `since`).
    until: Option<hookline_core::Timestamp>,
    /// Rows at most, 1 to 250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    limit: Option<usize>,
    /// Where the previous page ended: the `nextCursor` of the page before.
    cursor: Option<String>,
}

/// The query parameters of the deliveries to one endpoint.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct EndpointDeliveryListParams {
    /// Only deliveries in this state.
    status: Option<hookline_core::model::DeliveryStatus>,
    /// Only deliveries of events of this type.
    event_type: Option<hookline_core::EventTypeName>,
    /// Only deliveries created at or after this instant (RFC 3339).
    since: Option<hookline_core::Timestamp>,
    /// Only deliveries created before this instant (RFC 3339; after `since`).
    until: Option<hookline_core::Timestamp>,
    /// Rows at most, 1 to 250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    limit: Option<usize>,
    /// Where the previous page ended: the `nextCursor` of the page before.
    cursor: Option<String>,
}

/// The query parameters of a delivery's attempts.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct AttemptListParams {
    /// Only attempts that ended this way: `succeeded` (a 2xx answer) or `failed`.
    #[param(inline)]
    outcome: Option<hookline_core::model::AttemptOutcome>,
    /// Rows at most, 1 to 250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    limit: Option<usize>,
    /// Where the previous page ended: the `nextCursor` of the page before.
    cursor: Option<String>,
}

/// A page of a list, newest first: `{"data": [...], "nextCursor": "..."}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListOut<T> {
    /// The rows of this page.
    data: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    next_cursor: Option<String>,
}

impl<T> ListOut<T> {
    pub(crate) fn new<U>(page: Page<U>, map: impl FnMut(U) -> T) -> Self {
        Self {
            data: page.items.into_iter().map(map).collect(),
            next_cursor: page.next.map(|c| c.encode()),
        }
    }
}

/// The `/v1` routes, each with its OpenAPI operation.
pub fn routes(max_event_bytes: usize) -> OpenApiRouter<AppState> {
    let batch = OpenApiRouter::new()
        .routes(routes!(events::create_batch))
        .layer(axum::extract::DefaultBodyLimit::max(
            max_event_bytes.saturating_mul(16),
        ));
    OpenApiRouter::new()
        .routes(routes!(accounts::create, accounts::list))
        .routes(routes!(accounts::get, accounts::update, accounts::delete))
        .routes(routes!(keys::create_admin_key, keys::list_admin_keys))
        .routes(routes!(keys::revoke_admin_key))
        .routes(routes!(keys::create_key, keys::list_keys))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(keys::account_audit))
        .routes(routes!(keys::all_audit))
        .routes(routes!(portal::create))
        .routes(routes!(accounts::create_site, accounts::list_sites))
        .routes(routes!(
            accounts::get_site,
            accounts::update_site,
            accounts::delete_site
        ))
        .routes(routes!(catalog::create, catalog::list))
        .routes(routes!(catalog::get, catalog::update, catalog::delete))
        .routes(routes!(endpoints::create, endpoints::list))
        .routes(routes!(
            endpoints::get,
            endpoints::update,
            endpoints::delete
        ))
        .routes(routes!(endpoints::get_secret))
        .routes(routes!(endpoints::rotate_secret))
        .routes(routes!(endpoints::enable))
        .routes(routes!(endpoints::disable))
        .routes(routes!(endpoints::send_test))
        .routes(routes!(endpoints::recover))
        .routes(routes!(deliveries::endpoint_deliveries))
        .routes(routes!(events::create, events::list))
        .merge(batch)
        .routes(routes!(events::get))
        .routes(routes!(deliveries::event_deliveries))
        .routes(routes!(deliveries::get))
        .routes(routes!(deliveries::list))
        .routes(routes!(deliveries::attempts))
        .routes(routes!(deliveries::retry))
        .routes(routes!(deliveries::start_replay))
        .routes(routes!(deliveries::get_replay))
}
