//! The JSON API under `/v1`. Every handler parses the request, makes one call to the
//! [`Hookline`](hookline_core::service::Hookline) façade (which holds every rule) and renders
//! the answer.

use axum::extract::{FromRequest, FromRequestParts};
use hookline_core::model::Page;
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

/// Path parameters whose rejections are problem documents.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct Path<T>(pub(crate) T);

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
        .routes(routes!(accounts::create_key))
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
        .routes(routes!(deliveries::attempts))
        .routes(routes!(deliveries::retry))
}
