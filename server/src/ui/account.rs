//! An account's sites and API keys.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use hookline_core::service::{ListQuery, NewKey, NewSite, ServiceError};
use maud::{Markup, html};
use serde::Deserialize;

use super::endpoints::NoFields;
use super::session::Session;
use super::{Posted, UiResult, Viewer, csrf, empty, field_error, form_error, time, viewer_page};
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/accounts/{account}/sites", get(sites).post(create_site))
        .route("/ui/accounts/{account}/keys", get(keys).post(create_key))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct SiteForm {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
}

async fn sites_page(
    state: &AppState,
    s: &Session,
    account: &str,
    values: &SiteForm,
    err: Option<&ServiceError>,
) -> Result<Markup, super::UiError> {
    let list = state
        .hookline
        .list_sites(&s.actor, account, &ListQuery::new().limit(250))
        .await?;
    Ok(html! {
        h1 { "Sites" }
        @if list.items.is_empty() {
            (empty("No sites. Banner and multi-site accounts add one site per store; endpoints can then take all sites or chosen ones."))
        } @else {
            table {
                thead { tr { th { "Id" } th { "Name" } th { "Created" } } }
                tbody { @for site in &list.items { tr {
                    td { code { (site.id) } } td { (site.name) } td { (time(site.created_at)) }
                } } }
            }
        }
        @if !s.read_only && s.site.is_none() {
            h2 { "Add a site" }
            (form_error(err))
            form.stack method="post" action=(format!("/ui/accounts/{account}/sites")) {
                (csrf(s))
                label for="site-id" { "Id (letters, digits, _ and -)" input #site-id type="text" name="id" value=(values.id) required maxlength="64"; }
                (field_error(err, "id"))
                label for="site-name" { "Name" input #site-name type="text" name="name" value=(values.name); }
                (field_error(err, "name"))
                div { button type="submit" { "Add site" } }
            }
        }
    })
}

async fn sites(
    State(state): State<AppState>,
    Viewer(s): Viewer,
    Path(account): Path<String>,
) -> UiResult {
    let body = sites_page(&state, &s, &account, &SiteForm::default(), None).await?;
    Ok(viewer_page(&s, Some(&account), "Sites", body))
}

async fn create_site(
    State(state): State<AppState>,
    Path(account): Path<String>,
    Posted(s, form): Posted<SiteForm>,
) -> UiResult {
    if s.site.is_some() {
        return Err(super::UiError(ServiceError::NotFound {
            code: "not_found",
            message: "not found".into(),
        }));
    }
    let mut input = NewSite::new(form.id.trim());
    if !form.name.trim().is_empty() {
        input = input.name(form.name.trim());
    }
    match state.hookline.create_site(&s.actor, &account, input).await {
        Ok(_) => Ok(super::see_other(&format!("/ui/accounts/{account}/sites"))),
        Err(
            e @ (ServiceError::Invalid { .. }
            | ServiceError::BadRequest { .. }
            | ServiceError::Conflict { .. }),
        ) => {
            let body = sites_page(&state, &s, &account, &form, Some(&e)).await?;
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                viewer_page(&s, Some(&account), "Sites", body),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

fn keys_body(s: &Session, account: &str, issued: Option<(&str, &str)>) -> Markup {
    html! {
        h1 { "API keys" }
        @if let Some((key, prefix)) = issued {
            div.notice role="status" {
                p { "New key " code { (prefix) } "… — copy it now, it is shown only this once:" }
                pre.secret #new-key { (key) }
            }
        }
        p { "An account key reaches this account's endpoints, events and deliveries through the API (" code { "Authorization: Bearer hk_…" } "). Keys are stored hashed: a lost key cannot be shown again, issue a new one." }
        @if s.is_operator() {
            form.inline method="post" action=(format!("/ui/accounts/{account}/keys")) {
                (csrf(s)) button #create-key type="submit" { "Issue a new key" }
            }
        } @else {
            p.muted { "Keys are issued by the operator." }
        }
    }
}

async fn keys(
    State(state): State<AppState>,
    Viewer(s): Viewer,
    Path(account): Path<String>,
) -> UiResult {
    state.hookline.account(&s.actor, &account).await?;
    Ok(viewer_page(
        &s,
        Some(&account),
        "API keys",
        keys_body(&s, &account, None),
    ))
}

async fn create_key(
    State(state): State<AppState>,
    Path(account): Path<String>,
    Posted(s, _): Posted<NoFields>,
) -> UiResult {
    let key = state
        .hookline
        .create_key(&s.actor, Some(&account), NewKey::new())
        .await?;
    Ok(viewer_page(
        &s,
        Some(&account),
        "API keys",
        keys_body(&s, &account, Some((&key.key, &key.details.prefix))),
    ))
}
