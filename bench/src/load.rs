//! The load generator: `concurrency` tasks posting event bodies, optionally paced to a rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;

use crate::receiver::micros;

/// The request body of event `seq`: `{"event":"rx.completed","data":{"seq":…,"pad":"…"}}`,
/// padded so that it is `bytes` long (or a little longer for tiny sizes).
pub(crate) fn body(seq: usize, bytes: usize) -> Bytes {
    let head = format!(r#"{{"event":"rx.completed","data":{{"seq":{seq},"pad":""#);
    let tail = r#""}}"#;
    let pad = bytes.saturating_sub(head.len() + tail.len());
    let mut v = Vec::with_capacity(head.len() + pad + tail.len());
    v.extend_from_slice(head.as_bytes());
    v.resize(head.len() + pad, b'x');
    v.extend_from_slice(tail.as_bytes());
    Bytes::from(v)
}

/// Where the generator sends.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// `POST {url}` with the admin key; a 202 carries the event id.
    Hookline { url: String, key: String },
    /// Straight to the receiver: request `i` goes to `urls[i % urls.len()]` with
    /// `webhook-id: direct_<i>`.
    Direct { urls: Vec<String> },
}

/// One request's outcome.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sent {
    /// When it was sent and answered, µs since the run's epoch.
    pub(crate) sent_us: u64,
    pub(crate) answered_us: u64,
    /// The event id from a 202 (Hookline), or `direct_<i>`; `None` if the request failed.
    pub(crate) id: Option<String>,
    /// Deliveries the server created for it.
    pub(crate) deliveries: u32,
}

/// What a generator run produced.
#[derive(Debug)]
pub(crate) struct LoadResult {
    /// Per request, by sequence number.
    pub(crate) sent: Vec<Sent>,
    /// Requests that failed (no 202/200, or an error), with the first error seen.
    pub(crate) errors: usize,
    pub(crate) first_error: Option<String>,
}

/// Progress counters the reporter reads.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub(crate) done: AtomicUsize,
}

#[derive(Debug, serde::Deserialize)]
struct Accepted {
    id: String,
    deliveries: u32,
}

/// Sends `count` requests with `concurrency` tasks; `rate` (requests/s, 0 = as fast as possible)
/// paces them: request `i` is not sent before `start + i / rate`.
pub(crate) async fn run(
    target: Target,
    count: usize,
    concurrency: usize,
    payload_bytes: usize,
    rate: f64,
    epoch: Instant,
    progress: Arc<Progress>,
) -> anyhow::Result<LoadResult> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(60))
        .build()
        .context("building the HTTP client")?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let target = Arc::new(target);
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        let (client, next, target, progress) = (
            client.clone(),
            next.clone(),
            target.clone(),
            progress.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut out: Vec<(usize, Sent, Option<String>)> = Vec::new();
            // Bounded: each pass takes a fresh sequence number below `count`.
            for _ in 0..count {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                if rate > 0.0 {
                    let at = start + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(at.into()).await;
                }
                let (sent, err) = send_one(&client, &target, i, payload_bytes, epoch).await;
                progress.done.fetch_add(1, Ordering::Relaxed);
                out.push((i, sent, err));
            }
            out
        }));
    }
    let mut sent = vec![Sent::default(); count];
    let (mut errors, mut first_error) = (0, None);
    for task in tasks {
        for (i, s, err) in task.await.context("a load task panicked")? {
            if let Some(err) = err {
                errors += 1;
                first_error.get_or_insert(err);
            }
            sent[i] = s;
        }
    }
    Ok(LoadResult {
        sent,
        errors,
        first_error,
    })
}

async fn send_one(
    client: &reqwest::Client,
    target: &Target,
    i: usize,
    payload_bytes: usize,
    epoch: Instant,
) -> (Sent, Option<String>) {
    let body = body(i, payload_bytes);
    let sent_us = micros(epoch.elapsed());
    let req = match target {
        Target::Hookline { url, key } => client.post(url).bearer_auth(key),
        Target::Direct { urls } => client
            .post(&urls[i % urls.len()])
            .header("webhook-id", format!("direct_{i}")),
    };
    let res = req
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    let mut sent = Sent {
        sent_us,
        ..Sent::default()
    };
    let err = match res {
        Err(e) => Some(format!("request {i}: {e}")),
        Ok(res) => {
            let status = res.status().as_u16();
            let text = res.bytes().await.unwrap_or_default();
            sent.answered_us = micros(epoch.elapsed());
            match (target, status) {
                (Target::Hookline { .. }, 202) => match serde_json::from_slice::<Accepted>(&text) {
                    Ok(a) => {
                        sent.id = Some(a.id);
                        sent.deliveries = a.deliveries;
                        None
                    }
                    Err(e) => Some(format!("request {i}: bad 202 body: {e}")),
                },
                (Target::Direct { .. }, 200) => {
                    sent.id = Some(format!("direct_{i}"));
                    sent.deliveries = 1;
                    None
                }
                _ => Some(format!(
                    "request {i}: HTTP {status}: {}",
                    String::from_utf8_lossy(&text[..text.len().min(200)])
                )),
            }
        }
    };
    (sent, err)
}
