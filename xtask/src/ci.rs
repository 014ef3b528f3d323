//! `cargo xtask test` and `cargo xtask ci`.

use std::env;

use anyhow::{Result, bail};

use crate::cmd::Cmd;
use crate::services::{POSTGRES_ENV, REDIS_ENV};
use crate::{cargo, project_root};

const PYTHON_ENV: &str = "HOOKLINE_TEST_PYTHON";
const STORES_ENV: &str = "HOOKLINE_TEST_STORES";
const STORES: [&str; 4] = ["sqlite", "postgres", "redis", "all"];

#[derive(Debug, Default)]
struct TestArgs {
    store: Option<String>,
    extra: Vec<String>,
}

impl TestArgs {
    fn parse(args: &[String]) -> Result<Self> {
        let mut parsed = Self::default();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let value = match arg.as_str() {
                "--" => {
                    parsed.extra = iter.by_ref().cloned().collect();
                    break;
                }
                "--store" => match iter.next() {
                    Some(value) => value.as_str(),
                    None => bail!("`--store` needs a value: {}", STORES.join("|")),
                },
                other => match other.strip_prefix("--store=") {
                    Some(value) => value,
                    None => bail!(
                        "unexpected argument `{other}`; usage: cargo xtask test \
                         [--store sqlite|postgres|redis|all] [-- <cargo test args>]"
                    ),
                },
            };
            if !STORES.contains(&value) {
                bail!(
                    "unknown store `{value}`; expected one of {}",
                    STORES.join("|")
                );
            }
            parsed.store = Some(value.to_owned());
        }
        Ok(parsed)
    }
}

pub(crate) fn test_cmd(args: &[String]) -> Result<()> {
    let args = TestArgs::parse(args)?;
    test(&args)
}

/// Services, the Python venv, then `cargo test --workspace --all-features`.
fn test(args: &TestArgs) -> Result<()> {
    step("services");
    let urls = crate::services::ensure()?;

    step("pydeps");
    let python = match env::var(PYTHON_ENV).ok().filter(|v| !v.is_empty()) {
        Some(python) => {
            println!("{PYTHON_ENV} is already set ({python}); skipping pydeps");
            python
        }
        None => {
            let python = crate::pydeps::ensure()?;
            python.to_string_lossy().into_owned()
        }
    };

    step("browser");
    crate::browser::ensure()?;

    let store = args.store.clone().unwrap_or_else(|| "all".to_owned());
    step("test");
    cargo_cmd()
        .args(["test", "--workspace", "--all-features"])
        .args(args.extra.iter().cloned())
        .env(PYTHON_ENV, python)
        .env(POSTGRES_ENV, urls.postgres)
        .env(REDIS_ENV, urls.redis)
        .env(STORES_ENV, store)
        .run()
}

/// Everything CI checks, stopping at the first failure.
pub(crate) fn ci() -> Result<()> {
    step("fmt");
    cargo_cmd().args(["fmt", "--all", "--", "--check"]).run()?;

    step("clippy (all features)");
    cargo_cmd()
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ])
        .run()?;

    step("clippy (default features)");
    cargo_cmd()
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
        .run()?;

    test(&TestArgs::default())?;

    step("fuzz");
    crate::fuzz::fuzz(&[])?;

    step("example: embed-sqlite");
    cargo_cmd().args(["run", "-p", "embed-sqlite"]).run()?;

    step("bench --smoke");
    crate::bench::bench(&["--smoke".to_owned()])?;

    step("doc");
    let rustdocflags = match env::var("RUSTDOCFLAGS") {
        Ok(existing) if !existing.trim().is_empty() => format!("{existing} -D warnings"),
        _ => "-D warnings".to_owned(),
    };
    cargo_cmd()
        .args(["doc", "--workspace", "--no-deps", "--all-features"])
        .env("RUSTDOCFLAGS", rustdocflags)
        .run()?;

    step("tidy");
    crate::tidy::tidy()?;

    println!("\nci: all steps passed");
    Ok(())
}

fn cargo_cmd() -> Cmd {
    Cmd::new(cargo()).shown_as("cargo").dir(project_root())
}

fn step(name: &str) {
    println!("\n==> {name}");
}

#[cfg(test)]
mod tests {
    use super::TestArgs;

    fn parse(args: &[&str]) -> anyhow::Result<TestArgs> {
        TestArgs::parse(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn parses_test_args() {
        let a = parse(&[]).unwrap();
        assert_eq!((a.store, a.extra.len()), (None, 0));
        let a = parse(&["--store", "redis", "--", "--nocapture", "--store"]).unwrap();
        assert_eq!(a.store.as_deref(), Some("redis"));
        assert_eq!(a.extra, ["--nocapture", "--store"]);
        assert_eq!(
            parse(&["--store=sqlite"]).unwrap().store.as_deref(),
            Some("sqlite")
        );
        assert!(parse(&["--store", "mysql"]).is_err());
        assert!(parse(&["--store"]).is_err());
        assert!(parse(&["--nocapture"]).is_err());
    }
}
