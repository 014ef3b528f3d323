//! Lists (paging, filters, refusals alike on every list) and replay jobs, against a real server
//! on each store: SQLite always, PostgreSQL and Redis with their features.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookline_core::Timestamp;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Receiver, Server};

/// Generous: deliveries and jobs run under the load of the whole test suite.
const WAIT: Duration = Duration::from_secs(30);

/// A server on a fresh store of `kind`, after the guard that removes the store (so that, bound
/// as `let (_guard, srv)`, the server stops before its store is removed).
async fn server_on(kind: &str, extra: &[&str]) -> (Box<dyn std::any::Any + Send>, Server) {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    match kind {
        "sqlite" => {
            let url = format!("sqlite://{}", dir.path().join("hookline.db").display());
            let srv = Server::start_on_store(&url, dir.clone(), extra).await;
            (Box::new(dir), srv)
        }
        #[cfg(feature = "postgres")]
        "postgres" => {
            let db = crate::postgres::FreshDatabase::create().await;
            let srv = Server::start_on_store(&db.url(), dir, extra).await;
            (Box::new(db), srv)
        }
        #[cfg(feature = "redis")]
        "redis" => {
            let prefix = crate::redis::FreshPrefix::create();
            let srv = Server::start_on_store(&prefix.url(), dir, extra).await;
            (Box::new(prefix), srv)
        }
        other => panic!("no store {other}"),
    }
}

/// Every row of a list, `limit` at a time, following `nextCursor`; checks each page's size.
async fn every_page(srv: &Server, path: &str, limit: usize) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
            None => format!("{path}{sep}limit={limit}"),
        };
        let (s, page) = srv.get(&url).await;
        assert_eq!(s, 200, "{url}: {page}");
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= limit, "{url}: a page is at most `limit` rows");
        rows.extend(data.iter().cloned());
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return rows,
        }
    }
    panic!("{path}: the pages do not end");
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls `path` until `done` accepts its body (or panics after [`WAIT`]).
async fn poll(srv: &Server, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (s, body) = srv.get(path).await;
        assert_eq!(s, 200, "{path}: {body}");
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} never got there: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post_event(srv: &Server, body: Value) -> String {
    let (s, r) = srv.post("/v1/accounts/acct/events", body).await;
    assert_eq!(s, 202, "{r}");
    r["id"].as_str().unwrap().to_owned()
}

/// Pauses so that the instants on either side differ in milliseconds.
async fn tick() -> Timestamp {
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t = Timestamp::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    t
}

async fn lists_filter_page_and_refuse_alike(kind: &str) {
    let rx = Receiver::start().await;
    // The endpoint `q` fails twice (its one event fails after one retry), then answers 200.
    rx.script("/q", &[500, 500]);
    let (_guard, srv) = server_on(kind, &["--retry-schedule", "50ms"]).await;
    srv.seed("acct").await;
    let (s, _) = srv
        .post("/v1/accounts/acct/sites", json!({"id": "s1"}))
        .await;
    assert_eq!(s, 201);
    let (p, _) = srv.endpoint("acct", json!({"url": rx.url("/p")})).await;
    let (q, _) = srv
        .endpoint(
            "acct",
            json!({"url": rx.url("/q"), "eventTypes": ["rx.failed"]}),
        )
        .await;

    let mut completed = Vec::new();
    for n in 0..5 {
        let mut body =
            json!({"event": "rx.completed", "queueId": format!("q{}", n % 2), "data": {"n": n}});
        if n % 2 == 0 {
            body["site"] = json!("s1");
        }
        completed.push(post_event(&srv, body).await);
    }
    let mid = tick().await;
    let failed_event = post_event(&srv, json!({"event": "rx.failed", "data": {}})).await;
    rx.wait_for("/p", 6, WAIT).await;
    let base = "/v1/accounts/acct";
    let failed = poll(&srv, &format!("{base}/deliveries?status=failed"), |b| {
        b["data"].as_array().unwrap().len() == 1
    })
    .await;
    let qd = failed["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(failed["data"][0]["endpointId"], q.as_str());

    // Account-wide deliveries, a page at a time: each once, newest first by (createdAt, id).
    let all = every_page(&srv, &format!("{base}/deliveries"), 2).await;
    assert_eq!(all.len(), 7, "{all:?}");
    let mut sorted = all.clone();
    sorted.sort_by(|a, b| {
        (b["createdAt"].as_str(), b["id"].as_str())
            .cmp(&(a["createdAt"].as_str(), a["id"].as_str()))
    });
    assert_eq!(ids(&all), ids(&sorted));
    let count = |q: String| {
        let srv = &srv;
        async move { every_page(srv, &q, 250).await.len() }
    };
    assert_eq!(
        count(format!("{base}/deliveries?eventType=rx.failed")).await,
        2
    );
    assert_eq!(
        count(format!(
            "{base}/deliveries?eventType=rx.completed&endpoint={p}"
        ))
        .await,
        5
    );
    assert_eq!(count(format!("{base}/deliveries?endpoint={q}")).await, 1);
    assert_eq!(
        count(format!("{base}/deliveries?status=succeeded")).await,
        6
    );
    assert_eq!(count(format!("{base}/deliveries?since={mid}")).await, 2);
    assert_eq!(count(format!("{base}/deliveries?until={mid}")).await, 5);
    assert_eq!(
        count(format!("{base}/deliveries?since={mid}&status=succeeded")).await,
        1
    );
    assert_eq!(
        count(format!("{base}/deliveries?eventType=rx.resolved")).await,
        0
    );
    assert_eq!(
        count(format!(
            "{base}/endpoints/{p}/deliveries?eventType=rx.completed"
        ))
        .await,
        5
    );
    assert_eq!(
        count(format!("{base}/endpoints/{p}/deliveries?since={mid}")).await,
        1
    );
    assert_eq!(
        count(format!(
            "{base}/events/{failed_event}/deliveries?endpoint={p}"
        ))
        .await,
        1
    );
    assert_eq!(
        count(format!(
            "{base}/events/{failed_event}/deliveries?status=failed"
        ))
        .await,
        1
    );
    // Events: type (and its older name), site, queue id, time.
    assert_eq!(
        count(format!("{base}/events?eventType=rx.completed")).await,
        5
    );
    assert_eq!(count(format!("{base}/events?event=rx.completed")).await, 5);
    assert_eq!(count(format!("{base}/events?site=s1&queueId=q0")).await, 3);
    assert_eq!(count(format!("{base}/events?until={mid}")).await, 5);
    let events = every_page(&srv, &format!("{base}/events"), 4).await;
    let mut newest_first = completed.clone();
    newest_first.insert(0, failed_event.clone());
    newest_first[1..].reverse();
    assert_eq!(ids(&events), newest_first);

    // Attempts: paged newest first, by outcome (two 500s, then a manual retry answered 200).
    let (s, _) = srv
        .post(&format!("{base}/deliveries/{qd}/retry"), json!({}))
        .await;
    assert_eq!(s, 202);
    rx.wait_for("/q", 3, WAIT).await;
    let attempts = format!("{base}/deliveries/{qd}/attempts");
    poll(&srv, &attempts, |b| {
        b["data"].as_array().unwrap().len() == 3
    })
    .await;
    let paged = every_page(&srv, &attempts, 1).await;
    let numbers: Vec<u64> = paged
        .iter()
        .map(|a| a["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 2, 1], "newest first");
    let (_, ok) = srv.get(&format!("{attempts}?outcome=succeeded")).await;
    assert_eq!(ok["data"].as_array().unwrap().len(), 1);
    assert_eq!(ok["data"][0]["statusCode"], 200);
    assert_eq!(count(format!("{attempts}?outcome=failed")).await, 2);

    // Refusals, alike on every list: never an empty 200.
    let lists = [
        "/v1/accounts".to_owned(),
        "/v1/event-types".to_owned(),
        format!("{base}/sites"),
        format!("{base}/endpoints"),
        format!("{base}/events"),
        format!("{base}/deliveries"),
        format!("{base}/events/{failed_event}/deliveries"),
        format!("{base}/endpoints/{p}/deliveries"),
        attempts.clone(),
    ];
    for list in &lists {
        for (query, code) in [
            ("bogus=1", "invalid_query"),
            ("limit=0", "invalid_limit"),
            ("limit=251", "invalid_limit"),
            ("limit=ten", "invalid_query"),
            ("cursor=%25%25", "invalid_cursor"),
            ("since=yesterday", "invalid_query"),
        ] {
            let url = format!("{list}?{query}");
            let (s, body) = srv.get(&url).await;
            assert_eq!(
                (s, body["code"].as_str()),
                (400, Some(code)),
                "{url}: {body}"
            );
        }
        let (s, page) = srv.get(&format!("{list}?limit=250")).await;
        assert_eq!(s, 200, "{list}: {page}");
    }
    // A filter of another list is refused, not ignored.
    for url in [
        "/v1/accounts?status=failed".to_owned(),
        format!("{base}/endpoints?site=s1"),
        format!("{base}/events?status=failed"),
        format!("{base}/deliveries?outcome=failed"),
        format!("{base}/deliveries?site=s1"),
        format!("{base}/events/{failed_event}/deliveries?eventType=rx.failed"),
        format!("{base}/endpoints/{p}/deliveries?endpoint={q}"),
        format!("{attempts}?status=failed"),
    ] {
        let (s, body) = srv.get(&url).await;
        assert_eq!(
            (s, body["code"].as_str()),
            (400, Some("invalid_query")),
            "{url}: {body}"
        );
    }
    // Bad filter values.
    for (url, code) in [
        (format!("{base}/deliveries?status=done"), "invalid_query"),
        (format!("{base}/deliveries?endpoint=nope"), "invalid_id"),
        (
            format!("{base}/deliveries?eventType=Not%20A%20Type"),
            "invalid_id",
        ),
        (
            format!("{base}/deliveries?since={mid}&until={mid}"),
            "invalid_query",
        ),
        (format!("{attempts}?outcome=maybe"), "invalid_query"),
        (format!("{base}/events?queueId="), "invalid_query"),
    ] {
        let (s, body) = srv.get(&url).await;
        assert_eq!(
            (s, body["code"].as_str()),
            (400, Some(code)),
            "{url}: {body}"
        );
    }
}

async fn replay_requeues_matching_deliveries_as_a_job(kind: &str) {
    let rx = Receiver::start().await;
    let (_guard, mut srv) = server_on(kind, &[]).await;
    srv.seed("acct").await;
    let (a, _) = srv.endpoint("acct", json!({"url": rx.url("/a")})).await;
    let (_b, _) = srv.endpoint("acct", json!({"url": rx.url("/b")})).await;
    post_event(&srv, json!({"event": "rx.completed", "data": {}})).await;
    let since = tick().await;
    let mut completed = vec![
        post_event(&srv, json!({"event": "rx.completed", "data": {}})).await,
        post_event(&srv, json!({"event": "rx.completed", "data": {}})).await,
    ];
    completed.sort();
    post_event(&srv, json!({"event": "rx.failed", "data": {}})).await;
    let until = tick().await;
    post_event(&srv, json!({"event": "rx.completed", "data": {}})).await;
    rx.wait_for("/a", 5, WAIT).await;
    rx.wait_for("/b", 5, WAIT).await;
    // Everything succeeded: a replay re-sends succeeded deliveries too.
    let base = "/v1/accounts/acct";
    poll(&srv, &format!("{base}/deliveries?status=pending"), |b| {
        b["data"].as_array().unwrap().is_empty()
    })
    .await;

    let (s, job) = srv
        .post(
            &format!("{base}/replay"),
            json!({"since": since, "until": until, "endpoint": a, "eventTypes": ["rx.completed"]}),
        )
        .await;
    assert_eq!(s, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("rpl_"), "{job}");
    let job_path = format!("{base}/replay/{id}");
    let done = poll(&srv, &job_path, |j| j["state"] != "running").await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(
        (done["matched"].as_u64(), done["queued"].as_u64()),
        (Some(2), Some(2)),
        "{done}"
    );
    assert_eq!(done["done"], 2);
    assert_eq!(done["progress"], 1.0);
    assert_eq!(done["reached"], json!(since));
    let got = rx.wait_for("/a", 7, WAIT).await;
    let mut again: Vec<String> = got[5..]
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        .collect();
    again.sort();
    assert_eq!(
        again, completed,
        "exactly the matching deliveries were sent again"
    );
    assert!(got[5..].iter().all(|r| r.json()["attempt"]["number"] == 2));

    // The whole window, every endpoint and type: 3 events × 2 endpoints.
    let (s, job) = srv
        .post(
            &format!("{base}/replay"),
            json!({"since": since, "until": until}),
        )
        .await;
    assert_eq!(s, 202, "{job}");
    let job_path = format!("{base}/replay/{}", job["id"].as_str().unwrap());
    let done = poll(&srv, &job_path, |j| j["state"] != "running").await;
    assert_eq!(
        (done["state"].as_str(), done["queued"].as_u64()),
        (Some("completed"), Some(6)),
        "{done}"
    );
    rx.wait_for("/a", 10, WAIT).await;
    rx.wait_for("/b", 8, WAIT).await;

    // Refusals.
    for (body, status, code) in [
        (
            json!({"since": until, "until": since}),
            422,
            "invalid_replay",
        ),
        (
            json!({"since": since, "status": "done"}),
            422,
            "invalid_replay",
        ),
        (
            json!({"since": since, "endpoint": "nope"}),
            400,
            "invalid_id",
        ),
        (
            json!({"since": since, "endpoint": "ep_01KB2Z6Q3V8M4J7X0R5T9W1C2D"}),
            404,
            "endpoint_not_found",
        ),
        (json!({"since": since, "bogus": 1}), 422, "invalid_body"),
    ] {
        let (s, r) = srv.post(&format!("{base}/replay"), body.clone()).await;
        assert_eq!((s, r["code"].as_str()), (status, Some(code)), "{body}: {r}");
    }
    let (s, r) = srv
        .get(&format!("{base}/replay/rpl_01KB2Z6Q3V8M4J7X0R5T9W1C2D"))
        .await;
    assert_eq!((s, r["code"].as_str()), (404, Some("replay_not_found")));

    // An account key replays its own account and reads its jobs; another account's key
    // reaches neither.
    let (s, _) = srv
        .post("/v1/accounts", json!({"id": "globex", "name": "globex"}))
        .await;
    assert_eq!(s, 201);
    let key_of = |account: &'static str| {
        let srv = &srv;
        async move {
            let (s, k) = srv
                .post(&format!("/v1/accounts/{account}/keys"), json!({}))
                .await;
            assert_eq!(s, 201, "{k}");
            k["key"].as_str().unwrap().to_owned()
        }
    };
    let (own, other) = (key_of("acct").await, key_of("globex").await);
    let body = json!({"since": until});
    let (s, mine) = srv
        .call_as(
            &own,
            Method::POST,
            &format!("{base}/replay"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, 202, "{mine}");
    let mine_path = format!("{base}/replay/{}", mine["id"].as_str().unwrap());
    let (s, _) = srv.call_as(&own, Method::GET, &mine_path, None).await;
    assert_eq!(s, 200);
    for (method, path, body) in [
        (Method::POST, format!("{base}/replay"), Some(body)),
        (Method::GET, mine_path, None),
        (Method::GET, format!("{base}/deliveries"), None),
    ] {
        let (s, r) = srv.call_as(&other, method, &path, body).await;
        assert_eq!(
            (s, r["code"].as_str()),
            (403, Some("forbidden")),
            "{path}: {r}"
        );
    }

    // Jobs live in the process: after a restart the job is unknown.
    srv.restart().await;
    let (s, r) = srv.get(&job_path).await;
    assert_eq!(
        (s, r["code"].as_str()),
        (404, Some("replay_not_found")),
        "{r}"
    );
}

/// A replay of more deliveries than one batch walks every batch: each delivery re-queued once.
async fn replay_walks_every_batch(kind: &str) {
    let rx = Receiver::start().await;
    let (_guard, srv) = server_on(kind, &[]).await;
    srv.seed("acct").await;
    srv.endpoint("acct", json!({"url": rx.url("/all")})).await;
    let since = tick().await;
    // 300 deliveries: more than one batch of 250.
    for _ in 0..3 {
        let batch: Vec<Value> = (0..100)
            .map(|n| json!({"event": "rx.completed", "data": {"n": n}}))
            .collect();
        let (s, r) = srv
            .post("/v1/accounts/acct/events/batch", Value::Array(batch))
            .await;
        assert_eq!(s, 202, "{r}");
    }
    rx.wait_for("/all", 300, WAIT).await;
    let (s, job) = srv
        .post("/v1/accounts/acct/replay", json!({"since": since}))
        .await;
    assert_eq!(s, 202, "{job}");
    let path = format!("/v1/accounts/acct/replay/{}", job["id"].as_str().unwrap());
    let done = poll(&srv, &path, |j| j["state"] != "running").await;
    assert_eq!(
        (
            done["state"].as_str(),
            done["matched"].as_u64(),
            done["queued"].as_u64()
        ),
        (Some("completed"), Some(300), Some(300)),
        "{done}"
    );
    let got = rx.wait_for("/all", 600, WAIT).await;
    let mut again: Vec<String> = got[300..]
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        .collect();
    again.sort();
    again.dedup();
    assert_eq!(again.len(), 300, "each event's delivery re-sent once");
}

macro_rules! on_every_store {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario("sqlite").await;
            }
            #[cfg(feature = "postgres")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$scenario("postgres").await;
            }
            #[cfg(feature = "redis")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$scenario("redis").await;
            }
        }
    };
}

on_every_store!(lists_filter_page_and_refuse_alike);
on_every_store!(replay_requeues_matching_deliveries_as_a_job);
on_every_store!(replay_walks_every_batch);
