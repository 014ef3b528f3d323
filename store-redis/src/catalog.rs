//! [`CatalogStore`]: accounts, sites, the event-type catalog and API keys.

use hookline_core::model::{Account, ApiKey, EventType, Page, PageRequest, Role, Site};
use hookline_core::store::{CatalogStore, StoreError};
use hookline_core::{AccountId, EventTypeName, SiteId, Timestamp};

use crate::RedisStore;
use crate::codec;
use crate::error::{DbError, DbResult};
use crate::keys::member;
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
        let mut conn = self.conn.clone();
        let _: i64 = scripts::API_KEY_PUT
            .key(k.api_key(&key.hash))
            .key(set)
            .arg(&key.hash)
            .arg(&key.prefix)
            .arg(account)
            .arg(key.created_at.as_millis())
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn api_key_inner(&self, hash: &str) -> DbResult<Option<ApiKey>> {
        let mut conn = self.conn.clone();
        let map: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.api_key(hash))
            .query_async(&mut conn)
            .await?;
        if map.is_empty() {
            return Ok(None);
        }
        let get = |f: &str| map.get(f).cloned().unwrap_or_default();
        let account = get("account");
        let role = if account.is_empty() {
            Role::Admin
        } else {
            Role::Account(AccountId::parse(&account).map_err(|e| DbError::corrupt("api key", e))?)
        };
        let created = codec::parse_millis(&get("created"))
            .ok_or_else(|| DbError::corrupt("api key", "created is not a time"))?;
        Ok(Some(ApiKey::new(
            hash.to_owned(),
            get("prefix"),
            role,
            Timestamp::from_millis(created),
        )))
    }
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
}
