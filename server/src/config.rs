//! Server configuration: flags win over `HOOKLINE_*` environment variables, which win over the
//! optional `hookline.toml` (`--config`), which wins over the defaults. Validated at start-up.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::http::HeaderName;
use hookline_core::retry::{Schedule, parse_duration};
use hookline_core::sealing::Keyring;
use ipnet::IpNet;
use serde::Deserialize;

/// `hookline serve` settings as given (flag or environment); unset ones fall back to the file.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ServeArgs {
    /// A TOML file with any of these settings (keys in snake_case, e.g. `retry_schedule`).
    #[arg(long, env = "HOOKLINE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "HOOKLINE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// The store URL (the help lists the backends compiled into this build).
    #[arg(long, env = "HOOKLINE_STORE", help = STORE_HELP.as_str(), value_name = "URL")]
    pub store: Option<String>,
    /// Serve `GET /metrics` (Prometheus) on this address, without a key, instead of on the main
    /// address (where it needs the admin key).
    #[arg(long, env = "HOOKLINE_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Keep Prometheus metrics: `on` or `off` (no recorder, no `/metrics`, no backlog sampling)
    /// [default: on].
    #[arg(long, env = "HOOKLINE_METRICS", value_name = "on|off")]
    pub metrics: Option<String>,
    /// CA certificates (PEM) the store server's TLS certificate must be issued by: PostgreSQL
    /// without `sslrootcert` in the URL, and `rediss://`.
    #[arg(long, env = "HOOKLINE_STORE_CA_FILE", value_name = "PATH")]
    pub store_ca_file: Option<PathBuf>,
    /// CIDRs exempt from the SSRF guard (comma-separated or repeated), e.g. 127.0.0.1/32.
    #[arg(
        long = "allow-network",
        env = "HOOKLINE_ALLOW_NETWORKS",
        value_delimiter = ','
    )]
    pub allow_networks: Option<Vec<IpNet>>,
    /// Allow plain-http endpoint URLs.
    #[arg(long, env = "HOOKLINE_ALLOW_HTTP", num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_http: Option<bool>,
    /// A comma list of retry delays such as `1s,2s,5s` replacing the exponential default.
    #[arg(long, env = "HOOKLINE_RETRY_SCHEDULE")]
    pub retry_schedule: Option<String>,
    /// Header name of the raw-body signature [default: X-Hookline-Signature].
    #[arg(long, env = "HOOKLINE_SIGNATURE_HEADER")]
    pub signature_header: Option<String>,
    /// Per-attempt request timeout [default: 15s].
    #[arg(long, env = "HOOKLINE_REQUEST_TIMEOUT")]
    pub request_timeout: Option<String>,
    /// How long a claimed delivery stays leased to its worker before another may retry it
    /// [default: the request timeout plus 30s].
    #[arg(long, env = "HOOKLINE_LEASE")]
    pub lease: Option<String>,
    /// Deliveries in flight at once per process, besides those in the slow lane (requests in
    /// flight longer than a third of the request timeout, which give their slot back and wait
    /// in a lane of as many slots again) [default: 256].
    #[arg(long, env = "HOOKLINE_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// Ceiling of each endpoint's adaptive in-flight limit (which starts at 4, grows while the
    /// endpoint answers fast and halves when it is slow or times out), and of `maxConcurrency`
    /// [default: 64].
    #[arg(long, env = "HOOKLINE_ENDPOINT_CONCURRENCY")]
    pub endpoint_concurrency: Option<u32>,
    /// Attempts an endpoint's circuit breaker judges at least, out of its last twice as many:
    /// an endpoint failing every attempt opens after this many; above 64 it never opens
    /// [default: 5].
    #[arg(long, env = "HOOKLINE_CIRCUIT_THRESHOLD")]
    pub circuit_threshold: Option<u32>,
    /// Failure rate over those attempts, in percent, that opens the circuit; a time-out or
    /// connection failure counts whole, an answered error (5xx, 4xx) half [default: 50].
    #[arg(long, env = "HOOKLINE_CIRCUIT_FAILURE_RATE")]
    pub circuit_failure_rate: Option<u32>,
    /// First cool-down of an open circuit; doubles per failed probe, at most 5m [default: 5s].
    #[arg(long, env = "HOOKLINE_CIRCUIT_COOLDOWN")]
    pub circuit_cooldown: Option<String>,
    /// Disable an endpoint whose every attempt failed for this long; `0` never [default: 5d].
    #[arg(long, env = "HOOKLINE_DISABLE_AFTER")]
    pub disable_after: Option<String>,
    /// Purge events, deliveries and attempts older than this; `0` keeps all [default: 30d].
    #[arg(long, env = "HOOKLINE_RETENTION")]
    pub retention: Option<String>,
    /// Largest event request body in bytes [default: 262144].
    #[arg(long, env = "HOOKLINE_MAX_EVENT_BYTES")]
    pub max_event_bytes: Option<usize>,
    /// Most deliveries one event batch may create (its events × their subscribed endpoints)
    /// [default: 10000].
    #[arg(long, env = "HOOKLINE_MAX_BATCH_DELIVERIES")]
    pub max_batch_deliveries: Option<usize>,
    /// How long a client has to send a request's head (request line and headers) after
    /// connecting or after the previous answer: it also closes idle keep-alive connections
    /// [default: 10s].
    #[arg(long, env = "HOOKLINE_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<String>,
    /// How long the server waits for each part of a request body; a body that stalls longer is
    /// answered `408 request_timeout` [default: 10s].
    #[arg(long, env = "HOOKLINE_BODY_READ_TIMEOUT")]
    pub body_read_timeout: Option<String>,
    /// Close a connection on which no byte moved in either direction for this long, whatever it
    /// was doing (e.g. a client that stops reading an answer); keep it above the 30 s request
    /// time limit [default: 60s].
    #[arg(long, env = "HOOKLINE_IDLE_TIMEOUT")]
    pub idle_timeout: Option<String>,
    /// Most client connections open at once on the API address; further ones are answered `503`
    /// and closed [default: 10000, or less when the open-file limit is lower].
    #[arg(long, env = "HOOKLINE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Requests per second each API key may make on `/v1`, beyond its burst; `0` for no limit
    /// [default: 100].
    #[arg(long, env = "HOOKLINE_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// Requests an API key may make at once before the per-second rate applies [default: 200].
    #[arg(long, env = "HOOKLINE_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "HOOKLINE_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Export OpenTelemetry traces over OTLP/HTTP to this base URL (`/v1/traces` is appended),
    /// e.g. http://127.0.0.1:4318; builds with the `otel` feature also honour the standard
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` [default: no export].
    #[arg(long, env = "HOOKLINE_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// The admin API key (`hk_` and at least 32 random characters, e.g. `hk_$(openssl rand -hex
    /// 24)`); when unset, one is generated on first start and shown once.
    #[arg(long, env = "HOOKLINE_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    #[command(flatten)]
    pub encryption: EncryptionArgs,
}

/// Encryption at rest (`serve` and `rekey`).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct EncryptionArgs {
    /// Deployment keys sealing endpoint secrets and header values (and event data with
    /// --encrypt-payloads) in the store: `<id>:<base64 of 32 bytes>`, e.g.
    /// `k1:$(openssl rand -base64 32)`; for a rotation several, comma-separated, the current
    /// key first [default: no encryption].
    #[arg(
        long,
        env = "HOOKLINE_ENCRYPTION_KEY",
        hide_env_values = true,
        value_name = "KEYS"
    )]
    pub encryption_key: Option<String>,
    /// A file holding the keys instead (one `<id>:<base64>` per line, the current key first,
    /// `#` comments).
    #[arg(long, env = "HOOKLINE_ENCRYPTION_KEY_FILE", value_name = "PATH")]
    pub encryption_key_file: Option<PathBuf>,
    /// Seal every new event's data too (needs an encryption key); receivers still get
    /// plaintext.
    #[arg(long, env = "HOOKLINE_ENCRYPT_PAYLOADS", num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub encrypt_payloads: Option<bool>,
}

/// `hookline migrate` settings: only what it uses.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct MigrateArgs {
    /// A TOML file with the `store` setting (the same file as `serve --config`).
    #[arg(long, env = "HOOKLINE_CONFIG")]
    pub config: Option<PathBuf>,
    /// The store URL (the help lists the backends compiled into this build).
    #[arg(long, env = "HOOKLINE_STORE", help = STORE_HELP.as_str(), value_name = "URL")]
    pub store: Option<String>,
    /// CA certificates (PEM) the store server's TLS certificate must be issued by.
    #[arg(long, env = "HOOKLINE_STORE_CA_FILE", value_name = "PATH")]
    pub store_ca_file: Option<PathBuf>,
}

impl MigrateArgs {
    /// The store URL: the flag or environment, else the file's `store`, else the default.
    pub fn store_url(self) -> anyhow::Result<String> {
        Ok(self.load()?.store)
    }

    /// The store settings (URL and CA file) merged like `serve`'s.
    pub fn load(self) -> anyhow::Result<ServerConfig> {
        ServerConfig::load(ServeArgs {
            config: self.config,
            store: self.store,
            store_ca_file: self.store_ca_file,
            ..ServeArgs::default()
        })
    }
}

/// `hookline rekey` settings: the store and the keys.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct RekeyArgs {
    #[command(flatten)]
    pub store: MigrateArgs,
    #[command(flatten)]
    pub encryption: EncryptionArgs,
    /// No progress bar (for logs and scripts): one summary line at the end.
    #[arg(long)]
    pub quiet: bool,
}

impl RekeyArgs {
    /// The store and encryption settings merged like `serve`'s.
    pub fn load(self) -> anyhow::Result<ServerConfig> {
        ServerConfig::load(ServeArgs {
            config: self.store.config,
            store: self.store.store,
            store_ca_file: self.store.store_ca_file,
            encryption: self.encryption,
            ..ServeArgs::default()
        })
    }
}

/// The store backends compiled into this build, by URL scheme.
pub const BACKENDS: &[&str] = &[
    #[cfg(feature = "sqlite")]
    "sqlite",
    #[cfg(feature = "postgres")]
    "postgres",
    #[cfg(feature = "redis")]
    "redis",
];

/// `--version`: the version and the compiled-in backends, e.g. `0.1.0 (stores: sqlite, redis)`.
pub static VERSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{} (stores: {})",
        env!("CARGO_PKG_VERSION"),
        BACKENDS.join(", ")
    )
});

static STORE_HELP: LazyLock<String> = LazyLock::new(|| {
    let example = |b: &str| match b {
        "sqlite" => "sqlite://hookline.db",
        "postgres" => "postgres://user:password@host/db",
        _ => "redis://host:6379/",
    };
    let compiled: Vec<&str> = BACKENDS.iter().map(|b| example(b)).collect();
    format!(
        "The store [default: sqlite://hookline.db]; this build has: {} (cargo features `sqlite`, \
         `postgres`, `redis`, or `full` for all)",
        compiled.join(", ")
    )
});

/// Shortest admin key accepted, not counting the `hk_` prefix.
pub const MIN_ADMIN_KEY_CHARS: usize = 32;

/// Refuses admin keys that are easy to guess: fewer than [`MIN_ADMIN_KEY_CHARS`] characters after
/// an optional `hk_` prefix, or characters a bearer header cannot carry unchanged.
fn check_admin_key(key: &str) -> anyhow::Result<()> {
    let random = key.strip_prefix("hk_").unwrap_or(key);
    if random.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("admin_key: must not contain spaces or control characters");
    }
    let n = random.chars().count();
    if n < MIN_ADMIN_KEY_CHARS {
        bail!(
            "admin_key: too short ({n} characters after `hk_`, at least {MIN_ADMIN_KEY_CHARS} \
             random ones are needed); generate one with `echo hk_$(openssl rand -hex 24)`, or \
             unset it to have a key generated and shown once"
        );
    }
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    store: Option<String>,
    metrics_listen: Option<SocketAddr>,
    metrics: Option<String>,
    store_ca_file: Option<PathBuf>,
    allow_networks: Option<Vec<IpNet>>,
    allow_http: Option<bool>,
    retry_schedule: Option<String>,
    signature_header: Option<String>,
    request_timeout: Option<String>,
    lease: Option<String>,
    concurrency: Option<usize>,
    endpoint_concurrency: Option<u32>,
    circuit_threshold: Option<u32>,
    circuit_failure_rate: Option<u32>,
    circuit_cooldown: Option<String>,
    disable_after: Option<String>,
    retention: Option<String>,
    max_event_bytes: Option<usize>,
    max_batch_deliveries: Option<usize>,
    header_read_timeout: Option<String>,
    body_read_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_connections: Option<usize>,
    rate_limit: Option<u32>,
    rate_limit_burst: Option<u32>,
    log_format: Option<String>,
    otlp_endpoint: Option<String>,
    admin_key: Option<String>,
    encryption_key: Option<String>,
    encryption_key_file: Option<PathBuf>,
    encrypt_payloads: Option<bool>,
}

/// A value that must not appear in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted(pub String);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// A per-key request rate: `per_second` requests each second on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per second, on average.
    pub per_second: u32,
    /// Requests allowed at once (the bucket's size).
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: 100,
            burst: 200,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The validated server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Store URL.
    pub store: String,
    /// Where `/metrics` is served without a key (`None`: on `listen`, with the admin key).
    pub metrics_listen: Option<SocketAddr>,
    /// Whether the Prometheus recorder is installed (and `/metrics` served).
    pub metrics: bool,
    /// CA certificates trusted for the store's TLS (see [`crate::app::StoreOptions`]).
    pub store_ca_file: Option<PathBuf>,
    /// Admin key, if configured.
    pub admin_key: Option<Redacted>,
    /// SSRF guard exemptions.
    pub allow_networks: Vec<IpNet>,
    /// Whether http endpoints are allowed.
    pub allow_http: bool,
    /// Retry schedule.
    pub retry: Schedule,
    /// Raw-body signature header.
    pub signature_header: HeaderName,
    /// Per-attempt timeout.
    pub request_timeout: Duration,
    /// Claim lease.
    pub lease: Duration,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Per-endpoint in-flight default and ceiling.
    pub endpoint_concurrency: u32,
    /// Attempts a circuit judges at least (its window holds twice as many).
    pub circuit_threshold: u32,
    /// Failure rate, in percent, that opens a circuit.
    pub circuit_failure_rate: u32,
    /// First circuit cool-down.
    pub circuit_cooldown: Duration,
    /// Disable endpoints failing this long (`None`: never).
    pub disable_after: Option<Duration>,
    /// Retention period (`None`: keep everything).
    pub retention: Option<Duration>,
    /// Largest event request body.
    pub max_event_bytes: usize,
    /// Most deliveries one event batch may create.
    pub max_batch_deliveries: usize,
    /// Time allowed for a request head, from the connection's opening or the previous answer.
    pub header_read_timeout: Duration,
    /// Time allowed for each part of a request body.
    pub body_read_timeout: Duration,
    /// A connection with no byte moving for this long is closed.
    pub idle_timeout: Duration,
    /// Most client connections at once (`None`: derived from the open-file limit at start).
    pub max_connections: Option<usize>,
    /// Per-key request rate on `/v1` (`None`: unlimited).
    pub rate_limit: Option<RateLimit>,
    /// Log format.
    pub log_format: LogFormat,
    /// Base URL of an OTLP/HTTP collector to export traces to (`None`: the standard
    /// `OTEL_EXPORTER_OTLP_*` variables decide; no export when they are unset).
    pub otlp_endpoint: Option<String>,
    /// The deployment keys sealing values at rest (`None`: nothing is sealed, and a store
    /// holding sealed values is refused).
    pub encryption: Option<Arc<Keyring>>,
    /// Whether event data is sealed too.
    pub encrypt_payloads: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            store: "sqlite://hookline.db".into(),
            metrics_listen: None,
            metrics: true,
            store_ca_file: None,
            admin_key: None,
            allow_networks: Vec::new(),
            allow_http: false,
            retry: Schedule::default(),
            signature_header: HeaderName::from_static("x-hookline-signature"),
            request_timeout: Duration::from_secs(15),
            lease: Duration::from_secs(45),
            concurrency: 256,
            endpoint_concurrency: 64,
            circuit_threshold: 5,
            circuit_failure_rate: 50,
            circuit_cooldown: Duration::from_secs(5),
            disable_after: Some(Duration::from_secs(5 * 86_400)),
            retention: Some(Duration::from_secs(30 * 86_400)),
            max_event_bytes: 256 * 1024,
            max_batch_deliveries: 10_000,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: None,
            rate_limit: Some(RateLimit::default()),
            log_format: LogFormat::Text,
            otlp_endpoint: None,
            encryption: None,
            encrypt_payloads: false,
        }
    }
}

impl ServerConfig {
    /// Merges flags/environment over the file over the defaults, and validates the result.
    pub fn load(args: ServeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let d = Self::default();
        let retry = match args.retry_schedule.or(file.retry_schedule) {
            Some(s) => Schedule::parse_fixed(&s).context("retry_schedule")?,
            None => d.retry,
        };
        let signature_header = match args.signature_header.or(file.signature_header) {
            Some(h) => HeaderName::try_from(h.as_str())
                .with_context(|| format!("signature_header `{h}`"))?,
            None => d.signature_header,
        };
        let request_timeout = match args.request_timeout.or(file.request_timeout) {
            Some(t) => parse_duration(&t)
                .with_context(|| format!("request_timeout `{t}`: use e.g. 15s or 500ms"))?,
            None => d.request_timeout,
        };
        if request_timeout.is_zero() {
            bail!("request_timeout must be positive");
        }
        let lease = match args.lease.or(file.lease) {
            Some(t) => parse_duration(&t).with_context(|| format!("lease `{t}`: use e.g. 45s"))?,
            None => request_timeout + Duration::from_secs(30),
        };
        if lease <= request_timeout {
            bail!("lease ({lease:?}) must be longer than request_timeout ({request_timeout:?})");
        }
        let log_format = match args.log_format.or(file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("log_format `{other}`: use text or json"),
        };
        let concurrency = args
            .concurrency
            .or(file.concurrency)
            .unwrap_or(d.concurrency);
        if concurrency == 0 {
            bail!("concurrency must be at least 1");
        }
        let period = |name: &str,
                      v: Option<String>,
                      default: Option<Duration>|
         -> anyhow::Result<Option<Duration>> {
            match v {
                None => Ok(default),
                Some(t) if t == "0" => Ok(None),
                Some(t) => {
                    let d = parse_duration(&t)
                        .with_context(|| format!("{name} `{t}`: use e.g. 30d, 12h or 0"))?;
                    Ok(Some(d).filter(|d| !d.is_zero()))
                }
            }
        };
        let disable_after = period(
            "disable_after",
            args.disable_after.or(file.disable_after),
            d.disable_after,
        )?;
        let retention = period("retention", args.retention.or(file.retention), d.retention)?;
        let circuit_cooldown = match args.circuit_cooldown.or(file.circuit_cooldown) {
            Some(t) => parse_duration(&t)
                .with_context(|| format!("circuit_cooldown `{t}`: use e.g. 5s"))?,
            None => d.circuit_cooldown,
        };
        let endpoint_concurrency = args
            .endpoint_concurrency
            .or(file.endpoint_concurrency)
            .unwrap_or(d.endpoint_concurrency);
        let circuit_threshold = args
            .circuit_threshold
            .or(file.circuit_threshold)
            .unwrap_or(d.circuit_threshold);
        if endpoint_concurrency == 0 || circuit_threshold == 0 {
            bail!("endpoint_concurrency and circuit_threshold must be at least 1");
        }
        let circuit_failure_rate = args
            .circuit_failure_rate
            .or(file.circuit_failure_rate)
            .unwrap_or(d.circuit_failure_rate);
        if !(1..=100).contains(&circuit_failure_rate) {
            bail!("circuit_failure_rate is a percentage from 1 to 100");
        }
        let max_event_bytes = args
            .max_event_bytes
            .or(file.max_event_bytes)
            .unwrap_or(d.max_event_bytes);
        if max_event_bytes < 1024 {
            bail!("max_event_bytes must be at least 1024");
        }
        let otlp_endpoint = args
            .otlp_endpoint
            .or(file.otlp_endpoint)
            .filter(|u| !u.is_empty());
        if let Some(u) = &otlp_endpoint {
            if !cfg!(feature = "otel") {
                bail!(
                    "otlp_endpoint: this build exports no traces (build it with the cargo \
                     feature `otel`, or `full`)"
                );
            }
            match url::Url::parse(u) {
                Ok(p) if p.scheme() == "http" => {}
                Ok(p) if p.scheme() == "https" => bail!(
                    "otlp_endpoint `{u}`: the exporter speaks plain http; send to a local \
                     collector that forwards over TLS"
                ),
                _ => bail!("otlp_endpoint `{u}`: use an http:// URL such as http://127.0.0.1:4318"),
            }
        }
        let max_batch_deliveries = args
            .max_batch_deliveries
            .or(file.max_batch_deliveries)
            .unwrap_or(d.max_batch_deliveries);
        if max_batch_deliveries == 0 {
            bail!("max_batch_deliveries must be at least 1");
        }
        let key_text = args
            .encryption
            .encryption_key
            .or(file.encryption_key)
            .filter(|k| !k.trim().is_empty());
        let key_file = args
            .encryption
            .encryption_key_file
            .or(file.encryption_key_file);
        let encryption = match (key_text, key_file) {
            (Some(_), Some(_)) => {
                bail!("encryption_key and encryption_key_file: give the keys one way, not both")
            }
            (Some(text), None) => Some(Keyring::parse(&text).context("encryption_key")?),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("encryption_key_file: reading {}", path.display()))?;
                Some(
                    Keyring::parse(&text)
                        .with_context(|| format!("encryption_key_file {}", path.display()))?,
                )
            }
            (None, None) => None,
        };
        let encrypt_payloads = args
            .encryption
            .encrypt_payloads
            .or(file.encrypt_payloads)
            .unwrap_or(false);
        if encrypt_payloads && encryption.is_none() {
            bail!(
                "encrypt_payloads needs an encryption key (HOOKLINE_ENCRYPTION_KEY or \
                 encryption_key_file)"
            );
        }
        let timeout =
            |name: &str, v: Option<String>, default: Duration| -> anyhow::Result<Duration> {
                let Some(t) = v else { return Ok(default) };
                let d = parse_duration(&t)
                    .with_context(|| format!("{name} `{t}`: use e.g. 10s or 500ms"))?;
                if d.is_zero() {
                    bail!("{name} must be positive");
                }
                Ok(d)
            };
        let header_read_timeout = timeout(
            "header_read_timeout",
            args.header_read_timeout.or(file.header_read_timeout),
            d.header_read_timeout,
        )?;
        let body_read_timeout = timeout(
            "body_read_timeout",
            args.body_read_timeout.or(file.body_read_timeout),
            d.body_read_timeout,
        )?;
        let idle_timeout = timeout(
            "idle_timeout",
            args.idle_timeout.or(file.idle_timeout),
            d.idle_timeout,
        )?;
        let max_connections = args.max_connections.or(file.max_connections);
        if max_connections == Some(0) {
            bail!("max_connections must be at least 1");
        }
        let defaults = RateLimit::default();
        let per_second = args
            .rate_limit
            .or(file.rate_limit)
            .unwrap_or(defaults.per_second);
        let burst = args
            .rate_limit_burst
            .or(file.rate_limit_burst)
            .unwrap_or(defaults.burst.max(per_second));
        let rate_limit = match per_second {
            0 => None,
            _ if burst == 0 => bail!("rate_limit_burst must be at least 1"),
            per_second => Some(RateLimit { per_second, burst }),
        };
        let metrics = match args.metrics.or(file.metrics).as_deref() {
            None => d.metrics,
            Some("on" | "true") => true,
            Some("off" | "false") => false,
            Some(other) => bail!("metrics `{other}`: use on or off"),
        };
        let metrics_listen = args.metrics_listen.or(file.metrics_listen);
        if let (false, Some(addr)) = (metrics, metrics_listen) {
            bail!("metrics_listen ({addr}) serves the metrics, but metrics is off");
        }
        let admin_key = args.admin_key.or(file.admin_key).filter(|k| !k.is_empty());
        if let Some(key) = &admin_key {
            check_admin_key(key)?;
        }
        Ok(Self {
            listen: args.listen.or(file.listen).unwrap_or(d.listen),
            store: args.store.or(file.store).unwrap_or(d.store),
            metrics_listen,
            metrics,
            store_ca_file: args.store_ca_file.or(file.store_ca_file),
            admin_key: admin_key.map(Redacted),
            allow_networks: args
                .allow_networks
                .or(file.allow_networks)
                .unwrap_or_default(),
            allow_http: args.allow_http.or(file.allow_http).unwrap_or(d.allow_http),
            retry,
            signature_header,
            request_timeout,
            lease,
            concurrency,
            endpoint_concurrency,
            circuit_threshold,
            circuit_failure_rate,
            circuit_cooldown,
            disable_after,
            retention,
            max_event_bytes,
            max_batch_deliveries,
            header_read_timeout,
            body_read_timeout,
            idle_timeout,
            max_connections,
            rate_limit,
            log_format,
            otlp_endpoint,
            encryption: encryption.map(Arc::new),
            encrypt_payloads,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let dir = std::env::temp_dir().join(format!("hookline-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hookline.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9999\"\nretry_schedule = \"1s,2s\"\nallow_http = true\n\
             circuit_failure_rate = 60\nmetrics_listen = \"127.0.0.1:9464\"\nstore_ca_file = \"/etc/hookline/ca.pem\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            retry_schedule: Some("5s".into()),
            ..ServeArgs::default()
        };
        let cfg = ServerConfig::load(args).unwrap();
        assert_eq!(cfg.listen.port(), 9999);
        assert_eq!(cfg.retry.delays(), &[Duration::from_secs(5)]);
        assert!(cfg.allow_http);
        assert_eq!(cfg.request_timeout, Duration::from_secs(15));
        assert_eq!(cfg.store, "sqlite://hookline.db");
        assert_eq!(cfg.circuit_failure_rate, 60);
        assert_eq!(cfg.circuit_threshold, 5);
        assert!(cfg.metrics);
        assert_eq!(cfg.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(
            cfg.store_ca_file.as_deref(),
            Some(std::path::Path::new("/etc/hookline/ca.pem"))
        );
    }

    #[test]
    fn bad_values_fail_fast() {
        for args in [
            ServeArgs {
                retry_schedule: Some("soon".into()),
                ..ServeArgs::default()
            },
            ServeArgs {
                request_timeout: Some("0s".into()),
                ..ServeArgs::default()
            },
            ServeArgs {
                signature_header: Some("bad header".into()),
                ..ServeArgs::default()
            },
            ServeArgs {
                log_format: Some("xml".into()),
                ..ServeArgs::default()
            },
            ServeArgs {
                admin_key: Some("hk_my_admin_key".into()),
                ..ServeArgs::default()
            },
            ServeArgs {
                admin_key: Some(format!("hk_{}", "x".repeat(MIN_ADMIN_KEY_CHARS - 1))),
                ..ServeArgs::default()
            },
            ServeArgs {
                admin_key: Some(format!("hk_{} {}", "x".repeat(20), "y".repeat(20))),
                ..ServeArgs::default()
            },
            ServeArgs {
                metrics: Some("maybe".into()),
                ..ServeArgs::default()
            },
            ServeArgs {
                metrics: Some("off".into()),
                metrics_listen: Some("127.0.0.1:9464".parse().unwrap()),
                ..ServeArgs::default()
            },
            ServeArgs {
                circuit_failure_rate: Some(0),
                ..ServeArgs::default()
            },
            ServeArgs {
                circuit_failure_rate: Some(101),
                ..ServeArgs::default()
            },
        ] {
            assert!(ServerConfig::load(args).is_err());
        }
    }

    #[test]
    fn admin_keys_of_32_random_characters_are_accepted() {
        for key in [
            format!("hk_{}", "a".repeat(MIN_ADMIN_KEY_CHARS)),
            "0123456789abcdef0123456789abcdef".to_owned(),
        ] {
            let cfg = ServerConfig::load(ServeArgs {
                admin_key: Some(key.clone()),
                ..ServeArgs::default()
            })
            .unwrap();
            assert_eq!(cfg.admin_key, Some(Redacted(key)));
        }
    }

    #[test]
    fn version_and_store_help_name_the_compiled_backends() {
        assert!(BACKENDS.contains(&"sqlite") == cfg!(feature = "sqlite"));
        assert!(BACKENDS.contains(&"postgres") == cfg!(feature = "postgres"));
        assert!(BACKENDS.contains(&"redis") == cfg!(feature = "redis"));
        assert!(VERSION.ends_with(&format!("(stores: {})", BACKENDS.join(", "))));
        for b in BACKENDS {
            assert!(STORE_HELP.contains(&format!("{b}://")), "{}", *STORE_HELP);
        }
    }
}
