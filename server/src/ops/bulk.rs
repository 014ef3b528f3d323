//! Commands of many requests, with a progress bar and a summary: `events send` and `replay`.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use futures_util::{StreamExt as _, TryStreamExt as _, stream};
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
    /// Events accepted at or after this time: RFC 3339 or a duration ago (`2h`).
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
    /// Requests in flight at most.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// List what would be sent again, and send nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Sends again every delivery of the account's events in `[since, until)` (optionally of one
/// type, to one endpoint, in one state). The API has no replay route, so it is composed of
/// existing ones: the events of the range page by page, each event's deliveries, and a manual
/// retry of each.
pub(crate) async fn replay(api: &Api, output: Output, args: ReplayArgs) -> anyhow::Result<()> {
    let account = args.account.account.as_str();
    let until = args.until.unwrap_or_else(Timestamp::now);
    if until <= args.since {
        anyhow::bail!("--until {until} is not after --since {}", args.since);
    }
    let concurrency = usize::from(args.concurrency);

    let spinner = render::spinner(output, "listing events");
    let mut query = vec![
        ("since", args.since.to_rfc3339()),
        ("until", until.to_rfc3339()),
    ];
    if let Some(t) = &args.event_type {
        query.push(("event", t.clone()));
    }
    let events = api
        .all(&["v1", "accounts", account, "events"], &query)
        .await?;
    spinner.set_message(format!("listing the deliveries of {} events", events.len()));
    let mut dquery = Vec::new();
    if let Some(s) = &args.status {
        dquery.push(("status", s.clone()));
    }
    let event_ids: Vec<String> = events
        .iter()
        .filter_map(|e| e["id"].as_str().map(str::to_owned))
        .collect();
    let per_event: Vec<Vec<Value>> = stream::iter(event_ids)
        .map(|id| {
            let dquery = &dquery;
            async move {
                api.all(
                    &["v1", "accounts", account, "events", &id, "deliveries"],
                    dquery,
                )
                .await
            }
        })
        .buffered(concurrency)
        .try_collect()
        .await?;
    spinner.finish_and_clear();
    let deliveries: Vec<String> = per_event
        .into_iter()
        .flatten()
        .filter(|d| match &args.endpoint {
            Some(ep) => d["endpointId"] == ep.as_str(),
            None => true,
        })
        .filter_map(|d| d["id"].as_str().map(str::to_owned))
        .collect();

    let mut failures = Vec::new();
    let mut resent = 0usize;
    if !args.dry_run {
        let bar = render::bar(output, deliveries.len() as u64, "re-sending");
        let results: Vec<(String, anyhow::Result<Value>)> = stream::iter(deliveries.iter())
            .map(|id| {
                let bar = &bar;
                async move {
                    let path = [
                        "v1",
                        "accounts",
                        account,
                        "deliveries",
                        id.as_str(),
                        "retry",
                    ];
                    let r = api.post(&path, &json!({})).await;
                    bar.inc(1);
                    (id.clone(), r)
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        bar.finish_and_clear();
        for (id, r) in results {
            match r {
                Ok(_) => resent += 1,
                Err(e) => {
                    let (code, detail) = reason(&e);
                    failures.push(Failure {
                        item: id,
                        code,
                        detail,
                    });
                }
            }
        }
        failures.sort_by(|a, b| a.item.cmp(&b.item));
    }

    match output {
        Output::Json => render::json(&json!({
            "since": args.since,
            "until": until,
            "events": events.len(),
            "deliveries": deliveries.len(),
            "resent": resent,
            "failed": failures.len(),
            "dryRun": args.dry_run,
            "deliveryIds": deliveries,
            "failures": failures_json(&failures, "delivery"),
        }))?,
        Output::Table => {
            render::print(&render::summary(&[
                ("range", format!("{} – {until}", args.since)),
                ("events", events.len().to_string()),
                ("deliveries", deliveries.len().to_string()),
                (
                    if args.dry_run {
                        "would re-send"
                    } else {
                        "re-sent"
                    },
                    if args.dry_run {
                        deliveries.len()
                    } else {
                        resent
                    }
                    .to_string(),
                ),
                ("failed", failures.len().to_string()),
            ]))?;
            show_failures(&failures, "delivery");
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} of {} deliveries were not re-sent: {}",
            failures.len(),
            deliveries.len(),
            by_code(&failures)
        )
    }
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
