//! Test support: the `hookline` binary on a temp SQLite file, and a recording receiver.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

pub(crate) const ADMIN_KEY: &str = "hk_test_admin_key_0123456789abcdefghijklmnopqrstuv";

/// A free port on 127.0.0.1 (bound, then released).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// When it arrived.
    pub(crate) at: Instant,
}

impl Received {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct ReceiverState {
    got: Vec<Received>,
    /// Per path: statuses to answer in order before falling back to 200.
    scripts: std::collections::HashMap<String, VecDeque<u16>>,
    /// Per path: how long to wait before answering.
    delays: std::collections::HashMap<String, Duration>,
    /// Per path: a function of (request body, how many requests the path had before) → status.
    responders: std::collections::HashMap<String, Responder>,
    /// Per path: `Retry-After` seconds sent with non-2xx answers.
    retry_after: std::collections::HashMap<String, u64>,
    /// Per path: requests being answered now, and the most seen at once.
    in_flight: std::collections::HashMap<String, (usize, usize)>,
    /// Per path: how many requests arrived (kept so that recording stays O(1) per request:
    /// multi-process tests record tens of thousands).
    counts: std::collections::HashMap<String, usize>,
}

type Responder = Arc<dyn Fn(&Value, usize) -> u16 + Send + Sync>;

/// An HTTP receiver on 127.0.0.1 that records every request.
#[derive(Clone)]
pub(crate) struct Receiver {
    pub(crate) addr: SocketAddr,
    state: Arc<Mutex<ReceiverState>>,
}

impl Receiver {
    pub(crate) async fn start() -> Self {
        Self::start_on(0).await
    }

    pub(crate) async fn start_on(port: u16) -> Self {
        let state = Arc::new(Mutex::new(ReceiverState::default()));
        let app = Router::new().fallback(record).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, state }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answer the next requests to `path` with these statuses, then 200.
    pub(crate) fn script(&self, path: &str, statuses: &[u16]) {
        self.state
            .lock()
            .unwrap()
            .scripts
            .insert(path.to_owned(), statuses.iter().copied().collect());
    }

    /// Answer requests to `path` only after `d`.
    pub(crate) fn delay(&self, path: &str, d: Duration) {
        self.state.lock().unwrap().delays.insert(path.to_owned(), d);
    }

    /// Answer requests to `path` with `f(body, requests before this one)`.
    pub(crate) fn respond_with(
        &self,
        path: &str,
        f: impl Fn(&Value, usize) -> u16 + Send + Sync + 'static,
    ) {
        self.state
            .lock()
            .unwrap()
            .responders
            .insert(path.to_owned(), Arc::new(f));
    }

    /// Send `Retry-After: secs` with every non-2xx answer on `path`.
    pub(crate) fn retry_after(&self, path: &str, secs: u64) {
        self.state
            .lock()
            .unwrap()
            .retry_after
            .insert(path.to_owned(), secs);
    }

    /// The most requests to `path` that were being answered at once.
    pub(crate) fn max_in_flight(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .in_flight
            .get(path)
            .map_or(0, |(_, max)| *max)
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().got.clone()
    }

    /// The requests after the first `n` received (in arrival order), for callers that poll a
    /// growing log without copying all of it each time.
    pub(crate) fn received_since(&self, n: usize) -> Vec<Received> {
        let s = self.state.lock().unwrap();
        s.got.get(n..).map(<[Received]>::to_vec).unwrap_or_default()
    }

    pub(crate) fn received_on(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Waits until `n` requests arrived at `path` (or panics after `timeout`).
    pub(crate) async fn wait_for(&self, path: &str, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received_on(path);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} requests reached {path} in {timeout:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn record(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let path = uri.path().to_owned();
    let (status, delay, retry_after) = {
        let mut s = state.lock().unwrap();
        let before = s.counts.get(&path).copied().unwrap_or(0);
        *s.counts.entry(path.clone()).or_default() += 1;
        let scripted = s.scripts.get_mut(&path).and_then(|q| q.pop_front());
        let status = match (scripted, s.responders.get(&path)) {
            (Some(st), _) => st,
            (None, Some(f)) => f(
                &serde_json::from_slice(&body).unwrap_or(Value::Null),
                before,
            ),
            (None, None) => 200,
        };
        let delay = s.delays.get(&path).copied();
        let retry_after = s.retry_after.get(&path).copied();
        let slot = s.in_flight.entry(path.clone()).or_default();
        slot.0 += 1;
        slot.1 = slot.1.max(slot.0);
        s.got.push(Received {
            path: path.clone(),
            headers,
            body,
            at: Instant::now(),
        });
        (status, delay, retry_after)
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    state.lock().unwrap().in_flight.get_mut(&path).unwrap().0 -= 1;
    let status = StatusCode::from_u16(status).unwrap();
    match retry_after {
        Some(secs) if !status.is_success() => {
            (status, [("retry-after", secs.to_string())]).into_response()
        }
        _ => status.into_response(),
    }
}

/// A client that drops pooled connections after 5 s idle: before the server's header-read
/// timeout (10 s by default) closes them, so that no request races a closing connection.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// A `hookline serve` process, by default on a SQLite file in a temp dir.
pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) store: String,
    child: Option<Child>,
    args: Vec<String>,
    dir: Arc<tempfile::TempDir>,
    pub(crate) http: reqwest::Client,
    /// Extra environment variables of the process.
    env: Vec<(String, String)>,
    /// Standard error's lines, when captured.
    log: Option<Arc<Mutex<Vec<String>>>>,
}

impl Server {
    /// Starts the binary on a fresh SQLite file with loopback allowed, plain http allowed and
    /// `extra` flags.
    pub(crate) async fn start(extra: &[&str]) -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let store = format!("sqlite://{}", dir.path().join("hookline.db").display());
        Self::start_on_store(&store, dir, extra).await
    }

    /// Starts the binary on `store` (shared with other processes if they use the same URL).
    pub(crate) async fn start_on_store(
        store: &str,
        dir: Arc<tempfile::TempDir>,
        extra: &[&str],
    ) -> Self {
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut s = Self {
            base: String::new(),
            store: store.to_owned(),
            child: None,
            args,
            dir,
            http: client(),
            env: Vec::new(),
            log: None,
        };
        s.spawn().await;
        s
    }

    /// Starts the binary on `store` with `extra` flags and `env` set.
    pub(crate) async fn start_with_env(
        store: &str,
        dir: Arc<tempfile::TempDir>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut s = Self {
            base: String::new(),
            store: store.to_owned(),
            child: None,
            args: extra.iter().map(|s| s.to_string()).collect(),
            dir,
            http: reqwest::Client::new(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            log: None,
        };
        s.spawn().await;
        s
    }

    /// Starts the binary like [`Server::start`] with `env` set (`RUST_LOG` among them wins over
    /// the default), capturing its standard error (see [`Server::log_lines`]).
    pub(crate) async fn start_capturing(extra: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let store = format!("sqlite://{}", dir.path().join("hookline.db").display());
        let mut s = Self {
            base: String::new(),
            store,
            child: None,
            args: extra.iter().map(|s| s.to_string()).collect(),
            dir,
            http: client(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            log: Some(Arc::default()),
        };
        s.spawn().await;
        s
    }

    /// The lines written to standard error so far (only for [`Server::start_capturing`]).
    pub(crate) fn log_lines(&self) -> Vec<String> {
        self.log
            .as_ref()
            .expect("started with start_capturing")
            .lock()
            .unwrap()
            .clone()
    }

    /// Waits until a line of standard error satisfies `f` and returns it (or panics after
    /// `timeout`, showing what was logged).
    pub(crate) async fn wait_for_log(&self, timeout: Duration, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.log_lines();
            if let Some(l) = lines.iter().find(|l| f(l)) {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no such log line in {timeout:?}; the log:\n{}",
                lines.join("\n")
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Another process on the same store with the same flags.
    pub(crate) async fn another(&self) -> Self {
        let extra: Vec<&str> = self.args.iter().map(String::as_str).collect();
        Self::start_on_store(&self.store, self.dir.clone(), &extra).await
    }

    async fn spawn(&mut self) {
        let port = free_port();
        self.base = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookline"));
        cmd.arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--store", &self.store])
            .args(["--allow-network", "127.0.0.0/8", "--allow-http"])
            .args(&self.args)
            .env("HOOKLINE_ADMIN_KEY", ADMIN_KEY)
            // Tests publish in bursts with one key; a test of the rate limit sets the flag,
            // which wins over the environment.
            .env("HOOKLINE_RATE_LIMIT", "0")
            .env(
                "RUST_LOG",
                std::env::var("HOOKLINE_TEST_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        if self.log.is_some() {
            cmd.stderr(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("start the hookline binary");
        if let (Some(log), Some(stderr)) = (self.log.clone(), child.stderr.take()) {
            std::thread::spawn(move || {
                use std::io::BufRead as _;
                for line in std::io::BufReader::new(stderr)
                    .lines()
                    .map_while(Result::ok)
                {
                    log.lock().unwrap().push(line);
                }
            });
        }
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = self.http.get(format!("{}/healthz", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("hookline exited early: {status}");
            }
            assert!(Instant::now() < deadline, "hookline did not become healthy");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Panics with the exit status if the process is no longer running.
    pub(crate) fn assert_running(&mut self) {
        if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
            panic!("hookline exited unexpectedly: {status}");
        }
    }

    /// `kill -9`, no chance to clean up.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit; returns how long it took.
    pub(crate) fn terminate(&mut self, within: Duration) -> Duration {
        let mut child = self.child.take().expect("running");
        let started = Instant::now();
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "hookline exited with {status} after SIGTERM"
                );
                return started.elapsed();
            }
            if started.elapsed() > within {
                let _ = child.kill();
                panic!("hookline did not exit within {within:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sets an environment variable for the next start (see [`Server::restart`]); it wins over
    /// the defaults (`HOOKLINE_ADMIN_KEY` among them).
    pub(crate) fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// Starts the binary again on the same store.
    pub(crate) async fn restart(&mut self) {
        self.kill9();
        self.spawn().await;
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_as(ADMIN_KEY, method, path, body).await
    }

    pub(crate) async fn call_as(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub(crate) async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    /// Creates what most tests need: the seed event types and an account.
    pub(crate) async fn seed(&self, account: &str) {
        for t in ["rx.completed", "rx.failed", "rx.excepted", "rx.resolved"] {
            let (s, _) = self
                .post("/v1/event-types", json!({"name": t, "description": t}))
                .await;
            assert!(s == 201 || s == 409, "event type {t}: {s}");
        }
        let (s, b) = self
            .post("/v1/accounts", json!({"id": account, "name": account}))
            .await;
        assert_eq!(s, 201, "{b}");
    }

    pub(crate) async fn endpoint(&self, account: &str, body: Value) -> (String, String) {
        let (s, ep) = self
            .post(&format!("/v1/accounts/{account}/endpoints"), body)
            .await;
        assert_eq!(s, 201, "{ep}");
        let id = ep["id"].as_str().unwrap().to_owned();
        let (s, sec) = self
            .get(&format!("/v1/accounts/{account}/endpoints/{id}/secret"))
            .await;
        assert_eq!(s, 200);
        (id, sec["secret"].as_str().unwrap().to_owned())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Kills a child process when dropped (also when a test panics).
pub(crate) struct KillOnDrop(pub(crate) Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP proxy on 127.0.0.1 in front of a service (a database), which a test can cut and restore
/// to make the service unreachable without stopping it, or freeze and thaw to make it stall as a
/// stopped (SIGSTOP) or overloaded server does: connections stay open, bytes stop moving.
#[cfg_attr(not(any(feature = "postgres", feature = "redis")), allow(dead_code))]
#[derive(Clone)]
pub(crate) struct TcpProxy {
    pub(crate) addr: SocketAddr,
    open: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    frozen: Arc<tokio::sync::watch::Sender<bool>>,
}

/// Copies `from` to `to`, holding each chunk while the proxy is frozen.
#[cfg_attr(not(any(feature = "postgres", feature = "redis")), allow(dead_code))]
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.wait_for(|f| !*f).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg_attr(not(any(feature = "postgres", feature = "redis")), allow(dead_code))]
impl TcpProxy {
    /// Forwards connections on a fresh loopback port to `target` (`host:port`).
    pub(crate) async fn start(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let frozen = Arc::new(tokio::sync::watch::channel(false).0);
        let target = target.to_owned();
        let (o, c, f) = (open.clone(), conns.clone(), frozen.clone());
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                if !o.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let mut thawed = f.subscribe();
                let task = tokio::spawn(async move {
                    // A frozen server accepts (the kernel does) but answers nothing.
                    if thawed.wait_for(|f| !*f).await.is_err() {
                        return;
                    }
                    if let Ok(outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = inbound.set_nodelay(true);
                        let _ = outbound.set_nodelay(true);
                        let (in_r, in_w) = inbound.into_split();
                        let (out_r, out_w) = outbound.into_split();
                        tokio::select! {
                            _ = pump(in_r, out_w, thawed.clone()) => {}
                            _ = pump(out_r, in_w, thawed) => {}
                        }
                    }
                });
                c.lock().unwrap().push(task.abort_handle());
            }
        });
        Self {
            addr,
            open,
            conns,
            frozen,
        }
    }

    /// Stops moving bytes on every connection (and holds new ones) until [`Self::thaw`].
    pub(crate) fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Lets bytes move again.
    pub(crate) fn thaw(&self) {
        self.frozen.send_replace(false);
    }

    /// Drops every open connection and refuses new ones.
    pub(crate) fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// Accepts connections again.
    pub(crate) fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Held by the load-heavy tests (several processes, thousands of deliveries) so that they never
/// run at the same time as each other on a small machine.
pub(crate) static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
