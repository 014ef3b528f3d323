//! The receiver: an axum server on 127.0.0.1 that records, per (endpoint path, event id), when the
//! first successful request arrived and how many requests came, and answers 200 — or 500 for the
//! first attempt of a chosen fraction of events, or nothing yet while it is "down" (held).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use tokio::sync::watch;

/// What the receiver saw for one (endpoint, event id).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Rec {
    /// Requests that arrived.
    pub(crate) requests: u32,
    /// Requests answered 200.
    pub(crate) oks: u32,
    /// When the first request answered 200 arrived (µs since the run's epoch).
    pub(crate) first_ok_us: Option<u64>,
}

#[derive(Debug)]
struct Shared {
    epoch: Instant,
    /// Keyed by (endpoint index, event id).
    recs: Mutex<HashMap<(u32, String), Rec>>,
    /// Every request that arrived.
    arrivals: AtomicUsize,
    /// Requests answered (or about to be answered) 200.
    oks: AtomicUsize,
    /// µs since the epoch of the latest arrival.
    last_arrival_us: AtomicU64,
    /// Fraction (per mille) of events whose first attempt gets a 500.
    fail_permille: u32,
    /// `true` while the receiver answers; `false` holds requests until it is set again.
    up: watch::Sender<bool>,
    /// When arrivals reach this count the receiver goes down (holds) once; 0 = never.
    hold_at: AtomicUsize,
}

/// A running receiver.
#[derive(Debug, Clone)]
pub(crate) struct Receiver {
    pub(crate) addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Receiver {
    /// Starts on a free loopback port. `up == false` starts it holding every request.
    pub(crate) async fn start(
        epoch: Instant,
        fail_fraction: f64,
        up: bool,
    ) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            epoch,
            recs: Mutex::new(HashMap::new()),
            arrivals: AtomicUsize::new(0),
            oks: AtomicUsize::new(0),
            last_arrival_us: AtomicU64::new(0),
            fail_permille: (fail_fraction.clamp(0.0, 1.0) * 1000.0).round() as u32,
            up: watch::Sender::new(up),
            hold_at: AtomicUsize::new(0),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                eprintln!("receiver stopped: {err}");
            }
        });
        Ok(Self { addr, shared })
    }

    pub(crate) fn url(&self, endpoint: usize) -> String {
        format!("http://{}/e{endpoint}", self.addr)
    }

    pub(crate) fn arrivals(&self) -> usize {
        self.shared.arrivals.load(Ordering::Relaxed)
    }

    pub(crate) fn oks(&self) -> usize {
        self.shared.oks.load(Ordering::Relaxed)
    }

    pub(crate) fn last_arrival_us(&self) -> u64 {
        self.shared.last_arrival_us.load(Ordering::Relaxed)
    }

    pub(crate) fn is_up(&self) -> bool {
        *self.shared.up.borrow()
    }

    /// Answers every held request and every later one.
    pub(crate) fn set_up(&self) {
        self.shared.up.send_replace(true);
    }

    /// Go down (hold requests) once `arrivals` requests have arrived.
    pub(crate) fn hold_at(&self, arrivals: usize) {
        self.shared.hold_at.store(arrivals, Ordering::SeqCst);
    }

    /// A copy of the records.
    pub(crate) fn records(&self) -> HashMap<(u32, String), Rec> {
        self.shared
            .recs
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// Arrival times (µs since epoch) of the first 200 of every (endpoint, event), sorted.
    pub(crate) fn ok_times(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .shared
            .recs
            .lock()
            .map(|m| m.values().filter_map(|r| r.first_ok_us).collect())
            .unwrap_or_default();
        v.sort_unstable();
        v
    }

    /// The earliest first-200 arrival strictly after `after_us`.
    pub(crate) fn first_ok_after(&self, after_us: u64) -> Option<u64> {
        self.shared.recs.lock().ok().and_then(|m| {
            m.values()
                .filter_map(|r| r.first_ok_us)
                .filter(|t| *t > after_us)
                .min()
        })
    }

    pub(crate) fn now_us(&self) -> u64 {
        micros(self.shared.epoch.elapsed())
    }
}

pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// FNV-1a, to pick the failing events deterministically from their id.
fn fnv(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

async fn handle(
    State(s): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    _body: Bytes,
) -> StatusCode {
    let now_us = micros(s.epoch.elapsed());
    let n = s.arrivals.fetch_add(1, Ordering::SeqCst) + 1;
    s.last_arrival_us.fetch_max(now_us, Ordering::Relaxed);
    let hold_at = s.hold_at.load(Ordering::SeqCst);
    if hold_at != 0
        && n >= hold_at
        && s.hold_at
            .compare_exchange(hold_at, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    {
        s.up.send_replace(false);
    }

    let endpoint = uri
        .path()
        .strip_prefix("/e")
        .and_then(|n| n.parse::<u32>().ok());
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (Some(endpoint), Some(id)) = (endpoint, id) else {
        return StatusCode::NOT_FOUND;
    };
    let fail_first = s.fail_permille > 0 && fnv(&id) % 1000 < s.fail_permille;
    let ok = {
        let Ok(mut recs) = s.recs.lock() else {
            return StatusCode::INTERNAL_SERVER_ERROR;
        };
        let rec = recs.entry((endpoint, id)).or_default();
        let ok = !(fail_first && rec.requests == 0);
        rec.requests += 1;
        if ok {
            rec.oks += 1;
            rec.first_ok_us.get_or_insert(now_us);
        }
        ok
    };
    if ok {
        s.oks.fetch_add(1, Ordering::Relaxed);
    }

    // "Down": the connection is accepted but nothing is answered until the receiver comes up.
    let mut up = s.up.subscribe();
    if !*up.borrow_and_update() {
        let _ = up.wait_for(|v| *v).await;
    }
    if ok {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}
