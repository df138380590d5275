//! TLS settings made into rustls configurations: the secured client port
//! (`[tls]`) and the upstream session to the CTI Server (`[upstream] tls`).
//!
//! Built once at start (and by `check-config`), so a missing or unreadable
//! certificate or key fails with the file's name and the reason before any
//! port is opened. The crypto provider is *ring*; the configurations are
//! shared by every shard (`Arc`), each connection has its own rustls state.

use std::path::Path;
use std::sync::Arc;

use rustls::client::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::RootCertStore;

use crate::config::{Config, ConfigError, TlsConfig, UpstreamConfig};

/// Plaintext and ciphertext a connection's rustls state may hold before its
/// writer stops taking more (the rest stays in the session's own output,
/// where the output bound sees it).
pub const BUFFER_LIMIT: usize = 64 * 1024;

/// rustls's *ring* provider. rustls marks it deprecated because *ring* has
/// no post-quantum key exchange; the other provider (aws-lc-rs) needs cmake
/// and a C toolchain to build, which this project does not ask for.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The files a valid `config` ([`Config::validate`]) names load and agree:
/// the TLS port's certificate and key, and, when the upstream is served,
/// its CA, client certificate and server name. Wherever a config is taken
/// (`Router::start`, `check-config`, a reload), after `validate`.
pub fn check(config: &Config) -> Result<(), ConfigError> {
    server_config(&config.tls)?;
    match (&config.replay, &config.upstream) {
        (None, Some(upstream)) => check_upstream(upstream),
        _ => Ok(()),
    }
}

/// The upstream's TLS files load and its server name parses.
pub fn check_upstream(upstream: &UpstreamConfig) -> Result<(), ConfigError> {
    if let Some(name) = upstream.server_name.as_deref().filter(|_| upstream.tls) {
        server_name(name)?;
    }
    client_config(upstream).map(|_| ())
}

/// The certificate chain in PEM file `path` (`setting` names the key that
/// gave it, for the error).
pub fn load_certs(setting: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let fail = |why: String| ConfigError(format!("{setting}: {}: {why}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(pem_error(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(pem_error(e)))?;
    if certs.is_empty() {
        return Err(fail("no CERTIFICATE in it (a PEM file is expected)".into()));
    }
    Ok(certs)
}

/// The private key in PEM file `path`.
pub fn load_key(setting: &str, path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| ConfigError(format!("{setting}: {}: {}", path.display(), pem_error(e))))
}

/// Every certificate in PEM file `path` as a trust anchor.
fn load_roots(setting: &str, path: &Path) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(setting, path)? {
        roots
            .add(cert)
            .map_err(|e| ConfigError(format!("{setting}: {}: {e}", path.display())))?;
    }
    Ok(roots)
}

fn pem_error(e: rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(e) => e.to_string(),
        Error::NoItemsFound => "no matching PEM section in it".into(),
        other => format!("not a valid PEM file ({other:?})"),
    }
}

/// The secured port's configuration, `None` when there is no TLS port.
pub fn server_config(tls: &TlsConfig) -> Result<Option<Arc<ServerConfig>>, ConfigError> {
    if tls.listen.is_none() {
        return Ok(None);
    }
    let (Some(cert), Some(key)) = (&tls.cert, &tls.key) else {
        return Err(ConfigError(
            "tls.listen is set: give tls.cert and tls.key (PEM files) too".into(),
        ));
    };
    let certs = load_certs("tls.cert", cert)?;
    let key = load_key("tls.key", key)?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError(format!("tls: {e}")))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = load_roots("tls.client_ca", ca)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| ConfigError(format!("tls.client_ca: {}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        ConfigError(format!(
            "tls.cert / tls.key: {} and {}: {e}",
            cert.display(),
            tls.key.as_deref().unwrap_or(Path::new("")).display()
        ))
    })?;
    Ok(Some(Arc::new(config)))
}

/// The upstream's configuration, `None` when it is clear text.
pub fn client_config(upstream: &UpstreamConfig) -> Result<Option<Arc<ClientConfig>>, ConfigError> {
    if !upstream.tls {
        return Ok(None);
    }
    let Some(ca) = &upstream.ca else {
        return Err(ConfigError(
            "upstream.tls is true: give upstream.ca, the PEM file of the CA the CTI Server's \
             certificate is signed by"
                .into(),
        ));
    };
    let roots = load_roots("upstream.ca", ca)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError(format!("upstream tls: {e}")))?
        .with_root_certificates(roots);
    let config = match (&upstream.cert, &upstream.key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let certs = load_certs("upstream.cert", cert)?;
            let key_der = load_key("upstream.key", key)?;
            builder.with_client_auth_cert(certs, key_der).map_err(|e| {
                ConfigError(format!(
                    "upstream.cert / upstream.key: {} and {}: {e}",
                    cert.display(),
                    key.display()
                ))
            })?
        }
        _ => {
            return Err(ConfigError(
                "upstream.cert and upstream.key go together: give both or neither".into(),
            ))
        }
    };
    Ok(Some(Arc::new(config)))
}

/// A name a server certificate is checked against (a DNS name or an IP
/// address).
pub fn server_name(name: &str) -> Result<ServerName<'static>, ConfigError> {
    ServerName::try_from(name.to_string()).map_err(|e| {
        ConfigError(format!(
            "upstream.server_name {name:?}: not a DNS name or IP address ({e})"
        ))
    })
}

/// The name side `addr` (`host:port`) is checked against: `server_name` if
/// configured, else the host of the address.
pub fn side_server_name(
    upstream: &UpstreamConfig,
    addr: &str,
) -> Result<ServerName<'static>, ConfigError> {
    if let Some(name) = &upstream.server_name {
        return server_name(name);
    }
    let host = match addr.rsplit_once(':') {
        Some((host, _port)) => host,
        None => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    server_name(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_side_s_host_is_its_server_name() {
        let up = UpstreamConfig::default();
        let name = |addr| side_server_name(&up, addr).map(|n| n.to_str().into_owned());
        assert_eq!(name("pg1a.example:42027").unwrap(), "pg1a.example");
        assert_eq!(name("127.0.0.1:42027").unwrap(), "127.0.0.1");
        assert_eq!(name("[::1]:42027").unwrap(), "::1");
        let named = UpstreamConfig {
            server_name: Some("cti.example".into()),
            ..UpstreamConfig::default()
        };
        assert_eq!(
            side_server_name(&named, "10.0.0.1:42027").unwrap().to_str(),
            "cti.example"
        );
    }

    #[test]
    fn check_loads_what_a_valid_config_names() {
        let mut config = Config::default();
        config.tls.listen = Some("127.0.0.1:0".parse().unwrap());
        config.validate_on(4).unwrap();
        let e = check(&config).unwrap_err().0;
        assert!(
            e.starts_with("tls.listen is set: give tls.cert and tls.key"),
            "{e}"
        );
        let mut config = Config::parse(&format!(
            "listen = \"127.0.0.1:42027\"\n[tls]\nlisten = \"127.0.0.1:42027\"\n\
             cert = \"{0}\"\nkey = \"{0}\"\n",
            "/nonexistent/router.pem"
        ))
        .unwrap();
        let e = check(&config).unwrap_err().0;
        assert!(e.starts_with("tls.cert: /nonexistent/router.pem: "), "{e}");
        config.tls = TlsConfig::default();
        config.upstream = Some(UpstreamConfig {
            sides: vec!["a:1".into()],
            tls: true,
            ca: Some("/nonexistent/pg-ca.pem".into()),
            server_name: Some("not a name".into()),
            ..UpstreamConfig::default()
        });
        let e = check(&config).unwrap_err().0;
        assert!(e.starts_with("upstream.server_name \"not a name\""), "{e}");
        check(&Config::default()).unwrap();
    }

    #[test]
    fn missing_files_are_named_with_the_reason() {
        let tls = TlsConfig {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            cert: Some("/nonexistent/router.pem".into()),
            key: Some("/nonexistent/router.key".into()),
            client_ca: None,
        };
        let e = server_config(&tls).unwrap_err().0;
        assert!(
            e.starts_with("tls.cert: /nonexistent/router.pem: ") && e.contains("No such file"),
            "{e}"
        );
        let up = UpstreamConfig {
            tls: true,
            ca: Some("/nonexistent/pg-ca.pem".into()),
            ..UpstreamConfig::default()
        };
        let e = client_config(&up).unwrap_err().0;
        assert!(
            e.starts_with("upstream.ca: /nonexistent/pg-ca.pem: "),
            "{e}"
        );
        let no_ca = UpstreamConfig {
            tls: true,
            ..UpstreamConfig::default()
        };
        assert!(client_config(&no_ca)
            .unwrap_err()
            .0
            .starts_with("upstream.tls is true: give upstream.ca"));
    }
}
