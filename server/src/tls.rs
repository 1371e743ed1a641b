//! TLS for clients and mutual TLS for peers (rustls with ring). Clients
//! need no certificate; a certificate a connection does present must chain
//! to the cluster CA, and only such connections may call `/raft/*`.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde::{Deserialize, Serialize};
use tokio_rustls::TlsAcceptor;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// This node's certificate chain (PEM), signed by the cluster CA; it also
    /// serves as the client certificate toward peers.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The cluster CA (PEM): peers must present a certificate it signed.
    pub ca_file: PathBuf,
}

pub struct Tls {
    pub acceptor: TlsAcceptor,
    /// PEM of the CA, for the peer client's roots.
    pub ca_pem: Vec<u8>,
    /// PEM of this node's certificate and key, the peer client's identity.
    pub identity_pem: Vec<u8>,
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

fn certs(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = rustls_pemfile::certs(&mut BufReader::new(pem))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(certs)
}

impl Tls {
    pub fn load(c: &TlsConfig) -> Result<Tls, String> {
        let cert_pem = read(&c.cert_file, "TLS certificate")?;
        let key_pem = read(&c.key_file, "TLS key")?;
        let ca_pem = read(&c.ca_file, "TLS CA")?;
        let chain = certs(&cert_pem, &c.cert_file)?;
        let key: PrivateKeyDer<'static> =
            rustls_pemfile::private_key(&mut BufReader::new(key_pem.as_slice()))
                .map_err(|e| format!("{}: {e}", c.key_file.display()))?
                .ok_or_else(|| format!("{} holds no private key", c.key_file.display()))?;
        let mut roots = RootCertStore::empty();
        for ca in certs(&ca_pem, &c.ca_file)? {
            roots
                .add(ca)
                .map_err(|e| format!("{}: {e}", c.ca_file.display()))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("TLS client verifier: {e}"))?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| format!("TLS certificate {}: {e}", c.cert_file.display()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut identity_pem = cert_pem;
        identity_pem.push(b'\n');
        identity_pem.extend_from_slice(&key_pem);
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            ca_pem,
            identity_pem,
        })
    }
}
