//! Every error the server answers is `application/problem+json` with a stable code, including
//! the ones the HTTP layers produce before a handler runs.

use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, Server};

async fn problem(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(
        ct.as_deref(),
        Some("application/problem+json"),
        "status {status}"
    );
    let body: Value = res.json().await.expect("a JSON problem body");
    assert_eq!(body["status"], status, "{body}");
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_layer_errors_are_problems() {
    let srv = Server::start(&[]).await;
    srv.seed("acct").await;

    // A route that exists, with a method it does not answer to.
    let res = srv
        .http
        .delete(format!("{}/healthz", srv.base))
        .send()
        .await
        .unwrap();
    let allow = res.headers().get("allow").cloned();
    let (status, body) = problem(res).await;
    assert_eq!(status, 405);
    assert_eq!(body["code"], "method_not_allowed");
    assert!(allow.is_some(), "405 keeps its Allow header");

    // A route that does not exist.
    let res = srv
        .http
        .get(format!("{}/v1/nothing-here", srv.base))
        .send()
        .await
        .unwrap();
    let (status, body) = problem(res).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "route_not_found");

    // A body over the size limit.
    let res = srv
        .http
        .post(format!("{}/v1/accounts/acct/events", srv.base))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    let (status, body) = problem(res).await;
    assert_eq!(status, 413);
    assert_eq!(body["code"], "payload_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_body_error_says_its_detail_once() {
    let srv = Server::start(&[]).await;
    srv.seed("acct").await;
    let res = srv
        .http
        .post(format!("{}/v1/accounts/acct/events", srv.base))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"event": "rx.completed"}))
        .send()
        .await
        .unwrap();
    let (status, body) = problem(res).await;
    assert_eq!(status, 422);
    assert_eq!(body["code"], "invalid_body");
    let detail = body["detail"].as_str().unwrap();
    assert_eq!(
        detail.matches("missing field").count(),
        1,
        "one clean detail: {detail}"
    );
    assert!(detail.contains("`data`"), "{detail}");

    let res = srv
        .http
        .post(format!("{}/v1/accounts/acct/events", srv.base))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body("{\"event\": ")
        .send()
        .await
        .unwrap();
    let (status, body) = problem(res).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "malformed_json");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("line 1"), "says where: {detail}");
    assert_eq!(detail.matches("EOF").count(), 1, "{detail}");
}
