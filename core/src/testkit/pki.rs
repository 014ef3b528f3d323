//! A test public-key infrastructure for TLS tests of the stores: a CA, a server certificate it
//! issued for `localhost` and `127.0.0.1`, and an unrelated CA (rcgen). Behind the `testkit-tls`
//! feature.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// PEM files of a test CA, of a server certificate it issued for `localhost` and `127.0.0.1`
/// with its key, and of another CA that issued nothing the server has.
#[derive(Debug)]
pub struct TestPki {
    /// The CA that issued the server's certificate.
    pub ca: PathBuf,
    /// An unrelated CA.
    pub other_ca: PathBuf,
    /// The server's certificate.
    pub cert: PathBuf,
    /// The server's private key (PKCS #8).
    pub key: PathBuf,
}

impl TestPki {
    /// Generates the CAs and the server certificate into `dir`.
    pub fn write(dir: &Path) -> Self {
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
