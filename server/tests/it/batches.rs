//! Event batches are stored all or nothing: a large fan-out stored whole, a client that hangs up
//! mid-request leaving every event of its batch or none, and batches over the fan-out or body
//! limit refused with nothing stored. Run here on SQLite, and on PostgreSQL and Redis from
//! their modules.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, Receiver, Server};

/// Events per batch (the API's most).
const EVENTS: usize = 100;
/// Endpoints subscribed to every event.
const ENDPOINTS: usize = 200;
/// The server's fan-out limit in these tests: exactly one full batch to every endpoint.
const LIMIT: usize = EVENTS * ENDPOINTS;

/// Flags of the server under test: the fan-out limit, and one request in flight at a time (the
/// receiver holds it), so that the deliveries stay in the store instead of loading the machine.
pub(crate) const FLAGS: &[&str] = &["--max-batch-deliveries", "20000", "--concurrency", "1"];

const BATCH: &str = "/v1/accounts/acct/events/batch";

/// A batch of `n` events tagged `tag` (their `queueId`), each with an idempotency key of its own.
fn batch(tag: &str, n: usize) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "event": "rx.completed",
                "queueId": tag,
                "idempotencyKey": format!("{tag}-{i}"),
                "data": {"n": i},
            })
        })
        .collect();
    json!(items)
}

/// The ids of the events tagged `tag`, read back over the API.
async fn tagged(srv: &Server, tag: &str) -> Vec<String> {
    let (s, page) = srv
        .get(&format!("/v1/accounts/acct/events?queueId={tag}&limit=250"))
        .await;
    assert_eq!(s, 200, "{page}");
    assert!(page["nextCursor"].is_null(), "one page holds a batch");
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ev| ev["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Asserts that the batch tagged `tag` is stored whole: every event, each with a delivery to
/// every endpoint.
async fn assert_whole(srv: &Server, tag: &str) {
    let ids = tagged(srv, tag).await;
    assert_eq!(ids.len(), EVENTS, "{tag}: every event of the batch");
    for id in &ids {
        let (s, ds) = srv
            .get(&format!(
                "/v1/accounts/acct/events/{id}/deliveries?limit=250"
            ))
            .await;
        assert_eq!(s, 200, "{ds}");
        let n = ds["data"].as_array().unwrap().len();
        assert_eq!(n, ENDPOINTS, "{tag}: event {id} has all its deliveries");
    }
}

/// The receipts of a `202` batch answer: `(id, deliveries, duplicate)` per event.
fn receipts(body: &Value) -> Vec<(String, u64, bool)> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["deliveries"].as_u64().unwrap(),
                r["duplicate"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Sends the batch tagged `tag` until it is accepted: a `503` (the store did not answer within
/// the write timeout, which a loaded machine can cause) is answered by sending it again with the
/// same keys, as a client should. Returns the accepted answer.
async fn send_until_accepted(srv: &Server, tag: &str) -> Value {
    for _ in 0..5 {
        let (s, body) = srv.post(BATCH, batch(tag, EVENTS)).await;
        match s {
            202 => return body,
            503 => {
                assert_eq!(body["code"], "store_unavailable", "{tag}: {body}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ => panic!("{tag}: {s} {body}"),
        }
    }
    panic!("{tag}: not accepted in 5 tries");
}

/// The whole check on one store (the server runs with [`FLAGS`]).
pub(crate) async fn all_or_nothing(srv: &Server) {
    let _heavy = crate::support::HEAVY.lock().await;
    let rx = Receiver::start().await;
    rx.delay("/hold", Duration::from_secs(60));
    srv.seed("acct").await;
    for _ in 0..ENDPOINTS {
        let (s, ep) = srv
            .post(
                "/v1/accounts/acct/endpoints",
                json!({"url": rx.url("/hold")}),
            )
            .await;
        assert_eq!(s, 201, "{ep}");
    }

    // (a) A full batch to 200 endpoints: 100 events and 20,000 deliveries, in one write.
    let started = Instant::now();
    let body = send_until_accepted(srv, "whole").await;
    let took = started.elapsed();
    let r = receipts(&body);
    assert_eq!(r.len(), EVENTS);
    assert!(r.iter().all(|(_, n, _)| *n == ENDPOINTS as u64), "{body}");
    let duplicates = r.iter().filter(|(_, _, dup)| *dup).count();
    assert!(duplicates == 0 || duplicates == EVENTS, "{body}");
    assert_whole(srv, "whole").await;

    // (b) Clients that hang up while their batch is being checked or written, at various points
    // of the time a batch took above. Right after the hang-up, and a moment later, the batch is
    // stored whole or not at all; sent again with the same keys, it is answered either as all
    // duplicates (it had been stored) or as all new (it had not), and then it is stored whole.
    let mut landed = 0;
    for (round, fraction) in [0.0, 0.05, 0.25, 0.5, 1.0].into_iter().enumerate() {
        let tag = format!("hangup-{round}");
        let patience = took.mul_f64(fraction).max(Duration::from_millis(1));
        let impatient = reqwest::Client::builder()
            .timeout(patience)
            .build()
            .unwrap();
        let answer = impatient
            .post(srv.url(BATCH))
            .bearer_auth(ADMIN_KEY)
            .json(&batch(&tag, EVENTS))
            .send()
            .await;
        if let Ok(res) = &answer {
            // The answer came in time: a receipt of the whole batch, or an outage.
            assert!([202, 503].contains(&res.status().as_u16()), "{tag}");
        }
        for moment in ["at once", "a moment later"] {
            if moment != "at once" {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let n = tagged(srv, &tag).await.len();
            assert!(
                n == 0 || n == EVENTS,
                "{tag} ({moment} after hanging up after {patience:?}): {n} of {EVENTS} events stored"
            );
        }
        let body = send_until_accepted(srv, &tag).await;
        let r = receipts(&body);
        let duplicates = r.iter().filter(|(_, _, dup)| *dup).count();
        assert!(
            duplicates == 0 || duplicates == EVENTS,
            "{tag}: {duplicates} of {EVENTS} events had been stored by the hung-up request"
        );
        assert!(
            r.iter().all(|(_, n, _)| *n == ENDPOINTS as u64),
            "{tag}: {body}"
        );
        if duplicates == EVENTS {
            landed += 1;
        }
        // Every event is there now (their deliveries were counted in the receipts: read back
        // for duplicates; read back one by one for the last round).
        assert_eq!(tagged(srv, &tag).await.len(), EVENTS, "{tag}");
        if round == 4 {
            assert_whole(srv, &tag).await;
        }
    }
    eprintln!(
        "batches: a batch of {EVENTS} × {ENDPOINTS} took {took:?}; {landed} of 5 hung-up batches had been stored"
    );

    // (c) One endpoint more: a full batch would create 20,100 deliveries, over the limit.
    let (s, ep) = srv
        .post(
            "/v1/accounts/acct/endpoints",
            json!({"url": rx.url("/hold")}),
        )
        .await;
    assert_eq!(s, 201, "{ep}");
    let (s, problem) = srv.post(BATCH, batch("too-many", EVENTS)).await;
    assert_eq!(s, 422, "{problem}");
    assert_eq!(problem["code"], "batch_too_large", "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains(&(LIMIT + EVENTS).to_string()),
        "{problem}"
    );
    assert!(tagged(srv, "too-many").await.is_empty());
    // Within the limit again (99 events × 201 endpoints), the same route takes it.
    let (s, body) = srv.post(BATCH, batch("fits", EVENTS - 1)).await;
    assert_eq!(s, 202, "{body}");
    assert_eq!(tagged(srv, "fits").await.len(), EVENTS - 1);

    // (d) A body over the batch route's limit (16 × the 256 KiB event limit) answers 413.
    let big = "x".repeat(230 * 1024);
    let items: Vec<Value> = (0..20)
        .map(|i| json!({"event": "rx.completed", "queueId": "too-big", "data": {"n": i, "pad": big}}))
        .collect();
    // The server answers before reading the whole body and then closes the connection: sent
    // from a client that keeps no idle connection, so the next request does not reuse it.
    let once = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let res = once
        .post(srv.url(BATCH))
        .bearer_auth(ADMIN_KEY)
        .json(&json!(items))
        .send()
        .await
        .unwrap();
    let s = res.status().as_u16();
    let problem: Value = res.json().await.unwrap();
    assert_eq!(s, 413, "{problem}");
    assert_eq!(problem["code"], "payload_too_large", "{problem}");
    assert!(tagged(srv, "too-big").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_batches_are_stored_all_or_nothing() {
    all_or_nothing(&Server::start(FLAGS).await).await;
}
