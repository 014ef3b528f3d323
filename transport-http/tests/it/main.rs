//! Integration tests against real servers on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use bytes::Bytes;
use futures_util::StreamExt;
use hookline_core::model::RESPONSE_EXCERPT_BYTES;
use hookline_core::transport::{DeliveryRequest, DeliveryResponse, Transport, TransportError};
use hookline_transport_http::{HttpConfig, HttpTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower_service::Service;

const HUGE: usize = 10 * 1024 * 1024;

fn loopback_config() -> HttpConfig {
    HttpConfig::default()
        .allow_http(true)
        .allow_networks(vec!["127.0.0.0/8".parse().unwrap()])
}

fn transport(config: HttpConfig) -> HttpTransport {
    HttpTransport::new(config).expect("transport builds")
}

fn request(url: impl Into<String>, timeout: Duration) -> DeliveryRequest {
    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", "msg_123".parse().unwrap());
    headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    DeliveryRequest {
        url: url.into(),
        headers,
        body: Bytes::from_static(br#"{"hello":"world"}"#),
        timeout,
    }
}

async fn send(
    t: &HttpTransport,
    url: impl Into<String>,
) -> Result<DeliveryResponse, TransportError> {
    t.send(request(url, Duration::from_secs(10))).await
}

async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

/// A router whose every route counts hits and answers 200 "ok".
fn counting_router(hits: Arc<AtomicUsize>) -> Router {
    Router::new().fallback(move || {
        let hits = hits.clone();
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            "ok"
        }
    })
}

/// A raw TCP server that reads the request head and then writes `reply` and closes.
async fn raw_server(reply: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = sock.write_all(reply).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn success_returns_status_headers_and_body() {
    let router = Router::new().route(
        "/hook",
        post(|headers: HeaderMap, body: Bytes| async move {
            let id = headers
                .get("webhook-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_owned();
            let mut out = b"got ".to_vec();
            out.extend_from_slice(&body);
            (StatusCode::ACCEPTED, [("x-received-id", id)], out)
        }),
    );
    let addr = serve(router).await;
    let t = transport(loopback_config());
    let resp = send(&t, format!("http://{addr}/hook")).await.unwrap();
    assert_eq!(resp.status, 202);
    assert_eq!(resp.headers["x-received-id"], "msg_123");
    assert_eq!(&resp.body[..], br#"got {"hello":"world"}"#);
}

#[tokio::test]
async fn server_error_is_a_response() {
    let router = Router::new().route(
        "/hook",
        post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
    );
    let addr = serve(router).await;
    let t = transport(loopback_config());
    let resp = send(&t, format!("http://{addr}/hook")).await.unwrap();
    assert_eq!(resp.status, 500);
    assert_eq!(&resp.body[..], b"boom");
}

#[tokio::test]
async fn redirect_is_returned_not_followed() {
    let target_hits = Arc::new(AtomicUsize::new(0));
    let hits = target_hits.clone();
    let router = Router::new()
        .route(
            "/start",
            post(|| async { (StatusCode::FOUND, [(header::LOCATION, "/target")], "moved") }),
        )
        .route(
            "/target",
            get({
                let hits = hits.clone();
                move || async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    "target"
                }
            })
            .post(move || async move {
                hits.fetch_add(1, Ordering::SeqCst);
                "target"
            }),
        );
    let addr = serve(router).await;
    let t = transport(loopback_config());
    let resp = send(&t, format!("http://{addr}/start")).await.unwrap();
    assert_eq!(resp.status, 302);
    assert_eq!(resp.headers[header::LOCATION], "/target");
    assert_eq!(&resp.body[..], b"moved");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        target_hits.load(Ordering::SeqCst),
        0,
        "redirect was followed"
    );
}

#[tokio::test]
async fn huge_body_is_cut_to_the_excerpt() {
    let body: Vec<u8> = (0..HUGE).map(|i| (i % 251) as u8).collect();
    let expected = body[..RESPONSE_EXCERPT_BYTES].to_vec();
    let router = Router::new().route("/hook", post(move || async move { body.clone() }));
    let addr = serve(router).await;
    let t = transport(loopback_config());
    let resp = send(&t, format!("http://{addr}/hook")).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), RESPONSE_EXCERPT_BYTES);
    assert_eq!(&resp.body[..], &expected[..]);
}

#[tokio::test]
async fn endless_body_is_not_read_to_the_end() {
    // A body that never ends: reading it to the end would run into the timeout.
    let router = Router::new().route(
        "/hook",
        post(|| async {
            let chunks = futures_util::stream::repeat_with(|| {
                Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 1000]))
            });
            Body::from_stream(chunks)
        }),
    );
    let addr = serve(router).await;
    let t = transport(loopback_config());
    let resp = t
        .send(request(
            format!("http://{addr}/hook"),
            Duration::from_secs(5),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), RESPONSE_EXCERPT_BYTES);
    assert!(resp.body.iter().all(|&b| b == b'x'));
}

#[tokio::test]
async fn slow_handler_times_out() {
    let router = Router::new().route(
        "/hook",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late"
        }),
    );
    let addr = serve(router).await;
    let t = transport(loopback_config());
    let started = Instant::now();
    let err = t
        .send(request(
            format!("http://{addr}/hook"),
            Duration::from_millis(300),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Timeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn stalled_body_times_out() {
    // Headers and a few bytes arrive, then the body stalls forever.
    let router = Router::new().route(
        "/hook",
        post(|| async {
            let chunks = futures_util::stream::once(async {
                Ok::<_, std::io::Error>(Bytes::from_static(b"start"))
            })
            .chain(futures_util::stream::pending());
            Body::from_stream(chunks)
        }),
    );
    let addr = serve(router).await;
    let t = transport(loopback_config());
    let started = Instant::now();
    let err = t
        .send(request(
            format!("http://{addr}/hook"),
            Duration::from_millis(300),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Timeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn connection_refused_is_connect() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let t = transport(loopback_config());
    let err = send(&t, format!("http://{addr}/hook")).await.unwrap_err();
    assert!(matches!(err, TransportError::Connect(_)), "{err:?}");
}

#[tokio::test]
async fn loopback_literal_is_blocked_without_allow_list() {
    let hits = Arc::new(AtomicUsize::new(0));
    let addr = serve(counting_router(hits.clone())).await;

    let blocked = transport(HttpConfig::default().allow_http(true));
    let err = send(&blocked, format!("http://{addr}/hook"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TransportError::Blocked(host) if host == "127.0.0.1"),
        "{err:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    let allowed = transport(loopback_config());
    let resp = send(&allowed, format!("http://{addr}/hook")).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn loopback_ipv6_literals_are_blocked() {
    let t = transport(HttpConfig::default().allow_http(true));
    for (url, host) in [
        ("http://[::1]:9/hook", "[::1]"),
        ("http://[::ffff:127.0.0.1]:9/hook", "[::ffff:7f00:1]"),
        ("https://[::]/hook", "[::]"),
    ] {
        let err = send(&t, url).await.unwrap_err();
        assert!(
            matches!(&err, TransportError::Blocked(h) if h == host),
            "{url}: {err:?}"
        );
    }
}

#[tokio::test]
async fn obfuscated_loopback_literal_is_blocked() {
    // The WHATWG URL parser turns these into 127.0.0.1; they must not slip past the check.
    let t = transport(HttpConfig::default().allow_http(true));
    for url in [
        "http://2130706433:9/hook",
        "http://0x7f.1:9/hook",
        "http://127.1:9/hook",
    ] {
        let err = send(&t, url).await.unwrap_err();
        assert!(
            matches!(&err, TransportError::Blocked(h) if h == "127.0.0.1"),
            "{url}: {err:?}"
        );
    }
}

#[tokio::test]
async fn localhost_name_is_blocked_by_the_resolver() {
    let hits = Arc::new(AtomicUsize::new(0));
    let addr = serve(counting_router(hits.clone())).await;
    let url = format!("http://localhost:{}/hook", addr.port());

    let blocked = transport(HttpConfig::default().allow_http(true));
    let err = send(&blocked, url.clone()).await.unwrap_err();
    assert!(
        matches!(&err, TransportError::Blocked(host) if host == "localhost"),
        "{err:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    let allowed = transport(loopback_config());
    let resp = send(&allowed, url).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn http_is_invalid_unless_allowed() {
    let hits = Arc::new(AtomicUsize::new(0));
    let addr = serve(counting_router(hits.clone())).await;
    let t = transport(HttpConfig::default().allow_networks(vec!["127.0.0.0/8".parse().unwrap()]));
    let err = send(&t, format!("http://{addr}/hook")).await.unwrap_err();
    assert!(matches!(err, TransportError::InvalidUrl(_)), "{err:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn malformed_urls_are_invalid() {
    let t = transport(loopback_config());
    for url in [
        "not a url",
        "ftp://127.0.0.1/file",
        "file:///etc/passwd",
        "http://",
        "",
    ] {
        let err = send(&t, url).await.unwrap_err();
        assert!(
            matches!(err, TransportError::InvalidUrl(_)),
            "{url:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn https_to_plain_http_server_is_a_tls_error() {
    let hits = Arc::new(AtomicUsize::new(0));
    let addr = serve(counting_router(hits.clone())).await;
    let t = transport(loopback_config());
    let err = send(&t, format!("https://{addr}/hook")).await.unwrap_err();
    assert!(matches!(err, TransportError::Tls(_)), "{}", err.describe());
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn garbage_reply_is_a_connect_error() {
    let addr = raw_server(b"THIS IS NOT HTTP\r\n\r\nat all").await;
    let t = transport(loopback_config());
    let err = send(&t, format!("http://{addr}/hook")).await.unwrap_err();
    assert!(matches!(err, TransportError::Connect(_)), "{err:?}");
}

#[tokio::test]
async fn connection_closed_mid_body_keeps_the_partial_response() {
    let addr = raw_server(
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 100000\r\nretry-after: 7\r\n\r\npartial",
    )
    .await;
    let t = transport(loopback_config());
    let resp = send(&t, format!("http://{addr}/hook")).await.unwrap();
    assert_eq!(resp.status, 503);
    assert_eq!(resp.headers["retry-after"], "7");
    assert_eq!(&resp.body[..], b"partial");
}

#[tokio::test]
async fn works_as_a_boxed_transport() {
    fn assert_transport<T: Transport>(_: &T) {}

    let addr = serve(counting_router(Arc::new(AtomicUsize::new(0)))).await;
    let t = transport(loopback_config());
    assert_transport(&t);
    let mut boxed = hookline_core::transport::boxed(t);
    futures_util::future::poll_fn(|cx| boxed.poll_ready(cx))
        .await
        .unwrap();
    let resp = boxed
        .call(request(format!("http://{addr}/x"), Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(&resp.body[..], b"ok");
}

#[tokio::test]
async fn pooled_client_serves_many_requests() {
    let hits = Arc::new(AtomicUsize::new(0));
    let addr = serve(counting_router(hits.clone())).await;
    let t = transport(loopback_config());
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let mut t = t.clone();
        let url = format!("http://{addr}/x");
        tasks.push(tokio::spawn(async move {
            t.call(request(url, Duration::from_secs(5))).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().status, 200);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 20);
}
