//! Property tests ("fuzzing" on the stable toolchain) of the code that reads untrusted input:
//! signature verification and its headers, the envelope, ids, URLs, cursors, timestamps and event
//! data. Each property runs `PROPTEST_CASES` cases (256 by default; `cargo xtask fuzz` runs more
//! for a bounded time). A crash found here is fixed and kept as a named regression test below.

use std::time::Duration;

use hookline_core::model::{Cursor, Event};
use hookline_core::service::validate;
use hookline_core::signing::{
    DEFAULT_TOLERANCE, Secret, SignInput, Signer as _, SignerSet, VerifyError, raw_body_signature,
    verify_raw_body, verify_standard,
};
use hookline_core::{AccountId, DeliveryId, EndpointId, EventId, EventTypeName, SiteId, Timestamp};
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use serde_json::Value;

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Header values as a client might send them: any visible ASCII, spaces and commas.
fn header_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,120}",
        "-?[0-9]{1,20}",
        any::<i64>().prop_map(|n| n.to_string()),
        prop_oneof![Just(i64::MIN), Just(i64::MAX)].prop_map(|n| n.to_string()),
        "(v1,[A-Za-z0-9+/=]{0,50} ?){0,4}",
        "(sha256=[0-9a-f]{0,70},?){0,3}",
    ]
}

fn secret() -> impl Strategy<Value = Secret> {
    prop::collection::vec(any::<u8>(), 24..=64).prop_map(|key| {
        use base64::Engine as _;
        let text = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        );
        Secret::parse(&text).expect("a generated secret parses")
    })
}

fn headers(id: &str, ts: &str, sig: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("webhook-id", id),
        ("webhook-timestamp", ts),
        ("webhook-signature", sig),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(HeaderName::from_static(name), v);
        }
    }
    h
}

proptest! {
    /// Whatever the headers say, verification answers (never panics), and never accepts a
    /// signature it did not compute.
    #[test]
    fn standard_verification_never_panics_on_any_headers(
        secret in secret(),
        id in header_text(),
        ts in header_text(),
        sig in header_text(),
        body in prop::collection::vec(any::<u8>(), 0..256),
        now in any::<i64>(),
    ) {
        let res = verify_standard(
            &secret,
            &headers(&id, &ts, &sig),
            &body,
            Timestamp::from_millis(now),
            DEFAULT_TOLERANCE,
        );
        prop_assert!(res.is_err());
    }

    /// What the signer writes verifies, for any id, body and secret; changing a byte of the
    /// body, or another secret, fails.
    #[test]
    fn signed_messages_verify_and_tampered_ones_do_not(
        secret in secret(),
        other in secret(),
        id in "[A-Za-z0-9_]{1,40}",
        body in prop::collection::vec(any::<u8>(), 1..512),
        flip in any::<prop::sample::Index>(),
        ms in 0i64..4_000_000_000_000,
    ) {
        let at = Timestamp::from_millis(ms);
        let mut h = HeaderMap::new();
        SignerSet::default().sign(
            &SignInput { msg_id: &id, timestamp: at, body: &body, secrets: &[&secret] },
            &mut h,
        );
        prop_assert_eq!(verify_standard(&secret, &h, &body, at, DEFAULT_TOLERANCE), Ok(()));
        let raw = raw_body_signature(&secret, &body);
        prop_assert_eq!(verify_raw_body(&secret, &raw, &body), Ok(()));
        let mut tampered = body.clone();
        let i = flip.index(tampered.len());
        tampered[i] ^= 0x01;
        prop_assert_eq!(
            verify_standard(&secret, &h, &tampered, at, DEFAULT_TOLERANCE),
            Err(VerifyError::NoMatch)
        );
        prop_assert_eq!(verify_raw_body(&secret, &raw, &tampered), Err(VerifyError::NoMatch));
        if other.key() != secret.key() {
            prop_assert_eq!(
                verify_standard(&other, &h, &body, at, DEFAULT_TOLERANCE),
                Err(VerifyError::NoMatch)
            );
        }
    }

    /// Any raw-body signature header is answered, never accepted unless computed.
    #[test]
    fn raw_body_verification_never_panics(
        secret in secret(),
        header in header_text(),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        prop_assert!(verify_raw_body(&secret, &header, &body).is_err());
    }

    /// Secrets: any text parses or is refused; a parsed one shows as text that parses back to
    /// the same key.
    #[test]
    fn secrets_parse_or_are_refused(text in prop_oneof!["whsec_[A-Za-z0-9+/=]{0,100}", ".{0,80}"]) {
        if let Ok(s) = Secret::parse(&text) {
            let again = Secret::parse(&s.expose()).unwrap();
            prop_assert_eq!(again.key(), s.key());
            prop_assert!((24..=64).contains(&s.key().len()));
        }
    }

    /// Ids: any text parses or is refused; what parses keeps its text, and generated ids parse.
    #[test]
    fn ids_parse_or_are_refused(
        text in prop_oneof![
            ".{0,140}",
            "[A-Za-z0-9_.-]{0,140}",
            "(evt_|ep_|dlv_)[0-9A-Za-z]{0,30}",
        ],
    ) {
        if let Ok(id) = AccountId::parse(&text) { prop_assert_eq!(id.as_str(), text.as_str()); }
        if let Ok(id) = SiteId::parse(&text) { prop_assert_eq!(id.as_str(), text.as_str()); }
        if let Ok(id) = EventTypeName::parse(&text) { prop_assert_eq!(id.as_str(), text.as_str()); }
        if let Ok(id) = EventId::parse(&text) { prop_assert_eq!(id.as_str(), text.as_str()); }
        let _ = EndpointId::parse(&text);
        let _ = DeliveryId::parse(&text);
        let generated = EventId::generate();
        prop_assert_eq!(EventId::parse(generated.as_str()).unwrap(), generated);
    }

    /// Endpoint URLs: any text is accepted or refused with a code; an accepted one is an
    /// absolute http(s) URL without credentials.
    #[test]
    fn endpoint_urls_are_validated_without_panicking(
        raw in prop_oneof![
            ".{0,200}",
            "(https?|ftp|file)://[ -~]{0,80}",
            "https?://(\\[[0-9a-f:.]{0,40}\\]|[0-9.]{0,20}|[a-z.]{0,20})(:[0-9]{0,6})?/[ -~]{0,20}",
        ],
        allow_http in any::<bool>(),
    ) {
        let _ = validate::literal_address(&raw);
        match validate::endpoint_url(&raw, allow_http) {
            Ok(url) => {
                let parsed = url::Url::parse(&url).unwrap();
                prop_assert!(parsed.scheme() == "https" || (allow_http && parsed.scheme() == "http"));
                prop_assert!(parsed.host().is_some());
                prop_assert!(parsed.username().is_empty() && parsed.password().is_none());
            }
            Err(e) => prop_assert!(!e.code().is_empty()),
        }
    }

    /// Event data: any text is judged (never a stack overflow or panic), whatever its nesting.
    #[test]
    fn event_data_is_judged_without_panicking(
        text in prop_oneof![
            ".{0,200}",
            json_value().prop_map(|v| v.to_string()),
            (1usize..5000, prop_oneof![Just("["), Just("{\"a\":")])
                .prop_map(|(n, open)| open.repeat(n)),
        ],
    ) {
        let _ = validate::event_data(&text, 1 << 20);
    }

    /// Cursors: any text decodes or not; what a cursor encodes decodes to itself.
    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused(
        text in ".{0,80}",
        ms in any::<i64>(),
        id in ".{0,40}",
    ) {
        let _ = Cursor::decode(&text);
        let c = Cursor { created_at: Timestamp::from_millis(ms), id };
        prop_assert_eq!(Cursor::decode(&c.encode()), Some(c));
    }

    /// Timestamps: any text parses or is refused; any instant formats, and in-range ones parse
    /// back to themselves.
    #[test]
    fn timestamps_format_and_parse(text in ".{0,40}", ms in any::<i64>()) {
        let _ = Timestamp::parse_rfc3339(&text);
        let t = Timestamp::from_millis(ms);
        let shown = t.to_rfc3339();
        if (0..253_402_300_800_000).contains(&ms) {
            prop_assert_eq!(Timestamp::parse_rfc3339(&shown).unwrap(), t);
        }
    }

    /// The envelope is JSON carrying the event's fields and its data byte for byte.
    #[test]
    fn envelopes_carry_the_event(
        data in json_value().prop_map(|v| serde_json::json!({"v": v})),
        queue in proptest::option::of(".{0,30}"),
        site in proptest::option::of("[a-z0-9_-]{1,20}"),
        number in any::<u32>(),
        at in any::<i64>(),
        fired in any::<i64>(),
    ) {
        let raw = serde_json::value::RawValue::from_string(data.to_string()).unwrap();
        let mut event = Event::new(
            EventId::generate(),
            AccountId::parse("acct").unwrap(),
            EventTypeName::parse("rx.completed").unwrap(),
            raw,
            Timestamp::from_millis(fired),
        );
        event.queue_id = queue.clone();
        event.site = site.as_deref().map(|s| SiteId::parse(s).unwrap());
        let body = hookline_core::envelope::envelope(&event, number, Timestamp::from_millis(at));
        let v: Value = serde_json::from_slice(&body).unwrap();
        // Compared with the same text parsed (a float may not survive a text round trip).
        let expected: Value = serde_json::from_str(&data.to_string()).unwrap();
        prop_assert_eq!(&v["data"], &expected);
        prop_assert_eq!(v["id"].as_str(), Some(event.id.as_str()));
        prop_assert_eq!(v["attempt"]["number"].as_u64(), Some(u64::from(number)));
        prop_assert_eq!(v.get("queueId").and_then(Value::as_str), queue.as_deref());
        prop_assert_eq!(v.get("site").and_then(Value::as_str), site.as_deref());
    }
}

// Regressions: inputs these properties once failed on.

/// A `webhook-timestamp` of `i64::MIN` made the clock-skew subtraction overflow (a panic in
/// debug builds, a wrong skew in release ones).
#[test]
fn an_extreme_webhook_timestamp_is_out_of_tolerance() {
    let secret = Secret::generate();
    for ts in [i64::MIN.to_string(), i64::MAX.to_string()] {
        for now in [i64::MIN, 0, i64::MAX] {
            let res = verify_standard(
                &secret,
                &headers("msg_1", &ts, "v1,x"),
                b"{}",
                Timestamp::from_millis(now),
                Duration::from_secs(300),
            );
            assert_eq!(
                res,
                Err(VerifyError::TimestampOutOfTolerance),
                "{ts} at {now}"
            );
        }
    }
}
