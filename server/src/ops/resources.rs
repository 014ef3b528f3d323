//! One request per command: accounts, sites, endpoints, event types, keys, a delivery's retry
//! and an endpoint's recovery.

use anyhow::Context as _;
use clap::Subcommand;
use hookline_core::Timestamp;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::client::Api;
use super::render::{self, Columns, Output};
use super::{AccountArg, ClientArgs, PageArgs, parse_time};

/// Prints one page of the list at `segments`, or every page with `--all`.
async fn list(
    api: &Api,
    output: Output,
    columns: Columns,
    segments: &[&str],
    page: PageArgs,
) -> anyhow::Result<()> {
    if page.all {
        let rows = api.all(segments, &[]).await?;
        return render::list(output, columns, rows, None);
    }
    let mut query = vec![("limit", page.limit.to_string())];
    if let Some(c) = page.cursor {
        query.push(("cursor", c));
    }
    let (rows, next) = api.page(segments, &query).await?;
    render::list(output, columns, rows, next)
}

/// `accounts` actions.
#[derive(Debug, Subcommand)]
pub(crate) enum AccountsAction {
    /// List accounts, newest first.
    List(PageArgs),
    /// Create an account.
    Create {
        /// The account's id (letters, digits, `-`, `_`, `.`).
        #[arg(long)]
        id: String,
        /// Display name [default: the id].
        #[arg(long)]
        name: Option<String>,
    },
}

pub(crate) async fn accounts(
    api: &Api,
    output: Output,
    action: AccountsAction,
) -> anyhow::Result<()> {
    match action {
        AccountsAction::List(page) => {
            list(api, output, render::ACCOUNTS, &["v1", "accounts"], page).await
        }
        AccountsAction::Create { id, name } => {
            let mut body = json!({ "id": id });
            if let Some(name) = name {
                body["name"] = name.into();
            }
            let created = api.post(&["v1", "accounts"], &body).await?;
            render::one(output, render::ACCOUNTS, &created)
        }
    }
}

/// `sites` actions.
#[derive(Debug, Subcommand)]
pub(crate) enum SitesAction {
    /// List an account's sites.
    List {
        #[command(flatten)]
        account: AccountArg,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Create a site in an account.
    Create {
        #[command(flatten)]
        account: AccountArg,
        /// The site's id, unique in the account.
        #[arg(long)]
        id: String,
        /// Display name [default: the id].
        #[arg(long)]
        name: Option<String>,
    },
}

pub(crate) async fn sites(api: &Api, output: Output, action: SitesAction) -> anyhow::Result<()> {
    match action {
        SitesAction::List { account, page } => {
            let path = ["v1", "accounts", &account.account, "sites"];
            list(api, output, render::SITES, &path, page).await
        }
        SitesAction::Create { account, id, name } => {
            let mut body = json!({ "id": id });
            if let Some(name) = name {
                body["name"] = name.into();
            }
            let path = ["v1", "accounts", &account.account, "sites"];
            let created = api.post(&path, &body).await?;
            render::one(output, render::SITES, &created)
        }
    }
}

/// `endpoints create` options.
#[derive(Debug, clap::Args)]
pub(crate) struct NewEndpointArgs {
    #[command(flatten)]
    account: AccountArg,
    /// Where deliveries are sent (`https://…`).
    #[arg(id = "endpoint_url", value_name = "URL")]
    url: String,
    /// What the endpoint is for.
    #[arg(long)]
    description: Option<String>,
    /// Only these event types (repeat or comma-separate) [default: every type].
    #[arg(long = "event-type", value_delimiter = ',', value_name = "TYPE")]
    event_types: Vec<String>,
    /// Only events of these sites (repeat or comma-separate) [default: events without a site].
    #[arg(long = "site", value_delimiter = ',', value_name = "SITE")]
    sites: Vec<String>,
    /// An extra request header, `Name: value` or `Name=value` (repeat for more).
    #[arg(long = "header", value_name = "NAME=VALUE")]
    headers: Vec<String>,
    /// Requests per second at most.
    #[arg(long)]
    rate_limit: Option<u32>,
    /// Requests in flight at most.
    #[arg(long)]
    max_concurrency: Option<u32>,
    /// Deliver events that share a `queueId` in the order they were accepted.
    #[arg(long)]
    ordered: bool,
    /// The signing secret (`whsec_…`) [default: generated; read it with the secret route].
    #[arg(long, env = "HOOKLINE_ENDPOINT_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Create it paused.
    #[arg(long)]
    disabled: bool,
}

impl NewEndpointArgs {
    fn body(&self) -> anyhow::Result<Value> {
        let mut headers = Map::new();
        for h in &self.headers {
            let (name, value) = h
                .split_once(':')
                .or_else(|| h.split_once('='))
                .with_context(|| format!("--header `{h}` is not `Name: value` or `Name=value`"))?;
            headers.insert(name.trim().to_owned(), value.trim().into());
        }
        let mut body = json!({ "url": self.url });
        let set = |body: &mut Value, k: &str, v: Value| {
            body[k] = v;
        };
        if let Some(d) = &self.description {
            set(&mut body, "description", d.as_str().into());
        }
        if !self.event_types.is_empty() {
            set(&mut body, "eventTypes", json!(self.event_types));
        }
        if !self.sites.is_empty() {
            set(&mut body, "sites", json!(self.sites));
        }
        if !headers.is_empty() {
            set(&mut body, "headers", Value::Object(headers));
        }
        if let Some(r) = self.rate_limit {
            set(&mut body, "rateLimit", r.into());
        }
        if let Some(m) = self.max_concurrency {
            set(&mut body, "maxConcurrency", m.into());
        }
        if self.ordered {
            set(&mut body, "ordered", true.into());
        }
        if let Some(s) = &self.secret {
            set(&mut body, "secret", s.as_str().into());
        }
        if self.disabled {
            set(&mut body, "enabled", false.into());
        }
        Ok(body)
    }
}

/// `endpoints` actions.
#[derive(Debug, Subcommand)]
pub(crate) enum EndpointsAction {
    /// List an account's endpoints.
    List {
        #[command(flatten)]
        account: AccountArg,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Create an endpoint.
    Create(NewEndpointArgs),
    /// Show one endpoint.
    Get {
        #[command(flatten)]
        account: AccountArg,
        /// The endpoint's id (`ep_…`).
        endpoint: String,
    },
    /// Pause deliveries to an endpoint (they stay pending).
    Disable {
        #[command(flatten)]
        account: AccountArg,
        /// The endpoint's id (`ep_…`).
        endpoint: String,
    },
    /// Resume deliveries to an endpoint.
    Enable {
        #[command(flatten)]
        account: AccountArg,
        /// The endpoint's id (`ep_…`).
        endpoint: String,
    },
    /// Show an endpoint's signing secrets (the current one first).
    Secret {
        #[command(flatten)]
        account: AccountArg,
        /// The endpoint's id (`ep_…`).
        endpoint: String,
    },
    /// Delete an endpoint.
    Delete {
        #[command(flatten)]
        account: AccountArg,
        /// The endpoint's id (`ep_…`).
        endpoint: String,
    },
}

pub(crate) async fn endpoints(
    api: &Api,
    output: Output,
    action: EndpointsAction,
) -> anyhow::Result<()> {
    const COLS: Columns = render::ENDPOINTS;
    match action {
        EndpointsAction::List { account, page } => {
            let path = ["v1", "accounts", &account.account, "endpoints"];
            list(api, output, COLS, &path, page).await
        }
        EndpointsAction::Create(args) => {
            let path = ["v1", "accounts", &args.account.account, "endpoints"];
            let created = api.post(&path, &args.body()?).await?;
            render::one(output, COLS, &created)
        }
        EndpointsAction::Get { account, endpoint } => {
            let path = ["v1", "accounts", &account.account, "endpoints", &endpoint];
            render::one(output, COLS, &api.get(&path, &[]).await?)
        }
        EndpointsAction::Disable { account, endpoint } => {
            let path = [
                "v1",
                "accounts",
                &account.account,
                "endpoints",
                &endpoint,
                "disable",
            ];
            render::one(output, COLS, &api.post(&path, &json!({})).await?)
        }
        EndpointsAction::Enable { account, endpoint } => {
            let path = [
                "v1",
                "accounts",
                &account.account,
                "endpoints",
                &endpoint,
                "enable",
            ];
            render::one(output, COLS, &api.post(&path, &json!({})).await?)
        }
        EndpointsAction::Secret { account, endpoint } => {
            let path = [
                "v1",
                "accounts",
                &account.account,
                "endpoints",
                &endpoint,
                "secret",
            ];
            let answer = api.get(&path, &[]).await?;
            match output {
                Output::Json => render::json(&answer),
                Output::Table => {
                    let rows = answer["secrets"].as_array().cloned().unwrap_or_default();
                    render::print(&render::table(render::SECRETS, &rows))
                }
            }
        }
        EndpointsAction::Delete { account, endpoint } => {
            let path = ["v1", "accounts", &account.account, "endpoints", &endpoint];
            api.send(Method::DELETE, &path, &[], None).await?;
            match output {
                Output::Json => render::json(&json!({ "id": endpoint, "deleted": true })),
                Output::Table => render::print(&format!("deleted endpoint {endpoint}\n")),
            }
        }
    }
}

/// `event-types` actions.
#[derive(Debug, Subcommand)]
pub(crate) enum EventTypesAction {
    /// List the catalog.
    List(PageArgs),
    /// Add an event type to the catalog.
    Create {
        /// The type's name, e.g. `rx.completed`.
        #[arg(long)]
        name: String,
        /// What the event means.
        #[arg(long, default_value = "")]
        description: String,
        /// A file holding a JSON Schema that every event's `data` must match.
        #[arg(long, value_name = "FILE")]
        schema: Option<std::path::PathBuf>,
    },
}

pub(crate) async fn event_types(
    api: &Api,
    output: Output,
    action: EventTypesAction,
) -> anyhow::Result<()> {
    match action {
        EventTypesAction::List(page) => {
            list(
                api,
                output,
                render::EVENT_TYPES,
                &["v1", "event-types"],
                page,
            )
            .await
        }
        EventTypesAction::Create {
            name,
            description,
            schema,
        } => {
            let mut body = json!({ "name": name, "description": description });
            if let Some(path) = schema {
                let text = std::fs::read(&path)
                    .with_context(|| format!("reading the schema {}", path.display()))?;
                body["schema"] = serde_json::from_slice(&text)
                    .with_context(|| format!("the schema {} is not JSON", path.display()))?;
            }
            let created = api.post(&["v1", "event-types"], &body).await?;
            render::one(output, render::EVENT_TYPES, &created)
        }
    }
}

/// Which keys a `keys` command works on: an account's (`--account`) or the admin keys.
#[derive(Debug, clap::Args)]
pub(crate) struct KeyScopeArg {
    /// The account whose keys these are [default: the admin keys].
    #[arg(long, env = "HOOKLINE_ACCOUNT")]
    account: Option<String>,
}

impl KeyScopeArg {
    fn path(&self) -> Vec<&str> {
        match &self.account {
            Some(a) => vec!["v1", "accounts", a, "keys"],
            None => vec!["v1", "keys"],
        }
    }
}

/// `keys` actions. Keys are stored hashed: a key is shown once, when it is created; lists show
/// its id, name and prefix.
#[derive(Debug, Subcommand)]
pub(crate) enum KeysAction {
    /// List the admin keys, or an account's (`--account`), newest first.
    List {
        #[command(flatten)]
        scope: KeyScopeArg,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Create an API key (shown once): an admin key, or an account's (`--account`).
    Create {
        #[command(flatten)]
        scope: KeyScopeArg,
        /// A name for people, e.g. `ci deploys`.
        #[arg(long)]
        name: Option<String>,
        /// A read-only key: it may read but change nothing.
        #[arg(long)]
        read_only: bool,
        /// When the key stops working: RFC 3339, or a duration from now (`30d`, `12h`).
        #[arg(long, value_parser = parse_expiry)]
        expires: Option<Timestamp>,
    },
    /// Revoke a key by its id (`key_…`): refused from then on.
    Revoke {
        #[command(flatten)]
        scope: KeyScopeArg,
        /// The key's id (`key_…`, from `keys list`).
        key: String,
    },
}

/// An expiry on the command line: RFC 3339, or a duration after now by this machine's clock.
fn parse_expiry(s: &str) -> Result<Timestamp, String> {
    if let Ok(t) = Timestamp::parse_rfc3339(s) {
        return Ok(t);
    }
    let d = hookline_core::retry::parse_duration(s).ok_or_else(|| {
        format!("`{s}` is neither an RFC 3339 time (2027-01-01T00:00:00Z) nor a duration from now (12h, 30d)")
    })?;
    Ok(Timestamp::now().add(d))
}

pub(crate) async fn keys(api: &Api, output: Output, action: KeysAction) -> anyhow::Result<()> {
    match action {
        KeysAction::List { scope, page } => {
            list(api, output, render::KEY_LIST, &scope.path(), page).await
        }
        KeysAction::Create {
            scope,
            name,
            read_only,
            expires,
        } => {
            let mut body = json!({ "readOnly": read_only });
            if let Some(name) = name {
                body["name"] = name.into();
            }
            if let Some(at) = expires {
                body["expiresAt"] = at.to_rfc3339().into();
            }
            let created = api.post(&scope.path(), &body).await?;
            render::one(output, render::KEYS, &created)?;
            if output == Output::Table {
                eprintln!("the key is shown only this once: store it now");
            }
            Ok(())
        }
        KeysAction::Revoke { scope, key } => {
            let mut path = scope.path();
            path.push(&key);
            api.send(Method::DELETE, &path, &[], None).await?;
            if output == Output::Table {
                eprintln!("revoked {key}");
            }
            Ok(())
        }
    }
}

/// `audit` actions.
#[derive(Debug, Subcommand)]
pub(crate) enum AuditAction {
    /// List an account's audit log (`--account`), or the whole deployment's, newest first.
    List {
        /// The account [default: every account and the deployment-wide changes; admin key].
        #[arg(long, env = "HOOKLINE_ACCOUNT")]
        account: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
}

pub(crate) async fn audit(api: &Api, output: Output, action: AuditAction) -> anyhow::Result<()> {
    match action {
        AuditAction::List { account, page } => {
            let path = match &account {
                Some(a) => vec!["v1", "accounts", a.as_str(), "audit"],
                None => vec!["v1", "audit"],
            };
            list(api, output, render::AUDIT, &path, page).await
        }
    }
}

/// `deliveries` actions.
#[derive(Debug, Subcommand)]
pub(crate) enum DeliveriesAction {
    /// Send a delivery again now, whatever its state.
    Retry {
        #[command(flatten)]
        account: AccountArg,
        /// The delivery's id (`dlv_…`).
        delivery: String,
    },
}

pub(crate) async fn deliveries(
    api: &Api,
    output: Output,
    action: DeliveriesAction,
) -> anyhow::Result<()> {
    match action {
        DeliveriesAction::Retry { account, delivery } => {
            let path = [
                "v1",
                "accounts",
                &account.account,
                "deliveries",
                &delivery,
                "retry",
            ];
            render::one(
                output,
                render::DELIVERIES,
                &api.post(&path, &json!({})).await?,
            )
        }
    }
}

/// `recover` options.
#[derive(Debug, clap::Args)]
pub(crate) struct RecoverArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
    #[command(flatten)]
    account: AccountArg,
    /// The endpoint's id (`ep_…`).
    #[arg(long)]
    endpoint: String,
    /// Failed deliveries created at or after this time: RFC 3339 or a duration ago (`2h`).
    #[arg(long, value_parser = parse_time)]
    since: Timestamp,
}

pub(crate) async fn recover(api: &Api, output: Output, args: RecoverArgs) -> anyhow::Result<()> {
    let path = [
        "v1",
        "accounts",
        &args.account.account,
        "endpoints",
        &args.endpoint,
        "recover",
    ];
    let answer = api
        .post(&path, &json!({ "since": args.since.to_rfc3339() }))
        .await?;
    match output {
        Output::Json => render::json(&answer),
        Output::Table => {
            let n = answer.get("recovered").cloned().unwrap_or(Value::Null);
            render::print(&format!(
                "re-queued {n} failed deliveries of {} created since {}\n",
                args.endpoint, args.since
            ))
        }
    }
}
