//! OpenTelemetry traces (the `otel` feature): a real `hookline serve` exports its spans over
//! OTLP/HTTP to a small collector on 127.0.0.1, which decodes them with the protocol's own
//! messages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message as _;
use serde_json::json;

use crate::support::{Receiver, Server};

const WAIT: Duration = Duration::from_secs(20);

/// One exported span, flattened.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    /// Linked spans' ids.
    links: Vec<Vec<u8>>,
    attributes: HashMap<String, String>,
}

impl Span {
    fn attr(&self, key: &str) -> &str {
        self.attributes
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("span `{}` has no `{key}`: {self:?}", self.name))
    }
}

/// An OTLP/HTTP collector: `POST /v1/traces` with a protobuf `ExportTraceServiceRequest`.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
    requests: Arc<Mutex<usize>>,
}

impl Collector {
    async fn start() -> (Self, String) {
        let c = Self::default();
        let app = Router::new()
            .route("/v1/traces", post(export))
            .with_state(c.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (c, url)
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    fn requests(&self) -> usize {
        *self.requests.lock().unwrap()
    }
}

fn text(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attributes(kvs: &[KeyValue]) -> HashMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

async fn export(State(c): State<Collector>, body: Bytes) -> StatusCode {
    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    *c.requests.lock().unwrap() += 1;
    let mut spans = c.spans.lock().unwrap();
    for rs in req.resource_spans {
        let resource = attributes(&rs.resource.map(|r| r.attributes).unwrap_or_default());
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                spans.push(Span {
                    service: service.clone(),
                    name: s.name,
                    trace_id: s.trace_id,
                    span_id: s.span_id,
                    parent_span_id: s.parent_span_id,
                    links: s.links.into_iter().map(|l| l.span_id).collect(),
                    attributes: attributes(&s.attributes),
                });
            }
        }
    }
    StatusCode::OK
}

/// Publishing and delivering an event exports an `ingest` span (child of the HTTP request's) and
/// an `attempt` span (linked to its `claim`), both naming the event; the spans buffered at
/// shutdown are sent before the process exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_claim_and_attempt_spans_reach_an_otlp_collector() {
    let (collector, url) = Collector::start().await;
    let rx = Receiver::start().await;
    // A minute between exports: nothing is sent before the shutdown flushes.
    let mut srv = Server::start_capturing(
        &["--otlp-endpoint", &url],
        &[
            ("OTEL_SERVICE_NAME", "hookline-it"),
            ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
        ],
    )
    .await;
    srv.seed("acct").await;
    let (ep, _) = srv.endpoint("acct", json!({"url": rx.url("/ok")})).await;
    let (s, created) = srv
        .post(
            "/v1/accounts/acct/events",
            json!({"event": "rx.completed", "data": {"n": 1}}),
        )
        .await;
    assert_eq!(s, 202, "{created}");
    let event = created["id"].as_str().unwrap().to_owned();
    rx.wait_for("/ok", 1, WAIT).await;
    let deadline = std::time::Instant::now() + WAIT;
    let delivery = loop {
        let (_, ds) = srv
            .get(&format!(
                "/v1/accounts/acct/events/{event}/deliveries?status=succeeded"
            ))
            .await;
        if let Some(d) = ds["data"].as_array().unwrap().first() {
            break d["id"].as_str().unwrap().to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never delivered: {ds}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(collector.requests(), 0, "exported before the shutdown");

    srv.terminate(WAIT);
    let spans = collector.spans();
    assert!(collector.requests() > 0, "nothing exported at shutdown");
    let named = |name: &str| -> Vec<&Span> { spans.iter().filter(|s| s.name == name).collect() };

    let ingest = named("ingest");
    assert_eq!(ingest.len(), 1, "{spans:#?}");
    let ingest = ingest[0];
    assert_eq!(ingest.service, "hookline-it");
    assert_eq!(ingest.attr("account_id"), "acct");
    assert_eq!(ingest.attr("event_id"), event);
    assert_eq!(ingest.attr("event_type"), "rx.completed");
    assert_eq!(ingest.attr("deliveries"), "1");
    // Inside the HTTP request's span, in its trace.
    let request = spans
        .iter()
        .find(|s| s.span_id == ingest.parent_span_id)
        .unwrap_or_else(|| panic!("the ingest span's parent was not exported: {spans:#?}"));
    assert_eq!(request.trace_id, ingest.trace_id);
    assert_eq!(request.attr("method"), "POST");

    let attempt = named("attempt");
    assert_eq!(attempt.len(), 1, "{spans:#?}");
    let attempt = attempt[0];
    assert_eq!(
        attempt.attr("event_id"),
        event,
        "joined to the ingest by the event id"
    );
    assert_eq!(attempt.attr("delivery_id"), delivery);
    assert_eq!(attempt.attr("endpoint_id"), ep);
    assert_eq!(attempt.attr("account_id"), "acct");
    assert_eq!(attempt.attr("attempt"), "1");
    assert_eq!(attempt.attr("status"), "200");
    // Linked to the claim that took the delivery.
    let claim = named("claim")
        .into_iter()
        .find(|c| attempt.links.contains(&c.span_id))
        .unwrap_or_else(|| panic!("no claim span linked from the attempt: {spans:#?}"));
    assert_eq!(claim.attr("claimed"), "1");
}

/// The exporter speaks plain http: an https endpoint is refused at start, with a message that
/// says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_otlp_endpoint_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(["serve", "--otlp-endpoint", "https://collector.invalid:4318"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("otlp_endpoint"), "{err}");
    assert!(err.contains("plain http"), "{err}");
}
