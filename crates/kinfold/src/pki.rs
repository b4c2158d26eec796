//! The demo's certificate authority: a local CA and the certificates mutual TLS needs between
//! the gateway, the adapters and the feeds, made with rcgen under the demo's data directory.
//!
//! * `ca.pem` (and `ca-key.pem`, which never leaves the directory): the authority.
//! * `adapter.pem`: every demo adapter's server certificate (`localhost`, `127.0.0.1`).
//! * `gateway.pem`: the gateway's client certificate, naming [`GATEWAY_NAME`].
//! * `feed.pem`: a feed's client certificate, naming [`FEED_NAME`]: it may send to every
//!   demo adapter, and may not read.
//!
//! Files already there are kept, so a restarted demo keeps its certificates. In production
//! the certificates come from the organisation's own authority; configuration names the
//! files (README, "Mutual TLS").

use std::path::{Path, PathBuf};

use kinfold_http::tls::ClientTls;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The name on the gateway's client certificate.
pub const GATEWAY_NAME: &str = "gateway.kinfold.internal";
/// The name on the demo feed's client certificate.
pub const FEED_NAME: &str = "feed.kinfold.internal";
/// The key id of the demo system client's signing key.
pub const SMART_KID: &str = "demo-ehr-1";

/// Why the certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// rcgen refused.
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
}

/// The demo's certificates, as files.
#[derive(Debug, Clone)]
pub struct DemoPki {
    /// The folder they are in.
    pub dir: PathBuf,
    /// The authority's certificate.
    pub ca: PathBuf,
    /// The adapters' server certificate and key.
    pub adapter_cert: PathBuf,
    /// Its key.
    pub adapter_key: PathBuf,
    /// The gateway's client credentials.
    pub gateway: ClientTls,
    /// A feed's client credentials.
    pub feed: ClientTls,
}

impl DemoPki {
    /// Makes the authority and the certificates in `dir`, keeping any already there.
    pub fn create(dir: &Path) -> Result<Self, PkiError> {
        std::fs::create_dir_all(dir)?;
        let ca = dir.join("ca.pem");
        let ca_key = dir.join("ca-key.pem");
        if !ca.exists() || !ca_key.exists() {
            let key = KeyPair::generate()?;
            let cert = authority()?.self_signed(&key)?;
            write_secret(&ca_key, &key.serialize_pem())?;
            std::fs::write(&ca, cert.pem())?;
        }
        let pki = Self {
            dir: dir.to_owned(),
            ca: ca.clone(),
            adapter_cert: dir.join("adapter.pem"),
            adapter_key: dir.join("adapter-key.pem"),
            gateway: client_files(dir, "gateway", &ca),
            feed: client_files(dir, "feed", &ca),
        };
        if !pki.adapter_cert.exists() || !pki.adapter_key.exists() {
            pki.issue(
                &["localhost", "127.0.0.1"],
                ExtendedKeyUsagePurpose::ServerAuth,
                &pki.adapter_cert,
                &pki.adapter_key,
            )?;
        }
        for (name, files) in [(GATEWAY_NAME, &pki.gateway), (FEED_NAME, &pki.feed)] {
            if !files.cert.exists() || !files.key.exists() {
                pki.issue(
                    &[name],
                    ExtendedKeyUsagePurpose::ClientAuth,
                    &files.cert,
                    &files.key,
                )?;
            }
        }
        Ok(pki)
    }

    /// The demo system client's signing key for SMART Backend Services (ES384, P-384):
    /// `smart-client-key.pem` (PKCS#8), made once, and its public key as a JWK Set with key id
    /// [`SMART_KID`] (also written to `smart-client.jwks.json`).
    pub fn smart_client(&self) -> Result<(PathBuf, serde_json::Value), PkiError> {
        let path = self.dir.join("smart-client-key.pem");
        let key = match std::fs::read_to_string(&path) {
            Ok(pem) => KeyPair::from_pem(&pem)?,
            Err(_) => {
                let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?;
                write_secret(&path, &key.serialize_pem())?;
                key
            }
        };
        // The public key is the uncompressed point: 0x04, then x and y, 48 bytes each.
        let point = key.public_key_raw();
        let coordinate = |part: &[u8]| {
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, part)
        };
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-384", "alg": "ES384", "use": "sig", "kid": SMART_KID,
            "x": coordinate(&point[1..49]), "y": coordinate(&point[49..97]),
        }]});
        std::fs::write(
            self.dir.join("smart-client.jwks.json"),
            serde_json::to_string_pretty(&jwks).unwrap_or_default(),
        )?;
        Ok((path, jwks))
    }

    /// Issues another client certificate from the same authority, naming `names`, into
    /// `{stem}.pem` and `{stem}-key.pem` (tests use it for a feed of another agency, or for
    /// one test client that both sends and reads).
    pub fn client(&self, names: &[&str], stem: &str) -> Result<ClientTls, PkiError> {
        let files = client_files(&self.dir, stem, &self.ca);
        self.issue(
            names,
            ExtendedKeyUsagePurpose::ClientAuth,
            &files.cert,
            &files.key,
        )?;
        Ok(files)
    }

    fn issue(
        &self,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<(), PkiError> {
        let ca_key = KeyPair::from_pem(&std::fs::read_to_string(self.dir.join("ca-key.pem"))?)?;
        // The authority's name and key identify it as the issuer (its key identifier is
        // derived from its key), so the same parameters rebuild it.
        let issuer = Issuer::new(authority()?, ca_key);
        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &issuer)?;
        write_secret(key_path, &key.serialize_pem())?;
        std::fs::write(cert_path, cert.pem())?;
        Ok(())
    }
}

/// The authority's certificate parameters.
fn authority() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "Kinfold demo authority");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

fn client_files(dir: &Path, stem: &str, ca: &Path) -> ClientTls {
    ClientTls {
        ca: ca.to_owned(),
        cert: dir.join(format!("{stem}.pem")),
        key: dir.join(format!("{stem}-key.pem")),
    }
}

/// Writes a private key readable by its owner only.
pub fn write_secret(path: &Path, pem: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(pem.as_bytes())
}

/// A new ES384 (P-384) signing key for a SMART system client: the private key as PEM
/// (PKCS#8), and the public key as the JWK Set to register at the gateway (`kid` given).
pub fn client_key(kid: &str) -> Result<(String, serde_json::Value), PkiError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?;
    // The public key is the uncompressed point: 0x04, then x and y, 48 bytes each.
    let point = key.public_key_raw();
    let coordinate = |part: &[u8]| {
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, part)
    };
    let jwks = serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-384", "alg": "ES384", "use": "sig", "kid": kid,
        "x": coordinate(&point[1..49]), "y": coordinate(&point[49..97]),
    }]});
    Ok((key.serialize_pem(), jwks))
}
