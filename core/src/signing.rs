//! Signing schemes and their verifiers.
//!
//! Two schemes ship, both HMAC-SHA256 over the endpoint's secret key:
//! * [`StandardWebhooks`]: `webhook-id`, `webhook-timestamp` and `webhook-signature`
//!   (`v1,<base64 HMAC(key, "<id>.<timestamp>.<body>")>`, one entry per active secret,
//!   space-separated), as in the Standard Webhooks specification; verify with
//!   [`verify_standard`].
//! * [`RawBodySignature`]: one header (default `X-Hookline-Signature`) carrying
//!   `sha256=<hex HMAC(key, body)>`; with several active secrets (during a rotation) one entry per
//!   secret, comma-separated. Verify with [`verify_raw_body`].

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::time::Timestamp;

type HmacSha256 = Hmac<Sha256>;

/// The text every secret starts with.
pub const SECRET_PREFIX: &str = "whsec_";

/// An endpoint signing secret: `whsec_` + base64 of the key bytes. `Debug` never shows it.
///
/// As a store hands it over, a secret may also be *sealed*: encrypted at rest under a deployment
/// key ([`crate::sealing`]), kept as its `hk1:` text until
/// [`SealedStore`](crate::sealing::SealedStore) opens it. A sealed secret signs nothing: it is
/// never among an endpoint's [`active_secrets`](crate::model::Endpoint::active_secrets).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Vec<u8>,
    /// The sealed text, for a secret read from an encrypted store and not opened (`key` is
    /// then empty).
    sealed: Option<Box<str>>,
}

/// Text that is not a `whsec_…` secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("a secret is `whsec_` followed by base64 of 24 to 64 bytes")]
pub struct InvalidSecret;

impl Secret {
    /// A new random 32-byte secret.
    pub fn generate() -> Self {
        use rand::RngCore as _;
        let mut key = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        Self { key, sealed: None }
    }

    /// Parses `whsec_<base64>`.
    pub fn parse(s: &str) -> Result<Self, InvalidSecret> {
        let b64 = s.strip_prefix(SECRET_PREFIX).ok_or(InvalidSecret)?;
        let key = B64.decode(b64).map_err(|_| InvalidSecret)?;
        if !(24..=64).contains(&key.len()) {
            return Err(InvalidSecret);
        }
        Ok(Self { key, sealed: None })
    }

    /// A secret kept as its sealed text (`hk1:…`), as an encrypted store holds it.
    pub(crate) fn from_sealed(text: &str) -> Self {
        Self {
            key: Vec::new(),
            sealed: Some(text.into()),
        }
    }

    /// The sealed text, when this secret is sealed (read from an encrypted store and not
    /// opened).
    pub fn sealed(&self) -> Option<&str> {
        self.sealed.as_deref()
    }

    /// Whether this is a sealed secret, which signs nothing.
    pub fn is_sealed(&self) -> bool {
        self.sealed.is_some()
    }

    /// The raw key bytes (empty for a sealed secret).
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The `whsec_…` text form. Handle with care: it is the secret. A sealed secret gives its
    /// sealed text.
    pub fn expose(&self) -> String {
        match &self.sealed {
            Some(text) => text.to_string(),
            None => format!("{SECRET_PREFIX}{}", B64.encode(&self.key)),
        }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length.
        HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!("hmac takes any key"))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_sealed() {
            f.write_str("Secret(sealed)")
        } else {
            f.write_str("Secret(whsec_***)")
        }
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.expose())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if crate::sealing::is_sealed(&s) {
            return Ok(Self::from_sealed(&s));
        }
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// What a signer signs.
#[derive(Debug, Clone, Copy)]
pub struct SignInput<'a> {
    /// The message id (the event id).
    pub msg_id: &'a str,
    /// When this attempt is made.
    pub timestamp: Timestamp,
    /// The exact request body.
    pub body: &'a [u8],
    /// The endpoint's active secrets, newest first.
    pub secrets: &'a [&'a Secret],
}

/// A signing scheme: adds its headers to an outgoing request. Pure and synchronous.
pub trait Signer: Send + Sync + fmt::Debug + 'static {
    /// Adds this scheme's headers for `input` to `headers`.
    fn sign(&self, input: &SignInput<'_>, headers: &mut HeaderMap);
}

/// Standard Webhooks signatures (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
#[derive(Debug, Clone, Copy, Default)]
pub struct StandardWebhooks;

/// The Standard Webhooks `v1,` signature of one message under one secret.
pub fn standard_signature(secret: &Secret, msg_id: &str, unix_secs: i64, body: &[u8]) -> String {
    let mut mac = secret.mac();
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(unix_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// The raw-body signature `sha256=<hex>` of `body` under one secret.
pub fn raw_body_signature(secret: &Secret, body: &[u8]) -> String {
    let mut mac = secret.mac();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn header_value(s: &str) -> HeaderValue {
    // Signatures, ids and numbers are ASCII; this never fails for what the signers produce.
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

impl Signer for StandardWebhooks {
    fn sign(&self, input: &SignInput<'_>, headers: &mut HeaderMap) {
        let secs = input.timestamp.as_unix_secs();
        let sigs: Vec<String> = input
            .secrets
            .iter()
            .map(|s| standard_signature(s, input.msg_id, secs, input.body))
            .collect();
        headers.insert("webhook-id", header_value(input.msg_id));
        headers.insert("webhook-timestamp", header_value(&secs.to_string()));
        headers.insert("webhook-signature", header_value(&sigs.join(" ")));
    }
}

/// The raw-body scheme: `<header>: sha256=<hex HMAC-SHA256(key, body)>`.
#[derive(Debug, Clone)]
pub struct RawBodySignature {
    header: HeaderName,
}

impl RawBodySignature {
    /// The default header name.
    pub const DEFAULT_HEADER: &'static str = "X-Hookline-Signature";

    /// Signs into `header` (e.g. `X-AutoRx-Signature`).
    pub fn new(header: HeaderName) -> Self {
        Self { header }
    }

    /// The header this scheme writes.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }
}

impl Default for RawBodySignature {
    fn default() -> Self {
        Self::new(HeaderName::from_static("x-hookline-signature"))
    }
}

impl Signer for RawBodySignature {
    fn sign(&self, input: &SignInput<'_>, headers: &mut HeaderMap) {
        let sigs: Vec<String> = input
            .secrets
            .iter()
            .map(|s| raw_body_signature(s, input.body))
            .collect();
        headers.insert(self.header.clone(), header_value(&sigs.join(",")));
    }
}

/// Several schemes applied in turn; the default is Standard Webhooks plus the raw-body header.
#[derive(Debug)]
pub struct SignerSet(Vec<Box<dyn Signer>>);

impl SignerSet {
    /// Applies every signer in `signers`.
    pub fn new(signers: Vec<Box<dyn Signer>>) -> Self {
        Self(signers)
    }
}

impl Default for SignerSet {
    fn default() -> Self {
        Self(vec![
            Box::new(StandardWebhooks),
            Box::new(RawBodySignature::default()),
        ])
    }
}

impl Signer for SignerSet {
    fn sign(&self, input: &SignInput<'_>, headers: &mut HeaderMap) {
        for s in &self.0 {
            s.sign(input, headers);
        }
    }
}

/// Why a request failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A required header is absent or not text.
    #[error("missing or unreadable header `{0}`")]
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not a number.
    #[error("invalid webhook-timestamp")]
    InvalidTimestamp,
    /// The timestamp is further from now than the tolerance.
    #[error("timestamp outside the tolerance")]
    TimestampOutOfTolerance,
    /// No signature matched.
    #[error("no matching signature")]
    NoMatch,
}

/// How far a `webhook-timestamp` may be from the receiver's clock (5 minutes).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Verifies a Standard Webhooks request: headers present, timestamp within `tolerance` of `now`,
/// and at least one `v1,` signature matching `secret` (compared in constant time).
pub fn verify_standard(
    secret: &Secret,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let get = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(VerifyError::MissingHeader(name))
    };
    let id = get("webhook-id")?;
    let ts: i64 = get("webhook-timestamp")?
        .trim()
        .parse()
        .map_err(|_| VerifyError::InvalidTimestamp)?;
    let sigs = get("webhook-signature")?;
    // `abs_diff`: a timestamp near `i64::MIN` or `i64::MAX` must not overflow.
    let skew = now.as_unix_secs().abs_diff(ts);
    if skew > tolerance.as_secs() {
        return Err(VerifyError::TimestampOutOfTolerance);
    }
    let expected = standard_signature(secret, id, ts, body);
    let expected = expected.as_bytes();
    let found = sigs
        .split(' ')
        .any(|candidate| candidate.as_bytes().ct_eq(expected).into());
    if found {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

/// Verifies a raw-body signature header value (`sha256=<hex>`, or several comma-separated)
/// against `secret`.
pub fn verify_raw_body(
    secret: &Secret,
    header_value: &str,
    body: &[u8],
) -> Result<(), VerifyError> {
    let expected = raw_body_signature(secret, body);
    let expected = expected.as_bytes();
    let found = header_value
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate.as_bytes().ct_eq(expected).into());
    if found {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn standard_signature_matches_the_reference_vector() {
        let secret = Secret::parse(SECRET).unwrap();
        assert_eq!(standard_signature(&secret, ID, TS, BODY), EXPECTED);
    }

    #[test]
    fn signer_output_verifies_and_tampering_fails() {
        let secret = Secret::parse(SECRET).unwrap();
        let now = Timestamp::from_millis(TS * 1000 + 10);
        let mut headers = HeaderMap::new();
        let input = SignInput {
            msg_id: ID,
            timestamp: now,
            body: BODY,
            secrets: &[&secret],
        };
        SignerSet::default().sign(&input, &mut headers);
        assert_eq!(headers["webhook-signature"], EXPECTED);
        assert_eq!(
            verify_standard(&secret, &headers, BODY, now, DEFAULT_TOLERANCE),
            Ok(())
        );
        assert_eq!(
            verify_standard(&secret, &headers, b"{}", now, DEFAULT_TOLERANCE),
            Err(VerifyError::NoMatch)
        );
        let late = now.add(Duration::from_secs(301));
        assert_eq!(
            verify_standard(&secret, &headers, BODY, late, DEFAULT_TOLERANCE),
            Err(VerifyError::TimestampOutOfTolerance)
        );
        let raw = headers["x-hookline-signature"].to_str().unwrap();
        assert!(raw.starts_with("sha256="));
        assert_eq!(verify_raw_body(&secret, raw, BODY), Ok(()));
        assert_eq!(
            verify_raw_body(&secret, raw, b"x"),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn every_active_secret_signs() {
        let old = Secret::generate();
        let new = Secret::generate();
        let now = Timestamp::from_millis(TS * 1000);
        let mut headers = HeaderMap::new();
        let input = SignInput {
            msg_id: ID,
            timestamp: now,
            body: BODY,
            secrets: &[&new, &old],
        };
        SignerSet::new(vec![
            Box::new(StandardWebhooks),
            Box::new(RawBodySignature::new(HeaderName::from_static(
                "x-autorx-signature",
            ))),
        ])
        .sign(&input, &mut headers);
        assert_eq!(
            headers["webhook-signature"]
                .to_str()
                .unwrap()
                .split(' ')
                .count(),
            2
        );
        for s in [&old, &new] {
            assert_eq!(
                verify_standard(s, &headers, BODY, now, DEFAULT_TOLERANCE),
                Ok(())
            );
            let raw = headers["x-autorx-signature"].to_str().unwrap();
            assert_eq!(verify_raw_body(s, raw, BODY), Ok(()));
        }
        let stranger = Secret::generate();
        assert!(verify_standard(&stranger, &headers, BODY, now, DEFAULT_TOLERANCE).is_err());
    }

    #[test]
    fn secrets_parse_and_hide() {
        let s = Secret::generate();
        assert_eq!(Secret::parse(&s.expose()).unwrap(), s);
        assert!(format!("{s:?}").contains("***"));
        assert!(Secret::parse("whsec_!!").is_err());
        assert!(Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
    }
}
