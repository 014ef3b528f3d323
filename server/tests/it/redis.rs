//! The server on Redis (feature `redis`): three processes sharing one Redis through a `kill -9`,
//! and a Redis that becomes unreachable and comes back.
//!
//! Each test uses its own key prefix (`?prefix=` in the store URL) on the Redis named by
//! `HOOKLINE_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`); its keys are deleted when the
//! test ends, also when it fails.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookline_store_redis::redis;
use serde_json::{Value, json};

use crate::multiprocess::kill9_one_of_three;
use crate::support::{Receiver, Server, TcpProxy};

const URL_VAR: &str = "HOOKLINE_TEST_REDIS_URL";
const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// A fresh key prefix on the test Redis; every key under it is deleted when this is dropped.
pub(crate) struct FreshPrefix {
    pub(crate) base: String,
    pub(crate) prefix: String,
}

impl FreshPrefix {
    pub(crate) fn create() -> Self {
        let base = hookline_core::testkit::service_url(URL_VAR, DEFAULT_URL);
        let reachable = redis::Client::open(base.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
        if let Err(e) = reachable {
            panic!(
                "Redis is not reachable at {base} ({e}).\n\
                 The `redis` server tests need a Redis server (6.2 or newer):\n\
                 * run them with `cargo xtask test --store redis`, or start one with \
                   `cargo xtask services start`;\n\
                 * or install one (`apt-get install redis-server`) and start it;\n\
                 * or point {URL_VAR} at a server where the tests may write keys under `hl_t_*`."
            );
        }
        let prefix = format!("hl_t_{:016x}:", rand::random::<u64>());
        Self { base, prefix }
    }

    /// The store URL: the test Redis with this prefix.
    pub(crate) fn url(&self) -> String {
        let mut u = url::Url::parse(&self.base).expect("a valid test URL");
        u.query_pairs_mut().append_pair("prefix", &self.prefix);
        u.to_string()
    }

    /// `host:port` of the Redis server.
    fn host_port(&self) -> String {
        let u = url::Url::parse(&self.base).expect("a valid test URL");
        format!(
            "{}:{}",
            u.host_str().unwrap_or("127.0.0.1"),
            u.port().unwrap_or(6379)
        )
    }

    /// The store URL reached through `proxy`.
    fn url_via(&self, proxy: &TcpProxy) -> String {
        let mut u = url::Url::parse(&self.url()).expect("a valid test URL");
        u.set_host(Some(&proxy.addr.ip().to_string())).unwrap();
        u.set_port(Some(proxy.addr.port())).unwrap();
        u.to_string()
    }

    fn delete_keys(&self) -> redis::RedisResult<usize> {
        let client = redis::Client::open(self.base.as_str())?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(5))?;
        let keys: Vec<String> = redis::cmd("SCAN")
            .cursor_arg(0)
            .arg("MATCH")
            .arg(format!("{}*", self.prefix))
            .arg("COUNT")
            .arg(1000)
            .clone()
            .iter(&mut conn)?
            .collect::<redis::RedisResult<_>>()?;
        for chunk in keys.chunks(500) {
            redis::cmd("DEL").arg(chunk).exec(&mut conn)?;
        }
        Ok(keys.len())
    }
}

impl Drop for FreshPrefix {
    fn drop(&mut self) {
        if let Err(e) = self.delete_keys() {
            eprintln!("could not delete the test keys under {}: {e}", self.prefix);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_three_processes_share_one_redis_through_a_kill9() {
    let keys = FreshPrefix::create();
    let report = kill9_one_of_three(&keys.url(), 5_000, 10).await;
    eprintln!(
        "redis, 3 processes, one kill -9: {} events accepted, {} deliveries expected, \
         {} received, {} duplicates, {:.1?} elapsed",
        report.accepted,
        report.expected_deliveries,
        report.received,
        report.duplicates,
        report.elapsed
    );
    assert_eq!(report.accepted, 5_000);
    assert_eq!(report.expected_deliveries, 50_000);
    assert!(report.received >= report.expected_deliveries);
    drop(keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_hanging_endpoints_do_not_delay_a_healthy_one() {
    for (hanging, own_account, label) in [
        (16, false, "redis, 16 hanging accounts"),
        (8, true, "redis, 8 hanging endpoints in the account"),
    ] {
        let keys = FreshPrefix::create();
        let run = crate::hanging::healthy_beside_hanging(&keys.url(), hanging, own_account).await;
        crate::hanging::assert_within_bound(label, run);
        drop(keys);
    }
}

/// Lists the account's event ids (first page of 250).
async fn event_ids(srv: &Server, account: &str) -> (u16, Vec<String>) {
    let (s, page) = srv
        .get(&format!("/v1/accounts/{account}/events?limit=250"))
        .await;
    let ids = page["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    (s, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_unreachable_answers_503_and_recovers() {
    let keys = FreshPrefix::create();
    let proxy = TcpProxy::start(&keys.host_port()).await;
    let rx = Receiver::start().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let srv = Server::start_on_store(
        &keys.url_via(&proxy),
        dir,
        &["--retry-schedule", "200ms,200ms,200ms,200ms,200ms"],
    )
    .await;
    srv.seed("acct").await;
    srv.endpoint("acct", json!({"url": rx.url("/hook")})).await;
    let send = |n: u64| {
        let srv = &srv;
        async move {
            srv.post(
                "/v1/accounts/acct/events",
                json!({"event": "rx.completed", "data": {"n": n}}),
            )
            .await
        }
    };

    let (s, first) = send(1).await;
    assert_eq!(s, 202, "{first}");
    let first_id = first["id"].as_str().unwrap().to_owned();
    rx.wait_for("/hook", 1, Duration::from_secs(20)).await;
    assert_eq!(event_ids(&srv, "acct").await, (200, vec![first_id.clone()]));

    // Redis goes away: every ingest answers 503 `store_unavailable`, quickly, never 202.
    proxy.cut();
    for n in 2..5 {
        let started = Instant::now();
        let (s, body): (u16, Value) = send(n).await;
        assert_eq!(s, 503, "ingest while Redis is unreachable: {body}");
        assert_eq!(body["code"], "store_unavailable", "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a 503 should come within the operation timeout, took {:?}",
            started.elapsed()
        );
    }
    let (s, body) = srv.get("/readyz").await;
    assert_eq!(s, 503, "not ready while Redis is unreachable: {body}");

    // It comes back: the server reconnects by itself, and none of the refused events was stored.
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, ids) = event_ids(&srv, "acct").await;
        if s == 200 {
            assert_eq!(
                ids,
                vec![first_id.clone()],
                "an event refused with 503 was stored"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not reconnect: {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let again = loop {
        let (s, again) = send(5).await;
        if s == 202 {
            break again;
        }
        assert_eq!(again["code"], "store_unavailable", "{again}");
        assert!(Instant::now() < deadline, "ingest did not recover: {again}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let id = again["id"].as_str().unwrap().to_owned();
    let got = rx.wait_for("/hook", 2, Duration::from_secs(30)).await;
    assert!(
        got.iter().any(|r| r.json()["id"] == id.as_str()),
        "the event accepted after recovery is delivered"
    );
    let (_, ids) = event_ids(&srv, "acct").await;
    assert_eq!(
        ids,
        vec![id.clone(), first_id],
        "exactly the accepted events are stored"
    );
    let ns: Vec<u64> = rx
        .received_on("/hook")
        .iter()
        .map(|r| r.json()["data"]["n"].as_u64().unwrap())
        .collect();
    assert!(
        ns.iter().all(|n| *n == 1 || *n == 5),
        "only accepted events are delivered: {ns:?}"
    );
    drop(srv);
    drop(keys);
}

/// The delivery engine's fault tests, on Redis.
mod engine_on_redis {
    use super::*;

    async fn server(keys: &FreshPrefix, flags: &[&str]) -> Server {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        Server::start_on_store(&keys.url(), dir, flags).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_black_hole_does_not_slow_a_healthy_endpoint() {
        crate::engine::black_hole_isolation(&|flags| {
            Box::pin(async move {
                let keys = FreshPrefix::create();
                let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
                let srv = server(&keys, &flags).await;
                (srv, Box::new(keys) as crate::engine::StoreGuard)
            })
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_random_500s_do_not_pause_a_healthy_endpoint() {
        let keys = FreshPrefix::create();
        crate::breaker::random_errors_do_not_pause(&server(&keys, &[]).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_dead_endpoint_costs_a_few_requests() {
        let keys = FreshPrefix::create();
        crate::engine::dead_endpoint(&server(&keys, crate::engine::DEAD_FLAGS).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_limits_hold_across_three_processes() {
        let _heavy = crate::support::HEAVY.lock().await;
        let keys = FreshPrefix::create();
        crate::engine::limits_hold(server(&keys, &[]).await, 3).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_fault_matrix() {
        let keys = FreshPrefix::create();
        crate::faults::fault_matrix(&server(&keys, crate::faults::FLAGS).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_ordered_endpoint_keeps_queue_order() {
        let keys = FreshPrefix::create();
        crate::engine::ordering(&server(&keys, crate::engine::ORDERING_FLAGS).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_kill9_with_a_thousand_in_flight_loses_nothing() {
        let keys = FreshPrefix::create();
        crate::engine::kill9_thousand(server(&keys, crate::engine::KILL9_FLAGS).await).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_under_load_is_answered_in_time_and_truthfully() {
    let keys = FreshPrefix::create();
    let proxy = TcpProxy::start(&keys.host_port()).await;
    crate::outage::outage_on(&keys.url_via(&proxy), &proxy, false).await;
    drop(keys);
}

/// The metrics tests, on Redis.
mod metrics_on_redis {
    use super::*;

    async fn server(keys: &FreshPrefix, flags: &[&str]) -> Server {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        Server::start_on_store(&keys.url(), dir, flags).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_metrics_counters_follow_deliveries() {
        let keys = FreshPrefix::create();
        crate::metrics::counters(&server(&keys, crate::metrics::FLAGS).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_metrics_backlog_gauges_while_an_endpoint_is_down() {
        let keys = FreshPrefix::create();
        crate::metrics::backlog_while_down(&server(&keys, crate::metrics::DOWN_FLAGS).await).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_batches_are_stored_all_or_nothing() {
    let keys = FreshPrefix::create();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let srv = Server::start_on_store(&keys.url(), dir, crate::batches::FLAGS).await;
    crate::batches::all_or_nothing(&srv).await;
    drop(srv);
    drop(keys);
}

/// API keys, the audit log and tenant isolation over every route, on Redis.
mod keys_on_redis {
    use super::*;

    async fn server(keys: &FreshPrefix) -> Server {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        Server::start_on_store(&keys.url(), dir, &[]).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_key_lifecycle_and_audit() {
        let keys = FreshPrefix::create();
        crate::keys::key_lifecycle(&server(&keys).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_bootstrap_key_is_replaced_on_restart() {
        let keys = FreshPrefix::create();
        crate::keys::bootstrap_key_is_replaced(&mut server(&keys).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_revocation_reaches_other_processes() {
        let keys = FreshPrefix::create();
        crate::keys::revocation_reaches_other_processes(&server(&keys).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_every_route_is_isolated() {
        let keys = FreshPrefix::create();
        crate::isolation::every_route_is_isolated(&server(&keys).await).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_event_data_is_validated_against_the_type_schema() {
    let keys = FreshPrefix::create();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let srv = Server::start_on_store(&keys.url(), dir, &[]).await;
    srv.seed("acct").await;
    crate::schemas::validation(&srv).await;
    drop(srv);
    drop(keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_idempotency_keys_answer_the_same_event_and_refuse_another() {
    let keys = FreshPrefix::create();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut srv = Server::start_on_store(&keys.url(), dir, crate::idempotency::FLAGS).await;
    srv.seed("acct").await;
    crate::idempotency::keys(&mut srv).await;
    drop(srv);
    drop(keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_patch_routes_are_json_merge_patches() {
    let keys = FreshPrefix::create();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let srv = Server::start_on_store(&keys.url(), dir, &[]).await;
    srv.seed("acct").await;
    crate::patches::merge_patches(&srv).await;
    drop(srv);
    drop(keys);
}
