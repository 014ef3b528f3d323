//! The `Authorization: Bearer` extractor and the admin key at first start.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use hookline_core::service::{Actor, keys};
use hookline_core::store::Store;
use hookline_core::time::Timestamp;

use crate::error::ApiError;
use crate::state::AppState;

/// Makes sure an admin key exists: stores `configured` if given, else generates one when the
/// store has none. Returns a generated key, which the caller shows once.
pub async fn bootstrap_admin_key(
    store: &dyn Store,
    configured: Option<&str>,
) -> Result<Option<String>, ApiError> {
    Ok(keys::ensure_admin(store, configured, Timestamp::now()).await?)
}

/// The caller, as proven by its bearer key.
#[derive(Debug, Clone)]
pub struct Caller(pub Actor);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("send `Authorization: Bearer <key>`"))?;
        let key = header
            .to_str()
            .ok()
            .and_then(|v| {
                // The scheme is case-insensitive (RFC 9110 §11.1): `BEARER` counts too.
                let (scheme, key) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(key)
            })
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| ApiError::unauthorized("send `Authorization: Bearer <key>`"))?;
        match state.hookline.authenticate(key).await? {
            Some(actor) => Ok(Caller(actor)),
            None => Err(ApiError::unauthorized(
                "unknown API key (never issued, revoked or expired)",
            )),
        }
    }
}
