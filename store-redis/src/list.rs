//! Newest-first, cursor-paginated lists over the lexicographic index sets.
//!
//! An index is a sorted set whose members are `<time>:<id>` with score 0 (see
//! [`keys::member`]), so `ZRANGE … BYLEX REV` walks it newest first with ties broken by id, a
//! cursor is an exclusive upper bound, and time filters are lex bounds. Members whose record has
//! expired (retention) are skipped and removed on the way.

use hookline_core::Timestamp;
use hookline_core::model::{
    Account, AuditEntry, Cursor, Endpoint, Event, EventType, Page, PageRequest, Site,
};

use crate::RedisStore;
use crate::codec;
use crate::error::{DbError, DbResult};
use crate::keys::{member, member_id, time_part};

/// A record that can be listed from an index.
pub(crate) trait Listed: Sized {
    /// True for delivery hashes (read with `HGETALL`); JSON records are read with `HGET <key> j`.
    const HASH: bool = false;
    /// The record from the reply; `None` when the key is gone.
    fn decode(id: &str, reply: redis::Value) -> DbResult<Option<Self>>;
    /// Where a page ending at this record continues (must match its index member).
    fn cursor(&self) -> Cursor;
}

fn json_reply<T: serde::de::DeserializeOwned>(
    reply: redis::Value,
    what: &'static str,
) -> DbResult<Option<T>> {
    let text: Option<String> =
        redis::from_redis_value(reply).map_err(|e| DbError::corrupt(what, e))?;
    text.map(|j| codec::from_json(&j, what)).transpose()
}

macro_rules! listed_json {
    ($t:ty, $what:literal, |$v:ident| ($time:expr, $id:expr)) => {
        impl Listed for $t {
            fn decode(_id: &str, reply: redis::Value) -> DbResult<Option<Self>> {
                json_reply(reply, $what)
            }
            fn cursor(&self) -> Cursor {
                let $v = self;
                Cursor {
                    created_at: $time,
                    id: $id.to_owned(),
                }
            }
        }
    };
}

listed_json!(Account, "account", |a| (a.created_at, a.id.as_str()));
listed_json!(Site, "site", |s| (s.created_at, s.id.as_str()));
listed_json!(EventType, "event type", |e| (e.created_at, e.name.as_str()));
listed_json!(Endpoint, "endpoint", |e| (e.created_at, e.id.as_str()));
listed_json!(Event, "event", |e| (e.timestamp, e.id.as_str()));
listed_json!(AuditEntry, "audit entry", |e| (e.at, e.id.as_str()));

impl Listed for hookline_core::model::Delivery {
    const HASH: bool = true;
    fn decode(id: &str, reply: redis::Value) -> DbResult<Option<Self>> {
        let map: std::collections::HashMap<String, String> =
            redis::from_redis_value(reply).map_err(|e| DbError::corrupt("delivery", e))?;
        if map.is_empty() {
            return Ok(None);
        }
        codec::delivery(id, &map).map(Some)
    }
    fn cursor(&self) -> Cursor {
        Cursor {
            created_at: self.created_at,
            id: self.id.as_str().to_owned(),
        }
    }
}

/// Which part of an index to list: `since` inclusive, `until` exclusive.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Window {
    pub(crate) since: Option<Timestamp>,
    pub(crate) until: Option<Timestamp>,
}

impl RedisStore {
    /// One page of `index`, newest first, of the records (at `key_of(id)`) that `keep` accepts.
    pub(crate) async fn list_index<T: Listed>(
        &self,
        index: &str,
        page: &PageRequest,
        window: Window,
        key_of: impl Fn(&str) -> String,
        keep: impl Fn(&T) -> bool,
    ) -> DbResult<Page<T>> {
        let mut conn = self.conn.clone();
        let want = page.limit.saturating_add(1);
        let chunk = want.clamp(16, 500);
        // Exclusive upper bound: the smaller of the cursor and `until`.
        let mut uppers = Vec::new();
        if let Some(c) = &page.after {
            uppers.push(member(c.created_at, &c.id));
        }
        if let Some(t) = window.until {
            uppers.push(time_part(t));
        }
        let mut upper = match uppers.into_iter().min() {
            Some(m) => format!("({m}"),
            None => "+".to_owned(),
        };
        let lower = match window.since {
            Some(t) => format!("[{}", time_part(t)),
            None => "-".to_owned(),
        };

        let mut out = Vec::new();
        let mut stale = Vec::new();
        'scan: loop {
            let members: Vec<String> = redis::cmd("ZRANGE")
                .arg(index)
                .arg(&upper)
                .arg(&lower)
                .arg("BYLEX")
                .arg("REV")
                .arg("LIMIT")
                .arg(0)
                .arg(chunk)
                .query_async(&mut conn)
                .await?;
            let Some(last) = members.last() else { break };
            upper = format!("({last}");
            let mut pipe = redis::pipe();
            for m in &members {
                let key = key_of(member_id(m));
                if T::HASH {
                    pipe.cmd("HGETALL").arg(key);
                } else {
                    pipe.cmd("HGET").arg(key).arg("j");
                }
            }
            let replies: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
            for (m, reply) in members.iter().zip(replies) {
                match T::decode(member_id(m), reply)? {
                    None => stale.push(m.clone()),
                    Some(item) if keep(&item) => {
                        out.push(item);
                        if out.len() >= want {
                            break 'scan;
                        }
                    }
                    Some(_) => {}
                }
            }
            if members.len() < chunk {
                break;
            }
        }
        if !stale.is_empty() {
            let _: i64 = redis::cmd("ZREM")
                .arg(index)
                .arg(&stale)
                .query_async(&mut conn)
                .await?;
        }
        Ok(Page::from_rows(out, page.limit, T::cursor))
    }
}
