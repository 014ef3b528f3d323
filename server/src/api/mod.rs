//! The JSON API under `/v1`.

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts};
use axum::routing::{get, post};
use hookline_core::model::{Cursor, PageRequest};
use hookline_core::{AccountId, DeliveryId, EndpointId, EventId, EventTypeName, SiteId};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

mod accounts;
mod catalog;
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

/// Largest page size.
pub(crate) const MAX_LIMIT: usize = 250;
const DEFAULT_LIMIT: usize = 50;

/// `limit` and `cursor` of a list request.
#[derive(Debug, Deserialize)]
pub(crate) struct Paging {
    limit: Option<usize>,
    cursor: Option<String>,
}

impl Paging {
    pub(crate) fn request(&self) -> ApiResult<PageRequest> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::bad_request(
                "invalid_limit",
                format!("limit must be 1 to {MAX_LIMIT}"),
            ));
        }
        let after = match &self.cursor {
            None => None,
            Some(c) => Some(
                Cursor::decode(c)
                    .ok_or_else(|| ApiError::bad_request("invalid_cursor", "unknown cursor"))?,
            ),
        };
        Ok(PageRequest { limit, after })
    }
}

/// A page of a list: `{"data": [...], "nextCursor": "..."}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListOut<T> {
    data: Vec<T>,
    next_cursor: Option<String>,
}

impl<T> ListOut<T> {
    pub(crate) fn new<U>(page: hookline_core::model::Page<U>, map: impl FnMut(U) -> T) -> Self {
        Self {
            data: page.items.into_iter().map(map).collect(),
            next_cursor: page.next.map(|c| c.encode()),
        }
    }
}

fn invalid_id(e: hookline_core::id::InvalidId) -> ApiError {
    ApiError::bad_request("invalid_id", e.to_string())
}

pub(crate) fn account_id(s: &str) -> ApiResult<AccountId> {
    AccountId::parse(s).map_err(invalid_id)
}
pub(crate) fn site_id(s: &str) -> ApiResult<SiteId> {
    SiteId::parse(s).map_err(invalid_id)
}
pub(crate) fn event_type_name(s: &str) -> ApiResult<EventTypeName> {
    EventTypeName::parse(s).map_err(invalid_id)
}
pub(crate) fn endpoint_id(s: &str) -> ApiResult<EndpointId> {
    EndpointId::parse(s).map_err(invalid_id)
}
pub(crate) fn event_id(s: &str) -> ApiResult<EventId> {
    EventId::parse(s).map_err(invalid_id)
}
pub(crate) fn delivery_id(s: &str) -> ApiResult<DeliveryId> {
    DeliveryId::parse(s).map_err(invalid_id)
}

/// Checks a free-text field: its length, and no NUL characters (no store can keep them).
pub(crate) fn check_len(field: &str, value: &str, max: usize) -> ApiResult<()> {
    if value.contains('\0') {
        return Err(ApiError::unprocessable(
            "invalid_text",
            format!("`{field}` contains a NUL character"),
        ));
    }
    if value.chars().count() > max {
        return Err(ApiError::unprocessable(
            "field_too_long",
            format!("`{field}` is longer than {max} characters"),
        ));
    }
    Ok(())
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
            get(events::endpoint_deliveries),
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
            get(events::event_deliveries),
        )
        .route(
            &format!("{acct}/deliveries/{{delivery}}"),
            get(events::get_delivery),
        )
        .route(
            &format!("{acct}/deliveries/{{delivery}}/attempts"),
            get(events::attempts),
        )
        .route(
            &format!("{acct}/deliveries/{{delivery}}/retry"),
            post(events::retry),
        )
}
