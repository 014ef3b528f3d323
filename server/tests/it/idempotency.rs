//! Idempotency keys: per account, the same event answered with the original, another event with
//! the same key refused (single and in batches), bad keys refused, and keys freed with their
//! event by the retention purge. Run here on SQLite, and on PostgreSQL and Redis from their
//! modules.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, Server};

const EVENTS: &str = "/v1/accounts/acct/events";
const BATCH: &str = "/v1/accounts/acct/events/batch";

/// Flags of the server under test: events (and so their keys) are kept for 2 s, so that a
/// restart, which purges at once, frees them.
pub(crate) const FLAGS: &[&str] = &["--retention", "2s"];

/// Publishes `body` (sent as is) to `path` with `key` in the `Idempotency-Key` header.
async fn publish_raw(srv: &Server, path: &str, key: &str, body: &str) -> (u16, Value) {
    let res = srv
        .http
        .post(srv.url(path))
        .bearer_auth(ADMIN_KEY)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

async fn count(srv: &Server, account: &str) -> usize {
    let (s, page) = srv
        .get(&format!("/v1/accounts/{account}/events?limit=250"))
        .await;
    assert_eq!(s, 200, "{page}");
    page["data"].as_array().unwrap().len()
}

/// The whole scenario, on a server started with [`FLAGS`] and seeded with account `acct`; it
/// restarts the server.
pub(crate) async fn keys(srv: &mut Server) {
    let (s, _) = srv.post("/v1/accounts", json!({"id": "other"})).await;
    assert_eq!(s, 201);
    let original = r#"{"event":"rx.completed","queueId":"q_1","data":{"din":"02242903","qty":2}}"#;
    let (s, first) = publish_raw(srv, EVENTS, "order-42", original).await;
    assert_eq!(s, 202, "{first}");
    assert_eq!(first["duplicate"], false);

    // The same event, written otherwise (key order, white space): the original answers.
    let same =
        r#"{ "data": {"qty": 2, "din": "02242903"}, "queueId": "q_1", "event": "rx.completed" }"#;
    let (s, again) = publish_raw(srv, EVENTS, "order-42", same).await;
    assert_eq!(s, 202, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["id"], first["id"]);

    // Another event with the key: 409, whatever differs.
    for other in [
        r#"{"event":"rx.completed","queueId":"q_1","data":{"din":"02242903","qty":3}}"#,
        r#"{"event":"rx.completed","queueId":"q_2","data":{"din":"02242903","qty":2}}"#,
        r#"{"event":"rx.failed","queueId":"q_1","data":{"din":"02242903","qty":2}}"#,
        r#"{"event":"rx.completed","data":{"din":"02242903","qty":2}}"#,
    ] {
        let (s, p) = publish_raw(srv, EVENTS, "order-42", other).await;
        assert_eq!(s, 409, "{other}: {p}");
        assert_eq!(p["code"], "idempotency_conflict", "{p}");
    }
    // Keys are per account.
    let (s, elsewhere) = publish_raw(
        srv,
        "/v1/accounts/other/events",
        "order-42",
        r#"{"event":"rx.failed","data":{}}"#,
    )
    .await;
    assert_eq!(s, 202, "{elsewhere}");
    assert_eq!(elsewhere["duplicate"], false);

    // Keys are 1 to 255 visible ASCII characters.
    let long = "k".repeat(256);
    for bad in ["has space", long.as_str()] {
        let (s, p) = publish_raw(srv, EVENTS, bad, r#"{"event":"rx.completed","data":{}}"#).await;
        assert_eq!(s, 422, "{bad}: {p}");
        assert_eq!(p["code"], "invalid_idempotency_key", "{p}");
    }
    let (s, p) = srv
        .post(
            BATCH,
            json!([
                {"event": "rx.completed", "queueId": "b0", "data": {}},
                {"event": "rx.completed", "queueId": "b0", "data": {}, "idempotencyKey": ""},
            ]),
        )
        .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["code"], "invalid_idempotency_key", "{p}");
    assert_eq!(p["index"], 1, "{p}");

    // Batches: the same event again is a duplicate; another event with a used key, or two events
    // of one batch with one key, refuse the whole batch.
    let (s, b) = srv
        .post(
            BATCH,
            json!([
                {"event": "rx.completed", "queueId": "q_1", "data": {"qty": 2, "din": "02242903"}, "idempotencyKey": "order-42"},
                {"event": "rx.completed", "queueId": "b1", "data": {"n": 1}, "idempotencyKey": "b1-1"},
                {"event": "rx.completed", "queueId": "b1", "data": {"n": 1}, "idempotencyKey": "b1-1"},
            ]),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(b["data"][0]["id"], first["id"]);
    assert_eq!(b["data"][0]["duplicate"], true);
    assert_eq!(b["data"][1]["duplicate"], false);
    assert_eq!(b["data"][2]["duplicate"], true);
    assert_eq!(b["data"][2]["id"], b["data"][1]["id"]);
    let before = count(srv, "acct").await;
    for (batch, index) in [
        (
            json!([
                {"event": "rx.completed", "queueId": "b2", "data": {"n": 1}, "idempotencyKey": "b2-1"},
                {"event": "rx.completed", "queueId": "q_1", "data": {"qty": 9}, "idempotencyKey": "order-42"},
            ]),
            1,
        ),
        (
            json!([
                {"event": "rx.completed", "queueId": "b2", "data": {"n": 1}, "idempotencyKey": "b2-1"},
                {"event": "rx.completed", "queueId": "b2", "data": {"n": 2}, "idempotencyKey": "b2-2"},
                {"event": "rx.completed", "queueId": "b2", "data": {"n": 3}, "idempotencyKey": "b2-1"},
            ]),
            2,
        ),
    ] {
        let (s, p) = srv.post(BATCH, batch).await;
        assert_eq!(s, 409, "{p}");
        assert_eq!(p["code"], "idempotency_conflict", "{p}");
        assert_eq!(p["index"], index, "{p}");
    }
    assert_eq!(
        count(srv, "acct").await,
        before,
        "nothing of a refused batch stored"
    );

    // The window is the retention: once the event is purged (a restart purges at once), the
    // key is free for another event.
    let first_id = first["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    srv.restart().await;
    // Generous: the purge runs beside the first requests on a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, _) = srv.get(&format!("{EVENTS}/{first_id}")).await;
        if s == 404 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the event outlived its retention"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, reused) = publish_raw(
        srv,
        EVENTS,
        "order-42",
        r#"{"event":"rx.failed","data":{"new":true}}"#,
    )
    .await;
    assert_eq!(s, 202, "{reused}");
    assert_eq!(reused["duplicate"], false);
    assert_ne!(reused["id"], first["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_answer_the_same_event_and_refuse_another() {
    let mut srv = Server::start(FLAGS).await;
    srv.seed("acct").await;
    keys(&mut srv).await;
}
