//! Identifiers: generated, prefixed, time-sortable ids for events, endpoints, deliveries and
//! attempts, and validated producer-chosen ids for accounts, sites and event types.

use std::fmt;
use std::sync::Mutex;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An id or name that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct InvalidId {
    /// What kind of id was expected (`account id`, `event id`, …).
    pub kind: &'static str,
    /// Why it was rejected.
    pub reason: &'static str,
}

static GENERATOR: Mutex<Option<ulid::Generator>> = Mutex::new(None);

/// A new 26-character, Crockford base32, time-sortable unique id (monotonic within a process).
fn sortable_unique() -> String {
    let mut slot = GENERATOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let generator = slot.get_or_insert_with(ulid::Generator::new);
    match generator.generate() {
        Ok(u) => u.to_string(),
        // The random part overflowed within one millisecond: fall back to a fresh id.
        Err(_) => ulid::Ulid::new().to_string(),
    }
}

macro_rules! generated_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A new, time-sortable id.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, sortable_unique()))
            }

            /// Parses an id received from outside (an URL path, a store row).
            pub fn parse(s: &str) -> Result<Self, InvalidId> {
                let rest = s.strip_prefix($prefix).ok_or(InvalidId {
                    kind: $kind,
                    reason: concat!("must start with `", $prefix, "`"),
                })?;
                if rest.len() != 26 || ulid::Ulid::from_string(rest).is_err() {
                    return Err(InvalidId { kind: $kind, reason: "malformed" });
                }
                Ok(Self(s.to_owned()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                Self::parse(s)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(concat!("^", $prefix, "[0-7][0-9A-HJKMNP-TV-Z]{25}$")))
                    .examples([concat!($prefix, "01KB2Z6Q3V8M4J7X0R5T9W1C2D")])
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

generated_id!(
    /// An event id: `evt_` + a sortable unique id. The same on every retry of the event.
    EventId, "evt_", "event id"
);
generated_id!(
    /// An endpoint id: `ep_` + a sortable unique id.
    EndpointId, "ep_", "endpoint id"
);
generated_id!(
    /// A delivery id (one event bound for one endpoint): `dlv_` + a sortable unique id.
    DeliveryId, "dlv_", "delivery id"
);
generated_id!(
    /// An attempt id: `atm_` + a sortable unique id.
    AttemptId, "atm_", "attempt id"
);

generated_id!(
    /// A replay job id: `rpl_` + a sortable unique id.
    ReplayId, "rpl_", "replay id"
);

generated_id!(
    /// An audit-log entry id: `aud_` + a sortable unique id.
    AuditId, "aud_", "audit entry id"
);

/// An API key's id: `key_` + the first 16 hex digits of the key's SHA-256 hash.
///
/// It names a key in listings and revocations without revealing it, and anyone holding a key
/// can compute its id ([`KeyId::of_hash`]); the hash is of 256 random bits, so 64 bits of it
/// tell nothing about the key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// The prefix every key id starts with.
    pub const PREFIX: &'static str = "key_";

    /// The id of the key whose lower-case hex SHA-256 is `hash`.
    pub fn of_hash(hash: &str) -> Self {
        Self(format!("key_{}", &hash[..hash.len().min(16)]))
    }

    /// Parses an id received from outside (an URL path).
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let rest = s.strip_prefix("key_").ok_or(InvalidId {
            kind: "key id",
            reason: "must start with `key_`",
        })?;
        if rest.len() != 16 || !rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(InvalidId {
                kind: "key id",
                reason: "malformed",
            });
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for KeyId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^key_[0-9a-f]{16}$"))
            .examples(["key_3f9a0c1d2e4b5a69"])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for KeyId {}

macro_rules! named_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal, $max:literal, $extra:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates a producer-chosen id.
            pub fn parse(s: &str) -> Result<Self, InvalidId> {
                if s.is_empty() || s.len() > $max {
                    return Err(InvalidId {
                        kind: $kind,
                        reason: concat!("must be 1 to ", $max, " characters"),
                    });
                }
                let ok = s
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || $extra.as_bytes().contains(&b));
                if !ok {
                    return Err(InvalidId {
                        kind: $kind,
                        reason: concat!("may contain only A-Z, a-z, 0-9, `_`, `-`", " and `", $extra, "`"),
                    });
                }
                Ok(Self(s.to_owned()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                Self::parse(s)
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(concat!("^[A-Za-z0-9_", $extra, "-]{1,", $max, "}$")))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

named_id!(
    /// An account (tenant) id chosen by the producer: `^[A-Za-z0-9_-]{1,64}$`.
    AccountId, "account id", 64, ""
);
named_id!(
    /// A site id chosen by the producer, unique within its account: `^[A-Za-z0-9_-]{1,64}$`.
    SiteId, "site id", 64, ""
);
named_id!(
    /// An event type name such as `rx.completed`: `^[A-Za-z0-9_.-]{1,128}$`.
    EventTypeName, "event type", 128, "."
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_sort_in_creation_order_and_round_trip() {
        let ids: Vec<EventId> = (0..1000).map(|_| EventId::generate()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        for id in &ids {
            assert_eq!(EventId::parse(id.as_str()).as_ref(), Ok(id));
        }
        assert!(EventId::parse("ep_01JD0000000000000000000000").is_err());
        assert!(EventId::parse("evt_nope").is_err());
    }

    #[test]
    fn key_ids_are_a_hash_prefix() {
        let id = KeyId::of_hash(&"ab12".repeat(16));
        assert_eq!(id.as_str(), "key_ab12ab12ab12ab12");
        assert_eq!(KeyId::parse(id.as_str()).as_ref(), Ok(&id));
        assert!(KeyId::parse("key_AB12ab12ab12ab12").is_err());
        assert!(KeyId::parse("key_ab12").is_err());
        assert!(KeyId::parse("ep_ab12ab12ab12ab12").is_err());
    }

    #[test]
    fn named_ids_follow_the_pattern() {
        assert!(AccountId::parse("pharma-banner_01").is_ok());
        assert!(AccountId::parse("").is_err());
        assert!(AccountId::parse(&"a".repeat(65)).is_err());
        assert!(AccountId::parse("a.b").is_err());
        assert!(AccountId::parse("a b").is_err());
        assert!(EventTypeName::parse("rx.completed").is_ok());
        assert!(EventTypeName::parse("rx/completed").is_err());
    }
}
