//! The `hookline serve` process under test: a fresh store, start-up, seeding, /proc figures, stop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rand::Rng as _;
use serde_json::{Value, json};

const POSTGRES_ENV: &str = "HOOKLINE_TEST_POSTGRES_URL";
const POSTGRES_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const REDIS_ENV: &str = "HOOKLINE_TEST_REDIS_URL";
const REDIS_DEFAULT: &str = "redis://127.0.0.1:6379";

pub(crate) const ACCOUNT: &str = "bench";
pub(crate) const EVENT_TYPE: &str = "rx.completed";

fn random_suffix() -> String {
    let mut rng = rand::thread_rng();
    (0..10)
        .map(|_| char::from(b'a' + rng.gen_range(0..26u8)))
        .collect()
}

/// A store created for this run and removed after it.
#[derive(Debug)]
pub(crate) struct FreshStore {
    pub(crate) url: String,
    cleanup: Cleanup,
    /// Holds the SQLite file (and the server's log) until the run ends.
    pub(crate) dir: tempfile::TempDir,
}

#[derive(Debug)]
enum Cleanup {
    None,
    DropDatabase { admin_url: String, name: String },
    RedisPrefix { url: String, prefix: String },
}

impl FreshStore {
    pub(crate) fn create(kind: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("hookline-bench-")
            .tempdir()
            .context("creating a temp dir")?;
        let suffix = random_suffix();
        match kind {
            "sqlite" => Ok(Self {
                url: format!("sqlite://{}", dir.path().join("hookline.db").display()),
                cleanup: Cleanup::None,
                dir,
            }),
            "postgres" => {
                let admin_url = env_or(POSTGRES_ENV, POSTGRES_DEFAULT);
                let name = format!("hookline_bench_{suffix}");
                psql(&admin_url, &format!("CREATE DATABASE {name}"))?;
                Ok(Self {
                    url: with_database(&admin_url, &name)?,
                    cleanup: Cleanup::DropDatabase { admin_url, name },
                    dir,
                })
            }
            "redis" => {
                let base = env_or(REDIS_ENV, REDIS_DEFAULT);
                let base = base
                    .split('?')
                    .next()
                    .unwrap_or_default()
                    .trim_end_matches('/');
                let prefix = format!("hl_bench_{suffix}:");
                Ok(Self {
                    url: format!("{base}/?prefix={prefix}"),
                    cleanup: Cleanup::RedisPrefix {
                        url: base.to_owned(),
                        prefix,
                    },
                    dir,
                })
            }
            other => bail!("unknown store `{other}`: use sqlite, postgres or redis"),
        }
    }
}

impl Drop for FreshStore {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::None => {}
            Cleanup::DropDatabase { admin_url, name } => {
                if let Err(err) = psql(
                    admin_url,
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ) {
                    eprintln!("could not drop database {name}: {err:#}");
                }
            }
            Cleanup::RedisPrefix { url, prefix } => {
                // Best effort: delete this run's keys (SCAN, then DEL in chunks).
                let script = format!(
                    "redis-cli -u '{url}' --scan --pattern '{prefix}*' | xargs -r -n 500 redis-cli -u '{url}' DEL >/dev/null"
                );
                let ok = Command::new("sh")
                    .args(["-c", &script])
                    .stdin(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if !ok {
                    eprintln!("could not delete the redis keys under {prefix}");
                }
            }
        }
    }
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .stdin(Stdio::null())
        .output()
        .context("running psql (is the PostgreSQL client installed?)")?;
    if !out.status.success() {
        bail!(
            "psql `{sql}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `url` with its database (the path) replaced by `db`, query kept.
fn with_database(url: &str, db: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").context("a postgres URL needs `://`")? + 3;
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{db}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

/// Resource use of a process, from /proc.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProcStats {
    /// Peak resident set (VmHWM), bytes.
    pub(crate) peak_rss: u64,
    /// User + system CPU time, seconds.
    pub(crate) cpu_secs: f64,
    /// CPU seconds per thread name (`tokio-runtime-w`, `sqlx-sqlite-wor`, …), largest first.
    pub(crate) threads: Vec<(String, f64)>,
}

/// utime + stime in clock ticks from the text of a `/proc/…/stat` file, and the `comm` name.
fn stat_ticks(stat: &str) -> (String, u64) {
    let name = stat
        .split_once('(')
        .and_then(|(_, r)| r.rsplit_once(')'))
        .map(|(n, _)| n.to_owned())
        .unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> u64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0) };
    (name, ticks(11) + ticks(12))
}

/// CPU seconds per thread name of process `pid`.
fn thread_cpu(pid: &str, hz: f64) -> Vec<(String, f64)> {
    let mut by_name: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for entry in dir.flatten().take(10_000) {
            if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) {
                let (name, ticks) = stat_ticks(&stat);
                *by_name.entry(name).or_default() += ticks;
            }
        }
    }
    let mut v: Vec<(String, f64)> = by_name
        .into_iter()
        .map(|(n, t)| (n, t as f64 / hz))
        .filter(|(_, s)| *s > 0.0)
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}

/// VmHWM and utime+stime of process `pid` (`self` for this one).
pub(crate) fn proc_stats(pid: &str) -> anyhow::Result<ProcStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmHWM in /proc/<pid>/status")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let (_, ticks) = stat_ticks(&stat);
    let hz = clock_ticks();
    Ok(ProcStats {
        peak_rss: peak_kb * 1024,
        cpu_secs: ticks as f64 / hz,
        threads: thread_cpu(pid, hz),
    })
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// A running `hookline serve`.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) admin_key: String,
    child: Option<Child>,
    log: PathBuf,
    http: reqwest::Client,
}

impl Server {
    /// Starts `bin serve` on `store` with loopback and plain http allowed plus `extra` flags, and
    /// waits (up to 30 s) for /healthz.
    pub(crate) async fn start(
        bin: &Path,
        store: &str,
        dir: &Path,
        extra: &[String],
    ) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let listen = format!("127.0.0.1:{port}");
        // The server refuses admin keys with fewer than 32 characters after `hk_`.
        let admin_key = format!(
            "hk_bench_{}{}{}{}",
            random_suffix(),
            random_suffix(),
            random_suffix(),
            random_suffix()
        );
        let log = dir.join("hookline.log");
        let log_file = std::fs::File::create(&log).context("creating the server log")?;
        let mut args: Vec<String> = vec!["serve".into(), "--listen".into(), listen.clone()];
        args.extend(["--store".into(), store.to_owned()]);
        args.extend([
            "--allow-http".into(),
            "--allow-network".into(),
            "127.0.0.0/8".into(),
        ]);
        args.extend(extra.iter().cloned());
        eprintln!("$ {} {}", bin.display(), args.join(" "));
        let child = Command::new(bin)
            .args(&args)
            .env("HOOKLINE_ADMIN_KEY", &admin_key)
            .env(
                "RUST_LOG",
                std::env::var("HOOKLINE_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut server = Self {
            base: format!("http://{listen}"),
            admin_key,
            child: Some(child),
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        for _ in 0..3000 {
            let healthy = server
                .http
                .get(format!("{}/healthz", server.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy {
                return Ok(server);
            }
            if let Some(status) = server
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "hookline exited early ({status}); log:\n{}",
                    server.log_tail()
                );
            }
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!(
            "hookline did not become healthy within 30 s; log:\n{}",
            server.log_tail()
        )
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub(crate) fn stats(&self) -> anyhow::Result<ProcStats> {
        let pid = self.pid().context("the server is not running")?;
        proc_stats(&pid.to_string())
    }

    /// The last lines of the server's log.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Fails if the process has exited.
    pub(crate) fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            bail!(
                "hookline exited during the run ({status}); log:\n{}",
                self.log_tail()
            );
        }
        Ok(())
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.admin_key);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("calling {path}"))?;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, v))
    }

    async fn post_ok(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let (status, v) = self.call(reqwest::Method::POST, path, Some(body)).await?;
        if !(200..300).contains(&status) {
            bail!("POST {path}: HTTP {status}: {v}");
        }
        Ok(v)
    }

    /// The event type, the account, and one endpoint per receiver URL.
    pub(crate) async fn seed(&self, endpoint_urls: &[String]) -> anyhow::Result<()> {
        self.post_ok(
            "/v1/event-types",
            json!({"name": EVENT_TYPE, "description": "benchmark"}),
        )
        .await?;
        self.post_ok("/v1/accounts", json!({"id": ACCOUNT, "name": "Benchmark"}))
            .await?;
        for url in endpoint_urls {
            self.post_ok(
                &format!("/v1/accounts/{ACCOUNT}/endpoints"),
                json!({"url": url, "eventTypes": [EVENT_TYPE]}),
            )
            .await?;
        }
        Ok(())
    }

    pub(crate) fn events_url(&self) -> String {
        format!("{}/v1/accounts/{ACCOUNT}/events", self.base)
    }

    /// SIGTERM, then waits up to `within` for the exit (SIGKILL after that). Returns whether it
    /// exited on its own.
    pub(crate) fn terminate(&mut self, within: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        for _ in 0..100_000 {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x").unwrap(),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x").unwrap(),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:1", "x").unwrap(),
            "postgres://h:1/x"
        );
    }
}
