//! What only a shared database shows: several pools (as several processes would have) on one
//! schema, migrations racing at start-up, and failures classified as `Unavailable`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookline_core::model::{Account, Endpoint, EndpointSecret, Event};
use hookline_core::signing::Secret;
use hookline_core::store::{CatalogStore, EndpointStore, HistoryStore, QueueStore, StoreError};
use hookline_core::{AccountId, DeliveryId, EndpointId, EventId, EventTypeName, Timestamp};
use hookline_store_postgres::{PgConfig, PgStore};
use serde_json::value::RawValue;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::isolation::{FreshSchema, admin, fresh_store, url};

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);
const LEASE: Duration = Duration::from_secs(30);

fn endpoint(account: &AccountId) -> Endpoint {
    let mut v = Endpoint::new(
        EndpointId::generate(),
        account.clone(),
        "https://receiver.example.com/hook",
        vec![EndpointSecret::new(Secret::generate(), T0)],
        T0,
    );
    v.updated_at = T0;
    v
}

fn event(account: &AccountId) -> Event {
    Event::new(
        EventId::generate(),
        account.clone(),
        EventTypeName::parse("rx.completed").unwrap(),
        RawValue::from_string(r#"{"n":1}"#.into()).unwrap(),
        T0,
    )
}

async fn seed(store: &PgStore, endpoints: usize, events: usize) -> BTreeSet<DeliveryId> {
    let a = AccountId::parse("acme").unwrap();
    store
        .create_account(&{
            let mut v = Account::new(a.clone(), "Acme", T0);
            v.updated_at = T0;
            v
        })
        .await
        .unwrap();
    let mut targets = Vec::new();
    for _ in 0..endpoints {
        let ep = endpoint(&a);
        store.create_endpoint(&ep).await.unwrap();
        targets.push(ep.id);
    }
    let mut all = BTreeSet::new();
    for _ in 0..events {
        let r = store.enqueue(&event(&a), &targets, T0).await.unwrap();
        all.extend(r.deliveries);
    }
    all
}

/// Three pools (three "processes") with four claimers each drain one schema: every delivery is
/// claimed exactly once while the leases are live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_from_several_pools_are_disjoint_and_complete() {
    let (first, schema) = fresh_store().await;
    let all = seed(&first, 6, 100).await;
    assert_eq!(all.len(), 600);

    let mut stores = vec![first];
    for _ in 0..2 {
        let cfg = PgConfig::default()
            .max_connections(4)
            .schema(schema.name.clone());
        stores.push(PgStore::connect(&url(), cfg).await.unwrap());
    }
    let mut tasks = tokio::task::JoinSet::new();
    for store in &stores {
        for _ in 0..4 {
            let store = store.clone();
            tasks.spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = store.claim_due(T0, 7, LEASE).await.expect("claim_due");
                    if got.is_empty() {
                        return mine;
                    }
                    assert!(got.len() <= 7);
                    mine.extend(got.into_iter().map(|c| c.delivery.id));
                }
            });
        }
    }
    let mut claimed = Vec::new();
    while let Some(r) = tasks.join_next().await {
        claimed.extend(r.unwrap());
    }
    let unique: BTreeSet<DeliveryId> = claimed.iter().cloned().collect();
    assert_eq!(unique.len(), claimed.len(), "a delivery was claimed twice");
    assert_eq!(unique, all, "every due delivery was claimed");
    for s in &stores {
        s.close().await;
    }
    drop(schema);
}

/// Several processes starting at once all migrate the same schema without failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_start_ups_migrate_once() {
    let schema = FreshSchema::new();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let cfg = PgConfig::default()
            .max_connections(2)
            .schema(schema.name.clone());
        tasks.spawn(async move { PgStore::connect(&url(), cfg).await });
    }
    let mut stores = Vec::new();
    while let Some(r) = tasks.join_next().await {
        stores.push(r.unwrap().expect("connect and migrate"));
    }
    stores[0]
        .migrate()
        .await
        .expect("migrating again is a no-op");
    let applied: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {}._sqlx_migrations",
        schema.name
    ))
    .fetch_one(&mut admin().await)
    .await
    .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .count() as i64;
    assert_eq!(applied, files, "every migration applied once");
    for s in &stores {
        s.close().await;
    }
}

/// A database that cannot be reached is `Unavailable` (never `Backend`), within about the
/// acquire timeout, so that the API answers 503 quickly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_database_is_unavailable_quickly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username("postgres");
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy_with(options);
    let store = PgStore::from_pool(pool);
    let started = Instant::now();
    let a = AccountId::parse("acme").unwrap();
    match store.enqueue(&event(&a), &[], T0).await {
        Err(StoreError::Unavailable(source)) => {
            let text = format!("{source:?}");
            assert!(!text.is_empty());
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    match store.claim_due(T0, 10, LEASE).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }

    // `connect` itself reports the failure as a connection error naming the server and the
    // cause (not the password), quickly.
    let started = Instant::now();
    let url = format!("postgres://postgres:s3cret@127.0.0.1:{port}/postgres");
    let err = PgStore::connect(
        &url,
        PgConfig::default().acquire_timeout(Duration::from_secs(1)),
    )
    .await
    .expect_err("nothing listens there");
    assert!(
        matches!(err, hookline_store_postgres::PgError::Connect { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("could not connect to PostgreSQL at 127.0.0.1:{port}: connection refused")
    );
    assert!(!format!("{err:?}").contains("s3cret"), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// The server ends every connection of the store (a restart, a failover): calls fail as
/// `Unavailable` or `Unconfirmed` at worst, and the pool reconnects by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_recovers_after_its_connections_are_killed() {
    let app = format!("hookline-kill-{}", std::process::id());
    let (store, schema) = crate::isolation::fresh_store_with(
        PgConfig::default()
            .max_connections(4)
            .application_name(app.clone()),
    )
    .await;
    let all = seed(&store, 2, 10).await;
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(&app)
    .fetch_all(&mut admin().await)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "the store had connections to kill");

    let deadline = Instant::now() + Duration::from_secs(20);
    let store = Arc::new(store);
    let claimed = loop {
        match store.claim_due(T0, 100, LEASE).await {
            Ok(c) => break c,
            Err(e) if e.is_transient() => {
                assert!(Instant::now() < deadline, "the store never recovered");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("a killed connection must be transient, got {e:?}"),
        }
    };
    let ids: BTreeSet<DeliveryId> = claimed.into_iter().map(|c| c.delivery.id).collect();
    assert_eq!(ids, all);
    store.close().await;
    drop(schema);
}

/// Binary garbage in a response body (NUL characters) does not make an attempt unsettleable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_in_a_response_body_are_recorded() {
    let (store, schema) = fresh_store().await;
    seed(&store, 1, 1).await;
    let c = store.claim_due(T0, 1, LEASE).await.unwrap().pop().unwrap();
    let attempt = {
        let mut v = hookline_core::model::Attempt::new(
            hookline_core::AttemptId::generate(),
            c.delivery.id.clone(),
            c.attempt_number,
            c.trigger,
            T0,
        );
        v.duration_ms = 3;
        v.status_code = Some(500);
        v.error = Some("bad\0error".into());
        v.response_body = "\0\u{1}PNG\0".into();
        v
    };
    store
        .settle(&c.lease, &attempt, hookline_core::store::Next::Exhausted)
        .await
        .expect("settle");
    let a = AccountId::parse("acme").unwrap();
    let got = store.attempts(&a, &c.delivery.id).await.unwrap();
    assert_eq!(got[0].response_body, "\u{FFFD}\u{1}PNG\u{FFFD}");
    assert_eq!(got[0].error.as_deref(), Some("bad\u{FFFD}error"));
    store.close().await;
    drop(schema);
}

/// An enqueue through one pool raises the work signal of another (LISTEN/NOTIFY), so an idle
/// process wakes at once for work another process accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_wakes_other_processes() {
    let (producer, schema) = fresh_store().await;
    let cfg = PgConfig::default()
        .max_connections(2)
        .schema(schema.name.clone());
    let idle = PgStore::connect(&url(), cfg).await.unwrap();
    let signal = idle
        .listen_for_work()
        .expect("PostgreSQL offers a work listener");
    // Give the listener a moment to subscribe; nothing has been enqueued yet.
    let early = tokio::time::timeout(Duration::from_millis(500), signal.notified()).await;
    assert!(early.is_err(), "no work, no signal");
    seed(&producer, 1, 1).await;
    tokio::time::timeout(Duration::from_secs(5), signal.notified())
        .await
        .expect("the enqueue in another pool raised the signal");
    idle.close().await;
    producer.close().await;
    drop(schema);
}

/// Concurrent settles share statements: each still gets its own answer (a stale lease changes
/// nothing, a current one records exactly one attempt), whatever else its group holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_settles_get_their_own_answers() {
    use hookline_core::AttemptId;
    use hookline_core::model::{Attempt, DeliveryStatus, Trigger};
    use hookline_core::store::Next;

    let (store, schema) = fresh_store().await;
    seed(&store, 2, 40).await;
    let a = AccountId::parse("acme").unwrap();
    let claims = store.claim_due(T0, 80, LEASE).await.unwrap();
    assert_eq!(claims.len(), 80);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, c) in claims.into_iter().enumerate() {
        let store = store.clone();
        tasks.spawn(async move {
            let mut lease = c.lease.clone();
            let stale = i % 3 == 0;
            if stale {
                lease.lease_id = "not-the-lease".into();
            }
            let attempt = {
                let mut v = Attempt::new(
                    AttemptId::generate(),
                    lease.delivery.clone(),
                    1,
                    Trigger::Scheduled,
                    T0,
                );
                v.duration_ms = 3;
                v.status_code = Some(if i % 2 == 0 { 200 } else { 500 });
                v.error = (i % 2 == 1).then(|| "HTTP 500".to_owned());
                v.response_body = "ok\0".into();
                v
            };
            let next = if i % 2 == 0 {
                Next::Delivered
            } else {
                Next::RetryAt(T0.add(Duration::from_secs(5)))
            };
            let r = store.settle(&lease, &attempt, next).await;
            match (stale, r) {
                (true, Err(StoreError::LeaseLost)) | (false, Ok(())) => {}
                (stale, r) => panic!("settle (stale: {stale}) answered {r:?}"),
            }
            (lease.delivery, stale, i % 2 == 0)
        });
    }
    while let Some(r) = tasks.join_next().await {
        let (id, stale, ok) = r.unwrap();
        let d = store.delivery(&a, &id).await.unwrap().unwrap();
        let attempts = store.attempts(&a, &id).await.unwrap();
        if stale {
            assert_eq!(
                (d.status, d.attempts, attempts.len()),
                (DeliveryStatus::Pending, 0, 0)
            );
        } else if ok {
            assert_eq!(
                (d.status, d.attempts, attempts.len()),
                (DeliveryStatus::Succeeded, 1, 1)
            );
        } else {
            assert_eq!(
                (d.status, d.attempts, attempts.len()),
                (DeliveryStatus::Pending, 1, 1)
            );
            assert_eq!(d.next_attempt_at, Some(T0.add(Duration::from_secs(5))));
            assert_eq!(attempts[0].error.as_deref(), Some("HTTP 500"));
        }
    }
    store.close().await;
    drop(schema);
}
