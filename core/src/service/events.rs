//! Events: publishing one or a batch, with every check, and looking them up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Deserialize;
use serde_json::value::RawValue;
use tracing::Instrument as _;

use super::lists::{Filter, ListQuery};
use super::validate::{self, MAX_QUEUE_ID};
use super::{Actor, Hookline, ServiceError, schema};
use crate::id::{AccountId, EventId, EventTypeName, SiteId};
use crate::model::{Event, EventFilter, EventType, Page};
use crate::store::{Receipt, StoreError};
use crate::transport::BoxError;

/// An event to publish, as received: checked by [`Hookline::publish`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewEvent {
    /// The event type, a name in the catalog that is not archived.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::id::EventTypeName))]
    pub event: String,
    /// The site it happened at, if any (an id in the account).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::id::SiteId>))]
    pub site: Option<String>,
    /// The producer's reference to the work item.
    pub queue_id: Option<String>,
    /// The event's JSON object, kept byte for byte.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Box<RawValue>,
    /// Makes publishing idempotent: an event with a key already accepted for the account is
    /// not stored again, and the original's receipt comes back (`duplicate`), if it is the same
    /// event (see [`Hookline::publish`]); another event with that key is refused
    /// (`idempotency_conflict`).
    pub idempotency_key: Option<String>,
}

impl NewEvent {
    /// An event of type `event` with `data` (which must be a JSON object).
    pub fn new(event: impl Into<String>, data: Box<RawValue>) -> Self {
        Self {
            event: event.into(),
            site: None,
            queue_id: None,
            data,
            idempotency_key: None,
        }
    }

    /// An event of type `event` with `data` serialized to JSON (which must give an object).
    pub fn json(
        event: impl Into<String>,
        data: &impl serde::Serialize,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self::new(event, serde_json::value::to_raw_value(data)?))
    }

    /// Sets the site.
    pub fn site(mut self, site: impl Into<String>) -> Self {
        self.site = Some(site.into());
        self
    }

    /// Sets the queue id.
    pub fn queue_id(mut self, queue_id: impl Into<String>) -> Self {
        self.queue_id = Some(queue_id.into());
        self
    }

    /// Sets the idempotency key.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Takes the idempotency key from a request header (raw bytes, if the header was sent), for
    /// front ends where a single event's key travels beside the event rather than in it:
    /// `invalid_idempotency_key` if it is not text, `invalid_body` if the event carries a key
    /// too.
    pub fn with_header_key(mut self, header: Option<&[u8]>) -> Result<Self, ServiceError> {
        if self.idempotency_key.is_some() {
            return Err(ServiceError::invalid(
                "invalid_body",
                "send the idempotency key in the `Idempotency-Key` header",
            ));
        }
        if let Some(raw) = header {
            let key = std::str::from_utf8(raw).map_err(|_| {
                ServiceError::invalid("invalid_idempotency_key", "the idempotency key is not text")
            })?;
            self.idempotency_key = Some(key.to_owned());
        }
        Ok(self)
    }
}

/// Whether `event` repeats `original`, the event accepted with its idempotency key: the same
/// type, site, queue id and `data` (compared as JSON values, so key order and white space do not
/// matter). Otherwise `idempotency_conflict`.
fn same_request(original: &Event, event: &Event) -> Result<(), ServiceError> {
    let data = |e: &Event| serde_json::from_str::<serde_json::Value>(e.data.get()).ok();
    let same = original.event_type == event.event_type
        && original.site == event.site
        && original.queue_id == event.queue_id
        && data(original).is_some_and(|d| Some(d) == data(event));
    if same {
        Ok(())
    } else {
        Err(ServiceError::Conflict {
            code: "idempotency_conflict",
            message: format!(
                "the idempotency key `{}` was used for event `{}` with another body: use a new \
                 key for another event",
                event.idempotency_key.as_deref().unwrap_or_default(),
                original.id
            ),
        })
    }
}

/// What publishing a batch reports as it goes: whether it started writing (for the write
/// timeout), and per event its catalog type and whether it was stored (for the metrics).
struct Batch<'a> {
    writing: &'a AtomicBool,
    types: &'a mut [Option<EventTypeName>],
    stored: &'a mut Vec<bool>,
}

impl Hookline {
    /// Checks one event against the catalog and the account, without writing anything. Sets
    /// `catalog_type` once the catalog has the event's type (for the metrics' label).
    async fn check_event(
        &self,
        account: &AccountId,
        input: NewEvent,
        catalog_type: &mut Option<EventTypeName>,
    ) -> Result<Event, ServiceError> {
        let kind = EventTypeName::parse(&input.event).map_err(|_| {
            ServiceError::invalid(
                "unknown_event_type",
                format!("`{}` is not a valid event type name", input.event),
            )
        })?;
        let et = match self.store().event_type(&kind).await? {
            None => {
                return Err(ServiceError::invalid(
                    "unknown_event_type",
                    format!("no event type `{kind}` in the catalog"),
                ));
            }
            Some(et) => {
                *catalog_type = Some(kind.clone());
                if et.archived {
                    return Err(ServiceError::invalid(
                        "event_type_archived",
                        format!("event type `{kind}` is archived"),
                    ));
                }
                et
            }
        };
        let site = match &input.site {
            None => None,
            Some(s) => {
                let id = SiteId::parse(s)?;
                if self.store().site(account, &id).await?.is_none() {
                    return Err(ServiceError::invalid(
                        "unknown_site",
                        format!("no site `{id}` in account `{account}`"),
                    ));
                }
                Some(id)
            }
        };
        if let Some(q) = &input.queue_id {
            validate::text("queueId", q, MAX_QUEUE_ID)?;
        }
        validate::event_data(input.data.get(), self.config().max_event_bytes)?;
        self.check_data_schema(&et, &input.data)?;
        if let Some(k) = &input.idempotency_key {
            validate::idempotency_key(k)?;
        }
        let mut event = Event::new(
            EventId::generate(),
            account.clone(),
            kind,
            input.data,
            self.now(),
        );
        event.site = site;
        event.queue_id = input.queue_id;
        event.idempotency_key = input.idempotency_key;
        Ok(event)
    }

    /// Validates `data` against the JSON Schema of its type, if it has one: `invalid_data` with
    /// the first violations. A stored schema that no longer compiles (written before schemas were
    /// checked) is reported as `invalid_schema`.
    fn check_data_schema(&self, et: &EventType, data: &RawValue) -> Result<(), ServiceError> {
        let Some(validator) = self.schemas().validator(et)? else {
            return Ok(());
        };
        let value: serde_json::Value = serde_json::from_str(data.get())
            .map_err(|e| ServiceError::invalid("invalid_data", format!("`data`: {e}")))?;
        let violations = schema::violations(&validator, &value);
        if violations.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::DataViolations {
                event_type: et.name.to_string(),
                violations,
            })
        }
    }

    /// Stores a checked event with one delivery per subscribed endpoint, in an `ingest` span
    /// that names the event (ERROR level, so that it is enabled under any log filter, like the
    /// dispatcher's `attempt` span).
    async fn fan_out(&self, event: &Event) -> Result<Receipt, ServiceError> {
        let span = tracing::error_span!(
            "ingest",
            account_id = %event.account,
            event_id = %event.id,
            event_type = %event.event_type,
            deliveries = tracing::field::Empty,
            duplicate_of = tracing::field::Empty,
        );
        let receipt = self
            .dispatcher()
            .publish(event)
            .instrument(span.clone())
            .await?;
        span.record("deliveries", receipt.deliveries.len());
        if receipt.duplicate {
            span.record("duplicate_of", tracing::field::display(&receipt.event_id));
        }
        Ok(receipt)
    }

    /// Stores checked events with one delivery per subscribed endpoint each, all or nothing,
    /// within [`max_batch_deliveries`](super::ServiceConfig::max_batch_deliveries), in an
    /// `ingest_batch` span (ERROR level, as `ingest`).
    async fn fan_out_batch(
        &self,
        account: &AccountId,
        events: &[Event],
    ) -> Result<Vec<Receipt>, ServiceError> {
        let span = tracing::error_span!(
            "ingest_batch",
            account_id = %account,
            events = events.len(),
            deliveries = tracing::field::Empty,
            duplicates = tracing::field::Empty,
        );
        let receipts = self
            .dispatcher()
            .publish_batch_limited(events, self.config().max_batch_deliveries)
            .instrument(span.clone())
            .await?;
        let (mut deliveries, mut duplicates) = (0, 0);
        for r in &receipts {
            if r.duplicate {
                duplicates += 1;
            } else {
                deliveries += r.deliveries.len();
            }
        }
        span.record("deliveries", deliveries);
        span.record("duplicates", duplicates);
        Ok(receipts)
    }

    /// Runs a publication within [`write_timeout`](super::ServiceConfig::write_timeout). `work`
    /// raises `writing` just before its first store write; past the deadline the answer is
    /// `Unavailable`, unconfirmed when the write had been sent (it may still land).
    async fn within_write_timeout<T>(
        &self,
        writing: &AtomicBool,
        work: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ServiceError> {
        let limit = self.config().write_timeout;
        match tokio::time::timeout(limit, work).await {
            Ok(result) => result,
            Err(_) => {
                let why: BoxError = format!("no answer from the store within {limit:?}").into();
                Err(ServiceError::Unavailable(
                    if writing.load(Ordering::SeqCst) {
                        StoreError::Unconfirmed(why)
                    } else {
                        StoreError::Unavailable(why)
                    },
                ))
            }
        }
    }

    /// Publishes an event to an account (admin only): checks it (`unknown_event_type`,
    /// `event_type_archived`, `unknown_site`, `invalid_data` (also when `data` breaks the
    /// type's JSON Schema: [`ServiceError::DataViolations`]), `payload_too_large`,
    /// `field_too_long`, `invalid_idempotency_key`, …), then stores it durably with one
    /// delivery per subscribed endpoint. An event whose idempotency key was seen before is not
    /// stored again: the receipt says `duplicate`.
    pub async fn publish(
        &self,
        by: &Actor,
        account: &str,
        event: NewEvent,
    ) -> Result<Receipt, ServiceError> {
        let mut catalog_type = None;
        let result = async {
            by.require_write()?;
            by.require_admin()?;
            let writing = AtomicBool::new(false);
            self.within_write_timeout(&writing, async {
                let a = self.reach_account(by, account).await?;
                let event = self.check_event(&a.id, event, &mut catalog_type).await?;
                writing.store(true, Ordering::SeqCst);
                let receipt = self.fan_out(&event).await?;
                if receipt.duplicate {
                    // Nothing was written: the key's original answers, if it is the same event.
                    let original = self.store().event(&a.id, &receipt.event_id).await?;
                    if let Some(original) = original {
                        same_request(&original, &event)?;
                    }
                }
                Ok(receipt)
            })
            .await
        }
        .await;
        crate::metrics::event_published(
            catalog_type.as_ref(),
            result.as_ref().map(|r| r.duplicate),
        );
        result
    }

    /// Publishes 1 to [`max_batch`](super::ServiceConfig::max_batch) events (`invalid_batch`
    /// otherwise) to an account (admin only), all or nothing. Every event is checked first, so
    /// a refused item ([`ServiceError::InBatch`]) stores nothing; a batch that would create more
    /// than [`max_batch_deliveries`](super::ServiceConfig::max_batch_deliveries) deliveries
    /// (events × their subscribed endpoints) is refused with `batch_too_large`, nothing stored.
    /// The batch is then stored in one atomic write
    /// ([`Dispatcher::publish_batch_limited`](crate::dispatcher::Dispatcher::publish_batch_limited)):
    /// every event with its deliveries, or none of them — also when the store fails, the
    /// caller goes away or the write times out (`Unavailable`, unconfirmed: it may have been
    /// stored whole). Each event may carry its own idempotency key, and one with the key (or
    /// id) of an earlier event of the batch is that event's duplicate. Receipts come back in
    /// order.
    pub async fn publish_batch(
        &self,
        by: &Actor,
        account: &str,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Receipt>, ServiceError> {
        // Each event of the batch is counted, labelled by the catalog types found so far.
        let count = events.len();
        let mut types: Vec<Option<EventTypeName>> = vec![None; count];
        // The duplicate flags of the events stored, in order.
        let mut stored: Vec<bool> = Vec::with_capacity(count);
        let result = async {
            by.require_write()?;
            by.require_admin()?;
            let writing = AtomicBool::new(false);
            let batch = Batch {
                writing: &writing,
                types: &mut types,
                stored: &mut stored,
            };
            self.within_write_timeout(
                &writing,
                self.publish_batch_within(by, account, events, batch),
            )
            .await
        }
        .await;
        for (i, kind) in types.iter().enumerate() {
            // The batch is stored whole or not at all: each event counts with its own
            // duplicate flag once stored, else with the batch's error.
            let own = match (stored.get(i), &result) {
                (Some(duplicate), _) => Ok(*duplicate),
                (None, Err(e)) => Err(e),
                (None, Ok(_)) => Ok(false),
            };
            crate::metrics::event_published(kind.as_ref(), own);
        }
        result
    }

    async fn publish_batch_within(
        &self,
        by: &Actor,
        account: &str,
        events: Vec<NewEvent>,
        batch: Batch<'_>,
    ) -> Result<Vec<Receipt>, ServiceError> {
        let a = self.reach_account(by, account).await?;
        let max = self.config().max_batch;
        if events.is_empty() || events.len() > max {
            return Err(ServiceError::invalid(
                "invalid_batch",
                format!("a batch holds 1 to {max} events"),
            ));
        }
        let mut checked: Vec<Event> = Vec::with_capacity(events.len());
        let mut keyed: HashMap<String, usize> = HashMap::new();
        for (index, input) in events.into_iter().enumerate() {
            let in_batch = |error| ServiceError::InBatch {
                index,
                error: Box::new(error),
            };
            let ev = self
                .check_event(&a.id, input, &mut batch.types[index])
                .await
                .map_err(in_batch)?;
            if let Some(key) = &ev.idempotency_key {
                // The first event with a key decides; a later one must be the same event. The
                // key's original, if one was accepted before, is checked once.
                match keyed.get(key) {
                    Some(&first) => same_request(&checked[first], &ev).map_err(in_batch)?,
                    None => {
                        let original = self.store().event_by_idempotency_key(&a.id, key).await?;
                        if let Some(original) = original {
                            same_request(&original, &ev).map_err(in_batch)?;
                        }
                        keyed.insert(key.clone(), index);
                    }
                }
            }
            checked.push(ev);
        }
        batch.writing.store(true, Ordering::SeqCst);
        let receipts = self.fan_out_batch(&a.id, &checked).await?;
        batch.stored.extend(receipts.iter().map(|r| r.duplicate));
        Ok(receipts)
    }

    /// Lists an account's events matching `query` (event type, site, queue id, time), newest
    /// first.
    pub async fn list_events(
        &self,
        by: &Actor,
        account: &str,
        query: &ListQuery,
    ) -> Result<Page<Event>, ServiceError> {
        let a = self.reach_account(by, account).await?;
        let q = query.check(&[
            Filter::EventType,
            Filter::Site,
            Filter::QueueId,
            Filter::Time,
        ])?;
        let filter = EventFilter {
            event_type: q.event_type,
            site: q.site,
            queue_id: q.queue_id,
            since: q.since,
            until: q.until,
        };
        Ok(self.store().list_events(&a.id, &filter, &q.page).await?)
    }

    /// One event of an account: `event_not_found`.
    pub async fn event(
        &self,
        by: &Actor,
        account: &str,
        event: &str,
    ) -> Result<Event, ServiceError> {
        let a = self.reach_account(by, account).await?;
        let id = EventId::parse(event)?;
        self.store().event(&a.id, &id).await?.ok_or_else(|| {
            ServiceError::not_found(
                "event_not_found",
                format!("no event `{id}` in account `{}`", a.id),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> NewEvent {
        NewEvent::json("a.b", &serde_json::json!({"n": 1})).unwrap()
    }

    #[test]
    fn the_header_key_is_the_only_key_of_a_single_event() {
        assert_eq!(event().with_header_key(None).unwrap().idempotency_key, None);
        let keyed = event().with_header_key(Some(b"order-42")).unwrap();
        assert_eq!(keyed.idempotency_key.as_deref(), Some("order-42"));
        let in_body = event().idempotency_key("k");
        assert_eq!(
            in_body.clone().with_header_key(None).unwrap_err().code(),
            "invalid_body"
        );
        assert_eq!(
            in_body.with_header_key(Some(b"k")).unwrap_err().code(),
            "invalid_body"
        );
        assert_eq!(
            event()
                .with_header_key(Some(&[0xff, 0xfe]))
                .unwrap_err()
                .code(),
            "invalid_idempotency_key"
        );
    }

    #[test]
    fn events_read_the_api_wire_format_byte_for_byte() {
        let ev: NewEvent = serde_json::from_str(
            r#"{"event":"a.b","site":"s1","queueId":"q","data":{"b": 2,"a":1},"idempotencyKey":"k"}"#,
        )
        .unwrap();
        assert_eq!(ev.event, "a.b");
        assert_eq!(ev.site.as_deref(), Some("s1"));
        assert_eq!(ev.queue_id.as_deref(), Some("q"));
        assert_eq!(ev.data.get(), r#"{"b": 2,"a":1}"#, "data kept as sent");
        assert_eq!(ev.idempotency_key.as_deref(), Some("k"));
        assert!(serde_json::from_str::<NewEvent>(r#"{"event":"a.b","data":{},"x":1}"#).is_err());
        assert!(
            serde_json::from_str::<NewEvent>(r#"{"event":"a.b"}"#).is_err(),
            "data needed"
        );
    }
}
