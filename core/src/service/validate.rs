//! The pure checks behind the façade's operations: each answers with a [`ServiceError`] whose
//! code says what was wrong. Checks that need the store (the catalog, sites) live with the
//! operations.

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue};

use super::ServiceError;
use crate::signing::Secret;

/// Longest endpoint URL, in characters.
pub const MAX_URL: usize = 2048;
/// Longest account or site name, in characters.
pub const MAX_NAME: usize = 256;
/// Longest description (of an endpoint or event type), in characters.
pub const MAX_DESCRIPTION: usize = 1024;
/// Most extra headers per endpoint.
pub const MAX_HEADERS: usize = 20;
/// Longest extra header value, in characters.
pub const MAX_HEADER_VALUE: usize = 1024;
/// Most event types or sites in an endpoint's filter.
pub const MAX_FILTER: usize = 100;
/// Longest `queueId`, in characters.
pub const MAX_QUEUE_ID: usize = 256;
/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Headers that Hookline sets itself and an endpoint may not override (as are all
/// `x-hookline-*` headers).
pub const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// Checks a free-text field: no NUL characters (`invalid_text`; no store can keep them) and at
/// most `max` characters (`field_too_long`).
pub fn text(field: &str, value: &str, max: usize) -> Result<(), ServiceError> {
    if value.contains('\0') {
        return Err(ServiceError::invalid(
            "invalid_text",
            format!("`{field}` contains a NUL character"),
        ));
    }
    if value.chars().count() > max {
        return Err(ServiceError::invalid(
            "field_too_long",
            format!("`{field}` is longer than {max} characters"),
        ));
    }
    Ok(())
}

/// Checks an endpoint URL and returns its normal form: `https` (or `http` when `allow_http`;
/// else `insecure_url`), a host, no credentials, at most [`MAX_URL`] characters.
pub fn endpoint_url(raw: &str, allow_http: bool) -> Result<String, ServiceError> {
    text("url", raw, MAX_URL)?;
    let url = url::Url::parse(raw)
        .map_err(|e| ServiceError::invalid("invalid_url", format!("`url`: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(ServiceError::invalid(
                "insecure_url",
                "endpoint URLs must be https (this deployment does not allow http)",
            ));
        }
        other => {
            return Err(ServiceError::invalid(
                "invalid_url",
                format!("unsupported scheme `{other}`"),
            ));
        }
    }
    if url.host().is_none() {
        return Err(ServiceError::invalid("invalid_url", "the URL has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ServiceError::invalid(
            "invalid_url",
            "credentials in the URL are not allowed; use headers",
        ));
    }
    Ok(url.to_string())
}

/// The address an endpoint URL names literally (`https://10.0.0.5/`, `https://[::1]/`), if
/// its host is one rather than a name.
pub fn literal_address(url: &str) -> Option<std::net::IpAddr> {
    match url::Url::parse(url).ok()?.host()? {
        url::Host::Ipv4(v4) => Some(v4.into()),
        url::Host::Ipv6(v6) => Some(v6.into()),
        url::Host::Domain(_) => None,
    }
}

/// Checks an endpoint's extra headers and returns them with lower-case names: at most
/// [`MAX_HEADERS`], valid names and values, none [reserved](RESERVED_HEADERS).
pub fn endpoint_headers(
    headers: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ServiceError> {
    if headers.len() > MAX_HEADERS {
        return Err(ServiceError::invalid(
            "too_many_items",
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    let mut out = BTreeMap::new();
    for (k, v) in headers {
        let name = HeaderName::try_from(k.as_str()).map_err(|_| {
            ServiceError::invalid("invalid_header", format!("`{k}` is not a header name"))
        })?;
        if RESERVED_HEADERS.contains(&name.as_str()) || name.as_str().starts_with("x-hookline-") {
            return Err(ServiceError::invalid(
                "reserved_header",
                format!("`{k}` is set by Hookline"),
            ));
        }
        HeaderValue::try_from(v.as_str()).map_err(|_| {
            ServiceError::invalid("invalid_header", format!("the value of `{k}` is not valid"))
        })?;
        text("headers", &v, MAX_HEADER_VALUE)?;
        out.insert(name.as_str().to_owned(), v);
    }
    Ok(out)
}

/// Checks an idempotency key: 1 to [`MAX_IDEMPOTENCY_KEY`] visible ASCII characters.
pub fn idempotency_key(key: &str) -> Result<(), ServiceError> {
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ServiceError::invalid(
            "invalid_idempotency_key",
            format!("an idempotency key is 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
        ));
    }
    Ok(())
}

/// Checks a limit (`rateLimit`, `maxConcurrency`): absent, or at least 1 (`invalid_limit`).
pub fn positive(field: &str, value: Option<u32>) -> Result<Option<u32>, ServiceError> {
    match value {
        Some(0) => Err(ServiceError::invalid(
            "invalid_limit",
            format!("`{field}` must be at least 1"),
        )),
        other => Ok(other),
    }
}

/// Parses a caller-chosen signing secret (`invalid_secret`).
pub fn secret(raw: &str) -> Result<Secret, ServiceError> {
    Secret::parse(raw).map_err(|e| ServiceError::invalid("invalid_secret", e.to_string()))
}

/// Checks an event's `data`: a JSON object (`invalid_data`) of at most `max_bytes`
/// (`payload_too_large`).
pub fn event_data(data: &str, max_bytes: usize) -> Result<(), ServiceError> {
    if !data.trim_start().starts_with('{') {
        return Err(ServiceError::invalid(
            "invalid_data",
            "`data` must be a JSON object",
        ));
    }
    if data.len() > max_bytes {
        return Err(ServiceError::PayloadTooLarge {
            message: "`data` is larger than the limit".into(),
        });
    }
    if nesting_depth(data) > MAX_DATA_DEPTH {
        return Err(ServiceError::invalid(
            "invalid_data",
            format!(
                "`data` nests objects and arrays deeper than {MAX_DATA_DEPTH} levels, which \
                 common receiver parsers refuse"
            ),
        ));
    }
    Ok(())
}

/// Deepest nesting of objects and arrays accepted in `data` (the object itself is level 1).
/// Below the limits of common JSON parsers (serde_json 128, Ruby 100), so that no receiver
/// refuses an event for its shape and has it retried for a day.
pub const MAX_DATA_DEPTH: usize = 64;

/// The deepest nesting of `{`/`[` in a JSON text (brackets inside strings do not count).
fn nesting_depth(json: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for b in json.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code<T: std::fmt::Debug>(r: Result<T, ServiceError>) -> &'static str {
        r.unwrap_err().code()
    }

    #[test]
    fn urls_need_https_a_host_and_no_credentials() {
        assert_eq!(
            endpoint_url("https://example.com/hook", false).unwrap(),
            "https://example.com/hook"
        );
        assert_eq!(
            endpoint_url("HTTPS://Example.COM", false).unwrap(),
            "https://example.com/",
            "normal form"
        );
        assert_eq!(
            code(endpoint_url("http://example.com", false)),
            "insecure_url"
        );
        assert!(endpoint_url("http://example.com", true).is_ok());
        assert_eq!(code(endpoint_url("ftp://example.com", true)), "invalid_url");
        assert_eq!(code(endpoint_url("not a url", false)), "invalid_url");
        assert_eq!(
            code(endpoint_url("https://user:pw@example.com/", false)),
            "invalid_url"
        );
        assert_eq!(
            code(endpoint_url("https://user@example.com/", false)),
            "invalid_url"
        );
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL));
        assert_eq!(code(endpoint_url(&long, false)), "field_too_long");
        assert_eq!(
            code(endpoint_url("https://example.com/\0", false)),
            "invalid_text"
        );
    }

    #[test]
    fn headers_are_lower_cased_and_reserved_ones_refused() {
        let ok = endpoint_headers(BTreeMap::from([("X-Tenant".into(), "t1".into())])).unwrap();
        assert_eq!(ok.get("x-tenant").map(String::as_str), Some("t1"));
        for reserved in [
            "Content-Type",
            "webhook-signature",
            "X-Hookline-Anything",
            "host",
        ] {
            let h = BTreeMap::from([(reserved.to_owned(), "v".to_owned())]);
            assert_eq!(code(endpoint_headers(h)), "reserved_header", "{reserved}");
        }
        let bad_name = BTreeMap::from([("bad name".to_owned(), "v".to_owned())]);
        assert_eq!(code(endpoint_headers(bad_name)), "invalid_header");
        let bad_value = BTreeMap::from([("x-a".to_owned(), "line\nbreak".to_owned())]);
        assert_eq!(code(endpoint_headers(bad_value)), "invalid_header");
        let long_value = BTreeMap::from([("x-a".to_owned(), "v".repeat(MAX_HEADER_VALUE + 1))]);
        assert_eq!(code(endpoint_headers(long_value)), "field_too_long");
        let many: BTreeMap<String, String> = (0..=MAX_HEADERS)
            .map(|i| (format!("x-h{i}"), "v".to_owned()))
            .collect();
        assert_eq!(code(endpoint_headers(many)), "too_many_items");
    }

    #[test]
    fn idempotency_keys_are_visible_ascii_up_to_255() {
        assert!(idempotency_key("order-42").is_ok());
        assert!(idempotency_key(&"k".repeat(MAX_IDEMPOTENCY_KEY)).is_ok());
        for bad in [
            String::new(),
            "k".repeat(MAX_IDEMPOTENCY_KEY + 1),
            "has space".into(),
            "ünïcode".into(),
            "tab\t".into(),
        ] {
            assert_eq!(
                code(idempotency_key(&bad)),
                "invalid_idempotency_key",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn data_must_be_an_object_within_the_limit() {
        assert!(event_data(r#" {"a":1}"#, 100).is_ok());
        assert_eq!(code(event_data("[1]", 100)), "invalid_data");
        assert_eq!(code(event_data("\"s\"", 100)), "invalid_data");
        assert_eq!(
            code(event_data(r#"{"a":"0123456789"}"#, 10)),
            "payload_too_large"
        );
    }

    #[test]
    fn data_nesting_is_limited() {
        let nested = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n - 1), "]".repeat(n - 1));
        assert!(event_data(&nested(MAX_DATA_DEPTH), 1 << 20).is_ok());
        assert_eq!(
            code(event_data(&nested(MAX_DATA_DEPTH + 1), 1 << 20)),
            "invalid_data"
        );
        assert_eq!(code(event_data(&nested(100_000), 1 << 20)), "invalid_data");
        // Brackets inside strings, escaped quotes included, are text.
        let text = format!(r#"{{"s":"\"{}","t":1}}"#, "[".repeat(200));
        assert!(event_data(&text, 1 << 20).is_ok());
        assert_eq!(nesting_depth(r#"{"a":{"b":[{}]}}"#), 4);
    }

    #[test]
    fn limits_and_text() {
        assert_eq!(positive("rateLimit", Some(3)).unwrap(), Some(3));
        assert_eq!(positive("rateLimit", None).unwrap(), None);
        assert_eq!(code(positive("rateLimit", Some(0))), "invalid_limit");
        assert!(text("name", "ok", 2).is_ok());
        assert_eq!(code(text("name", "abc", 2)), "field_too_long");
        assert!(
            text("name", "éé", 2).is_ok(),
            "counts characters, not bytes"
        );
        assert_eq!(code(secret("not-a-secret")), "invalid_secret");
    }
}
