//! Endpoints that accept the connection and never answer, beside a healthy one: the healthy
//! endpoint's latency from `202` to receipt stays close to what it is without them, and the
//! hanging endpoints' events are delivered once they answer again.
//!
//! The run: a receiver whose `/hang*` paths hold every request while frozen; the server with a
//! 3 s request timeout; first a baseline (events at about 200/s to the healthy endpoint only),
//! then the same load with as many events again to the hanging endpoints, then the receiver
//! thaws. Both phases run in the same test, so the bound compares like with like on whatever
//! else the machine is doing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use serde_json::{Value, json};

use crate::support::{HEAVY, Server};

/// Events per second offered to the healthy endpoint.
const RATE: u64 = 200;

/// What the receiver saw: first arrival per event id, and whether the hanging paths hold.
#[derive(Default)]
struct Seen {
    first: HashMap<String, Instant>,
}

#[derive(Clone)]
struct HangingReceiver {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Seen>>,
    frozen: Arc<tokio::sync::watch::Sender<bool>>,
}

impl HangingReceiver {
    async fn start() -> Self {
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let frozen = Arc::new(tokio::sync::watch::channel(true).0);
        let app = Router::new()
            .fallback(receive)
            .with_state((seen.clone(), frozen.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, seen, frozen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn thaw(&self) {
        self.frozen.send_replace(false);
    }

    fn arrived(&self, id: &str) -> Option<Instant> {
        self.seen.lock().unwrap().first.get(id).copied()
    }
}

type ReceiverState = (Arc<Mutex<Seen>>, Arc<tokio::sync::watch::Sender<bool>>);

async fn receive(
    State((seen, frozen)): State<ReceiverState>,
    uri: Uri,
    body: Bytes,
) -> &'static str {
    if uri.path().starts_with("/hang") {
        // Accepted, and no answer while frozen (the server times the request out).
        let mut thawed = frozen.subscribe();
        let _ = thawed.wait_for(|f| !*f).await;
    }
    let at = Instant::now();
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(id) = v["id"].as_str() {
        seen.lock()
            .unwrap()
            .first
            .entry(id.to_owned())
            .or_insert(at);
    }
    "ok"
}

/// Posts `n` events at [`RATE`] per second to the healthy account (and, with `hanging`, one
/// every ten ticks to those accounts in turn); returns the healthy events' ids with when their `202`
/// came, and the other events' ids.
async fn load(
    srv: &Server,
    n: usize,
    healthy: &str,
    hanging: &[String],
) -> (Vec<(String, Instant)>, Vec<String>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    for i in 0..n {
        tick.tick().await;
        let mut sends = vec![(healthy.to_owned(), "rx.completed", true)];
        // One event in ten goes to a hanging endpoint too (20/s): enough to keep every one of
        // them busy with requests that hang, their retries and their circuits.
        if !hanging.is_empty() && i % 10 == 0 {
            sends.push((
                hanging[(i / 10) % hanging.len()].clone(),
                "rx.failed",
                false,
            ));
        }
        for (account, kind, is_healthy) in sends {
            let (http, url) = (
                http.clone(),
                srv.url(&format!("/v1/accounts/{account}/events")),
            );
            tasks.spawn(async move {
                // A 503 (the store did not confirm in time) or no answer is tried again with the
                // same idempotency key; the latency counts from the final 202.
                let key = format!("hanging-{account}-{kind}-{i}");
                for attempt in 0..10u64 {
                    if attempt > 0 {
                        tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                    }
                    let r = http
                        .post(&url)
                        .bearer_auth(crate::support::ADMIN_KEY)
                        .header("idempotency-key", &key)
                        .json(&json!({"event": kind, "data": {"n": i}}))
                        .send()
                        .await;
                    // No answer in 10 s or a 503: the machine is overloaded; try again.
                    let Ok(r) = r.inspect_err(|e| eprintln!("posting event {i}: {e}")) else {
                        continue;
                    };
                    if r.status() == 503 {
                        continue;
                    }
                    assert_eq!(r.status(), 202);
                    let accepted = Instant::now();
                    let body: Value = r.json().await.unwrap();
                    return (
                        body["id"].as_str().unwrap().to_owned(),
                        accepted,
                        is_healthy,
                    );
                }
                panic!("event {i} to {account}: ten 503 answers or failures in a row");
            });
        }
    }
    let (mut healthy_ids, mut hanging_ids) = (Vec::new(), Vec::new());
    while let Some(done) = tasks.join_next().await {
        let (id, at, is_healthy) = done.unwrap();
        if is_healthy {
            healthy_ids.push((id, at));
        } else {
            hanging_ids.push(id);
        }
    }
    (healthy_ids, hanging_ids)
}

/// p50 and p99 of the healthy events' latency from `202` to receipt, waiting (bounded) for
/// every one to arrive.
async fn latencies(
    srv: &Server,
    rx: &HangingReceiver,
    sent: &[(String, Instant)],
) -> (Duration, Duration) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    for (id, accepted) in sent {
        loop {
            if let Some(at) = rx.arrived(id) {
                got.push(at.saturating_duration_since(*accepted));
                break;
            }
            if Instant::now() > deadline {
                let (_, deliveries) = srv
                    .get(&format!("/v1/accounts/healthy/events/{id}/deliveries"))
                    .await;
                panic!("healthy event {id} never arrived; its deliveries: {deliveries}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    got.sort();
    let pick = |q: f64| got[((got.len() as f64 * q).ceil() as usize).clamp(1, got.len()) - 1];
    (pick(0.50), pick(0.99))
}

/// The run on `store`: hanging endpoints in `hanging_accounts` accounts (one each), or, with
/// `own_account`, `hanging` of them in the healthy endpoint's own account. Returns the healthy
/// p50/p99 without and with the hanging ones.
pub(crate) async fn healthy_beside_hanging(
    store: &str,
    hanging: usize,
    own_account: bool,
) -> [(Duration, Duration); 2] {
    let _heavy = HEAVY.lock().await;
    let rx = HangingReceiver::start().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let retries = vec!["1s"; 60].join(",");
    let flags = [
        "--request-timeout",
        "3s",
        "--retry-schedule",
        &retries,
        "--circuit-cooldown",
        "1s",
    ];
    let srv = Server::start_on_store(store, dir, &flags).await;
    srv.seed("healthy").await;
    srv.endpoint(
        "healthy",
        json!({"url": rx.url("/ok"), "eventTypes": ["rx.completed"]}),
    )
    .await;
    let mut accounts = Vec::new();
    for i in 0..hanging {
        let account = if own_account {
            "healthy".to_owned()
        } else {
            let a = format!("slow{i}");
            let (s, b) = srv.post("/v1/accounts", json!({"id": a, "name": a})).await;
            assert_eq!(s, 201, "{b}");
            a
        };
        srv.endpoint(
            &account,
            json!({"url": rx.url(&format!("/hang{i}")), "eventTypes": ["rx.failed"]}),
        )
        .await;
        if !accounts.contains(&account) {
            accounts.push(account);
        }
    }

    // Warm-up (connections, caches), then the baseline: the healthy endpoint alone.
    let (warm, _) = load(&srv, 50, "healthy", &[]).await;
    latencies(&srv, &rx, &warm).await;
    let (alone, _) = load(&srv, (2 * RATE) as usize, "healthy", &[]).await;
    let baseline = latencies(&srv, &rx, &alone).await;
    // The same load beside the hanging endpoints, for four seconds: longer than the request
    // timeout, so that time-outs, retries and circuits happen during it.
    let (beside, stuck) = load(&srv, (4 * RATE) as usize, "healthy", &accounts).await;
    let loaded = latencies(&srv, &rx, &beside).await;

    // The hanging endpoints answer again: every one of their events arrives.
    rx.thaw();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let missing = stuck.iter().filter(|id| rx.arrived(id).is_none()).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} events to the recovered endpoints never arrived",
            stuck.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    [baseline, loaded]
}

/// The bound: the healthy p99 beside the hanging endpoints is at most twice its p99 alone, or
/// 50 ms when that is more (a few milliseconds of scheduling noise on a shared machine would
/// otherwise decide the test).
pub(crate) fn assert_within_bound(label: &str, [alone, beside]: [(Duration, Duration); 2]) {
    eprintln!(
        "{label}: healthy p50/p99 alone {:?}/{:?}, beside hanging endpoints {:?}/{:?}",
        alone.0, alone.1, beside.0, beside.1
    );
    let bound = (2 * alone.1).max(Duration::from_millis(50));
    assert!(
        beside.1 <= bound,
        "{label}: healthy p99 {:?} beside hanging endpoints, {:?} alone (bound {bound:?})",
        beside.1,
        alone.1
    );
}

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("hanging.db").display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_hanging_accounts_do_not_delay_a_healthy_one_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let run = healthy_beside_hanging(&sqlite_url(&dir), 16, false).await;
    assert_within_bound("sqlite, 16 hanging accounts", run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_hanging_endpoints_in_the_same_account_do_not_delay_it_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let run = healthy_beside_hanging(&sqlite_url(&dir), 8, true).await;
    assert_within_bound("sqlite, 8 hanging endpoints in the account", run);
}
