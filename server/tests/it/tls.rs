//! The server on TLS-only PostgreSQL and Redis servers started by the tests, with a CA generated
//! by the tests (`--store-ca-file`), and start-up errors that name the store's host, port and
//! the cause.
#![cfg_attr(
    not(any(feature = "postgres", feature = "redis")),
    allow(dead_code, unused_imports)
)]

use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{ADMIN_KEY, Receiver, Server, free_port};
use crate::{WAIT, send_event};

#[cfg(feature = "postgres")]
#[path = "../../../store-postgres/tests/it/tls_cluster.rs"]
mod tls_cluster;
#[cfg(feature = "redis")]
#[path = "../../../store-redis/tests/it/tls_server.rs"]
mod tls_server;

/// Runs `hookline <args>` (at most 30 s) and returns its exit status and standard error.
fn hookline(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(args)
        .envs(env.iter().copied())
        .env("HOOKLINE_ADMIN_KEY", ADMIN_KEY)
        .env_remove("HOOKLINE_STORE")
        .env_remove("HOOKLINE_STORE_CA_FILE")
        .env_remove("HOOKLINE_CONFIG")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the hookline binary");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("hookline {args:?} did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

/// `hookline serve --store <store> …` fails at start-up; returns its `error:` line.
fn serve_fails(store: &str, extra: &[&str]) -> String {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut args = vec!["serve", "--listen", &listen, "--store", store];
    args.extend_from_slice(extra);
    let (status, stderr) = hookline(&args, &[]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let first = stderr.lines().next().unwrap_or_default().to_owned();
    assert!(first.starts_with("error: "), "{stderr}");
    assert!(
        !stderr.contains("s3cret"),
        "the password is shown: {stderr}"
    );
    first
}

/// A store that answers: an event is accepted and delivered.
async fn delivers(srv: &Server) {
    let rx = Receiver::start().await;
    srv.seed("acct").await;
    srv.endpoint("acct", json!({"url": rx.url("/tls")})).await;
    let (s, body) = srv
        .post(
            &send_event("acct"),
            json!({"event": "rx.completed", "data": {"din": "02242903"}}),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    let got = rx.wait_for("/tls", 1, WAIT).await;
    assert_eq!(got[0].json()["data"]["din"], "02242903");
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_migrate_use_postgres_over_verified_tls() {
    let pg = tls_cluster::TlsPostgres::start();
    let ca = pg.pki.ca.display().to_string();
    let other = pg.pki.other_ca.display().to_string();

    // The CA file and no sslmode in the URL: verify-full.
    let url = pg.url("127.0.0.1", "");
    let (status, stderr) = hookline(
        &["migrate", "--store", &url],
        &[("HOOKLINE_STORE_CA_FILE", ca.as_str())],
    );
    assert!(status.success(), "{stderr}");
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let srv = Server::start_on_store(&url, dir, &["--store-ca-file", &ca]).await;
    delivers(&srv).await;
    drop(srv);

    // The CA in the URL, verify-full spelt out.
    let url = pg.url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let srv = Server::start_on_store(&url, dir, &[]).await;
    let (s, _) = srv.get("/readyz").await;
    assert_eq!(s, 200);
    drop(srv);

    // Another CA: the handshake fails, and the error line says where and why.
    let target = format!("127.0.0.1:{}", pg.port);
    let line = serve_fails(&pg.url("127.0.0.1", ""), &["--store-ca-file", &other]);
    assert!(
        line.starts_with(&format!(
            "error: could not connect to PostgreSQL at {target}: TLS handshake failed: "
        )),
        "{line}"
    );
    assert!(line.contains("UnknownIssuer"), "{line}");
    // verify-full without the CA: the public roots do not include it.
    let line = serve_fails(&pg.url("127.0.0.1", "sslmode=verify-full"), &[]);
    assert!(
        line.contains(&target) && line.contains("UnknownIssuer"),
        "{line}"
    );
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_uses_rediss_with_the_ca_file() {
    let redis = tls_server::TlsRedis::start();
    let ca = redis.pki.ca.display().to_string();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let srv = Server::start_on_store(&redis.url(), dir, &["--store-ca-file", &ca]).await;
    delivers(&srv).await;
    drop(srv);

    let target = format!("127.0.0.1:{}", redis.port);
    let other = redis.pki.other_ca.display().to_string();
    let line = serve_fails(&redis.url(), &["--store-ca-file", &other]);
    assert!(
        line.starts_with(&format!(
            "error: could not connect to Redis at {target}: TLS handshake failed: "
        )),
        "{line}"
    );
    let line = serve_fails(&redis.url(), &[]);
    assert!(
        line.contains(&target) && line.contains("UnknownIssuer"),
        "{line}"
    );
}

#[test]
fn an_unreachable_store_is_named_with_its_cause() {
    let port = free_port();
    let mut stores = Vec::new();
    if cfg!(feature = "postgres") {
        stores.push((
            format!("postgres://root:s3cret@127.0.0.1:{port}/test"),
            "PostgreSQL",
        ));
    }
    if cfg!(feature = "redis") {
        stores.push((format!("redis://:s3cret@127.0.0.1:{port}/"), "Redis"));
    }
    for (url, name) in &stores {
        let line = serve_fails(url, &[]);
        assert_eq!(
            line,
            format!("error: could not connect to {name} at 127.0.0.1:{port}: connection refused"),
        );
    }
    // A CA file is for servers with TLS; SQLite has none.
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("h.db").display());
    let line = serve_fails(&store, &["--store-ca-file", "/etc/hookline/ca.pem"]);
    assert!(line.contains("store_ca_file"), "{line}");
}
