//! A throwaway PostgreSQL cluster with TLS, on a free loopback port in a temp dir, with a
//! certificate from a test CA generated here (rcgen); the machine's own cluster is not touched.
//! PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user
//! (`runuser`). It accepts only TLS connections from 127.0.0.0/8 (`hostssl … trust`), listens on
//! 127.0.0.1 and 127.0.0.2 (a name its certificate does not carry), and is stopped when dropped.
//! The server tests use this file too.

use std::path::PathBuf;
use std::process::{Command, Stdio};

pub(crate) use hookline_core::testkit::pki::TestPki;

const INSTALL_HINT: &str = "these tests start a PostgreSQL cluster of their own with `initdb` \
     and `postgres`: install the server (`apt-get install postgresql`, which `cargo xtask \
     services` also needs)";

/// A running throwaway cluster; stopped (`pg_ctl stop -m immediate`) when dropped.
#[derive(Debug)]
pub(crate) struct TlsPostgres {
    pub(crate) port: u16,
    pub(crate) pki: TestPki,
    bin: PathBuf,
    /// `postgres` when this process runs as root, else none (the cluster runs as us).
    run_as: Option<String>,
    data: PathBuf,
    dir: tempfile::TempDir,
}

impl TlsPostgres {
    /// Creates the cluster (`initdb`), configures TLS and starts it; waits for it (`pg_ctl -w`,
    /// at most 60 s).
    pub(crate) fn start() -> Self {
        let bin = bin_dir();
        let run_as = (output("id", &["-u"]) == "0").then(|| "postgres".to_owned());
        let dir = tempfile::Builder::new()
            .prefix("hookline-pg-tls-")
            .tempdir()
            .expect("a temp dir");
        let pki = TestPki::write(dir.path());
        if let Some(user) = &run_as {
            let id = |flag: &str| -> u32 {
                let out = Command::new("id").args([flag, user]).output();
                match out {
                    Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
                        .trim()
                        .parse()
                        .expect("a numeric id"),
                    _ => panic!(
                        "running as root, the test cluster must run as the `{user}` user, which \
                         does not exist; {INSTALL_HINT}"
                    ),
                }
            };
            let (uid, gid) = (id("-u"), id("-g"));
            for path in [dir.path(), &pki.cert, &pki.key] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown to postgres");
            }
        }
        std::fs::set_permissions(
            &pki.key,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod 600 the key");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let data = dir.path().join("data");
        let cluster = Self {
            port,
            pki,
            bin,
            run_as,
            data,
            dir,
        };
        cluster.run(
            "initdb",
            &[
                "-D".as_ref(),
                cluster.data.as_os_str(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
                "--no-sync".as_ref(),
            ],
        );
        // Written over initdb's file, so it keeps its owner.
        std::fs::write(
            cluster.data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.0/8 trust\n",
        )
        .expect("writing pg_hba.conf");
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1,127.0.0.2 -c unix_socket_directories={dir} \
             -c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key} -c fsync=off \
             -c max_connections=40 -c shared_buffers=16MB",
            dir = cluster.dir.path().display(),
            cert = cluster.pki.cert.display(),
            key = cluster.pki.key.display(),
        );
        let log = cluster.dir.path().join("postgres.log");
        cluster.run(
            "pg_ctl",
            &[
                "start".as_ref(),
                "-D".as_ref(),
                cluster.data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "-o".as_ref(),
                options.as_ref(),
            ],
        );
        cluster
    }

    /// `postgres://postgres@<host>:<port>/postgres` with `query` (e.g. `sslmode=require`).
    pub(crate) fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{query}", self.port)
    }

    /// A command for a PostgreSQL program, run as the cluster's user.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    /// Runs `program` to its end, failing the test with its output if it fails.
    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) {
        let out = self
            .command(program)
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("could not run {program} ({e}); {INSTALL_HINT}"));
        if !out.status.success() {
            let log =
                std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default();
            panic!(
                "{program} failed ({}):\n{}\n{}\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let stopped = self
            .command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-t", "20"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            // The postmaster's pid is the first line of postmaster.pid.
            let pid = std::fs::read_to_string(self.data.join("postmaster.pid")).unwrap_or_default();
            if let Some(pid) = pid.lines().next().filter(|p| !p.is_empty()) {
                let _ = self.command("pg_ctl").args(["kill", "KILL", pid]).status();
            }
        }
    }
}

/// The directory of `initdb` and `postgres`: the newest `/usr/lib/postgresql/<version>/bin`
/// (Debian, Ubuntu), else `pg_config --bindir`.
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.split('.').next()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return bin;
    }
    let bin = PathBuf::from(output("pg_config", &["--bindir"]));
    if bin.join("initdb").is_file() && bin.join("postgres").is_file() {
        return bin;
    }
    panic!(
        "`initdb` was not found in /usr/lib/postgresql/*/bin nor by `pg_config`; {INSTALL_HINT}"
    );
}

/// Standard output of a command, trimmed; empty if it cannot run.
fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
