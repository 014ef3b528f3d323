//! The fault matrix: misbehaving receivers, each recorded as the right attempt outcome with the
//! right next step.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::support::Server;

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// 200 after this many milliseconds.
    SlowOk(u64),
    /// A 200 status line and headers announcing 1000 bytes, 7 bytes of body, then a reset.
    ResetMidBody,
    /// A 302 to another URL.
    Redirect,
    /// 200 with a 64 MiB body.
    HugeBody,
    /// Not HTTP at all.
    Garbage,
}

/// A raw TCP receiver on 127.0.0.1 that misbehaves as told. Returns its port and a counter of
/// body bytes it managed to write (for the huge-body case).
async fn fault_server(fault: Fault) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let w = written.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let w = w.clone();
            tokio::spawn(async move { serve_fault(sock, fault, w).await });
        }
    });
    (port, written)
}

async fn read_request(sock: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let Ok(n) = sock.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return;
            }
        }
    }
}

async fn serve_fault(
    mut sock: TcpStream,
    fault: Fault,
    written: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    read_request(&mut sock).await;
    match fault {
        Fault::SlowOk(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
        }
        Fault::ResetMidBody => {
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npartial")
                .await;
            let _ = sock.flush().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            #[allow(deprecated)] // a reset is exactly what this case needs
            let _ = sock.set_linger(Some(Duration::ZERO));
            drop(sock); // RST
        }
        Fault::Redirect => {
            let _ = sock
                .write_all(b"HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:9/elsewhere\r\ncontent-length: 0\r\n\r\n")
                .await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Fault::HugeBody => {
            let size = 64 * 1024 * 1024;
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n");
            let _ = sock.write_all(head.as_bytes()).await;
            let chunk = vec![b'x'; 64 * 1024];
            let mut sent = 0;
            while sent < size {
                match sock.write_all(&chunk).await {
                    Ok(()) => {
                        sent += chunk.len();
                        written.store(sent, std::sync::atomic::Ordering::SeqCst);
                    }
                    Err(_) => break,
                }
            }
        }
        Fault::Garbage => {
            let _ = sock
                .write_all(b"SMTP READY\r\nthis is not http\r\n\r\n")
                .await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Sends one event to an endpoint at `url` and returns (delivery, its attempts) once the first
/// attempt is recorded.
async fn first_attempt(srv: &Server, url: &str) -> (Value, Value) {
    let (ep, _) = srv.endpoint("acct", json!({"url": url})).await;
    let (s, _) = srv
        .post(
            "/v1/accounts/acct/events",
            json!({"event": "rx.completed", "data": {"k": 1}}),
        )
        .await;
    assert_eq!(s, 202);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, ds) = srv
            .get(&format!("/v1/accounts/acct/endpoints/{ep}/deliveries"))
            .await;
        let d = ds["data"][0].clone();
        if d["attempts"].as_u64().unwrap_or(0) >= 1 {
            let id = d["id"].as_str().unwrap();
            let (_, a) = srv
                .get(&format!("/v1/accounts/acct/deliveries/{id}/attempts"))
                .await;
            // Newest first: the first attempt is the last row.
            let first = a["data"].as_array().unwrap().last().cloned().unwrap();
            return (d, first);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no attempt recorded for {url}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_retry_scheduled(d: &Value) {
    assert_eq!(d["status"], "pending", "{d}");
    assert_eq!(d["attempts"], 1, "{d}");
    let next =
        hookline_core::Timestamp::parse_rfc3339(d["nextAttemptAt"].as_str().unwrap()).unwrap();
    assert!(
        next > hookline_core::Timestamp::now(),
        "the retry is scheduled in the future: {d}"
    );
}

/// Server flags for the fault matrix: one long retry step, so a failed attempt leaves the
/// delivery pending with a future retry.
pub(crate) const FLAGS: &[&str] = &[
    "--request-timeout",
    "1s",
    "--lease",
    "5s",
    "--retry-schedule",
    "60s",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_is_recorded_with_the_right_outcome_and_next_step() {
    let srv = Server::start(FLAGS).await;
    fault_matrix(&srv).await;
}

/// Runs every fault against `srv` (started with [`FLAGS`], on any store).
pub(crate) async fn fault_matrix(srv: &Server) {
    srv.seed("acct").await;

    // Just under the timeout: delivered.
    let (port, _) = fault_server(Fault::SlowOk(600)).await;
    let (d, a) = first_attempt(srv, &format!("http://127.0.0.1:{port}/")).await;
    assert_eq!(a["statusCode"], 200, "{a}");
    assert_eq!(d["status"], "succeeded", "{d}");

    // Just over the timeout: a timed-out attempt, retry scheduled.
    let (port, _) = fault_server(Fault::SlowOk(1600)).await;
    let (d, a) = first_attempt(srv, &format!("http://127.0.0.1:{port}/")).await;
    assert!(a["statusCode"].is_null(), "{a}");
    assert!(a["error"].as_str().unwrap().contains("timed out"), "{a}");
    assert!(a["durationMs"].as_u64().unwrap() >= 900, "{a}");
    assert_retry_scheduled(&d);

    // Reset after the status line of a 200: the receiver's verdict arrived, so it counts as
    // delivered, with what was read of the body.
    let (port, _) = fault_server(Fault::ResetMidBody).await;
    let (d, a) = first_attempt(srv, &format!("http://127.0.0.1:{port}/")).await;
    assert_eq!(a["statusCode"], 200, "{a}");
    assert_eq!(a["responseBody"], "partial", "{a}");
    assert_eq!(d["status"], "succeeded", "{d}");

    // A redirect is not followed: a failed attempt with its 3xx, retry scheduled.
    let (port, _) = fault_server(Fault::Redirect).await;
    let (d, a) = first_attempt(srv, &format!("http://127.0.0.1:{port}/")).await;
    assert_eq!(a["statusCode"], 302, "{a}");
    assert_retry_scheduled(&d);

    // A huge 2xx body: delivered, only the 4 KiB excerpt is read, not the whole body.
    let (port, written) = fault_server(Fault::HugeBody).await;
    let (d, a) = first_attempt(srv, &format!("http://127.0.0.1:{port}/")).await;
    assert_eq!(a["statusCode"], 200, "{a}");
    assert_eq!(
        a["responseBody"].as_str().unwrap().len(),
        4096,
        "excerpt only"
    );
    assert_eq!(d["status"], "succeeded", "{d}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = written.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        sent < 32 * 1024 * 1024,
        "the client stopped reading early ({sent} bytes written)"
    );

    // Not HTTP: a transport error, retry scheduled.
    let (port, _) = fault_server(Fault::Garbage).await;
    let (d, a) = first_attempt(srv, &format!("http://127.0.0.1:{port}/")).await;
    assert!(a["statusCode"].is_null(), "{a}");
    assert!(!a["error"].as_str().unwrap().is_empty(), "{a}");
    assert_retry_scheduled(&d);

    // TLS to a plain-HTTP port: a TLS error, retry scheduled.
    let plain = crate::support::Receiver::start().await;
    let (d, a) = first_attempt(srv, &format!("https://{}/", plain.addr)).await;
    assert!(a["statusCode"].is_null(), "{a}");
    assert!(
        a["error"]
            .as_str()
            .unwrap()
            .starts_with("TLS handshake failed"),
        "{a}"
    );
    assert_retry_scheduled(&d);

    // Connection refused: a transport error, retry scheduled.
    let port = crate::support::free_port();
    let (d, a) = first_attempt(srv, &format!("http://127.0.0.1:{port}/")).await;
    assert!(a["statusCode"].is_null(), "{a}");
    assert_retry_scheduled(&d);
}
