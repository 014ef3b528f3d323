//! Hookline embedded in a small tokio service: the service façade over the SQLite store and the
//! HTTP transport. It creates an event type, an account, a site and an endpoint, publishes one
//! event, and a receiver in this same program checks the Standard Webhooks signature of what
//! arrives. Run it with `cargo run -p embed-sqlite`; it exits once the event was delivered.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hookline_core::service::{
    Actor, Hookline, NewAccount, NewEndpoint, NewEvent, NewEventType, NewSite,
};
use hookline_core::signing::{Secret, verify_standard};
use hookline_core::transport::boxed;
use hookline_core::{Clock as _, SystemClock};
use hookline_store_sqlite::{SqliteConfig, SqliteStore};
use hookline_transport_http::{HttpConfig, HttpTransport};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();

    // The receiver: verifies each request and hands the body over.
    let secret = Secret::generate();
    let (tx, mut received) = mpsc::channel::<Result<Bytes, String>>(4);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/webhooks", listener.local_addr()?);
    let check = secret.clone();
    let receiver = axum::Router::new().route(
        "/webhooks",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| async move {
            let verdict = verify_standard(
                &check,
                &headers,
                &body,
                SystemClock.now(),
                Duration::from_secs(300),
            )
            .map(|()| body)
            .map_err(|e| e.to_string());
            let status = if verdict.is_ok() {
                StatusCode::NO_CONTENT
            } else {
                StatusCode::UNAUTHORIZED
            };
            let _ = tx.send(verdict).await;
            status
        }),
    );
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    // Hookline itself: a SQLite file, the HTTP transport (plain http to loopback allowed for the
    // demo), and the façade with its delivery engine running beside the service.
    let dir = std::env::temp_dir().join(format!("hookline-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = SqliteStore::connect(
        &dir.join("hookline.db").display().to_string(),
        SqliteConfig::default(),
    )
    .await?;
    let http = HttpConfig::default()
        .allow_http(true)
        .allow_networks(vec!["127.0.0.1/32".parse()?]);
    let hookline = Hookline::builder(Arc::new(store), boxed(HttpTransport::new(http)?))
        .allow_http(true)
        .build();
    let shutdown = CancellationToken::new();
    let engine = tokio::spawn({
        let (dispatcher, shutdown) = (hookline.dispatcher().clone(), shutdown.clone());
        async move { dispatcher.run(shutdown).await }
    });

    let admin = &Actor::Admin;
    hookline
        .create_event_type(admin, NewEventType::new("rx.completed"))
        .await?;
    hookline
        .create_account(admin, NewAccount::new("pharma-017").name("Pharmacy 017"))
        .await?;
    hookline
        .create_site(admin, "pharma-017", NewSite::new("store-017"))
        .await?;
    let endpoint = NewEndpoint::new(&url)
        .event_types(["rx.completed"])
        .secret(secret.expose());
    hookline
        .create_endpoint(admin, "pharma-017", endpoint)
        .await?;
    let event = NewEvent::json(
        "rx.completed",
        &serde_json::json!({ "patientId": "p_77", "din": "02242903" }),
    )?
    .site("store-017");
    let receipt = hookline.publish(admin, "pharma-017", event).await?;
    println!(
        "published {} to {} endpoint(s)",
        receipt.event_id,
        receipt.deliveries.len()
    );

    let got = tokio::time::timeout(Duration::from_secs(30), received.recv())
        .await
        .context("no delivery within 30 s")?
        .context("the receiver stopped")?;
    let body = match got {
        Ok(body) => body,
        Err(e) => bail!("the receiver refused the signature: {e}"),
    };
    let envelope: serde_json::Value = serde_json::from_slice(&body)?;
    anyhow::ensure!(
        envelope["id"] == receipt.event_id.as_str(),
        "the receiver got another event"
    );
    println!("delivered and verified: {envelope}");

    shutdown.cancel();
    engine.await??;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
