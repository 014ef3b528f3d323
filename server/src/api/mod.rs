//! The JSON API under `/v1`. Every handler parses the request, makes one call to the
//! [`Hookline`](hookline_core::service::Hookline) façade (which holds every rule) and renders
//! the answer.

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts};
use axum::routing::{get, post};
use hookline_core::model::Page;
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;

mod accounts;
mod catalog;
mod deliveries;
mod endpoints;
mod events;

/// A JSON body whose rejections are problem documents.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(crate) struct Json<T>(pub(crate) T);

impl<T: Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
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

/// A page of a list: `{"data": [...], "nextCursor": "..."}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListOut<T> {
    data: Vec<T>,
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

/// The `/v1` routes.
pub fn routes(max_event_bytes: usize) -> Router<AppState> {
    let acct = "/v1/accounts/{account}";
    Router::new()
        .route("/v1/accounts", post(accounts::create).get(accounts::list))
        .route(
            acct,
            get(accounts::get)
                .patch(accounts::update)
                .delete(accounts::delete),
        )
        .route(&format!("{acct}/keys"), post(accounts::create_key))
        .route(
            &format!("{acct}/sites"),
            post(accounts::create_site).get(accounts::list_sites),
        )
        .route(
            &format!("{acct}/sites/{{site}}"),
            get(accounts::get_site)
                .patch(accounts::update_site)
                .delete(accounts::delete_site),
        )
        .route("/v1/event-types", post(catalog::create).get(catalog::list))
        .route(
            "/v1/event-types/{name}",
            get(catalog::get)
                .patch(catalog::update)
                .delete(catalog::delete),
        )
        .route(
            &format!("{acct}/endpoints"),
            post(endpoints::create).get(endpoints::list),
        )
        .route(
            &format!("{acct}/endpoints/{{endpoint}}"),
            get(endpoints::get)
                .patch(endpoints::update)
                .delete(endpoints::delete),
        )
        .route(
            &format!("{acct}/endpoints/{{endpoint}}/secret"),
            get(endpoints::get_secret),
        )
        .route(
            &format!("{acct}/endpoints/{{endpoint}}/secret/rotate"),
            post(endpoints::rotate_secret),
        )
        .route(
            &format!("{acct}/endpoints/{{endpoint}}/enable"),
            post(endpoints::enable),
        )
        .route(
            &format!("{acct}/endpoints/{{endpoint}}/disable"),
            post(endpoints::disable),
        )
        .route(
            &format!("{acct}/endpoints/{{endpoint}}/test"),
            post(endpoints::send_test),
        )
        .route(
            &format!("{acct}/endpoints/{{endpoint}}/recover"),
            post(endpoints::recover),
        )
        .route(
            &format!("{acct}/endpoints/{{endpoint}}/deliveries"),
            get(deliveries::endpoint_deliveries),
        )
        .route(
            &format!("{acct}/events"),
            post(events::create).get(events::list),
        )
        .route(
            &format!("{acct}/events/batch"),
            post(events::create_batch).layer(axum::extract::DefaultBodyLimit::max(
                max_event_bytes.saturating_mul(16),
            )),
        )
        .route(&format!("{acct}/events/{{event}}"), get(events::get))
        .route(
            &format!("{acct}/events/{{event}}/deliveries"),
            get(deliveries::event_deliveries),
        )
        .route(
            &format!("{acct}/deliveries/{{delivery}}"),
            get(deliveries::get),
        )
        .route(
            &format!("{acct}/deliveries/{{delivery}}/attempts"),
            get(deliveries::attempts),
        )
        .route(
            &format!("{acct}/deliveries/{{delivery}}/retry"),
            post(deliveries::retry),
        )
}
