//! `cargo xtask fuzz`: the property tests of the code that reads untrusted input, with more
//! cases than the ordinary test run, bounded in time.
//!
//! The stable toolchain cannot build `cargo fuzz` targets (they need nightly-only sanitizer and
//! coverage flags), so the "fuzzers" are proptest properties: `hookline-core`'s `tests/fuzz.rs`
//! (signatures and their headers, ids, URLs, cursors, timestamps, event data, the envelope) and
//! the server's `fuzz::` integration test (the API's JSON bodies, in-process). `cargo test` runs
//! them with 256 cases each; this step runs `--cases` (default 2000) within `--seconds` (default
//! 150) for all of them, after building the test binaries.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::cmd::Cmd;
use crate::{cargo, project_root};

/// Cases per property by default.
pub(crate) const DEFAULT_CASES: u32 = 2000;
/// Time for all the properties together by default.
pub(crate) const DEFAULT_SECONDS: u64 = 150;

#[derive(Debug, PartialEq, Eq)]
struct FuzzArgs {
    cases: u32,
    seconds: u64,
}

impl FuzzArgs {
    fn parse(args: &[String]) -> Result<Self> {
        let mut parsed = Self {
            cases: DEFAULT_CASES,
            seconds: DEFAULT_SECONDS,
        };
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let (name, value) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (arg.as_str(), None),
            };
            let mut value = || -> Result<String> {
                match value.clone() {
                    Some(v) => Ok(v),
                    None => iter
                        .next()
                        .cloned()
                        .with_context(|| format!("`{name}` needs a value")),
                }
            };
            match name {
                "--cases" => parsed.cases = value()?.parse().context("--cases: a number")?,
                "--seconds" => parsed.seconds = value()?.parse().context("--seconds: a number")?,
                other => bail!(
                    "unexpected argument `{other}`; usage: cargo xtask fuzz [--cases N] [--seconds S]"
                ),
            }
        }
        if parsed.cases == 0 || parsed.seconds == 0 {
            bail!("--cases and --seconds must be positive");
        }
        Ok(parsed)
    }
}

pub(crate) fn fuzz(args: &[String]) -> Result<()> {
    let args = FuzzArgs::parse(args)?;
    // The same feature set as `cargo xtask test`, so that CI reuses its build.
    let runs: [&[&str]; 2] = [&["--test", "fuzz"], &["--test", "it", "--", "fuzz::"]];
    for run in runs {
        let (target, _) = run.split_at(2);
        Cmd::new(cargo())
            .shown_as("cargo")
            .dir(project_root())
            .args(["test", "--workspace", "--all-features", "--no-run"])
            .args(target.iter().copied())
            .run()?;
    }
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    for run in runs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("the fuzz time ({}s) ran out", args.seconds);
        }
        Cmd::new(cargo())
            .shown_as("cargo")
            .dir(project_root())
            .args(["test", "--workspace", "--all-features"])
            .args(run.iter().copied())
            .env("PROPTEST_CASES", args.cases.to_string())
            .run_within(left)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<FuzzArgs> {
        FuzzArgs::parse(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn parses_fuzz_args() {
        assert_eq!(
            parse(&[]).unwrap(),
            FuzzArgs {
                cases: DEFAULT_CASES,
                seconds: DEFAULT_SECONDS
            }
        );
        assert_eq!(
            parse(&["--cases", "10", "--seconds=5"]).unwrap(),
            FuzzArgs {
                cases: 10,
                seconds: 5
            }
        );
        assert!(parse(&["--cases"]).is_err());
        assert!(parse(&["--cases", "x"]).is_err());
        assert!(parse(&["--seconds", "0"]).is_err());
        assert!(parse(&["--more"]).is_err());
    }
}
