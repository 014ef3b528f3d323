//! The event-type catalog.

use serde::Deserialize;

use super::validate::{self, MAX_DESCRIPTION};
use super::{Actor, Hookline, ListQuery, ServiceError};
use crate::id::EventTypeName;
use crate::model::{EventType, Page};

/// A new catalog entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewEventType {
    /// The name, e.g. `order.paid`.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::id::EventTypeName))]
    pub name: String,
    /// What the event means.
    #[serde(default)]
    pub description: String,
    /// An optional JSON Schema for the event's `data` (an object or a boolean).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<JsonSchemaDoc>))]
    pub schema: Option<serde_json::Value>,
    /// Whether it starts archived (accepting no events).
    #[serde(default)]
    pub archived: bool,
}

impl NewEventType {
    /// An entry named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            schema: None,
            archived: false,
        }
    }

    /// Sets the description.
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = d.into();
        self
    }

    /// Sets the JSON Schema of `data`.
    pub fn schema(mut self, schema: serde_json::Value) -> Self {
        self.schema = Some(schema);
        self
    }

    /// Sets whether it is archived.
    pub fn archived(mut self, archived: bool) -> Self {
        self.archived = archived;
        self
    }
}

/// Changes to a catalog entry, a JSON Merge Patch: absent fields stay, `null` (`Some(None)`)
/// resets a field to its default (no schema, an empty description, not archived).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventTypePatch {
    /// A new description, or `Some(None)` (`null`) to empty it.
    #[serde(default, deserialize_with = "super::present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub description: Option<Option<String>>,
    /// A new schema, or `Some(None)` to remove it.
    #[serde(default, deserialize_with = "super::present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<JsonSchemaDoc>))]
    pub schema: Option<Option<serde_json::Value>>,
    /// Archive or restore; `Some(None)` (`null`) restores.
    #[serde(default, deserialize_with = "super::present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<bool>))]
    pub archived: Option<Option<bool>>,
}

impl EventTypePatch {
    /// No change.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the description.
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = Some(Some(d.into()));
        self
    }

    /// Sets (`Some`) or removes (`None`) the schema.
    pub fn schema(mut self, schema: Option<serde_json::Value>) -> Self {
        self.schema = Some(schema);
        self
    }

    /// Archives or restores.
    pub fn archived(mut self, archived: bool) -> Self {
        self.archived = Some(Some(archived));
        self
    }
}

/// How the OpenAPI document describes a JSON Schema: an object, or a boolean.
#[cfg(feature = "openapi")]
pub(crate) struct JsonSchemaDoc;

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for JsonSchemaDoc {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Object))
            .item(ObjectBuilder::new().schema_type(Type::Boolean))
            .description(Some("A JSON Schema: an object, or a boolean."))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for JsonSchemaDoc {
    fn name() -> std::borrow::Cow<'static, str> {
        "JsonSchema".into()
    }
}

/// Refuses a schema that does not compile as a JSON Schema (`invalid_schema`).
fn check_schema(schema: Option<&serde_json::Value>) -> Result<(), ServiceError> {
    match schema {
        None => Ok(()),
        Some(s) => super::schema::compile(s).map(drop),
    }
}

impl Hookline {
    /// Adds an event type to the catalog (admin only): `invalid_id`, `field_too_long`,
    /// `invalid_schema`, `event_type_exists`.
    pub async fn create_event_type(
        &self,
        by: &Actor,
        input: NewEventType,
    ) -> Result<EventType, ServiceError> {
        by.require_write()?;
        by.require_admin()?;
        let name = EventTypeName::parse(&input.name)?;
        validate::text("description", &input.description, MAX_DESCRIPTION)?;
        check_schema(input.schema.as_ref())?;
        let mut et = EventType::new(name, input.description, self.now());
        et.schema = input.schema;
        et.archived = input.archived;
        self.store()
            .create_event_type(&et)
            .await
            .map_err(ServiceError::conflict_as("event_type_exists", || {
                format!("event type `{}` exists", et.name)
            }))?;
        self.audit(by, None, "event_type.created", et.name.as_str())
            .await;
        Ok(et)
    }

    /// Lists the catalog, newest first (any caller).
    pub async fn list_event_types(
        &self,
        _by: &Actor,
        paging: &ListQuery,
    ) -> Result<Page<EventType>, ServiceError> {
        Ok(self.store().list_event_types(&paging.request()?).await?)
    }

    /// One catalog entry (any caller): `event_type_not_found`.
    pub async fn event_type(&self, _by: &Actor, name: &str) -> Result<EventType, ServiceError> {
        let name = EventTypeName::parse(name)?;
        self.store().event_type(&name).await?.ok_or_else(|| {
            ServiceError::not_found("event_type_not_found", format!("no event type `{name}`"))
        })
    }

    /// Changes a catalog entry (admin only).
    pub async fn update_event_type(
        &self,
        by: &Actor,
        name: &str,
        patch: EventTypePatch,
    ) -> Result<EventType, ServiceError> {
        by.require_write()?;
        by.require_admin()?;
        let mut et = self.event_type(by, name).await?;
        if let Some(d) = patch.description {
            let d = d.unwrap_or_default();
            validate::text("description", &d, MAX_DESCRIPTION)?;
            et.description = d;
        }
        if let Some(schema) = patch.schema {
            check_schema(schema.as_ref())?;
            et.schema = schema;
        }
        if let Some(a) = patch.archived {
            et.archived = a.unwrap_or(false);
        }
        et.updated_at = self.now();
        self.store().update_event_type(&et).await?;
        self.audit(by, None, "event_type.updated", et.name.as_str())
            .await;
        Ok(et)
    }

    /// Removes a catalog entry (admin only).
    pub async fn delete_event_type(&self, by: &Actor, name: &str) -> Result<(), ServiceError> {
        by.require_write()?;
        by.require_admin()?;
        let et = self.event_type(by, name).await?;
        self.store().delete_event_type(&et.name).await?;
        self.audit(by, None, "event_type.deleted", et.name.as_str())
            .await;
        Ok(())
    }
}
