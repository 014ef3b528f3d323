//! Events of an account: the list with filters and cursor paging, and an event's detail with the
//! envelope as receivers got it and, per endpoint, its deliveries, attempts and a retry button.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use hookline_core::envelope::envelope;
use hookline_core::model::Attempt;
use hookline_core::service::{ListQuery, ServiceError};
use maud::{Markup, html};
use serde::Deserialize;

use super::endpoints::{NoFields, next_link, parse_time, status_badge, urlencode};
use super::{Posted, UiError, UiResult, Viewer, csrf, empty, pretty, see_other, time, viewer_page};
use crate::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/accounts/{account}/events", get(list))
        .route("/ui/accounts/{account}/events/{event}", get(detail))
        .route(
            "/ui/accounts/{account}/events/{event}/deliveries/{delivery}/retry",
            post(retry),
        )
}

/// The filter form's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Filters {
    #[serde(default)]
    event: String,
    #[serde(default)]
    site: String,
    #[serde(default)]
    queue_id: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    cursor: Option<String>,
}

impl Filters {
    fn query_string(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("event", &self.event),
            ("site", &self.site),
            ("queueId", &self.queue_id),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if !v.trim().is_empty() {
                q.append_pair(k, v.trim());
            }
        }
        q.finish()
    }
}

fn opt(s: &str) -> Option<&str> {
    Some(s.trim()).filter(|s| !s.is_empty())
}

async fn list(
    State(state): State<AppState>,
    Viewer(s): Viewer,
    Path(account): Path<String>,
    Query(f): Query<Filters>,
) -> UiResult {
    let mut q = ListQuery::new().limit(50);
    if let Some(e) = opt(&f.event) {
        q = q.event_type(e);
    }
    // A site-scoped portal session sees its site's events only.
    let site = s
        .site
        .as_ref()
        .map(|s| s.to_string())
        .or(opt(&f.site).map(str::to_owned));
    if let Some(site) = &site {
        q = q.site(site.clone());
    }
    if let Some(qid) = opt(&f.queue_id) {
        q = q.queue_id(qid);
    }
    let bad_time = |field: &str| {
        UiError(ServiceError::BadRequest {
            code: "invalid_query",
            message: format!("`{field}` is not a time"),
        })
    };
    let since = opt(&f.since)
        .map(|t| parse_time(t).ok_or_else(|| bad_time("since")))
        .transpose()?;
    let until = opt(&f.until)
        .map(|t| parse_time(t).ok_or_else(|| bad_time("until")))
        .transpose()?;
    q = q.between(since, until);
    if let Some(c) = &f.cursor {
        q = q.cursor(c.clone());
    }
    let page = state.hookline.list_events(&s.actor, &account, &q).await?;
    let base = format!("/ui/accounts/{account}/events");
    let filtered = !f.query_string().is_empty();
    let body = html! {
        h1 { "Events" }
        form.filters method="get" action=(base) role="search" {
            label for="f-event" { "Event type" input #f-event type="text" name="event" value=(f.event); }
            @if s.site.is_none() {
                label for="f-site" { "Site" input #f-site type="text" name="site" value=(f.site); }
            }
            label for="f-queue" { "Queue id" input #f-queue type="text" name="queueId" value=(f.queue_id); }
            label for="f-since" { "From (UTC)" input #f-since type="datetime-local" name="since" value=(f.since); }
            label for="f-until" { "Until (UTC)" input #f-until type="datetime-local" name="until" value=(f.until); }
            button type="submit" { "Filter" }
            @if filtered { a href=(base) { "Clear" } }
        }
        @if page.items.is_empty() {
            (empty(if filtered {
                "No events match these filters. Widen the time range or clear the filters."
            } else {
                "No events yet. Events appear here once the application publishes them; an endpoint's “Send test event” adds one too."
            }))
        } @else {
            table {
                thead { tr { th { "Event" } th { "Type" } th { "Site" } th { "Queue id" } th { "Time" } } }
                tbody { @for e in &page.items { tr {
                    td { a href=(format!("{base}/{}", e.id)) { code { (e.id) } } }
                    td { code { (e.event_type) } }
                    td { (e.site.as_ref().map_or("—".to_owned(), |s| s.to_string())) }
                    td { (e.queue_id.as_deref().unwrap_or("—")) }
                    td { (time(e.timestamp)) }
                } } }
            }
            @let qs = f.query_string();
            (next_link(&format!("{base}?{qs}{}", if qs.is_empty() { "" } else { "&" }), page.next.map(|c| c.encode())))
        }
    };
    let _ = urlencode;
    Ok(viewer_page(&s, Some(&account), "Events", body))
}

/// A table of attempts: time, trigger, status code, duration, error and response excerpt.
pub(super) fn attempts_table(attempts: &[Attempt]) -> Markup {
    html! {
        @if attempts.is_empty() {
            p.muted { "No attempt yet: the delivery is queued. Refresh in a moment." }
        } @else {
            table.attempts {
                thead { tr { th { "#" } th { "Time" } th { "Trigger" } th { "Status" } th { "Duration" } th { "Error" } th { "Response excerpt" } } }
                tbody { @for a in attempts { tr {
                    td { (a.number) }
                    td { (time(a.started_at)) }
                    td { (format!("{:?}", a.trigger).to_lowercase()) }
                    td.status-code {
                        @match a.status_code {
                            Some(c) if (200..300).contains(&c) => span.ok { (c) },
                            Some(c) => span.bad { (c) },
                            None => span.muted { "—" },
                        }
                    }
                    td { (a.duration_ms) " ms" }
                    td { (a.error.as_deref().unwrap_or("")) }
                    td { @if !a.response_body.is_empty() { pre.excerpt { (a.response_body) } } }
                } } }
            }
        }
    }
}

async fn detail(
    State(state): State<AppState>,
    Viewer(s): Viewer,
    Path((account, event)): Path<(String, String)>,
) -> UiResult {
    let ev = state.hookline.event(&s.actor, &account, &event).await?;
    if s.site
        .as_ref()
        .is_some_and(|site| ev.site.as_ref() != Some(site))
    {
        return Err(UiError(ServiceError::NotFound {
            code: "event_not_found",
            message: "not found".into(),
        }));
    }
    let deliveries = state
        .hookline
        .event_deliveries(
            &s.actor,
            &account,
            ev.id.as_str(),
            &ListQuery::new().limit(250),
        )
        .await?;
    let mut per_delivery = Vec::new();
    for d in deliveries.items {
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
        per_delivery.push((d, attempts));
    }
    let body_bytes = envelope(&ev, 1, ev.timestamp);
    let body = html! {
        h1 { "Event " code { (ev.id) } }
        dl.props {
            dt { "Type" } dd { code { (ev.event_type) } }
            dt { "Site" } dd { (ev.site.as_ref().map_or("—".to_owned(), |s| s.to_string())) }
            dt { "Queue id" } dd { (ev.queue_id.as_deref().unwrap_or("—")) }
            dt { "Time" } dd { (time(ev.timestamp)) }
        }
        h2 { "Envelope" }
        p.muted { "The JSON body receivers get (attempt-specific fields as of the first attempt)." }
        pre.envelope { (pretty(&String::from_utf8_lossy(&body_bytes))) }
        h2 { "Deliveries" }
        @if per_delivery.is_empty() {
            (empty("No endpoint took this event: no enabled endpoint subscribes to its type and site."))
        }
        @for (d, attempts) in &per_delivery {
            section.delivery {
                h3 {
                    "To " a href=(format!("/ui/accounts/{account}/endpoints/{}", d.endpoint_id)) { code { (d.endpoint_id) } }
                    " · " (status_badge(d)) " · " code { (d.id) }
                }
                (attempts_table(attempts))
                @if !s.read_only {
                    form.inline method="post" action=(format!("/ui/accounts/{account}/events/{}/deliveries/{}/retry", ev.id, d.id)) {
                        (csrf(&s)) button.retry type="submit" { "Retry now" }
                    }
                }
            }
        }
    };
    Ok(viewer_page(&s, Some(&account), "Event", body))
}

async fn retry(
    State(state): State<AppState>,
    Path((account, event, delivery)): Path<(String, String, String)>,
    Posted(s, _): Posted<NoFields>,
) -> UiResult {
    let ev = state.hookline.event(&s.actor, &account, &event).await?;
    if s.site
        .as_ref()
        .is_some_and(|site| ev.site.as_ref() != Some(site))
    {
        return Err(UiError(ServiceError::NotFound {
            code: "event_not_found",
            message: "not found".into(),
        }));
    }
    let d = state
        .hookline
        .delivery(&s.actor, &account, &delivery)
        .await?;
    if d.event_id != ev.id {
        return Err(UiError(ServiceError::NotFound {
            code: "delivery_not_found",
            message: "not found".into(),
        }));
    }
    state
        .hookline
        .retry_delivery(&s.actor, &account, d.id.as_str())
        .await?;
    Ok(see_other(&format!(
        "/ui/accounts/{account}/events/{}",
        ev.id
    )))
}
