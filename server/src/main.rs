use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hookline_server::config::{
    LogFormat, MigrateArgs, RekeyArgs, ServeArgs, ServerConfig, VERSION,
};
use tokio_util::sync::CancellationToken;

mod ops;

/// jemalloc instead of glibc's allocator: 10–19 % less server CPU per delivery in
/// `cargo xtask bench` on every store (docs/performance.md). Its options are built in from
/// `.cargo/config.toml` (`JEMALLOC_SYS_WITH_MALLOC_CONF`) and can be changed at run time with
/// the `_RJEM_MALLOC_CONF` environment variable.
#[cfg(all(unix, not(target_env = "musl")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Hookline: durable, signed webhook delivery.
#[derive(Debug, Parser)]
#[command(name = "hookline", version = VERSION.as_str())]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the API and the delivery workers.
    Serve(Box<ServeArgs>),
    /// Run a local receiver that verifies signatures, prints each event and can forward it to a
    /// local app.
    Listen(hookline_server::listen::ListenArgs),
    /// Create or upgrade the store's schema, then exit.
    Migrate(MigrateArgs),
    /// Seal every endpoint secret and header value (and event data, when payloads are
    /// encrypted) again with the current encryption key, so that older keys can be removed.
    Rekey(Box<RekeyArgs>),
    #[command(flatten)]
    Ops(ops::Command),
}

/// Runs the command; an error is printed as one `error: …` line followed by its causes (never a
/// backtrace: these are operator-facing messages, not bugs), and the exit status is 1.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return report(&anyhow::Error::new(e).context("starting the async runtime")),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

fn report(e: &anyhow::Error) -> ExitCode {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "error: {e}");
    for cause in e.chain().skip(1) {
        let _ = writeln!(err, "  caused by: {cause}");
    }
    ExitCode::FAILURE
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    match cli.command {
        Command::Serve(args) => {
            let config = ServerConfig::load(*args).context("invalid configuration")?;
            let telemetry = hookline_server::telemetry::init_serve(&config)?;
            let result = hookline_server::run(config, shutdown).await;
            // Sends the spans still buffered (blocking, at most 5 s).
            let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
            result
        }
        Command::Listen(args) => hookline_server::listen::run(args, shutdown).await,
        Command::Rekey(args) => rekey(*args).await,
        Command::Ops(command) => ops::run(command, shutdown).await,
        Command::Migrate(args) => {
            let config = args.load().context("invalid configuration")?;
            let store = &config.store;
            hookline_server::telemetry::init(LogFormat::Text);
            let options = hookline_server::app::StoreOptions::from_config(&config);
            hookline_server::app::open_store_with(store, &options).await?;
            // The SQL stores migrate on opening and report no counts: success means the schema
            // is at the version this build expects. Redis keeps no schema.
            let shown = hookline_server::app::redact_url(store);
            if store.starts_with("redis") {
                println!("connected to {shown}: Redis has no schema to migrate");
            } else {
                println!("migrated {shown}: schema up to date");
            }
            Ok(())
        }
    }
}

/// `hookline rekey`: everything sealed again with the current key, with a progress bar on a
/// terminal (unless `--quiet`) and a summary line.
async fn rekey(args: RekeyArgs) -> anyhow::Result<()> {
    use hookline_core::sealing::{SealedStore, SealingOptions, read_marker};

    let quiet = args.quiet;
    let config = args.load().context("invalid configuration")?;
    hookline_server::telemetry::init(LogFormat::Text);
    let Some(keyring) = config.encryption.clone() else {
        anyhow::bail!(
            "rekey needs the encryption keys: HOOKLINE_ENCRYPTION_KEY or --encryption-key-file, \
             the new key first"
        );
    };
    let options = hookline_server::app::StoreOptions::from_config(&config);
    let backend = hookline_server::app::open_store_with(&config.store, &options).await?;
    // Payloads stay sealed if the store says they were, even without --encrypt-payloads.
    let payloads = config.encrypt_payloads
        || read_marker(backend.as_ref())
            .await?
            .is_some_and(|m| m.payloads);
    let store = SealedStore::open(
        backend,
        keyring.clone(),
        SealingOptions::new().payloads(payloads),
    )
    .await
    .context("checking the encryption keys against the store")?;
    let output = if quiet {
        ops::render::Output::Json
    } else {
        ops::render::Output::Table
    };
    let bar = ops::render::bar(output, 0, "rekey");
    let done = store
        .rekey(|p| {
            bar.set_length(p.total);
            bar.set_position(p.done);
        })
        .await
        .context("rekey stopped; run it again to finish (what is done stays done)")?;
    bar.finish_and_clear();
    println!(
        "rekey: {} endpoints and events looked at, {} sealed again with key `{}`{}; keys no \
         longer needed: every key but `{}`",
        done.done,
        done.rewritten,
        keyring.current_id(),
        if payloads {
            " (event data included)"
        } else {
            ""
        },
        keyring.current_id(),
    );
    Ok(())
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
