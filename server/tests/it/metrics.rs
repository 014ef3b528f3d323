//! Prometheus metrics on a real process: counters after deliveries that succeed and fail,
//! `--metrics-listen`, and the backlog gauges while an endpoint is down.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{ADMIN_KEY, Receiver, Server, free_port};

/// How long a test waits for the engine (and for the backlog sampler, every 10 s).
const WAIT: Duration = Duration::from_secs(30);

/// The flags of [`counters_follow_deliveries`]: three attempts 100 ms apart, and the circuit
/// breaker off, so that an endpoint answering 500 gets exactly three.
pub(crate) const FLAGS: &[&str] = &[
    "--retry-schedule",
    "100ms,100ms",
    "--circuit-threshold",
    "65",
];

/// The flags of [`backlog_while_down`]: a retry an hour after the first attempt.
pub(crate) const DOWN_FLAGS: &[&str] = &["--retry-schedule", "1h"];

/// One scrape: every sample by metric name and its labels (sorted), strictly parsed.
#[derive(Debug)]
pub(crate) struct Scrape(BTreeMap<(String, Vec<(String, String)>), f64>);

impl Scrape {
    /// Parses the text format: `# HELP`/`# TYPE` comments, and `name{k="v",…} value` lines.
    fn parse(text: &str) -> Self {
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
                continue;
            }
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("no value in line {line:?}"));
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in line {line:?}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series, Vec::new()),
                Some((name, rest)) => {
                    let inner = rest
                        .strip_suffix('}')
                        .unwrap_or_else(|| panic!("unclosed labels in line {line:?}"));
                    (name, parse_labels(inner, line))
                }
            };
            assert!(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad metric name in line {line:?}"
            );
            let mut labels = labels;
            labels.sort();
            let before = samples.insert((name.to_owned(), labels), value);
            assert!(before.is_none(), "series repeated: {line:?}");
        }
        Self(samples)
    }

    /// The value of the series `name` with exactly `labels` (0 when absent: counters start there).
    pub(crate) fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut key: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        key.sort();
        self.0.get(&(name.to_owned(), key)).copied().unwrap_or(0.0)
    }

    /// Whether any series of `name` is present.
    fn has(&self, name: &str) -> bool {
        self.0.keys().any(|(n, _)| n == name)
    }

    /// The series of `name`, for messages.
    fn show(&self, name: &str) -> String {
        self.0
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|((_, l), v)| format!("{l:?} = {v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// `k="v",…` with the text format's escapes (`\\`, `\"`, `\n`).
fn parse_labels(inner: &str, line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert!(
            !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad label name in line {line:?}"
        );
        assert_eq!(chars.next(), Some('"'), "unquoted label in line {line:?}");
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c @ ('\\' | '"')) => value.push(c),
                    other => panic!("bad escape {other:?} in line {line:?}"),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => panic!("unterminated label value in line {line:?}"),
            }
        }
        out.push((key, value));
        match chars.next() {
            None => break,
            Some(',') => {}
            Some(c) => panic!("unexpected {c:?} after a label in line {line:?}"),
        }
    }
    out
}

/// Scrapes `url` (with the admin key when `key`), checking the answer is the text format.
pub(crate) async fn scrape(srv: &Server, url: &str, key: bool) -> Scrape {
    let mut req = srv.http.get(url);
    if key {
        req = req.bearer_auth(ADMIN_KEY);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200, "scraping {url}");
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    Scrape::parse(&res.text().await.unwrap())
}

/// Scrapes `url` until `done` holds (bounded by [`WAIT`]); returns that scrape.
async fn scrape_until(
    srv: &Server,
    url: &str,
    key: bool,
    what: &str,
    done: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = scrape(srv, url, key).await;
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what} within {WAIT:?}: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_follow_deliveries() {
    counters(&Server::start(FLAGS).await).await;
}

/// Events accepted, duplicated and rejected; three delivered to a healthy endpoint, one failing
/// every attempt (500) at another: the counters move by exactly that.
pub(crate) async fn counters(srv: &Server) {
    let rx = Receiver::start().await;
    rx.respond_with("/bad", |_, _| 500);
    srv.seed("acct").await;
    srv.endpoint(
        "acct",
        json!({"url": rx.url("/ok"), "eventTypes": ["rx.completed"]}),
    )
    .await;
    srv.endpoint(
        "acct",
        json!({"url": rx.url("/bad"), "eventTypes": ["rx.failed"]}),
    )
    .await;
    let metrics = srv.url("/metrics");

    // The main port wants the admin key.
    let res = srv.http.get(&metrics).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["content-type"],
        "application/problem+json",
        "refused like any route"
    );
    let (s, key) = srv.post("/v1/accounts/acct/keys", json!({})).await;
    assert_eq!(s, 201, "{key}");
    let res = srv
        .http
        .get(&metrics)
        .bearer_auth(key["key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "an account key may not read them");

    let events = srv.url("/v1/accounts/acct/events");
    let send = |body: serde_json::Value, key: Option<&'static str>| {
        let mut req = srv.http.post(&events).bearer_auth(ADMIN_KEY).json(&body);
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    for n in 0..3 {
        let key = ["k0", "k1", "k2"][n];
        let s = send(
            json!({"event": "rx.completed", "data": {"n": n}}),
            Some(key),
        )
        .await;
        assert_eq!(s, 202);
    }
    let s = send(
        json!({"event": "rx.completed", "data": {"n": 0}}),
        Some("k0"),
    )
    .await;
    assert_eq!(s, 202, "a duplicate");
    assert_eq!(
        send(json!({"event": "rx.failed", "data": {}}), None).await,
        202
    );
    assert_eq!(
        send(json!({"event": "rx.nope", "data": {}}), None).await,
        422,
        "not in the catalog"
    );
    assert_eq!(
        send(
            json!({"event": "rx.completed", "site": "nowhere", "data": {}}),
            None
        )
        .await,
        422,
        "a catalog type, refused for its site"
    );
    let (s, _) = srv.get("/no/such/route").await;
    assert_eq!(s, 404);

    rx.wait_for("/ok", 3, WAIT).await;
    rx.wait_for("/bad", 3, WAIT).await;
    let settled = "hookline_deliveries_settled_total";
    let m = scrape_until(srv, &metrics, true, "every attempt settled", |m| {
        m.get(settled, &[("outcome", "delivered")]) >= 3.0
            && m.get(settled, &[("outcome", "exhausted")]) >= 1.0
    })
    .await;
    assert_eq!(
        m.get(settled, &[("outcome", "delivered")]),
        3.0,
        "{}",
        m.show(settled)
    );
    assert_eq!(
        m.get(settled, &[("outcome", "failed_attempt")]),
        2.0,
        "{}",
        m.show(settled)
    );
    assert_eq!(
        m.get(settled, &[("outcome", "exhausted")]),
        1.0,
        "{}",
        m.show(settled)
    );

    let ev = "hookline_events_total";
    for (event_type, outcome, n) in [
        ("rx.completed", "accepted", 3.0),
        ("rx.completed", "duplicate", 1.0),
        ("rx.completed", "rejected", 1.0),
        ("rx.failed", "accepted", 1.0),
        ("(other)", "rejected", 1.0),
    ] {
        assert_eq!(
            m.get(ev, &[("event_type", event_type), ("outcome", outcome)]),
            n,
            "{event_type} {outcome}: {}",
            m.show(ev)
        );
    }
    assert_eq!(
        m.0.keys().filter(|(n, _)| n == ev).count(),
        5,
        "no other event series: {}",
        m.show(ev)
    );

    let errors = "hookline_attempt_errors_total";
    assert_eq!(
        m.get(errors, &[("kind", "status_5xx")]),
        3.0,
        "{}",
        m.show(errors)
    );
    assert_eq!(
        m.0.keys().filter(|(n, _)| n == errors).count(),
        1,
        "only 5xx: {}",
        m.show(errors)
    );
    let attempts = "hookline_attempt_duration_seconds";
    assert_eq!(m.get(&format!("{attempts}_count"), &[]), 6.0);
    assert_eq!(m.get(&format!("{attempts}_bucket"), &[("le", "+Inf")]), 6.0);
    assert!(m.get(&format!("{attempts}_sum"), &[]) > 0.0);
    assert!(m.get("hookline_claim_duration_seconds_count", &[]) >= 3.0);
    assert!(
        !m.has("hookline_store_errors_total"),
        "no store call failed"
    );
    assert!(!m.has("hookline_endpoints_disabled_total"));

    let http = "hookline_http_requests_total";
    let route = "/v1/accounts/{account}/events";
    assert_eq!(
        m.get(
            http,
            &[("method", "POST"), ("route", route), ("status", "202")]
        ),
        5.0,
        "{}",
        m.show(http)
    );
    assert_eq!(
        m.get(
            http,
            &[("method", "POST"), ("route", route), ("status", "422")]
        ),
        2.0
    );
    assert_eq!(
        m.get(
            http,
            &[
                ("method", "GET"),
                ("route", "(unmatched)"),
                ("status", "404")
            ]
        ),
        1.0,
        "{}",
        m.show(http)
    );
    assert_eq!(
        m.get(
            http,
            &[("method", "GET"), ("route", "/metrics"), ("status", "401")]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            http,
            &[("method", "GET"), ("route", "/metrics"), ("status", "403")]
        ),
        1.0
    );
    assert!(
        !m.0.keys().any(|(_, labels)| labels
            .iter()
            .any(|(_, v)| v.contains("acct") || v.starts_with("ep_"))),
        "no account or endpoint ids in labels"
    );
}

/// `--metrics off`: no `/metrics` (a problem+json 404, also for the admin), deliveries as ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_off_serves_none_and_delivers() {
    let rx = Receiver::start().await;
    let srv = Server::start(&["--metrics", "off"]).await;
    let (s, body) = srv.get("/metrics").await;
    assert_eq!(s, 404, "{body}");
    assert_eq!(body["code"], "route_not_found");
    srv.seed("quiet").await;
    srv.endpoint("quiet", json!({"url": rx.url("/q")})).await;
    let (s, body) = srv
        .post(
            "/v1/accounts/quiet/events",
            json!({"event": "rx.completed", "data": {}}),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    rx.wait_for("/q", 1, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listen_serves_them_apart_without_a_key() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let srv = Server::start(&["--metrics-listen", &addr]).await;
    let apart = format!("http://{addr}/metrics");
    let m = scrape_until(&srv, &apart, false, "the backlog sampled", |m| {
        m.has("hookline_deliveries_pending")
    })
    .await;
    assert_eq!(m.get("hookline_deliveries_pending", &[]), 0.0);
    assert_eq!(
        m.get("hookline_deliveries_oldest_due_age_seconds", &[]),
        0.0
    );
    let (s, body) = srv.get("/metrics").await;
    assert_eq!(s, 404, "not on the main port, even for the admin: {body}");
    assert_eq!(body["code"], "route_not_found");
    let res = srv
        .http
        .get(format!("http://{addr}/v1/accounts"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "the metrics address serves nothing else");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_gauges_while_an_endpoint_is_down() {
    backlog_while_down(&Server::start(DOWN_FLAGS).await).await;
}

/// Five events for an endpoint nobody listens on: five connection failures open its circuit,
/// and the five deliveries stay pending (their retry is an hour away), which the sampled gauge
/// shows.
pub(crate) async fn backlog_while_down(srv: &Server) {
    srv.seed("acct").await;
    let down = format!("http://127.0.0.1:{}/down", free_port());
    srv.endpoint("acct", json!({"url": down})).await;
    for n in 0..5 {
        let (s, b) = srv
            .post(
                "/v1/accounts/acct/events",
                json!({"event": "rx.completed", "data": {"n": n}}),
            )
            .await;
        assert_eq!(s, 202, "{b}");
    }
    let metrics = srv.url("/metrics");
    let m = scrape_until(srv, &metrics, true, "five pending and five failed", |m| {
        m.get("hookline_deliveries_pending", &[]) == 5.0
            && m.get(
                "hookline_deliveries_settled_total",
                &[("outcome", "failed_attempt")],
            ) == 5.0
    })
    .await;
    let errors = "hookline_attempt_errors_total";
    assert_eq!(
        m.get(errors, &[("kind", "connect")]),
        5.0,
        "{}",
        m.show(errors)
    );
    assert_eq!(
        m.get("hookline_circuits_open", &[]),
        1.0,
        "five failures open it"
    );
    assert_eq!(
        m.get("hookline_deliveries_oldest_due_age_seconds", &[]),
        0.0,
        "nothing is overdue: the retries are an hour away"
    );
}
