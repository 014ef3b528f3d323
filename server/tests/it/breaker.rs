//! The circuit breaker on a real process: random errors from a healthy endpoint do not pause
//! its deliveries (a dead endpoint's few requests per cool-down are checked by
//! [`crate::engine::dead_endpoint`]).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::json;

use crate::support::{Receiver, Server};

/// Events sent, one every [`PACE`].
const EVENTS: usize = 500;
const PACE: Duration = Duration::from_millis(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_500s_do_not_pause_a_healthy_endpoint() {
    random_errors_do_not_pause(&Server::start(&[]).await).await;
}

/// An endpoint answers 500 to a random (seeded) 20 % of first attempts and 2xx otherwise; 500
/// events at 100/s with default settings (`srv`): first-attempt successes keep a p50 from 202
/// to receipt under 100 ms and none waits a cool-down, and every event is delivered. (On this
/// pattern the former rule, five failures in a row open the circuit, left events undelivered
/// after a minute on every store: its probes kept meeting first attempts answered 500.)
pub(crate) async fn random_errors_do_not_pause(srv: &Server) {
    let _heavy = crate::support::HEAVY.lock().await;
    // The first seeded pattern with eight first attempts failing in a row among the events sent
    // one after another: a streak rule (five failures in a row) opens the circuit on it.
    let fails: Arc<Vec<bool>> = Arc::new(
        (0..)
            .map(|seed| {
                let mut rng = StdRng::seed_from_u64(seed);
                (0..EVENTS).map(|_| rng.gen_bool(0.2)).collect::<Vec<_>>()
            })
            .find(|f| longest_run(f) >= 8)
            .unwrap(),
    );
    let failing = fails.iter().filter(|f| **f).count();
    assert!((70..=130).contains(&failing), "{failing} of {EVENTS}");
    let delivered = Arc::new(Mutex::new(HashSet::new()));
    let rx = Receiver::start().await;
    let (f, d) = (fails.clone(), delivered.clone());
    rx.respond_with("/flaky", move |body, _| {
        let n = body["data"]["n"].as_u64().unwrap() as usize;
        if body["attempt"]["number"] == 1 && f[n] {
            500
        } else {
            d.lock().unwrap().insert(n);
            200
        }
    });
    srv.seed("acct").await;
    srv.endpoint("acct", json!({"url": rx.url("/flaky")})).await;

    // A steady pace: one event every 10 ms, each sent without waiting for the previous answer.
    let accepted = Arc::new(Mutex::new(vec![None::<Instant>; EVENTS]));
    let mut sends = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(PACE);
    for n in 0..EVENTS {
        tick.tick().await;
        let (http, url) = (srv.http.clone(), srv.url("/v1/accounts/acct/events"));
        let accepted = accepted.clone();
        sends.spawn(async move {
            let res = http
                .post(&url)
                .bearer_auth(crate::support::ADMIN_KEY)
                .json(&json!({"event": "rx.completed", "data": {"n": n}}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 202);
            accepted.lock().unwrap()[n] = Some(Instant::now());
        });
    }
    while let Some(r) = sends.join_next().await {
        r.unwrap();
    }

    // Every event is delivered: 80 % at once, the rest on their retry (5 s later by default).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = delivered.lock().unwrap().len();
        if done == EVENTS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {EVENTS} events delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let accepted = accepted.lock().unwrap().clone();
    let mut first_attempt = vec![None; EVENTS];
    for r in rx.received_on("/flaky") {
        let body = r.json();
        if body["attempt"]["number"] == 1 {
            let n = body["data"]["n"].as_u64().unwrap() as usize;
            first_attempt[n] = Some(r.at);
        }
    }
    let mut waits: Vec<Duration> = (0..EVENTS)
        .filter(|n| !fails[*n])
        .map(|n| {
            let at = first_attempt[n].expect("a first attempt");
            at.saturating_duration_since(accepted[n].unwrap())
        })
        .collect();
    waits.sort();
    let p50 = waits[waits.len() / 2];
    let p99 = waits[waits.len() * 99 / 100];
    let max = *waits.last().unwrap();
    eprintln!(
        "20 % random 500s on {}: {} first-attempt successes, from 202 to receipt p50 {p50:?} \
         p99 {p99:?} max {max:?}",
        srv.store.split(':').next().unwrap_or_default(),
        waits.len()
    );
    assert!(
        p50 < Duration::from_millis(100),
        "p50 {p50:?}: the endpoint was paused"
    );
    // An open circuit holds the endpoint's backlog for the 5 s cool-down.
    assert!(
        max < Duration::from_secs(4),
        "a first-attempt success waited {max:?}: the circuit opened"
    );
}

/// The longest run of `true`.
fn longest_run(xs: &[bool]) -> usize {
    let (mut best, mut run) = (0, 0);
    for x in xs {
        run = if *x { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}
