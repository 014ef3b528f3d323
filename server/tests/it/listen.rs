//! `hookline listen`: raw output, verification, `--forward-to` and `--events`, against a local app.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse as _;
use hookline_core::Timestamp;
use hookline_core::signing::{Secret, SignInput, Signer as _, SignerSet};

use crate::support::KillOnDrop;

/// What the local app received.
#[derive(Debug, Clone)]
struct AppGot {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A local app on 127.0.0.1 that records requests and answers with the status in the request's
/// `x-answer` header (200 without it) and the body `app saw <webhook-id>`.
async fn start_app() -> (String, Arc<Mutex<Vec<AppGot>>>) {
    let got: Arc<Mutex<Vec<AppGot>>> = Arc::default();
    async fn handle(
        State(got): State<Arc<Mutex<Vec<AppGot>>>>,
        method: Method,
        uri: axum::http::Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> axum::response::Response {
        let status = headers
            .get("x-answer")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(200);
        let id = headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        got.lock().unwrap().push(AppGot {
            method,
            path: uri.path().to_owned(),
            headers,
            body,
        });
        (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "text/plain")],
            format!("app saw {id}"),
        )
            .into_response()
    }
    let app = Router::new().fallback(handle).with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hooks/in"), got)
}

/// A running `hookline listen` and everything it printed so far.
struct Listener {
    base: String,
    out: Arc<Mutex<Vec<String>>>,
    _child: KillOnDrop,
}

impl Listener {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hookline"))
            .arg("listen")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("HOOKLINE_LISTEN_SECRET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start hookline listen");
        let stdout = child.stdout.take().unwrap();
        let child = KillOnDrop(child);
        let out: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = out.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let base = loop {
            let found = out.lock().unwrap().iter().find_map(|l| {
                l.strip_prefix("hookline listen: waiting for webhooks on ")
                    .and_then(|rest| rest.split('/').nth(2))
                    .map(|host| format!("http://{host}"))
            });
            if let Some(base) = found {
                break base;
            }
            assert!(
                Instant::now() < deadline,
                "hookline listen did not start: {:?}",
                out.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Self {
            base,
            out,
            _child: child,
        }
    }

    fn stdout(&self) -> String {
        self.out.lock().unwrap().join("\n")
    }

    /// Waits until standard output has a line containing `needle`.
    async fn wait_for_line(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.stdout().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no `{needle}` in the output:\n{}",
                self.stdout()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Sends `body` to `url` signed with `secret` as Hookline signs it, plus `extra` headers.
async fn send_signed(
    url: &str,
    secret: &Secret,
    id: &str,
    body: &str,
    extra: &[(&str, &str)],
) -> (u16, String) {
    let mut headers = HeaderMap::new();
    SignerSet::default().sign(
        &SignInput {
            msg_id: id,
            timestamp: Timestamp::now(),
            body: body.as_bytes(),
            secrets: &[secret],
        },
        &mut headers,
    );
    headers.insert("content-type", "application/json".parse().unwrap());
    for (k, v) in extra {
        headers.insert(
            axum::http::HeaderName::try_from(*k).unwrap(),
            v.parse().unwrap(),
        );
    }
    let res = reqwest::Client::new()
        .post(url)
        .headers(headers)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}

/// A body whose key order and spacing a JSON re-serialisation would change.
fn body(id: &str, event: &str) -> String {
    format!(
        "{{\"id\":\"{id}\", \"event\":\"{event}\",\"queueId\":\"q_1\",  \"data\":{{\"z\":1,\"a\":[2,  3]}},\"attempt\":{{\"number\":1}}}}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_verified_events_byte_for_byte_and_relays_the_apps_answer() {
    let (app_url, app) = start_app().await;
    let secret = Secret::generate();
    let listen = Listener::start(&[
        "--secret",
        &secret.expose(),
        "--forward-to",
        &app_url,
        "--events",
        "rx.completed,rx.failed",
    ]);
    let url = format!("{}/webhooks", listen.base);

    // A verified event of a wanted type: the app gets exactly these bytes and headers, and its
    // status and body are the answer.
    let first = body("evt_1", "rx.completed");
    let (status, text) = send_signed(&url, &secret, "evt_1", &first, &[("x-answer", "202")]).await;
    assert_eq!(status, 202, "{text}");
    assert_eq!(text, "app saw evt_1");
    {
        let got = app.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].method, Method::POST);
        assert_eq!(
            got[0].path, "/hooks/in",
            "forwarded to exactly --forward-to"
        );
        assert_eq!(got[0].body.as_ref(), first.as_bytes(), "the exact bytes");
        assert_eq!(got[0].headers["webhook-id"], "evt_1");
        assert_eq!(got[0].headers["content-type"], "application/json");
        let raw = got[0].headers["x-hookline-signature"].to_str().unwrap();
        hookline_core::signing::verify_raw_body(&secret, raw, &got[0].body).unwrap();
        hookline_core::signing::verify_standard(
            &secret,
            &got[0].headers,
            &got[0].body,
            Timestamp::now(),
            hookline_core::signing::DEFAULT_TOLERANCE,
        )
        .unwrap();
    }
    // The app's failure status is relayed too, so Hookline would retry.
    let second = body("evt_2", "rx.failed");
    let (status, text) = send_signed(&url, &secret, "evt_2", &second, &[("x-answer", "500")]).await;
    assert_eq!(status, 500, "{text}");
    assert_eq!(app.lock().unwrap().len(), 2);

    // A request signed with another secret is refused and not forwarded.
    let forged = body("evt_3", "rx.completed");
    let (status, _) = send_signed(&url, &Secret::generate(), "evt_3", &forged, &[]).await;
    assert_eq!(status, 401);
    // Unsigned, too.
    let res = reqwest::Client::new()
        .post(&url)
        .body(body("evt_4", "rx.completed"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert_eq!(app.lock().unwrap().len(), 2, "nothing unverified forwarded");

    // An event type outside --events is acknowledged, not forwarded and not printed.
    let skipped = body("evt_5", "rx.excepted");
    let (status, _) = send_signed(&url, &secret, "evt_5", &skipped, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(app.lock().unwrap().len(), 2, "filtered event not forwarded");

    // Standard output shows each printed body exactly as received.
    listen.wait_for_line("-> POST").await;
    listen.wait_for_line("evt_2: 500").await;
    let out = listen.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.contains(&first.as_str()),
        "raw body not printed:\n{out}"
    );
    assert!(
        lines.contains(&second.as_str()),
        "raw body not printed:\n{out}"
    );
    assert!(
        out.contains(
            "rx.completed evt_1 attempt 1  standard-webhooks: ok  x-hookline-signature: ok"
        ),
        "{out}"
    );
    assert!(
        out.contains("rx.completed evt_3 attempt 1  standard-webhooks: FAILED"),
        "{out}"
    );
    assert!(!out.contains("evt_5"), "filtered event printed:\n{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_app_answers_502_and_pretty_prints_on_request() {
    // A port nothing listens on.
    let dead = format!("http://127.0.0.1:{}/hooks", crate::support::free_port());
    let secret = Secret::generate();
    let listen = Listener::start(&[
        "--secret",
        &secret.expose(),
        "--forward-to",
        &dead,
        "--pretty",
    ]);
    let url = format!("{}/webhooks", listen.base);
    let (status, text) =
        send_signed(&url, &secret, "evt_9", &body("evt_9", "rx.completed"), &[]).await;
    assert_eq!(status, 502, "{text}");
    assert!(text.contains("forwarding to"), "{text}");
    listen.wait_for_line("evt_9: FAILED").await;
    let out = listen.stdout();
    assert!(
        out.contains(
            "{\n  \"id\": \"evt_9\",\n  \"event\": \"rx.completed\",\n  \"queueId\": \"q_1\","
        ),
        "not indented in the order received:\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_forwarding_answers_the_chosen_status() {
    let secret = Secret::generate();
    let listen = Listener::start(&["--secret", &secret.expose(), "--status", "204"]);
    let url = format!("{}/anything", listen.base);
    let sent = body("evt_7", "rx.resolved");
    let (status, _) = send_signed(&url, &secret, "evt_7", &sent, &[]).await;
    assert_eq!(status, 204);
    listen.wait_for_line(&sent).await;
}
