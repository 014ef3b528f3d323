//! `hookline listen`: a local receiver that verifies both signatures, prints each event as
//! received, and optionally forwards it to a local app (like `stripe listen --forward-to`).
//!
//! What it does with a request, in order:
//! 1. With `--secret`, both signatures (Standard Webhooks and the raw-body header) are checked; a
//!    request failing either is reported and answered `401`, and never forwarded.
//! 2. With `--events`, an event of another type is acknowledged with `200` and neither printed
//!    nor forwarded (as if the endpoint were not subscribed to it).
//! 3. A summary line and the body exactly as received are printed (`--pretty` indents JSON).
//! 4. With `--forward-to URL`, the request (method, body and headers, minus hop-by-hop ones) is
//!    sent to exactly that URL, and the app's status, content type and body are the answer; an
//!    app that cannot be reached answers `502`. Without it, the answer is `--status`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Instant;

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hookline_core::Timestamp;
use hookline_core::signing::{DEFAULT_TOLERANCE, Secret, verify_raw_body, verify_standard};
use tokio_util::sync::CancellationToken;

/// `hookline listen` options.
#[derive(Debug, Clone, clap::Args)]
pub struct ListenArgs {
    /// Port on 127.0.0.1 (`--listen` chooses another address).
    #[arg(long, default_value_t = 9000)]
    pub port: u16,
    /// Address to listen on, e.g. `0.0.0.0:9000` [default: 127.0.0.1:PORT].
    #[arg(long, conflicts_with = "port")]
    pub listen: Option<SocketAddr>,
    /// The endpoint's signing secret (`whsec_…`); without it nothing is verified.
    #[arg(long, env = "HOOKLINE_LISTEN_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Header of the raw-body signature.
    #[arg(long, default_value = "X-Hookline-Signature")]
    pub signature_header: String,
    /// Relay each verified request to this URL (e.g. `http://localhost:3000/webhooks`) and
    /// answer with the app's status and body.
    #[arg(long, value_name = "URL")]
    pub forward_to: Option<url::Url>,
    /// Only these event types (comma-separated); others are answered `200` and not printed or
    /// forwarded.
    #[arg(long, value_delimiter = ',', value_name = "TYPES")]
    pub events: Option<Vec<String>>,
    /// Print JSON bodies indented (keys in the order received) instead of byte for byte.
    #[arg(long)]
    pub pretty: bool,
    /// Status to answer with when the request verifies (without `--forward-to`).
    #[arg(long, default_value_t = 200, conflicts_with = "forward_to")]
    pub status: u16,
}

/// Headers that describe one hop and are not relayed to the app.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    header::HOST,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

#[derive(Clone)]
struct Ctx {
    secret: Option<Secret>,
    header: HeaderName,
    status: StatusCode,
    forward: Option<(url::Url, reqwest::Client)>,
    events: Option<Vec<String>>,
    pretty: bool,
}

/// Runs the receiver until `shutdown`.
pub async fn run(args: ListenArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let secret = args
        .secret
        .as_deref()
        .map(Secret::parse)
        .transpose()
        .context("--secret: expected `whsec_` followed by base64")?;
    let forward = match args.forward_to {
        Some(url) => {
            if !matches!(url.scheme(), "http" | "https") {
                anyhow::bail!("--forward-to `{url}`: use an http:// or https:// URL");
            }
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .context("building the HTTP client for --forward-to")?;
            Some((url, client))
        }
        None => None,
    };
    let ctx = Ctx {
        secret,
        header: HeaderName::try_from(args.signature_header.as_str())
            .with_context(|| format!("--signature-header `{}`", args.signature_header))?,
        status: StatusCode::from_u16(args.status)
            .with_context(|| format!("--status {}", args.status))?,
        forward,
        events: args.events.filter(|e| !e.is_empty()),
        pretty: args.pretty,
    };
    let addr = args
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], args.port)));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let mut banner = format!(
        "hookline listen: waiting for webhooks on http://{}/",
        listener.local_addr()?
    );
    if let Some((url, _)) = &ctx.forward {
        banner.push_str(&format!(", forwarding to {url}"));
    }
    if let Some(events) = &ctx.events {
        banner.push_str(&format!(", events: {}", events.join(", ")));
    }
    if ctx.secret.is_none() {
        banner.push_str(" (no --secret: signatures are not checked)");
    }
    say(banner.as_bytes());
    let app = Router::new().fallback(receive).with_state(ctx);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

/// Writes `chunk` and a line break (unless it ends with one) to standard output in one go, so
/// that concurrent requests do not interleave.
fn say(chunk: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(chunk);
    if !chunk.ends_with(b"\n") {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

/// The outcome of one signature check, for the summary line.
fn verdict(r: Result<(), String>) -> (bool, String) {
    match r {
        Ok(()) => (true, "ok".to_owned()),
        Err(e) => (false, format!("FAILED ({e})")),
    }
}

async fn receive(
    State(ctx): State<Ctx>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (verified, standard, raw) = match &ctx.secret {
        None => (true, "not checked".to_owned(), "not checked".to_owned()),
        Some(secret) => {
            let (s_ok, s) = verdict(
                verify_standard(secret, &headers, &body, Timestamp::now(), DEFAULT_TOLERANCE)
                    .map_err(|e| e.to_string()),
            );
            let (r_ok, r) = verdict(
                match headers.get(&ctx.header).and_then(|v| v.to_str().ok()) {
                    None => Err("missing header".to_owned()),
                    Some(v) => verify_raw_body(secret, v, &body).map_err(|e| e.to_string()),
                },
            );
            (s_ok && r_ok, s, r)
        }
    };
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let text = |pointer: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.pointer(pointer))
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
    };
    let event = text("/event");
    if verified {
        if let Some(wanted) = &ctx.events {
            if !event.as_ref().is_some_and(|e| wanted.contains(e)) {
                return StatusCode::OK.into_response();
            }
        }
    }
    let id = text("/id").unwrap_or_default();
    let mut block = format!(
        "{}  {} {} attempt {}  standard-webhooks: {}  {}: {}\n",
        Timestamp::now(),
        event.as_deref().unwrap_or("?"),
        id,
        text("/attempt/number").as_deref().unwrap_or("?"),
        standard,
        ctx.header,
        raw
    )
    .into_bytes();
    match ctx.pretty.then(|| indented(&body)).flatten() {
        Some(pretty) => block.extend(pretty),
        None => block.extend_from_slice(&body),
    }
    say(&block);
    if !verified {
        return (StatusCode::UNAUTHORIZED, "signature verification failed\n").into_response();
    }
    let Some((url, client)) = &ctx.forward else {
        return ctx.status.into_response();
    };
    let mut relayed = headers;
    for h in &HOP_BY_HOP {
        relayed.remove(h);
    }
    let started = Instant::now();
    let sent = client
        .request(method.clone(), url.clone())
        .headers(relayed)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(res) => {
            let status = res.status();
            let content_type = res.headers().get(header::CONTENT_TYPE).cloned();
            match res.bytes().await {
                Ok(bytes) => {
                    say(format!(
                        "  -> {method} {url} {id}: {status} ({} ms)",
                        started.elapsed().as_millis()
                    )
                    .as_bytes());
                    let mut answer = (status, bytes).into_response();
                    if let Some(ct) = content_type {
                        answer.headers_mut().insert(header::CONTENT_TYPE, ct);
                    }
                    answer
                }
                Err(e) => bad_gateway(&method, url, &id, &e),
            }
        }
        Err(e) => bad_gateway(&method, url, &id, &e),
    }
}

/// `body` re-indented with its keys in the order received, if it is one JSON value.
fn indented(body: &[u8]) -> Option<Vec<u8>> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut out = Vec::with_capacity(body.len() * 2);
    serde_transcode::transcode(&mut de, &mut serde_json::Serializer::pretty(&mut out)).ok()?;
    de.end().ok()?;
    Some(out)
}

fn bad_gateway(method: &Method, url: &url::Url, id: &str, e: &reqwest::Error) -> Response {
    use std::error::Error as _;
    let mut why = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        why.push_str(": ");
        why.push_str(&s.to_string());
        source = s.source();
    }
    say(format!("  -> {method} {url} {id}: FAILED ({why})").as_bytes());
    (
        StatusCode::BAD_GATEWAY,
        format!("forwarding to {url} failed: {why}\n"),
    )
        .into_response()
}
