//! Mutual TLS for peer and client connections (rustls through tokio-rustls,
//! the `ring` crypto provider), and throwaway certificates for a local
//! cluster (rcgen).
//!
//! A TLS directory holds PEM files:
//!
//! - `ca.pem`: the cluster CA's certificate; a connection is accepted only
//!   from a certificate it signed, and a node is trusted only if its
//!   certificate chains to it;
//! - `node-<id>.pem` and `node-<id>-key.pem`: node `id`'s certificate and
//!   private key, presented both when it accepts a connection and when it
//!   dials a peer. Its subject alternative names must include the host (name
//!   or IP address) of the node's `--peers` entry: peers and clients verify
//!   it against the address they dial;
//! - `client.pem` and `client-key.pem`: the certificate and key clients
//!   (`put`, `get`, `status`, `bench`, ...) present.
//!
//! [`generate`] writes such a directory (also `ca-key.pem`) for a local
//! cluster; `raftkv cluster --tls` uses it.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::either::Either;

/// The CA certificate's file name in a TLS directory.
pub const CA_CERT: &str = "ca.pem";
/// The CA key's file name ([`generate`] writes it; nodes never read it).
pub const CA_KEY: &str = "ca-key.pem";
/// The client certificate's file name.
pub const CLIENT_CERT: &str = "client.pem";
/// The client key's file name.
pub const CLIENT_KEY: &str = "client-key.pem";

/// Node `id`'s certificate file name.
pub fn node_cert(id: u64) -> String {
    format!("node-{id}.pem")
}

/// Node `id`'s key file name.
pub fn node_key(id: u64) -> String {
    format!("node-{id}-key.pem")
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {why}", path.display())]
    Garbled { path: PathBuf, why: String },
    #[error("{what}: {source}")]
    Rustls {
        what: String,
        #[source]
        source: rustls::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate in a PEM file (at least one).
fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Garbled {
            path: path.to_path_buf(),
            why: format!("not a PEM certificate file ({e})"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Garbled {
            path: path.to_path_buf(),
            why: "no certificate in it (expected a PEM \"BEGIN CERTIFICATE\" block)".into(),
        });
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Garbled {
        path: path.to_path_buf(),
        why: format!("no private key in it (expected a PEM \"BEGIN PRIVATE KEY\" block: {e})"),
    })
}

fn load_roots(dir: &Path) -> Result<RootCertStore, TlsError> {
    let path = dir.join(CA_CERT);
    let mut roots = RootCertStore::empty();
    for c in load_certs(&path)? {
        roots.add(c).map_err(|e| TlsError::Garbled {
            path: path.clone(),
            why: format!("not a usable CA certificate ({e})"),
        })?;
    }
    Ok(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(
    roots: RootCertStore,
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    what: String,
) -> Result<ClientConfig, TlsError> {
    let rustls = |source| TlsError::Rustls {
        what: what.clone(),
        source,
    };
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls)?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(rustls)
}

/// A node's TLS: the acceptor for inbound connections (a client certificate
/// signed by the CA required) and the dialer for its peers (presenting the
/// node's certificate).
#[derive(Clone)]
pub struct NodeTls {
    pub acceptor: TlsAcceptor,
    pub dialer: Dialer,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTls").finish_non_exhaustive()
    }
}

/// Loads node `id`'s TLS from `dir` (`ca.pem`, `node-<id>.pem`,
/// `node-<id>-key.pem`); errors name the file.
pub fn node_tls(dir: &Path, id: u64) -> Result<NodeTls, TlsError> {
    let roots = load_roots(dir)?;
    let (cert_path, key_path) = (dir.join(node_cert(id)), dir.join(node_key(id)));
    let certs = load_certs(&cert_path)?;
    let key = load_key(&key_path)?;
    let what = format!("{} with {}", cert_path.display(), key_path.display());
    let rustls = |source| TlsError::Rustls {
        what: what.clone(),
        source,
    };
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots.clone()),
        provider(),
    )
    .build()
    .map_err(|e| TlsError::Garbled {
        path: dir.join(CA_CERT),
        why: format!("cannot verify clients with it ({e})"),
    })?;
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs.clone(), key.clone_key())
        .map_err(rustls)?;
    let client = client_config(roots, certs, key, what.clone())?;
    Ok(NodeTls {
        acceptor: TlsAcceptor::from(Arc::new(server)),
        dialer: Dialer::tls(Arc::new(client)),
    })
}

/// Loads a client's TLS from `dir` (`ca.pem`, `client.pem`,
/// `client-key.pem`); errors name the file.
pub fn client_tls(dir: &Path) -> Result<Dialer, TlsError> {
    let roots = load_roots(dir)?;
    let (cert_path, key_path) = (dir.join(CLIENT_CERT), dir.join(CLIENT_KEY));
    let certs = load_certs(&cert_path)?;
    let key = load_key(&key_path)?;
    let what = format!("{} with {}", cert_path.display(), key_path.display());
    Ok(Dialer::tls(Arc::new(client_config(
        roots, certs, key, what,
    )?)))
}

/// A connection a [`Dialer`] opened: plain TCP or TLS over TCP.
pub type Conn = Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

/// Opens connections to nodes: plain TCP (the default) or TLS presenting a
/// client certificate.
#[derive(Clone, Default)]
pub struct Dialer {
    tls: Option<Arc<ClientConfig>>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Dialer {
    /// Plain TCP.
    pub fn plain() -> Dialer {
        Dialer { tls: None }
    }

    /// TLS with this configuration (roots and client certificate).
    pub fn tls(cfg: Arc<ClientConfig>) -> Dialer {
        Dialer { tls: Some(cfg) }
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Connects to `addr` (HOST:PORT) and, with TLS, completes the
    /// handshake, verifying the node's certificate against HOST.
    pub async fn connect(&self, addr: &str) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        let Some(cfg) = &self.tls else {
            return Ok(Either::Left(stream));
        };
        let name = server_name(addr)?;
        let tls = TlsConnector::from(cfg.clone())
            .connect(name, stream)
            .await?;
        Ok(Either::Right(tls))
    }
}

/// The host of HOST:PORT as a TLS server name (a DNS name or an IP address).
fn server_name(addr: &str) -> std::io::Result<ServerName<'static>> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(host.to_string()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{host} is not a host name for TLS: {e}"),
        )
    })
}

/// Writes a throwaway CA and certificates into `dir` (created if missing):
/// `ca.pem`/`ca-key.pem`, `node-<id>.pem`/`node-<id>-key.pem` for each of
/// `nodes` with `hosts` as subject alternative names (IP addresses or DNS
/// names), and `client.pem`/`client-key.pem`. Keys are written mode 0600.
pub fn generate(dir: &Path, nodes: &[u64], hosts: &[String]) -> Result<(), TlsError> {
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "raftkv throwaway cluster CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    write(&dir.join(CA_CERT), &ca_cert.pem(), false)?;
    write(&dir.join(CA_KEY), &ca_key.serialize_pem(), true)?;
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |name: &str, sans: Vec<String>| -> Result<(String, String), TlsError> {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(sans)?;
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = p.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    for &id in nodes {
        let (cert, key) = leaf(&format!("raftkv node {id}"), hosts.to_vec())?;
        write(&dir.join(node_cert(id)), &cert, false)?;
        write(&dir.join(node_key(id)), &key, true)?;
    }
    let (cert, key) = leaf("raftkv client", Vec::new())?;
    write(&dir.join(CLIENT_CERT), &cert, false)?;
    write(&dir.join(CLIENT_KEY), &key, true)?;
    Ok(())
}

fn write(path: &Path, text: &str, secret: bool) -> Result<(), TlsError> {
    use std::io::Write as _;
    let err = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_load_and_bad_files_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        generate(dir, &[1, 2], &["127.0.0.1".into(), "localhost".into()]).unwrap();
        assert!(node_tls(dir, 1).is_ok());
        assert!(client_tls(dir).is_ok());
        // A node without files of its own: the error names the file.
        let e = node_tls(dir, 3).unwrap_err().to_string();
        assert!(e.contains("node-3.pem"), "{e}");
        // Garbled certificate and key files are named too.
        std::fs::write(dir.join(CLIENT_CERT), "garbage").unwrap();
        let e = client_tls(dir).unwrap_err().to_string();
        assert!(
            e.contains("client.pem") && e.contains("no certificate"),
            "{e}"
        );
        std::fs::write(dir.join(node_key(2)), "-----BEGIN NOTHING-----\n").unwrap();
        let e = node_tls(dir, 2).unwrap_err().to_string();
        assert!(
            e.contains("node-2-key.pem") && e.contains("private key"),
            "{e}"
        );
        // A key that does not match its certificate.
        std::fs::copy(dir.join(node_key(1)), dir.join(node_key(2))).unwrap();
        let e = node_tls(dir, 2).unwrap_err().to_string();
        assert!(e.contains("node-2.pem with"), "{e}");
        std::fs::remove_file(dir.join(CA_CERT)).unwrap();
        let e = node_tls(dir, 1).unwrap_err().to_string();
        assert!(e.contains("ca.pem"), "{e}");
    }

    #[test]
    fn server_names_of_addresses() {
        assert!(server_name("127.0.0.1:7001").is_ok());
        assert!(server_name("[::1]:7001").is_ok());
        assert!(server_name("node-1.example:7001").is_ok());
    }
}
