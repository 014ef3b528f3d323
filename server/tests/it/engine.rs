//! Delivery engine behaviour on a real process: graceful shutdown, crash recovery.

use std::time::Duration;

use serde_json::json;

use crate::support::{Receiver, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_and_claims_nothing_new() {
    let rx = Receiver::start().await;
    rx.delay("/slow", Duration::from_millis(1500));
    let mut srv = Server::start(&["--concurrency", "2"]).await;
    srv.seed("acct").await;
    let (ep, _) = srv.endpoint("acct", json!({"url": rx.url("/slow")})).await;
    for n in 0..6 {
        let (s, _) = srv
            .post(
                "/v1/accounts/acct/events",
                json!({"event": "rx.completed", "data": {"n": n}}),
            )
            .await;
        assert_eq!(s, 202);
    }
    // Two requests are in flight (concurrency 2) when SIGTERM arrives.
    rx.wait_for("/slow", 2, Duration::from_secs(10)).await;
    let took = srv.terminate(Duration::from_secs(12));
    assert!(
        took >= Duration::from_millis(500),
        "it waited for the in-flight requests ({took:?})"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.received_on("/slow").len(),
        2,
        "nothing new was claimed after SIGTERM"
    );

    // After a restart: the two finished deliveries are settled as succeeded with one attempt each
    // (no duplicate), and the other four are delivered now.
    rx.delay("/slow", Duration::ZERO);
    srv.restart().await;
    rx.wait_for("/slow", 6, Duration::from_secs(20)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, ds) = srv
            .get(&format!(
                "/v1/accounts/acct/endpoints/{ep}/deliveries?status=succeeded"
            ))
            .await;
        let ds = ds["data"].as_array().unwrap().clone();
        if ds.len() == 6 {
            assert!(ds.iter().all(|d| d["attempts"] == 1), "{ds:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{ds:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ns: Vec<u64> = rx
        .received_on("/slow")
        .iter()
        .map(|r| r.json()["data"]["n"].as_u64().unwrap())
        .collect();
    ns.sort();
    assert_eq!(ns, vec![0, 1, 2, 3, 4, 5], "each event exactly once");
}

/// Counts an endpoint's deliveries in `status`, paging through the list.
async fn count_deliveries(srv: &Server, ep: &str, status: &str) -> usize {
    let mut n = 0;
    let mut cursor = String::new();
    loop {
        let path = format!(
            "/v1/accounts/acct/endpoints/{ep}/deliveries?status={status}&limit=250{cursor}"
        );
        let (s, page) = srv.get(&path).await;
        assert_eq!(s, 200, "{page}");
        n += page["data"].as_array().unwrap().len();
        match page["nextCursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return n,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_with_a_thousand_in_flight_loses_nothing() {
    kill9_thousand(Server::start(KILL9_FLAGS).await).await;
}

/// Server flags for [`kill9_thousand`]: room for 1,000 requests in flight.
pub(crate) const KILL9_FLAGS: &[&str] = &[
    "--concurrency",
    "1000",
    "--endpoint-concurrency",
    "1000",
    "--request-timeout",
    "16s",
    "--lease",
    "17s",
];

/// 1,000 deliveries in flight when `srv` gets `kill -9`; after a restart on the same store every
/// one completes (on any store).
pub(crate) async fn kill9_thousand(mut srv: Server) {
    let _heavy = crate::support::HEAVY.lock().await;
    let rx = Receiver::start().await;
    // The receiver holds every request, so all of them are in flight at the moment of the kill.
    rx.delay("/k", Duration::from_secs(15));
    srv.seed("acct").await;
    // Its declared capacity lets all 1,000 go at once (the adaptive limit starts at it).
    let (ep, _) = srv
        .endpoint("acct", json!({"url": rx.url("/k"), "maxConcurrency": 1000}))
        .await;
    // Ten batches of 100 at once, so ingest finishes well inside the receiver's hold.
    let mut sends = tokio::task::JoinSet::new();
    for b in 0..10u64 {
        let chunk: Vec<_> = (0..100u64)
            .map(|n| {
                let n = b * 100 + n;
                json!({"event": "rx.completed", "data": {"n": n}, "idempotencyKey": format!("k{n}")})
            })
            .collect();
        let (http, url) = (srv.http.clone(), srv.url("/v1/accounts/acct/events/batch"));
        sends.spawn(async move {
            // A producer repeats a batch answered 503 (a store that did not answer within the
            // write timeout, as on an overloaded machine), keys making the repeat safe.
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            let res = loop {
                let res = http
                    .post(&url)
                    .bearer_auth(crate::support::ADMIN_KEY)
                    .json(&json!(chunk))
                    .send()
                    .await
                    .unwrap();
                if res.status() != 503 || std::time::Instant::now() > deadline {
                    break res;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            assert_eq!(res.status(), 202);
            let r: serde_json::Value = res.json().await.unwrap();
            r["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        });
    }
    let mut ids = Vec::new();
    while let Some(r) = sends.join_next().await {
        ids.extend(r.unwrap());
    }
    assert_eq!(ids.len(), 1000);
    rx.wait_for("/k", 1000, Duration::from_secs(30)).await;
    srv.assert_running();
    let done = count_deliveries(&srv, &ep, "succeeded").await;
    assert_eq!(done, 0, "all 1000 are in flight at the kill");
    srv.kill9();
    rx.delay("/k", Duration::ZERO);
    srv.restart().await;
    // Every delivery completes once the dead process's leases end.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let done = count_deliveries(&srv, &ep, "succeeded").await;
        if done == 1000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {done} of 1000 deliveries completed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(count_deliveries(&srv, &ep, "pending").await, 0);
    assert_eq!(count_deliveries(&srv, &ep, "failed").await, 0);
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for r in rx.received_on("/k") {
        let id = r.json()["id"].as_str().unwrap().to_owned();
        assert_eq!(
            r.headers["webhook-id"].to_str().unwrap(),
            id,
            "a duplicate carries the same id"
        );
        *seen.entry(id).or_default() += 1;
    }
    assert!(ids.iter().all(|id| seen.contains_key(id)));
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "kill -9 with 1000 requests in flight: all 1000 completed after restart, {duplicates} duplicate requests"
    );
}

/// Median and 99th percentile of a set of durations.
fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (p(0.5), p(0.99))
}

/// Sends `n` events with 8 concurrent clients; returns when each was sent, by event number.
async fn send_timed(srv: &Server, n: usize) -> Vec<std::time::Instant> {
    let sent = std::sync::Arc::new(std::sync::Mutex::new(vec![std::time::Instant::now(); n]));
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (http, url, sent, next) = (
            srv.http.clone(),
            srv.url("/v1/accounts/acct/events"),
            sent.clone(),
            next.clone(),
        );
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= n {
                    return;
                }
                // A 503 (the store did not answer within the write timeout, as on an
                // overloaded machine) is repeated with the same key, as producers do.
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                let (t, res) = loop {
                    let t = std::time::Instant::now();
                    let res = http
                        .post(&url)
                        .bearer_auth(crate::support::ADMIN_KEY)
                        .header("idempotency-key", format!("t{i}"))
                        .json(&json!({"event": "rx.completed", "data": {"n": i}}))
                        .send()
                        .await
                        .unwrap();
                    if res.status() != 503 || std::time::Instant::now() > deadline {
                        break (t, res);
                    }
                };
                assert_eq!(res.status(), 202);
                sent.lock().unwrap()[i] = t;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    sent.lock().unwrap().clone()
}

/// Delay from sending each event to its receipt at `path`.
async fn delays(rx: &Receiver, path: &str, sent: &[std::time::Instant]) -> Vec<Duration> {
    let got = rx
        .wait_for(path, sent.len(), Duration::from_secs(120))
        .await;
    let mut first = vec![None; sent.len()];
    for r in got {
        let n = r.json()["data"]["n"].as_u64().unwrap() as usize;
        first[n].get_or_insert(r.at);
    }
    first
        .iter()
        .zip(sent)
        .map(|(at, s)| at.unwrap().saturating_duration_since(*s))
        .collect()
}

/// Whatever must live as long as a server's store (a test database, a key prefix).
pub(crate) type StoreGuard = Box<dyn std::any::Any + Send>;
/// Starts a server with the given flags on a fresh store of one kind.
pub(crate) type StartFn = dyn Fn(
        Vec<String>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = (Server, StoreGuard)> + Send>>
    + Send
    + Sync;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_hole_endpoint_does_not_slow_a_healthy_one() {
    black_hole_isolation(&|flags| {
        Box::pin(async move {
            let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
            (Server::start(&flags).await, Box::new(()) as StoreGuard)
        })
    })
    .await;
}

/// 2,000 events to a healthy endpoint alone, then beside a black hole (accepts connections and
/// never answers), each run on a fresh store from `start`: the healthy endpoint's p50 and p99
/// from ingest to receipt stay within 2× of the run without the black hole.
pub(crate) async fn black_hole_isolation(start: &StartFn) {
    let _heavy = crate::support::HEAVY.lock().await;
    const N: usize = 2000;
    // A black hole: accepts connections and never answers.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole_addr = hole.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = hole.accept().await {
            held.push(sock);
        }
    });
    let flags: Vec<String> = [
        "--request-timeout",
        "2s",
        "--lease",
        "10s",
        "--retry-schedule",
        "1s,1s,1s,1s,1s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();

    // Baseline: the healthy endpoint alone.
    let rx = Receiver::start().await;
    let (srv, guard) = start(flags.clone()).await;
    srv.seed("acct").await;
    srv.endpoint("acct", json!({"url": rx.url("/healthy")}))
        .await;
    let sent = send_timed(&srv, N).await;
    let (base_p50, base_p99) = percentiles(delays(&rx, "/healthy", &sent).await);
    drop(srv);
    drop(guard);

    // The same load with a black hole subscribed to every event as well.
    let rx = Receiver::start().await;
    let (srv, _guard) = start(flags).await;
    srv.seed("acct").await;
    srv.endpoint("acct", json!({"url": format!("http://{hole_addr}/hole")}))
        .await;
    srv.endpoint("acct", json!({"url": rx.url("/healthy")}))
        .await;
    let sent = send_timed(&srv, N).await;
    let ds = delays(&rx, "/healthy", &sent).await;
    let (p50, p99) = percentiles(ds);
    eprintln!(
        "healthy endpoint, ingest to receipt over {N} events: alone p50 {base_p50:?} p99 {base_p99:?}; \
         beside a black hole p50 {p50:?} p99 {p99:?}"
    );
    // Small absolute floors keep scheduler noise on a shared machine from deciding the ratio.
    let floor = Duration::from_millis(20);
    assert!(
        p50 <= (base_p50 * 2).max(floor),
        "median {p50:?} vs {base_p50:?}"
    );
    assert!(
        p99 <= (base_p99 * 2).max(floor * 5),
        "p99 {p99:?} vs {base_p99:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_and_rate_limit_are_honoured() {
    limits_hold(Server::start(&[]).await, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_across_three_processes_on_one_sqlite_file() {
    let _heavy = crate::support::HEAVY.lock().await;
    limits_hold(Server::start(&[]).await, 3).await;
}

/// `maxConcurrency` 3 (a receiver that takes 150 ms) and `rateLimit` 5/s, with `processes`
/// servers on `srv`'s store (the first is `srv`) taking the events in turn: the receiver never
/// sees more than 3 requests at once, nor more than 5 (+1 for the window's edges) in any second.
/// Each process alone would allow 3 and 5/s, so three processes enforcing the limits only for
/// themselves would show up to 9 at once and 15/s.
pub(crate) async fn limits_hold(srv: Server, processes: usize) {
    let rx = Receiver::start().await;
    rx.delay("/narrow", Duration::from_millis(150));
    srv.seed("acct").await;
    srv.endpoint(
        "acct",
        json!({"url": rx.url("/narrow"), "maxConcurrency": 3, "eventTypes": ["rx.completed"]}),
    )
    .await;
    srv.endpoint(
        "acct",
        json!({"url": rx.url("/slow-rate"), "rateLimit": 5, "eventTypes": ["rx.failed"]}),
    )
    .await;
    let mut servers = vec![srv];
    for _ in 1..processes {
        let more = servers[0].another().await;
        servers.push(more);
    }
    for n in 0..30 {
        let srv = &servers[n % servers.len()];
        let (status, _) = srv
            .post(
                "/v1/accounts/acct/events",
                json!({"event": "rx.completed", "data": {"n": n}}),
            )
            .await;
        assert_eq!(status, 202);
        let (status, _) = srv
            .post(
                "/v1/accounts/acct/events",
                json!({"event": "rx.failed", "data": {"n": n}}),
            )
            .await;
        assert_eq!(status, 202);
    }
    rx.wait_for("/narrow", 30, Duration::from_secs(30)).await;
    let max = rx.max_in_flight("/narrow");
    assert!(max <= 3, "maxConcurrency 3, saw {max} at once");
    assert!(max >= 2, "requests did overlap ({max})");

    let got = rx.wait_for("/slow-rate", 30, Duration::from_secs(30)).await;
    let times: Vec<std::time::Instant> = got.iter().map(|r| r.at).collect();
    let worst = times
        .iter()
        .map(|t0| {
            times
                .iter()
                .filter(|t| **t >= *t0 && t.duration_since(*t0) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap();
    // Requests are spaced 1/5 s apart; one of tolerance for timing at the window's edges.
    assert!(
        worst <= 6,
        "rateLimit 5/s, saw {worst} requests within one second"
    );
    let span = times.last().unwrap().duration_since(times[0]);
    eprintln!(
        "limits with {processes} process(es): at most {max} in flight (limit 3), busiest second \
         {worst} requests (limit 5/s), 30 rate-limited requests over {span:?}"
    );
    assert!(
        span >= Duration::from_secs(4),
        "30 requests at 5/s take about 5 s, took {span:?}"
    );
}

pub(crate) const DEAD_FLAGS: &[&str] = &[
    "--retry-schedule",
    "100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms",
    "--circuit-cooldown",
    "1s",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_costs_a_few_requests_per_interval_and_retry_after_is_honoured() {
    dead_endpoint(&Server::start(DEAD_FLAGS).await).await;
}

/// A dead endpoint with 200 pending deliveries gets a few requests per circuit interval, and a
/// `Retry-After: 2` on a 429 delays the retry by 2 s (`srv` started with [`DEAD_FLAGS`]).
pub(crate) async fn dead_endpoint(srv: &Server) {
    let rx = Receiver::start().await;
    rx.respond_with("/dead", |_, _| 500);
    rx.respond_with("/busy", |_, n| if n == 0 { 429 } else { 200 });
    rx.retry_after("/busy", 2);
    srv.seed("acct").await;
    srv.endpoint(
        "acct",
        json!({"url": rx.url("/dead"), "eventTypes": ["rx.failed"]}),
    )
    .await;
    srv.endpoint(
        "acct",
        json!({"url": rx.url("/busy"), "eventTypes": ["rx.completed"]}),
    )
    .await;
    for b in 0..2 {
        let batch: Vec<_> = (0..100)
            .map(|n| json!({"event": "rx.failed", "data": {"n": b * 100 + n}}))
            .collect();
        let (s, _) = srv
            .post("/v1/accounts/acct/events/batch", json!(batch))
            .await;
        assert_eq!(s, 202);
    }
    srv.post(
        "/v1/accounts/acct/events",
        json!({"event": "rx.completed", "data": {}}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let dead = rx.received_on("/dead").len();
    eprintln!("dead endpoint with 200 pending deliveries: {dead} requests in 4 s");
    // Without the circuit it would be about 200 deliveries × 10 tries; with it, the first wave
    // (at most the per-endpoint limit of 16), then one probe per cool-down (1 s, 2 s, …).
    assert!(
        dead <= 16 + 5 + 4,
        "{dead} requests to a dead endpoint in 4 s"
    );

    let busy = rx.wait_for("/busy", 2, Duration::from_secs(10)).await;
    let gap = busy[1].at.duration_since(busy[0].at);
    assert!(
        gap >= Duration::from_millis(1900),
        "Retry-After: 2 honoured, retried after {gap:?}"
    );
}

async fn endpoint_state(srv: &Server, ep: &str) -> serde_json::Value {
    srv.get(&format!("/v1/accounts/acct/endpoints/{ep}"))
        .await
        .1
}

/// A receiver whose `path` answers 503 until the returned switch is set, then 200.
async fn failing_until_switched(
    path: &str,
) -> (Receiver, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let rx = Receiver::start().await;
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let h = healthy.clone();
    rx.respond_with(path, move |_, _| {
        if h.load(std::sync::atomic::Ordering::SeqCst) {
            200
        } else {
            503
        }
    });
    (rx, healthy)
}

/// Server flags for a failure clock that runs fast: retries every 100 ms, a 200 ms circuit
/// cool-down, and disabling after `after`.
fn fast_failure_flags(after: &'static str) -> [&'static str; 6] {
    [
        "--retry-schedule",
        "100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms",
        "--circuit-cooldown",
        "200ms",
        "--disable-after",
        after,
    ]
}

/// Polls the endpoint until it is disabled; fails at `deadline`.
async fn wait_until_disabled(
    srv: &Server,
    ep: &str,
    deadline: std::time::Instant,
) -> serde_json::Value {
    loop {
        let e = endpoint_state(srv, ep).await;
        if e["enabled"] == false {
            return e;
        }
        assert!(std::time::Instant::now() < deadline, "never disabled: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The failure clock lives in the store: a restart does not start it again, so the endpoint is
/// disabled one period after its first failure, and its reason names that instant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_clock_survives_a_restart() {
    let (rx, healthy) = failing_until_switched("/dead").await;
    let mut srv = Server::start(&fast_failure_flags("3s")).await;
    srv.seed("acct").await;
    let (ep, _) = srv.endpoint("acct", json!({"url": rx.url("/dead")})).await;
    assert!(endpoint_state(&srv, &ep).await["failingSince"].is_null());
    srv.post(
        "/v1/accounts/acct/events",
        json!({"event": "rx.completed", "data": {}}),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let since = loop {
        let e = endpoint_state(&srv, &ep).await;
        if let Some(s) = e["failingSince"].as_str() {
            break s.to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no failure recorded: {e}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    srv.restart().await;
    let restarted = std::time::Instant::now();
    let disabled = wait_until_disabled(&srv, &ep, restarted + Duration::from_secs(15)).await;
    let reason = disabled["disabledReason"].as_str().unwrap();
    assert!(
        reason.contains(&since),
        "the clock kept its start {since} across the restart: {reason}"
    );
    assert_eq!(disabled["failingSince"].as_str(), Some(since.as_str()));
    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    let (s, e) = srv
        .post(
            &format!("/v1/accounts/acct/endpoints/{ep}/enable"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200);
    assert!(e["failingSince"].is_null(), "enabling stops the clock: {e}");
    assert!(endpoint_state(&srv, &ep).await["failingSince"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_for_the_period_is_disabled_and_can_be_enabled() {
    let (rx, healthy) = failing_until_switched("/flaky").await;
    let srv = Server::start(&fast_failure_flags("1s")).await;
    srv.seed("acct").await;
    let (ep, _) = srv.endpoint("acct", json!({"url": rx.url("/flaky")})).await;
    srv.post(
        "/v1/accounts/acct/events",
        json!({"event": "rx.completed", "data": {}}),
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let disabled = wait_until_disabled(&srv, &ep, deadline).await;
    assert!(
        disabled["disabledReason"]
            .as_str()
            .unwrap()
            .contains("failed"),
        "{disabled}"
    );
    let requests_when_disabled = rx.received_on("/flaky").len();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        rx.received_on("/flaky").len(),
        requests_when_disabled,
        "a disabled endpoint gets nothing"
    );

    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    let (s, e) = srv
        .post(
            &format!("/v1/accounts/acct/endpoints/{ep}/enable"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(e["enabled"], true);
    assert!(e["disabledReason"].is_null());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, ds) = srv
            .get(&format!(
                "/v1/accounts/acct/endpoints/{ep}/deliveries?status=succeeded"
            ))
            .await;
        if ds["data"].as_array().unwrap().len() == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the pending delivery resumed after enable"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Server flags for [`ordering`].
pub(crate) const ORDERING_FLAGS: &[&str] = &["--retry-schedule", "200ms,200ms,200ms,200ms,200ms"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_endpoint_keeps_queue_order_through_retries() {
    ordering(&Server::start(ORDERING_FLAGS).await).await;
}

/// Interleaved `rx.excepted`/`rx.resolved` pairs to an ordered endpoint whose receiver fails the
/// first try of every third request arrive in acceptance order per queue id (on any store).
pub(crate) async fn ordering(srv: &Server) {
    let rx = Receiver::start().await;
    // The first try of every third request fails.
    let tried = std::sync::Arc::new(std::sync::Mutex::new(
        std::collections::HashSet::<String>::new(),
    ));
    let t = tried.clone();
    rx.respond_with("/ordered", move |body, n| {
        let id = body["id"].as_str().unwrap_or_default().to_owned();
        let first = t.lock().unwrap().insert(id);
        if first && n % 3 == 2 { 500 } else { 200 }
    });
    srv.seed("acct").await;
    srv.endpoint("acct", json!({"url": rx.url("/ordered"), "ordered": true}))
        .await;
    // Interleaved excepted/resolved pairs over 10 prescriptions.
    let mut expected: std::collections::HashMap<String, Vec<String>> = Default::default();
    for round in 0..2 {
        for q in 0..10 {
            let kind = if round == 0 {
                "rx.excepted"
            } else {
                "rx.resolved"
            };
            let queue = format!("q_{q}");
            let (s, r) = srv
                .post(
                    "/v1/accounts/acct/events",
                    json!({"event": kind, "queueId": queue, "data": {}}),
                )
                .await;
            assert_eq!(s, 202);
            expected
                .entry(queue)
                .or_default()
                .push(r["id"].as_str().unwrap().to_owned());
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ok: std::collections::HashSet<String> = rx
            .received_on("/ordered")
            .iter()
            .map(|r| r.json()["id"].as_str().unwrap().to_owned())
            .collect();
        if expected.values().flatten().all(|id| ok.contains(id)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Per queue id, requests arrive in acceptance order: a later event is never sent before an
    // earlier one has been delivered (a failed first try is retried before anything after it).
    let got = rx.received_on("/ordered");
    let mut failed_first = 0;
    for (queue, ids) in &expected {
        let seq: Vec<String> = got
            .iter()
            .filter(|r| r.json()["queueId"] == queue.as_str())
            .map(|r| r.json()["id"].as_str().unwrap().to_owned())
            .collect();
        let mut dedup = seq.clone();
        dedup.dedup();
        assert_eq!(&dedup, ids, "{queue}: {seq:?}");
        failed_first += seq.len() - dedup.len();
    }
    assert!(failed_first >= 3, "retries happened ({failed_first})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_operations_record_manual_attempts() {
    let rx = Receiver::start().await;
    rx.script("/m", &[500, 500]);
    let srv = Server::start(&["--retry-schedule", "50ms"]).await;
    srv.seed("acct").await;
    let (ep, _) = srv.endpoint("acct", json!({"url": rx.url("/m")})).await;
    let since = hookline_core::Timestamp::now();
    srv.post(
        "/v1/accounts/acct/events",
        json!({"event": "rx.completed", "data": {}}),
    )
    .await;
    rx.wait_for("/m", 2, Duration::from_secs(10)).await;
    // Failed after its one retry; recover every failed delivery since `since`.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let failed = loop {
        let (_, ds) = srv
            .get(&format!(
                "/v1/accounts/acct/endpoints/{ep}/deliveries?status=failed"
            ))
            .await;
        if let Some(d) = ds["data"].as_array().unwrap().first() {
            break d["id"].as_str().unwrap().to_owned();
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (s, r) = srv
        .post(
            &format!("/v1/accounts/acct/endpoints/{ep}/recover"),
            json!({"since": since.to_rfc3339()}),
        )
        .await;
    assert_eq!(s, 202);
    assert_eq!(r["recovered"], 1);
    // A test event.
    let (s, t) = srv
        .post(&format!("/v1/accounts/acct/endpoints/{ep}/test"), json!({}))
        .await;
    assert_eq!(s, 202, "{t}");
    let got = rx.wait_for("/m", 4, Duration::from_secs(10)).await;
    assert!(got.iter().any(|r| r.json()["event"] == "hookline.test"));
    let attempts_of = |id: String| {
        let srv = &srv;
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let (_, a) = srv
                    .get(&format!("/v1/accounts/acct/deliveries/{id}/attempts"))
                    .await;
                // Newest first: reversed, oldest first.
                let mut a = a["data"].as_array().unwrap().clone();
                a.reverse();
                if a.last().is_some_and(|x| x["statusCode"] == 200) {
                    return a;
                }
                assert!(std::time::Instant::now() < deadline);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let a = attempts_of(failed).await;
    let triggers: Vec<&str> = a.iter().map(|x| x["trigger"].as_str().unwrap()).collect();
    assert_eq!(triggers, vec!["scheduled", "scheduled", "manual"]);
    let test_event = t["id"].as_str().unwrap();
    let (_, ds) = srv
        .get(&format!("/v1/accounts/acct/events/{test_event}/deliveries"))
        .await;
    let a = attempts_of(ds["data"][0]["id"].as_str().unwrap().to_owned()).await;
    assert_eq!(a[0]["trigger"], "manual");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_purges_old_events_with_their_deliveries() {
    let rx = Receiver::start().await;
    let mut srv = Server::start(&["--retention", "1s"]).await;
    srv.seed("acct").await;
    srv.endpoint("acct", json!({"url": rx.url("/r")})).await;
    let (_, old) = srv
        .post(
            "/v1/accounts/acct/events",
            json!({"event": "rx.completed", "data": {}}),
        )
        .await;
    rx.wait_for("/r", 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // The purge runs at start-up and then hourly.
    srv.restart().await;
    let (_, young) = srv
        .post(
            "/v1/accounts/acct/events",
            json!({"event": "rx.completed", "data": {}}),
        )
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (s, _) = srv
            .get(&format!(
                "/v1/accounts/acct/events/{}",
                old["id"].as_str().unwrap()
            ))
            .await;
        if s == 404 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the old event was never purged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, _) = srv
        .get(&format!(
            "/v1/accounts/acct/events/{}",
            young["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, 200, "a young event stays");
}
