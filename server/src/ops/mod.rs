//! The operator commands (`hookline accounts`, `endpoints`, `events send`, `replay`, …): a
//! client of the JSON API over HTTP, so they work against any running `hookline serve`, local
//! or remote, with an admin or an account key.
//!
//! Results print as tables (comfy-table) or, with `--output json`, as the API's JSON; bulk
//! commands show an indicatif progress bar on a terminal and end with a summary. An error
//! answer is one `error: <title>: <detail> (<code>)` line and exit status 1.

use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;
use url::Url;

mod bulk;
mod client;
pub(crate) mod render;
mod resources;

use client::Api;
use render::Output;

/// Where the API is, which key to use, how to print: accepted anywhere on the command line.
#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// Base URL of the Hookline API.
    #[arg(
        long,
        env = "HOOKLINE_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: Url,
    /// API key, admin or account. Prefer the `HOOKLINE_API_KEY` environment variable: a flag is
    /// visible to other users of the machine in the process list.
    #[arg(long, env = "HOOKLINE_API_KEY", hide_env_values = true, global = true)]
    api_key: Option<String>,
    /// How to print results: tables for people, the API's JSON for scripts (no progress bars).
    #[arg(long, value_enum, default_value_t = Output::Table, global = true)]
    output: Output,
}

impl ClientArgs {
    fn api(&self) -> anyhow::Result<Api> {
        let key = match self.api_key.as_deref().map(str::trim) {
            Some(k) if !k.is_empty() => k.to_owned(),
            _ => anyhow::bail!(
                "no API key: set HOOKLINE_API_KEY to an admin or account key (or pass --api-key)"
            ),
        };
        Api::new(self.url.clone(), key)
    }
}

/// The account a command works in.
#[derive(Debug, Args)]
pub(crate) struct AccountArg {
    /// The account's id.
    #[arg(long, env = "HOOKLINE_ACCOUNT")]
    account: String,
}

/// Which page of a list.
#[derive(Debug, Args)]
pub(crate) struct PageArgs {
    /// Rows per page (1 to 250).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Continue after this cursor (printed after a page that has more).
    #[arg(long, conflicts_with = "all")]
    cursor: Option<String>,
    /// Follow every page.
    #[arg(long)]
    all: bool,
}

/// The operator commands, added to the binary's own.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Accounts (admin key).
    Accounts(Group<resources::AccountsAction>),
    /// Sites of an account.
    Sites(Group<resources::SitesAction>),
    /// Endpoints of an account: create, inspect, pause, resume, delete, read the secret.
    Endpoints(Group<resources::EndpointsAction>),
    /// The event-type catalog.
    EventTypes(Group<resources::EventTypesAction>),
    /// API keys: list, create, revoke (the admin's, or an account's with `--account`).
    Keys(Group<resources::KeysAction>),
    /// The audit log: who changed what, and when.
    Audit(Group<resources::AuditAction>),
    /// Events: send many from a file or standard input.
    Events(Group<bulk::EventsAction>),
    /// Deliveries: send one again.
    Deliveries(Group<resources::DeliveriesAction>),
    /// Re-queue an endpoint's failed deliveries created since a time.
    Recover(resources::RecoverArgs),
    /// Send again every delivery of the events in a time range.
    Replay(bulk::ReplayArgs),
}

/// A command group: the client options and one action.
#[derive(Debug, Args)]
pub(crate) struct Group<A: Subcommand> {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    action: A,
}

/// Runs an operator command until it ends or `shutdown` fires (ctrl-c).
pub(crate) async fn run(command: Command, shutdown: CancellationToken) -> anyhow::Result<()> {
    tokio::select! {
        r = dispatch(command) => r,
        () = shutdown.cancelled() => anyhow::bail!("interrupted"),
    }
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Accounts(g) => {
            resources::accounts(&g.client.api()?, g.client.output, g.action).await
        }
        Command::Sites(g) => resources::sites(&g.client.api()?, g.client.output, g.action).await,
        Command::Endpoints(g) => {
            resources::endpoints(&g.client.api()?, g.client.output, g.action).await
        }
        Command::EventTypes(g) => {
            resources::event_types(&g.client.api()?, g.client.output, g.action).await
        }
        Command::Keys(g) => resources::keys(&g.client.api()?, g.client.output, g.action).await,
        Command::Audit(g) => resources::audit(&g.client.api()?, g.client.output, g.action).await,
        Command::Events(g) => bulk::events(&g.client.api()?, g.client.output, g.action).await,
        Command::Deliveries(g) => {
            resources::deliveries(&g.client.api()?, g.client.output, g.action).await
        }
        Command::Recover(a) => resources::recover(&a.client.api()?, a.client.output, a).await,
        Command::Replay(a) => bulk::replay(&a.client.api()?, a.client.output, a).await,
    }
}

/// A time on the command line: RFC 3339 (`2026-11-25T15:40:00Z`) or a duration before now by
/// this machine's clock (`90s`, `30m`, `2h`, `7d`).
pub(crate) fn parse_time(s: &str) -> Result<hookline_core::Timestamp, String> {
    if let Ok(t) = hookline_core::Timestamp::parse_rfc3339(s) {
        return Ok(t);
    }
    match hookline_core::retry::parse_duration(s) {
        Some(ago) => {
            let now = hookline_core::Timestamp::now().as_millis();
            let ago = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
            Ok(hookline_core::Timestamp::from_millis(
                now.saturating_sub(ago),
            ))
        }
        None => Err(format!(
            "`{s}` is neither an RFC 3339 time (2026-11-25T15:40:00Z) nor a duration ago (30m, 2h, 7d)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_durations_ago() {
        let t = parse_time("2026-11-25T15:40:55.123Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-25T15:40:55.123Z");
        let before = hookline_core::Timestamp::now().as_millis();
        let ago = parse_time("2h").unwrap().as_millis();
        assert!((before - 7_200_000 - ago).abs() < 60_000, "{ago}");
        assert!(parse_time("yesterday").is_err());
    }
}
