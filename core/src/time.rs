//! Time as the engine sees it: a UTC millisecond [`Timestamp`] and the [`Clock`] that supplies it.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;

/// A UTC instant with millisecond precision (milliseconds since the Unix epoch).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

/// Text that is not an RFC 3339 timestamp.
#[derive(Debug, Clone, thiserror::Error)]
#[error("not an RFC 3339 timestamp (e.g. 2026-11-25T15:40:55.123Z)")]
pub struct InvalidTimestamp;

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// From milliseconds since the Unix epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the Unix epoch (rounded down).
    pub const fn as_unix_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// The current system time.
    pub fn now() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self(i64::try_from(now.as_millis()).unwrap_or(i64::MAX))
    }

    /// This instant plus `d` (saturating).
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(ms))
    }

    /// This instant minus `d` (saturating).
    #[allow(clippy::should_implement_trait)]
    pub fn sub(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(ms))
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// RFC 3339 in UTC with milliseconds: `2026-11-25T15:40:55.123Z`.
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) => {
                let (y, mo, d) = (t.year(), u8::from(t.month()), t.day());
                format!(
                    "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
                    t.hour(),
                    t.minute(),
                    t.second(),
                    t.millisecond()
                )
            }
            Err(_) => self.0.to_string(),
        }
    }

    /// Parses RFC 3339 (any offset; sub-millisecond digits are dropped).
    pub fn parse_rfc3339(s: &str) -> Result<Self, InvalidTimestamp> {
        let t = time::OffsetDateTime::parse(s, &Rfc3339).map_err(|_| InvalidTimestamp)?;
        let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
        Ok(Self(i64::try_from(ms).map_err(|_| InvalidTimestamp)?))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, SchemaFormat, Type};
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some(
                "An RFC 3339 instant, in UTC with milliseconds when the server writes it.",
            ))
            .examples(["2026-11-25T15:40:55.123Z"])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Timestamp {}

/// Where the engine reads the time. Passed in everywhere so that tests can drive it.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_with_millis() {
        let t = Timestamp::parse_rfc3339("2026-11-25T15:40:55.123Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-25T15:40:55.123Z");
        assert_eq!(t.as_unix_secs(), 1_795_621_255);
        let offset = Timestamp::parse_rfc3339("2026-11-25T10:40:55.123-05:00").unwrap();
        assert_eq!(offset, t);
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
        assert_eq!(Timestamp::EPOCH.to_rfc3339(), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_millis(1_000);
        assert_eq!(t.add(Duration::from_secs(1)).as_millis(), 2_000);
        assert_eq!(t.since(t.add(Duration::from_secs(5))), Duration::ZERO);
        assert_eq!(
            t.add(Duration::from_secs(5)).since(t),
            Duration::from_secs(5)
        );
    }
}
