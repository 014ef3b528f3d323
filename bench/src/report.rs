//! Figures of a run: computed from what the generator and the receiver recorded, printed as a
//! table and as one JSON line.

use std::collections::HashMap;

use serde::Serialize;

use crate::load::LoadResult;
use crate::receiver::Rec;
use crate::server::ProcStats;

/// The backlog drain.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Backlog {
    /// Requests the server had in flight (held by the down receiver) when it came up.
    pub(crate) held: usize,
    /// Deliveries waiting in the store when the receiver came up.
    pub(crate) pending_at_start: usize,
    /// Deliveries/s from the receiver coming up to the last arrival (the pause near the end
    /// subtracted).
    pub(crate) drain_rate: f64,
    /// Deliveries/s over the first 10 % of the drain.
    pub(crate) early_rate: Option<f64>,
    /// Deliveries/s over 87.5–97.5 % of the drain.
    pub(crate) late_rate: Option<f64>,
    /// Receiver up → first new request, with the store full: settle the held requests, claim,
    /// sign, send.
    pub(crate) first_after_up_ms: Option<f64>,
    /// Deliveries pending when the receiver came up the second time (near the end).
    pub(crate) late_pending: usize,
    /// The same delay with the store almost drained.
    pub(crate) first_after_late_up_ms: Option<f64>,
}

/// The direct-HTTP baseline.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Direct {
    pub(crate) requests: usize,
    pub(crate) received: usize,
    pub(crate) errors: usize,
    /// Requests/s received.
    pub(crate) rate: f64,
    /// Request → response.
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Report {
    pub(crate) scenario: String,
    pub(crate) store: String,
    pub(crate) events: usize,
    pub(crate) endpoints: usize,
    pub(crate) concurrency: usize,
    pub(crate) payload_bytes: usize,
    /// Events/s offered (0 = unpaced).
    pub(crate) offered_rate: f64,
    pub(crate) server_flags: String,
    pub(crate) fail_first: f64,
    /// Events answered 202.
    pub(crate) accepted: usize,
    pub(crate) ingest_errors: usize,
    /// Events/s answered 202 (first request sent → last 202).
    pub(crate) ingest_rate: f64,
    pub(crate) expected_deliveries: usize,
    pub(crate) delivered: usize,
    /// Deliveries/s received (first event sent → last first-time delivery).
    pub(crate) delivery_rate: f64,
    /// 202 → first successful arrival, ms.
    pub(crate) latency_p50_ms: f64,
    pub(crate) latency_p90_ms: f64,
    pub(crate) latency_p99_ms: f64,
    pub(crate) latency_max_ms: f64,
    pub(crate) lost: usize,
    /// Extra successful requests for a (endpoint, event) that already had one.
    pub(crate) duplicates: usize,
    /// Requests the receiver answered 500.
    pub(crate) failed_attempts: usize,
    pub(crate) wall_secs: f64,
    pub(crate) server_peak_rss_mib: f64,
    pub(crate) server_cpu_secs: f64,
    /// The bench process (generator + receiver) for comparison.
    pub(crate) bench_cpu_secs: f64,
    /// The server's CPU seconds per thread name.
    pub(crate) server_threads: Vec<(String, f64)>,
    pub(crate) direct: Option<Direct>,
    /// Hookline's delivery rate / the direct rate.
    pub(crate) ratio_to_direct: Option<f64>,
    pub(crate) backlog: Option<Backlog>,
}

/// The `p` quantile (nearest rank) of sorted µs values, in ms.
pub(crate) fn percentile(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    sorted_us[rank - 1] as f64 / 1e3
}

fn per_sec(count: usize, span_us: u64) -> f64 {
    count as f64 / (span_us.max(1) as f64 / 1e6)
}

impl Report {
    pub(crate) fn build(
        load: &LoadResult,
        recs: &HashMap<(u32, String), Rec>,
        endpoints: usize,
        expected_deliveries: usize,
        accepted: usize,
        server: ProcStats,
        bench: ProcStats,
    ) -> Self {
        let first_sent = load.sent.iter().map(|s| s.sent_us).min().unwrap_or(0);
        let last_202 = load
            .sent
            .iter()
            .filter(|s| s.id.is_some())
            .map(|s| s.answered_us)
            .max()
            .unwrap_or(first_sent);
        let mut lat = Vec::with_capacity(expected_deliveries);
        let mut last_ok = first_sent;
        let mut lost = 0;
        for sent in load.sent.iter().filter(|s| s.id.is_some()) {
            let id = sent.id.clone().unwrap_or_default();
            for ep in 0..endpoints {
                let key = (u32::try_from(ep).unwrap_or(u32::MAX), id.clone());
                match recs.get(&key).and_then(|r| r.first_ok_us) {
                    Some(t) => {
                        lat.push(t.saturating_sub(sent.answered_us));
                        last_ok = last_ok.max(t);
                    }
                    None => lost += 1,
                }
            }
        }
        lat.sort_unstable();
        let delivered = lat.len();
        let duplicates = recs
            .values()
            .map(|r| r.oks.saturating_sub(1) as usize)
            .sum();
        let failed_attempts = recs
            .values()
            .map(|r| r.requests.saturating_sub(r.oks) as usize)
            .sum();
        Self {
            accepted,
            ingest_errors: load.errors,
            ingest_rate: per_sec(accepted, last_202.saturating_sub(first_sent)),
            expected_deliveries,
            delivered,
            delivery_rate: per_sec(delivered, last_ok.saturating_sub(first_sent)),
            latency_p50_ms: percentile(&lat, 0.50),
            latency_p90_ms: percentile(&lat, 0.90),
            latency_p99_ms: percentile(&lat, 0.99),
            latency_max_ms: percentile(&lat, 1.0),
            lost: lost.max(expected_deliveries.saturating_sub(delivered)),
            duplicates,
            failed_attempts,
            wall_secs: last_ok.saturating_sub(first_sent) as f64 / 1e6,
            server_peak_rss_mib: server.peak_rss as f64 / (1024.0 * 1024.0),
            server_cpu_secs: server.cpu_secs,
            bench_cpu_secs: bench.cpu_secs,
            server_threads: server.threads,
            ..Self::default()
        }
    }

    pub(crate) fn print(&mut self) {
        if let Some(d) = &self.direct {
            self.ratio_to_direct = Some(self.delivery_rate / d.rate.max(f64::MIN_POSITIVE));
        }
        let rows: Vec<(&str, String)> = self.rows();
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        println!();
        println!(
            "Hookline delivery benchmark: {} ({} store)",
            self.scenario, self.store
        );
        for (k, v) in rows {
            println!("  {k:<width$}  {v}");
        }
    }

    fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = vec![
            (
                "load",
                format!(
                    "{} events × {} endpoints, {} B bodies, {} clients, {}",
                    self.events,
                    self.endpoints,
                    self.payload_bytes,
                    self.concurrency,
                    if self.offered_rate > 0.0 {
                        format!("{} events/s offered", self.offered_rate)
                    } else {
                        "unpaced".to_owned()
                    }
                ),
            ),
            ("server flags", self.server_flags.clone()),
            (
                "ingest",
                format!(
                    "{:.0} events/s answered 202 ({} accepted, {} errors)",
                    self.ingest_rate, self.accepted, self.ingest_errors
                ),
            ),
            (
                "delivery",
                format!(
                    "{:.0} deliveries/s received ({} of {} in {:.1} s)",
                    self.delivery_rate, self.delivered, self.expected_deliveries, self.wall_secs
                ),
            ),
            (
                "latency 202→receipt",
                format!(
                    "p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
                    self.latency_p50_ms,
                    self.latency_p90_ms,
                    self.latency_p99_ms,
                    self.latency_max_ms
                ),
            ),
            (
                "lost / duplicates",
                format!("{} / {}", self.lost, self.duplicates),
            ),
        ];
        if self.fail_first > 0.0 {
            rows.push((
                "failed attempts",
                format!(
                    "{} answered 500 ({:.0} % of first attempts asked)",
                    self.failed_attempts,
                    self.fail_first * 100.0
                ),
            ));
        }
        rows.push((
            "server",
            format!(
                "peak RSS {:.1} MiB, CPU {:.1} s (bench process: {:.1} s)",
                self.server_peak_rss_mib, self.server_cpu_secs, self.bench_cpu_secs
            ),
        ));
        if !self.server_threads.is_empty() {
            let threads: Vec<String> = self
                .server_threads
                .iter()
                .take(5)
                .map(|(name, secs)| format!("{name} {secs:.1} s"))
                .collect();
            rows.push(("server CPU by thread", threads.join(", ")));
        }
        if let Some(b) = &self.backlog {
            let ms = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.1} ms"));
            let rate = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.0}/s"));
            rows.push((
                "note",
                "delivery rate and latency above include the time the receiver was down".to_owned(),
            ));
            rows.push((
                "backlog drain",
                format!(
                    "{:.0} deliveries/s ({} pending + {} held when the receiver came up)",
                    b.drain_rate, b.pending_at_start, b.held
                ),
            ));
            rows.push((
                "drain rate early/late",
                format!(
                    "first 10 %: {}, 87.5–97.5 %: {}",
                    rate(b.early_rate),
                    rate(b.late_rate)
                ),
            ));
            rows.push((
                "claim latency",
                format!(
                    "up → next new request: {} with {} pending, {} with {} pending",
                    ms(b.first_after_up_ms),
                    b.pending_at_start,
                    ms(b.first_after_late_up_ms),
                    b.late_pending
                ),
            ));
        }
        if let Some(d) = &self.direct {
            rows.push((
                "direct HTTP (limit)",
                format!(
                    "{:.0} requests/s ({} of {}, {} errors; p50 {:.1} ms, p99 {:.1} ms)",
                    d.rate, d.received, d.requests, d.errors, d.p50_ms, d.p99_ms
                ),
            ));
            rows.push((
                "Hookline / direct",
                format!(
                    "{:.2} of the direct delivery rate",
                    self.ratio_to_direct.unwrap_or(0.0)
                ),
            ));
        }
        rows
    }

    pub(crate) fn json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!(r#"{{"error":"{e}"}}"#))
    }
}
