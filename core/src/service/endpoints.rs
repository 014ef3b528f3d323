//! Endpoints: their settings, secrets, state, test events and recovery.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::validate::{self, MAX_DESCRIPTION, MAX_FILTER};
use super::{Actor, Hookline, ListQuery, ServiceError};
use crate::id::{AccountId, EndpointId, EventId, EventTypeName, SiteId};
use crate::model::{Endpoint, EndpointSecret, Event, Page};
use crate::signing::Secret;
use crate::store::Receipt;
use crate::time::Timestamp;

/// The event type of test events; it need not be in the catalog.
pub const TEST_EVENT_TYPE: &str = "hookline.test";

/// Why an endpoint disabled by a caller is disabled.
const DISABLED_BY_CALLER: &str = "disabled through the API";

/// A new endpoint. Only the URL is required; filters empty means every event type and every
/// site, and a signing secret is generated unless one is given.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewEndpoint {
    /// The target URL (`https`, or `http` where allowed).
    pub url: String,
    /// Free text.
    pub description: Option<String>,
    /// Event types it takes (names in the catalog); empty takes every type.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::id::EventTypeName>, max_items = 100))]
    pub event_types: Vec<String>,
    /// Sites it takes (ids in the account); empty makes it shared by all sites.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::id::SiteId>, max_items = 100))]
    pub sites: Vec<String>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Requests per second, if limited.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 4294967295_u64, format = Int64))]
    pub rate_limit: Option<u32>,
    /// Requests in flight at once, if limited.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 4294967295_u64, format = Int64))]
    pub max_concurrency: Option<u32>,
    /// Deliver events that share a `queueId` in order.
    #[serde(default)]
    pub ordered: bool,
    /// The signing secret (`whsec_…`); generated when absent.
    pub secret: Option<String>,
    /// Whether deliveries are sent (default yes).
    pub enabled: Option<bool>,
}

impl NewEndpoint {
    /// An endpoint for `url` taking every event.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            description: None,
            event_types: Vec::new(),
            sites: Vec::new(),
            headers: BTreeMap::new(),
            rate_limit: None,
            max_concurrency: None,
            ordered: false,
            secret: None,
            enabled: None,
        }
    }

    /// Sets the description.
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = Some(d.into());
        self
    }

    /// Takes only these event types.
    pub fn event_types<S: Into<String>>(mut self, types: impl IntoIterator<Item = S>) -> Self {
        self.event_types = types.into_iter().map(Into::into).collect();
        self
    }

    /// Takes only events of these sites.
    pub fn sites<S: Into<String>>(mut self, sites: impl IntoIterator<Item = S>) -> Self {
        self.sites = sites.into_iter().map(Into::into).collect();
        self
    }

    /// Adds an extra request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Limits requests per second.
    pub fn rate_limit(mut self, per_second: u32) -> Self {
        self.rate_limit = Some(per_second);
        self
    }

    /// Limits requests in flight at once.
    pub fn max_concurrency(mut self, n: u32) -> Self {
        self.max_concurrency = Some(n);
        self
    }

    /// Delivers events that share a `queueId` in order.
    pub fn ordered(mut self, ordered: bool) -> Self {
        self.ordered = ordered;
        self
    }

    /// Uses this signing secret (`whsec_…`) instead of a generated one.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// Creates it enabled (the default) or disabled.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = Some(enabled);
        self
    }
}

/// Changes to an endpoint, a JSON Merge Patch: absent fields stay; `null` (`Some(None)`) resets
/// a field to its default (no description, no filter, no headers, no limit, not ordered,
/// enabled), except `url`, which is required (`null` is refused); `headers` merges header by
/// header (a value sets one, `null` removes one, the others stay).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndpointPatch {
    /// A new URL (it cannot be removed).
    #[serde(default, deserialize_with = "super::required")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, required = false))]
    pub url: Option<String>,
    /// A new description, or `Some(None)` to clear it.
    #[serde(default, deserialize_with = "super::present")]
    pub description: Option<Option<String>>,
    /// A new event-type filter, or `Some(None)` (`null`) for none (every type).
    #[serde(default, deserialize_with = "super::present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<crate::id::EventTypeName>>, max_items = 100))]
    pub event_types: Option<Option<Vec<String>>>,
    /// A new site filter, or `Some(None)` (`null`) for none (shared).
    #[serde(default, deserialize_with = "super::present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<crate::id::SiteId>>, max_items = 100))]
    pub sites: Option<Option<Vec<String>>>,
    /// Changes to the extra headers, merged into them: a header with a value is set, one with
    /// `None` (`null`) removed, the others stay; `Some(None)` (`null` for the whole object)
    /// removes them all.
    #[serde(default, deserialize_with = "super::present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<BTreeMap<String, Option<String>>>))]
    pub headers: Option<Option<BTreeMap<String, Option<String>>>>,
    /// A new rate limit, or `Some(None)` to remove it.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 4294967295_u64, format = Int64))]
    #[serde(default, deserialize_with = "super::present")]
    pub rate_limit: Option<Option<u32>>,
    /// A new concurrency limit, or `Some(None)` to remove it.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 4294967295_u64, format = Int64))]
    #[serde(default, deserialize_with = "super::present")]
    pub max_concurrency: Option<Option<u32>>,
    /// Ordered delivery on or off; `Some(None)` (`null`) turns it off.
    #[serde(default, deserialize_with = "super::present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<bool>))]
    pub ordered: Option<Option<bool>>,
    /// Enable or disable (see [`Hookline::enable_endpoint`]); `Some(None)` (`null`) enables.
    #[serde(default, deserialize_with = "super::present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<bool>))]
    pub enabled: Option<Option<bool>>,
}

impl EndpointPatch {
    /// No change.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the URL.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Sets or clears the description.
    pub fn description(mut self, d: Option<String>) -> Self {
        self.description = Some(d);
        self
    }

    /// Replaces the event-type filter.
    pub fn event_types<S: Into<String>>(mut self, types: impl IntoIterator<Item = S>) -> Self {
        self.event_types = Some(Some(types.into_iter().map(Into::into).collect()));
        self
    }

    /// Replaces the site filter.
    pub fn sites<S: Into<String>>(mut self, sites: impl IntoIterator<Item = S>) -> Self {
        self.sites = Some(Some(sites.into_iter().map(Into::into).collect()));
        self
    }

    /// Sets these extra headers; the others stay (a merge).
    pub fn headers(self, headers: BTreeMap<String, String>) -> Self {
        self.merge_headers(headers.into_iter().map(|(k, v)| (k, Some(v))))
    }

    /// Merges header changes: `Some` sets a header, `None` removes it, the others stay.
    pub fn merge_headers(
        mut self,
        changes: impl IntoIterator<Item = (String, Option<String>)>,
    ) -> Self {
        let merged = self
            .headers
            .get_or_insert(None)
            .get_or_insert_with(BTreeMap::new);
        merged.extend(changes);
        self
    }

    /// Removes every extra header.
    pub fn remove_headers(mut self) -> Self {
        self.headers = Some(None);
        self
    }

    /// Sets or removes the rate limit.
    pub fn rate_limit(mut self, per_second: Option<u32>) -> Self {
        self.rate_limit = Some(per_second);
        self
    }

    /// Sets or removes the concurrency limit.
    pub fn max_concurrency(mut self, n: Option<u32>) -> Self {
        self.max_concurrency = Some(n);
        self
    }

    /// Turns ordered delivery on or off.
    pub fn ordered(mut self, ordered: bool) -> Self {
        self.ordered = Some(Some(ordered));
        self
    }

    /// Enables or disables.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = Some(Some(enabled));
        self
    }
}

/// A secret rotation: the new secret, or `None` to generate one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SecretRotation {
    /// The new signing secret (`whsec_…`).
    pub secret: Option<String>,
}

impl SecretRotation {
    /// Rotates to a generated secret.
    pub fn generated() -> Self {
        Self::default()
    }

    /// Rotates to `secret`.
    pub fn to(secret: impl Into<String>) -> Self {
        Self {
            secret: Some(secret.into()),
        }
    }
}

/// Sets the enabled flag and the reason; true if it changed.
fn set_enabled(ep: &mut Endpoint, enabled: bool) -> bool {
    if ep.enabled == enabled {
        return false;
    }
    ep.enabled = enabled;
    ep.disabled_reason = (!enabled).then(|| DISABLED_BY_CALLER.to_owned());
    true
}

/// Makes `new` the current secret at `now`: every older secret stops signing at the end of the
/// overlap (or sooner, if it was due to), and those already stopped are dropped.
/// What shows in place of a header value masked by [`mask_header_value`].
pub const HEADER_MASK: &str = "••••";

/// Custom header values are write-only: the JSON API shows each one masked, as [`HEADER_MASK`]
/// followed by its last four characters when it has at least 16 (enough to tell two tokens
/// apart, too few to guess one), as the mask alone otherwise.
pub fn mask_header_value(value: &str) -> String {
    let n = value.chars().count();
    if n >= 16 {
        let tail: String = value.chars().skip(n - 4).collect();
        format!("{HEADER_MASK}{tail}")
    } else {
        HEADER_MASK.to_owned()
    }
}

/// New headers for an update: a value given as the masked form of the header's current value
/// (an endpoint read back and sent again) keeps the current value; any other masked value is
/// `invalid_header`.
fn keep_masked_headers(
    new: BTreeMap<String, String>,
    current: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ServiceError> {
    new.into_iter()
        .map(|(name, value)| {
            if !value.starts_with(HEADER_MASK) {
                return Ok((name, value));
            }
            let kept = current
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&name))
                .map(|(_, v)| v)
                .filter(|v| mask_header_value(v) == value);
            match kept {
                Some(v) => Ok((name, v.clone())),
                None => Err(ServiceError::invalid(
                    "invalid_header",
                    format!(
                        "the value of `{name}` is masked, but not the mask of its current value: \
                         header values are write-only, send the value itself"
                    ),
                )),
            }
        })
        .collect()
}

fn rotate(secrets: &mut Vec<EndpointSecret>, new: Secret, now: Timestamp, overlap: Duration) {
    let overlap_end = now.add(overlap);
    for s in secrets.iter_mut() {
        if s.expires_at.is_none_or(|t| t > overlap_end) {
            s.expires_at = Some(overlap_end);
        }
    }
    secrets.retain(|s| s.expires_at.is_none_or(|t| t > now));
    secrets.insert(0, EndpointSecret::new(new, now));
}

/// The secrets of `ep` that still sign at `now`, newest first.
fn active_secrets(ep: Endpoint, now: Timestamp) -> Vec<EndpointSecret> {
    ep.secrets
        .into_iter()
        .filter(|s| s.expires_at.is_none_or(|t| t > now))
        .collect()
}

/// The headers of an endpoint after a merge patch of them: `None` removes them all, else each
/// change sets (`Some`) or removes (`None`) one header, named in any case.
fn merge_headers(
    current: &BTreeMap<String, String>,
    changes: Option<BTreeMap<String, Option<String>>>,
) -> BTreeMap<String, String> {
    let Some(changes) = changes else {
        return BTreeMap::new();
    };
    let mut merged = current.clone();
    for (name, value) in changes {
        let name = name.to_ascii_lowercase();
        match value {
            Some(v) => merged.insert(name, v),
            None => merged.remove(&name),
        };
    }
    merged
}

impl Hookline {
    /// Checks an endpoint URL ([`validate::endpoint_url`]) and, when it names an address
    /// literally, that the deployment's address rule allows it (`forbidden_address`).
    fn endpoint_url(&self, raw: &str) -> Result<String, ServiceError> {
        let url = validate::endpoint_url(raw, self.config().allow_http)?;
        if let (Some(rule), Some(ip)) = (
            &self.config().endpoint_addresses,
            validate::literal_address(&url),
        ) {
            if !rule.allows(ip) {
                return Err(ServiceError::invalid(
                    "forbidden_address",
                    format!(
                        "`url` names {ip}, a loopback, private or otherwise non-public address \
                         this deployment does not deliver to (see `--allow-network`)"
                    ),
                ));
            }
        }
        Ok(url)
    }

    async fn event_type_filter(&self, raw: &[String]) -> Result<Vec<EventTypeName>, ServiceError> {
        if raw.len() > MAX_FILTER {
            return Err(ServiceError::invalid(
                "too_many_items",
                format!("at most {MAX_FILTER} event types"),
            ));
        }
        let mut out = Vec::with_capacity(raw.len());
        for r in raw {
            let name = EventTypeName::parse(r)?;
            if self.store().event_type(&name).await?.is_none() {
                return Err(ServiceError::invalid(
                    "unknown_event_type",
                    format!("no event type `{name}` in the catalog"),
                ));
            }
            if !out.contains(&name) {
                out.push(name);
            }
        }
        Ok(out)
    }

    async fn site_filter(
        &self,
        account: &AccountId,
        raw: &[String],
    ) -> Result<Vec<SiteId>, ServiceError> {
        if raw.len() > MAX_FILTER {
            return Err(ServiceError::invalid(
                "too_many_items",
                format!("at most {MAX_FILTER} sites"),
            ));
        }
        let mut out = Vec::with_capacity(raw.len());
        for r in raw {
            let id = SiteId::parse(r)?;
            if self.store().site(account, &id).await?.is_none() {
                return Err(ServiceError::invalid(
                    "unknown_site",
                    format!("no site `{id}` in account `{account}`"),
                ));
            }
            if !out.contains(&id) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Creates an endpoint in an account: `invalid_url`, `insecure_url`, `field_too_long`,
    /// `unknown_event_type`, `unknown_site`, `too_many_items`, `reserved_header`,
    /// `invalid_header`, `invalid_secret`, `invalid_limit`, …
    pub async fn create_endpoint(
        &self,
        by: &Actor,
        account: &str,
        input: NewEndpoint,
    ) -> Result<Endpoint, ServiceError> {
        by.require_write()?;
        let a = self.reach_account(by, account).await?;
        let url = self.endpoint_url(&input.url)?;
        if let Some(d) = &input.description {
            validate::text("description", d, MAX_DESCRIPTION)?;
        }
        let event_types = self.event_type_filter(&input.event_types).await?;
        let sites = self.site_filter(&a.id, &input.sites).await?;
        let headers = validate::endpoint_headers(input.headers)?;
        let secret = match &input.secret {
            Some(s) => validate::secret(s)?,
            None => Secret::generate(),
        };
        let rate_limit = validate::positive("rateLimit", input.rate_limit)?;
        let max_concurrency = validate::positive("maxConcurrency", input.max_concurrency)?;
        let now = self.now();
        let secrets = vec![EndpointSecret::new(secret, now)];
        let mut ep = Endpoint::new(EndpointId::generate(), a.id, url, secrets, now);
        ep.description = input.description;
        ep.event_types = event_types;
        ep.sites = sites;
        ep.headers = headers;
        ep.rate_limit = rate_limit;
        ep.max_concurrency = max_concurrency;
        ep.ordered = input.ordered;
        ep.enabled = input.enabled.unwrap_or(true);
        self.store().create_endpoint(&ep).await?;
        self.audit(by, Some(&ep.account), "endpoint.created", ep.id.as_str())
            .await;
        Ok(ep)
    }

    /// Lists an account's endpoints, newest first.
    pub async fn list_endpoints(
        &self,
        by: &Actor,
        account: &str,
        paging: &ListQuery,
    ) -> Result<Page<Endpoint>, ServiceError> {
        let a = self.reach_account(by, account).await?;
        Ok(self
            .store()
            .list_endpoints(&a.id, &paging.request()?)
            .await?)
    }

    /// One endpoint of an account: `endpoint_not_found`.
    pub async fn endpoint(
        &self,
        by: &Actor,
        account: &str,
        endpoint: &str,
    ) -> Result<Endpoint, ServiceError> {
        let a = self.reach_account(by, account).await?;
        let id = EndpointId::parse(endpoint)?;
        self.store().endpoint(&a.id, &id).await?.ok_or_else(|| {
            ServiceError::not_found(
                "endpoint_not_found",
                format!("no endpoint `{id}` in account `{}`", a.id),
            )
        })
    }

    /// Changes an endpoint, with the checks of [`create_endpoint`](Self::create_endpoint).
    /// Enabling it this way restarts its failure clock as
    /// [`enable_endpoint`](Self::enable_endpoint) does.
    pub async fn update_endpoint(
        &self,
        by: &Actor,
        account: &str,
        endpoint: &str,
        patch: EndpointPatch,
    ) -> Result<Endpoint, ServiceError> {
        by.require_write()?;
        let mut ep = self.endpoint(by, account, endpoint).await?;
        if let Some(u) = &patch.url {
            ep.url = self.endpoint_url(u)?;
        }
        if let Some(d) = patch.description {
            if let Some(d) = &d {
                validate::text("description", d, MAX_DESCRIPTION)?;
            }
            ep.description = d;
        }
        if let Some(t) = &patch.event_types {
            ep.event_types = self
                .event_type_filter(t.as_deref().unwrap_or_default())
                .await?;
        }
        if let Some(s) = &patch.sites {
            ep.sites = self
                .site_filter(&ep.account, s.as_deref().unwrap_or_default())
                .await?;
        }
        if let Some(h) = patch.headers {
            ep.headers = validate::endpoint_headers(keep_masked_headers(
                merge_headers(&ep.headers, h),
                &ep.headers,
            )?)?;
        }
        if let Some(r) = patch.rate_limit {
            ep.rate_limit = validate::positive("rateLimit", r)?;
        }
        if let Some(c) = patch.max_concurrency {
            ep.max_concurrency = validate::positive("maxConcurrency", c)?;
        }
        if let Some(o) = patch.ordered {
            ep.ordered = o.unwrap_or(false);
        }
        let enabled_now = patch
            .enabled
            .map(|en| en.unwrap_or(true))
            .is_some_and(|en| set_enabled(&mut ep, en) && en);
        ep.updated_at = self.now();
        self.store().update_endpoint(&ep).await?;
        if enabled_now {
            self.restart_failure_clock(&mut ep).await?;
        }
        self.audit(by, Some(&ep.account), "endpoint.updated", ep.id.as_str())
            .await;
        Ok(ep)
    }

    /// An endpoint enabled again starts with a clean failure clock, and its deliveries go at
    /// once.
    async fn restart_failure_clock(&self, ep: &mut Endpoint) -> Result<(), ServiceError> {
        self.store().record_healthy(&ep.id).await?;
        ep.failing_since = None;
        self.dispatcher().wake();
        Ok(())
    }

    /// Enables an endpoint (also one the dispatcher disabled): its failure clock starts over
    /// and its pending deliveries go at once.
    pub async fn enable_endpoint(
        &self,
        by: &Actor,
        account: &str,
        endpoint: &str,
    ) -> Result<Endpoint, ServiceError> {
        by.require_write()?;
        let mut ep = self.endpoint(by, account, endpoint).await?;
        set_enabled(&mut ep, true);
        ep.updated_at = self.now();
        self.store().update_endpoint(&ep).await?;
        self.restart_failure_clock(&mut ep).await?;
        self.audit(by, Some(&ep.account), "endpoint.enabled", ep.id.as_str())
            .await;
        Ok(ep)
    }

    /// Disables an endpoint: its deliveries stay pending until it is enabled again.
    pub async fn disable_endpoint(
        &self,
        by: &Actor,
        account: &str,
        endpoint: &str,
    ) -> Result<Endpoint, ServiceError> {
        by.require_write()?;
        let mut ep = self.endpoint(by, account, endpoint).await?;
        set_enabled(&mut ep, false);
        ep.updated_at = self.now();
        self.store().update_endpoint(&ep).await?;
        self.audit(by, Some(&ep.account), "endpoint.disabled", ep.id.as_str())
            .await;
        Ok(ep)
    }

    /// Removes an endpoint; its unfinished deliveries are cancelled.
    pub async fn delete_endpoint(
        &self,
        by: &Actor,
        account: &str,
        endpoint: &str,
    ) -> Result<(), ServiceError> {
        by.require_write()?;
        let ep = self.endpoint(by, account, endpoint).await?;
        self.store().remove_endpoint(&ep.account, &ep.id).await?;
        self.audit(by, Some(&ep.account), "endpoint.deleted", ep.id.as_str())
            .await;
        Ok(())
    }

    /// The secrets that sign an endpoint's requests now, newest (current) first.
    pub async fn endpoint_secrets(
        &self,
        by: &Actor,
        account: &str,
        endpoint: &str,
    ) -> Result<Vec<EndpointSecret>, ServiceError> {
        let ep = self.endpoint(by, account, endpoint).await?;
        Ok(active_secrets(ep, self.now()))
    }

    /// Rotates an endpoint's signing secret: the new one signs from now on, and every older
    /// one keeps signing for [`rotation_overlap`](super::ServiceConfig::rotation_overlap) (or
    /// less, if it was due to stop sooner). Returns the secrets that sign now, newest first.
    pub async fn rotate_secret(
        &self,
        by: &Actor,
        account: &str,
        endpoint: &str,
        rotation: SecretRotation,
    ) -> Result<Vec<EndpointSecret>, ServiceError> {
        by.require_write()?;
        let mut ep = self.endpoint(by, account, endpoint).await?;
        let new = match &rotation.secret {
            Some(s) => validate::secret(s)?,
            None => Secret::generate(),
        };
        let now = self.now();
        rotate(&mut ep.secrets, new, now, self.config().rotation_overlap);
        ep.updated_at = now;
        self.store().update_endpoint(&ep).await?;
        self.audit(by, Some(&ep.account), "secret.rotated", ep.id.as_str())
            .await;
        Ok(active_secrets(ep, now))
    }

    /// Sends a test event (type [`TEST_EVENT_TYPE`]) to one endpoint, as a manual attempt,
    /// whatever its filters.
    pub async fn send_test(
        &self,
        by: &Actor,
        account: &str,
        endpoint: &str,
    ) -> Result<Receipt, ServiceError> {
        by.require_write()?;
        let ep = self.endpoint(by, account, endpoint).await?;
        let data =
            serde_json::json!({ "message": "test event from Hookline", "endpointId": ep.id });
        let data = serde_json::value::to_raw_value(&data)
            .map_err(|e| ServiceError::Internal(Box::new(e)))?;
        let event = Event::new(
            EventId::generate(),
            ep.account.clone(),
            EventTypeName::parse(TEST_EVENT_TYPE)?,
            data,
            self.now(),
        );
        let receipt = self
            .dispatcher()
            .publish_manual(&event, std::slice::from_ref(&ep.id))
            .await?;
        self.audit(by, Some(&ep.account), "endpoint.test_sent", ep.id.as_str())
            .await;
        Ok(receipt)
    }

    /// An endpoint's hourly attempt counters of the last `hours` hours, the current one
    /// included, oldest first (hours without attempts are absent): what its charts draw.
    pub async fn endpoint_hourly(
        &self,
        by: &Actor,
        account: &str,
        endpoint: &str,
        hours: u32,
    ) -> Result<Vec<crate::model::HourlyStats>, ServiceError> {
        let ep = self.endpoint(by, account, endpoint).await?;
        let now = crate::model::HourlyStats::hour_of(self.now());
        let since = now.sub(Duration::from_secs(
            3600 * u64::from(hours.saturating_sub(1)),
        ));
        Ok(self.store().hourly(&ep.id, since).await?)
    }

    /// Re-queues every failed delivery to an endpoint created at or after `since`, as manual
    /// attempts; returns how many.
    pub async fn recover(
        &self,
        by: &Actor,
        account: &str,
        endpoint: &str,
        since: Timestamp,
    ) -> Result<u64, ServiceError> {
        by.require_write()?;
        let ep = self.endpoint(by, account, endpoint).await?;
        let n = self
            .store()
            .recover_failed(&ep.account, &ep.id, since, self.now())
            .await?;
        if n > 0 {
            self.dispatcher().wake();
        }
        self.audit(by, Some(&ep.account), "endpoint.recovered", ep.id.as_str())
            .await;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(created: i64, expires: Option<i64>) -> EndpointSecret {
        EndpointSecret {
            key: Secret::generate(),
            created_at: Timestamp::from_millis(created),
            expires_at: expires.map(Timestamp::from_millis),
        }
    }

    #[test]
    fn rotation_keeps_older_secrets_for_the_overlap_at_most() {
        let now = Timestamp::from_millis(10_000);
        let overlap = Duration::from_secs(5);
        let current = secret(9_000, None);
        let expiring_soon = secret(1_000, Some(12_000));
        let expiring_late = secret(2_000, Some(99_000));
        let expired = secret(500, Some(10_000));
        let mut secrets = vec![
            current.clone(),
            expiring_soon.clone(),
            expiring_late.clone(),
            expired,
        ];
        let new = Secret::generate();
        rotate(&mut secrets, new.clone(), now, overlap);
        let got: Vec<(Secret, Option<i64>)> = secrets
            .iter()
            .map(|s| (s.key.clone(), s.expires_at.map(Timestamp::as_millis)))
            .collect();
        assert_eq!(
            got,
            vec![
                (new, None),
                (current.key, Some(15_000)),
                (expiring_soon.key, Some(12_000)),
                (expiring_late.key, Some(15_000)),
            ],
            "new first; older ones stop by the overlap's end; stopped ones dropped"
        );
        assert_eq!(secrets[0].created_at, now);
    }

    #[test]
    fn header_values_are_masked_and_a_mask_sent_back_keeps_the_value() {
        assert_eq!(mask_header_value("short"), "••••");
        assert_eq!(mask_header_value("Bearer 0123456789abcdef"), "••••cdef");
        let current = BTreeMap::from([
            (
                "authorization".to_owned(),
                "Bearer 0123456789abcdef".to_owned(),
            ),
            ("x-tenant".to_owned(), "acme".to_owned()),
        ]);
        let sent = BTreeMap::from([
            ("Authorization".to_owned(), "••••cdef".to_owned()),
            ("x-tenant".to_owned(), "••••".to_owned()),
            ("x-new".to_owned(), "plain".to_owned()),
        ]);
        let kept = keep_masked_headers(sent, &current).unwrap();
        assert_eq!(kept["Authorization"], "Bearer 0123456789abcdef");
        assert_eq!(kept["x-tenant"], "acme");
        assert_eq!(kept["x-new"], "plain");
        for bad in [("authorization", "••••0000"), ("x-other", "••••")] {
            let sent = BTreeMap::from([(bad.0.to_owned(), bad.1.to_owned())]);
            let e = keep_masked_headers(sent, &current).unwrap_err();
            assert_eq!(e.code(), "invalid_header", "{bad:?}");
        }
    }

    #[test]
    fn inputs_read_the_api_wire_format() {
        let ep: NewEndpoint = serde_json::from_value(serde_json::json!({
            "url": "https://example.com/h",
            "eventTypes": ["a.b"],
            "maxConcurrency": 2,
            "headers": {"X-A": "1"}
        }))
        .unwrap();
        assert_eq!(
            ep,
            NewEndpoint::new("https://example.com/h")
                .event_types(["a.b"])
                .max_concurrency(2)
                .header("X-A", "1")
        );
        let unknown = serde_json::from_value::<NewEndpoint>(
            serde_json::json!({"url": "https://example.com", "colour": "red"}),
        );
        assert!(unknown.is_err(), "unknown fields are refused");

        let patch: EndpointPatch =
            serde_json::from_value(serde_json::json!({"description": null, "rateLimit": 5}))
                .unwrap();
        assert_eq!(patch.description, Some(None), "null clears");
        assert_eq!(patch.rate_limit, Some(Some(5)));
        assert_eq!(patch.max_concurrency, None, "absent keeps");
        assert_eq!(
            patch,
            EndpointPatch::new().description(None).rate_limit(Some(5))
        );
    }

    #[test]
    fn endpoint_patches_are_merge_patches() {
        let patch: EndpointPatch = serde_json::from_value(serde_json::json!({
            "eventTypes": null, "sites": ["s1"], "headers": {"X-A": "2", "x-b": null},
            "ordered": null, "enabled": null
        }))
        .unwrap();
        assert_eq!(patch.event_types, Some(None));
        assert_eq!(patch.sites, Some(Some(vec!["s1".to_owned()])));
        assert_eq!(patch.ordered, Some(None));
        assert_eq!(patch.enabled, Some(None));
        assert_eq!(patch.url, None);
        let current: BTreeMap<String, String> = [("x-a", "1"), ("x-b", "1"), ("x-c", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let merged = merge_headers(&current, patch.headers.clone().unwrap());
        assert_eq!(
            merged.into_iter().collect::<Vec<_>>(),
            [
                ("x-a".to_owned(), "2".to_owned()),
                ("x-c".to_owned(), "1".to_owned())
            ],
            "set, removed, kept"
        );
        assert!(merge_headers(&current, None).is_empty(), "null removes all");
        assert_eq!(
            patch.headers,
            EndpointPatch::new()
                .merge_headers([
                    ("X-A".to_owned(), Some("2".to_owned())),
                    ("x-b".to_owned(), None)
                ])
                .headers
        );
        let url_removed = serde_json::from_value::<EndpointPatch>(serde_json::json!({"url": null}));
        assert!(url_removed.is_err(), "the url is required");
        assert_eq!(EndpointPatch::new().remove_headers().headers, Some(None));
    }

    #[test]
    fn enabling_clears_the_reason_and_disabling_sets_it() {
        let mut ep = Endpoint::new(
            EndpointId::generate(),
            AccountId::parse("a").unwrap(),
            "https://example.com",
            vec![],
            Timestamp::EPOCH,
        );
        assert!(!set_enabled(&mut ep, true), "no change");
        assert!(set_enabled(&mut ep, false));
        assert_eq!(ep.disabled_reason.as_deref(), Some(DISABLED_BY_CALLER));
        assert!(set_enabled(&mut ep, true));
        assert_eq!(ep.disabled_reason, None);
    }
}
