//! The dashboard in a real browser: Debian's `chromium` driven through `chromedriver`
//! (WebDriver, fantoccini) against a real `hookline serve` on SQLite and a receiver on
//! 127.0.0.1. `cargo xtask test` installs both packages (`cargo xtask browser`); without them
//! this test fails saying how to install them.
//!
//! Screenshots of the main pages go to `$HOOKLINE_SCREENSHOTS` (default: a `hookline-screenshots`
//! folder in the temp dir); `docs/screenshots/` holds a few of them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use fantoccini::{Client, ClientBuilder, Locator};
use hookline_core::Timestamp;
use hookline_core::signing::{DEFAULT_TOLERANCE, Secret, verify_standard};
use serde_json::json;

use crate::support::{ADMIN_KEY, Server, free_port};

const WAIT: Duration = Duration::from_secs(30);

/// `chromedriver` on a free port, ended on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

async fn driver() -> Driver {
    let (Some(_), Some(chromedriver)) = (which("chromium"), which("chromedriver")) else {
        panic!(
            "the browser test needs Debian's chromium and chromedriver: run `cargo xtask browser` \
             (as root) or `apt-get install -y chromium chromium-driver`"
        );
    };
    let port = free_port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Driver { child, url }
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": which("chromium").unwrap(),
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a chromium session through chromedriver")
}

/// A receiver that records requests and fails on `/fail` while told to.
#[derive(Clone, Default)]
struct Rx {
    got: Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>,
    failing: Arc<Mutex<bool>>,
}

async fn record(
    State(rx): State<Rx>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    rx.got
        .lock()
        .unwrap()
        .push((uri.path().to_owned(), headers, body));
    if uri.path() == "/fail" && *rx.failing.lock().unwrap() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "receiver down for maintenance".into(),
        )
    } else {
        (StatusCode::OK, "ok".into())
    }
}

impl Rx {
    async fn start() -> (Self, SocketAddr) {
        let rx = Self::default();
        let app = Router::new().fallback(record).with_state(rx.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (rx, addr)
    }

    fn on(&self, path: &str) -> Vec<(HeaderMap, Bytes)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, h, b)| (h.clone(), b.clone()))
            .collect()
    }
}

fn shots_dir() -> PathBuf {
    let dir = std::env::var_os("HOOKLINE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("hookline-screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(shots_dir().join(format!("{name}.png")), png).unwrap();
}

async fn fill(c: &Client, css: &str, text: &str) {
    let el = c
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

/// Clicks `css`, waiting for it while a navigation is still loading the page.
async fn click(c: &Client, css: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let clicked = match c.find(Locator::Css(css)).await {
            Ok(el) => el.click().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match clicked {
            Ok(()) => return,
            Err(e) if Instant::now() >= deadline => {
                panic!("{css}: {e}; the page says:\n{}", text(c).await)
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The page's text; retried while a navigation replaces the page under it.
async fn text(c: &Client) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        match c.find(Locator::Css("body")).await {
            Ok(body) => match body.text().await {
                Ok(t) => return t,
                Err(e) => assert!(Instant::now() < deadline, "reading the page: {e}"),
            },
            Err(e) => assert!(Instant::now() < deadline, "finding the page: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reloads until the page's text satisfies `f`.
async fn reload_until(c: &Client, what: &str, f: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let t = text(c).await;
        if f(&t) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "waiting for {what}; the page says:\n{t}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.refresh().await.unwrap();
    }
}

async fn path(c: &Client) -> String {
    c.current_url().await.unwrap().path().to_owned()
}

/// Waits until the browser is at `want` (a click's navigation may still be under way).
async fn wait_path(c: &Client, want: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let at = path(c).await;
        if at == want {
            return;
        }
        assert!(Instant::now() < deadline, "at {at}, not {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the page (without reloading it) contains `needle`.
async fn wait_text(c: &Client, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let t = text(c).await;
        if t.contains(needle) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "waiting for {needle:?}; the page says:\n{t}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_portal_work_in_chromium() {
    let driver = driver().await;
    let profile = tempfile::tempdir().unwrap();
    let (rx, rx_addr) = Rx::start().await;
    // One attempt, then an hour: what happens after a failure is the retry button's doing.
    let srv = Server::start(&["--retry-schedule", "1h"]).await;
    let c = browser(&driver, profile.path()).await;
    let ui = |p: &str| format!("{}{p}", srv.base);

    // The operator signs in with the admin key in a form.
    c.goto(&ui("/ui/")).await.unwrap();
    wait_path(&c, "/ui/login").await;
    shot(&c, "sign-in").await;
    fill(&c, "#key", ADMIN_KEY).await;
    click(&c, "form.stack button[type=submit]").await;
    wait_path(&c, "/ui/accounts").await;
    wait_text(&c, "No accounts yet").await;

    // ...creates an account, a site and an event type.
    fill(&c, "#account-id", "shop").await;
    fill(&c, "#account-name", "Shop Inc").await;
    click(&c, "form.stack button[type=submit]").await;
    wait_path(&c, "/ui/accounts/shop/endpoints").await;
    c.goto(&ui("/ui/accounts/shop/sites")).await.unwrap();
    fill(&c, "#site-id", "store-1").await;
    fill(&c, "#site-name", "Main Street").await;
    click(&c, "form.stack button[type=submit]").await;
    wait_text(&c, "Main Street").await;
    c.goto(&ui("/ui/catalog")).await.unwrap();
    fill(&c, "#type-name", "order.paid").await;
    fill(&c, "#type-description", "An order was paid").await;
    click(&c, "form.stack button[type=submit]").await;
    wait_text(&c, "An order was paid").await;
    shot(&c, "event-types").await;
    c.goto(&ui("/ui/accounts")).await.unwrap();
    shot(&c, "accounts").await;

    // A portal link opens that account in a fresh session.
    let (s, link) = srv
        .post(
            "/v1/accounts/shop/portal-sessions",
            json!({"expiresIn": 120}),
        )
        .await;
    assert_eq!(s, 201, "{link}");
    let link = ui(link["url"].as_str().unwrap());
    c.delete_all_cookies().await.unwrap();
    c.goto(&link).await.unwrap();
    wait_path(&c, "/ui/accounts/shop/endpoints").await;
    wait_text(&c, "No endpoints yet").await;

    // A shared and a per-site endpoint.
    click(&c, ".actions a").await;
    fill(&c, "#url", &format!("http://{rx_addr}/ok")).await;
    fill(&c, "#description", "Shared: every store").await;
    click(&c, "input[name=eventTypes][value='order.paid']").await;
    shot(&c, "endpoint-form").await;
    click(&c, "form.stack button[type=submit]").await;
    let shared_page = c.current_url().await.unwrap();
    wait_text(&c, "All sites (shared)").await;
    c.goto(&ui("/ui/accounts/shop/endpoints/new"))
        .await
        .unwrap();
    fill(&c, "#url", &format!("http://{rx_addr}/fail")).await;
    fill(&c, "#description", "Store 1 only").await;
    click(&c, "input[name=scope][value=chosen]").await;
    click(&c, "input[name=sites][value='store-1']").await;
    click(&c, "form.stack button[type=submit]").await;
    wait_text(&c, "Store 1 only").await;

    // A validation error shows next to its field with the API's code.
    c.goto(&ui("/ui/accounts/shop/endpoints/new"))
        .await
        .unwrap();
    fill(&c, "#url", "ftp://nope").await;
    click(&c, "form.stack button[type=submit]").await;
    wait_text(&c, "invalid_url").await;
    let err = c
        .find(Locator::Css("#url-error"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(err.contains("invalid_url"), "{err}");

    // A test event is delivered and its attempt shows inline.
    c.goto(shared_page.as_str()).await.unwrap();
    click(&c, "#send-test").await;
    let t = reload_until(&c, "the test delivery", |t| t.contains("succeeded")).await;
    assert!(t.contains("200"), "{t}");
    assert_eq!(rx.on("/ok").len(), 1);

    // The charts hold a bar once the hourly counters are written (every few seconds).
    let deadline = Instant::now() + WAIT;
    loop {
        let bars = c
            .find_all(Locator::Css("#attempts-chart rect.bar-ok"))
            .await
            .unwrap_or_default();
        let dots = c
            .find_all(Locator::Css("#latency-chart circle.line-p50"))
            .await
            .unwrap_or_default();
        if bars.len() == 1 && dots.len() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no bar in the chart: {}",
            text(&c).await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.refresh().await.unwrap();
    }
    assert!(text(&c).await.contains("100.0 %"), "the success rate");
    shot(&c, "endpoint-detail").await;

    // An event for store 1: the shared endpoint takes it, the per-site one fails with 503.
    *rx.failing.lock().unwrap() = true;
    let (s, ev) = srv
        .post(
            "/v1/accounts/shop/events",
            json!({"event": "order.paid", "site": "store-1", "data": {"order": 42}}),
        )
        .await;
    assert_eq!(s, 202, "{ev}");
    let ev = ev["id"].as_str().unwrap().to_owned();
    c.goto(&ui("/ui/accounts/shop/events")).await.unwrap();
    wait_text(&c, &ev).await;
    shot(&c, "events").await;
    click(&c, &format!("a[href$='{ev}']")).await;
    let t = reload_until(&c, "the failed attempt", |t| t.contains("503")).await;
    assert!(
        t.contains("receiver down for maintenance"),
        "the excerpt: {t}"
    );
    assert!(t.contains("\"order\": 42"), "the pretty envelope: {t}");
    shot(&c, "event-detail").await;

    // Retry succeeds once the receiver is back.
    *rx.failing.lock().unwrap() = false;
    let failing_form = c
        .find(Locator::XPath(
            "//section[.//span[@class='warn' or @class='bad']]//button[contains(@class,'retry')]",
        ))
        .await
        .unwrap();
    failing_form.click().await.unwrap();
    reload_until(&c, "the retried delivery", |t| {
        !t.contains("pending") && t.matches("succeeded").count() >= 2
    })
    .await;
    assert_eq!(rx.on("/fail").len(), 2);

    // Rotation: both secrets shown, and both sign the next request.
    c.goto(shared_page.as_str()).await.unwrap();
    click(&c, "#reveal").await;
    click(&c, "#rotate").await;
    // Read once the rotated page is in (the old one showed one secret).
    let deadline = Instant::now() + WAIT;
    let secrets = loop {
        let mut shown = Vec::new();
        for el in c
            .find_all(Locator::Css("code.secret-value"))
            .await
            .unwrap_or_default()
        {
            if let Ok(t) = el.text().await {
                shown.push(Secret::parse(&t).unwrap());
            }
        }
        if shown.len() == 2 {
            break shown;
        }
        assert!(
            Instant::now() < deadline,
            "both secrets shown during the overlap: {}",
            shown.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    shot(&c, "secrets").await;
    let before = rx.on("/ok").len();
    click(&c, "#send-test").await;
    reload_until(&c, "the signed test", |t| t.contains("succeeded")).await;
    let (headers, body) = rx.on("/ok").pop().unwrap();
    assert!(rx.on("/ok").len() > before);
    let sigs = headers["webhook-signature"]
        .to_str()
        .unwrap()
        .split(' ')
        .count();
    assert_eq!(sigs, 2, "two signatures");
    for s in &secrets {
        verify_standard(s, &headers, &body, Timestamp::now(), DEFAULT_TOLERANCE)
            .expect("the receiver verifies with either secret");
    }

    // Account A's session cannot reach account B.
    let (s, _) = srv.post("/v1/accounts", json!({"id": "other"})).await;
    assert_eq!(s, 201);
    c.goto(&ui("/ui/accounts/other/endpoints")).await.unwrap();
    wait_text(&c, "Not found").await;

    // A form posted without its CSRF token is refused.
    c.goto(&ui("/ui/accounts/shop/sites")).await.unwrap();
    c.execute(
        "document.querySelectorAll('form.stack input[name=_csrf]').forEach(e => e.remove());",
        vec![],
    )
    .await
    .unwrap();
    fill(&c, "#site-id", "store-2").await;
    click(&c, "form.stack button[type=submit]").await;
    wait_text(&c, "security token").await;
    assert_eq!(srv.get("/v1/accounts/shop/sites/store-2").await.0, 404);

    // The portal link, used once, is refused a second time.
    c.delete_all_cookies().await.unwrap();
    c.goto(&link).await.unwrap();
    wait_text(&c, "expired or was already used").await;

    c.close().await.unwrap();
}
