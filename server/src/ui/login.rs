//! Sign-in with the admin key, sign-out, and opening a portal link.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hookline_core::service::Actor;
use maud::html;
use serde::Deserialize;

use super::session::{OPERATOR_LIFETIME, PORTAL_LIFETIME, token};
use super::{
    CSRF_FIELD, LOGIN_COOKIE, Posted, SESSION_COOKIE, cookie, now, over_https, page, same_origin,
    set_cookie, start_page,
};
use crate::state::AppState;

fn login_page(token: &str, error: Option<&str>) -> maud::Markup {
    page(
        None,
        "Sign in",
        html! {
            h1 { "Sign in" }
            p.muted { "Operators sign in with the admin API key. Customers open the portal link their provider gives them." }
            form.stack method="post" action="/ui/login" {
                input type="hidden" name=(CSRF_FIELD) value=(token);
                label for="key" { "Admin API key"
                    input #key type="password" name="key" autocomplete="current-password" required autofocus
                        aria-describedby=[error.map(|_| "key-error")];
                }
                @if let Some(e) = error { p.field-error #key-error role="alert" { (e) } }
                div { button type="submit" { "Sign in" } }
            }
        },
    )
}

/// `GET /ui/login`: the form, with a fresh pre-sign-in CSRF cookie.
pub(super) async fn form(headers: HeaderMap) -> Response {
    let t = token();
    let cookie = set_cookie(LOGIN_COOKIE, &t, 3600, over_https(&headers));
    ([(header::SET_COOKIE, cookie)], login_page(&t, None)).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct SignIn {
    key: String,
    #[serde(rename = "_csrf")]
    csrf: String,
}

/// `POST /ui/login`: checks the origin, the double-submitted token and the throttle, then the key.
pub(super) async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Ok(form) = serde_html_form::from_bytes::<SignIn>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            login_page(&token(), Some("The form is malformed.")),
        )
            .into_response();
    };
    let expected = cookie(&headers, LOGIN_COOKIE);
    if !same_origin(&headers) || expected.as_deref() != Some(form.csrf.as_str()) {
        return (
            StatusCode::FORBIDDEN,
            login_page(
                &form.csrf,
                Some("The form's security token is missing or stale: reload the page and sign in again."),
            ),
        )
            .into_response();
    }
    let at = now(&state);
    if !state.ui.may_try_sign_in(at) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "60")],
            login_page(
                &form.csrf,
                Some("Too many failed sign-ins: wait a minute and try again."),
            ),
        )
            .into_response();
    }
    match state.hookline.authenticate(form.key.trim()).await {
        // An admin key (a read-only one opens a read-only operator session).
        Ok(Some(actor)) if actor.account().is_none() => {
            let s = state.ui.start(Actor::Admin, None, actor.is_read_only(), at);
            let secure = over_https(&headers);
            let max_age = OPERATOR_LIFETIME.as_secs() as i64;
            (
                StatusCode::SEE_OTHER,
                [
                    (
                        header::SET_COOKIE,
                        set_cookie(SESSION_COOKIE, &s.id, max_age, secure),
                    ),
                    (header::LOCATION, start_page(&s)),
                ],
            )
                .into_response()
        }
        Ok(_) => {
            state.ui.sign_in_failed(at);
            (
                StatusCode::UNAUTHORIZED,
                login_page(&form.csrf, Some("That is not the admin API key.")),
            )
                .into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            login_page(&form.csrf, Some(&format!("Sign-in failed: {e}"))),
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Nothing {}

/// `POST /ui/logout`: ends the session.
pub(super) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Posted<Nothing>, Response>,
) -> Response {
    // A read-only session may sign out too: its token is checked here instead.
    let session = match form {
        Ok(Posted(s, _)) => Some(s),
        Err(refusal) => {
            let live =
                cookie(&headers, SESSION_COOKIE).and_then(|id| state.ui.get(&id, now(&state)));
            match live {
                Some(s) if s.read_only && same_origin(&headers) => Some(s),
                _ => return refusal,
            }
        }
    };
    if let Some(s) = session {
        state.ui.end(&s.id);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, "", 0, over_https(&headers)),
            ),
            (header::LOCATION, "/ui/login".to_owned()),
        ],
    )
        .into_response()
}

/// `GET /ui/portal/{token}`: opens a portal link once and starts its session. The answer is a
/// page that moves on by itself (a same-site navigation, so the `SameSite=Strict` cookie goes
/// with it even when the link was opened from another site).
pub(super) async fn portal(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let Some(s) = state.ui.open_link(&token, now(&state)) else {
        return (
            StatusCode::GONE,
            page(
                None,
                "Link expired",
                html! {
                    h1 { "This link has expired or was already used" }
                    p { "Portal links work once and for a few minutes. Go back to the application that sent you here and open the webhooks page again to get a new one." }
                },
            ),
        )
            .into_response();
    };
    let to = start_page(&s);
    let max_age = PORTAL_LIFETIME.as_secs() as i64;
    (
        [(
            header::SET_COOKIE,
            set_cookie(SESSION_COOKIE, &s.id, max_age, over_https(&headers)),
        )],
        page(
            None,
            "Signed in",
            html! {
                meta http-equiv="refresh" content=(format!("0;url={to}"));
                h1 { "Signed in" }
                p { a #continue href=(to) { "Continue to your webhook endpoints" } }
            },
        ),
    )
        .into_response()
}
