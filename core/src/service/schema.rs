//! JSON Schema for event data: checking a catalog entry's schema when it is written, and
//! validating each published event's `data` against it.
//!
//! A schema is compiled once per version of its catalog entry (the entry's name, creation and
//! last change) and the compiled validator is kept in a schema cache shared by every request
//! of a [`Hookline`](super::Hookline). An entry changed in another process shows up here as a
//! new version (its `updatedAt` moved) and is compiled again; the old version falls out of the
//! cache.
//!
//! Schemas are compiled without any remote or file `$ref` resolution: a schema may refer only to
//! its own parts (`#/$defs/…`) and to the standard meta-schemas. The draft is taken from
//! `$schema`, 2020-12 when absent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::ServiceError;
use crate::id::EventTypeName;
use crate::model::EventType;
use crate::time::Timestamp;

/// Most violations reported for one event.
pub const MAX_VIOLATIONS: usize = 10;

/// Most compiled schemas kept; past it the cache starts over (catalogs are far smaller).
const MAX_CACHED: usize = 1024;

/// One way an event's `data` breaks its type's schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Violation {
    /// Where in `data`, as a JSON pointer (RFC 6901); `""` is `data` itself.
    pub pointer: String,
    /// What is wrong there, for people.
    pub message: String,
}

impl Violation {
    /// A violation at `pointer`.
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

/// Compiles `schema`, or says why it is not a JSON Schema (`invalid_schema`): not an object or a
/// boolean, not valid against its draft's meta-schema, a `$ref` that does not resolve, a
/// `pattern` that is not a regular expression, …
pub fn compile(schema: &serde_json::Value) -> Result<jsonschema::Validator, ServiceError> {
    if !matches!(
        schema,
        serde_json::Value::Object(_) | serde_json::Value::Bool(_)
    ) {
        return Err(ServiceError::invalid(
            "invalid_schema",
            "`schema` must be a JSON Schema (an object or a boolean)",
        ));
    }
    jsonschema::validator_for(schema).map_err(|e| {
        let at = e.instance_path().as_str();
        let at = if at.is_empty() { "/" } else { at };
        ServiceError::invalid(
            "invalid_schema",
            format!("`schema` is not a valid JSON Schema (at `{at}`): {e}"),
        )
    })
}

/// Validates `data` with `validator`: the first [`MAX_VIOLATIONS`] violations, empty when valid.
pub fn violations(validator: &jsonschema::Validator, data: &serde_json::Value) -> Vec<Violation> {
    if validator.is_valid(data) {
        return Vec::new();
    }
    validator
        .iter_errors(data)
        .take(MAX_VIOLATIONS)
        .map(|e| Violation::new(e.instance_path().as_str(), e.to_string()))
        .collect()
}

/// Which version of a catalog entry a compiled schema belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    created_at: Timestamp,
    updated_at: Timestamp,
}

/// Compiled schemas by event type, one version each.
#[derive(Default)]
pub(crate) struct SchemaCache {
    compiled: Mutex<HashMap<EventTypeName, (Version, Arc<jsonschema::Validator>)>>,
}

impl std::fmt::Debug for SchemaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.compiled.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("SchemaCache").field("compiled", &n).finish()
    }
}

impl SchemaCache {
    /// The compiled schema of `et`, compiling it on first use of this version; `None` when the
    /// entry has no schema.
    pub(crate) fn validator(
        &self,
        et: &EventType,
    ) -> Result<Option<Arc<jsonschema::Validator>>, ServiceError> {
        let Some(schema) = &et.schema else {
            return Ok(None);
        };
        let version = Version {
            created_at: et.created_at,
            updated_at: et.updated_at,
        };
        if let Some((v, validator)) = self.lock().get(&et.name)
            && *v == version
        {
            return Ok(Some(validator.clone()));
        }
        // Compiled outside the lock: two requests may both compile a new version, once each.
        let validator = Arc::new(compile(schema)?);
        let mut map = self.lock();
        if map.len() >= MAX_CACHED && !map.contains_key(&et.name) {
            map.clear();
        }
        map.insert(et.name.clone(), (version, validator.clone()));
        Ok(Some(validator))
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<EventTypeName, (Version, Arc<jsonschema::Validator>)>>
    {
        // A panic while holding the lock leaves a consistent map: every write is one insert.
        self.compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many compiled schemas are kept (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(schema: serde_json::Value, updated: i64) -> EventType {
        let mut et = EventType::new(
            EventTypeName::parse("rx.completed").unwrap(),
            "",
            Timestamp::from_millis(1_000),
        );
        et.schema = Some(schema);
        et.updated_at = Timestamp::from_millis(updated);
        et
    }

    #[test]
    fn schemas_that_are_not_json_schema_are_refused() {
        for bad in [
            json!(3),
            json!("object"),
            json!({"type": "nothing"}),
            json!({"type": "string", "minLength": -1}),
            json!({"type": "string", "pattern": "(unclosed"}),
            json!({"$ref": "#/$defs/missing"}),
            json!({"$ref": "https://example.com/remote.json"}),
        ] {
            let err = compile(&bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert_eq!(err.code(), "invalid_schema", "{bad}");
        }
        assert!(compile(&json!(true)).is_ok());
        assert!(compile(&json!({"type": "object", "required": ["a"]})).is_ok());
    }

    #[test]
    fn violations_name_their_pointer_and_stop_at_ten() {
        let v = compile(&json!({
            "type": "object",
            "required": ["patient"],
            "properties": {
                "patient": {"type": "object", "properties": {"id": {"type": "string"}}},
                "items": {"type": "array", "items": {"type": "integer"}}
            }
        }))
        .unwrap();
        assert!(violations(&v, &json!({"patient": {"id": "p1"}})).is_empty());
        let found = violations(&v, &json!({"patient": {"id": 7}, "items": [1, "x"]}));
        let pointers: Vec<&str> = found.iter().map(|v| v.pointer.as_str()).collect();
        assert!(pointers.contains(&"/patient/id"), "{found:?}");
        assert!(pointers.contains(&"/items/1"), "{found:?}");
        assert!(found.iter().all(|v| !v.message.is_empty()));
        assert_eq!(
            violations(&v, &json!({}))[0].pointer,
            "",
            "a missing property is reported at its parent"
        );
        let many =
            json!({"items": (0..30).map(|i| format!("s{i}")).collect::<Vec<_>>(), "patient": {}});
        assert_eq!(violations(&v, &many).len(), MAX_VIOLATIONS);
    }

    #[test]
    fn a_schema_is_compiled_once_per_version() {
        let cache = SchemaCache::default();
        let first = entry(json!({"type": "object"}), 1_000);
        let a = cache.validator(&first).unwrap().unwrap();
        let b = cache.validator(&first).unwrap().unwrap();
        assert!(Arc::ptr_eq(&a, &b), "the same version is compiled once");
        let changed = entry(json!({"type": "object", "required": ["x"]}), 2_000);
        let c = cache.validator(&changed).unwrap().unwrap();
        assert!(!Arc::ptr_eq(&a, &c), "a new version is compiled again");
        assert!(!c.is_valid(&json!({})));
        assert_eq!(cache.len(), 1, "one version kept per type");
        let mut none = first.clone();
        none.schema = None;
        assert!(cache.validator(&none).unwrap().is_none());
    }
}
