//! Store outages under load: the store behind a TCP proxy that is cut (connections refused) and
//! frozen (connections open, nothing answered), while producers keep publishing with
//! idempotency keys. Every request is answered 202 or 503 within the bound, a 503 says whether
//! the event may have been stored, and after recovery every event exists exactly once and is
//! delivered.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Receiver, Server, TcpProxy};

/// The promise: an answer within the write timeout (5 s), with room for a loaded machine.
const BOUND: Duration = Duration::from_millis(7_500);
const PRODUCERS: usize = 4;
const PER_PRODUCER: usize = 150;

#[derive(Debug)]
struct Answer {
    key: String,
    /// The event's `n`: a retry sends the same event again.
    n: usize,
    status: u16,
    took: Duration,
    body: Value,
    retry_after: bool,
}

/// What a producer needs of the server: its address and an HTTP client.
#[derive(Clone)]
struct Producer {
    base: String,
    http: reqwest::Client,
}

async fn publish(srv: &Producer, key: &str, n: usize) -> Answer {
    let started = Instant::now();
    let res = srv
        .http
        .post(format!("{}/v1/accounts/acct/events", srv.base))
        .bearer_auth(crate::support::ADMIN_KEY)
        .header("idempotency-key", key)
        .json(&json!({"event": "rx.completed", "data": {"n": n}}))
        .timeout(Duration::from_secs(40))
        .send()
        .await;
    let took = started.elapsed();
    match res {
        Ok(res) => {
            let status = res.status().as_u16();
            let retry_after = res.headers().contains_key("retry-after");
            let body = res.json::<Value>().await.unwrap_or(Value::Null);
            Answer {
                key: key.to_owned(),
                n,
                status,
                took,
                body,
                retry_after,
            }
        }
        Err(e) => Answer {
            key: key.to_owned(),
            n,
            status: 0,
            took,
            body: json!(e.to_string()),
            retry_after: false,
        },
    }
}

/// Starts a server on `store_url` (the store reached through `proxy`) with one endpoint and one
/// event accepted before the outage, then runs [`outage_under_load`] on it.
pub(crate) async fn outage_on(store_url: &str, proxy: &TcpProxy, refusals_known: bool) {
    let _heavy = crate::support::HEAVY.lock().await;
    let rx = Receiver::start().await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let srv = Server::start_on_store(
        store_url,
        dir,
        &["--retry-schedule", "200ms,200ms,200ms,500ms,1s,1s"],
    )
    .await;
    srv.seed("acct").await;
    srv.endpoint("acct", json!({"url": rx.url("/hook")})).await;
    let (s, first) = srv
        .post(
            "/v1/accounts/acct/events",
            json!({"event": "rx.completed", "data": {"n": -1}}),
        )
        .await;
    assert_eq!(s, 202, "{first}");
    outage_under_load(&srv, proxy, &rx, refusals_known).await;
}

/// Runs the outage scenario against a server whose store is reached through `proxy`; the
/// account `acct` has one endpoint on `rx` at `/hook`. With `refusals_known`, the store must
/// report a refused connection as having changed nothing (some 503s say `not_applied`).
pub(crate) async fn outage_under_load(
    srv: &Server,
    proxy: &TcpProxy,
    rx: &Receiver,
    refusals_known: bool,
) {
    let producer = Producer {
        base: srv.base.clone(),
        http: srv.http.clone(),
    };
    let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let (srv, answers, stop) = (producer.clone(), answers.clone(), stop.clone());
        producers.push(tokio::spawn(async move {
            for i in 0..PER_PRODUCER {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let a = publish(&srv, &format!("k-{p}-{i}"), p * 1000 + i).await;
                answers.lock().unwrap().push(a);
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
        }));
    }
    let phase = |d: u64| tokio::time::sleep(Duration::from_millis(d));
    phase(800).await;
    proxy.cut(); // refused: nothing can have been written
    phase(2_500).await;
    proxy.restore();
    phase(2_000).await;
    proxy.freeze(); // stalled: writes may land after the answer
    phase(7_000).await;
    proxy.thaw();
    phase(1_500).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for p in producers {
        p.await.unwrap();
    }
    let answers = std::mem::take(&mut *answers.lock().unwrap());

    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut slowest = Duration::ZERO;
    for a in &answers {
        *by_status.entry(a.status).or_default() += 1;
        slowest = slowest.max(a.took);
        assert!(
            a.status == 202 || a.status == 503,
            "{}: only 202 or 503 during an outage, got {} {}",
            a.key,
            a.status,
            a.body
        );
        assert!(
            a.took <= BOUND,
            "{}: answered {} after {:?}",
            a.key,
            a.status,
            a.took
        );
        if a.status == 503 {
            assert_eq!(a.body["code"], "store_unavailable", "{}", a.body);
            assert!(a.retry_after, "a 503 says when to retry: {}", a.body);
            let outcome = a.body["outcome"].as_str().unwrap_or("missing").to_owned();
            assert!(
                outcome == "unknown" || outcome == "not_applied",
                "{}",
                a.body
            );
            if outcome == "unknown" {
                assert!(
                    a.body["detail"]
                        .as_str()
                        .unwrap()
                        .contains("Idempotency-Key"),
                    "{}",
                    a.body
                );
            }
            *outcomes.entry(outcome).or_default() += 1;
        }
    }
    eprintln!(
        "outage: {} requests, by status {by_status:?}, 503 outcomes {outcomes:?}, slowest {slowest:?}",
        answers.len()
    );
    assert!(
        by_status.get(&503).copied().unwrap_or(0) > 0,
        "the outage was noticed"
    );
    if refusals_known {
        assert!(
            outcomes.get("not_applied").copied().unwrap_or(0) > 0,
            "a refused store is reported as changing nothing: {outcomes:?}"
        );
    }

    // Recovery: the producers retry every 503 with the same key until it is accepted.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    for a in &answers {
        let mut answer_body = a.body.clone();
        let mut status = a.status;
        while status != 202 {
            assert!(
                Instant::now() < deadline,
                "{} still refused after recovery: {answer_body}",
                a.key
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            let again = publish(&producer, &a.key, a.n).await;
            status = again.status;
            answer_body = again.body;
        }
        let id = answer_body["id"].as_str().unwrap().to_owned();
        ids.insert(a.key.clone(), id);
    }

    // Exactly one event per key, and every one is delivered.
    let mut stored = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/accounts/acct/events?limit=250&cursor={c}"),
            None => "/v1/accounts/acct/events?limit=250".to_owned(),
        };
        let (s, page) = srv.get(&path).await;
        assert_eq!(s, 200, "{page}");
        for e in page["data"].as_array().unwrap() {
            stored.push(e["id"].as_str().unwrap().to_owned());
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let distinct: HashSet<&String> = ids.values().collect();
    assert_eq!(distinct.len(), ids.len(), "one id per key");
    // The event published before the outage began is the only one without a key here.
    let stored_set: HashSet<&String> = stored.iter().collect();
    assert_eq!(stored.len(), stored_set.len(), "no event is listed twice");
    for (key, id) in &ids {
        assert!(
            stored_set.contains(id),
            "{key}: {id} accepted but not stored"
        );
    }
    assert_eq!(
        stored.len(),
        ids.len() + 1,
        "no event exists twice for one key (and nothing else was stored)"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: HashSet<String> = rx
            .received_on("/hook")
            .iter()
            .filter_map(|r| r.json()["id"].as_str().map(str::to_owned))
            .collect();
        let missing = ids.values().filter(|id| !got.contains(*id)).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} accepted events not delivered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
