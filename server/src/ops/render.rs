//! Printing results: tables for people (comfy-table), JSON for scripts, progress bars
//! (indicatif) only on a terminal.

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use comfy_table::{ContentArrangement, Table, presets};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    /// Aligned tables for people.
    Table,
    /// The API's JSON, for scripts.
    Json,
}

/// A table's columns: header and the JSON field shown under it.
pub(crate) type Columns = &'static [(&'static str, &'static str)];

pub(crate) const ACCOUNTS: Columns = &[("ID", "id"), ("NAME", "name"), ("CREATED", "createdAt")];
pub(crate) const SITES: Columns = &[
    ("ID", "id"),
    ("ACCOUNT", "account"),
    ("NAME", "name"),
    ("CREATED", "createdAt"),
];
pub(crate) const ENDPOINTS: Columns = &[
    ("ID", "id"),
    ("URL", "url"),
    ("ENABLED", "enabled"),
    ("EVENT TYPES", "eventTypes"),
    ("SITES", "sites"),
    ("DISABLED REASON", "disabledReason"),
    ("CREATED", "createdAt"),
];
pub(crate) const SECRETS: Columns = &[
    ("SECRET", "secret"),
    ("CREATED", "createdAt"),
    ("EXPIRES", "expiresAt"),
];
pub(crate) const EVENT_TYPES: Columns = &[
    ("NAME", "name"),
    ("DESCRIPTION", "description"),
    ("ARCHIVED", "archived"),
    ("CREATED", "createdAt"),
];
pub(crate) const KEYS: Columns = &[
    ("ID", "id"),
    ("ACCOUNT", "account"),
    ("PREFIX", "prefix"),
    ("KEY", "key"),
    ("READ ONLY", "readOnly"),
    ("EXPIRES", "expiresAt"),
    ("CREATED", "createdAt"),
];
pub(crate) const KEY_LIST: Columns = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("PREFIX", "prefix"),
    ("SCOPE", "scope"),
    ("ACCOUNT", "account"),
    ("READ ONLY", "readOnly"),
    ("BOOTSTRAP", "bootstrap"),
    ("EXPIRES", "expiresAt"),
    ("LAST USED", "lastUsedAt"),
    ("CREATED", "createdAt"),
];
pub(crate) const AUDIT: Columns = &[
    ("AT", "at"),
    ("ACCOUNT", "account"),
    ("ACTOR", "actor"),
    ("ACTION", "action"),
    ("TARGET", "target"),
];
pub(crate) const DELIVERIES: Columns = &[
    ("ID", "id"),
    ("EVENT", "eventId"),
    ("ENDPOINT", "endpointId"),
    ("STATUS", "status"),
    ("ATTEMPTS", "attempts"),
    ("NEXT ATTEMPT", "nextAttemptAt"),
];

/// Writes `text` to standard output; a closed pipe (`| head`) is not an error.
pub(crate) fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Prints `v` as indented JSON.
pub(crate) fn json(v: &Value) -> anyhow::Result<()> {
    print(&format!("{}\n", serde_json::to_string_pretty(v)?))
}

/// One cell: strings as they are, lists comma-separated, absent values as `-`, an actor as
/// `type:id`.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => "-".to_owned(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| cell(Some(i)))
            .collect::<Vec<_>>()
            .join(","),
        // An audit entry's actor: `key:key_…`, `session:…`, `system`.
        Some(Value::Object(o)) if o.get("type").is_some_and(Value::is_string) => {
            match o.get("id").and_then(Value::as_str) {
                Some(id) => format!("{}:{id}", cell(o.get("type"))),
                None => cell(o.get("type")),
            }
        }
        Some(other) => other.to_string(),
    }
}

/// A table of `rows` under `columns`.
pub(crate) fn table(columns: Columns, rows: &[Value]) -> String {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(columns.iter().map(|(h, _)| *h));
    for row in rows {
        t.add_row(columns.iter().map(|(_, f)| cell(row.get(*f))));
    }
    format!("{t}\n")
}

/// A two-column table of named figures (a command's summary).
pub(crate) fn summary(lines: &[(&str, String)]) -> String {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    for (name, value) in lines {
        t.add_row([(*name).to_owned(), value.clone()]);
    }
    format!("{t}\n")
}

/// Prints one object: as JSON, or as a one-row table.
pub(crate) fn one(output: Output, columns: Columns, v: &Value) -> anyhow::Result<()> {
    match output {
        Output::Json => json(v),
        Output::Table => print(&table(columns, std::slice::from_ref(v))),
    }
}

/// Prints a list: as JSON `{"data": [...], "nextCursor": …}`, or as a table followed (on
/// standard error) by how to get the next page.
pub(crate) fn list(
    output: Output,
    columns: Columns,
    rows: Vec<Value>,
    next: Option<String>,
) -> anyhow::Result<()> {
    match output {
        Output::Json => json(&serde_json::json!({ "data": rows, "nextCursor": next })),
        Output::Table => {
            print(&table(columns, &rows))?;
            if let Some(next) = next {
                eprintln!("more: add --cursor {next} (or --all)");
            }
            Ok(())
        }
    }
}

/// Whether progress is drawn: only for tables on a terminal.
fn progress_shown(output: Output) -> bool {
    output == Output::Table && std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
}

/// A progress bar of `len` steps named `what`, drawn on standard error only when
/// [`progress_shown`].
pub(crate) fn bar(output: Output, len: u64, what: &str) -> ProgressBar {
    let target = if progress_shown(output) {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let pb = ProgressBar::with_draw_target(Some(len), target);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
    ) {
        pb.set_style(style);
    }
    pb.set_message(what.to_owned());
    pb
}

/// A bar of a server-side job's share done (set with `set_position` in thousandths), with a
/// message of its counts, drawn as [`bar`] is.
pub(crate) fn job_bar(output: Output, what: &str) -> ProgressBar {
    let target = if progress_shown(output) {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let pb = ProgressBar::with_draw_target(Some(1000), target);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{elapsed_precise}] {wide_bar} {percent}% (eta {eta})")
    {
        pb.set_style(style);
    }
    pb.set_message(what.to_owned());
    pb
}

/// A spinner for work of unknown length, drawn as [`bar`] is.
pub(crate) fn spinner(output: Output, what: &str) -> ProgressBar {
    let target = if progress_shown(output) {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let pb = ProgressBar::with_draw_target(None, target);
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{elapsed_precise}]") {
        pb.set_style(style);
    }
    pb.set_message(what.to_owned());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_show_lists_and_absent_values() {
        let row = serde_json::json!({"id": "ep_1", "eventTypes": ["a.b", "c.d"], "sites": [],
            "enabled": true, "disabledReason": null});
        assert_eq!(cell(row.get("eventTypes")), "a.b,c.d");
        assert_eq!(cell(row.get("sites")), "-");
        assert_eq!(cell(row.get("enabled")), "true");
        assert_eq!(cell(row.get("disabledReason")), "-");
        assert_eq!(cell(row.get("missing")), "-");
        let t = table(ENDPOINTS, &[row]);
        assert!(t.contains("ep_1") && t.contains("a.b,c.d"), "{t}");
        let entry = serde_json::json!({"actor": {"type": "key", "id": "key_0123456789abcdef"},
            "system": {"type": "system"}});
        assert_eq!(cell(entry.get("actor")), "key:key_0123456789abcdef");
        assert_eq!(cell(entry.get("system")), "system");
    }
}
