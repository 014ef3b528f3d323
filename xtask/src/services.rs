//! `cargo xtask services [start|status]`: find (and if needed start) PostgreSQL and Redis for the tests.

use std::env;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cmd::{Cmd, find_in_path};

pub(crate) const POSTGRES_ENV: &str = "HOOKLINE_TEST_POSTGRES_URL";
pub(crate) const REDIS_ENV: &str = "HOOKLINE_TEST_REDIS_URL";
const POSTGRES_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const REDIS_DEFAULT: &str = "redis://127.0.0.1:6379";

const IO_TIMEOUT: Duration = Duration::from_secs(2);
const START_DEADLINE: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(250);

const INSTALL_HINT: &str = "install them with `apt-get install postgresql redis-server` \
     (or point HOOKLINE_TEST_POSTGRES_URL / HOOKLINE_TEST_REDIS_URL at running servers)";

/// The service URLs the tests should use.
#[derive(Debug, Clone)]
pub(crate) struct ServiceUrls {
    pub(crate) postgres: String,
    pub(crate) redis: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Report only; fail if something is down.
    Status,
    /// Report, then start whatever is down and wait for it.
    Start,
}

pub(crate) fn cmd(args: &[String]) -> Result<ServiceUrls> {
    let mode = match args {
        [] => Mode::Start,
        [a] if a == "start" => Mode::Start,
        [a] if a == "status" => Mode::Status,
        _ => bail!(
            "usage: cargo xtask services [start|status], got `{}`",
            args.join(" ")
        ),
    };
    run(mode)
}

/// Makes sure PostgreSQL and Redis answer, starting local ones if needed, and returns their URLs.
pub(crate) fn ensure() -> Result<ServiceUrls> {
    run(Mode::Start)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Postgres,
    Redis,
}

#[derive(Debug)]
struct Service {
    kind: Kind,
    env: &'static str,
    url: String,
    host: String,
    port: u16,
}

impl Service {
    fn from_env(kind: Kind) -> Result<Self> {
        let (env, default, default_port) = match kind {
            Kind::Postgres => (POSTGRES_ENV, POSTGRES_DEFAULT, 5432),
            Kind::Redis => (REDIS_ENV, REDIS_DEFAULT, 6379),
        };
        let url = env::var(env).ok().filter(|v| !v.trim().is_empty());
        let from_env = url.is_some();
        let url = url.unwrap_or_else(|| default.to_owned());
        let (host, port) = host_port(&url, default_port)
            .with_context(|| format!("can't read host and port from {env}={url}"))?;
        let source = if from_env {
            "from the environment"
        } else {
            "default"
        };
        println!("{} URL ({source}): {env}={url}", service_name(kind));
        Ok(Self {
            kind,
            env,
            url,
            host,
            port,
        })
    }

    fn name(&self) -> &'static str {
        service_name(self.kind)
    }

    fn is_local(&self) -> bool {
        matches!(self.host.as_str(), "127.0.0.1" | "localhost" | "::1")
    }

    /// A TCP connect plus a protocol-level check (`pg_isready` or a Redis `PING`).
    fn check(&self, verbose: bool) -> Result<(), String> {
        let addr = resolve(&self.host, self.port)?;
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .map_err(|err| format!("no TCP connection to {addr}: {err}"))?;
        match self.kind {
            Kind::Postgres => {
                drop(stream);
                let pg_isready = Cmd::new("pg_isready").args([
                    "-h",
                    &self.host,
                    "-p",
                    &self.port.to_string(),
                    "-t",
                    "3",
                ]);
                if verbose {
                    if find_in_path("pg_isready").is_some() {
                        println!("$ {pg_isready}");
                    } else {
                        println!("(pg_isready not found; checking PostgreSQL by TCP connect only)");
                    }
                }
                match pg_isready.probe() {
                    Ok(Some(true)) => Ok(()),
                    Ok(Some(false)) => {
                        Err("pg_isready says it is not accepting connections".into())
                    }
                    // No pg_isready on this machine: the TCP connect has to do.
                    Ok(None) => Ok(()),
                    Err(err) => Err(format!("{err:#}")),
                }
            }
            Kind::Redis => {
                if self.url.starts_with("rediss://") {
                    // TLS: a plain-text PING can't work, the TCP connect has to do.
                    return Ok(());
                }
                redis_ping(stream)
            }
        }
    }

    /// Starts a local server in the background.
    fn start(&self) -> Result<()> {
        if !self.is_local() {
            bail!(
                "{} at {}:{} is not local, so xtask won't start it; start it yourself or change {}",
                self.name(),
                self.host,
                self.port,
                self.env
            );
        }
        match self.kind {
            Kind::Postgres => {
                if find_in_path("pg_ctlcluster").is_none() {
                    bail!("PostgreSQL is down and `pg_ctlcluster` was not found; {INSTALL_HINT}");
                }
                let version = postgres_version()?;
                if self.port != 5432 {
                    println!(
                        "note: starting cluster {version}/main, which must be configured for port {}",
                        self.port
                    );
                }
                Cmd::new("pg_ctlcluster")
                    .args(["--skip-systemctl-redirect", &version, "main", "start"])
                    .run()
                    .with_context(|| {
                        format!("could not start the PostgreSQL cluster {version}/main")
                    })
            }
            Kind::Redis => {
                if find_in_path("redis-server").is_none() {
                    bail!("Redis is down and `redis-server` was not found; {INSTALL_HINT}");
                }
                Cmd::new("redis-server")
                    .args(["--daemonize", "yes", "--bind", "127.0.0.1", "--port"])
                    .arg(self.port.to_string())
                    .args(["--save", "", "--appendonly", "no"])
                    .run()
                    .context("could not start Redis")
            }
        }
    }
}

fn service_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Postgres => "PostgreSQL",
        Kind::Redis => "Redis",
    }
}

fn run(mode: Mode) -> Result<ServiceUrls> {
    let services = [
        Service::from_env(Kind::Postgres)?,
        Service::from_env(Kind::Redis)?,
    ];

    let mut down = Vec::new();
    for service in &services {
        match service.check(true) {
            Ok(()) => println!(
                "{} is up at {}:{}",
                service.name(),
                service.host,
                service.port
            ),
            Err(why) => {
                println!(
                    "{} is down at {}:{}: {why}",
                    service.name(),
                    service.host,
                    service.port
                );
                down.push(service);
            }
        }
    }

    if !down.is_empty() {
        if mode == Mode::Status {
            let names: Vec<_> = down.iter().map(|s| s.name()).collect();
            bail!(
                "down: {} (run `cargo xtask services start`)",
                names.join(", ")
            );
        }
        for service in &down {
            service.start()?;
        }
        for service in &down {
            wait_until_up(service)?;
        }
    }

    let [postgres, redis] = services;
    println!("{POSTGRES_ENV}={}", postgres.url);
    println!("{REDIS_ENV}={}", redis.url);
    Ok(ServiceUrls {
        postgres: postgres.url,
        redis: redis.url,
    })
}

fn wait_until_up(service: &Service) -> Result<()> {
    let started = Instant::now();
    loop {
        match service.check(false) {
            Ok(()) => {
                println!(
                    "{} is up at {}:{} after {:.1}s",
                    service.name(),
                    service.host,
                    service.port,
                    started.elapsed().as_secs_f32()
                );
                return Ok(());
            }
            Err(why) if started.elapsed() >= START_DEADLINE => bail!(
                "{} did not come up at {}:{} within {}s: {why}",
                service.name(),
                service.host,
                service.port,
                START_DEADLINE.as_secs()
            ),
            Err(_) => thread::sleep(POLL_INTERVAL),
        }
    }
}

/// The PostgreSQL version directory under `/etc/postgresql` (the newest if there are several).
fn postgres_version() -> Result<String> {
    const ETC: &str = "/etc/postgresql";
    let entries = fs::read_dir(ETC)
        .with_context(|| format!("no PostgreSQL cluster config in {ETC}; {INSTALL_HINT}"))?;
    let mut versions = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {ETC}"))?;
        if entry.path().join("main").is_dir() {
            versions.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    // Sort numerically ("9.6" < "16"), newest last.
    versions.sort_by_key(|v| {
        v.split('.')
            .map(|part| part.parse::<u32>().unwrap_or(0))
            .collect::<Vec<_>>()
    });
    match versions.pop() {
        Some(version) => Ok(version),
        None => bail!("no `<version>/main` cluster in {ETC}; {INSTALL_HINT}"),
    }
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    (host, port)
        .to_socket_addrs()
        .map_err(|err| format!("can't resolve {host}:{port}: {err}"))?
        .next()
        .ok_or_else(|| format!("{host}:{port} resolved to no address"))
}

/// Sends `PING` and expects `+PONG`. An auth error still proves a live Redis is listening.
fn redis_ping(mut stream: TcpStream) -> Result<(), String> {
    let io = |err: std::io::Error| format!("PING failed: {err}");
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    stream.write_all(b"PING\r\n").map_err(io)?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 256];
    while !reply.ends_with(b"\r\n") && reply.len() < 4096 {
        let n = stream.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
    }
    let reply = String::from_utf8_lossy(&reply);
    let reply = reply.trim_end();
    if reply.starts_with("+PONG") || reply.starts_with("-NOAUTH") {
        Ok(())
    } else {
        Err(format!("PING answered `{reply}` instead of +PONG"))
    }
}

/// Host and port of a `scheme://[user[:pass]@]host[:port][/path][?query]` URL.
fn host_port(url: &str, default_port: u16) -> Result<(String, u16)> {
    let rest = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .context("no `scheme://`")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        // [IPv6]:port
        let (host, after) = bracketed.split_once(']').context("unclosed `[` in host")?;
        (host, after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let host = if host.is_empty() { "127.0.0.1" } else { host };
    let port = match port {
        Some(port) if !port.is_empty() => {
            port.parse().with_context(|| format!("bad port `{port}`"))?
        }
        _ => default_port,
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn parses_host_and_port() {
        let hp = |url| host_port(url, 1).unwrap();
        assert_eq!(
            hp("postgres://postgres@127.0.0.1:5432/postgres"),
            ("127.0.0.1".into(), 5432)
        );
        assert_eq!(hp("redis://127.0.0.1:6379"), ("127.0.0.1".into(), 6379));
        assert_eq!(hp("redis://:secret@localhost/0"), ("localhost".into(), 1));
        assert_eq!(
            hp("postgres://u:p@db.example:6000?sslmode=disable"),
            ("db.example".into(), 6000)
        );
        assert_eq!(hp("postgres://[::1]:5433/x"), ("::1".into(), 5433));
        assert_eq!(hp("redis://"), ("127.0.0.1".into(), 1));
        assert!(host_port("127.0.0.1:5432", 1).is_err());
        assert!(host_port("redis://h:notaport", 1).is_err());
    }
}
