//! A throwaway `redis-server` that speaks only TLS, on a free loopback port, with a certificate
//! from a test CA generated here (rcgen). The server tests use this file too.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) use hookline_core::testkit::pki::TestPki;

/// A `redis-server` with TLS only (`--port 0`), killed when dropped (also when a test panics).
#[derive(Debug)]
pub(crate) struct TlsRedis {
    pub(crate) port: u16,
    pub(crate) pki: TestPki,
    child: Child,
    dir: tempfile::TempDir,
}

impl TlsRedis {
    /// Starts it and waits (at most 20 s) until its TLS port accepts connections.
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let pki = TestPki::write(dir.path());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = dir.path().join("redis.log");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", "0"])
            .arg("--tls-port")
            .arg(port.to_string())
            .arg("--tls-cert-file")
            .arg(&pki.cert)
            .arg("--tls-key-file")
            .arg(&pki.key)
            .arg("--tls-ca-cert-file")
            .arg(&pki.ca)
            .args([
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "could not start `redis-server` ({e}): these tests start a Redis with TLS of \
                     their own; install it with `apt-get install redis-server` (Debian's build \
                     has TLS), or run `cargo xtask services`"
                )
            });
        let mut server = Self {
            port,
            pki,
            child,
            dir,
        };
        server.wait_until_listening();
        server
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("redis-server status") {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                }
                let log =
                    std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
                let hint = if format!("{stderr}{log}").contains("tls-port") {
                    "this redis-server was built without TLS: install Debian's `redis-server` \
                     package (built with TLS), or a build with `BUILD_TLS=yes`"
                } else {
                    "see its output above"
                };
                panic!("redis-server with TLS exited ({status}): {hint}\n{stderr}\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on 127.0.0.1:{} within 20 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// `rediss://127.0.0.1:<port>/`.
    pub(crate) fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
