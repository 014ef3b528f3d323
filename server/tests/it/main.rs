//! End-to-end tests of the `hookline` binary: real HTTP on 127.0.0.1, real SQLite files.

mod batches;
mod breaker;
mod browser;
mod cli;
mod door;
mod encryption;
mod engine;
mod faults;
mod fuzz;
mod hanging;
mod idempotency;
mod isolation;
mod keys;
mod listen;
mod lists;
mod logs;
mod metrics;
mod multiprocess;
mod openapi;
mod operations;
mod ops;
#[cfg(feature = "otel")]
mod otel;
#[cfg(any(feature = "postgres", feature = "redis"))]
mod outage;
mod patches;
#[cfg(feature = "postgres")]
mod postgres;
mod problems;
mod receivers;
#[cfg(feature = "redis")]
mod redis;
mod schemas;
mod secrets;
mod support;
mod tls;
mod ui;

use std::time::Duration;

use hookline_core::Timestamp;
use hookline_core::signing::{DEFAULT_TOLERANCE, Secret, verify_raw_body, verify_standard};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Receiver, Server};

const WAIT: Duration = Duration::from_secs(20);

fn send_event(account: &str) -> String {
    format!("/v1/accounts/{account}/events")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_until_success_and_records_every_attempt() {
    let rx = Receiver::start().await;
    rx.script("/flaky", &[500, 500]);
    let srv = Server::start(&["--retry-schedule", "100ms,100ms,100ms"]).await;
    srv.seed("pharma").await;
    let (ep, secret) = srv
        .endpoint("pharma", json!({"url": rx.url("/flaky")}))
        .await;

    let (s, created) = srv
        .post(
            &send_event("pharma"),
            json!({"event": "rx.completed", "queueId": "q_8842", "data": {"din": "02242903"}}),
        )
        .await;
    assert_eq!(s, 202, "{created}");
    assert_eq!(created["deliveries"], 1);
    let event_id = created["id"].as_str().unwrap().to_owned();

    let got = rx.wait_for("/flaky", 3, WAIT).await;
    let secret = Secret::parse(&secret).unwrap();
    for (i, r) in got.iter().enumerate() {
        let body = r.json();
        assert_eq!(body["id"], event_id.as_str(), "the id never changes");
        assert_eq!(body["attempt"]["number"], i as u64 + 1);
        assert_eq!(body["event"], "rx.completed");
        assert_eq!(body["queueId"], "q_8842");
        assert!(body.get("site").is_none());
        assert_eq!(r.headers["webhook-id"], event_id.as_str());
        assert_eq!(r.headers["content-type"], "application/json");
        assert!(
            r.headers["user-agent"]
                .to_str()
                .unwrap()
                .starts_with("Hookline/")
        );
        verify_standard(
            &secret,
            &r.headers,
            &r.body,
            Timestamp::now(),
            DEFAULT_TOLERANCE,
        )
        .unwrap();
        verify_raw_body(
            &secret,
            r.headers["x-hookline-signature"].to_str().unwrap(),
            &r.body,
        )
        .unwrap();
    }

    // The delivery settles as succeeded with three attempts: 500, 500, 200.
    let (_, deliveries) = srv
        .get(&format!("/v1/accounts/pharma/events/{event_id}/deliveries"))
        .await;
    let d = &deliveries["data"][0];
    assert_eq!(d["endpointId"], ep.as_str());
    let dlv = d["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + WAIT;
    let attempts = loop {
        let (s, a) = srv
            .get(&format!("/v1/accounts/pharma/deliveries/{dlv}/attempts"))
            .await;
        assert_eq!(s, 200);
        if a["data"].as_array().unwrap().len() == 3 {
            break a;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "attempts not recorded: {a}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let codes: Vec<u64> = attempts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["statusCode"].as_u64().unwrap())
        .collect();
    // Newest first.
    assert_eq!(codes, vec![200, 500, 500]);
    let numbers: Vec<u64> = attempts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, vec![3, 2, 1]);
    assert!(
        attempts["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["trigger"] == "scheduled")
    );
    let (_, d) = srv
        .get(&format!("/v1/accounts/pharma/deliveries/{dlv}"))
        .await;
    assert_eq!(d["status"], "succeeded");
    assert_eq!(d["attempts"], 3);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        rx.received_on("/flaky").len(),
        3,
        "nothing is sent after success"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_fail_the_delivery_and_manual_retry_resends() {
    let rx = Receiver::start().await;
    rx.script("/down", &[503, 500, 502]);
    let srv = Server::start(&["--retry-schedule", "50ms,50ms"]).await;
    srv.seed("acct").await;
    srv.endpoint("acct", json!({"url": rx.url("/down")})).await;
    let (_, created) = srv
        .post(
            &send_event("acct"),
            json!({"event": "rx.failed", "data": {"reason": "x"}}),
        )
        .await;
    rx.wait_for("/down", 3, WAIT).await;
    let id = created["id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    let dlv = loop {
        let (_, ds) = srv
            .get(&format!(
                "/v1/accounts/acct/events/{id}/deliveries?status=failed"
            ))
            .await;
        if let Some(d) = ds["data"].as_array().unwrap().first() {
            break d.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "delivery never failed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dlv["attempts"], 3);
    let dlv_id = dlv["id"].as_str().unwrap();
    let (s, _) = srv
        .post(
            &format!("/v1/accounts/acct/deliveries/{dlv_id}/retry"),
            json!({}),
        )
        .await;
    assert_eq!(s, 202);
    let got = rx.wait_for("/down", 4, WAIT).await;
    assert_eq!(got[3].json()["attempt"]["number"], 4);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, a) = srv
            .get(&format!("/v1/accounts/acct/deliveries/{dlv_id}/attempts"))
            .await;
        let a = a["data"].as_array().unwrap().clone();
        if a.len() == 4 {
            // Newest first: the manual retry leads.
            assert_eq!(a[0]["trigger"], "manual");
            assert_eq!(a[0]["statusCode"], 200);
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_follows_account_site_and_type_rules() {
    let rx = Receiver::start().await;
    let srv = Server::start(&[]).await;
    srv.seed("banner").await;
    srv.post("/v1/accounts", json!({"id": "other"})).await;
    for site in ["store-1", "store-2"] {
        let (s, _) = srv
            .post(
                "/v1/accounts/banner/sites",
                json!({"id": site, "name": site}),
            )
            .await;
        assert_eq!(s, 201);
    }
    srv.endpoint("banner", json!({"url": rx.url("/shared")}))
        .await;
    srv.endpoint(
        "banner",
        json!({"url": rx.url("/shared-completed"), "eventTypes": ["rx.completed"]}),
    )
    .await;
    srv.endpoint(
        "banner",
        json!({"url": rx.url("/store-1"), "sites": ["store-1"]}),
    )
    .await;
    srv.endpoint("banner", json!({"url": rx.url("/store-2-failed"), "sites": ["store-2"], "eventTypes": ["rx.failed"]})).await;
    srv.endpoint("other", json!({"url": rx.url("/other")}))
        .await;
    let (_, disabled) = srv
        .post(
            "/v1/accounts/banner/endpoints",
            json!({"url": rx.url("/disabled"), "enabled": false}),
        )
        .await;
    assert_eq!(disabled["enabled"], false);

    let events = [
        (
            json!({"event": "rx.completed", "site": "store-1", "data": {"n": 1}}),
            3,
        ), // shared, shared-completed, store-1
        (
            json!({"event": "rx.completed", "site": "store-2", "data": {"n": 2}}),
            2,
        ), // shared, shared-completed
        (
            json!({"event": "rx.failed", "site": "store-2", "data": {"n": 3}}),
            2,
        ), // shared, store-2-failed
        (json!({"event": "rx.excepted", "data": {"n": 4}}), 1), // shared only: no site
    ];
    for (ev, expected) in &events {
        let (s, r) = srv.post(&send_event("banner"), ev.clone()).await;
        assert_eq!(s, 202, "{r}");
        assert_eq!(r["deliveries"], *expected, "{ev}");
    }
    rx.wait_for("/shared", 4, WAIT).await;
    rx.wait_for("/shared-completed", 2, WAIT).await;
    rx.wait_for("/store-1", 1, WAIT).await;
    rx.wait_for("/store-2-failed", 1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ns = |p: &str| -> Vec<u64> {
        let mut v: Vec<u64> = rx
            .received_on(p)
            .iter()
            .map(|r| r.json()["data"]["n"].as_u64().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(ns("/shared"), vec![1, 2, 3, 4]);
    assert_eq!(ns("/shared-completed"), vec![1, 2]);
    assert_eq!(ns("/store-1"), vec![1]);
    assert_eq!(ns("/store-2-failed"), vec![3]);
    assert!(
        ns("/other").is_empty(),
        "another account's endpoint gets nothing"
    );
    assert!(
        ns("/disabled").is_empty(),
        "a disabled endpoint gets nothing"
    );
    let with_site = rx.received_on("/store-1")[0].json();
    assert_eq!(with_site["site"], "store-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_server_delivers_accepted_events() {
    // The endpoint's port has no listener yet: attempts fail and the deliveries stay pending.
    let port = support::free_port();
    let mut srv = Server::start(&[
        "--retry-schedule",
        "200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms",
        // A delivery in flight at the kill stays leased to the dead process until the lease ends.
        "--request-timeout",
        "1s",
        "--lease",
        "3s",
    ])
    .await;
    srv.seed("acct").await;
    srv.endpoint(
        "acct",
        json!({"url": format!("http://127.0.0.1:{port}/late")}),
    )
    .await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let (s, r) = srv
            .post(
                &send_event("acct"),
                json!({"event": "rx.completed", "data": {"n": n}}),
            )
            .await;
        assert_eq!(s, 202);
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    srv.kill9();
    let rx = Receiver::start_on(port).await;
    srv.restart().await;
    let got = rx.wait_for("/late", 5, WAIT).await;
    let mut seen: Vec<String> = got
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    seen.dedup();
    ids.sort();
    assert_eq!(seen, ids, "every accepted event arrives after the restart");
}

async fn assert_problem(
    srv: &Server,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: u16,
    code: &str,
) {
    let (s, b) = srv.call_as(key, method, path, body).await;
    assert_eq!(s, status, "{path}: {b}");
    assert_eq!(b["code"], code, "{path}: {b}");
    assert_eq!(b["status"], status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_with_a_problem_and_stores_nothing() {
    let srv = Server::start(&[]).await;
    srv.seed("acct").await;
    let key = support::ADMIN_KEY;
    let ev = send_event("acct");
    let post = Method::POST;
    // Missing or unknown key.
    assert_problem(
        &srv,
        "",
        post.clone(),
        &ev,
        Some(json!({})),
        401,
        "unauthorized",
    )
    .await;
    assert_problem(
        &srv,
        "hk_nope",
        post.clone(),
        &ev,
        Some(json!({})),
        401,
        "unauthorized",
    )
    .await;
    // Malformed JSON: sent raw.
    let res = srv
        .http
        .post(srv.url(&ev))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body("{\"event\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "malformed_json");
    // Wrong shapes and unknown references.
    assert_problem(
        &srv,
        key,
        post.clone(),
        &ev,
        Some(json!({"event": "rx.completed"})),
        422,
        "invalid_body",
    )
    .await;
    assert_problem(
        &srv,
        key,
        post.clone(),
        &ev,
        Some(json!({"event": "rx.completed", "data": [1]})),
        422,
        "invalid_data",
    )
    .await;
    assert_problem(
        &srv,
        key,
        post.clone(),
        &ev,
        Some(json!({"event": "rx.nope", "data": {}})),
        422,
        "unknown_event_type",
    )
    .await;
    assert_problem(
        &srv,
        key,
        post.clone(),
        &ev,
        Some(json!({"event": "rx.completed", "site": "ghost", "data": {}})),
        422,
        "unknown_site",
    )
    .await;
    assert_problem(
        &srv,
        key,
        post.clone(),
        "/v1/accounts/ghost/events",
        Some(json!({"event": "rx.completed", "data": {}})),
        404,
        "account_not_found",
    )
    .await;
    assert_problem(
        &srv,
        key,
        post.clone(),
        "/v1/accounts/bad%20id/events",
        Some(json!({"event": "rx.completed", "data": {}})),
        400,
        "invalid_id",
    )
    .await;
    assert_problem(
        &srv,
        key,
        Method::GET,
        "/v1/accounts/acct/events/evt_nope",
        None,
        400,
        "invalid_id",
    )
    .await;
    assert_problem(
        &srv,
        key,
        Method::GET,
        "/v1/accounts/acct/events/evt_01JD0000000000000000000000",
        None,
        404,
        "event_not_found",
    )
    .await;
    assert_problem(
        &srv,
        key,
        Method::GET,
        "/v1/accounts/acct/events?limit=251",
        None,
        400,
        "invalid_limit",
    )
    .await;
    assert_problem(
        &srv,
        key,
        Method::GET,
        "/v1/accounts/acct/events?cursor=zzz",
        None,
        400,
        "invalid_cursor",
    )
    .await;
    // Oversized body.
    let big = "x".repeat(300 * 1024);
    assert_problem(
        &srv,
        key,
        post.clone(),
        &ev,
        Some(json!({"event": "rx.completed", "data": {"big": big}})),
        413,
        "payload_too_large",
    )
    .await;
    // Archived type.
    let (s, _) = srv
        .call(
            Method::PATCH,
            "/v1/event-types/rx.failed",
            Some(json!({"archived": true})),
        )
        .await;
    assert_eq!(s, 200);
    assert_problem(
        &srv,
        key,
        post.clone(),
        &ev,
        Some(json!({"event": "rx.failed", "data": {}})),
        422,
        "event_type_archived",
    )
    .await;
    // Endpoint validation.
    let eps = "/v1/accounts/acct/endpoints";
    assert_problem(
        &srv,
        key,
        post.clone(),
        eps,
        Some(json!({"url": "not a url"})),
        422,
        "invalid_url",
    )
    .await;
    assert_problem(
        &srv,
        key,
        post.clone(),
        eps,
        Some(json!({"url": "ftp://x.example"})),
        422,
        "invalid_url",
    )
    .await;
    assert_problem(
        &srv,
        key,
        post.clone(),
        eps,
        Some(json!({"url": "https://x.example", "eventTypes": ["rx.nope"]})),
        422,
        "unknown_event_type",
    )
    .await;
    assert_problem(
        &srv,
        key,
        post.clone(),
        eps,
        Some(json!({"url": "https://x.example", "headers": {"webhook-id": "x"}})),
        422,
        "reserved_header",
    )
    .await;
    assert_problem(
        &srv,
        key,
        post.clone(),
        eps,
        Some(json!({"url": "https://x.example", "secret": "nope"})),
        422,
        "invalid_secret",
    )
    .await;
    assert_problem(
        &srv,
        key,
        post.clone(),
        eps,
        Some(json!({"url": "https://x.example", "colour": "red"})),
        422,
        "invalid_body",
    )
    .await;
    assert_problem(
        &srv,
        key,
        post.clone(),
        "/v1/accounts",
        Some(json!({"id": "a b"})),
        400,
        "invalid_id",
    )
    .await;
    assert_problem(
        &srv,
        key,
        post.clone(),
        "/v1/accounts",
        Some(json!({"id": "acct"})),
        409,
        "account_exists",
    )
    .await;
    assert_problem(
        &srv,
        key,
        Method::GET,
        "/v1/nothing-here",
        None,
        404,
        "route_not_found",
    )
    .await;
    // A path segment that is not UTF-8 once decoded.
    assert_problem(
        &srv,
        key,
        post.clone(),
        "/v1/accounts/%FF/events",
        Some(json!({"event": "rx.completed", "data": {}})),
        400,
        "invalid_id",
    )
    .await;
    // Text no store can keep.
    assert_problem(
        &srv,
        key,
        post.clone(),
        &ev,
        Some(json!({"event": "rx.completed", "queueId": "q\u{0}1", "data": {}})),
        422,
        "invalid_text",
    )
    .await;
    // A batch with one bad item stores none of them.
    assert_problem(
        &srv,
        key,
        post.clone(),
        "/v1/accounts/acct/events/batch",
        Some(json!([
            {"event": "rx.completed", "data": {}},
            {"event": "rx.nope", "data": {}}
        ])),
        422,
        "unknown_event_type",
    )
    .await;

    // Nothing was stored.
    let (_, events) = srv.get(&ev).await;
    assert_eq!(events["data"].as_array().unwrap().len(), 0, "{events}");
    let (_, endpoints) = srv.get(eps).await;
    assert_eq!(
        endpoints["data"].as_array().unwrap().len(),
        0,
        "{endpoints}"
    );
    let (_, accounts) = srv.get("/v1/accounts").await;
    assert_eq!(accounts["data"].as_array().unwrap().len(), 1, "{accounts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_keys_see_only_their_account() {
    let rx = Receiver::start().await;
    let srv = Server::start(&[]).await;
    srv.seed("a").await;
    srv.post("/v1/accounts", json!({"id": "b"})).await;
    let (ep_b, _) = srv.endpoint("b", json!({"url": rx.url("/b")})).await;
    let (s, k) = srv.post("/v1/accounts/a/keys", json!({})).await;
    assert_eq!(s, 201);
    let key_a = k["key"].as_str().unwrap().to_owned();
    // Its own account works.
    let (s, _) = srv
        .call_as(&key_a, Method::GET, "/v1/accounts/a/endpoints", None)
        .await;
    assert_eq!(s, 200);
    let (s, _) = srv
        .call_as(
            &key_a,
            Method::POST,
            "/v1/accounts/a/endpoints",
            Some(json!({"url": rx.url("/a")})),
        )
        .await;
    assert_eq!(s, 201);
    // Another account's data, by any route, does not.
    for (m, path) in [
        (Method::GET, "/v1/accounts/b".to_owned()),
        (Method::GET, "/v1/accounts/b/endpoints".to_owned()),
        (Method::GET, format!("/v1/accounts/b/endpoints/{ep_b}")),
        (
            Method::GET,
            format!("/v1/accounts/b/endpoints/{ep_b}/secret"),
        ),
        (Method::DELETE, format!("/v1/accounts/b/endpoints/{ep_b}")),
        (Method::GET, "/v1/accounts/b/events".to_owned()),
    ] {
        let (s, b) = srv.call_as(&key_a, m, &path, None).await;
        assert_eq!(s, 403, "{path}: {b}");
    }
    // And endpoint ids of another account are not found through one's own account.
    let (s, _) = srv
        .call_as(
            &key_a,
            Method::GET,
            &format!("/v1/accounts/a/endpoints/{ep_b}"),
            None,
        )
        .await;
    assert_eq!(s, 404);
    // Admin-only routes.
    let (s, _) = srv.call_as(&key_a, Method::GET, "/v1/accounts", None).await;
    assert_eq!(s, 403);
    let (s, _) = srv
        .call_as(
            &key_a,
            Method::POST,
            "/v1/accounts/a/events",
            Some(json!({"event": "rx.completed", "data": {}})),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = srv.get(&format!("/v1/accounts/b/endpoints/{ep_b}")).await;
    assert_eq!(s, 200, "b's endpoint is intact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_returns_the_original_event() {
    let rx = Receiver::start().await;
    let srv = Server::start(&[]).await;
    srv.seed("acct").await;
    srv.endpoint("acct", json!({"url": rx.url("/i")})).await;
    let send = || async {
        let res = srv
            .http
            .post(srv.url(&send_event("acct")))
            .bearer_auth(support::ADMIN_KEY)
            .header("idempotency-key", "order-42")
            .json(&json!({"event": "rx.completed", "data": {"n": 1}}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        res.json::<Value>().await.unwrap()
    };
    let first = send().await;
    let second = send().await;
    assert_eq!(first["id"], second["id"]);
    assert_eq!(first["duplicate"], false);
    assert_eq!(second["duplicate"], true);
    rx.wait_for("/i", 1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received_on("/i").len(), 1);
    let (_, events) = srv.get(&send_event("acct")).await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_secret_keeps_the_old_one_signing_during_the_overlap() {
    let rx = Receiver::start().await;
    let srv = Server::start(&["--signature-header", "X-AutoRx-Signature"]).await;
    srv.seed("acct").await;
    let (ep, old) = srv.endpoint("acct", json!({"url": rx.url("/r")})).await;
    let (s, rotated) = srv
        .post(
            &format!("/v1/accounts/acct/endpoints/{ep}/secret/rotate"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200);
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(rotated["secrets"].as_array().unwrap().len(), 2);
    srv.post(
        &send_event("acct"),
        json!({"event": "rx.completed", "data": {}}),
    )
    .await;
    let got = rx.wait_for("/r", 1, WAIT).await;
    let r = &got[0];
    assert_eq!(
        r.headers["webhook-signature"]
            .to_str()
            .unwrap()
            .split(' ')
            .count(),
        2
    );
    for s in [&old, &new] {
        let secret = Secret::parse(s).unwrap();
        verify_standard(
            &secret,
            &r.headers,
            &r.body,
            Timestamp::now(),
            DEFAULT_TOLERANCE,
        )
        .unwrap();
        verify_raw_body(
            &secret,
            r.headers["x-autorx-signature"].to_str().unwrap(),
            &r.body,
        )
        .unwrap();
    }
    assert!(r.headers.get("x-hookline-signature").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_list_filters_and_paginates_newest_first() {
    let srv = Server::start(&[]).await;
    srv.seed("acct").await;
    srv.post("/v1/accounts/acct/sites", json!({"id": "s1"}))
        .await;
    let mut ids = Vec::new();
    for n in 0..7 {
        let site = if n % 2 == 0 { json!("s1") } else { Value::Null };
        let mut body = json!({"event": if n < 4 { "rx.completed" } else { "rx.excepted" }, "queueId": format!("q{}", n % 3), "data": {"n": n}});
        if !site.is_null() {
            body["site"] = site;
        }
        let (s, r) = srv.post(&send_event("acct"), body).await;
        assert_eq!(s, 202, "{r}");
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/accounts/acct/events?limit=3&cursor={c}"),
            None => "/v1/accounts/acct/events?limit=3".to_owned(),
        };
        let (_, page) = srv.get(&path).await;
        for e in page["data"].as_array().unwrap() {
            seen.push(e["id"].as_str().unwrap().to_owned());
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    let count = |q: &str| {
        let q = q.to_owned();
        let srv = &srv;
        async move {
            let (s, page) = srv.get(&format!("/v1/accounts/acct/events?{q}")).await;
            assert_eq!(s, 200, "{page}");
            page["data"].as_array().unwrap().len()
        }
    };
    assert_eq!(count("event=rx.completed").await, 4);
    assert_eq!(count("site=s1").await, 4);
    assert_eq!(count("queueId=q0").await, 3);
    assert_eq!(count("event=rx.excepted&site=s1&queueId=q0").await, 1);
    let (_, one) = srv
        .get(&format!("/v1/accounts/acct/events/{}", ids[2]))
        .await;
    assert_eq!(one["data"]["n"], 2);
    assert_eq!(one["event"], "rx.completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_standard_webhooks_library_verifies_delivered_requests() {
    let python = std::env::var("HOOKLINE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = std::process::Command::new(&python)
        .args(["-c", "import standardwebhooks"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        _ => panic!(
            "the PyPI package `standardwebhooks` is not importable with `{python}`: run the tests with `cargo xtask test` (it installs it), or `pip install standardwebhooks` and set HOOKLINE_TEST_PYTHON"
        ),
    }
    let rx = Receiver::start().await;
    let srv = Server::start(&[]).await;
    srv.seed("acct").await;
    let (_, secret) = srv.endpoint("acct", json!({"url": rx.url("/py")})).await;
    srv.post(&send_event("acct"), json!({"event": "rx.completed", "queueId": "q1", "data": {"patientId": "p_77", "note": "é ü"}})).await;
    let got = rx.wait_for("/py", 1, WAIT).await;
    let r = &got[0];
    let dir = tempfile::tempdir().unwrap();
    let body_path = dir.path().join("body");
    std::fs::write(&body_path, &r.body).unwrap();
    let headers: serde_json::Map<String, Value> =
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
            .iter()
            .map(|h| (h.to_string(), json!(r.headers[*h].to_str().unwrap())))
            .collect();
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
secret, body_path, headers = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
body = open(body_path, "rb").read()
payload = Webhook(secret).verify(body, headers)
print(payload["id"])
try:
    Webhook(secret).verify(body + b" ", headers)
    print("TAMPERED-ACCEPTED")
except Exception:
    print("tampered-rejected")
"#;
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            script,
            &secret,
            body_path.to_str().unwrap(),
            &Value::Object(headers).to_string(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python verification failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        vec![id.as_str(), "tampered-rejected"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hookline_listen_verifies_and_prints_events() {
    use std::io::{BufRead as _, BufReader};
    let srv = Server::start(&[]).await;
    srv.seed("acct").await;
    let port = support::free_port();
    let (ep, secret) = srv
        .endpoint("acct", json!({"url": format!("http://127.0.0.1:{port}/")}))
        .await;
    let mut listen = support::KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
            .args(["listen", "--port", &port.to_string(), "--secret", &secret])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = listen.0.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = lines.recv_timeout(WAIT).unwrap();
    assert!(first.contains("waiting for webhooks"), "{first}");
    let (_, created) = srv
        .post(
            &send_event("acct"),
            json!({"event": "rx.completed", "queueId": "q_1", "data": {"din": "02242903"}}),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + WAIT;
    let mut summary = None;
    while std::time::Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            if line.contains(&id) && line.contains("rx.completed") {
                summary = Some(line);
                break;
            }
        }
    }
    let summary = summary.expect("hookline listen printed the event");
    assert!(summary.contains("standard-webhooks: ok"), "{summary}");
    assert!(summary.contains("x-hookline-signature: ok"), "{summary}");
    // The listener answered 200, so the delivery succeeds.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, ds) = srv
            .get(&format!(
                "/v1/accounts/acct/endpoints/{ep}/deliveries?status=succeeded"
            ))
            .await;
        if ds["data"].as_array().unwrap().len() == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(listen);
}
