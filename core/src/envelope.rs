//! The JSON body a receiver gets.
//!
//! ```json
//! {"id":"evt_01JD...","event":"rx.completed","queueId":"q_8842","site":"store-017",
//!  "timestamp":"2026-11-25T15:40:55.123Z","attempt":{"number":2,"timestamp":"2026-11-25T15:41:00.456Z"},
//!  "data":{"patientId":"p_77","din":"02242903"}}
//! ```
//! `site` and `queueId` are omitted when the event has none; `data` is the producer's JSON,
//! byte for byte.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::model::Event;
use crate::time::Timestamp;

#[derive(Serialize)]
struct Envelope<'a> {
    id: &'a str,
    event: &'a str,
    #[serde(rename = "queueId", skip_serializing_if = "Option::is_none")]
    queue_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    site: Option<&'a str>,
    timestamp: String,
    attempt: AttemptInfo,
    data: &'a RawValue,
}

#[derive(Serialize)]
struct AttemptInfo {
    number: u32,
    timestamp: String,
}

/// The request body for attempt `number` of `event`, made at `at`.
pub fn envelope(event: &Event, number: u32, at: Timestamp) -> Vec<u8> {
    let env = Envelope {
        id: event.id.as_str(),
        event: event.event_type.as_str(),
        queue_id: event.queue_id.as_deref(),
        site: event.site.as_ref().map(|s| s.as_str()),
        timestamp: event.timestamp.to_rfc3339(),
        attempt: AttemptInfo {
            number,
            timestamp: at.to_rfc3339(),
        },
        data: &event.data,
    };
    // Serialising borrowed strings and an already-valid RawValue cannot fail.
    // Sized up front: growing by doubling would copy a large `data` several times and leave up
    // to twice its size allocated for as long as the request is in flight.
    let mut body = Vec::with_capacity(event.data.get().len() + 512);
    match serde_json::to_writer(&mut body, &env) {
        Ok(()) => body,
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{AccountId, EventId, EventTypeName, SiteId};

    #[test]
    fn envelope_matches_the_documented_shape() {
        let mut ev = Event {
            id: EventId::parse("evt_01JD0000000000000000000000").unwrap(),
            account: AccountId::parse("acme").unwrap(),
            site: Some(SiteId::parse("store-017").unwrap()),
            event_type: EventTypeName::parse("rx.completed").unwrap(),
            queue_id: Some("q_8842".into()),
            data: RawValue::from_string(r#"{"patientId":"p_77","din":"02242903"}"#.into()).unwrap(),
            idempotency_key: None,
            timestamp: Timestamp::parse_rfc3339("2026-11-25T15:40:55.123Z").unwrap(),
        };
        let at = Timestamp::parse_rfc3339("2026-11-25T15:41:00.456Z").unwrap();
        let body = String::from_utf8(envelope(&ev, 2, at)).unwrap();
        assert_eq!(
            body,
            r#"{"id":"evt_01JD0000000000000000000000","event":"rx.completed","queueId":"q_8842","site":"store-017","timestamp":"2026-11-25T15:40:55.123Z","attempt":{"number":2,"timestamp":"2026-11-25T15:41:00.456Z"},"data":{"patientId":"p_77","din":"02242903"}}"#
        );
        ev.site = None;
        ev.queue_id = None;
        let body = String::from_utf8(envelope(&ev, 1, at)).unwrap();
        assert!(
            !body.contains("site") && !body.contains("queueId"),
            "{body}"
        );
    }
}
