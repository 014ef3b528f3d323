use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hookline_server::config::{ServeArgs, ServerConfig};
use tokio_util::sync::CancellationToken;

/// jemalloc instead of glibc's allocator: 10–19 % less server CPU per delivery in
/// `cargo xtask bench` on every store (docs/performance.md). Its options are built in from
/// `.cargo/config.toml` (`JEMALLOC_SYS_WITH_MALLOC_CONF`) and can be changed at run time with
/// the `_RJEM_MALLOC_CONF` environment variable.
#[cfg(all(unix, not(target_env = "musl")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Hookline: durable, signed webhook delivery.
#[derive(Debug, Parser)]
#[command(name = "hookline", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the API and the delivery workers.
    Serve(ServeArgs),
    /// Run a local receiver that verifies signatures and prints each event.
    Listen(hookline_server::listen::ListenArgs),
    /// Create or upgrade the store's schema, then exit.
    Migrate(ServeArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    match cli.command {
        Command::Serve(args) => {
            let config = ServerConfig::load(args).context("invalid configuration")?;
            hookline_server::telemetry::init(config.log_format);
            hookline_server::run(config, shutdown).await
        }
        Command::Listen(args) => hookline_server::listen::run(args, shutdown).await,
        Command::Migrate(args) => {
            let config = ServerConfig::load(args).context("invalid configuration")?;
            hookline_server::open_store(&config.store).await.map(|_| ())
        }
    }
}

async fn stop_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    token.cancel();
}
