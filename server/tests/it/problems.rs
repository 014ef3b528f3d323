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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_naming_a_blocked_address_are_refused_at_creation() {
    // Loopback is allowed here (`--allow-network 127.0.0.0/8`), the rest of the guard is not.
    let srv = Server::start(&[]).await;
    srv.seed("acct").await;
    for url in [
        "https://169.254.169.254/latest/meta-data",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
        "https://0.0.0.0/hook",
    ] {
        let (s, b) = srv
            .post("/v1/accounts/acct/endpoints", json!({"url": url}))
            .await;
        assert_eq!(s, 422, "{url}: {b}");
        assert_eq!(b["code"], "forbidden_address", "{url}: {b}");
    }
    let (_, list) = srv.get("/v1/accounts/acct/endpoints").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "nothing stored");
    for url in [
        "https://127.0.0.2/hook",
        "https://8.8.8.8/hook",
        "https://example.com/",
    ] {
        let (s, b) = srv
            .post("/v1/accounts/acct/endpoints", json!({"url": url}))
            .await;
        assert_eq!(s, 201, "{url}: {b}");
    }
    // An update is checked the same way.
    let (_, list) = srv.get("/v1/accounts/acct/endpoints").await;
    let id = list["data"][0]["id"].as_str().unwrap().to_owned();
    let (s, b) = srv
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/accounts/acct/endpoints/{id}"),
            Some(json!({"url": "https://172.16.0.1/hook"})),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["code"], "forbidden_address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive() {
    let srv = Server::start(&[]).await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let res = srv
            .http
            .get(format!("{}/v1/accounts", srv.base))
            .header("authorization", format!("{scheme} {ADMIN_KEY}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{scheme}");
    }
    let res = srv
        .http
        .get(format!("{}/v1/accounts", srv.base))
        .header("authorization", format!("Basic {ADMIN_KEY}"))
        .send()
        .await
        .unwrap();
    let (status, body) = problem(res).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_data_is_refused() {
    let srv = Server::start(&[]).await;
    srv.seed("acct").await;
    let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let body = format!(r#"{{"event":"rx.completed","data":{{"a":{deep}}}}}"#);
    let res = srv
        .http
        .post(format!("{}/v1/accounts/acct/events", srv.base))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, body) = problem(res).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "invalid_data", "{body}");
    let (_, events) = srv.get("/v1/accounts/acct/events").await;
    assert_eq!(events["data"].as_array().unwrap().len(), 0);
}
