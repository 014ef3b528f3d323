//! The operator's pages: accounts (find, create), the event-type catalog and health.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use hookline_core::service::{EventTypePatch, ListQuery, NewAccount, NewEventType, ServiceError};
use maud::{Markup, html};
use serde::Deserialize;

use super::endpoints::{NoFields, next_link};
use super::session::Session;
use super::{
    Posted, UiResult, Viewer, csrf, empty, field_error, form_error, operator_only, see_other, time,
    viewer_page,
};
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/accounts", get(accounts).post(create_account))
        .route("/ui/catalog", get(catalog).post(create_type))
        .route("/ui/catalog/{name}/archive", post(archive))
        .route("/ui/catalog/{name}/restore", post(restore))
        .route("/ui/health", get(health))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct AccountsQuery {
    #[serde(default)]
    q: String,
    cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct AccountForm {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
}

async fn accounts_page(
    state: &AppState,
    s: &Session,
    q: &AccountsQuery,
    values: &AccountForm,
    err: Option<&ServiceError>,
) -> Result<Markup, super::UiError> {
    let mut paging = ListQuery::new().limit(50);
    if let Some(c) = &q.cursor {
        paging = paging.cursor(c.clone());
    }
    let wanted = q.q.trim();
    // An exact id goes straight to the account; otherwise the page lists accounts.
    let found = if wanted.is_empty() {
        None
    } else {
        state.hookline.account(&s.actor, wanted).await.ok()
    };
    let page = state.hookline.list_accounts(&s.actor, &paging).await?;
    Ok(html! {
        h1 { "Accounts" }
        form.filters method="get" action="/ui/accounts" role="search" {
            label for="q" { "Account id" input #q type="search" name="q" value=(q.q); }
            button type="submit" { "Find" }
        }
        @if !wanted.is_empty() {
            @match &found {
                Some(a) => p { "Found: " a href=(format!("/ui/accounts/{}/endpoints", a.id)) { code { (a.id) } " " (a.name) } },
                None => p.muted { "No account with the id " code { (wanted) } "." },
            }
        }
        @if page.items.is_empty() {
            (empty("No accounts yet. Create the first one below, then add its sites and endpoints."))
        } @else {
            table {
                thead { tr { th { "Id" } th { "Name" } th { "Created" } } }
                tbody { @for a in &page.items { tr {
                    td { a href=(format!("/ui/accounts/{}/endpoints", a.id)) { code { (a.id) } } }
                    td { (a.name) }
                    td { (time(a.created_at)) }
                } } }
            }
            (next_link("/ui/accounts?", page.next.map(|c| c.encode())))
        }
        h2 { "Create an account" }
        (form_error(err))
        form.stack method="post" action="/ui/accounts" {
            (csrf(s))
            label for="account-id" { "Id (letters, digits, _ and -)" input #account-id type="text" name="id" value=(values.id) required maxlength="64"; }
            (field_error(err, "id"))
            label for="account-name" { "Name" input #account-name type="text" name="name" value=(values.name); }
            (field_error(err, "name"))
            div { button type="submit" { "Create account" } }
        }
    })
}

async fn accounts(
    State(state): State<AppState>,
    Viewer(s): Viewer,
    Query(q): Query<AccountsQuery>,
) -> UiResult {
    operator_only(&s)?;
    let body = accounts_page(&state, &s, &q, &AccountForm::default(), None).await?;
    Ok(viewer_page(&s, None, "Accounts", body))
}

async fn create_account(
    State(state): State<AppState>,
    Posted(s, form): Posted<AccountForm>,
) -> UiResult {
    operator_only(&s)?;
    let mut input = NewAccount::new(form.id.trim());
    if !form.name.trim().is_empty() {
        input = input.name(form.name.trim());
    }
    match state.hookline.create_account(&s.actor, input).await {
        Ok(a) => Ok(see_other(&format!("/ui/accounts/{}/endpoints", a.id))),
        Err(
            e @ (ServiceError::Invalid { .. }
            | ServiceError::BadRequest { .. }
            | ServiceError::Conflict { .. }),
        ) => {
            let body =
                accounts_page(&state, &s, &AccountsQuery::default(), &form, Some(&e)).await?;
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                viewer_page(&s, None, "Accounts", body),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct TypeForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    schema: String,
}

async fn catalog_page(
    state: &AppState,
    s: &Session,
    values: &TypeForm,
    err: Option<&ServiceError>,
) -> Result<Markup, super::UiError> {
    let page = state
        .hookline
        .list_event_types(&s.actor, &ListQuery::new().limit(250))
        .await?;
    Ok(html! {
        h1 { "Event types" }
        @if page.items.is_empty() {
            (empty("The catalog is empty. Add the event types your application publishes; endpoints subscribe to them."))
        } @else {
            table {
                thead { tr { th { "Name" } th { "Description" } th { "Schema" } th { "State" } th {} } }
                tbody { @for t in &page.items { tr {
                    td { code { (t.name) } }
                    td { (t.description) }
                    td { @if t.schema.is_some() { "JSON Schema" } @else { span.muted { "none" } } }
                    td { @if t.archived { span.muted { "archived" } } @else { span.ok { "active" } } }
                    td {
                        @let action = if t.archived { "restore" } else { "archive" };
                        form.inline method="post" action=(format!("/ui/catalog/{}/{action}", t.name)) {
                            (csrf(s)) button type="submit" { @if t.archived { "Restore" } @else { "Archive" } }
                        }
                    }
                } } }
            }
        }
        h2 { "Add an event type" }
        (form_error(err))
        form.stack method="post" action="/ui/catalog" {
            (csrf(s))
            label for="type-name" { "Name (e.g. order.paid)" input #type-name type="text" name="name" value=(values.name) required maxlength="128"; }
            (field_error(err, "id"))
            label for="type-description" { "Description" input #type-description type="text" name="description" value=(values.description); }
            (field_error(err, "description"))
            label for="type-schema" { "JSON Schema of data (optional)" textarea #type-schema name="schema" rows="5" { (values.schema) } }
            (field_error(err, "schema"))
            div { button type="submit" { "Add event type" } }
        }
    })
}

async fn catalog(State(state): State<AppState>, Viewer(s): Viewer) -> UiResult {
    operator_only(&s)?;
    let body = catalog_page(&state, &s, &TypeForm::default(), None).await?;
    Ok(viewer_page(&s, None, "Event types", body))
}

async fn create_type(State(state): State<AppState>, Posted(s, form): Posted<TypeForm>) -> UiResult {
    operator_only(&s)?;
    let mut input = NewEventType::new(form.name.trim());
    if !form.description.trim().is_empty() {
        input = input.description(form.description.trim());
    }
    let result = if form.schema.trim().is_empty() {
        Ok(input)
    } else {
        serde_json::from_str(&form.schema)
            .map(|schema| input.schema(schema))
            .map_err(|e| ServiceError::Invalid {
                code: "invalid_schema",
                message: format!("the schema is not JSON: {e}"),
            })
    };
    let result = match result {
        Ok(input) => state.hookline.create_event_type(&s.actor, input).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Ok(see_other("/ui/catalog")),
        Err(
            e @ (ServiceError::Invalid { .. }
            | ServiceError::BadRequest { .. }
            | ServiceError::Conflict { .. }),
        ) => {
            let body = catalog_page(&state, &s, &form, Some(&e)).await?;
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                viewer_page(&s, None, "Event types", body),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

async fn archive(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted(s, _): Posted<NoFields>,
) -> UiResult {
    operator_only(&s)?;
    state
        .hookline
        .update_event_type(&s.actor, &name, EventTypePatch::new().archived(true))
        .await?;
    Ok(see_other("/ui/catalog"))
}

async fn restore(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Posted(s, _): Posted<NoFields>,
) -> UiResult {
    operator_only(&s)?;
    state
        .hookline
        .update_event_type(&s.actor, &name, EventTypePatch::new().archived(false))
        .await?;
    Ok(see_other("/ui/catalog"))
}

async fn health(State(state): State<AppState>, Viewer(s): Viewer) -> UiResult {
    operator_only(&s)?;
    let backlog = state
        .store()
        .backlog()
        .await
        .map_err(|e| super::UiError(e.into()))?;
    let body = html! {
        h1 { "Health" }
        dl.props {
            dt { "Pending deliveries" } dd #pending { (backlog.pending) }
            dt { "Oldest pending since" } dd { (super::time_opt(backlog.oldest_due)) }
        }
        p.muted { "Deliveries per minute and latencies are exported at " code { "/metrics" } " for Prometheus." }
    };
    Ok(viewer_page(&s, None, "Health", body))
}
