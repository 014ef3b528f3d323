//! Encryption at rest: a [`Keyring`] of deployment keys and [`SealedStore`], a [`Store`]
//! decorator that seals what must not be readable from the database and opens it on the way
//! back.
//!
//! # What is sealed
//!
//! With a keyring, every backend behind a `SealedStore` holds these values only sealed:
//!
//! * every signing secret of every endpoint (current and rotated-out ones);
//! * the value of every custom endpoint header (its name stays readable);
//! * with [`SealingOptions::payloads`], the `data` of every event stored from then on (the
//!   event's id, type, site, queue id, idempotency key and time stay readable).
//!
//! Nothing else is sealed: ids, account and site names, endpoint URLs, descriptions and
//! filters, event types, delivery states and times, attempt metadata and response excerpts,
//! and API key hashes stay as they are (the receivers' responses are theirs, not the producer's
//! secrets; URLs and ids are needed in the clear for routing and listing).
//!
//! # The sealed form
//!
//! A sealed value is the text `hk1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`: XChaCha20-
//! Poly1305 with a random 24-byte nonce, under the key named by the id. The associated data
//! binds it to its place (`<account>/<endpoint id>/secret`, `…/header/<name>`,
//! `<account>/<event id>/data`), so a sealed value copied into another row or field does not
//! open. Event data, which the stores keep as JSON, is sealed as a JSON string; an event's data
//! as accepted is always a JSON object, so the two never mix up.
//!
//! Values stored before a key was set stay readable (anything not starting with `hk1:` is taken
//! as it is) until [`SealedStore::rekey`] seals them.
//!
//! # Keys, rotation and the marker
//!
//! A [`Keyring`] holds the current key (which seals) and older keys (which still open), each
//! named by a short id. [`SealedStore::open`] records in the store (the setting
//! [`MARKER_SETTING`]) which key ids have sealed values, with a check value per id, so that
//! starting without a key on an encrypted store ([`check_unsealed`]) or with a keyring that
//! lacks a key in use, or holds different bytes under its id, fails at start with a clear
//! [`SealingError`] instead of failing on the first delivery. [`SealedStore::rekey`] seals
//! everything again with the current key and then records it as the only key in use, after
//! which older keys can be dropped from the keyring.
//!
//! # Cost on the delivery path
//!
//! A claimed delivery carries its endpoint, whose secrets and header values are opened per
//! claim. Opened values are kept in a bounded map keyed by their sealed text and place, so an
//! endpoint's values are decrypted once, not once per attempt. Sealed event data is opened once
//! per claim (its sealed text is unique per event).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use zeroize::Zeroizing;

use crate::id::{AccountId, DeliveryId, EndpointId, EventId, EventTypeName, KeyId, SiteId};
use crate::model::{
    Account, ApiKey, Attempt, AuditEntry, Delivery, DeliveryFilter, Endpoint, Event, EventFilter,
    EventType, HourlyStats, Page, PageRequest, Site, Trigger,
};
use crate::signing::Secret;
use crate::store::{
    AuditStore, Backlog, CatalogStore, Claimed, EndpointStore, HistoryStore, LeaseToken, Next,
    QueueStore, Receipt, Store, StoreError, WorkListener,
};
use crate::time::Timestamp;

/// What every sealed value starts with.
pub const SEALED_PREFIX: &str = "hk1:";

/// The store setting ([`CatalogStore::setting`]) recording that a store holds sealed values.
pub const MARKER_SETTING: &str = "encryption";

/// Length of a key in bytes.
pub const KEY_BYTES: usize = 32;

const NONCE_BYTES: usize = 24;
/// The text sealed under each key for the marker's check value.
const CHECK_TEXT: &[u8] = b"hookline encryption check";
const CHECK_PLACE: &str = "marker/check";
/// Opened values kept at most (endpoint secrets and header values).
const OPENED_CAPACITY: usize = 4096;

/// Whether `text` is a sealed value (starts with [`SEALED_PREFIX`]).
pub fn is_sealed(text: &str) -> bool {
    text.starts_with(SEALED_PREFIX)
}

/// The key id of a sealed value, if `text` is one.
pub fn sealed_key_id(text: &str) -> Option<&str> {
    text.strip_prefix(SEALED_PREFIX)?
        .split_once(':')
        .map(|(id, _)| id)
}

/// Why a keyring, a sealed value or an encrypted store could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealingError {
    /// The keyring text is malformed.
    #[error(
        "invalid encryption key {0}: expected `<id>:<base64 of 32 bytes>` (id: 1 to 32 letters, digits, `-` or `_`), several separated by commas or new lines, the current key first"
    )]
    InvalidKey(String),
    /// The keyring text holds no key.
    #[error("the encryption keyring is empty")]
    Empty,
    /// A sealed value names a key the keyring does not hold.
    #[error("value sealed with key `{0}`, which the keyring does not hold")]
    UnknownKey(String),
    /// A sealed value does not open: altered, moved from another row, or the key is not the one
    /// that sealed it.
    #[error("a sealed value does not open with key `{0}` (wrong key, or the value was altered)")]
    Undecryptable(String),
    /// A value starting with `hk1:` is not a sealed value.
    #[error("malformed sealed value")]
    Malformed,
    /// The store holds sealed values and no key was given.
    #[error(
        "the store is encrypted (values sealed with key {}) and no encryption key was given: set HOOKLINE_ENCRYPTION_KEY or --encryption-key-file",
        .0.join(", ")
    )]
    KeyRequired(Vec<String>),
    /// The store holds values sealed with a key the keyring lacks.
    #[error(
        "the store holds values sealed with key `{0}`, which the given encryption keys do not include: add it to the keyring (after the current key)"
    )]
    MissingKey(String),
    /// The keyring holds a key under an id in use, but not the key that sealed the store's
    /// values.
    #[error(
        "the encryption key `{0}` is not the key that sealed this store's values (same id, different key)"
    )]
    WrongKey(String),
    /// The store's marker cannot be read.
    #[error("the store's encryption marker is malformed: {0}")]
    BadMarker(String),
    /// The store failed.
    #[error("store failure while checking encryption: {0}")]
    Store(String),
}

impl From<StoreError> for SealingError {
    fn from(e: StoreError) -> Self {
        Self::Store(e.to_string())
    }
}

impl From<SealingError> for StoreError {
    fn from(e: SealingError) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// Deployment keys: the current one, which seals, and older ones, which still open.
///
/// Text form ([`Keyring::parse`]): entries `<id>:<base64 of 32 bytes>` separated by commas,
/// spaces or new lines, the current key first; lines starting with `#` are comments (a key
/// file). Make a key with `openssl rand -base64 32`. `Debug` shows the ids only.
pub struct Keyring {
    keys: Vec<Key>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current_id())
            .field("ids", &self.ids().collect::<Vec<_>>())
            .finish()
    }
}

fn valid_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Keyring {
    /// Parses the text form (see the type docs).
    pub fn parse(text: &str) -> Result<Self, SealingError> {
        let mut keys: Vec<Key> = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            for entry in line.split([',', ' ', '\t']).filter(|e| !e.is_empty()) {
                let (id, b64) = entry
                    .split_once(':')
                    .ok_or_else(|| SealingError::InvalidKey("without an id".into()))?;
                if !valid_id(id) {
                    return Err(SealingError::InvalidKey(format!("id {id:?}")));
                }
                if keys.iter().any(|k| k.id == id) {
                    return Err(SealingError::InvalidKey(format!("id `{id}` given twice")));
                }
                let bytes = Zeroizing::new(
                    B64.decode(b64)
                        .map_err(|_| SealingError::InvalidKey(format!("`{id}`: not base64")))?,
                );
                if bytes.len() != KEY_BYTES {
                    return Err(SealingError::InvalidKey(format!(
                        "`{id}`: {} bytes, not {KEY_BYTES}",
                        bytes.len()
                    )));
                }
                keys.push(Key {
                    id: id.to_owned(),
                    cipher: XChaCha20Poly1305::new_from_slice(&bytes)
                        .map_err(|_| SealingError::InvalidKey(format!("`{id}`")))?,
                });
            }
        }
        if keys.is_empty() {
            return Err(SealingError::Empty);
        }
        Ok(Self { keys })
    }

    /// A keyring of one new random key named `id`, with its text form (for tests and for
    /// making a first key).
    pub fn generate(id: &str) -> Result<(Self, String), SealingError> {
        use rand::RngCore as _;
        let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
        rand::thread_rng().fill_bytes(bytes.as_mut());
        let text = format!("{id}:{}", B64.encode(bytes.as_ref()));
        Ok((Self::parse(&text)?, text))
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Every key id, the current one first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    fn key(&self, id: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Seals `plain` for `place` (the associated data: where the value lives) with the current
    /// key.
    pub fn seal(&self, plain: &[u8], place: &str) -> String {
        use rand::RngCore as _;
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_BYTES];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = aad(&key.id, place);
        let sealed = key
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: aad.as_bytes(),
                },
            )
            .unwrap_or_else(|_| unreachable!("XChaCha20-Poly1305 seals any length used here"));
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}:{}", key.id, B64URL.encode(out))
    }

    /// Opens a value sealed for `place` with whichever key of the keyring sealed it.
    pub fn open(&self, sealed: &str, place: &str) -> Result<Zeroizing<Vec<u8>>, SealingError> {
        let rest = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(SealingError::Malformed)?;
        let (id, b64) = rest.split_once(':').ok_or(SealingError::Malformed)?;
        let key = self
            .key(id)
            .ok_or_else(|| SealingError::UnknownKey(id.to_owned()))?;
        let raw = B64URL.decode(b64).map_err(|_| SealingError::Malformed)?;
        if raw.len() < NONCE_BYTES {
            return Err(SealingError::Malformed);
        }
        let (nonce, body) = raw.split_at(NONCE_BYTES);
        let aad = aad(id, place);
        key.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: aad.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealingError::Undecryptable(id.to_owned()))
    }

    /// Opens a value sealed for `place` as text.
    pub fn open_str(&self, sealed: &str, place: &str) -> Result<Zeroizing<String>, SealingError> {
        let bytes = self.open(sealed, place)?;
        String::from_utf8(bytes.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| SealingError::Malformed)
    }
}

fn aad(key_id: &str, place: &str) -> String {
    format!("{SEALED_PREFIX}{key_id}|{place}")
}

fn secret_place(ep: &Endpoint) -> String {
    format!("{}/{}/secret", ep.account, ep.id)
}

fn header_place(ep: &Endpoint, name: &str) -> String {
    format!("{}/{}/header/{name}", ep.account, ep.id)
}

fn data_place(ev: &Event) -> String {
    format!("{}/{}/data", ev.account, ev.id)
}

/// What the store's marker records: the key ids that sealed values in it, with a check value
/// sealed under each, and whether event data is sealed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Marker {
    /// Key id → a known text sealed with that key.
    pub keys: BTreeMap<String, String>,
    /// Whether new event data is sealed (as last started).
    #[serde(default)]
    pub payloads: bool,
}

impl Marker {
    /// The ids of the keys in use.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.keys().cloned().collect()
    }
}

/// Reads the store's marker; `None` for a store that never held sealed values.
pub async fn read_marker(
    store: &(impl CatalogStore + ?Sized),
) -> Result<Option<Marker>, SealingError> {
    match store.setting(MARKER_SETTING).await? {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| SealingError::BadMarker(e.to_string())),
    }
}

async fn write_marker(
    store: &(impl CatalogStore + ?Sized),
    marker: &Marker,
) -> Result<(), SealingError> {
    let text = serde_json::to_string(marker).map_err(|e| SealingError::BadMarker(e.to_string()))?;
    store.put_setting(MARKER_SETTING, &text).await?;
    Ok(())
}

/// For a process starting without an encryption key: fails with
/// [`SealingError::KeyRequired`] if the store holds sealed values.
pub async fn check_unsealed(store: &(impl CatalogStore + ?Sized)) -> Result<(), SealingError> {
    match read_marker(store).await? {
        Some(m) if !m.keys.is_empty() => Err(SealingError::KeyRequired(m.key_ids())),
        _ => Ok(()),
    }
}

/// How a [`SealedStore`] seals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SealingOptions {
    /// Seal event data too (events stored from now on; [`SealedStore::rekey`] seals the
    /// older ones).
    pub payloads: bool,
}

impl SealingOptions {
    /// Secrets and header values only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether event data is sealed too.
    pub fn payloads(mut self, on: bool) -> Self {
        self.payloads = on;
        self
    }
}

/// How far [`SealedStore::rekey`] has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RekeyProgress {
    /// Endpoints and events looked at so far.
    pub done: u64,
    /// Endpoints and events in the store (counted before the work starts).
    pub total: u64,
    /// How many of those were written again (sealed with the current key).
    pub rewritten: u64,
}

/// A [`Store`] decorator sealing endpoint secrets, header values and (optionally) event data
/// on the way in and opening them on the way out. See the [module docs](self).
///
/// Build it with [`open`](Self::open), which checks the keyring against the store's marker.
/// Put it directly around the backend, under every other decorator, and hand it to everything
/// in the process: a writer bypassing it stores plaintext.
pub struct SealedStore<S: ?Sized = dyn Store> {
    inner: Arc<S>,
    keyring: Arc<Keyring>,
    options: SealingOptions,
    opened: Mutex<HashMap<String, Zeroizing<Vec<u8>>>>,
}

impl<S: ?Sized> fmt::Debug for SealedStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedStore")
            .field("keyring", &self.keyring)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<S: Store + ?Sized> SealedStore<S> {
    /// Wraps `inner` after checking the keyring against the store's marker: every key id in
    /// use must be in the keyring and open its check value. Then records the current key (and
    /// the payload setting) in the marker.
    pub async fn open(
        inner: Arc<S>,
        keyring: Arc<Keyring>,
        options: SealingOptions,
    ) -> Result<Self, SealingError> {
        let mut marker = read_marker(&*inner).await?.unwrap_or_default();
        for (id, check) in &marker.keys {
            if keyring.key(id).is_none() {
                return Err(SealingError::MissingKey(id.clone()));
            }
            match keyring.open(check, CHECK_PLACE) {
                Ok(text) if text.as_slice() == CHECK_TEXT => {}
                _ => return Err(SealingError::WrongKey(id.clone())),
            }
        }
        let current = keyring.current_id().to_owned();
        let mut changed = false;
        if let std::collections::btree_map::Entry::Vacant(slot) = marker.keys.entry(current) {
            slot.insert(keyring.seal(CHECK_TEXT, CHECK_PLACE));
            changed = true;
        }
        if marker.payloads != options.payloads {
            marker.payloads = options.payloads;
            changed = true;
        }
        if changed {
            write_marker(&*inner, &marker).await?;
        }
        Ok(Self {
            inner,
            keyring,
            options,
            opened: Mutex::new(HashMap::new()),
        })
    }
}

impl<S: ?Sized> SealedStore<S> {
    /// The wrapped store: what it holds is sealed.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    /// The keyring in use.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Opens a value for `place`, through the map of values opened before.
    fn open_cached(&self, sealed: &str, place: &str) -> Result<Zeroizing<Vec<u8>>, SealingError> {
        let cache_key = format!("{place}\u{0}{sealed}");
        if let Some(v) = self.lock().get(&cache_key) {
            return Ok(v.clone());
        }
        let plain = self.keyring.open(sealed, place)?;
        let mut map = self.lock();
        if map.len() >= OPENED_CAPACITY {
            map.clear();
        }
        map.insert(cache_key, plain.clone());
        Ok(plain)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Zeroizing<Vec<u8>>>> {
        self.opened.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The endpoint as it is stored: secrets and header values sealed.
    fn seal_endpoint(&self, ep: &Endpoint) -> Endpoint {
        let mut out = ep.clone();
        let place = secret_place(ep);
        for s in &mut out.secrets {
            if !s.key.is_sealed() {
                s.key = Secret::from_sealed(&self.keyring.seal(s.key.expose().as_bytes(), &place));
            }
        }
        for (name, value) in &mut out.headers {
            *value = self.keyring.seal(value.as_bytes(), &header_place(ep, name));
        }
        out
    }

    /// The endpoint as callers see it: secrets and header values opened. Values stored before
    /// encryption was set up are taken as they are.
    fn open_endpoint(&self, mut ep: Endpoint) -> Result<Endpoint, SealingError> {
        let place = secret_place(&ep);
        for s in &mut ep.secrets {
            if let Some(sealed) = s.key.sealed() {
                let plain = self.open_cached(sealed, &place)?;
                let text = std::str::from_utf8(&plain).map_err(|_| SealingError::Malformed)?;
                s.key = Secret::parse(text).map_err(|_| SealingError::Malformed)?;
            }
        }
        let names: Vec<String> = ep.headers.keys().cloned().collect();
        for name in names {
            let place = header_place(&ep, &name);
            if let Some(value) = ep.headers.get_mut(&name)
                && is_sealed(value)
            {
                let plain = self.open_cached(value, &place)?;
                *value = String::from_utf8(plain.to_vec()).map_err(|_| SealingError::Malformed)?;
            }
        }
        Ok(ep)
    }

    fn open_endpoints(&self, eps: Vec<Endpoint>) -> Result<Vec<Endpoint>, SealingError> {
        eps.into_iter().map(|e| self.open_endpoint(e)).collect()
    }

    /// The event as it is stored: data sealed when payloads are sealed.
    fn seal_event<'e>(&self, ev: &'e Event) -> std::borrow::Cow<'e, Event> {
        if !self.options.payloads || sealed_data(&ev.data).is_some() {
            return std::borrow::Cow::Borrowed(ev);
        }
        let mut out = ev.clone();
        out.data = self.sealed_data(ev);
        std::borrow::Cow::Owned(out)
    }

    fn sealed_data(&self, ev: &Event) -> Box<RawValue> {
        let sealed = self.keyring.seal(ev.data.get().as_bytes(), &data_place(ev));
        // A sealed value is ASCII without quotes or backslashes: a JSON string as it stands.
        RawValue::from_string(format!("\"{sealed}\""))
            .unwrap_or_else(|_| unreachable!("a quoted sealed value is a JSON string"))
    }

    /// The event as callers see it: data opened.
    fn open_event(&self, mut ev: Event) -> Result<Event, SealingError> {
        if let Some(sealed) = sealed_data(&ev.data) {
            let plain = self.keyring.open(sealed, &data_place(&ev))?;
            let text = String::from_utf8(plain.to_vec()).map_err(|_| SealingError::Malformed)?;
            ev.data = RawValue::from_string(text).map_err(|_| SealingError::Malformed)?;
        }
        Ok(ev)
    }

    fn open_claimed(&self, mut c: Claimed) -> Result<Claimed, SealingError> {
        c.endpoint = self.open_endpoint(c.endpoint)?;
        c.event = self.open_event(c.event)?;
        Ok(c)
    }
}

/// The sealed text inside stored event data, when the data is a sealed JSON string.
fn sealed_data(data: &RawValue) -> Option<&str> {
    let raw = data.get();
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    is_sealed(inner).then_some(inner)
}

/// Whether a stored endpoint needs writing again to be sealed with `current` only.
fn endpoint_stale(ep: &Endpoint, current: &str) -> bool {
    ep.secrets
        .iter()
        .any(|s| s.key.sealed().and_then(sealed_key_id) != Some(current))
        || ep
            .headers
            .values()
            .any(|v| sealed_key_id(v) != Some(current))
}

const REKEY_PAGE: usize = 200;

impl<S: Store + ?Sized> SealedStore<S> {
    /// Seals everything again with the current key: every endpoint's secrets and header
    /// values, and the data of every event (sealed data always; plaintext data too when
    /// payloads are sealed). Then records the current key as the only one in use, so older
    /// keys can be removed from the keyring. `progress` is called after each endpoint and event.
    ///
    /// Endpoints are written back with [`EndpointStore::update_endpoint`] as they were read a
    /// moment before: a change made to the same endpoint in between (through the API of another
    /// process) can be undone, so run it while endpoints are not being changed.
    pub async fn rekey(
        &self,
        mut progress: impl FnMut(RekeyProgress) + Send,
    ) -> Result<RekeyProgress, StoreError> {
        let current = self.keyring.current_id().to_owned();
        let accounts = self.all_accounts().await?;
        let mut state = RekeyProgress::default();
        for a in &accounts {
            state.total += self.count_endpoints(a).await? + self.count_events(a).await?;
        }
        progress(state);
        for a in &accounts {
            let mut page = PageRequest::first(REKEY_PAGE);
            loop {
                let got = self.inner.list_endpoints(a, &page).await?;
                for stored in got.items {
                    if endpoint_stale(&stored, &current) {
                        let ep = self.open_endpoint(stored)?;
                        match self.inner.update_endpoint(&self.seal_endpoint(&ep)).await {
                            Ok(()) | Err(StoreError::NotFound(_)) => {}
                            Err(e) => return Err(e),
                        }
                        state.rewritten += 1;
                    }
                    state.done += 1;
                    progress(state);
                }
                match got.next {
                    Some(next) => page.after = Some(next),
                    None => break,
                }
            }
            let mut page = PageRequest::first(REKEY_PAGE);
            loop {
                let got = self
                    .inner
                    .list_events(a, &EventFilter::default(), &page)
                    .await?;
                for stored in got.items {
                    let stale = match sealed_data(&stored.data) {
                        Some(s) => sealed_key_id(s) != Some(current.as_str()),
                        None => self.options.payloads,
                    };
                    if stale {
                        let ev = self.open_event(stored)?;
                        let data = if self.options.payloads {
                            self.sealed_data(&ev)
                        } else {
                            ev.data.clone()
                        };
                        self.inner.replace_event_data(a, &ev.id, &data).await?;
                        state.rewritten += 1;
                    }
                    state.done += 1;
                    progress(state);
                }
                match got.next {
                    Some(next) => page.after = Some(next),
                    None => break,
                }
            }
        }
        let mut marker = read_marker(&*self.inner)
            .await
            .map_err(StoreError::from)?
            .unwrap_or_default();
        marker.keys.retain(|id, _| *id == current);
        marker
            .keys
            .entry(current.clone())
            .or_insert_with(|| self.keyring.seal(CHECK_TEXT, CHECK_PLACE));
        marker.payloads = self.options.payloads;
        write_marker(&*self.inner, &marker).await?;
        Ok(state)
    }

    async fn all_accounts(&self) -> Result<Vec<AccountId>, StoreError> {
        let mut out = Vec::new();
        let mut page = PageRequest::first(REKEY_PAGE);
        loop {
            let got = self.inner.list_accounts(&page).await?;
            out.extend(got.items.into_iter().map(|a| a.id));
            match got.next {
                Some(next) => page.after = Some(next),
                None => return Ok(out),
            }
        }
    }

    async fn count_endpoints(&self, a: &AccountId) -> Result<u64, StoreError> {
        let mut n = 0;
        let mut page = PageRequest::first(REKEY_PAGE);
        loop {
            let got = self.inner.list_endpoints(a, &page).await?;
            n += got.items.len() as u64;
            match got.next {
                Some(next) => page.after = Some(next),
                None => return Ok(n),
            }
        }
    }

    async fn count_events(&self, a: &AccountId) -> Result<u64, StoreError> {
        let mut n = 0;
        let mut page = PageRequest::first(REKEY_PAGE);
        loop {
            let got = self
                .inner
                .list_events(a, &EventFilter::default(), &page)
                .await?;
            n += got.items.len() as u64;
            match got.next {
                Some(next) => page.after = Some(next),
                None => return Ok(n),
            }
        }
    }
}

fn opened<T>(r: Result<T, SealingError>) -> Result<T, StoreError> {
    r.map_err(StoreError::from)
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> CatalogStore for SealedStore<S> {
    async fn create_account(&self, account: &Account) -> Result<(), StoreError> {
        self.inner.create_account(account).await
    }
    async fn update_account(&self, account: &Account) -> Result<(), StoreError> {
        self.inner.update_account(account).await
    }
    async fn account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        self.inner.account(id).await
    }
    async fn list_accounts(&self, page: &PageRequest) -> Result<Page<Account>, StoreError> {
        self.inner.list_accounts(page).await
    }
    async fn delete_account(&self, id: &AccountId) -> Result<bool, StoreError> {
        self.inner.delete_account(id).await
    }
    async fn create_site(&self, site: &Site) -> Result<(), StoreError> {
        self.inner.create_site(site).await
    }
    async fn update_site(&self, site: &Site) -> Result<(), StoreError> {
        self.inner.update_site(site).await
    }
    async fn site(&self, account: &AccountId, id: &SiteId) -> Result<Option<Site>, StoreError> {
        self.inner.site(account, id).await
    }
    async fn list_sites(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Site>, StoreError> {
        self.inner.list_sites(account, page).await
    }
    async fn delete_site(&self, account: &AccountId, id: &SiteId) -> Result<bool, StoreError> {
        self.inner.delete_site(account, id).await
    }
    async fn create_event_type(&self, et: &EventType) -> Result<(), StoreError> {
        self.inner.create_event_type(et).await
    }
    async fn update_event_type(&self, et: &EventType) -> Result<(), StoreError> {
        self.inner.update_event_type(et).await
    }
    async fn event_type(&self, name: &EventTypeName) -> Result<Option<EventType>, StoreError> {
        self.inner.event_type(name).await
    }
    async fn list_event_types(&self, page: &PageRequest) -> Result<Page<EventType>, StoreError> {
        self.inner.list_event_types(page).await
    }
    async fn delete_event_type(&self, name: &EventTypeName) -> Result<bool, StoreError> {
        self.inner.delete_event_type(name).await
    }
    async fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.inner.put_api_key(key).await
    }
    async fn api_key(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.inner.api_key(hash).await
    }
    async fn has_admin_key(&self) -> Result<bool, StoreError> {
        self.inner.has_admin_key().await
    }
    async fn list_api_keys(
        &self,
        account: Option<&AccountId>,
        page: &PageRequest,
    ) -> Result<Page<ApiKey>, StoreError> {
        self.inner.list_api_keys(account, page).await
    }
    async fn delete_api_key(
        &self,
        account: Option<&AccountId>,
        id: &KeyId,
    ) -> Result<Option<ApiKey>, StoreError> {
        self.inner.delete_api_key(account, id).await
    }
    async fn touch_api_key(&self, hash: &str, at: Timestamp) -> Result<(), StoreError> {
        self.inner.touch_api_key(hash, at).await
    }
    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.inner.setting(name).await
    }
    async fn put_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.inner.put_setting(name, value).await
    }
}

/// The audit log holds no secret values: it passes through unsealed.
#[async_trait::async_trait]
impl<S: Store + ?Sized> AuditStore for SealedStore<S> {
    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.inner.record_audit(entry).await
    }
    async fn list_audit(
        &self,
        account: Option<&AccountId>,
        page: &PageRequest,
    ) -> Result<Page<AuditEntry>, StoreError> {
        self.inner.list_audit(account, page).await
    }
    async fn purge_audit(&self, before: Timestamp, max: usize) -> Result<u64, StoreError> {
        self.inner.purge_audit(before, max).await
    }
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> EndpointStore for SealedStore<S> {
    async fn create_endpoint(&self, ep: &Endpoint) -> Result<(), StoreError> {
        self.inner.create_endpoint(&self.seal_endpoint(ep)).await
    }
    async fn update_endpoint(&self, ep: &Endpoint) -> Result<(), StoreError> {
        self.inner.update_endpoint(&self.seal_endpoint(ep)).await
    }
    async fn endpoint(
        &self,
        account: &AccountId,
        id: &EndpointId,
    ) -> Result<Option<Endpoint>, StoreError> {
        match self.inner.endpoint(account, id).await? {
            Some(ep) => opened(self.open_endpoint(ep)).map(Some),
            None => Ok(None),
        }
    }
    async fn list_endpoints(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Endpoint>, StoreError> {
        let got = self.inner.list_endpoints(account, page).await?;
        Ok(Page {
            items: opened(self.open_endpoints(got.items))?,
            next: got.next,
        })
    }
    async fn remove_endpoint(
        &self,
        account: &AccountId,
        id: &EndpointId,
    ) -> Result<bool, StoreError> {
        self.inner.remove_endpoint(account, id).await
    }
    async fn subscribers(
        &self,
        account: &AccountId,
        site: Option<&SiteId>,
        kind: &EventTypeName,
    ) -> Result<Vec<Endpoint>, StoreError> {
        let eps = self.inner.subscribers(account, site, kind).await?;
        opened(self.open_endpoints(eps))
    }
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> QueueStore for SealedStore<S> {
    async fn add_hourly(&self, stats: &[HourlyStats]) -> Result<(), StoreError> {
        self.inner.add_hourly(stats).await
    }
    async fn enqueue_with(
        &self,
        event: &Event,
        targets: &[EndpointId],
        now: Timestamp,
        trigger: Trigger,
    ) -> Result<Receipt, StoreError> {
        self.inner
            .enqueue_with(&self.seal_event(event), targets, now, trigger)
            .await
    }
    async fn enqueue(
        &self,
        event: &Event,
        targets: &[EndpointId],
        now: Timestamp,
    ) -> Result<Receipt, StoreError> {
        self.inner
            .enqueue(&self.seal_event(event), targets, now)
            .await
    }
    async fn enqueue_batch(
        &self,
        items: &[(Event, Vec<EndpointId>)],
        now: Timestamp,
        trigger: Trigger,
    ) -> Result<Vec<Receipt>, StoreError> {
        if !self.options.payloads {
            return self.inner.enqueue_batch(items, now, trigger).await;
        }
        let sealed: Vec<(Event, Vec<EndpointId>)> = items
            .iter()
            .map(|(ev, targets)| (self.seal_event(ev).into_owned(), targets.clone()))
            .collect();
        self.inner.enqueue_batch(&sealed, now, trigger).await
    }
    async fn claim_due(
        &self,
        now: Timestamp,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        let got = self.inner.claim_due(now, max, lease).await?;
        opened(got.into_iter().map(|c| self.open_claimed(c)).collect())
    }
    async fn claim_due_except(
        &self,
        now: Timestamp,
        max: usize,
        lease: Duration,
        skip: &[EndpointId],
    ) -> Result<Vec<Claimed>, StoreError> {
        let got = self.inner.claim_due_except(now, max, lease, skip).await?;
        opened(got.into_iter().map(|c| self.open_claimed(c)).collect())
    }
    async fn defer(&self, lease: &LeaseToken, until: Timestamp) -> Result<(), StoreError> {
        self.inner.defer(lease, until).await
    }
    async fn hold_endpoint(
        &self,
        endpoint: &EndpointId,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.inner.hold_endpoint(endpoint, until, now).await
    }
    async fn settle(
        &self,
        lease: &LeaseToken,
        attempt: &Attempt,
        next: Next,
    ) -> Result<(), StoreError> {
        self.inner.settle(lease, attempt, next).await
    }
    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.inner.next_due().await
    }
    async fn backlog(&self) -> Result<Backlog, StoreError> {
        self.inner.backlog().await
    }
    fn listen_for_work(&self) -> Option<WorkListener> {
        self.inner.listen_for_work()
    }
    async fn purge(&self, before: Timestamp, max: usize) -> Result<u64, StoreError> {
        self.inner.purge(before, max).await
    }
    async fn record_failing(
        &self,
        id: &EndpointId,
        at: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        self.inner.record_failing(id, at).await
    }
    async fn record_healthy(&self, id: &EndpointId) -> Result<(), StoreError> {
        self.inner.record_healthy(id).await
    }
    async fn disable_endpoint(
        &self,
        id: &EndpointId,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner.disable_endpoint(id, reason, now).await
    }
    async fn retry_delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
        now: Timestamp,
    ) -> Result<Delivery, StoreError> {
        self.inner.retry_delivery(account, id, now).await
    }
    async fn recover_failed(
        &self,
        account: &AccountId,
        endpoint: &EndpointId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.inner
            .recover_failed(account, endpoint, since, now)
            .await
    }
    async fn replace_event_data(
        &self,
        account: &AccountId,
        id: &EventId,
        data: &RawValue,
    ) -> Result<bool, StoreError> {
        self.inner.replace_event_data(account, id, data).await
    }
}

#[async_trait::async_trait]
impl<S: Store + ?Sized> HistoryStore for SealedStore<S> {
    async fn hourly(
        &self,
        endpoint: &EndpointId,
        since: Timestamp,
    ) -> Result<Vec<HourlyStats>, StoreError> {
        self.inner.hourly(endpoint, since).await
    }
    async fn event(&self, account: &AccountId, id: &EventId) -> Result<Option<Event>, StoreError> {
        match self.inner.event(account, id).await? {
            Some(ev) => opened(self.open_event(ev)).map(Some),
            None => Ok(None),
        }
    }
    async fn event_by_idempotency_key(
        &self,
        account: &AccountId,
        key: &str,
    ) -> Result<Option<Event>, StoreError> {
        match self.inner.event_by_idempotency_key(account, key).await? {
            Some(ev) => opened(self.open_event(ev)).map(Some),
            None => Ok(None),
        }
    }
    async fn list_events(
        &self,
        account: &AccountId,
        filter: &EventFilter,
        page: &PageRequest,
    ) -> Result<Page<Event>, StoreError> {
        let got = self.inner.list_events(account, filter, page).await?;
        Ok(Page {
            items: opened(got.items.into_iter().map(|e| self.open_event(e)).collect())?,
            next: got.next,
        })
    }
    async fn delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
    ) -> Result<Option<Delivery>, StoreError> {
        self.inner.delivery(account, id).await
    }
    async fn list_deliveries(
        &self,
        account: &AccountId,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<Delivery>, StoreError> {
        self.inner.list_deliveries(account, filter, page).await
    }
    async fn attempts(
        &self,
        account: &AccountId,
        delivery: &DeliveryId,
    ) -> Result<Vec<Attempt>, StoreError> {
        self.inner.attempts(account, delivery).await
    }
}
