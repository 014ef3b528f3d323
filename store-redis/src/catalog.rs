//! [`CatalogStore`]: accounts, sites, the event-type catalog and API keys.

use std::collections::HashMap;

use hookline_core::model::{
    Account, ApiKey, AuditEntry, Cursor, EventType, Page, PageRequest, Role, Site,
};
use hookline_core::store::{AuditStore, CatalogStore, StoreError};
use hookline_core::{AccountId, EventTypeName, KeyId, SiteId, Timestamp};

use crate::RedisStore;
use crate::codec;
use crate::error::{DbError, DbResult};
use crate::keys::{member, member_id, time_part};
use crate::list::Window;
use crate::scripts;

impl RedisStore {
    /// Creates (`Conflict` if taken) or replaces (`NotFound` if missing) a catalog record.
    async fn put_doc(
        &self,
        key: String,
        index: String,
        create: bool,
        index_member: String,
        json: String,
        entity: &'static str,
    ) -> DbResult<()> {
        let mut conn = self.conn.clone();
        let done: i64 = scripts::DOC_PUT
            .key(key)
            .key(index)
            .arg(if create { "create" } else { "update" })
            .arg(index_member)
            .arg(json)
            .invoke_async(&mut conn)
            .await?;
        match (done, create) {
            (1, _) => Ok(()),
            (_, true) => Err(DbError::Store(StoreError::Conflict(entity))),
            (_, false) => Err(DbError::Store(StoreError::NotFound(entity))),
        }
    }

    async fn get_doc<T: serde::de::DeserializeOwned>(
        &self,
        key: String,
        what: &'static str,
    ) -> DbResult<Option<T>> {
        let mut conn = self.conn.clone();
        let json: Option<String> = redis::cmd("HGET")
            .arg(key)
            .arg("j")
            .query_async(&mut conn)
            .await?;
        json.map(|j| codec::from_json(&j, what)).transpose()
    }

    async fn delete_doc(&self, key: String, index: String) -> DbResult<bool> {
        let mut conn = self.conn.clone();
        let done: i64 = scripts::DOC_DELETE
            .key(key)
            .key(index)
            .invoke_async(&mut conn)
            .await?;
        Ok(done == 1)
    }

    async fn put_account(&self, a: &Account, create: bool) -> DbResult<()> {
        let k = &self.keys;
        self.put_doc(
            k.account(a.id.as_str()),
            k.accounts(),
            create,
            member(a.created_at, a.id.as_str()),
            codec::to_json(a, "account")?,
            "account",
        )
        .await
    }

    async fn put_site(&self, s: &Site, create: bool) -> DbResult<()> {
        let k = &self.keys;
        let account = s.account.as_str();
        self.put_doc(
            k.site(account, s.id.as_str()),
            k.sites(account),
            create,
            member(s.created_at, s.id.as_str()),
            codec::to_json(s, "site")?,
            "site",
        )
        .await
    }

    async fn put_event_type(&self, et: &EventType, create: bool) -> DbResult<()> {
        let k = &self.keys;
        self.put_doc(
            k.event_type(et.name.as_str()),
            k.event_types(),
            create,
            member(et.created_at, et.name.as_str()),
            codec::to_json(et, "event type")?,
            "event type",
        )
        .await
    }

    async fn delete_account_inner(&self, id: &AccountId) -> DbResult<bool> {
        let k = &self.keys;
        let a = id.as_str();
        let mut conn = self.conn.clone();
        // 1. The pipeline (slot `{q}`): endpoints, events, deliveries, attempts, keys.
        let _: i64 = scripts::ACCOUNT_PURGE
            .key(k.due())
            .arg(k.q())
            .arg(a)
            .invoke_async(&mut conn)
            .await?;
        // 2. Sites (slot `{a:<account>}`).
        let _: i64 = scripts::SITE_PURGE
            .key(k.sites(a))
            .arg(k.site_base(a))
            .invoke_async(&mut conn)
            .await?;
        // 3. The account and its API keys (slot `{c}`); it is what tells whether it existed.
        let done: i64 = scripts::ACCOUNT_DELETE
            .key(k.account(a))
            .key(k.accounts())
            .key(k.account_keys(a))
            .arg(k.api_key_base())
            .invoke_async(&mut conn)
            .await?;
        Ok(done == 1)
    }

    async fn put_api_key_inner(&self, key: &ApiKey) -> DbResult<()> {
        let k = &self.keys;
        let (set, account) = match &key.role {
            Role::Admin => (k.admin_keys(), ""),
            Role::Account(a) => (k.account_keys(a.as_str()), a.as_str()),
        };
        let flag = |b: bool| if b { "1" } else { "0" };
        let millis =
            |t: Option<Timestamp>| t.map(|t| t.as_millis().to_string()).unwrap_or_default();
        let mut conn = self.conn.clone();
        let _: i64 = scripts::API_KEY_PUT
            .key(k.api_key(&key.hash))
            .key(set)
            .arg(&key.hash)
            .arg(&key.prefix)
            .arg(account)
            .arg(key.created_at.as_millis())
            .arg(&key.name)
            .arg(flag(key.read_only))
            .arg(flag(key.bootstrap))
            .arg(millis(key.expires_at))
            .arg(millis(key.last_used_at))
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn api_key_inner(&self, hash: &str) -> DbResult<Option<ApiKey>> {
        let mut conn = self.conn.clone();
        let map: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.api_key(hash))
            .query_async(&mut conn)
            .await?;
        decode_key(hash, &map)
    }

    /// The scope's set of key hashes.
    fn key_set(&self, account: Option<&AccountId>) -> String {
        match account {
            Some(a) => self.keys.account_keys(a.as_str()),
            None => self.keys.admin_keys(),
        }
    }

    async fn list_api_keys_inner(
        &self,
        account: Option<&AccountId>,
        page: &PageRequest,
    ) -> DbResult<Page<ApiKey>> {
        let mut conn = self.conn.clone();
        let hashes: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.key_set(account))
            .query_async(&mut conn)
            .await?;
        let mut pipe = redis::pipe();
        for h in &hashes {
            pipe.cmd("HGETALL").arg(self.keys.api_key(h));
        }
        let maps: Vec<HashMap<String, String>> = if hashes.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut conn).await?
        };
        let mut found = Vec::with_capacity(hashes.len());
        for (h, map) in hashes.iter().zip(&maps) {
            if let Some(key) = decode_key(h, map)? {
                found.push(key);
            }
        }
        let after = |k: &ApiKey| {
            page.after
                .as_ref()
                .is_none_or(|c| (k.created_at, k.id.as_str()) < (c.created_at, c.id.as_str()))
        };
        found.retain(after);
        found.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        found.truncate(page.limit.saturating_add(1));
        Ok(Page::from_rows(found, page.limit, |k| Cursor {
            created_at: k.created_at,
            id: k.id.as_str().to_owned(),
        }))
    }

    async fn delete_api_key_inner(
        &self,
        account: Option<&AccountId>,
        id: &KeyId,
    ) -> DbResult<Option<ApiKey>> {
        let mut conn = self.conn.clone();
        let set = self.key_set(account);
        let hashes: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&set)
            .query_async(&mut conn)
            .await?;
        let Some(hash) = hashes.into_iter().find(|h| KeyId::of_hash(h) == *id) else {
            return Ok(None);
        };
        let map: HashMap<String, String> = scripts::API_KEY_DELETE
            .key(self.keys.api_key(&hash))
            .key(set)
            .arg(&hash)
            .invoke_async(&mut conn)
            .await?;
        decode_key(&hash, &map)
    }

    async fn touch_api_key_inner(&self, hash: &str, at: Timestamp) -> DbResult<()> {
        let mut conn = self.conn.clone();
        let _: i64 = scripts::API_KEY_TOUCH
            .key(self.keys.api_key(hash))
            .arg(at.as_millis())
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn record_audit_inner(&self, e: &AuditEntry) -> DbResult<()> {
        let k = &self.keys;
        let m = member(e.at, e.id.as_str());
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HSET")
            .arg(k.audit(e.id.as_str()))
            .arg("j")
            .arg(codec::to_json(e, "audit entry")?)
            .ignore();
        if self.retention_ms > 0 {
            pipe.cmd("PEXPIRE")
                .arg(k.audit(e.id.as_str()))
                .arg(self.retention_ms)
                .ignore();
        }
        pipe.cmd("ZADD").arg(k.audit_all()).arg(0).arg(&m).ignore();
        if let Some(a) = &e.account {
            pipe.cmd("ZADD")
                .arg(k.audit_of(a.as_str()))
                .arg(0)
                .arg(&m)
                .ignore();
        }
        let mut conn = self.conn.clone();
        let () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    async fn purge_audit_inner(&self, before: Timestamp, max: usize) -> DbResult<u64> {
        let k = &self.keys;
        let mut conn = self.conn.clone();
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(k.audit_all())
            .arg("-")
            .arg(format!("({}", time_part(before)))
            .arg("BYLEX")
            .arg("LIMIT")
            .arg(0)
            .arg(max)
            .query_async(&mut conn)
            .await?;
        if members.is_empty() {
            return Ok(0);
        }
        // The accounts' indexes hold the same members: find each entry's account.
        let mut pipe = redis::pipe();
        for m in &members {
            pipe.cmd("HGET").arg(k.audit(member_id(m))).arg("j");
        }
        let docs: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (m, doc) in members.iter().zip(docs) {
            let entry: Option<AuditEntry> = doc
                .map(|j| codec::from_json(&j, "audit entry"))
                .transpose()?;
            if let Some(a) = entry.and_then(|e| e.account) {
                pipe.cmd("ZREM").arg(k.audit_of(a.as_str())).arg(m).ignore();
            }
            pipe.cmd("DEL").arg(k.audit(member_id(m))).ignore();
        }
        pipe.cmd("ZREM").arg(k.audit_all()).arg(&members).ignore();
        let () = pipe.query_async(&mut conn).await?;
        Ok(members.len() as u64)
    }
}

/// An API key from its record (`None` when the record is empty: no such key).
fn decode_key(hash: &str, map: &HashMap<String, String>) -> DbResult<Option<ApiKey>> {
    if map.is_empty() {
        return Ok(None);
    }
    let get = |f: &str| map.get(f).map(String::as_str).unwrap_or_default();
    let account = get("account");
    let role = if account.is_empty() {
        Role::Admin
    } else {
        Role::Account(AccountId::parse(account).map_err(|e| DbError::corrupt("api key", e))?)
    };
    let time = |f: &str| -> DbResult<Option<Timestamp>> {
        match get(f) {
            "" => Ok(None),
            t => codec::parse_millis(t)
                .map(|ms| Some(Timestamp::from_millis(ms)))
                .ok_or_else(|| DbError::corrupt("api key", format!("{f} is not a time"))),
        }
    };
    let created =
        time("created")?.ok_or_else(|| DbError::corrupt("api key", "created is not a time"))?;
    let mut key = ApiKey::new(hash.to_owned(), get("prefix").to_owned(), role, created);
    key.name = get("name").to_owned();
    key.read_only = get("ro") == "1";
    // Admin keys stored before keys had flags are the keys the server was started with.
    key.bootstrap = match map.get("boot") {
        Some(b) => b == "1",
        None => key.role == Role::Admin,
    };
    key.expires_at = time("exp")?;
    key.last_used_at = time("used")?;
    Ok(Some(key))
}

#[async_trait::async_trait]
impl CatalogStore for RedisStore {
    async fn create_account(&self, account: &Account) -> Result<(), StoreError> {
        self.op(self.put_account(account, true)).await
    }

    async fn update_account(&self, account: &Account) -> Result<(), StoreError> {
        self.op(self.put_account(account, false)).await
    }

    async fn account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        self.op(self.get_doc(self.keys.account(id.as_str()), "account"))
            .await
    }

    async fn list_accounts(&self, page: &PageRequest) -> Result<Page<Account>, StoreError> {
        let k = &self.keys;
        self.op(self.list_index(
            &k.accounts(),
            page,
            Window::default(),
            |id| k.account(id),
            |_: &Account| true,
        ))
        .await
    }

    async fn delete_account(&self, id: &AccountId) -> Result<bool, StoreError> {
        self.op(self.delete_account_inner(id)).await
    }

    async fn create_site(&self, site: &Site) -> Result<(), StoreError> {
        self.op(self.put_site(site, true)).await
    }

    async fn update_site(&self, site: &Site) -> Result<(), StoreError> {
        self.op(self.put_site(site, false)).await
    }

    async fn site(&self, account: &AccountId, id: &SiteId) -> Result<Option<Site>, StoreError> {
        self.op(self.get_doc(self.keys.site(account.as_str(), id.as_str()), "site"))
            .await
    }

    async fn list_sites(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Site>, StoreError> {
        let k = &self.keys;
        let a = account.as_str();
        self.op(self.list_index(
            &k.sites(a),
            page,
            Window::default(),
            |id| k.site(a, id),
            |_: &Site| true,
        ))
        .await
    }

    async fn delete_site(&self, account: &AccountId, id: &SiteId) -> Result<bool, StoreError> {
        let k = &self.keys;
        let a = account.as_str();
        self.op(self.delete_doc(k.site(a, id.as_str()), k.sites(a)))
            .await
    }

    async fn create_event_type(&self, et: &EventType) -> Result<(), StoreError> {
        self.op(self.put_event_type(et, true)).await
    }

    async fn update_event_type(&self, et: &EventType) -> Result<(), StoreError> {
        self.op(self.put_event_type(et, false)).await
    }

    async fn event_type(&self, name: &EventTypeName) -> Result<Option<EventType>, StoreError> {
        self.op(self.get_doc(self.keys.event_type(name.as_str()), "event type"))
            .await
    }

    async fn list_event_types(&self, page: &PageRequest) -> Result<Page<EventType>, StoreError> {
        let k = &self.keys;
        self.op(self.list_index(
            &k.event_types(),
            page,
            Window::default(),
            |name| k.event_type(name),
            |_: &EventType| true,
        ))
        .await
    }

    async fn delete_event_type(&self, name: &EventTypeName) -> Result<bool, StoreError> {
        let k = &self.keys;
        self.op(self.delete_doc(k.event_type(name.as_str()), k.event_types()))
            .await
    }

    async fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.op(self.put_api_key_inner(key)).await
    }

    async fn api_key(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.op(self.api_key_inner(hash)).await
    }

    async fn has_admin_key(&self) -> Result<bool, StoreError> {
        self.op(async {
            let mut conn = self.conn.clone();
            let n: i64 = redis::cmd("SCARD")
                .arg(self.keys.admin_keys())
                .query_async(&mut conn)
                .await?;
            Ok(n > 0)
        })
        .await
    }

    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.op(async {
            let mut conn = self.conn.clone();
            let v: Option<String> = redis::cmd("HGET")
                .arg(self.keys.settings())
                .arg(name)
                .query_async(&mut conn)
                .await?;
            Ok(v)
        })
        .await
    }

    async fn put_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.op(async {
            let mut conn = self.conn.clone();
            let _: i64 = redis::cmd("HSET")
                .arg(self.keys.settings())
                .arg(name)
                .arg(value)
                .query_async(&mut conn)
                .await?;
            Ok(())
        })
        .await
    }

    async fn list_api_keys(
        &self,
        account: Option<&AccountId>,
        page: &PageRequest,
    ) -> Result<Page<ApiKey>, StoreError> {
        self.op(self.list_api_keys_inner(account, page)).await
    }

    async fn delete_api_key(
        &self,
        account: Option<&AccountId>,
        id: &KeyId,
    ) -> Result<Option<ApiKey>, StoreError> {
        self.op(self.delete_api_key_inner(account, id)).await
    }

    async fn touch_api_key(&self, hash: &str, at: Timestamp) -> Result<(), StoreError> {
        self.op(self.touch_api_key_inner(hash, at)).await
    }
}

#[async_trait::async_trait]
impl AuditStore for RedisStore {
    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.op(self.record_audit_inner(entry)).await
    }

    async fn list_audit(
        &self,
        account: Option<&AccountId>,
        page: &PageRequest,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let k = &self.keys;
        let index = match account {
            Some(a) => k.audit_of(a.as_str()),
            None => k.audit_all(),
        };
        self.op(self.list_index(
            &index,
            page,
            Window::default(),
            |id| k.audit(id),
            |_: &AuditEntry| true,
        ))
        .await
    }

    async fn purge_audit(&self, before: Timestamp, max: usize) -> Result<u64, StoreError> {
        if max == 0 {
            return Ok(0);
        }
        self.op(self.purge_audit_inner(before, max)).await
    }
}
