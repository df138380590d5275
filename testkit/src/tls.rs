//! Certificates for the TLS tests, made in the test with rcgen: a CA
//! ([`Pki::new`]), certificates it signs ([`Pki::issue`]) written as PEM
//! files in a directory of the test's own (removed on drop), and the rustls
//! configurations of a test client or a fake PG that go with them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// A certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A test CA and the directory its files are written to.
pub struct Pki {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    /// The CA's certificate (PEM file).
    pub ca: PathBuf,
}

#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Pki {
    /// A new CA named `name`, in a fresh directory under the temp dir.
    pub fn new(name: &str) -> Pki {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ctirouter-tls-{}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            name
        ));
        std::fs::create_dir_all(&dir).expect("create the test's certificate directory");
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let cert = params.self_signed(&key).expect("self-signed CA");
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, cert.pem()).expect("write the CA");
        Pki {
            dir,
            issuer: Issuer::new(params, key),
            ca,
        }
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A certificate for `names` (DNS names or IP addresses) signed by this
    /// CA, written as `<file>.pem` and `<file>.key`.
    pub fn issue(&self, file: &str, names: &[&str]) -> Issued {
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("certificate params");
        params.distinguished_name.push(DnType::CommonName, file);
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign the certificate");
        let issued = Issued {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}.key")),
        };
        std::fs::write(&issued.cert, cert.pem()).expect("write the certificate");
        std::fs::write(&issued.key, key.serialize_pem()).expect("write the key");
        issued
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca).expect("read the CA") {
            roots.add(cert.expect("CA PEM")).expect("add the CA");
        }
        roots
    }

    /// A client trusting this CA, presenting `client` if given.
    pub fn client_config(&self, client: Option<&Issued>) -> Arc<ClientConfig> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(self.roots());
        let config = match client {
            None => builder.with_no_client_auth(),
            Some(issued) => builder
                .with_client_auth_cert(certs(&issued.cert), key(&issued.key))
                .expect("client certificate"),
        };
        Arc::new(config)
    }

    /// A server presenting `server` (no client certificates asked for).
    pub fn server_config(&self, server: &Issued) -> Arc<ServerConfig> {
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(certs(&server.cert), key(&server.key))
            .expect("server certificate");
        Arc::new(config)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .expect("read the certificate")
        .map(|c| c.expect("certificate PEM"))
        .collect()
}

fn key(path: &Path) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_file(path).expect("read the key")
}

/// `name` as a rustls server name (a DNS name or an IP address).
pub fn server_name(name: &str) -> ServerName<'static> {
    ServerName::try_from(name.to_string()).expect("a DNS name or an IP address")
}
