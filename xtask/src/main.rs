//! Hookline's task runner (the matklad `cargo xtask` convention).
//!
//! Run `cargo xtask help` for the list of commands. CI runs `cargo xtask ci` through `.ci/run`, so CI and
//! developers run the same thing. This crate stays cheap to compile: std and anyhow only, hand-rolled
//! argument parsing, no async runtime.

mod bench;
mod browser;
mod ci;
mod cmd;
mod fuzz;
mod pydeps;
mod services;
mod tidy;

use std::env;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};

const USAGE: &str = "\
Usage: cargo xtask <command> [args]

Commands:
  services [start|status]   check PostgreSQL and Redis (default: check, then start what is down)
  pydeps                    make sure <target>/xtask/venv has the pinned Python packages the tests
                            drive (standardwebhooks, openapi-spec-validator, schemathesis,
                            openapi-python-client)
  browser                   make sure chromium and chromedriver are installed (apt-get install
                            chromium chromium-driver when root), for the dashboard's browser test
  test [--store <s>] [-- <cargo test args>]
                            services + pydeps + browser, then `cargo test --workspace --all-features`
                            (<s> = sqlite|postgres|redis|all, passed on as HOOKLINE_TEST_STORES)
  ci                        fmt --check, clippy (all and default features), test, fuzz, the
                            embedding example, bench --smoke,
                            doc, tidy
  fuzz [--cases N] [--seconds S]
                            the property tests of untrusted-input code (signatures, ids, URLs,
                            envelope, API bodies) with N cases each (default 2000), all within
                            S seconds (default 150)
  tidy                      check the dependency invariants and the `//!` docs of every library
  bench [--store <s>] [--scenario single|fanout|backlog|retries] [--events N] [--endpoints E]
        [--concurrency C] [--payload-bytes B] [--rate R] [--json PATH] [-- <more flags>]
                            release-build `hookline` and `hookline-bench`, then run the delivery
                            benchmark (`cargo xtask bench -- --help` lists every flag)
  bench --smoke             a tiny benchmark run on debug builds (CI); fails if a delivery is lost
  bench --micro [-- <criterion args>]
                            the criterion micro-benchmarks of hookline-core (`cargo bench`)
  help                      print this text
";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Not `{err:?}`: with RUST_BACKTRACE set that prints a backtrace nobody needs here.
            eprintln!("xtask error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let Some((command, rest)) = args.split_first() else {
        print!("{USAGE}");
        bail!("no command given");
    };
    match command.as_str() {
        "services" => services::cmd(rest).map(drop),
        "pydeps" => {
            no_args("pydeps", rest)?;
            let python = pydeps::ensure()?;
            println!("{}", python.display());
            Ok(())
        }
        "browser" => {
            no_args("browser", rest)?;
            browser::ensure()
        }
        "test" => ci::test_cmd(rest),
        "ci" => {
            no_args("ci", rest)?;
            ci::ci()
        }
        "tidy" => {
            no_args("tidy", rest)?;
            tidy::tidy()
        }
        "bench" => bench::bench(rest),
        "fuzz" => fuzz::fuzz(rest),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => {
            eprint!("{USAGE}");
            bail!("unknown command `{other}`")
        }
    }
}

fn no_args(command: &str, rest: &[String]) -> Result<()> {
    if let Some(arg) = rest.first() {
        bail!("`cargo xtask {command}` takes no arguments, got `{arg}`");
    }
    Ok(())
}

/// The workspace root: the parent of this crate's manifest directory.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// `CARGO_TARGET_DIR` (relative paths are taken from the current directory, as cargo does) or
/// `<workspace root>/target`.
fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                env::current_dir().map(|cwd| cwd.join(&dir)).unwrap_or(dir)
            }
        }
        None => project_root().join("target"),
    }
}

/// The `cargo` that runs us (cargo sets `CARGO`), so nested builds use the same toolchain.
fn cargo() -> String {
    env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}
