//! Log lines written while delivering name the account, endpoint, event and delivery, in the
//! text and the JSON log format, under the default filter and a `warn` one alike.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Receiver, Server};

const WAIT: Duration = Duration::from_secs(20);

/// Publishes one event to an endpoint that always answers 500, waits for its delivery to fail,
/// and returns (endpoint id, event id, delivery id).
async fn fail_one_delivery(srv: &Server, rx: &Receiver) -> (String, String, String) {
    rx.respond_with("/down", |_, _| 500);
    srv.seed("acct").await;
    let (ep, _) = srv.endpoint("acct", json!({"url": rx.url("/down")})).await;
    let (s, created) = srv
        .post(
            "/v1/accounts/acct/events",
            json!({"event": "rx.failed", "data": {"n": 1}}),
        )
        .await;
    assert_eq!(s, 202, "{created}");
    let event = created["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + WAIT;
    let delivery = loop {
        let (_, ds) = srv
            .get(&format!(
                "/v1/accounts/acct/events/{event}/deliveries?status=failed"
            ))
            .await;
        if let Some(d) = ds["data"].as_array().unwrap().first() {
            break d["id"].as_str().unwrap().to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the delivery never failed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    (ep, event, delivery)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_log_lines_of_a_failing_delivery_name_its_ids() {
    let rx = Receiver::start().await;
    // The default filter (`info`); the endpoint is disabled at its second failure.
    let srv = Server::start_capturing(
        &["--retry-schedule", "50ms", "--disable-after", "1ms"],
        &[("RUST_LOG", "info")],
    )
    .await;
    let (ep, event, delivery) = fail_one_delivery(&srv, &rx).await;

    let exhausted = srv
        .wait_for_log(WAIT, |l| l.contains("retries exhausted"))
        .await;
    assert!(exhausted.contains(" WARN "), "{exhausted}");
    for needle in [
        "account_id=acct".to_owned(),
        format!("endpoint_id={ep}"),
        format!("event_id={event}"),
        format!("delivery_id={delivery}"),
        "attempt=2".to_owned(),
    ] {
        assert!(exhausted.contains(&needle), "no `{needle}` in: {exhausted}");
    }

    let disabled = srv
        .wait_for_log(WAIT, |l| l.contains("endpoint disabled"))
        .await;
    for needle in [
        "account_id=acct".to_owned(),
        format!("endpoint_id={ep}"),
        format!("delivery_id={delivery}"),
    ] {
        assert!(disabled.contains(&needle), "no `{needle}` in: {disabled}");
    }
    // The endpoint really was disabled (the line is not a leftover of something else).
    let (_, e) = srv.get(&format!("/v1/accounts/acct/endpoints/{ep}")).await;
    assert_eq!(e["enabled"], false, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_of_a_failing_delivery_name_its_ids() {
    let rx = Receiver::start().await;
    // A `warn` filter: the lines that are let through still carry the ids.
    let srv = Server::start_capturing(
        &["--retry-schedule", "50ms", "--log-format", "json"],
        &[("RUST_LOG", "warn")],
    )
    .await;
    let (ep, event, delivery) = fail_one_delivery(&srv, &rx).await;

    let line = srv
        .wait_for_log(WAIT, |l| l.contains("retries exhausted"))
        .await;
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["level"], "WARN", "{v}");
    assert_eq!(
        v["fields"]["message"], "retries exhausted; delivery failed",
        "{v}"
    );
    let span = &v["span"];
    assert_eq!(span["name"], "attempt", "{v}");
    assert_eq!(span["account_id"], "acct", "{v}");
    assert_eq!(span["endpoint_id"], ep, "{v}");
    assert_eq!(span["event_id"], event, "{v}");
    assert_eq!(span["delivery_id"], delivery, "{v}");
    assert_eq!(span["attempt"], 2, "{v}");
    assert_eq!(span["status"], 500, "{v}");
    // Every line is JSON.
    for l in srv.log_lines() {
        serde_json::from_str::<Value>(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
    }
}
