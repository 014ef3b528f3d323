//! The server on PostgreSQL (feature `postgres`): three processes sharing one database through a
//! `kill -9`, and a database that becomes unreachable and comes back.
//!
//! Each test gets a fresh database on the server named by `HOOKLINE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped when the test ends, also when it fails.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookline_store_postgres::sqlx::{self, Connection as _};
use serde_json::{Value, json};

use crate::multiprocess::kill9_one_of_three;
use crate::support::{Receiver, Server, TcpProxy};

const URL_VAR: &str = "HOOKLINE_TEST_POSTGRES_URL";
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database created for one test and dropped (`WITH (FORCE)`) when this guard is dropped.
pub(crate) struct FreshDatabase {
    admin_url: String,
    name: String,
}

impl FreshDatabase {
    pub(crate) async fn create() -> Self {
        let admin_url = hookline_core::testkit::service_url(URL_VAR, DEFAULT_URL);
        let connect = sqlx::PgConnection::connect(&admin_url);
        let mut conn = match tokio::time::timeout(Duration::from_secs(10), connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => panic!("{}", unreachable_message(&admin_url, &e.to_string())),
            Err(_) => panic!(
                "{}",
                unreachable_message(&admin_url, "no answer within 10 s")
            ),
        };
        let name = format!("hookline_t_{:016x}", rand::random::<u64>());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("creating a test database");
        let _ = conn.close().await;
        Self { admin_url, name }
    }

    /// The URL of this database.
    pub(crate) fn url(&self) -> String {
        let mut u = url::Url::parse(&self.admin_url).expect("a valid test URL");
        u.set_path(&self.name);
        u.to_string()
    }

    /// `host:port` of the server.
    fn host_port(&self) -> String {
        let u = url::Url::parse(&self.admin_url).expect("a valid test URL");
        format!(
            "{}:{}",
            u.host_str().unwrap_or("127.0.0.1"),
            u.port().unwrap_or(5432)
        )
    }

    /// The URL of this database reached through `proxy`.
    fn url_via(&self, proxy: &TcpProxy) -> String {
        let mut u = url::Url::parse(&self.url()).expect("a valid test URL");
        u.set_host(Some(&proxy.addr.ip().to_string())).unwrap();
        u.set_port(Some(proxy.addr.port())).unwrap();
        u.to_string()
    }
}

/// Where the deliveries of a database are.
#[derive(Debug)]
struct Summary {
    by_status: Vec<(String, i64)>,
    leased: i64,
    attempts: i64,
    retried: i64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?}; {} leased, {} attempts recorded, {} deliveries needed more than one",
            self.by_status, self.leased, self.attempts, self.retried
        )
    }
}

impl FreshDatabase {
    async fn summary(&self) -> Summary {
        let mut conn = sqlx::PgConnection::connect(&self.url()).await.unwrap();
        let by_status: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, count(*) FROM deliveries GROUP BY status ORDER BY status",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let (leased, attempts, retried): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM deliveries WHERE lease_id IS NOT NULL), \
                    (SELECT count(*) FROM attempts), \
                    (SELECT count(*) FROM deliveries WHERE attempts > 1)",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        let _ = conn.close().await;
        Summary {
            by_status,
            leased,
            attempts,
            retried,
        }
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop may run inside a runtime or during a panic: use a thread with its own runtime.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for dropping the test database");
            rt.block_on(async move {
                let mut conn = sqlx::PgConnection::connect(&url).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        })
        .join();
        if let Ok(Err(e)) = done {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

fn unreachable_message(url: &str, why: &str) -> String {
    format!(
        "PostgreSQL is not reachable at {url} ({why}).\n\
         The `postgres` server tests need a PostgreSQL server (13 or newer):\n\
         * run them with `cargo xtask test --store postgres`, or start one with \
           `cargo xtask services start` (it finds or starts a local server and prints its URL);\n\
         * or install one (`apt-get install postgresql`) and start it;\n\
         * or point {URL_VAR} at a server where the tests may create and drop databases."
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_hanging_endpoints_do_not_delay_a_healthy_one() {
    for (hanging, own_account, label) in [
        (16, false, "postgres, 16 hanging accounts"),
        (8, true, "postgres, 8 hanging endpoints in the account"),
    ] {
        let db = FreshDatabase::create().await;
        let run = crate::hanging::healthy_beside_hanging(&db.url(), hanging, own_account).await;
        crate::hanging::assert_within_bound(label, run);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_three_processes_share_one_database_through_a_kill9() {
    let db = FreshDatabase::create().await;
    let url = db.url();
    let run = tokio::spawn(async move { kill9_one_of_three(&url, 5_000, 10).await });
    let report = match run.await {
        Ok(report) => report,
        Err(e) => {
            // Say where the deliveries were when it failed, then fail as the run did.
            eprintln!(
                "postgres, deliveries when the run failed: {}",
                db.summary().await
            );
            std::panic::resume_unwind(e.into_panic())
        }
    };
    eprintln!(
        "postgres, 3 processes, one kill -9: {} events accepted, {} deliveries expected, \
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

    // The database agrees: every delivery succeeded, none is pending or leased.
    let summary = db.summary().await;
    eprintln!("postgres, deliveries: {summary}");
    assert_eq!(summary.by_status, vec![("succeeded".to_owned(), 50_000)]);
    assert_eq!(summary.leased, 0);
    drop(db);
}

/// Counts the account's events (all pages).
async fn event_count(srv: &Server, account: &str) -> (u16, usize) {
    let (s, page) = srv
        .get(&format!("/v1/accounts/{account}/events?limit=250"))
        .await;
    let n = page["data"].as_array().map_or(0, Vec::len);
    (s, n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_database_answers_503_and_recovers() {
    let db = FreshDatabase::create().await;
    let proxy = TcpProxy::start(&db.host_port()).await;
    let rx = Receiver::start().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let srv = Server::start_on_store(
        &db.url_via(&proxy),
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
    rx.wait_for("/hook", 1, Duration::from_secs(20)).await;
    assert_eq!(event_count(&srv, "acct").await, (200, 1));

    // The database goes away: every ingest answers 503 `store_unavailable`, quickly, never 202.
    proxy.cut();
    for n in 2..5 {
        let started = Instant::now();
        let (s, body): (u16, Value) = send(n).await;
        assert_eq!(s, 503, "ingest while the database is unreachable: {body}");
        assert_eq!(body["code"], "store_unavailable", "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "a 503 should come within about the acquire timeout, took {:?}",
            started.elapsed()
        );
    }
    let (s, body) = srv.get("/readyz").await;
    assert_eq!(
        s, 503,
        "not ready while the database is unreachable: {body}"
    );

    // It comes back: the server recovers by itself, and none of the refused events was stored.
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, n) = event_count(&srv, "acct").await;
        if s == 200 {
            assert_eq!(n, 1, "an event refused with 503 was stored");
            break;
        }
        assert!(Instant::now() < deadline, "the server did not recover: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, again) = send(5).await;
    assert_eq!(s, 202, "{again}");
    let id = again["id"].as_str().unwrap().to_owned();
    let got = rx.wait_for("/hook", 2, Duration::from_secs(30)).await;
    assert!(
        got.iter().any(|r| r.json()["id"] == id.as_str()),
        "the event accepted after recovery is delivered"
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
    drop(db);
}

/// The delivery engine's fault tests, on PostgreSQL.
mod engine_on_postgres {
    use super::*;

    async fn server(db: &FreshDatabase, flags: &[&str]) -> Server {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        Server::start_on_store(&db.url(), dir, flags).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_black_hole_does_not_slow_a_healthy_endpoint() {
        crate::engine::black_hole_isolation(&|flags| {
            Box::pin(async move {
                let db = FreshDatabase::create().await;
                let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
                let srv = server(&db, &flags).await;
                (srv, Box::new(db) as crate::engine::StoreGuard)
            })
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_random_500s_do_not_pause_a_healthy_endpoint() {
        let db = FreshDatabase::create().await;
        crate::breaker::random_errors_do_not_pause(&server(&db, &[]).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_dead_endpoint_costs_a_few_requests() {
        let db = FreshDatabase::create().await;
        crate::engine::dead_endpoint(&server(&db, crate::engine::DEAD_FLAGS).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_limits_hold_across_three_processes() {
        let _heavy = crate::support::HEAVY.lock().await;
        let db = FreshDatabase::create().await;
        crate::engine::limits_hold(server(&db, &[]).await, 3).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_fault_matrix() {
        let db = FreshDatabase::create().await;
        crate::faults::fault_matrix(&server(&db, crate::faults::FLAGS).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_ordered_endpoint_keeps_queue_order() {
        let db = FreshDatabase::create().await;
        crate::engine::ordering(&server(&db, crate::engine::ORDERING_FLAGS).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_kill9_with_a_thousand_in_flight_loses_nothing() {
        let db = FreshDatabase::create().await;
        crate::engine::kill9_thousand(server(&db, crate::engine::KILL9_FLAGS).await).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_under_load_is_answered_in_time_and_truthfully() {
    let db = FreshDatabase::create().await;
    let proxy = TcpProxy::start(&db.host_port()).await;
    crate::outage::outage_on(&db.url_via(&proxy), &proxy, true).await;
    drop(db);
}

/// The metrics tests, on PostgreSQL.
mod metrics_on_postgres {
    use super::*;

    async fn server(db: &FreshDatabase, flags: &[&str]) -> Server {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        Server::start_on_store(&db.url(), dir, flags).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_metrics_counters_follow_deliveries() {
        let db = FreshDatabase::create().await;
        crate::metrics::counters(&server(&db, crate::metrics::FLAGS).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_metrics_backlog_gauges_while_an_endpoint_is_down() {
        let db = FreshDatabase::create().await;
        crate::metrics::backlog_while_down(&server(&db, crate::metrics::DOWN_FLAGS).await).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_batches_are_stored_all_or_nothing() {
    let db = FreshDatabase::create().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let srv = Server::start_on_store(&db.url(), dir, crate::batches::FLAGS).await;
    crate::batches::all_or_nothing(&srv).await;
    drop(srv);
    drop(db);
}

/// API keys, the audit log and tenant isolation over every route, on PostgreSQL.
mod keys_on_postgres {
    use super::*;

    async fn server(db: &FreshDatabase) -> Server {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        Server::start_on_store(&db.url(), dir, &[]).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_key_lifecycle_and_audit() {
        let db = FreshDatabase::create().await;
        crate::keys::key_lifecycle(&server(&db).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_bootstrap_key_is_replaced_on_restart() {
        let db = FreshDatabase::create().await;
        crate::keys::bootstrap_key_is_replaced(&mut server(&db).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_revocation_reaches_other_processes() {
        let db = FreshDatabase::create().await;
        crate::keys::revocation_reaches_other_processes(&server(&db).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_every_route_is_isolated() {
        let db = FreshDatabase::create().await;
        crate::isolation::every_route_is_isolated(&server(&db).await).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_event_data_is_validated_against_the_type_schema() {
    let db = FreshDatabase::create().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let srv = Server::start_on_store(&db.url(), dir, &[]).await;
    srv.seed("acct").await;
    crate::schemas::validation(&srv).await;
    drop(srv);
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_idempotency_keys_answer_the_same_event_and_refuse_another() {
    let db = FreshDatabase::create().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut srv = Server::start_on_store(&db.url(), dir, crate::idempotency::FLAGS).await;
    srv.seed("acct").await;
    crate::idempotency::keys(&mut srv).await;
    drop(srv);
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_patch_routes_are_json_merge_patches() {
    let db = FreshDatabase::create().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let srv = Server::start_on_store(&db.url(), dir, &[]).await;
    srv.seed("acct").await;
    crate::patches::merge_patches(&srv).await;
    drop(srv);
    drop(db);
}
