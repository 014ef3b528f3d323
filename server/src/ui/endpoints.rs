//! Endpoints of an account: list, create, edit, enable/disable, delete, secrets, test events,
//! recovery, and the endpoint's detail with its recent deliveries.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use hookline_core::model::{Delivery, Endpoint, Page};
use hookline_core::service::{EndpointPatch, ListQuery, NewEndpoint, SecretRotation, ServiceError};
use hookline_core::time::Timestamp;
use maud::{Markup, html};
use serde::Deserialize;

use super::session::Session;
use super::{
    Posted, UiError, UiResult, Viewer, csrf, empty, field_error, form_error, see_other, time,
    time_opt, viewer_page,
};
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/accounts/{account}/endpoints", get(list).post(create))
        .route("/ui/accounts/{account}/endpoints/new", get(new_form))
        .route("/ui/accounts/{account}/endpoints/{endpoint}", get(detail))
        .route(
            "/ui/accounts/{account}/endpoints/{endpoint}/edit",
            get(edit_form).post(edit),
        )
        .route(
            "/ui/accounts/{account}/endpoints/{endpoint}/delete",
            get(delete_form).post(delete),
        )
        .route(
            "/ui/accounts/{account}/endpoints/{endpoint}/enable",
            post(enable),
        )
        .route(
            "/ui/accounts/{account}/endpoints/{endpoint}/disable",
            post(disable),
        )
        .route(
            "/ui/accounts/{account}/endpoints/{endpoint}/rotate",
            post(rotate),
        )
        .route(
            "/ui/accounts/{account}/endpoints/{endpoint}/test",
            post(test),
        )
        .route(
            "/ui/accounts/{account}/endpoints/{endpoint}/recover",
            post(recover),
        )
}

fn base(account: &str) -> String {
    format!("/ui/accounts/{account}/endpoints")
}

/// Whether a site-scoped portal session may see `ep`: only endpoints that name its site.
fn in_scope(s: &Session, ep: &Endpoint) -> bool {
    match &s.site {
        Some(site) => ep.sites.contains(site),
        None => true,
    }
}

fn not_found() -> UiError {
    UiError(ServiceError::NotFound {
        code: "endpoint_not_found",
        message: "not found".into(),
    })
}

/// One endpoint the session may see.
async fn load(
    state: &AppState,
    s: &Session,
    account: &str,
    endpoint: &str,
) -> Result<Endpoint, UiError> {
    let ep = state.hookline.endpoint(&s.actor, account, endpoint).await?;
    if in_scope(s, &ep) {
        Ok(ep)
    } else {
        Err(not_found())
    }
}

fn state_cell(ep: &Endpoint) -> Markup {
    html! {
        @if ep.enabled {
            span.ok { "Enabled" }
        } @else {
            span.bad { "Disabled" }
            @if let Some(r) = &ep.disabled_reason { br; span.muted { (r) } }
        }
        @if let Some(since) = ep.failing_since() {
            br; span.warn { "Failing since " (time(since)) }
        }
    }
}

fn scope_text(ep: &Endpoint) -> Markup {
    html! {
        @if ep.sites.is_empty() { "All sites (shared)" }
        @else { @for (i, s) in ep.sites.iter().enumerate() { @if i > 0 { ", " } code { (s) } } }
    }
}

fn types_text(ep: &Endpoint) -> Markup {
    html! {
        @if ep.event_types.is_empty() { "Every event type" }
        @else { @for (i, t) in ep.event_types.iter().enumerate() { @if i > 0 { ", " } code { (t) } } }
    }
}

async fn list(
    State(state): State<AppState>,
    Viewer(s): Viewer,
    Path(account): Path<String>,
    Query(paging): Query<ListQuery>,
) -> UiResult {
    let page = state
        .hookline
        .list_endpoints(&s.actor, &account, &paging)
        .await?;
    let mut rows = Vec::new();
    for ep in page.items.into_iter().filter(|ep| in_scope(&s, ep)) {
        // The newest delivery's last attempt: one indexed row per endpoint.
        let last = state
            .hookline
            .endpoint_deliveries(
                &s.actor,
                &account,
                ep.id.as_str(),
                &ListQuery::new().limit(1),
            )
            .await?
            .items
            .into_iter()
            .next();
        let hourly = state
            .hookline
            .endpoint_hourly(&s.actor, &account, ep.id.as_str(), super::charts::HOURS)
            .await?;
        rows.push((ep, last, super::charts::success_rate(&hourly)));
    }
    let body = html! {
        h1 { "Endpoints" }
        @if !s.read_only {
            div.actions { a href=(format!("{}/new", base(&account))) { "New endpoint" } }
        }
        @if rows.is_empty() {
            (empty(if s.read_only {
                "No endpoints yet. Ask the account's administrator to add one."
            } else {
                "No endpoints yet. Add one with “New endpoint”: give the URL that should receive the events, then send it a test event."
            }))
        } @else {
            table {
                thead { tr { th { "URL" } th { "State" } th { "Event types" } th { "Sites" } th { "Success (24 h)" } th { "Last delivery" } } }
                tbody {
                    @for (ep, last, rate) in &rows {
                        tr {
                            td {
                                a href=(format!("{}/{}", base(&account), ep.id)) { (ep.url) }
                                @if let Some(d) = &ep.description { br; span.muted { (d) } }
                            }
                            td { (state_cell(ep)) }
                            td { (types_text(ep)) }
                            td { (scope_text(ep)) }
                            td { @match rate { Some(r) => (format!("{r:.1} %")), None => span.muted { "no attempts" } } }
                            td {
                                @match last {
                                    Some(d) => { (status_badge(d)) " " (time_opt(d.last_attempt_at.or(Some(d.created_at)))) }
                                    None => span.muted { "none yet" },
                                }
                            }
                        }
                    }
                }
            }
            (next_link(&format!("{}?", base(&account)), page.next.map(|c| c.encode())))
        }
    };
    Ok(viewer_page(&s, Some(&account), "Endpoints", body))
}

/// A link to the next page, when there is one.
pub(super) fn next_link(prefix: &str, next: Option<String>) -> Markup {
    html! {
        @if let Some(c) = next {
            p { a rel="next" href=(format!("{prefix}cursor={}", urlencode(&c))) { "Older →" } }
        }
    }
}

pub(super) fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub(super) fn status_badge(d: &Delivery) -> Markup {
    let st = d.status.as_str();
    let class = match st {
        "succeeded" => "ok",
        "failed" | "cancelled" => "bad",
        _ => "warn",
    };
    html! { span class=(class) { (st) } }
}

/// The form's fields, as typed.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EndpointForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    event_types: Vec<String>,
    /// `all` or `chosen`.
    #[serde(default)]
    scope: String,
    #[serde(default)]
    sites: Vec<String>,
    #[serde(default)]
    rate_limit: String,
    #[serde(default)]
    max_concurrency: String,
    #[serde(default)]
    ordered: Option<String>,
}

impl EndpointForm {
    fn of(ep: &Endpoint) -> Self {
        Self {
            url: ep.url.clone(),
            description: ep.description.clone().unwrap_or_default(),
            event_types: ep.event_types.iter().map(|t| t.to_string()).collect(),
            scope: if ep.sites.is_empty() { "all" } else { "chosen" }.into(),
            sites: ep.sites.iter().map(|s| s.to_string()).collect(),
            rate_limit: ep.rate_limit.map(|r| r.to_string()).unwrap_or_default(),
            max_concurrency: ep
                .max_concurrency
                .map(|r| r.to_string())
                .unwrap_or_default(),
            ordered: ep.ordered.then(|| "on".into()),
        }
    }

    /// The sites as the session may set them: a site session's own site only.
    fn sites(&self, s: &Session) -> Vec<String> {
        match &s.site {
            Some(site) => vec![site.to_string()],
            None if self.scope == "chosen" => self.sites.clone(),
            None => Vec::new(),
        }
    }

    fn limit(field: &'static str, text: &str) -> Result<Option<u32>, ServiceError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| ServiceError::Invalid {
            code: "invalid_limit",
            message: format!("{field} must be a whole number from 1"),
        })
    }

    fn description(&self) -> Option<String> {
        Some(self.description.trim().to_owned()).filter(|d| !d.is_empty())
    }

    fn new_endpoint(&self, s: &Session) -> Result<NewEndpoint, ServiceError> {
        let mut ep = NewEndpoint::new(self.url.trim())
            .event_types(self.event_types.clone())
            .sites(self.sites(s))
            .ordered(self.ordered.is_some());
        if let Some(d) = self.description() {
            ep = ep.description(d);
        }
        if let Some(r) = Self::limit("rateLimit", &self.rate_limit)? {
            ep = ep.rate_limit(r);
        }
        if let Some(c) = Self::limit("maxConcurrency", &self.max_concurrency)? {
            ep = ep.max_concurrency(c);
        }
        Ok(ep)
    }

    fn patch(&self, s: &Session) -> Result<EndpointPatch, ServiceError> {
        Ok(EndpointPatch::new()
            .url(self.url.trim())
            .description(self.description())
            .event_types(self.event_types.clone())
            .sites(self.sites(s))
            .rate_limit(Self::limit("rateLimit", &self.rate_limit)?)
            .max_concurrency(Self::limit("maxConcurrency", &self.max_concurrency)?)
            .ordered(self.ordered.is_some()))
    }
}

/// The create/edit form, with the catalog's event types and the account's sites to pick from.
async fn endpoint_form(
    state: &AppState,
    s: &Session,
    account: &str,
    action: &str,
    values: &EndpointForm,
    err: Option<&ServiceError>,
) -> Result<Markup, UiError> {
    let all = ListQuery::new().limit(250);
    let types = state.hookline.list_event_types(&s.actor, &all).await?.items;
    let sites = state
        .hookline
        .list_sites(&s.actor, account, &all)
        .await?
        .items;
    let chosen = values.scope == "chosen";
    Ok(html! {
        (form_error(err))
        form.stack method="post" action=(action) {
            (csrf(s))
            label for="url" { "URL"
                input #url type="url" name="url" value=(values.url) required placeholder="https://example.com/webhooks";
            }
            (field_error(err, "url"))
            label for="description" { "Description"
                input #description type="text" name="description" value=(values.description) maxlength="1024";
            }
            (field_error(err, "description"))
            fieldset {
                legend { "Event types (none ticked: every type)" }
                @if types.is_empty() { p.muted { "The catalog is empty: the operator adds event types." } }
                @for t in types.iter().filter(|t| !t.archived || values.event_types.contains(&t.name.to_string())) {
                    label.check {
                        input type="checkbox" name="eventTypes" value=(t.name)
                            checked[values.event_types.contains(&t.name.to_string())];
                        code { (t.name) } @if !t.description.is_empty() { span.muted { " " (t.description) } }
                    }
                }
            }
            (field_error(err, "eventTypes"))
            @if let Some(site) = &s.site {
                p { "Site: " code { (site) } " (this portal session's site)" }
            } @else {
                fieldset {
                    legend { "Scope" }
                    label.check { input type="radio" name="scope" value="all" checked[!chosen]; "All sites (shared endpoint: every event of the account)" }
                    label.check { input type="radio" name="scope" value="chosen" checked[chosen]; "Only the sites ticked below" }
                    @if sites.is_empty() { p.muted { "The account has no sites." } }
                    @for site in &sites {
                        label.check {
                            input type="checkbox" name="sites" value=(site.id) checked[values.sites.contains(&site.id.to_string())];
                            code { (site.id) } " " (site.name)
                        }
                    }
                }
                (field_error(err, "sites"))
            }
            label for="rateLimit" { "Rate limit (requests per second, empty: none)"
                input #rateLimit type="number" min="1" name="rateLimit" value=(values.rate_limit);
            }
            (field_error(err, "rateLimit"))
            label for="maxConcurrency" { "Max concurrency (requests in flight, empty: none)"
                input #maxConcurrency type="number" min="1" name="maxConcurrency" value=(values.max_concurrency);
            }
            (field_error(err, "maxConcurrency"))
            label.check { input #ordered type="checkbox" name="ordered" checked[values.ordered.is_some()]; "Ordered: deliver events with the same queueId one after another" }
            div { button type="submit" { "Save endpoint" } }
        }
    })
}

fn writable(s: &Session) -> Result<(), UiError> {
    if s.read_only {
        Err(not_found())
    } else {
        Ok(())
    }
}

async fn new_form(
    State(state): State<AppState>,
    Viewer(s): Viewer,
    Path(account): Path<String>,
) -> UiResult {
    writable(&s)?;
    state.hookline.account(&s.actor, &account).await?;
    let values = EndpointForm {
        scope: "all".into(),
        ..EndpointForm::default()
    };
    let form = endpoint_form(&state, &s, &account, &base(&account), &values, None).await?;
    Ok(viewer_page(
        &s,
        Some(&account),
        "New endpoint",
        html! { h1 { "New endpoint" } (form) },
    ))
}

async fn create(
    State(state): State<AppState>,
    Path(account): Path<String>,
    Posted(s, form): Posted<EndpointForm>,
) -> UiResult {
    let result = match form.new_endpoint(&s) {
        Ok(input) => {
            state
                .hookline
                .create_endpoint(&s.actor, &account, input)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(ep) => Ok(see_other(&format!("{}/{}", base(&account), ep.id))),
        Err(e @ (ServiceError::Invalid { .. } | ServiceError::BadRequest { .. })) => {
            let html =
                endpoint_form(&state, &s, &account, &base(&account), &form, Some(&e)).await?;
            let page = viewer_page(
                &s,
                Some(&account),
                "New endpoint",
                html! { h1 { "New endpoint" } (html) },
            );
            Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

async fn edit_form(
    State(state): State<AppState>,
    Viewer(s): Viewer,
    Path((account, endpoint)): Path<(String, String)>,
) -> UiResult {
    writable(&s)?;
    let ep = load(&state, &s, &account, &endpoint).await?;
    let action = format!("{}/{}/edit", base(&account), ep.id);
    let form = endpoint_form(&state, &s, &account, &action, &EndpointForm::of(&ep), None).await?;
    Ok(viewer_page(
        &s,
        Some(&account),
        "Edit endpoint",
        html! { h1 { "Edit endpoint" } (form) },
    ))
}

async fn edit(
    State(state): State<AppState>,
    Path((account, endpoint)): Path<(String, String)>,
    Posted(s, form): Posted<EndpointForm>,
) -> UiResult {
    let ep = load(&state, &s, &account, &endpoint).await?;
    let result = match form.patch(&s) {
        Ok(p) => {
            state
                .hookline
                .update_endpoint(&s.actor, &account, ep.id.as_str(), p)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(ep) => Ok(see_other(&format!("{}/{}", base(&account), ep.id))),
        Err(e @ (ServiceError::Invalid { .. } | ServiceError::BadRequest { .. })) => {
            let action = format!("{}/{}/edit", base(&account), ep.id);
            let html = endpoint_form(&state, &s, &account, &action, &form, Some(&e)).await?;
            let page = viewer_page(
                &s,
                Some(&account),
                "Edit endpoint",
                html! { h1 { "Edit endpoint" } (html) },
            );
            Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct NoFields {}

async fn delete_form(
    State(state): State<AppState>,
    Viewer(s): Viewer,
    Path((account, endpoint)): Path<(String, String)>,
) -> UiResult {
    writable(&s)?;
    let ep = load(&state, &s, &account, &endpoint).await?;
    let body = html! {
        h1 { "Delete endpoint?" }
        p { "Deleting " code { (ep.url) } " cancels its pending deliveries. This cannot be undone." }
        form.inline method="post" action=(format!("{}/{}/delete", base(&account), ep.id)) {
            (csrf(&s)) button.danger type="submit" { "Delete endpoint" }
        }
        " " a href=(format!("{}/{}", base(&account), ep.id)) { "Cancel" }
    };
    Ok(viewer_page(&s, Some(&account), "Delete endpoint", body))
}

async fn delete(
    State(state): State<AppState>,
    Path((account, endpoint)): Path<(String, String)>,
    Posted(s, _): Posted<NoFields>,
) -> UiResult {
    let ep = load(&state, &s, &account, &endpoint).await?;
    state
        .hookline
        .delete_endpoint(&s.actor, &account, ep.id.as_str())
        .await?;
    Ok(see_other(&base(&account)))
}

async fn enable(
    State(state): State<AppState>,
    Path((account, endpoint)): Path<(String, String)>,
    Posted(s, _): Posted<NoFields>,
) -> UiResult {
    let ep = load(&state, &s, &account, &endpoint).await?;
    state
        .hookline
        .enable_endpoint(&s.actor, &account, ep.id.as_str())
        .await?;
    Ok(see_other(&format!("{}/{}", base(&account), ep.id)))
}

async fn disable(
    State(state): State<AppState>,
    Path((account, endpoint)): Path<(String, String)>,
    Posted(s, _): Posted<NoFields>,
) -> UiResult {
    let ep = load(&state, &s, &account, &endpoint).await?;
    state
        .hookline
        .disable_endpoint(&s.actor, &account, ep.id.as_str())
        .await?;
    Ok(see_other(&format!("{}/{}", base(&account), ep.id)))
}

async fn rotate(
    State(state): State<AppState>,
    Path((account, endpoint)): Path<(String, String)>,
    Posted(s, _): Posted<NoFields>,
) -> UiResult {
    let ep = load(&state, &s, &account, &endpoint).await?;
    state
        .hookline
        .rotate_secret(
            &s.actor,
            &account,
            ep.id.as_str(),
            SecretRotation::generated(),
        )
        .await?;
    Ok(see_other(&format!(
        "{}/{}?reveal=1#secrets",
        base(&account),
        ep.id
    )))
}

async fn test(
    State(state): State<AppState>,
    Path((account, endpoint)): Path<(String, String)>,
    Posted(s, _): Posted<NoFields>,
) -> UiResult {
    let ep = load(&state, &s, &account, &endpoint).await?;
    let receipt = state
        .hookline
        .send_test(&s.actor, &account, ep.id.as_str())
        .await?;
    Ok(see_other(&format!(
        "{}/{}?test={}#test",
        base(&account),
        ep.id,
        receipt.event_id
    )))
}

#[derive(Debug, Deserialize)]
pub(super) struct RecoverForm {
    /// `YYYY-MM-DDTHH:MM` (a `datetime-local` field, read as UTC) or RFC 3339.
    since: String,
}

/// Reads a time picker's value: RFC 3339, or `datetime-local` text taken as UTC.
pub(super) fn parse_time(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    Timestamp::parse_rfc3339(text)
        .or_else(|_| Timestamp::parse_rfc3339(&format!("{text}:00Z")))
        .or_else(|_| Timestamp::parse_rfc3339(&format!("{text}Z")))
        .ok()
}

async fn recover(
    State(state): State<AppState>,
    Path((account, endpoint)): Path<(String, String)>,
    Posted(s, form): Posted<RecoverForm>,
) -> UiResult {
    let ep = load(&state, &s, &account, &endpoint).await?;
    let Some(since) = parse_time(&form.since) else {
        return Err(UiError(ServiceError::BadRequest {
            code: "invalid_query",
            message: "pick the time to recover from".into(),
        }));
    };
    let n = state
        .hookline
        .recover(&s.actor, &account, ep.id.as_str(), since)
        .await?;
    Ok(see_other(&format!(
        "{}/{}?recovered={n}#recover",
        base(&account),
        ep.id
    )))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct DetailQuery {
    reveal: Option<String>,
    test: Option<String>,
    recovered: Option<u64>,
    cursor: Option<String>,
}

async fn detail(
    State(state): State<AppState>,
    Viewer(s): Viewer,
    Path((account, endpoint)): Path<(String, String)>,
    Query(q): Query<DetailQuery>,
) -> UiResult {
    let ep = load(&state, &s, &account, &endpoint).await?;
    let here = format!("{}/{}", base(&account), ep.id);
    let mut dq = ListQuery::new().limit(20);
    if let Some(c) = &q.cursor {
        dq = dq.cursor(c.clone());
    }
    let deliveries: Page<Delivery> = state
        .hookline
        .endpoint_deliveries(&s.actor, &account, ep.id.as_str(), &dq)
        .await?;
    let secrets = if q.reveal.is_some() && !s.read_only {
        Some(
            state
                .hookline
                .endpoint_secrets(&s.actor, &account, ep.id.as_str())
                .await?,
        )
    } else {
        None
    };
    // The test event's delivery and attempts, shown inline after "Send test event".
    let mut test_view = None;
    if let Some(evt) = &q.test {
        let ds = state
            .hookline
            .event_deliveries(&s.actor, &account, evt, &ListQuery::new())
            .await?;
        if let Some(d) = ds.items.into_iter().find(|d| d.endpoint_id == ep.id) {
            let attempts = state
                .hookline
                .attempts(
                    &s.actor,
                    &account,
                    d.id.as_str(),
                    &ListQuery::new().limit(250),
                )
                .await?
                .items;
            // Oldest first, as they happened.
            let attempts: Vec<_> = attempts.into_iter().rev().collect();
            test_view = Some((d, attempts));
        }
    }
    let hourly = state
        .hookline
        .endpoint_hourly(&s.actor, &account, ep.id.as_str(), super::charts::HOURS)
        .await?;
    let now = super::now(&state);
    let body = html! {
        h1 { "Endpoint " code { (ep.id) } }
        dl.props {
            dt { "URL" } dd { code { (ep.url) } }
            dt { "Description" } dd { (ep.description.as_deref().unwrap_or("—")) }
            dt { "State" } dd { (state_cell(&ep)) }
            dt { "Event types" } dd { (types_text(&ep)) }
            dt { "Sites" } dd { (scope_text(&ep)) }
            dt { "Rate limit" } dd { (ep.rate_limit.map_or("none".into(), |r| format!("{r}/s"))) }
            dt { "Max concurrency" } dd { (ep.max_concurrency.map_or("none".into(), |r| r.to_string())) }
            dt { "Ordered" } dd { (if ep.ordered { "yes" } else { "no" }) }
            dt { "Created" } dd { (time(ep.created_at)) }
        }
        @if !s.read_only {
            div.actions {
                a href=(format!("{here}/edit")) { "Edit" }
                @if ep.enabled {
                    form.inline method="post" action=(format!("{here}/disable")) { (csrf(&s)) button type="submit" { "Disable" } }
                } @else {
                    form.inline method="post" action=(format!("{here}/enable")) { (csrf(&s)) button type="submit" { "Enable" } }
                }
                form.inline method="post" action=(format!("{here}/test")) { (csrf(&s)) button #send-test type="submit" { "Send test event" } }
                a href=(format!("{here}/delete")) { "Delete…" }
            }
            h2 #secrets { "Signing secrets" }
            @match &secrets {
                None => p { a #reveal href=(format!("{here}?reveal=1#secrets")) { "Reveal secrets" } },
                Some(list) => {
                    @if list.len() > 1 { p.muted { "Both secrets sign every request until the older one expires." } }
                    table {
                        thead { tr { th { "Secret" } th { "Created" } th { "Expires" } } }
                        tbody { @for sec in list { tr {
                            td.secret { code.secret-value { (sec.key.expose()) } }
                            td { (time(sec.created_at)) }
                            td { (time_opt(sec.expires_at)) }
                        } } }
                    }
                    form.inline method="post" action=(format!("{here}/rotate")) {
                        (csrf(&s)) button #rotate type="submit" { "Rotate secret" }
                    }
                    " " span.muted { "The current secret keeps signing beside the new one for a while, so receivers can switch without failures." }
                }
            }
        }
        @if let Some((d, attempts)) = &test_view {
            h2 #test { "Test event" }
            p { "Delivery " code { (d.id) } ": " (status_badge(d)) " · " a href=(format!("{here}?test={}#test", d.event_id)) { "Refresh" } }
            (super::events::attempts_table(attempts))
        }
        h2 { "Last 24 hours" }
        @if hourly.is_empty() {
            (empty("No attempts in the last 24 hours. Send a test event to see the charts fill in."))
        } @else {
            p { "Success rate: " strong #success-rate { (format!("{:.1} %", super::charts::success_rate(&hourly).unwrap_or(0.0))) } }
        }
        div.charts {
            (super::charts::attempts_chart(&hourly, now))
            (super::charts::latency_chart(&hourly, now))
        }
        @if !s.read_only {
            h2 #recover { "Recover failed deliveries" }
            @if let Some(n) = q.recovered { p.notice role="status" { (n) " deliveries re-queued." } }
            form.filters method="post" action=(format!("{here}/recover")) {
                (csrf(&s))
                label for="since" { "Failed since (UTC)" input #since type="datetime-local" name="since" required; }
                button type="submit" { "Recover" }
            }
        }
        h2 { "Recent deliveries" }
        @if deliveries.items.is_empty() {
            (empty("No deliveries yet. Send a test event, or publish an event of a type this endpoint takes."))
        } @else {
            table {
                thead { tr { th { "Delivery" } th { "Status" } th { "Attempts" } th { "Last attempt" } th { "Next attempt" } } }
                tbody { @for d in &deliveries.items { tr {
                    td { a href=(format!("/ui/accounts/{account}/events/{}", d.event_id)) { code { (d.id) } } }
                    td { (status_badge(d)) }
                    td { (d.attempts) }
                    td { (time_opt(d.last_attempt_at)) }
                    td { (time_opt(d.next_attempt_at)) }
                } } }
            }
            (next_link(&format!("{here}?"), deliveries.next.map(|c| c.encode())))
        }
    };
    Ok(viewer_page(&s, Some(&account), "Endpoint", body))
}
