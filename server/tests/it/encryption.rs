//! Encryption at rest on every store: what the store holds (read raw: the SQLite file's bytes,
//! every PostgreSQL row as text, every Redis value), signed deliveries, masked header values,
//! starting without the key or with the wrong one, and `hookline rekey` with a rotated key.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookline_core::Timestamp;
use hookline_core::sealing::Keyring;
use hookline_core::signing::{DEFAULT_TOLERANCE, Secret, verify_raw_body, verify_standard};
use serde_json::json;

use crate::support::{Receiver, Server};

const TOKEN: &str = "Bearer tok_9f3e61c0ffee_receiver_credential";
const MARKER: &str = "glucose-reading-7731-zz";
const WAIT: Duration = Duration::from_secs(20);

fn key(id: &str) -> String {
    Keyring::generate(id).expect("a key").1
}

/// Everything a store holds, as text, read past Hookline.
type Dump = Box<dyn Fn() -> futures_util::future::BoxFuture<'static, String> + Send + Sync>;

/// Runs `hookline <args>` on `store` with `env` to its end (at most 30 s); returns whether it
/// succeeded and what it wrote on standard error and output.
fn run_to_end(args: &[&str], store: &str, env: &[(&str, &str)]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(args)
        .args(["--store", store])
        .env_remove("HOOKLINE_ENCRYPTION_KEY")
        .env_remove("HOOKLINE_ENCRYPT_PAYLOADS")
        .env("HOOKLINE_ADMIN_KEY", crate::support::ADMIN_KEY)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the hookline binary");
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hookline {args:?} did not end within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    (out.status.success(), text)
}

/// Sends one event with the marker and checks its delivery: signed with `secret`, the header
/// and the data in the clear for the receiver.
async fn deliver_one(srv: &Server, rx: &Receiver, secret: &str, n: usize) -> String {
    let (s, created) = srv
        .post(
            "/v1/accounts/clinic/events",
            json!({"event": "rx.completed", "data": {"reading": MARKER, "n": n}}),
        )
        .await;
    assert_eq!(s, 202, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let got = rx.wait_for("/hook", n, WAIT).await;
    let r = &got[n - 1];
    let secret = Secret::parse(secret).unwrap();
    verify_standard(
        &secret,
        &r.headers,
        &r.body,
        Timestamp::now(),
        DEFAULT_TOLERANCE,
    )
    .expect("Standard Webhooks signature");
    verify_raw_body(
        &secret,
        r.headers["x-hookline-signature"].to_str().unwrap(),
        &r.body,
    )
    .expect("raw-body signature");
    assert_eq!(r.headers["authorization"], TOKEN);
    assert_eq!(r.json()["data"]["reading"], MARKER);
    id
}

fn assert_sealed(dump: &str, secret: &str, what: &str) {
    assert!(
        dump.contains("hk1:") && dump.contains("clinic") && dump.contains("rx.completed"),
        "{what}: the dump shows sealed values, and ids and types in the clear"
    );
    let key_b64 = secret.strip_prefix("whsec_").unwrap();
    for (plain, name) in [
        (key_b64, "the signing secret"),
        (TOKEN, "the Authorization header"),
        ("tok_9f3e61c0ffee", "part of the header"),
        (MARKER, "the event data"),
    ] {
        assert!(
            !dump.contains(plain),
            "{what}: {name} is stored in the clear"
        );
    }
}

/// The whole story on one store. `every_byte_is_live`: the dump shows only current values
/// (not a database file, whose free pages can keep values replaced by rekey until `VACUUM`).
async fn encrypted_store(
    store: &str,
    dir: Arc<tempfile::TempDir>,
    dump: Dump,
    every_byte_is_live: bool,
) {
    let rx = Receiver::start().await;
    let k1 = key("k1");
    let srv = Server::start_with_env(
        store,
        dir.clone(),
        &["--encrypt-payloads"],
        &[("HOOKLINE_ENCRYPTION_KEY", &k1)],
    )
    .await;
    srv.seed("clinic").await;
    let (ep, secret) = srv
        .endpoint(
            "clinic",
            json!({"url": rx.url("/hook"), "headers": {"Authorization": TOKEN}}),
        )
        .await;
    let event = deliver_one(&srv, &rx, &secret, 1).await;

    // The API shows the header masked, everywhere; the event's data as sent.
    let (_, got) = srv
        .get(&format!("/v1/accounts/clinic/endpoints/{ep}"))
        .await;
    assert_eq!(got["headers"]["authorization"], "••••tial", "{got}");
    let (_, list) = srv.get("/v1/accounts/clinic/endpoints").await;
    assert!(!list.to_string().contains(TOKEN), "{list}");
    let (_, ev) = srv
        .get(&format!("/v1/accounts/clinic/events/{event}"))
        .await;
    assert_eq!(ev["data"]["reading"], MARKER, "{ev}");
    // Sending the masked value back keeps the header.
    let (s, patched) = srv
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/accounts/clinic/endpoints/{ep}"),
            Some(json!({"headers": got["headers"].clone(), "description": "kept"})),
        )
        .await;
    assert_eq!(s, 200, "{patched}");

    let raw = dump().await;
    assert_sealed(&raw, &secret, "with key k1");
    assert!(raw.contains("hk1:k1:"));
    drop(srv);

    // Without the key, or with a key that is not the one, the server does not start.
    let (ok, out) = run_to_end(&["serve", "--listen", "127.0.0.1:0"], store, &[]);
    assert!(!ok, "started without the key: {out}");
    assert!(
        out.contains("the store is encrypted") && out.contains("HOOKLINE_ENCRYPTION_KEY"),
        "{out}"
    );
    let other = key("k1");
    let (ok, out) = run_to_end(
        &["serve", "--listen", "127.0.0.1:0"],
        store,
        &[("HOOKLINE_ENCRYPTION_KEY", &other)],
    );
    assert!(!ok, "started with the wrong key: {out}");
    assert!(out.contains("is not the key that sealed"), "{out}");

    // Rotation: k2 seals, k1 still opens; rekey; then k1 can go.
    let k2 = key("k2");
    let rotated = format!("{k2},{k1}");
    let (ok, out) = run_to_end(
        &["rekey", "--quiet"],
        store,
        &[("HOOKLINE_ENCRYPTION_KEY", &rotated)],
    );
    assert!(ok, "rekey failed: {out}");
    assert!(out.contains("2 sealed again with key `k2`"), "{out}");
    let raw = dump().await;
    assert_sealed(&raw, &secret, "after rekey");
    if every_byte_is_live {
        assert!(
            !raw.contains("hk1:k1:"),
            "nothing sealed with k1 is left after rekey"
        );
    }
    assert!(raw.contains("hk1:k2:"));

    let (ok, out) = run_to_end(
        &["serve", "--listen", "127.0.0.1:0"],
        store,
        &[("HOOKLINE_ENCRYPTION_KEY", &k1)],
    );
    assert!(!ok, "started with the retired key only: {out}");
    assert!(out.contains("sealed with key `k2`"), "{out}");

    let srv = Server::start_with_env(
        store,
        dir,
        &["--encrypt-payloads"],
        &[("HOOKLINE_ENCRYPTION_KEY", &k2)],
    )
    .await;
    deliver_one(&srv, &rx, &secret, 2).await;
    let (_, ev) = srv
        .get(&format!("/v1/accounts/clinic/events/{event}"))
        .await;
    assert_eq!(ev["data"]["reading"], MARKER, "{ev}");
    let (_, got) = srv
        .get(&format!("/v1/accounts/clinic/endpoints/{ep}"))
        .await;
    assert_eq!(got["description"], "kept");
    assert_sealed(&dump().await, &secret, "with key k2 only");
}

/// Printable runs of 4 bytes or more, as `strings` shows them.
fn strings(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for &b in bytes {
        if (0x20..0x7f).contains(&b) {
            run.push(b as char);
        } else {
            if run.len() >= 4 {
                out.push_str(&run);
                out.push('\n');
            }
            run.clear();
        }
    }
    out.push_str(&run);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_holds_no_secret_header_or_payload_in_the_clear() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let path = dir.path().join("hookline.db");
    let store = format!("sqlite://{}", path.display());
    let dump: Dump = Box::new(move || {
        let path = path.clone();
        Box::pin(async move {
            // The database file and its write-ahead log, as `strings` reads them.
            let mut all = String::new();
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                if let Ok(bytes) = std::fs::read(&p) {
                    all.push_str(&strings(&bytes));
                }
            }
            all
        })
    });
    encrypted_store(&store, dir, dump, false).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_holds_no_secret_header_or_payload_in_the_clear() {
    use hookline_store_postgres::sqlx::{self, Connection as _, Row as _};

    let db = crate::postgres::FreshDatabase::create().await;
    let url = db.url();
    let dump: Dump = Box::new({
        let url = url.clone();
        move || {
            let url = url.clone();
            Box::pin(async move {
                // Every row of every table, as psql would print it.
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables \
                     WHERE table_schema = 'public'",
                )
                .fetch_all(&mut conn)
                .await
                .unwrap();
                assert!(tables.iter().any(|t| t == "endpoints"), "{tables:?}");
                let mut all = String::new();
                for t in tables {
                    let rows = sqlx::query(&format!("SELECT row_to_json(x)::text AS r FROM {t} x"))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                    for r in rows {
                        all.push_str(&r.get::<String, _>("r"));
                        all.push('\n');
                    }
                }
                let _ = conn.close().await;
                all
            })
        }
    });
    let dir = Arc::new(tempfile::tempdir().unwrap());
    encrypted_store(&url, dir, dump, true).await;
    drop(db);
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_no_secret_header_or_payload_in_the_clear() {
    use hookline_store_redis::redis;

    let fresh = crate::redis::FreshPrefix::create();
    let url = fresh.url();
    let base = fresh.base.clone();
    let prefix = fresh.prefix.clone();
    let dump: Dump = Box::new(move || {
        let (base, prefix) = (base.clone(), prefix.clone());
        Box::pin(async move {
            // Every value under the prefix, as redis-cli would show it.
            let client = redis::Client::open(base.as_str()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query_async(&mut conn)
                .await
                .unwrap();
            assert!(keys.len() > 5, "{keys:?}");
            let mut all = String::new();
            for k in keys {
                let kind: String = redis::cmd("TYPE")
                    .arg(&k)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                let values: Vec<String> = match kind.as_str() {
                    "string" => vec![
                        redis::cmd("GET")
                            .arg(&k)
                            .query_async(&mut conn)
                            .await
                            .unwrap(),
                    ],
                    "hash" => redis::cmd("HGETALL")
                        .arg(&k)
                        .query_async(&mut conn)
                        .await
                        .unwrap(),
                    "set" => redis::cmd("SMEMBERS")
                        .arg(&k)
                        .query_async(&mut conn)
                        .await
                        .unwrap(),
                    "zset" => redis::cmd("ZRANGE")
                        .arg(&k)
                        .arg(0)
                        .arg(-1)
                        .query_async(&mut conn)
                        .await
                        .unwrap(),
                    "list" => redis::cmd("LRANGE")
                        .arg(&k)
                        .arg(0)
                        .arg(-1)
                        .query_async(&mut conn)
                        .await
                        .unwrap(),
                    other => panic!("unexpected type {other} of {k}"),
                };
                all.push_str(&k);
                all.push('\n');
                for v in values {
                    all.push_str(&v);
                    all.push('\n');
                }
            }
            all
        })
    });
    let dir = Arc::new(tempfile::tempdir().unwrap());
    encrypted_store(&url, dir, dump, true).await;
    drop(fresh);
}
