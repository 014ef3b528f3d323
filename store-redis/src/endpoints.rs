//! [`EndpointStore`]: endpoints, as JSON records with their enabled flag beside them (the claim
//! script reads it).

use hookline_core::model::{Endpoint, Page, PageRequest};
use hookline_core::store::{EndpointStore, StoreError};
use hookline_core::{AccountId, EndpointId, EventTypeName, SiteId, Timestamp};

use crate::RedisStore;
use crate::codec;
use crate::error::{DbError, DbResult};
use crate::keys::member;
use crate::list::Window;
use crate::scripts;

impl RedisStore {
    async fn put_endpoint(&self, ep: &Endpoint, create: bool) -> DbResult<()> {
        let k = &self.keys;
        let mut conn = self.conn.clone();
        let done: i64 = scripts::ENDPOINT_PUT
            .key(k.due())
            .arg(k.q())
            .arg(if create { "create" } else { "update" })
            .arg(ep.id.as_str())
            .arg(ep.account.as_str())
            .arg(if ep.enabled { "1" } else { "0" })
            .arg(member(ep.created_at, ep.id.as_str()))
            .arg(codec::to_json(
                // The failure clock is kept beside the record (`fs`), by the store alone.
                &ep.clone().with_failing_since(None),
                "endpoint",
            )?)
            .arg(if ep.ordered { "1" } else { "0" })
            .arg(
                ep.max_concurrency
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            )
            .arg(ep.rate_limit.map(|r| r.to_string()).unwrap_or_default())
            .invoke_async(&mut conn)
            .await?;
        match (done, create) {
            (1, _) => Ok(()),
            (_, true) => Err(DbError::Store(StoreError::Conflict("endpoint"))),
            (_, false) => Err(DbError::Store(StoreError::NotFound("endpoint"))),
        }
    }

    async fn endpoint_inner(
        &self,
        account: &AccountId,
        id: &EndpointId,
    ) -> DbResult<Option<Endpoint>> {
        let mut conn = self.conn.clone();
        let (owner, json, fs): (Option<String>, Option<String>, Option<String>) =
            redis::cmd("HMGET")
                .arg(self.keys.endpoint(id.as_str()))
                .arg("account")
                .arg("j")
                .arg("fs")
                .query_async(&mut conn)
                .await?;
        match (owner, json) {
            (Some(owner), Some(j)) if owner == account.as_str() => {
                let ep: Endpoint = codec::from_json(&j, "endpoint")?;
                Ok(Some(ep.with_failing_since(failing_since(fs.as_deref())?)))
            }
            _ => Ok(None),
        }
    }

    async fn subscribers_inner(
        &self,
        account: &AccountId,
        site: Option<&SiteId>,
        kind: &EventTypeName,
    ) -> DbResult<Vec<Endpoint>> {
        let k = &self.keys;
        let mut conn = self.conn.clone();
        // An account has few endpoints: all of them, oldest first, filtered with the model's rule.
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(k.endpoints(account.as_str()))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for m in &members {
            pipe.cmd("HGET")
                .arg(k.endpoint(crate::keys::member_id(m)))
                .arg("j");
        }
        let docs: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
        let mut subs = Vec::new();
        for j in docs.into_iter().flatten() {
            let ep: Endpoint = codec::from_json(&j, "endpoint")?;
            if ep.enabled && ep.account == *account && ep.accepts(site, kind) {
                subs.push(ep);
            }
        }
        Ok(subs)
    }
}

/// The failure clock field `fs` (milliseconds; absent or empty while healthy).
pub(crate) fn failing_since(fs: Option<&str>) -> DbResult<Option<Timestamp>> {
    match fs {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse::<i64>()
            .map(|ms| Some(Timestamp::from_millis(ms)))
            .map_err(|e| DbError::corrupt("endpoint fs", e)),
    }
}

#[async_trait::async_trait]
impl EndpointStore for RedisStore {
    async fn create_endpoint(&self, ep: &Endpoint) -> Result<(), StoreError> {
        self.op(self.put_endpoint(ep, true)).await
    }

    async fn update_endpoint(&self, ep: &Endpoint) -> Result<(), StoreError> {
        self.op(self.put_endpoint(ep, false)).await
    }

    async fn endpoint(
        &self,
        account: &AccountId,
        id: &EndpointId,
    ) -> Result<Option<Endpoint>, StoreError> {
        self.op(self.endpoint_inner(account, id)).await
    }

    async fn list_endpoints(
        &self,
        account: &AccountId,
        page: &PageRequest,
    ) -> Result<Page<Endpoint>, StoreError> {
        let k = &self.keys;
        self.op(async {
            let mut found = self
                .list_index(
                    &k.endpoints(account.as_str()),
                    page,
                    Window::default(),
                    |id| k.endpoint(id),
                    |_: &Endpoint| true,
                )
                .await?;
            if found.items.is_empty() {
                return Ok(found);
            }
            // The failure clock lives beside the record.
            let mut pipe = redis::pipe();
            for ep in &found.items {
                pipe.cmd("HGET").arg(k.endpoint(ep.id.as_str())).arg("fs");
            }
            let clocks: Vec<Option<String>> = pipe.query_async(&mut self.conn.clone()).await?;
            found.items = std::mem::take(&mut found.items)
                .into_iter()
                .zip(clocks)
                .map(|(ep, fs)| Ok(ep.with_failing_since(failing_since(fs.as_deref())?)))
                .collect::<DbResult<_>>()?;
            Ok(found)
        })
        .await
    }

    async fn remove_endpoint(
        &self,
        account: &AccountId,
        id: &EndpointId,
    ) -> Result<bool, StoreError> {
        self.op(async {
            let k = &self.keys;
            let mut conn = self.conn.clone();
            let done: i64 = scripts::ENDPOINT_REMOVE
                .key(k.due())
                .arg(k.q())
                .arg(id.as_str())
                .arg(account.as_str())
                .invoke_async(&mut conn)
                .await?;
            Ok(done == 1)
        })
        .await
    }

    async fn subscribers(
        &self,
        account: &AccountId,
        site: Option<&SiteId>,
        kind: &EventTypeName,
    ) -> Result<Vec<Endpoint>, StoreError> {
        self.op(self.subscribers_inner(account, site, kind)).await
    }
}
