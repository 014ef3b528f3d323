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
    let rx = Receiver::start().await;
    // The receiver holds every request, so all of them are in flight at the moment of the kill.
    rx.delay("/k", Duration::from_secs(10));
    let mut srv = Server::start(&[
        "--concurrency",
        "1000",
        "--endpoint-concurrency",
        "1000",
        "--request-timeout",
        "11s",
        "--lease",
        "12s",
    ])
    .await;
    srv.seed("acct").await;
    let (ep, _) = srv.endpoint("acct", json!({"url": rx.url("/k")})).await;
    let mut ids = Vec::new();
    for b in 0..10u64 {
        let chunk: Vec<_> = (0..100u64)
            .map(|n| json!({"event": "rx.completed", "data": {"n": b * 100 + n}}))
            .collect();
        let (s, r) = srv
            .post("/v1/accounts/acct/events/batch", json!(chunk))
            .await;
        assert_eq!(s, 202, "{r}");
        ids.extend(
            r["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_owned()),
        );
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
