//! Commands of many requests, with a progress bar and a summary: `events send` and `replay`.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use futures_util::{StreamExt as _, stream};
use hookline_core::Timestamp;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::client::{Api, reason};
use super::render::{self, Output};
use super::{AccountArg, ClientArgs, parse_time};

/// Failures listed one by one in a table summary; the JSON summary has them all.
const FAILURES_SHOWN: usize = 20;

/// `events` actions.
#[derive(Debug, Subcommand)]
pub(crate) enum EventsAction {
    /// Send many events: a JSON array of event objects, or one object per line (NDJSON), each
    /// `{"event", "data", "site"?, "queueId"?, "idempotencyKey"?}`.
    Send {
        #[command(flatten)]
        account: AccountArg,
        /// The file to read (`-` or none: standard input).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Requests in flight at most.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
        concurrency: u16,
    },
}

/// The events of an input: a JSON array of them, or JSON values one after another (NDJSON,
/// or objects separated by any whitespace), kept byte for byte.
fn split_events(input: &[u8]) -> anyhow::Result<Vec<Box<RawValue>>> {
    let mut events = Vec::new();
    for value in serde_json::Deserializer::from_slice(input).into_iter::<Box<RawValue>>() {
        let value =
            value.context("the input is neither a JSON array nor one JSON object per line")?;
        if value.get().starts_with('[') {
            let items: Vec<Box<RawValue>> = serde_json::from_str(value.get())?;
            events.extend(items);
        } else {
            events.push(value);
        }
    }
    Ok(events)
}

/// One event's request: its body, and its `idempotencyKey` field moved to the
/// `Idempotency-Key` header (where the single-event route takes it). Every other field is kept
/// byte for byte; input that is not an object is sent as it is, for the API to judge.
fn event_request(raw: &RawValue) -> (Vec<u8>, Option<String>) {
    let unchanged = || (raw.get().as_bytes().to_vec(), None);
    let Ok(mut fields) = serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(raw.get()) else {
        return unchanged();
    };
    let Some(key) = fields.remove("idempotencyKey") else {
        return unchanged();
    };
    match (
        serde_json::from_str::<String>(key.get()),
        serde_json::to_vec(&fields),
    ) {
        (Ok(key), Ok(body)) => (body, Some(key)),
        _ => unchanged(),
    }
}

/// A failure of one item.
#[derive(Debug)]
struct Failure {
    /// Which item: the event's position in the input (from 1), or the delivery's id.
    item: String,
    code: String,
    detail: String,
}

/// Failure counts by code, for the summary.
fn by_code(failures: &[Failure]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for f in failures {
        *counts.entry(&f.code).or_default() += 1;
    }
    counts
        .iter()
        .map(|(code, n)| format!("{n} {code}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn failures_json(failures: &[Failure], item: &str) -> Value {
    failures
        .iter()
        .map(|f| json!({ item: f.item, "code": f.code, "detail": f.detail }))
        .collect()
}

/// Prints the first failures, one line each, on standard error.
fn show_failures(failures: &[Failure], what: &str) {
    for f in failures.iter().take(FAILURES_SHOWN) {
        eprintln!("{what} {}: {} ({})", f.item, f.detail, f.code);
    }
    if failures.len() > FAILURES_SHOWN {
        eprintln!(
            "… and {} more (--output json lists them all)",
            failures.len() - FAILURES_SHOWN
        );
    }
}

pub(crate) async fn events(api: &Api, output: Output, action: EventsAction) -> anyhow::Result<()> {
    let EventsAction::Send {
        account,
        file,
        concurrency,
    } = action;
    let input = match file.as_deref() {
        Some(path) if path.as_os_str() != "-" => {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
        }
        _ => {
            if std::io::stdin().is_terminal() {
                eprintln!("reading events from standard input (end with ctrl-d)");
            }
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading standard input")?;
            buf
        }
    };
    let items = split_events(&input)?;
    let total = items.len();
    let bar = render::bar(output, total as u64, "sending");
    let path = ["v1", "accounts", account.account.as_str(), "events"];
    let results: Vec<(usize, anyhow::Result<Value>)> = stream::iter(items.into_iter().enumerate())
        .map(|(i, body)| {
            let (api, bar) = (api, &bar);
            async move {
                let (body, key) = event_request(&body);
                let r = api
                    .send_keyed(&path, &body, key.as_deref())
                    .await
                    .map(Option::unwrap_or_default);
                bar.inc(1);
                (i, r)
            }
        })
        .buffer_unordered(usize::from(concurrency))
        .collect()
        .await;
    bar.finish_and_clear();

    let (mut sent, mut duplicates, mut deliveries) = (0usize, 0usize, 0u64);
    let mut failures = Vec::new();
    let mut ids = vec![Value::Null; total];
    for (i, r) in results {
        match r {
            Ok(receipt) => {
                if receipt["duplicate"] == true {
                    duplicates += 1;
                } else {
                    sent += 1;
                    deliveries += receipt["deliveries"].as_u64().unwrap_or(0);
                }
                ids[i] = receipt["id"].clone();
            }
            Err(e) => {
                let (code, detail) = reason(&e);
                failures.push(Failure {
                    item: (i + 1).to_string(),
                    code,
                    detail,
                });
            }
        }
    }
    failures.sort_by_key(|f| f.item.parse::<usize>().unwrap_or(usize::MAX));
    match output {
        Output::Json => render::json(&json!({
            "total": total,
            "sent": sent,
            "duplicates": duplicates,
            "failed": failures.len(),
            "deliveries": deliveries,
            "ids": ids,
            "failures": failures_json(&failures, "index"),
        }))?,
        Output::Table => {
            render::print(&render::summary(&[
                ("events", total.to_string()),
                ("sent", sent.to_string()),
                ("duplicates", duplicates.to_string()),
                ("failed", failures.len().to_string()),
                ("deliveries", deliveries.to_string()),
            ]))?;
            show_failures(&failures, "event");
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} of {total} events failed: {}",
            failures.len(),
            by_code(&failures)
        )
    }
}

/// `replay` options.
#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
    #[command(flatten)]
    account: AccountArg,
    /// Deliveries created (with their events) at or after this time: RFC 3339 or a duration
    /// ago (`2h`).
    #[arg(long, value_parser = parse_time)]
    since: Timestamp,
    /// … and before this time [default: now].
    #[arg(long, value_parser = parse_time)]
    until: Option<Timestamp>,
    /// Only deliveries to this endpoint.
    #[arg(long)]
    endpoint: Option<String>,
    /// Only events of this type.
    #[arg(long)]
    event_type: Option<String>,
    /// Only deliveries in this state: pending, succeeded, failed or cancelled.
    #[arg(long)]
    status: Option<String>,
    /// List what would be sent again, and send nothing.
    #[arg(long)]
    dry_run: bool,
}

/// How often `replay` reads its job's progress.
const REPLAY_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// Sends again every delivery of the account created in `[since, until)` (optionally of one
/// event type, to one endpoint, in one state), succeeded ones too: it starts a replay job on the
/// server (`POST /v1/accounts/{account}/replay`) and follows its progress until it ends. A dry
/// run lists the matching deliveries (`GET /v1/accounts/{account}/deliveries`) and sends
/// nothing.
pub(crate) async fn replay(api: &Api, output: Output, args: ReplayArgs) -> anyhow::Result<()> {
    let account = args.account.account.as_str();
    let until = args.until.unwrap_or_else(Timestamp::now);
    if until <= args.since {
        anyhow::bail!("--until {until} is not after --since {}", args.since);
    }
    if args.dry_run {
        return replay_dry_run(api, output, &args, until).await;
    }
    let mut body = json!({"since": args.since, "until": until});
    if let Some(ep) = &args.endpoint {
        body["endpoint"] = json!(ep);
    }
    if let Some(t) = &args.event_type {
        body["eventTypes"] = json!([t]);
    }
    if let Some(st) = &args.status {
        body["status"] = json!(st);
    }
    let mut job = api
        .post(&["v1", "accounts", account, "replay"], &body)
        .await?;
    let id = job["id"]
        .as_str()
        .context("the replay job has no id")?
        .to_owned();
    let bar = render::job_bar(output, "re-queuing");
    while job["state"] == "running" {
        tokio::time::sleep(REPLAY_POLL).await;
        job = match api
            .get(&["v1", "accounts", account, "replay", &id], &[])
            .await
        {
            Ok(j) => j,
            Err(e) => {
                bar.finish_and_clear();
                return Err(e.context(format!(
                    "lost replay {id} (a server restart forgets running replays; what it \
                     re-queued stays queued: run replay again with --until set to where it had \
                     reached, {})",
                    job["reached"].as_str().unwrap_or("unknown")
                )));
            }
        };
        let progress = job["progress"].as_f64().unwrap_or(0.0);
        bar.set_position((progress * 1000.0).round() as u64);
        bar.set_message(format!("{} re-queued", job["queued"]));
    }
    bar.finish_and_clear();
    let count = |k: &str| job[k].as_u64().unwrap_or(0);
    let (matched, queued) = (count("matched"), count("queued"));
    match output {
        Output::Json => render::json(&json!({
            "job": id,
            "state": job["state"],
            "since": args.since,
            "until": until,
            "deliveries": matched,
            "resent": queued,
            "skipped": matched.saturating_sub(queued),
            "dryRun": false,
            "error": job["error"],
        }))?,
        Output::Table => render::print(&render::summary(&[
            ("job", id.clone()),
            ("range", format!("{} – {until}", args.since)),
            ("deliveries", matched.to_string()),
            ("re-sent", queued.to_string()),
            ("skipped (gone)", matched.saturating_sub(queued).to_string()),
        ]))?,
    }
    if job["state"] == "completed" {
        Ok(())
    } else {
        anyhow::bail!(
            "replay {id} {}: {} (it had re-queued {queued}; run again with --until {} to go on)",
            job["state"].as_str().unwrap_or("stopped"),
            job["error"].as_str().unwrap_or("no reason given"),
            job["reached"].as_str().unwrap_or("unknown"),
        )
    }
}

/// `replay --dry-run`: the deliveries a replay would re-queue, listed.
async fn replay_dry_run(
    api: &Api,
    output: Output,
    args: &ReplayArgs,
    until: Timestamp,
) -> anyhow::Result<()> {
    let account = args.account.account.as_str();
    let mut query = vec![
        ("since", args.since.to_rfc3339()),
        ("until", until.to_rfc3339()),
    ];
    for (name, value) in [
        ("endpoint", &args.endpoint),
        ("eventType", &args.event_type),
        ("status", &args.status),
    ] {
        if let Some(v) = value {
            query.push((name, v.clone()));
        }
    }
    let spinner = render::spinner(output, "listing deliveries");
    let rows = api
        .all(&["v1", "accounts", account, "deliveries"], &query)
        .await?;
    spinner.finish_and_clear();
    let ids: Vec<&str> = rows.iter().filter_map(|d| d["id"].as_str()).collect();
    match output {
        Output::Json => render::json(&json!({
            "since": args.since,
            "until": until,
            "deliveries": ids.len(),
            "resent": 0,
            "dryRun": true,
            "deliveryIds": ids,
        }))?,
        Output::Table => render::print(&render::summary(&[
            ("range", format!("{} – {until}", args.since)),
            ("deliveries", ids.len().to_string()),
            ("would re-send", ids.len().to_string()),
        ]))?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_a_json_array_or_one_object_per_line() {
        let array = br#"[{"event":"a.b","data":{"z":1,"a":2}}, {"event":"c.d","data":{}}]"#;
        let events = split_events(array).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[0].get(),
            r#"{"event":"a.b","data":{"z":1,"a":2}}"#,
            "byte for byte"
        );
        let ndjson = b"{\"event\":\"a.b\",\"data\":{}}\n\n{\"event\":\"c.d\",\"data\":{}}\n";
        assert_eq!(split_events(ndjson).unwrap().len(), 2);
        assert!(split_events(b"").unwrap().is_empty());
        let err = split_events(b"{\"event\":\"a.b\"\n{").unwrap_err();
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
    }

    #[test]
    fn the_idempotency_key_goes_to_the_header_and_the_rest_stays_as_it_was() {
        let raw = RawValue::from_string(
            r#"{"event":"a.b","idempotencyKey":"k1","data":{"z": 1, "a":[2]}}"#.to_owned(),
        )
        .unwrap();
        let (body, key) = event_request(&raw);
        assert_eq!(key.as_deref(), Some("k1"));
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"data":{"z": 1, "a":[2]},"event":"a.b"}"#
        );
        let plain = RawValue::from_string(r#"{"event":"a.b","data":{}}"#.to_owned()).unwrap();
        assert_eq!(
            event_request(&plain),
            (plain.get().as_bytes().to_vec(), None)
        );
        let odd = RawValue::from_string("[1]".to_owned()).unwrap();
        assert_eq!(event_request(&odd), (b"[1]".to_vec(), None));
    }
}
