//! The dashboard and customer portal under `/ui/`: server-rendered HTML (maud templates compiled
//! into the binary), one vendored stylesheet and one small script (local times), no CDN.
//!
//! Every page works without JavaScript. Each handler parses the request, makes façade calls as
//! the session's [`Actor`](hookline_core::service::Actor) (the operator is the admin, a portal
//! session its account) and renders: the rules (validation, who may see what) are the façade's,
//! so a portal session of one account gets 404 for any URL of another.
//!
//! Security: the session cookie is `HttpOnly`, `SameSite=Strict`, `Path=/ui`, `Secure` when the
//! request came over https (`X-Forwarded-Proto: https`), and lives at most
//! [`OPERATOR_LIFETIME`](session::OPERATOR_LIFETIME) or [`PORTAL_LIFETIME`](session::PORTAL_LIFETIME);
//! every state-changing form carries the session's CSRF token and is refused when its `Origin`
//! (or `Referer`) names another origin; every answer carries
//! `Content-Security-Policy: default-src 'self'` (no inline script or style), `no-store` caching
//! and `X-Frame-Options: DENY`; failed sign-ins are throttled.

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use hookline_core::service::ServiceError;
use hookline_core::time::Timestamp;
use maud::{DOCTYPE, Markup, html};
use serde::de::DeserializeOwned;

use crate::state::AppState;

mod account;
mod charts;
mod endpoints;
mod events;
mod login;
mod operator;
pub mod session;

use session::Session;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "hl_session";
/// The pre-sign-in CSRF cookie's name (double submit on the sign-in form).
pub const LOGIN_COOKIE: &str = "hl_login";
/// The CSRF field of every form.
pub const CSRF_FIELD: &str = "_csrf";

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

/// The `/ui` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(home))
        .route("/ui/static/app.css", get(css))
        .route("/ui/static/app.js", get(js))
        .route("/ui/login", get(login::form).post(login::submit))
        .route("/ui/logout", post(login::logout))
        .route("/ui/portal/{token}", get(login::portal))
        .merge(operator::routes())
        .merge(account::routes())
        .merge(endpoints::routes())
        .merge(events::routes())
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        JS,
    )
        .into_response()
}

async fn home(session: Option<Viewer>) -> Response {
    match session {
        Some(Viewer(s)) => Redirect::to(&start_page(&s)).into_response(),
        None => Redirect::to("/ui/login").into_response(),
    }
}

/// Where a session lands after sign-in.
pub(crate) fn start_page(s: &Session) -> String {
    match &s.account {
        Some(a) => format!("/ui/accounts/{a}/endpoints"),
        None => "/ui/accounts".to_owned(),
    }
}

/// The current instant, from the façade's clock.
pub(crate) fn now(state: &AppState) -> Timestamp {
    state.dispatcher().clock().now()
}

/// A cookie value of the request.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| cookie::Cookie::parse(c.trim().to_owned()).ok())
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// Whether the request came over https (a TLS-terminating proxy says so).
pub(crate) fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value for `/ui`.
pub(crate) fn set_cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> String {
    let mut c = cookie::Cookie::build((name.to_owned(), value.to_owned()))
        .path("/ui")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(max_age_secs.max(0)));
    if secure {
        c = c.secure(true);
    }
    c.build().to_string()
}

/// The signed-in viewer of a page. Without a live session, pages redirect to the sign-in form.
#[derive(Debug, Clone)]
pub struct Viewer(pub Session);

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        cookie(&parts.headers, SESSION_COOKIE)
            .and_then(|id| state.ui.get(&id, now(state)))
            .map(Viewer)
            .ok_or_else(|| Redirect::to("/ui/login").into_response())
    }
}

impl axum::extract::OptionalFromRequestParts<AppState> for Viewer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <Self as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}

/// Whether the request's `Origin` (or, without one, its `Referer`) is this server. A request
/// with neither passes on its CSRF token alone.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let named = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    match named {
        None => true,
        Some(o) => url::Url::parse(o).is_ok_and(|u| {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}{port}", u.host_str().unwrap_or_default()) == host
        }),
    }
}

/// A state-changing form post: a live session that may change things, a same-origin request
/// and the session's CSRF token; then the form's fields as `T`.
#[derive(Debug)]
pub struct Posted<T>(pub Session, pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Viewer(session) = Viewer::from_request_parts(&mut parts, state).await?;
        if !same_origin(&parts.headers) {
            return Err(refused("The form was not sent from this site."));
        }
        if session.read_only {
            return Err(refused("This session is read-only."));
        }
        let bytes = axum::body::to_bytes(body, 1 << 20)
            .await
            .map_err(|_| refused("The form could not be read."))?;
        let fields: Vec<(String, String)> =
            serde_html_form::from_bytes(&bytes).map_err(|_| refused("The form is malformed."))?;
        let token = fields
            .iter()
            .find(|(k, _)| k == CSRF_FIELD)
            .map(|(_, v)| v.as_str());
        if token.is_none_or(|t| !constant_eq(t, &session.csrf)) {
            return Err(refused(
                "The form's security token is missing or stale: reload the page and try again.",
            ));
        }
        let value =
            serde_html_form::from_bytes(&bytes).map_err(|_| refused("The form is malformed."))?;
        Ok(Self(session, value))
    }
}

fn constant_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A 403 page for a refused form.
fn refused(why: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        page(
            None,
            "Refused",
            html! { h1 { "Refused" } p.error { (why) } p { a href="/ui/" { "Back" } } },
        ),
    )
        .into_response()
}

/// The hidden CSRF field of a form.
pub(crate) fn csrf(s: &Session) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(s.csrf); }
}

/// An error page for a façade refusal: 404 for anything of another account (or absent), the
/// code and message otherwise.
#[derive(Debug)]
pub struct UiError(pub ServiceError);

impl From<ServiceError> for UiError {
    fn from(e: ServiceError) -> Self {
        Self(e)
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            ServiceError::NotFound { .. } | ServiceError::Forbidden { .. } => StatusCode::NOT_FOUND,
            ServiceError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ServiceError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ServiceError::Conflict { .. } => StatusCode::CONFLICT,
            ServiceError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::warn!(error = %self.0, "dashboard page failed");
        }
        let (title, text) = if status == StatusCode::NOT_FOUND {
            ("Not found".to_owned(), "There is nothing here.".to_owned())
        } else {
            (self.0.code().to_owned(), self.0.to_string())
        };
        (
            status,
            page(
                None,
                &title,
                html! { h1 { (title) } p.error { (text) } p { a href="/ui/" { "Back to the start" } } },
            ),
        )
            .into_response()
    }
}

/// What handlers answer.
pub type UiResult = Result<Response, UiError>;

/// Refuses a viewer that is not the operator, as "not found".
pub(crate) fn operator_only(s: &Session) -> Result<(), UiError> {
    if s.is_operator() {
        Ok(())
    } else {
        Err(UiError(ServiceError::NotFound {
            code: "not_found",
            message: "not found".into(),
        }))
    }
}

/// A time: UTC in the page and on hover; the script shows it in the viewer's time zone.
pub(crate) fn time(t: Timestamp) -> Markup {
    let utc = t.to_rfc3339();
    html! { time datetime=(utc) title=(format!("{utc} (UTC)")) { (utc) } }
}

/// An optional time, or a dash.
pub(crate) fn time_opt(t: Option<Timestamp>) -> Markup {
    match t {
        Some(t) => time(t),
        None => html! { span.muted { "—" } },
    }
}

/// The account navigation.
fn account_nav(account: &str) -> Markup {
    html! {
        a href=(format!("/ui/accounts/{account}/endpoints")) { "Endpoints" }
        a href=(format!("/ui/accounts/{account}/events")) { "Events" }
        a href=(format!("/ui/accounts/{account}/sites")) { "Sites" }
        a href=(format!("/ui/accounts/{account}/keys")) { "API keys" }
    }
}

/// The page layout around `body`, with the navigation for `viewer`.
pub(crate) fn page(viewer: Option<(&Session, Option<&str>)>, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Hookline" }
                link rel="stylesheet" href="/ui/static/app.css";
                script src="/ui/static/app.js" defer {}
            }
            body {
                header {
                    a.brand href="/ui/" { "Hookline" }
                    @if let Some((s, account)) = viewer {
                        nav aria-label="Main" {
                            @if s.is_operator() {
                                a href="/ui/accounts" { "Accounts" }
                                a href="/ui/catalog" { "Event types" }
                                a href="/ui/health" { "Health" }
                            }
                            @if let Some(a) = account.or(s.account.as_ref().map(|a| a.as_str())) {
                                span.sep { "·" }
                                strong { (a) }
                                (account_nav(a))
                            }
                        }
                        form.logout method="post" action="/ui/logout" {
                            (csrf(s))
                            @if s.read_only { span.badge { "read-only" } }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page for a signed-in viewer, in an account or not.
pub(crate) fn viewer_page(
    s: &Session,
    account: Option<&str>,
    title: &str,
    body: Markup,
) -> Response {
    page(Some((s, account)), title, body).into_response()
}

/// A field's validation error, when the façade's refusal concerns `field`.
pub(crate) fn field_error(err: Option<&ServiceError>, field: &str) -> Markup {
    match err {
        Some(e) if error_field(e) == field => html! {
            p.field-error id=(format!("{field}-error")) role="alert" {
                code { (e.code()) } " " (e.to_string())
            }
        },
        _ => html! {},
    }
}

/// Which form field a façade refusal concerns (`form` when none in particular).
pub(crate) fn error_field(e: &ServiceError) -> &'static str {
    let text = e.to_string();
    match e.code() {
        "invalid_url" | "insecure_url" | "forbidden_address" => "url",
        "unknown_event_type" | "event_type_archived" => "eventTypes",
        "unknown_site" => "sites",
        "invalid_limit" if text.contains("rateLimit") => "rateLimit",
        "invalid_limit" if text.contains("maxConcurrency") => "maxConcurrency",
        "invalid_header" | "reserved_header" => "headers",
        "invalid_secret" => "secret",
        "invalid_schema" => "schema",
        "invalid_id" | "account_exists" | "site_exists" | "event_type_exists" => "id",
        "field_too_long" | "invalid_text" if text.contains("description") => "description",
        "field_too_long" | "invalid_text" if text.contains("name") => "name",
        _ => "form",
    }
}

/// A form-level error box for refusals that concern no one field.
pub(crate) fn form_error(err: Option<&ServiceError>) -> Markup {
    match err {
        Some(e) if error_field(e) == "form" => html! {
            p.field-error role="alert" { code { (e.code()) } " " (e.to_string()) }
        },
        _ => html! {},
    }
}

/// A 303 to `to`.
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Pretty-printed JSON of raw JSON text.
pub(crate) fn pretty(raw: &str) -> String {
    serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| raw.to_owned())
}

/// An empty-state box.
pub(crate) fn empty(text: &str) -> Markup {
    html! { p.empty { (text) } }
}
