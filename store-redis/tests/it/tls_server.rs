//! A throwaway `redis-server` that speaks only TLS, on a free loopback port, with a certificate
//! from a test CA generated here (rcgen). The server tests use this file too.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// PEM files of a test CA, of a server certificate it issued for `localhost` and `127.0.0.1`
/// with its key, and of another CA that issued nothing the server has.
#[derive(Debug)]
pub(crate) struct TestPki {
    /// The CA that issued the server's certificate.
    pub(crate) ca: PathBuf,
    /// An unrelated CA.
    pub(crate) other_ca: PathBuf,
    /// The server's certificate.
    pub(crate) cert: PathBuf,
    /// The server's private key (PKCS #8).
    pub(crate) key: PathBuf,
}

impl TestPki {
    /// Generates the CAs and the server certificate into `dir`.
    pub(crate) fn write(dir: &Path) -> Self {
        let ca = |name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().expect("a CA key");
            CertifiedIssuer::self_signed(params, key).expect("a CA certificate")
        };
        let issuer = ca("Hookline test CA");
        let other = ca("Hookline other test CA");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("a server key");
        let cert = params
            .signed_by(&key, &issuer)
            .expect("a server certificate");
        let pki = Self {
            ca: dir.join("ca.pem"),
            other_ca: dir.join("other-ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        };
        for (path, pem) in [
            (&pki.ca, issuer.pem()),
            (&pki.other_ca, other.pem()),
            (&pki.cert, cert.pem()),
            (&pki.key, key.serialize_pem()),
        ] {
            std::fs::write(path, pem).expect("writing a test PEM file");
        }
        pki
    }
}

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
