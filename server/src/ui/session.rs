//! Dashboard sessions: the operator's sign-in, single-use portal links, cookie sessions, the
//! CSRF token and the sign-in throttle.
//!
//! Sessions and portal links live in memory, in this process: a restart ends every session and
//! voids every unused link (people sign in again, producers ask for a new link). Behind a load
//! balancer with several `hookline serve` processes, route `/ui/` with sticky sessions, or open
//! the portal link on the process that issued it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use hookline_core::id::{AccountId, SiteId};
use hookline_core::model::{Principal, Role};
use hookline_core::service::{Actor, Credential};
use hookline_core::time::Timestamp;
use rand::RngCore as _;

/// How long an operator's session lasts after sign-in.
pub const OPERATOR_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// How long a portal session lasts after its link is opened.
pub const PORTAL_LIFETIME: Duration = Duration::from_secs(3600);
/// How long a portal link stays valid when `expiresIn` is not given.
pub const LINK_DEFAULT: Duration = Duration::from_secs(300);
/// The shortest and longest `expiresIn` of a portal link, in seconds.
pub const LINK_MIN_SECS: u64 = 30;
/// See [`LINK_MIN_SECS`].
pub const LINK_MAX_SECS: u64 = 900;
/// Failed sign-ins allowed per [`THROTTLE_WINDOW`] before further attempts are refused.
pub const THROTTLE_FAILURES: usize = 5;
/// See [`THROTTLE_FAILURES`].
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(60);
/// Most live sessions (and most unused links) kept; the oldest go first beyond it.
const MAX_ENTRIES: usize = 10_000;

/// A signed-in viewer.
#[derive(Debug, Clone)]
pub struct Session {
    /// The cookie value.
    pub id: String,
    /// Who the façade is called as: a session credential of the admin (operator) or of the
    /// account (portal), read-only when the session is.
    pub actor: Actor,
    /// The one account a portal session may see.
    pub account: Option<AccountId>,
    /// The one site a portal session is limited to, when given.
    pub site: Option<SiteId>,
    /// Whether forms that change anything are withheld (and refused).
    pub read_only: bool,
    /// The token every state-changing form carries.
    pub csrf: String,
    /// When it ends.
    pub expires_at: Timestamp,
}

impl Session {
    /// Whether this is the operator's session.
    pub fn is_operator(&self) -> bool {
        self.account.is_none()
    }
}

/// A portal link not yet opened.
#[derive(Debug, Clone)]
struct PortalLink {
    account: AccountId,
    site: Option<SiteId>,
    read_only: bool,
    expires_at: Timestamp,
}

/// Sessions, portal links and the sign-in throttle of one process.
#[derive(Debug, Default)]
pub struct Sessions {
    sessions: Mutex<HashMap<String, Session>>,
    links: Mutex<HashMap<String, PortalLink>>,
    failures: Mutex<VecDeque<Timestamp>>,
}

/// 32 random bytes from the OS, hex.
pub fn token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn prune<V>(map: &mut HashMap<String, V>, now: Timestamp, expiry: impl Fn(&V) -> Timestamp) {
    map.retain(|_, v| expiry(v) > now);
    while map.len() >= MAX_ENTRIES {
        let Some(oldest) = map
            .iter()
            .min_by_key(|(_, v)| expiry(v))
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        map.remove(&oldest);
    }
}

impl Sessions {
    /// Starts a session for `actor` and returns it.
    pub fn start(
        &self,
        actor: Actor,
        site: Option<SiteId>,
        read_only: bool,
        now: Timestamp,
    ) -> Session {
        let (account, lifetime) = match &actor {
            Actor::Account(a) => (Some(a.clone()), PORTAL_LIFETIME),
            _ => (None, OPERATOR_LIFETIME),
        };
        // The façade sees a session credential: the audit log names the session by a public id
        // (never the cookie value), and a read-only session is refused changes there too.
        let role = match &account {
            Some(a) => Role::Account(a.clone()),
            None => Role::Admin,
        };
        let public_id = format!("ses_{}", &token()[..16]);
        let actor = Actor::Credential(
            Credential::new(Principal::Session(public_id), role).read_only(read_only),
        );
        let session = Session {
            id: token(),
            actor,
            account,
            site,
            read_only,
            csrf: token(),
            expires_at: now.add(lifetime),
        };
        let mut map = self.sessions.lock().expect("sessions lock");
        prune(&mut map, now, |s| s.expires_at);
        map.insert(session.id.clone(), session.clone());
        session
    }

    /// The live session with cookie value `id`.
    pub fn get(&self, id: &str, now: Timestamp) -> Option<Session> {
        let mut map = self.sessions.lock().expect("sessions lock");
        match map.get(id) {
            Some(s) if s.expires_at > now => Some(s.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends the session `id` (logout).
    pub fn end(&self, id: &str) {
        self.sessions.lock().expect("sessions lock").remove(id);
    }

    /// Issues a single-use portal link token valid for `ttl`.
    pub fn issue_link(
        &self,
        account: AccountId,
        site: Option<SiteId>,
        read_only: bool,
        now: Timestamp,
        ttl: Duration,
    ) -> (String, Timestamp) {
        let token = token();
        let expires_at = now.add(ttl);
        let mut map = self.links.lock().expect("links lock");
        prune(&mut map, now, |l| l.expires_at);
        map.insert(
            token.clone(),
            PortalLink {
                account,
                site,
                read_only,
                expires_at,
            },
        );
        (token, expires_at)
    }

    /// Opens the portal link `token`: its session, once. An unknown, used or expired link gives
    /// `None`.
    pub fn open_link(&self, token: &str, now: Timestamp) -> Option<Session> {
        let link = self.links.lock().expect("links lock").remove(token)?;
        if link.expires_at <= now {
            return None;
        }
        Some(self.start(Actor::Account(link.account), link.site, link.read_only, now))
    }

    /// Whether a sign-in may be tried now: fewer than [`THROTTLE_FAILURES`] failures in the
    /// last [`THROTTLE_WINDOW`], counted for the whole process.
    pub fn may_try_sign_in(&self, now: Timestamp) -> bool {
        let mut failures = self.failures.lock().expect("throttle lock");
        let since = now.sub(THROTTLE_WINDOW);
        while failures.front().is_some_and(|t| *t <= since) {
            failures.pop_front();
        }
        failures.len() < THROTTLE_FAILURES
    }

    /// Counts a failed sign-in.
    pub fn sign_in_failed(&self, now: Timestamp) {
        let mut failures = self.failures.lock().expect("throttle lock");
        failures.push_back(now);
        while failures.len() > THROTTLE_FAILURES {
            failures.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_open_once_and_expire() {
        let s = Sessions::default();
        let t0 = Timestamp::from_millis(1_000_000);
        let a = AccountId::parse("a").unwrap();
        let (tok, _) = s.issue_link(a.clone(), None, true, t0, Duration::from_secs(60));
        let session = s.open_link(&tok, t0).expect("first open");
        assert_eq!(session.account.as_ref(), Some(&a));
        assert!(session.read_only);
        assert!(s.open_link(&tok, t0).is_none(), "single use");
        let (tok, _) = s.issue_link(a, None, false, t0, Duration::from_secs(60));
        assert!(s.open_link(&tok, t0.add(Duration::from_secs(61))).is_none());
        assert!(s.get(&session.id, t0).is_some());
        assert!(s.get(&session.id, t0.add(PORTAL_LIFETIME)).is_none());
    }

    #[test]
    fn sign_in_is_throttled_after_failures() {
        let s = Sessions::default();
        let t0 = Timestamp::from_millis(1_000_000);
        for _ in 0..THROTTLE_FAILURES {
            assert!(s.may_try_sign_in(t0));
            s.sign_in_failed(t0);
        }
        assert!(!s.may_try_sign_in(t0));
        assert!(s.may_try_sign_in(t0.add(THROTTLE_WINDOW)));
    }
}
