//! Micro-benchmarks of the hot pure functions of a delivery: both signature schemes, the
//! envelope, and fan-out matching. Run with `cargo xtask bench --micro` (`cargo bench -p
//! hookline-core`).

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

criterion_group!(benches, signing, envelopes, fan_out);
criterion_main!(benches);
