//! Key names (see the layout table in the crate docs) and the lexicographic index members.

use hookline_core::Timestamp;

/// Every key name of one store, all starting with its prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// `<prefix>{q}:`: the delivery pipeline (one hash slot).
    q: String,
    /// `<prefix>{c}:`: the catalog (accounts, event types, API keys).
    c: String,
    /// `<prefix>`.
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            q: format!("{prefix}{{q}}:"),
            c: format!("{prefix}{{c}}:"),
            prefix: prefix.to_owned(),
        }
    }

    /// The pipeline key base, passed to every pipeline script as `ARGV[1]`.
    pub(crate) fn q(&self) -> &str {
        &self.q
    }

    /// The due index: delivery id → due time (ms), pending deliveries of enabled endpoints.
    pub(crate) fn due(&self) -> String {
        format!("{}due", self.q)
    }

    /// An endpoint's counters of one hour (ms): hash `d`, `f`, `l0` … `l11`.
    pub(crate) fn hourly(&self, endpoint: &str, hour: i64) -> String {
        format!("{}hourly:{endpoint}:{hour}", self.q)
    }

    /// The hours (score and member) an endpoint has counters of.
    pub(crate) fn hours(&self, endpoint: &str) -> String {
        format!("{}hours:{endpoint}", self.q)
    }

    /// Every pending delivery's id (whatever index it waits in), for `backlog`.
    pub(crate) fn pending(&self) -> String {
        format!("{}pending", self.q)
    }

    pub(crate) fn account(&self, id: &str) -> String {
        format!("{}acct:{id}", self.c)
    }

    pub(crate) fn accounts(&self) -> String {
        format!("{}accts", self.c)
    }

    pub(crate) fn event_type(&self, name: &str) -> String {
        format!("{}et:{name}", self.c)
    }

    pub(crate) fn event_types(&self) -> String {
        format!("{}ets", self.c)
    }

    pub(crate) fn api_key_base(&self) -> String {
        format!("{}key:", self.c)
    }

    pub(crate) fn api_key(&self, hash: &str) -> String {
        format!("{}key:{hash}", self.c)
    }

    pub(crate) fn settings(&self) -> String {
        format!("{}settings", self.c)
    }

    pub(crate) fn admin_keys(&self) -> String {
        format!("{}admins", self.c)
    }

    pub(crate) fn audit(&self, id: &str) -> String {
        format!("{}aud:{id}", self.c)
    }

    /// Every audit entry, by time.
    pub(crate) fn audit_all(&self) -> String {
        format!("{}audall", self.c)
    }

    /// An account's audit entries, by time.
    pub(crate) fn audit_of(&self, account: &str) -> String {
        format!("{}auds:{account}", self.c)
    }

    pub(crate) fn account_keys(&self, account: &str) -> String {
        format!("{}acctkeys:{account}", self.c)
    }

    /// `<prefix>{a:<account>}:site:` — an account's sites live under the account's own tag.
    pub(crate) fn site_base(&self, account: &str) -> String {
        format!("{}{{a:{account}}}:site:", self.prefix)
    }

    pub(crate) fn site(&self, account: &str, id: &str) -> String {
        format!("{}{id}", self.site_base(account))
    }

    pub(crate) fn sites(&self, account: &str) -> String {
        format!("{}{{a:{account}}}:sites", self.prefix)
    }

    pub(crate) fn endpoint(&self, id: &str) -> String {
        format!("{}ep:{id}", self.q)
    }

    pub(crate) fn endpoints(&self, account: &str) -> String {
        format!("{}eps:{account}", self.q)
    }

    pub(crate) fn event(&self, id: &str) -> String {
        format!("{}ev:{id}", self.q)
    }

    /// The idempotency key `key` of `account` (as `enqueue.lua` writes it).
    pub(crate) fn idempotency(&self, account: &str, key: &str) -> String {
        format!("{}idem:{account}:{key}", self.q)
    }

    pub(crate) fn events(&self, account: &str) -> String {
        format!("{}evs:{account}", self.q)
    }

    pub(crate) fn event_deliveries(&self, event: &str) -> String {
        format!("{}evd:{event}", self.q)
    }

    pub(crate) fn delivery(&self, id: &str) -> String {
        format!("{}dlv:{id}", self.q)
    }

    pub(crate) fn deliveries(&self, account: &str) -> String {
        format!("{}dlvs:{account}", self.q)
    }

    pub(crate) fn endpoint_deliveries(&self, endpoint: &str) -> String {
        format!("{}epd:{endpoint}", self.q)
    }

    pub(crate) fn attempts(&self, delivery: &str) -> String {
        format!("{}att:{delivery}", self.q)
    }
}

/// The time part of an index member: 16 lower-case hex digits that sort like the time.
pub(crate) fn time_part(t: Timestamp) -> String {
    // Flipping the sign bit maps i64 order onto u64 order.
    format!("{:016x}:", (t.as_millis() as u64) ^ (1 << 63))
}

/// An index member `<time>:<id>`: list indexes are sorted sets with every score 0, so they sort
/// by (time, id) lexicographically and a cursor is an exclusive lex bound.
pub(crate) fn member(t: Timestamp, id: &str) -> String {
    format!("{}{id}", time_part(t))
}

/// The id part of an index member.
pub(crate) fn member_id(m: &str) -> &str {
    m.get(17..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_sort_like_time_then_id() {
        let a = member(Timestamp::from_millis(-5), "b");
        let b = member(Timestamp::from_millis(0), "a");
        let c = member(Timestamp::from_millis(0), "b");
        let d = member(Timestamp::from_millis(1_800_000_000_000), "a");
        assert!(a < b && b < c && c < d);
        assert_eq!(member_id(&d), "a");
        assert!(time_part(Timestamp::from_millis(0)) < b);
    }
}
