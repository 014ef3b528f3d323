//! Several `hookline serve` processes on one store; one dies by `kill -9` mid-run.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{ADMIN_KEY, Receiver, Server};

/// What a run saw.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) accepted: usize,
    pub(crate) expected_deliveries: usize,
    pub(crate) received: usize,
    pub(crate) duplicates: usize,
    pub(crate) elapsed: Duration,
}

/// Three processes on `store`; `events` events over `endpoints` endpoints are sent through all
/// three, and the second process gets `kill -9` halfway. Asserts that every delivery arrives at
/// least once, that duplicates carry the same event id, and that nothing stays pending once the
/// leases (4 s) have ended.
pub(crate) async fn kill9_one_of_three(store: &str, events: usize, endpoints: usize) -> Report {
    let _heavy = crate::support::HEAVY.lock().await;
    let started = Instant::now();
    let rx = Receiver::start().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let flags = [
        "--retry-schedule",
        "300ms,500ms,1s,1s,1s,1s,1s,1s,1s,1s",
        "--request-timeout",
        "2s",
        "--lease",
        "4s",
    ];
    let a = Server::start_on_store(store, dir, &flags).await;
    a.seed("mp").await;
    let mut paths = Vec::new();
    for i in 0..endpoints {
        let path = format!("/e{i}");
        a.endpoint("mp", json!({"url": rx.url(&path)})).await;
        paths.push(path);
    }
    let mut b = a.another().await;
    let c = a.another().await;
    let bases = [a.base.clone(), b.base.clone(), c.base.clone()];

    // Send with 16 concurrent clients, round-robin over the processes. A send that fails (its
    // process died) is repeated on the next process with the same idempotency key.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let killed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (http, next, bases, killed) =
            (http.clone(), next.clone(), bases.clone(), killed.clone());
        tasks.spawn(async move {
            let mut accepted = Vec::new();
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n >= events {
                    break;
                }
                let key = format!("mp-{n}");
                let mut target = n % 3;
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    if target == 1 && killed.load(std::sync::atomic::Ordering::SeqCst) {
                        target = 2;
                    }
                    let res = http
                        .post(format!("{}/v1/accounts/mp/events", bases[target]))
                        .bearer_auth(ADMIN_KEY)
                        .header("idempotency-key", &key)
                        .json(&json!({"event": "rx.completed", "queueId": key, "data": {"n": n}}))
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status() == 202 => {
                            let body: serde_json::Value = r.json().await.unwrap();
                            accepted.push(body["id"].as_str().unwrap().to_owned());
                            break;
                        }
                        _ => {
                            assert!(Instant::now() < deadline, "event {n} was never accepted");
                            target = (target + 1) % 3;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            }
            accepted
        });
    }
    // Kill the second process once half of the events were sent.
    while next.load(std::sync::atomic::Ordering::SeqCst) < events / 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    killed.store(true, std::sync::atomic::Ordering::SeqCst);
    b.kill9();
    let mut ids = Vec::new();
    while let Some(r) = tasks.join_next().await {
        ids.extend(r.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        events,
        "every event was accepted exactly once (idempotency keys)"
    );

    // Every (event, endpoint) pair arrives at least once.
    let expected = events * endpoints;
    let deadline = Instant::now() + Duration::from_secs(480);
    let mut by_pair: HashMap<(String, String), usize> = HashMap::new();
    let mut seen = 0;
    loop {
        // Only the requests that arrived since the last look: re-reading all of them every
        // time is quadratic, and slows the receiver down once tens of thousands arrived.
        let fresh = rx.received_since(seen);
        seen += fresh.len();
        for r in fresh {
            let id = r.json()["id"].as_str().unwrap().to_owned();
            assert_eq!(
                r.headers["webhook-id"].to_str().unwrap(),
                id,
                "a duplicate carries the same id"
            );
            *by_pair.entry((r.path.clone(), id)).or_default() += 1;
        }
        if by_pair.len() >= expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {expected} deliveries arrived",
            by_pair.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for id in &ids {
        for p in &paths {
            assert!(
                by_pair.contains_key(&(p.clone(), id.clone())),
                "{id} never reached {p}"
            );
        }
    }
    let received: usize = by_pair.values().sum();

    // Nothing stays pending: the dead process's leases ended and its work was finished.
    let deadline = Instant::now() + Duration::from_secs(120);
    'wait: loop {
        let (_, eps) = a.get("/v1/accounts/mp/endpoints?limit=250").await;
        let mut pending = 0;
        for ep in eps["data"].as_array().unwrap() {
            let id = ep["id"].as_str().unwrap();
            let (_, ds) = a
                .get(&format!(
                    "/v1/accounts/mp/endpoints/{id}/deliveries?status=pending&limit=1"
                ))
                .await;
            pending += ds["data"].as_array().unwrap().len();
        }
        if pending == 0 {
            break 'wait;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries still pending long after the leases ended"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(c);
    Report {
        accepted: ids.len(),
        expected_deliveries: expected,
        received,
        duplicates: received - expected,
        elapsed: started.elapsed(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_processes_on_one_sqlite_file_survive_a_kill9() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("shared.db").display());
    let report = kill9_one_of_three(&store, 600, 4).await;
    eprintln!(
        "sqlite, 3 processes, one kill -9: {} events, {} deliveries expected, {} received, {} duplicates, {:?}",
        report.accepted,
        report.expected_deliveries,
        report.received,
        report.duplicates,
        report.elapsed
    );
    assert_eq!(report.accepted, 600);
    assert!(report.received >= report.expected_deliveries);
}
