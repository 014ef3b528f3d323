//! What was accepted is still there after the store is closed and the file opened again.

use std::time::Duration;

use hookline_core::model::{
    Account, Attempt, DeliveryStatus, Endpoint, EndpointSecret, Event, Trigger,
};
use hookline_core::signing::Secret;
use hookline_core::store::{CatalogStore, EndpointStore, HistoryStore, Next, QueueStore};
use hookline_core::{AccountId, AttemptId, EndpointId, EventId, EventTypeName, Timestamp};
use hookline_store_sqlite::{SqliteConfig, SqliteStore};
use serde_json::value::RawValue;

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn endpoint(account: &AccountId) -> Endpoint {
    let mut v = Endpoint::new(
        EndpointId::generate(),
        account.clone(),
        "https://receiver.example.com/hook",
        vec![EndpointSecret::new(Secret::generate(), T0)],
        T0,
    );
    v.description = Some("durable".into());
    v.headers = [("x-a".to_owned(), "b".to_owned())].into();
    v.rate_limit = Some(5);
    v.updated_at = T0;
    v
}

fn event(account: &AccountId) -> Event {
    let mut v = Event::new(
        EventId::generate(),
        account.clone(),
        EventTypeName::parse("rx.completed").unwrap(),
        RawValue::from_string(r#"{ "din" : "02242903" }"#.into()).unwrap(),
        T0,
    );
    v.queue_id = Some("q_1".into());
    v.idempotency_key = Some("k".into());
    v
}

#[tokio::test]
async fn data_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    // A nested path in URL form: the file is created if missing.
    let url = format!("sqlite://{}", dir.path().join("hookline.db").display());
    let lease = Duration::from_secs(30);

    let store = SqliteStore::connect(&url, SqliteConfig::default())
        .await
        .unwrap();
    let account = {
        let mut v = Account::new(AccountId::parse("acme").unwrap(), "Acme", T0);
        v.updated_at = T0;
        v
    };
    store.create_account(&account).await.unwrap();
    let done_ep = endpoint(&account.id);
    let retry_ep = endpoint(&account.id);
    store.create_endpoint(&done_ep).await.unwrap();
    store.create_endpoint(&retry_ep).await.unwrap();
    let ev = event(&account.id);
    let receipt = store
        .enqueue(&ev, &[done_ep.id.clone(), retry_ep.id.clone()], T0)
        .await
        .unwrap();
    let claims = store.claim_due(T0, 10, lease).await.unwrap();
    assert_eq!(claims.len(), 2);
    let mut attempts = Vec::new();
    for c in &claims {
        let attempt = {
            let mut v = Attempt::new(
                AttemptId::generate(),
                c.delivery.id.clone(),
                c.attempt_number,
                c.trigger,
                T0,
            );
            v.duration_ms = 10;
            v.status_code = Some(if c.endpoint.id == done_ep.id {
                200
            } else {
                500
            });
            v.response_body = "ok".into();
            v
        };
        let next = if c.endpoint.id == done_ep.id {
            Next::Delivered
        } else {
            Next::RetryAt(T0.add(Duration::from_secs(5)))
        };
        store.settle(&c.lease, &attempt, next).await.unwrap();
        attempts.push(attempt);
    }
    store.close().await;
    drop(store);

    // Reopening runs the migrations again, which must be a no-op.
    let store = SqliteStore::connect(&url, SqliteConfig::default())
        .await
        .unwrap();
    assert_eq!(
        store.account(&account.id).await.unwrap(),
        Some(account.clone())
    );
    assert_eq!(
        store.endpoint(&account.id, &done_ep.id).await.unwrap(),
        Some(done_ep.clone())
    );
    assert_eq!(
        store.event(&account.id, &ev.id).await.unwrap(),
        Some(ev.clone())
    );
    let again = store.enqueue(&ev, &[], T0).await.unwrap();
    assert!(again.duplicate, "idempotency survives a restart");
    let mut want = receipt.deliveries.clone();
    want.sort();
    assert_eq!(again.deliveries, want);
    for a in &attempts {
        let d = store
            .delivery(&account.id, &a.delivery_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.attempts, 1);
        assert_eq!(
            store.attempts(&account.id, &a.delivery_id).await.unwrap(),
            vec![a.clone()]
        );
        if d.endpoint_id == done_ep.id {
            assert_eq!(d.status, DeliveryStatus::Succeeded);
        } else {
            assert_eq!(d.status, DeliveryStatus::Pending);
        }
    }
    let retry_at = T0.add(Duration::from_secs(5));
    assert_eq!(store.next_due().await.unwrap(), Some(retry_at));
    let c = store.claim_due(retry_at, 10, lease).await.unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].endpoint.id, retry_ep.id);
    assert_eq!(c[0].attempt_number, 2);
    assert_eq!(c[0].trigger, Trigger::Scheduled);
    store.close().await;
}

#[tokio::test]
async fn a_lease_held_by_a_dead_process_expires_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookline.db");
    let path = path.to_str().unwrap();
    let store = SqliteStore::connect(path, SqliteConfig::default())
        .await
        .unwrap();
    let account = AccountId::parse("acme").unwrap();
    let ep = endpoint(&account);
    store.create_endpoint(&ep).await.unwrap();
    store
        .enqueue(&event(&account), std::slice::from_ref(&ep.id), T0)
        .await
        .unwrap();
    let lease = Duration::from_secs(30);
    let first = store.claim_due(T0, 10, lease).await.unwrap();
    assert_eq!(first.len(), 1);
    // The worker "dies": no settle, the store is dropped without closing.
    drop(store);

    let store = SqliteStore::connect(path, SqliteConfig::default())
        .await
        .unwrap();
    assert!(store.claim_due(T0, 10, lease).await.unwrap().is_empty());
    assert_eq!(store.next_due().await.unwrap(), Some(T0.add(lease)));
    let again = store.claim_due(T0.add(lease), 10, lease).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivery.id, first[0].delivery.id);
    assert_ne!(again[0].lease.lease_id, first[0].lease.lease_id);
}

#[tokio::test]
async fn connect_configures_wal_full_sync_and_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookline.db");
    let store = SqliteStore::connect(path.to_str().unwrap(), SqliteConfig::default())
        .await
        .unwrap();
    assert!(path.exists(), "the file is created");
    store.close().await;

    // A plain connection sees the persistent setting (WAL); the per-connection pragmas are
    // checked on a pool built the way `connect` builds its own.
    use sqlx::ConnectOptions as _;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('events', 'deliveries', 'attempts')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(tables, 3);
}

#[tokio::test]
async fn a_bad_url_is_an_error_not_a_panic() {
    let err = SqliteStore::connect("sqlite://?mode=nonsense", SqliteConfig::default())
        .await
        .unwrap_err();
    assert!(std::error::Error::source(&err).is_some(), "{err}");
}

/// A new database file and its WAL are private to the owner (0600), whatever the umask: the
/// file holds endpoint secrets and event payloads.
#[cfg(unix)]
#[tokio::test]
async fn a_new_database_file_and_its_wal_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private.db");
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::connect(&url, SqliteConfig::default())
        .await
        .unwrap();
    let a = AccountId::parse("acme").unwrap();
    store
        .create_account(&Account::new(a.clone(), "Acme", T0))
        .await
        .unwrap();
    let ep = endpoint(&a);
    store.create_endpoint(&ep).await.unwrap();
    store
        .enqueue(&event(&a), std::slice::from_ref(&ep.id), T0)
        .await
        .unwrap();
    for name in ["private.db", "private.db-wal", "private.db-shm"] {
        let file = dir.path().join(name);
        let mode = std::fs::metadata(&file)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} has mode {:o}", mode & 0o777);
    }
    store.close().await;
}
