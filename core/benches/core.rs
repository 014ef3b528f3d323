//! Micro-benchmarks of the hot pure functions of a delivery: both signature schemes, the
//! envelope, and fan-out matching; and of the ingest path through the façade over the in-memory
//! store, with and without a JSON Schema on the event type. Run with `cargo xtask bench --micro`
//! (`cargo bench -p hookline-core --features testkit --bench core`).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hookline_core::envelope::envelope;
use hookline_core::model::{Endpoint, EndpointSecret, Event};
use hookline_core::signing::{Secret, raw_body_signature, standard_signature};
use hookline_core::{AccountId, EndpointId, EventId, EventTypeName, SiteId, Timestamp};
use serde_json::value::RawValue;

const SIZES: [(usize, &str); 2] = [(1024, "1KiB"), (64 * 1024, "64KiB")];

/// A JSON object of about `bytes` bytes.
fn data(bytes: usize) -> Box<RawValue> {
    let head = r#"{"patientId":"p_77","din":"02242903","pad":""#;
    let pad = "x".repeat(bytes.saturating_sub(head.len() + 2));
    RawValue::from_string(format!("{head}{pad}\"}}")).expect("valid JSON")
}

fn event(bytes: usize) -> Event {
    let mut v = Event::new(
        EventId::generate(),
        AccountId::parse("pharma-017").expect("valid id"),
        EventTypeName::parse("rx.completed").expect("valid name"),
        data(bytes),
        Timestamp::now(),
    );
    v.site = Some(SiteId::parse("store-017").expect("valid id"));
    v.queue_id = Some("q_8842".to_owned());
    v
}

fn signing(c: &mut Criterion) {
    let secret = Secret::generate();
    let msg_id = EventId::generate();
    let now = Timestamp::now().as_unix_secs();
    let mut group = c.benchmark_group("sign");
    for (bytes, label) in SIZES {
        let body = vec![b'x'; bytes];
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_with_input(
            BenchmarkId::new("standard_webhooks", label),
            &body,
            |b, body| {
                b.iter(|| {
                    standard_signature(
                        black_box(&secret),
                        black_box(msg_id.as_str()),
                        black_box(now),
                        black_box(body),
                    )
                });
            },
        );
        group.bench_with_input(BenchmarkId::new("raw_body", label), &body, |b, body| {
            b.iter(|| raw_body_signature(black_box(&secret), black_box(body)));
        });
    }
    group.finish();
}

fn envelopes(c: &mut Criterion) {
    let mut group = c.benchmark_group("envelope");
    let at = Timestamp::now();
    for (bytes, label) in SIZES {
        let ev = event(bytes);
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_with_input(BenchmarkId::new("serialise", label), &ev, |b, ev| {
            b.iter(|| envelope(black_box(ev), black_box(2), black_box(at)));
        });
    }
    group.finish();
}

/// 1,000 endpoints of one account: a quarter shared with no filter, a quarter subscribed to
/// other types, a quarter to `rx.completed` among others, a quarter limited to sites.
fn endpoints(n: usize) -> Vec<Endpoint> {
    let name = |s: &str| EventTypeName::parse(s).expect("valid name");
    let site = |i: usize| SiteId::parse(&format!("store-{i:03}")).expect("valid id");
    let now = Timestamp::now();
    (0..n)
        .map(|i| {
            let (event_types, sites) = match i % 4 {
                0 => (vec![], vec![]),
                1 => (vec![name("rx.failed"), name("rx.excepted")], vec![]),
                2 => (
                    vec![name("rx.failed"), name("rx.resolved"), name("rx.completed")],
                    vec![],
                ),
                _ => (vec![name("rx.completed")], vec![site(i % 50), site(i % 7)]),
            };
            {
                let mut v = Endpoint::new(
                    EndpointId::generate(),
                    AccountId::parse("pharma-017").expect("valid id"),
                    format!("https://hooks.example.com/{i}"),
                    vec![EndpointSecret::new(Secret::generate(), now)],
                    now,
                );
                v.event_types = event_types;
                v.sites = sites;
                v.updated_at = now;
                v
            }
        })
        .collect()
}

fn fan_out(c: &mut Criterion) {
    let eps = endpoints(1_000);
    let kind = EventTypeName::parse("rx.completed").expect("valid name");
    let site = SiteId::parse("store-017").expect("valid id");
    c.bench_function("fan_out/match_1000_endpoints", |b| {
        b.iter(|| {
            black_box(&eps)
                .iter()
                .filter(|ep| ep.accepts(black_box(Some(&site)), black_box(&kind)))
                .count()
        });
    });
}

/// A typical schema of a 1 KiB prescription event: a dozen typed properties, required fields,
/// patterns, enums and an array of line objects.
fn prescription_schema() -> serde_json::Value {
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["patientId", "din", "prescriber", "lines", "status"],
        "properties": {
            "patientId": {"type": "string", "pattern": "^p_[0-9]+$"},
            "din": {"type": "string", "pattern": "^[0-9]{8}$"},
            "prescriber": {
                "type": "object",
                "required": ["id", "name"],
                "properties": {
                    "id": {"type": "string", "minLength": 1},
                    "name": {"type": "string", "maxLength": 200},
                    "licence": {"type": "string"}
                }
            },
            "status": {"enum": ["completed", "failed", "excepted"]},
            "refills": {"type": "integer", "minimum": 0, "maximum": 12},
            "filledAt": {"type": "string"},
            "lines": {
                "type": "array",
                "maxItems": 50,
                "items": {
                    "type": "object",
                    "required": ["sku", "qty"],
                    "properties": {
                        "sku": {"type": "string"},
                        "qty": {"type": "integer", "minimum": 1},
                        "unit": {"type": "string"},
                        "price": {"type": "number", "minimum": 0}
                    }
                }
            },
            "note": {"type": "string", "maxLength": 2000}
        }
    })
}

/// A prescription event of about 1 KiB that the schema accepts.
fn prescription() -> serde_json::Value {
    let lines: Vec<_> = (0..6)
        .map(|i| {
            serde_json::json!({"sku": format!("sku-{i:04}"), "qty": i + 1, "unit": "tab", "price": 4.25 * f64::from(i + 1)})
        })
        .collect();
    let mut v = serde_json::json!({
        "patientId": "p_77",
        "din": "02242903",
        "prescriber": {"id": "dr-1182", "name": "Dr. Ada Moreau", "licence": "ON-88213"},
        "status": "completed",
        "refills": 2,
        "filledAt": "2026-12-03T17:00:00Z",
        "lines": lines,
        "note": ""
    });
    let size = v.to_string().len();
    v["note"] = serde_json::Value::String("n".repeat(1024usize.saturating_sub(size)));
    v
}

/// Publishing one 1 KiB event to an account with one subscribed endpoint, through
/// `Hookline::publish` over the in-memory store: with no schema on the type, and with the
/// typical schema above (compiled once, then cached). Each sample starts from a fresh store,
/// so the events of one sample are all it holds, after one untimed event that compiles the
/// schema.
fn ingest(c: &mut Criterion) {
    use hookline_core::service::{
        Actor, Hookline, NewAccount, NewEndpoint, NewEvent, NewEventType, ServiceConfig,
    };
    use hookline_core::testkit::MemoryStore;
    use hookline_core::transport::{DeliveryRequest, DeliveryResponse, TransportError, boxed};

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let data = prescription();
    assert!(data.to_string().len() >= 1024);
    let hookline = |schema: Option<serde_json::Value>| {
        rt.block_on(async {
            // The dispatcher never runs here: nothing is sent.
            let transport = boxed(tower::service_fn(|_: DeliveryRequest| {
                std::future::pending::<Result<DeliveryResponse, TransportError>>()
            }));
            let h = Hookline::builder(std::sync::Arc::new(MemoryStore::new()), transport)
                .config(ServiceConfig::default().with_allow_http(true))
                .build();
            let mut et = NewEventType::new("rx.completed");
            if let Some(s) = schema {
                et = et.schema(s);
            }
            h.create_event_type(&Actor::Admin, et)
                .await
                .expect("event type");
            h.create_account(&Actor::Admin, NewAccount::new("pharma-017"))
                .await
                .expect("account");
            h.create_endpoint(
                &Actor::Admin,
                "pharma-017",
                NewEndpoint::new("http://127.0.0.1:9/hook"),
            )
            .await
            .expect("endpoint");
            h
        })
    };
    let event = NewEvent::json("rx.completed", &data).expect("serializable");
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Bytes(event.data.get().len() as u64));
    for (label, schema) in [
        ("no_schema", None),
        ("typical_schema", Some(prescription_schema())),
    ] {
        group.bench_function(BenchmarkId::new("publish_1KiB", label), |b| {
            b.iter_custom(|iters| {
                let h = hookline(schema.clone());
                rt.block_on(async {
                    // One event first, so that the schema is compiled (once per process, in
                    // service) before the clock starts.
                    h.publish(&Actor::Admin, "pharma-017", event.clone())
                        .await
                        .expect("accepted");
                    let start = std::time::Instant::now();
                    for _ in 0..iters {
                        let r = h
                            .publish(&Actor::Admin, "pharma-017", black_box(event.clone()))
                            .await
                            .expect("accepted");
                        black_box(r);
                    }
                    start.elapsed()
                })
            });
        });
    }
    group.finish();

    // The schema check alone: parsing the data and validating it.
    let validator = hookline_core::service::schema::compile(&prescription_schema()).expect("valid");
    let raw = event.data.clone();
    c.bench_function("ingest/validate_1KiB", |b| {
        b.iter(|| {
            let v: serde_json::Value = serde_json::from_str(black_box(raw.get())).expect("json");
            hookline_core::service::schema::violations(&validator, &v)
        });
    });
}

criterion_group!(benches, signing, envelopes, fan_out, ingest);
criterion_main!(benches);
