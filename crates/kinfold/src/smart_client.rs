//! `kinfold client`: signs what a SMART system client sends, with its private key, so that the
//! API can be tried from a shell (an EPR integration does this itself): a client assertion for
//! `POST /auth/token`, and a `Kinfold-Requester` JWT saying who is asking and why.

use std::path::PathBuf;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A registered client's details, as `demo.json`'s `smart_client` holds them.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ClientFile {
    /// Its client id.
    pub client_id: String,
    /// The token endpoint (the assertion's `aud`).
    pub token_endpoint: String,
    /// The private key (PEM, PKCS#8).
    pub private_key: PathBuf,
    /// `ES384` or `RS384`.
    pub alg: String,
    /// The key's id.
    pub kid: String,
    /// The organisations its requests may speak for.
    pub organisations: Vec<String>,
    /// The gateway's audience (the requester JWT's `aud`).
    pub audience: String,
}

/// Who is asking and why.
#[derive(Debug, Clone, Default)]
pub struct Requester {
    /// The practitioner's id.
    pub subject: String,
    /// Their name.
    pub name: Option<String>,
    /// Their role.
    pub role: String,
    /// Their organisation (ODS code).
    pub org: String,
    /// Purpose of use.
    pub purpose: String,
    /// An override's justification.
    pub justification: Option<String>,
}

fn sign(client: &ClientFile, claims: &serde_json::Value) -> Result<String, String> {
    let pem = std::fs::read(&client.private_key)
        .map_err(|e| format!("{}: {e}", client.private_key.display()))?;
    let (alg, key) = match client.alg.as_str() {
        "ES384" => (Algorithm::ES384, EncodingKey::from_ec_pem(&pem)),
        "RS384" => (Algorithm::RS384, EncodingKey::from_rsa_pem(&pem)),
        other => return Err(format!("{other}: only ES384 and RS384 are used")),
    };
    let key = key.map_err(|e| format!("{}: {e}", client.private_key.display()))?;
    let mut header = Header::new(alg);
    header.kid = Some(client.kid.clone());
    jsonwebtoken::encode(&header, claims, &key).map_err(|e| e.to_string())
}

/// A client assertion for `POST /auth/token`: five minutes, a new `jti`.
pub fn assertion(client: &ClientFile) -> Result<String, String> {
    let now = jsonwebtoken::get_current_timestamp();
    sign(
        client,
        &json!({"iss": client.client_id, "sub": client.client_id, "aud": client.token_endpoint,
            "iat": now, "exp": now + 300, "jti": uuid::Uuid::new_v4().to_string()}),
    )
}

/// A `Kinfold-Requester` JWT: two minutes, a new `jti` (good for one request).
pub fn requester(client: &ClientFile, who: &Requester) -> Result<String, String> {
    let now = jsonwebtoken::get_current_timestamp();
    sign(
        client,
        &json!({"iss": client.client_id, "aud": client.audience, "iat": now, "exp": now + 120,
            "jti": uuid::Uuid::new_v4().to_string(),
            "sub": who.subject, "name": who.name, "role": who.role, "org": who.org,
            "purpose": who.purpose, "justification": who.justification}),
    )
}
