//! Mutual TLS between Kinfold's services: the adapters serve over TLS and know their callers
//! by the client certificates they present; the gateway and the feeds present one.
//!
//! A caller is named by a DNS name in its certificate's subjectAltName (for example
//! `gateway.kinfold.internal`), after rustls has checked that the certificate chains to the
//! configured client authority. The names a service accepts for each purpose are
//! configuration (`AdapterTls`), so a certificate can be replaced without touching the service.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::HttpRequest;
use actix_web::dev::Extensions;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use serde::Deserialize;

/// A service's own certificate and key, and the authority its clients' certificates chain to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// The service's certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: PathBuf,
    /// The authority that signs the clients' certificates (PEM).
    pub client_ca: PathBuf,
}

/// What a client presents and trusts: the authority that signed the servers' certificates, and
/// the client's own certificate and key.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// The authority the servers' certificates chain to (PEM).
    pub ca: PathBuf,
    /// The client's certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: PathBuf,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no usable certificate or key.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was missing or wrong.
        what: String,
    },
    /// rustls refused the set.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Whether a listener requires a client certificate at the handshake, or lets a connection
/// without one through (to be refused, or served, route by route).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCertificates {
    /// No certificate, no connection.
    Required,
    /// A connection without one is let through; one that presents a certificate not signed
    /// by the authority is still refused at the handshake.
    Optional,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            what: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            what: "no certificate in the file".into(),
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|e| TlsError::Pem {
        path: path.to_owned(),
        what: format!("no usable private key ({e})"),
    })
}

/// The server side: the service's certificate, and a client verifier for `client_ca`.
pub fn server_config(
    tls: &ServerTls,
    clients: ClientCertificates,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(&tls.client_ca)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::Config(e.to_string()))?;
    }
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots));
    let verifier = match clients {
        ClientCertificates::Required => verifier,
        ClientCertificates::Optional => verifier.allow_unauthenticated(),
    }
    .build()
    .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certificates(&tls.cert)?, private_key(&tls.key)?)
        .map_err(|e| pairing(&tls.cert, &tls.key, &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// An HTTP client that trusts only `tls.ca` and presents `tls.cert`.
pub fn client(
    tls: &ClientTls,
    builder: reqwest::ClientBuilder,
) -> Result<reqwest::ClientBuilder, TlsError> {
    let ca = reqwest::Certificate::from_pem_bundle(&read(&tls.ca)?).map_err(|e| TlsError::Pem {
        path: tls.ca.clone(),
        what: e.to_string(),
    })?;
    let mut identity = read(&tls.cert)?;
    identity.push(b'\n');
    identity.extend(read(&tls.key)?);
    let identity = reqwest::Identity::from_pem(&identity).map_err(|e| TlsError::Pem {
        path: tls.cert.clone(),
        what: e.to_string(),
    })?;
    Ok(builder.tls_certs_only(ca).identity(identity))
}

/// The certificate a connection's client presented (checked against the client authority at
/// the handshake).
#[derive(Debug, Clone)]
pub struct PeerCertificate(CertificateDer<'static>);

impl PeerCertificate {
    /// Wraps a certificate the handshake accepted.
    pub fn new(certificate: CertificateDer<'static>) -> Self {
        Self(certificate)
    }

    /// Whether the certificate names exactly `name` (a DNS name in its subjectAltName,
    /// compared without regard to ASCII case). A client is an allowed name, not a pattern: a
    /// certificate carrying any wildcard name (`*.kinfold.internal`) names no client at all,
    /// whatever else it carries.
    pub fn names(&self, name: &str) -> bool {
        let Ok(cert) = webpki::EndEntityCert::try_from(&self.0) else {
            return false;
        };
        let names: Vec<&str> = cert.valid_dns_names().collect();
        !names.iter().any(|n| n.contains('*'))
            && names.iter().any(|n| {
                n.trim_end_matches('.')
                    .eq_ignore_ascii_case(name.trim_end_matches('.'))
            })
    }

    /// Whether it names any of `names`.
    pub fn names_any(&self, names: &[String]) -> bool {
        names.iter().any(|name| self.names(name))
    }
}

/// Keeps the client's certificate of each TLS connection for its requests
/// (`HttpServer::on_connect`); read it with [`peer_certificate`].
pub fn on_connect(connection: &dyn Any, data: &mut Extensions) {
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    if let Some(stream) = connection.downcast_ref::<Tls>() {
        let (_, session) = stream.get_ref();
        if let Some(first) = session.peer_certificates().and_then(|c| c.first()) {
            data.insert(PeerCertificate(first.clone().into_owned()));
        }
    }
}

/// The client certificate of the request's connection, if it presented one.
pub fn peer_certificate(request: &HttpRequest) -> Option<&PeerCertificate> {
    request.conn_data::<PeerCertificate>()
}

/// The client side for a raw TLS connection (MLLP): trusts only `tls.ca` and presents
/// `tls.cert`.
pub fn client_config(tls: &ClientTls) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(&tls.ca)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::Config(e.to_string()))?;
    }
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(certificates(&tls.cert)?, private_key(&tls.key)?)
        .map_err(|e| pairing(&tls.cert, &tls.key, &e))
}

/// A byte stream both ways: a plain or a TLS connection.
pub trait Duplex: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Duplex for T {}

/// Connects to a feed listener (MLLP): `tls://HOST:PORT` over TLS with the client
/// certificate, `HOST:PORT` in plain TCP.
pub async fn connect(address: &str, tls: Option<&ClientTls>) -> std::io::Result<Box<dyn Duplex>> {
    let Some(address) = address.strip_prefix("tls://") else {
        let stream = tokio::net::TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        return Ok(Box::new(stream));
    };
    let tls = tls.ok_or_else(|| {
        std::io::Error::other(format!(
            "tls://{address} needs a client certificate (ca, cert, key)"
        ))
    })?;
    let config = client_config(tls).map_err(|e| std::io::Error::other(e.to_string()))?;
    let host = address
        .rsplit_once(':')
        .map_or(address, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| std::io::Error::other(format!("{host}: {e}")))?;
    let stream = tokio::net::TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await?;
    Ok(Box::new(stream))
}

/// A certificate and key that rustls will not use together, with both files named.
fn pairing(cert: &Path, key: &Path, error: &rustls::Error) -> TlsError {
    let inconsistent = matches!(error, rustls::Error::InconsistentKeys(_));
    TlsError::Config(if inconsistent {
        format!(
            "the private key in {} is not the key of the certificate in {} (give the key the certificate was issued for)",
            key.display(),
            cert.display()
        )
    } else {
        format!(
            "the certificate in {} and the key in {} cannot be used: {error}",
            cert.display(),
            key.display()
        )
    })
}

/// What went wrong in a TLS handshake, in words an integration engineer can act on, if the
/// error (or anything in its chain of causes) is a TLS error; `None` for any other failure.
pub fn describe_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(describe_tls(tls));
        }
        // An I/O error carries the error it wraps as its payload (its `source` skips it).
        cause = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    None
}

/// A TLS error in words: which side refused what.
pub fn describe_tls(error: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match error {
        rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            "TLS: its certificate does not name the host in the configured URL (give the certificate that name in subjectAltName, or use a URL with a name it has)".into()
        }
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            "TLS: its certificate is not signed by the authority this side trusts (check the configured CA file)".into()
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "TLS: its certificate has expired".into()
        }
        rustls::Error::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "TLS: its certificate is not valid yet (check both machines' clocks)".into()
        }
        rustls::Error::InvalidCertificate(C::InvalidPurpose | C::InvalidPurposeContext { .. }) => {
            "TLS: its certificate is not for this use (a server certificate needs the serverAuth extended key usage, a client certificate clientAuth)".into()
        }
        rustls::Error::InvalidCertificate(other) => {
            format!("TLS: its certificate was refused ({other:?})")
        }
        rustls::Error::AlertReceived(alert) => format!(
            "TLS: the other side refused the handshake ({alert:?}): it may not accept this side's client certificate"
        ),
        other => format!("TLS: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_failures_are_named_as_such_through_the_chain_of_causes() {
        use rustls::CertificateError as C;
        let name = rustls::Error::InvalidCertificate(C::NotValidForName);
        assert!(describe_tls(&name).contains("does not name the host"));
        let issuer = rustls::Error::InvalidCertificate(C::UnknownIssuer);
        assert!(describe_tls(&issuer).contains("not signed by the authority"));
        assert!(describe_tls(&rustls::Error::InvalidCertificate(C::Expired)).contains("expired"));
        // Wrapped in I/O errors, as the HTTP client's connector reports it.
        let wrapped =
            std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, name));
        assert!(describe_failure(&wrapped).is_some_and(|d| d.contains("does not name")));
        // Not a TLS failure at all.
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(describe_failure(&refused), None);
    }
}
