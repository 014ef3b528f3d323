//! `hookline listen`: a local receiver that verifies both signatures and prints each event.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, StatusCode};
use hookline_core::Timestamp;
use hookline_core::signing::{DEFAULT_TOLERANCE, Secret, verify_raw_body, verify_standard};
use tokio_util::sync::CancellationToken;

/// `hookline listen` options.
#[derive(Debug, Clone, clap::Args)]
pub struct ListenArgs {
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 9000)]
    pub port: u16,
    /// The endpoint's signing secret (`whsec_…`); without it nothing is verified.
    #[arg(long, env = "HOOKLINE_LISTEN_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Header of the raw-body signature.
    #[arg(long, default_value = "X-Hookline-Signature")]
    pub signature_header: String,
    /// Status to answer with when the request verifies.
    #[arg(long, default_value_t = 200)]
    pub status: u16,
}

#[derive(Clone)]
struct Ctx {
    secret: Option<Secret>,
    header: HeaderName,
    status: StatusCode,
}

/// Runs the receiver until `shutdown`.
pub async fn run(args: ListenArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let secret = args.secret.as_deref().map(Secret::parse).transpose()?;
    let ctx = Ctx {
        secret,
        header: HeaderName::try_from(args.signature_header.as_str())?,
        status: StatusCode::from_u16(args.status)?,
    };
    let app = Router::new().fallback(receive).with_state(ctx);
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    say(&format!(
        "hookline listen: waiting for webhooks on http://{}/",
        listener.local_addr()?
    ));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn receive(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let (standard, raw) = match &ctx.secret {
        None => ("unverified".to_owned(), "unverified".to_owned()),
        Some(secret) => {
            let s =
                match verify_standard(secret, &headers, &body, Timestamp::now(), DEFAULT_TOLERANCE)
                {
                    Ok(()) => "ok".to_owned(),
                    Err(e) => format!("FAILED ({e})"),
                };
            let r = match headers.get(&ctx.header).and_then(|v| v.to_str().ok()) {
                None => "FAILED (missing header)".to_owned(),
                Some(v) => match verify_raw_body(secret, v, &body) {
                    Ok(()) => "ok".to_owned(),
                    Err(e) => format!("FAILED ({e})"),
                },
            };
            (s, r)
        }
    };
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .map(|v| v.to_string())
            .unwrap_or_default()
    };
    let attempt = parsed
        .as_ref()
        .and_then(|v| v.pointer("/attempt/number"))
        .map(|v| v.to_string())
        .unwrap_or_else(|| "?".into());
    say(&format!(
        "{}  {} {} attempt {}  standard-webhooks: {}  {}: {}",
        Timestamp::now(),
        field("event").trim_matches('"'),
        field("id").trim_matches('"'),
        attempt,
        standard,
        ctx.header,
        raw
    ));
    match &parsed {
        Some(v) => say(&serde_json::to_string_pretty(v).unwrap_or_default()),
        None => say(&String::from_utf8_lossy(&body)),
    }
    let verified = ctx.secret.is_none() || (standard == "ok" && raw == "ok");
    tokio::time::sleep(Duration::ZERO).await;
    if verified {
        ctx.status
    } else {
        StatusCode::UNAUTHORIZED
    }
}
