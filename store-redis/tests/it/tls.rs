//! `rediss://` against a real `redis-server` with TLS only, and connection errors that name the
//! server and the cause.

use std::time::Duration;

use hookline_core::model::{Account, Endpoint, Event};
use hookline_core::store::{CatalogStore as _, EndpointStore as _, QueueStore as _};
use hookline_core::{AccountId, EndpointId, EventId, EventTypeName, Timestamp};
use hookline_store_redis::{RedisConfig, RedisError, RedisStore};
use serde_json::value::RawValue;

use crate::tls_server::TlsRedis;

/// `connect` with a short connection timeout, expected to fail.
async fn connect_err(url: &str, cfg: RedisConfig) -> RedisError {
    let cfg = cfg.connect_timeout(Duration::from_secs(2));
    match RedisStore::connect(url, cfg).await {
        Ok(_) => panic!("connecting to {url} should have failed"),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_the_test_ca_connects_and_round_trips() {
    let server = TlsRedis::start();
    let store = RedisStore::connect(
        &server.url(),
        RedisConfig::default().ca_file(&server.pki.ca),
    )
    .await
    .expect("a TLS connection trusting the test CA");

    let now = Timestamp::now();
    let account = AccountId::parse("acme").unwrap();
    store
        .create_account(&Account::new(account.clone(), "Acme", now))
        .await
        .unwrap();
    let ep = Endpoint::new(
        EndpointId::generate(),
        account.clone(),
        "https://receiver.example.com/hook",
        vec![],
        now,
    );
    store.create_endpoint(&ep).await.unwrap();
    let event = Event::new(
        EventId::generate(),
        account.clone(),
        EventTypeName::parse("rx.completed").unwrap(),
        RawValue::from_string(r#"{"din":"02242903"}"#.into()).unwrap(),
        now,
    );
    let receipt = store
        .enqueue(&event, std::slice::from_ref(&ep.id), now)
        .await
        .unwrap();
    assert_eq!(receipt.deliveries.len(), 1);
    let claimed = store
        .claim_due(now, 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].event.id, event.id);
    assert_eq!(claimed[0].event.data.get(), r#"{"din":"02242903"}"#);
    let stored = store.account(&account).await.unwrap().expect("stored");
    assert_eq!(stored.name, "Acme");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_without_a_trusted_ca_fails_naming_the_server() {
    let server = TlsRedis::start();
    let target = format!("127.0.0.1:{}", server.port);

    // The public roots built in do not include the test CA.
    let e = connect_err(&server.url(), RedisConfig::default()).await;
    let msg = e.to_string();
    assert!(matches!(e, RedisError::Connect { .. }), "{e:?}");
    assert!(
        msg.starts_with(&format!(
            "could not connect to Redis at {target}: TLS handshake failed"
        )),
        "{msg}"
    );
    assert!(msg.contains("UnknownIssuer"), "{msg}");

    // Another CA is not the one that issued the server's certificate.
    let e = connect_err(
        &server.url(),
        RedisConfig::default().ca_file(&server.pki.other_ca),
    )
    .await;
    let msg = e.to_string();
    assert!(msg.contains(&target), "{msg}");
    assert!(msg.contains("TLS handshake failed"), "{msg}");

    // Plain text to a TLS-only port: no answer that Redis would give.
    let plain = format!("redis://127.0.0.1:{}/", server.port);
    let e = connect_err(
        &plain,
        RedisConfig::default().operation_timeout(Duration::from_secs(2)),
    )
    .await;
    let msg = e.to_string();
    assert!(msg.contains(&target), "{msg}");
    assert!(msg.contains("the server closed the connection"), "{msg}");
    assert!(msg.contains("does it expect TLS (`rediss://`)?"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_settings_that_cannot_work_are_refused_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    // No certificate checks at all is not offered.
    let e = connect_err("rediss://127.0.0.1:1/#insecure", RedisConfig::default()).await;
    assert!(matches!(e, RedisError::InsecureTls), "{e:?}");
    // A CA file for a connection without TLS.
    std::fs::write(&ca, "").unwrap();
    let e = connect_err("redis://127.0.0.1:1/", RedisConfig::default().ca_file(&ca)).await;
    assert!(matches!(e, RedisError::CaWithoutTls), "{e:?}");
    // A CA file that holds no certificate, or is missing.
    std::fs::write(&ca, "not a certificate\n").unwrap();
    let e = connect_err("rediss://127.0.0.1:1/", RedisConfig::default().ca_file(&ca)).await;
    assert!(e.to_string().contains("no PEM certificate"), "{e}");
    let missing = dir.path().join("missing.pem");
    let e = connect_err(
        "rediss://127.0.0.1:1/",
        RedisConfig::default().ca_file(&missing),
    )
    .await;
    assert!(matches!(e, RedisError::CaFile { .. }), "{e:?}");
    assert!(e.to_string().contains("missing.pem"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_reported_as_refused_with_host_and_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let e = connect_err(
        &format!("redis://:s3cret@127.0.0.1:{port}/"),
        RedisConfig::default(),
    )
    .await;
    assert_eq!(
        e.to_string(),
        format!("could not connect to Redis at 127.0.0.1:{port}: connection refused")
    );
    let chain = format!("{:?}", anyhow_like_chain(&e));
    assert!(!chain.contains("s3cret"), "{chain}");
}

/// Every message of the error's chain.
fn anyhow_like_chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push(c.to_string());
        cause = c.source();
    }
    out
}
