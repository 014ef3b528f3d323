//! `cargo xtask bench`: the delivery benchmark and the core micro-benchmarks.
//!
//! * `cargo xtask bench [flags]` builds `hookline` and `hookline-bench` in release mode (with the
//!   server feature `--store` needs) and runs `hookline-bench` with the flags passed through
//!   (`--scenario single|fanout|backlog|retries`, `--events`, `--endpoints`, `--concurrency`,
//!   `--payload-bytes`, `--rate`, `--json PATH`, …; `cargo xtask bench -- --help` lists them).
//! * `cargo xtask bench --smoke`: a tiny run on debug builds, for CI; fails unless every delivery
//!   arrived.
//! * `cargo xtask bench --micro [-- <criterion args>]`: `cargo bench -p hookline-core --features
//!   testkit --bench core`.

use anyhow::{Result, bail};

use crate::cmd::Cmd;
use crate::{cargo, project_root, target_dir};

/// What `--smoke` runs: small enough for CI, big enough to fan out and use several clients.
const SMOKE_ARGS: [&str; 8] = [
    "--scenario",
    "fanout",
    "--events",
    "200",
    "--endpoints",
    "2",
    "--concurrency",
    "8",
];

#[derive(Debug, Default, PartialEq, Eq)]
struct BenchArgs {
    smoke: bool,
    micro: bool,
    /// The value of `--store`, if given (it is also passed through).
    store: Option<String>,
    /// Everything else, for `hookline-bench` (or criterion with `--micro`).
    pass: Vec<String>,
}

impl BenchArgs {
    fn parse(args: &[String]) -> Result<Self> {
        let mut parsed = Self::default();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            match arg.as_str() {
                "--smoke" => parsed.smoke = true,
                "--micro" => parsed.micro = true,
                "--" => parsed.pass.extend(iter.by_ref().cloned()),
                "--store" => {
                    let Some(value) = iter.next() else {
                        bail!("`--store` needs a value: sqlite|postgres|redis");
                    };
                    parsed.store = Some(value.clone());
                    parsed.pass.extend([arg.clone(), value.clone()]);
                }
                other => {
                    if let Some(value) = other.strip_prefix("--store=") {
                        parsed.store = Some(value.to_owned());
                    }
                    parsed.pass.push(other.to_owned());
                }
            }
        }
        if parsed.smoke && parsed.micro {
            bail!("`--smoke` and `--micro` don't go together");
        }
        let stores = ["sqlite", "postgres", "redis"];
        if let Some(store) = parsed.store.as_deref().filter(|s| !stores.contains(s)) {
            bail!("unknown store `{store}`; expected sqlite|postgres|redis");
        }
        Ok(parsed)
    }

    /// The server feature the store needs, if any.
    fn feature(&self) -> Option<&str> {
        match self.store.as_deref() {
            Some("postgres") => Some("postgres"),
            Some("redis") => Some("redis"),
            _ => None,
        }
    }
}

pub(crate) fn bench(args: &[String]) -> Result<()> {
    let args = BenchArgs::parse(args)?;
    let root = project_root();
    if args.micro {
        return Cmd::new(cargo())
            .shown_as("cargo")
            .dir(&root)
            .args([
                "bench",
                "-p",
                "hookline-core",
                "--features",
                "testkit",
                "--bench",
                "core",
            ])
            .args(if args.pass.is_empty() {
                Vec::new()
            } else {
                std::iter::once("--".to_owned())
                    .chain(args.pass.iter().cloned())
                    .collect()
            })
            .run();
    }

    let profile = if args.smoke { "debug" } else { "release" };
    let mut build = Cmd::new(cargo()).shown_as("cargo").dir(&root).args([
        "build",
        "-p",
        "hookline-server",
        "-p",
        "hookline-bench",
    ]);
    if !args.smoke {
        build = build.arg("--release");
    }
    if let Some(feature) = args.feature() {
        build = build.args(["--features", &format!("hookline-server/{feature}")]);
    }
    build.run()?;

    let bin_dir = target_dir().join(profile);
    let server = bin_dir.join("hookline");
    let mut run = Cmd::new(
        bin_dir
            .join("hookline-bench")
            .to_string_lossy()
            .into_owned(),
    )
    .dir(&root)
    .arg("--server-bin")
    .arg(server.to_string_lossy().into_owned());
    if args.smoke {
        run = run.args(SMOKE_ARGS);
    }
    // The smoke's own flags first, so that explicit ones given after `--smoke` win (clap keeps the
    // last value).
    run.args(args.pass.iter().cloned()).run()
}

#[cfg(test)]
mod tests {
    use super::BenchArgs;

    fn parse(args: &[&str]) -> anyhow::Result<BenchArgs> {
        BenchArgs::parse(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn parses_bench_args() {
        let a = parse(&["--smoke"]).unwrap();
        assert!(a.smoke && !a.micro && a.pass.is_empty());
        let a = parse(&["--store", "redis", "--events", "10"]).unwrap();
        assert_eq!(a.feature(), Some("redis"));
        assert_eq!(a.pass, ["--store", "redis", "--events", "10"]);
        assert_eq!(
            parse(&["--store=postgres"]).unwrap().feature(),
            Some("postgres")
        );
        assert_eq!(parse(&["--micro", "--", "sign"]).unwrap().pass, ["sign"]);
        assert!(parse(&["--store", "mysql"]).is_err());
        assert!(parse(&["--store"]).is_err());
        assert!(parse(&["--smoke", "--micro"]).is_err());
    }
}
