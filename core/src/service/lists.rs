//! One query for every list: paging (`limit` 1 to 250, an opaque `cursor`) and the filters
//! each list takes. Every list is newest first by `(time, id)` and its cursor encodes both, so
//! pages never skip or repeat a row, even while rows are added.
//!
//! A list refuses, alike for every list, with 400: a parameter it does not know
//! (`invalid_query`, at parsing), a filter that is not one of its own (`invalid_query`), a
//! filter value that is not one (`invalid_id`, `invalid_query`), a bad `limit`
//! (`invalid_limit`) or `cursor` (`invalid_cursor`). None answers an empty page instead.

use serde::Deserialize;

use super::validate::MAX_QUEUE_ID;
use super::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, ServiceError};
use crate::id::{EndpointId, EventTypeName, SiteId};
use crate::model::{AttemptOutcome, Cursor, DeliveryStatus, PageRequest};
use crate::time::Timestamp;

/// Paging and filters of a list request, as received (the query string of every list route).
/// Each listing operation checks it against the filters its list takes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct ListQuery {
    /// Rows at most, 1 to 250 ([`MAX_PAGE_LIMIT`]; default 50, [`DEFAULT_PAGE_LIMIT`]).
    pub limit: Option<usize>,
    /// Where the previous page ended: the `nextCursor` of the page before.
    pub cursor: Option<String>,
    /// Only this event type (`event` is accepted as its older name).
    #[serde(alias = "event")]
    pub event_type: Option<String>,
    /// Only this site.
    pub site: Option<String>,
    /// Only this queue id.
    pub queue_id: Option<String>,
    /// Only this endpoint.
    pub endpoint: Option<String>,
    /// Only deliveries in this state.
    pub status: Option<String>,
    /// Only attempts that ended this way.
    pub outcome: Option<String>,
    /// Only rows at or after this instant.
    pub since: Option<Timestamp>,
    /// Only rows before this instant.
    pub until: Option<Timestamp>,
}

/// A filter a list may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filter {
    EventType,
    Site,
    QueueId,
    Endpoint,
    Status,
    Outcome,
    /// `since` and `until`.
    Time,
}

impl Filter {
    fn name(self) -> &'static str {
        match self {
            Self::EventType => "eventType",
            Self::Site => "site",
            Self::QueueId => "queueId",
            Self::Endpoint => "endpoint",
            Self::Status => "status",
            Self::Outcome => "outcome",
            Self::Time => "since, until",
        }
    }
}

/// A list query once checked: the page and the filters given.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub(crate) page: PageRequest,
    pub(crate) event_type: Option<EventTypeName>,
    pub(crate) site: Option<SiteId>,
    pub(crate) queue_id: Option<String>,
    pub(crate) endpoint: Option<EndpointId>,
    pub(crate) status: Option<DeliveryStatus>,
    pub(crate) outcome: Option<AttemptOutcome>,
    pub(crate) since: Option<Timestamp>,
    pub(crate) until: Option<Timestamp>,
}

impl ListQuery {
    /// Every row, first page of the default size.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks for at most `limit` rows.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Continues after `cursor` (a page's `next`, encoded).
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    /// Only this event type.
    pub fn event_type(mut self, event_type: impl Into<String>) -> Self {
        self.event_type = Some(event_type.into());
        self
    }

    /// Only this site.
    pub fn site(mut self, site: impl Into<String>) -> Self {
        self.site = Some(site.into());
        self
    }

    /// Only this queue id.
    pub fn queue_id(mut self, queue_id: impl Into<String>) -> Self {
        self.queue_id = Some(queue_id.into());
        self
    }

    /// Only this endpoint.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Only deliveries in this state.
    pub fn status(mut self, status: impl Into<String>) -> Self {
        self.status = Some(status.into());
        self
    }

    /// Only attempts that ended this way (`succeeded` or `failed`).
    pub fn outcome(mut self, outcome: impl Into<String>) -> Self {
        self.outcome = Some(outcome.into());
        self
    }

    /// Only rows in `[since, until)`; either bound may be open.
    pub fn between(mut self, since: Option<Timestamp>, until: Option<Timestamp>) -> Self {
        self.since = since;
        self.until = until;
        self
    }

    /// The checked page request of a list that takes no filter: `invalid_limit`,
    /// `invalid_cursor`, or `invalid_query` when a filter is given.
    pub fn request(&self) -> Result<PageRequest, ServiceError> {
        Ok(self.check(&[])?.page)
    }

    /// Checks the query against the filters a list `takes`.
    pub(crate) fn check(&self, takes: &[Filter]) -> Result<Checked, ServiceError> {
        let given = [
            (Filter::EventType, self.event_type.is_some()),
            (Filter::Site, self.site.is_some()),
            (Filter::QueueId, self.queue_id.is_some()),
            (Filter::Endpoint, self.endpoint.is_some()),
            (Filter::Status, self.status.is_some()),
            (Filter::Outcome, self.outcome.is_some()),
            (Filter::Time, self.since.is_some() || self.until.is_some()),
        ];
        if let Some((f, _)) = given.iter().find(|(f, on)| *on && !takes.contains(f)) {
            let known: Vec<&str> = takes.iter().map(|f| f.name()).collect();
            let detail = if known.is_empty() {
                format!(
                    "`{}` is not a filter of this list, which takes only limit and cursor",
                    f.name()
                )
            } else {
                format!(
                    "`{}` is not a filter of this list, which takes: {}, limit, cursor",
                    f.name(),
                    known.join(", ")
                )
            };
            return Err(ServiceError::bad_request("invalid_query", detail));
        }
        if let (Some(s), Some(u)) = (self.since, self.until)
            && s >= u
        {
            return Err(ServiceError::bad_request(
                "invalid_query",
                "since must be before until",
            ));
        }
        let status = self
            .status
            .as_deref()
            .map(|s| {
                DeliveryStatus::parse(s).ok_or_else(|| {
                    ServiceError::bad_request(
                        "invalid_query",
                        "status is one of pending, succeeded, failed, cancelled",
                    )
                })
            })
            .transpose()?;
        let outcome = self
            .outcome
            .as_deref()
            .map(|s| {
                AttemptOutcome::parse(s).ok_or_else(|| {
                    ServiceError::bad_request("invalid_query", "outcome is succeeded or failed")
                })
            })
            .transpose()?;
        let queue_id = match &self.queue_id {
            Some(q) if q.is_empty() || q.len() > MAX_QUEUE_ID => {
                return Err(ServiceError::bad_request(
                    "invalid_query",
                    format!("queueId is 1 to {MAX_QUEUE_ID} bytes"),
                ));
            }
            q => q.clone(),
        };
        Ok(Checked {
            page: page_request(self.limit, self.cursor.as_deref())?,
            event_type: self
                .event_type
                .as_deref()
                .map(EventTypeName::parse)
                .transpose()?,
            site: self.site.as_deref().map(SiteId::parse).transpose()?,
            queue_id,
            endpoint: self
                .endpoint
                .as_deref()
                .map(EndpointId::parse)
                .transpose()?,
            status,
            outcome,
            since: self.since,
            until: self.until,
        })
    }
}

pub(crate) fn page_request(
    limit: Option<usize>,
    cursor: Option<&str>,
) -> Result<PageRequest, ServiceError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE_LIMIT);
    if limit == 0 || limit > MAX_PAGE_LIMIT {
        return Err(ServiceError::bad_request(
            "invalid_limit",
            format!("limit must be 1 to {MAX_PAGE_LIMIT}"),
        ));
    }
    let after = match cursor {
        None => None,
        Some(c) => Some(
            Cursor::decode(c)
                .ok_or_else(|| ServiceError::bad_request("invalid_cursor", "unknown cursor"))?,
        ),
    };
    Ok(PageRequest { limit, after })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: ServiceError) -> &'static str {
        e.code()
    }

    #[test]
    fn a_filter_a_list_does_not_take_is_refused() {
        let q = ListQuery::new().status("failed");
        assert_eq!(code(q.request().unwrap_err()), "invalid_query");
        assert_eq!(code(q.check(&[Filter::Site]).unwrap_err()), "invalid_query");
        assert_eq!(
            q.check(&[Filter::Status]).unwrap().status,
            Some(DeliveryStatus::Failed)
        );
    }

    #[test]
    fn bad_values_are_refused() {
        let all = [
            Filter::EventType,
            Filter::Site,
            Filter::Status,
            Filter::Outcome,
            Filter::Time,
            Filter::Endpoint,
        ];
        let bad = [
            ListQuery::new().status("done"),
            ListQuery::new().outcome("maybe"),
            ListQuery::new().limit(0),
            ListQuery::new().limit(251),
            ListQuery::new().cursor("%%"),
            ListQuery::new().between(
                Some(Timestamp::from_millis(5)),
                Some(Timestamp::from_millis(5)),
            ),
            ListQuery::new().endpoint("nope"),
            ListQuery::new().event_type("Not A Type"),
        ];
        for q in bad {
            assert!(q.check(&all).is_err(), "{q:?}");
        }
        assert_eq!(ListQuery::new().check(&all).unwrap().page.limit, 50);
    }

    #[test]
    fn event_is_the_older_name_of_event_type() {
        let q: ListQuery = serde_json::from_value(serde_json::json!({"event": "a.b"})).unwrap();
        assert_eq!(q.event_type.as_deref(), Some("a.b"));
        assert!(serde_json::from_value::<ListQuery>(serde_json::json!({"bogus": "1"})).is_err());
    }
}
