//! `hookline-bench`: Hookline's delivery benchmark (run it through `cargo xtask bench`).
//!
//! One run: a fresh store, `hookline serve` on it, a local receiver (axum, 127.0.0.1) with one
//! path per endpoint, `--events` events posted over the API by `--concurrency` client tasks, a
//! bounded wait until every delivery has arrived, the server's peak RSS and CPU time from /proc,
//! then the physical limit: the same generator posting the same bodies straight to a receiver,
//! one request per delivery, with the same concurrency. It prints a table and one JSON line.
//!
//! Latency is measured from the moment the event's `202` came back to the arrival of its first
//! successful request at the receiver (clamped at 0).

mod load;
mod receiver;
mod report;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};

use crate::load::{Progress, Target};
use crate::receiver::Receiver;
use crate::report::{Backlog, Direct, Report};
use crate::server::{FreshStore, Server};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// 20,000 events to one endpoint.
    Single,
    /// 5,000 events to each of 10 endpoints.
    Fanout,
    /// 20,000 events × 10 endpoints accepted while the receiver is down, then drained.
    Backlog,
    /// 20,000 events to one endpoint; 10 % of first attempts answered 500, retried after 200 ms.
    Retries,
}

/// Hookline's delivery benchmark.
#[derive(Debug, Parser)]
#[command(name = "hookline-bench")]
struct Args {
    /// The `hookline` binary to benchmark.
    #[arg(long, default_value = "target/release/hookline")]
    server_bin: PathBuf,
    /// The store: sqlite (a temp file), postgres (a fresh database on HOOKLINE_TEST_POSTGRES_URL)
    /// or redis (a fresh key prefix on HOOKLINE_TEST_REDIS_URL). The binary must have it compiled in.
    #[arg(long, default_value = "sqlite")]
    store: String,
    /// A preset; --events/--endpoints/--fail-first/--retry-schedule override it.
    #[arg(long, value_enum, default_value = "single")]
    scenario: Scenario,
    /// Events to send.
    #[arg(long)]
    events: Option<usize>,
    /// Endpoints subscribed to every event.
    #[arg(long)]
    endpoints: Option<usize>,
    /// Concurrent client tasks of the load generator.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Size of each event's request body in bytes.
    #[arg(long, default_value_t = 1024)]
    payload_bytes: usize,
    /// Offered load in events/s (0 = as fast as the API answers).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// The server's `--concurrency` (deliveries in flight) [default: the server's own].
    #[arg(long)]
    server_concurrency: Option<usize>,
    /// The server's `--endpoint-concurrency` [default: the server concurrency when that is
    /// given, else the server's own].
    #[arg(long)]
    endpoint_concurrency: Option<usize>,
    /// One more flag for `hookline serve`, e.g. `--server-arg=--metrics=off` (repeatable; after
    /// the bench's own flags, so it wins over them).
    #[arg(long = "server-arg", value_name = "FLAG", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Fraction of events whose first attempt the receiver answers with 500.
    #[arg(long)]
    fail_first: Option<f64>,
    /// The server's `--retry-schedule`.
    #[arg(long)]
    retry_schedule: Option<String>,
    /// Give up waiting for deliveries after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// Skip the direct-HTTP baseline.
    #[arg(long)]
    no_direct: bool,
    /// Also write the JSON line to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

impl Args {
    fn events(&self) -> usize {
        self.events.unwrap_or(match self.scenario {
            Scenario::Fanout => 5_000,
            Scenario::Single | Scenario::Backlog | Scenario::Retries => 20_000,
        })
    }

    fn endpoints(&self) -> usize {
        self.endpoints.unwrap_or(match self.scenario {
            Scenario::Fanout | Scenario::Backlog => 10,
            Scenario::Single | Scenario::Retries => 1,
        })
    }

    fn fail_first(&self) -> f64 {
        self.fail_first.unwrap_or(match self.scenario {
            Scenario::Retries => 0.1,
            _ => 0.0,
        })
    }

    fn retry_schedule(&self) -> Option<String> {
        self.retry_schedule
            .clone()
            .or_else(|| (self.scenario == Scenario::Retries).then(|| "200ms".to_owned()))
    }

    fn server_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if let Some(c) = self.server_concurrency {
            flags.extend(["--concurrency".to_owned(), c.to_string()]);
        }
        if let Some(e) = self.endpoint_concurrency.or(self.server_concurrency) {
            flags.extend(["--endpoint-concurrency".to_owned(), e.to_string()]);
        }
        if let Some(schedule) = self.retry_schedule() {
            flags.extend(["--retry-schedule".to_owned(), schedule]);
        }
        if self.fail_first() > 0.0 {
            // Random 500s must not open circuits: this scenario measures retries, not the breaker.
            flags.extend(["--circuit-threshold".to_owned(), "1000".to_owned()]);
        }
        if self.scenario == Scenario::Backlog {
            // Held requests must not time out while the backlog is being accepted.
            flags.extend(["--request-timeout".to_owned(), format!("{}s", self.timeout)]);
        }
        flags.extend(self.server_args.iter().cloned());
        flags
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(report) => {
            let failed = report.lost > 0 || report.ingest_errors > 0;
            if failed {
                eprintln!(
                    "FAILED: {} lost deliveries, {} ingest errors",
                    report.lost, report.ingest_errors
                );
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(err) => {
            eprintln!("hookline-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<Report> {
    let (events, endpoints) = (args.events(), args.endpoints());
    if events == 0 || endpoints == 0 || args.concurrency == 0 {
        bail!("--events, --endpoints and --concurrency must be at least 1");
    }
    if !args.server_bin.is_file() {
        bail!(
            "{} does not exist: build it first (`cargo xtask bench` does)",
            args.server_bin.display()
        );
    }
    let server_bin = std::fs::canonicalize(&args.server_bin)
        .with_context(|| format!("resolving {}", args.server_bin.display()))?;
    let expected = events * endpoints;
    let deadline = Duration::from_secs(args.timeout);
    let epoch = Instant::now();
    let backlog = args.scenario == Scenario::Backlog;

    let store = FreshStore::create(&args.store)?;
    let rx = Receiver::start(epoch, args.fail_first(), !backlog).await?;
    let urls: Vec<String> = (0..endpoints).map(|i| rx.url(i)).collect();
    let server_flags = args.server_flags();
    let mut server =
        Server::start(&server_bin, &store.url, store.dir.path(), &server_flags).await?;
    server.seed(&urls).await?;
    eprintln!(
        "bench: {} scenario, {events} events × {endpoints} endpoints = {expected} deliveries, \
         {} B bodies, {} clients{}, store {}",
        format!("{:?}", args.scenario).to_lowercase(),
        args.payload_bytes,
        args.concurrency,
        if args.rate > 0.0 {
            format!(" at {} events/s", args.rate)
        } else {
            String::new()
        },
        args.store
    );

    // Ingest, with progress lines every second.
    let progress = Arc::new(Progress::default());
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = spawn_progress(
        progress.clone(),
        rx.clone(),
        events,
        expected,
        stop.clone(),
        deadline,
    );
    let target = Target::Hookline {
        url: server.events_url(),
        key: server.admin_key.clone(),
    };
    let load = load::run(
        target,
        events,
        args.concurrency,
        args.payload_bytes,
        args.rate,
        epoch,
        progress.clone(),
    )
    .await?;
    if let Some(err) = &load.first_error {
        eprintln!(
            "bench: {} ingest requests failed; first: {err}",
            load.errors
        );
    }
    let accepted: usize = load.sent.iter().filter(|s| s.id.is_some()).count();
    let expected_deliveries: usize = load
        .sent
        .iter()
        .filter(|s| s.id.is_some())
        .map(|s| s.deliveries as usize)
        .sum();

    // Backlog: the receiver was down; bring it up and time the drain.
    let mut backlog_figures = None;
    if backlog {
        backlog_figures =
            Some(drain(&rx, &mut server, expected_deliveries, deadline, epoch).await?);
    }

    // Wait (bounded) for every delivery.
    let wait_start = Instant::now();
    let mut last_oks = rx.oks();
    let mut last_change = Instant::now();
    for _ in 0..(deadline.as_millis() / 50 + 1) {
        let oks = rx.oks();
        if oks >= expected_deliveries {
            break;
        }
        if oks != last_oks {
            (last_oks, last_change) = (oks, Instant::now());
        }
        if wait_start.elapsed() > deadline {
            eprintln!("bench: gave up waiting after {deadline:?}");
            break;
        }
        if last_change.elapsed() > Duration::from_secs(120) {
            eprintln!("bench: no delivery arrived for 120 s; giving up");
            break;
        }
        server.check_running()?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let stragglers (duplicates) show up before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = ticker.await;

    let server_stats = server.stats()?;
    let bench_stats = server::proc_stats("self")?;
    let clean_exit = server.terminate(Duration::from_secs(15));
    if !clean_exit {
        eprintln!("bench: hookline did not exit within 15 s of SIGTERM; killed");
    }

    let mut report = Report::build(
        &load,
        &rx.records(),
        endpoints,
        expected_deliveries,
        accepted,
        server_stats,
        bench_stats,
    );
    report.scenario = format!("{:?}", args.scenario).to_lowercase();
    report.store = args.store.clone();
    report.events = events;
    report.endpoints = endpoints;
    report.concurrency = args.concurrency;
    report.payload_bytes = args.payload_bytes;
    report.offered_rate = args.rate;
    report.server_flags = server_flags.join(" ");
    report.fail_first = args.fail_first();
    report.backlog = backlog_figures;
    drop(store);

    if !args.no_direct {
        eprintln!("bench: direct baseline: {expected} requests straight to the receiver");
        report.direct = Some(direct(args, expected, endpoints).await?);
    }

    report.print();
    let line = report.json_line();
    println!("{line}");
    if let Some(path) = &args.json {
        std::fs::write(path, format!("{line}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}

fn spawn_progress(
    progress: Arc<Progress>,
    rx: Receiver,
    events: usize,
    expected: usize,
    stop: Arc<AtomicBool>,
    deadline: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = Instant::now();
        let (mut prev_sent, mut prev_oks) = (0, 0);
        // Bounded: one line a second for at most the deadline plus slack.
        for tick in 1..=(deadline.as_secs() + 300) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let sent = progress.done.load(Ordering::Relaxed);
            let oks = rx.oks();
            eprintln!(
                "[{tick:>4}s] ingest {sent:>7}/{events} ({:>6}/s)  delivered {oks:>7}/{expected} ({:>6}/s){}",
                sent - prev_sent,
                oks.saturating_sub(prev_oks),
                if rx.is_up() { "" } else { "  [receiver down]" },
            );
            (prev_sent, prev_oks) = (sent, oks);
            if start.elapsed() > deadline + Duration::from_secs(300) {
                return;
            }
        }
    })
}

/// Waits until the receiver's arrivals stop changing for `quiet` (at most `max`).
async fn settle(rx: &Receiver, quiet: Duration, max: Duration) {
    let start = Instant::now();
    let mut last = rx.arrivals();
    let mut since = Instant::now();
    for _ in 0..(max.as_millis() / 20 + 1) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = rx.arrivals();
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= quiet || start.elapsed() >= max {
            return;
        }
    }
}

/// The backlog drain: the receiver comes up with every delivery pending (all but the requests
/// the server holds open), goes down once more near the end, and comes up again.
async fn drain(
    rx: &Receiver,
    server: &mut Server,
    expected: usize,
    deadline: Duration,
    epoch: Instant,
) -> anyhow::Result<Backlog> {
    // The server fills its in-flight slots with requests the receiver holds.
    settle(rx, Duration::from_millis(500), Duration::from_secs(10)).await;
    let held = rx.arrivals();
    let pending_at_start = expected.saturating_sub(held);
    let drain_len = pending_at_start;
    let late_at = held + drain_len * 985 / 1000;
    rx.hold_at(late_at.max(held + 1));
    let up_us = rx.now_us();
    rx.set_up();
    let start = Instant::now();
    eprintln!(
        "bench: receiver up; {held} requests were held, {pending_at_start} deliveries pending"
    );

    // The first request after coming up: the held answers are settled, the next batch claimed
    // and sent.
    let mut first_after_up = None;
    let mut late = None;
    for _ in 0..(deadline.as_millis() / 20 + 1) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        server.check_running()?;
        if first_after_up.is_none() {
            first_after_up = rx.first_ok_after(up_us).map(|t| t - up_us);
        }
        if !rx.is_up() {
            // Down again near the end: wait until the server's in-flight slots are full (no more
            // arrivals), then come up and time the next request with the store almost empty.
            let down_us = rx.now_us();
            settle(rx, Duration::from_millis(300), Duration::from_secs(10)).await;
            let pending = expected.saturating_sub(rx.arrivals());
            let up2_us = rx.now_us();
            rx.set_up();
            let mut next = None;
            for _ in 0..500 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                if let Some(t) = rx.first_ok_after(up2_us) {
                    next = Some(t - up2_us);
                    break;
                }
            }
            late = Some((pending, next, up2_us.saturating_sub(down_us)));
            break;
        }
        if start.elapsed() > deadline || rx.oks() >= expected {
            break;
        }
    }
    // Now wait for the rest.
    for _ in 0..(deadline.as_millis() / 20 + 1) {
        if rx.oks() >= expected || start.elapsed() > deadline {
            break;
        }
        server.check_running()?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = epoch;
    let times: Vec<u64> = rx.ok_times().into_iter().filter(|t| *t > up_us).collect();
    let (late_pending, late_next, paused_us) = late.unwrap_or((0, None, 0));
    let last = times.last().copied().unwrap_or(up_us);
    let drain_us = (last - up_us).saturating_sub(paused_us).max(1);
    let window = |lo: usize, hi: usize, from: u64| -> Option<f64> {
        let (lo, hi) = (lo.min(times.len()), hi.min(times.len()));
        if hi <= lo + 1 {
            return None;
        }
        let start = if lo == 0 { from } else { times[lo - 1] };
        let span = times[hi - 1].saturating_sub(start).max(1);
        Some((hi - lo) as f64 / (span as f64 / 1e6))
    };
    let n = times.len();
    Ok(Backlog {
        held,
        pending_at_start,
        drain_rate: (held + n) as f64 / (drain_us as f64 / 1e6),
        early_rate: window(0, n / 10, up_us),
        late_rate: window(n * 875 / 1000, n * 975 / 1000, up_us),
        first_after_up_ms: first_after_up.map(|us| us as f64 / 1e3),
        late_pending,
        first_after_late_up_ms: late_next.map(|us| us as f64 / 1e3),
    })
}

/// The physical limit: the same generator, bodies and concurrency, straight to a receiver.
async fn direct(args: &Args, requests: usize, endpoints: usize) -> anyhow::Result<Direct> {
    let epoch = Instant::now();
    let rx = Receiver::start(epoch, 0.0, true).await?;
    let urls = (0..endpoints).map(|i| rx.url(i)).collect();
    let progress = Arc::new(Progress::default());
    let load = load::run(
        Target::Direct { urls },
        requests,
        args.concurrency,
        args.payload_bytes,
        0.0,
        epoch,
        progress,
    )
    .await?;
    if let Some(err) = &load.first_error {
        eprintln!(
            "bench: {} direct requests failed; first: {err}",
            load.errors
        );
    }
    let first = load.sent.iter().map(|s| s.sent_us).min().unwrap_or(0);
    let last = rx.last_arrival_us().max(first + 1);
    let mut lat: Vec<u64> = load
        .sent
        .iter()
        .filter(|s| s.id.is_some())
        .map(|s| s.answered_us.saturating_sub(s.sent_us))
        .collect();
    lat.sort_unstable();
    Ok(Direct {
        requests,
        received: rx.oks(),
        errors: load.errors,
        rate: rx.oks() as f64 / ((last - first) as f64 / 1e6),
        p50_ms: report::percentile(&lat, 0.50),
        p99_ms: report::percentile(&lat, 0.99),
    })
}
