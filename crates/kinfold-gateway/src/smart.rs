//! SMART Backend Services: system clients (EPR integrations, GP systems) authenticate with a
//! signed assertion and get a short-lived access token; every data request then says who is
//! asking and why in a requester JWT signed with the same registered key.
//!
//! * `GET /.well-known/smart-configuration` says where and how.
//! * `POST /auth/token` takes `grant_type=client_credentials` with a `private_key_jwt`
//!   client assertion: RS384 or ES384, signed by a key in the client's registered JWKS
//!   (`kid` names it, and the key's type must fit the algorithm), `iss` = `sub` = the
//!   client id, `aud` = the token endpoint's URL, `exp` at most five minutes ahead, and a
//!   `jti` never seen before. Errors are OAuth 2.0 errors (RFC 6749 section 5.2), as SMART
//!   clients expect: `invalid_client` is a `401`.
//! * The access token is a gateway token (HS256, the gateway's own key) for the client, with
//!   the SMART v2 scopes granted (`system/Patient.rs`, …) and no person in it.
//! * A data request with a client's access token must carry `Kinfold-Requester`: a JWT signed
//!   by the client's registered key, naming the practitioner (`sub`, `name`), their `role`,
//!   `org` (one of the client's registered organisations) and `purpose` (and `justification`
//!   for an override); `iss` the client id, `aud` the gateway's audience, `exp` at most five
//!   minutes ahead. Without it, no patient data.
//!
//! Assertion ids are remembered in the gateway's database until their assertion expires, up to
//! a bound, so a replay is refused by every gateway on that database and after a restart.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use kinfold_fhir::IssueType;
use kinfold_http::ApiError;
use serde::{Deserialize, Serialize};

use crate::auth::AuthConfig;

/// The longest a client assertion or a requester JWT may live ahead, in seconds.
pub const MAX_ASSERTION_SECONDS: u64 = 300;
/// The largest token, assertion or requester JWT read, in bytes (a Kinfold token is about
/// 600; a header over 8 KiB is refused before this, with `431`).
pub const MAX_JWT_BYTES: usize = 4 * 1024;
/// The request header that says who is asking and why, for a system client's requests.
pub const REQUESTER_HEADER: &str = "kinfold-requester";
/// The only client assertion type.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The system clients the gateway knows, and how long their access tokens live.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmartConfig {
    /// The token endpoint's URL as clients address it: the `aud` of their assertions.
    /// Default: the gateway's `public_base_url` followed by `/auth/token`, else the URL of
    /// each request.
    pub token_url: Option<String>,
    /// The registered clients.
    pub clients: Vec<SmartClient>,
    /// How long an access token lives, in seconds (default 300).
    pub access_token_seconds: u64,
    /// The most assertion ids remembered at once (default 100,000); when full, new assertions
    /// wait (`503`) until the oldest expire.
    pub max_remembered: usize,
}

impl SmartConfig {
    /// Checks every registered client's keys at start, so that a key that can never verify
    /// is refused with its client and `kid` named, not found out at the first token request:
    /// each key has a `kid`; an EC key is P-384 with 48-byte `x` and `y`; an RSA key has a
    /// modulus of at least 2,048 bits and an exponent; no other kind of key is taken.
    pub fn check(&self) -> Result<(), String> {
        use base64::Engine;
        let decode = |text: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .ok()
        };
        for client in &self.clients {
            for jwk in &client.jwks.keys {
                let kid = jwk.common.key_id.as_deref().ok_or_else(|| {
                    format!(
                        "smart client {}: a registered key has no kid",
                        client.client_id
                    )
                })?;
                let problem = match &jwk.algorithm {
                    AlgorithmParameters::EllipticCurve(ec) => {
                        if ec.curve != EllipticCurve::P384 {
                            Some("an EC key must be on P-384 (ES384)".to_owned())
                        } else if [&ec.x, &ec.y]
                            .iter()
                            .any(|c| decode(c).is_none_or(|b| b.len() != 48))
                        {
                            Some("x and y must each be 48 bytes, base64url (a P-384 point)".into())
                        } else {
                            None
                        }
                    }
                    AlgorithmParameters::RSA(rsa) => {
                        if decode(&rsa.n).is_none_or(|n| n.len() < 256) {
                            Some("an RSA modulus (n) must be at least 2,048 bits, base64url".into())
                        } else if decode(&rsa.e).is_none_or(|e| e.is_empty()) {
                            Some("an RSA key needs its exponent (e), base64url".into())
                        } else {
                            None
                        }
                    }
                    _ => Some("only P-384 (ES384) and RSA (RS384) keys are taken".into()),
                };
                if let Some(problem) = problem {
                    return Err(format!(
                        "smart client {}, key {kid}: {problem}",
                        client.client_id
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Default for SmartConfig {
    fn default() -> Self {
        Self {
            token_url: None,
            clients: Vec::new(),
            access_token_seconds: 300,
            max_remembered: 100_000,
        }
    }
}

/// One registered system client.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmartClient {
    /// Its client id.
    pub client_id: String,
    /// Its public keys (a JWK Set); each key needs a `kid`.
    pub jwks: JwkSet,
    /// The scopes it may be granted, e.g. `system/Patient.rs`.
    pub scopes: Vec<String>,
    /// The organisations (ODS codes) whose staff its requests may speak for.
    pub organisations: Vec<String>,
    /// The rest-hook endpoints its Subscriptions may deliver to (exact URLs: `https`, or
    /// `http` on loopback). Default: none, and it may not subscribe.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// For endpoints that take only mutual TLS: the authority their server certificates chain
    /// to (`ca`, the only one trusted for this client's endpoints) and the certificate and key
    /// the gateway presents to them (`cert`, `key`).
    #[serde(default)]
    pub endpoint_tls: Option<kinfold_http::tls::ClientTls>,
}

/// The registered clients (the assertion ids seen are in the database).
#[derive(Debug)]
pub(crate) struct Clients {
    config: SmartConfig,
    leeway: u64,
}

/// Claims of a client assertion.
#[derive(Debug, Deserialize)]
struct Assertion {
    iss: String,
    sub: String,
    jti: String,
    exp: u64,
}

/// Claims of a requester JWT.
#[derive(Debug, Deserialize, Serialize)]
pub struct RequesterClaims {
    /// The client id.
    pub iss: String,
    /// The gateway's audience.
    pub aud: String,
    /// Expiry.
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// The practitioner's id.
    pub sub: String,
    /// Their name.
    #[serde(default)]
    pub name: Option<String>,
    /// Their role.
    pub role: String,
    /// Their organisation's ODS code.
    pub org: String,
    /// Purpose of use.
    pub purpose: String,
    /// An override's justification.
    #[serde(default)]
    pub justification: Option<String>,
    /// The JWT's own id: each request carries a new requester, used once, so that a stolen
    /// access token and requester pair cannot be replayed.
    pub jti: String,
}

/// An OAuth 2.0 error answer.
#[derive(Debug)]
pub(crate) struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn client(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: description.into(),
        }
    }

    fn request(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
        }
    }

    fn response(&self) -> HttpResponse {
        let mut answer = HttpResponse::build(self.status)
            .insert_header(("cache-control", "no-store"))
            .json(serde_json::json!({"error": self.error, "error_description": self.description}));
        if self.status == StatusCode::UNAUTHORIZED {
            // Counted with the other refusals.
            answer.extensions_mut().insert(kinfold_http::Refusal {
                code: format!("smart-{}", self.error),
            });
        }
        answer
    }
}

/// A successful token answer.
#[derive(Debug, Serialize)]
struct TokenAnswer {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    scope: String,
}

/// What a client assertion or requester JWT is checked against.
enum Audience<'a> {
    TokenEndpoint(&'a str),
    Gateway(&'a str),
}

impl Clients {
    pub(crate) fn new(config: SmartConfig, leeway: u64) -> Self {
        Self { config, leeway }
    }

    fn client(&self, id: &str) -> Option<&SmartClient> {
        self.config.clients.iter().find(|c| c.client_id == id)
    }

    /// A registered client, by id.
    pub(crate) fn registration(&self, id: &str) -> Option<&SmartClient> {
        self.client(id)
    }

    /// Checks a JWT signed by a registered client's key and returns its verified claims and
    /// the client. The client is taken from the unverified `iss` only to pick the key; the
    /// signature then proves it.
    fn verify<T: serde::de::DeserializeOwned>(
        &self,
        jwt: &str,
        audience: Audience<'_>,
    ) -> Result<(T, &SmartClient), String> {
        if jwt.len() > MAX_JWT_BYTES {
            return Err(format!("the JWT is over {MAX_JWT_BYTES} bytes"));
        }
        let header = jsonwebtoken::decode_header(jwt).map_err(|_| "not a readable JWT")?;
        if !matches!(header.alg, Algorithm::RS384 | Algorithm::ES384) {
            return Err("only RS384 and ES384 are accepted".into());
        }
        #[derive(Deserialize)]
        struct Issuer {
            iss: String,
        }
        let Issuer { iss } = jsonwebtoken::dangerous::insecure_decode_claims(jwt)
            .map_err(|_| "the JWT has no readable iss")?;
        let client = self
            .client(&iss)
            .ok_or_else(|| "the client is not registered".to_owned())?;
        let kid = header.kid.as_deref().ok_or("the JWT names no key (kid)")?;
        let jwk = client
            .jwks
            .find(kid)
            .ok_or("the key is not one of the client's registered keys")?;
        // The key's type must be the algorithm's: an RSA key for RS384, a P-384 key for
        // ES384; never a symmetric key.
        let fits = match (&jwk.algorithm, header.alg) {
            (AlgorithmParameters::RSA(_), Algorithm::RS384) => true,
            (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => {
                ec.curve == EllipticCurve::P384
            }
            _ => false,
        };
        if !fits {
            return Err("the key does not fit the JWT's algorithm".into());
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|_| "the registered key is unusable")?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.set_issuer(&[&client.client_id]);
        match audience {
            Audience::TokenEndpoint(url) => {
                validation.set_audience(&[url]);
                validation.set_required_spec_claims(&["exp", "iss", "sub", "aud", "jti"]);
                validation.sub = Some(client.client_id.clone());
            }
            Audience::Gateway(aud) => {
                validation.set_audience(&[aud]);
                validation.set_required_spec_claims(&["exp", "iss", "aud", "iat", "sub"]);
            }
        }
        let data = jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    "the JWT has expired".to_owned()
                }
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    "the signature does not match the key".to_owned()
                }
                jsonwebtoken::errors::ErrorKind::InvalidAudience => format!(
                    "the JWT is not addressed to this gateway (its aud must be \"{}\")",
                    match audience {
                        Audience::TokenEndpoint(url) | Audience::Gateway(url) => url,
                    }
                ),
                jsonwebtoken::errors::ErrorKind::InvalidSubject => {
                    "sub is not the client id".to_owned()
                }
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => {
                    "the JWT is not valid yet".to_owned()
                }
                jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(claim) => {
                    format!("the JWT has no {claim}")
                }
                _ => "the JWT is not valid".to_owned(),
            },
        )?;
        let now = jsonwebtoken::get_current_timestamp();
        let exp = data.claims["exp"].as_u64().unwrap_or(0);
        if exp > now + MAX_ASSERTION_SECONDS + self.leeway {
            return Err(format!(
                "exp is more than {MAX_ASSERTION_SECONDS} seconds ahead"
            ));
        }
        if data.claims["iat"]
            .as_u64()
            .is_some_and(|iat| iat > now + self.leeway)
        {
            return Err("the JWT says it was issued in the future".into());
        }
        let claims = serde_json::from_value(data.claims)
            .map_err(|e| format!("the JWT's claims are incomplete: {e}"))?;
        Ok((claims, client))
    }

    /// Remembers an assertion id in the database until the assertion expires; refused if any
    /// gateway on that database has seen it.
    async fn first_use(
        &self,
        store: &kinfold_store::Store,
        client: &str,
        assertion: &Assertion,
    ) -> Result<(), OAuthError> {
        let now = jsonwebtoken::get_current_timestamp();
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let used = store
            .assertion_first_use(
                client,
                &assertion.jti,
                as_i64(assertion.exp.saturating_add(self.leeway)),
                as_i64(now),
                as_i64(self.config.max_remembered as u64),
            )
            .await
            .map_err(|err| {
                tracing::error!(error = ?err, "client assertion ids cannot be checked");
                OAuthError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    error: "temporarily_unavailable",
                    description: "the gateway cannot check the assertion now; try again shortly"
                        .into(),
                }
            })?;
        match used {
            kinfold_store::AssertionUse::First => Ok(()),
            kinfold_store::AssertionUse::Replayed => Err(OAuthError::client(
                "the assertion's jti has been used before",
            )),
            kinfold_store::AssertionUse::Full => Err(OAuthError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                error: "temporarily_unavailable",
                description: "too many assertions at once; try again shortly".into(),
            }),
        }
    }

    /// Remembers a requester's `jti` (in the database, shared by every gateway on it) until
    /// the requester expires; a second use is refused.
    pub(crate) async fn requester_first_use(
        &self,
        store: &kinfold_store::Store,
        claims: &RequesterClaims,
    ) -> Result<(), ApiError> {
        let now = jsonwebtoken::get_current_timestamp();
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let used = store
            .assertion_first_use(
                &format!("requester:{}", claims.iss),
                &claims.jti,
                as_i64(claims.exp.saturating_add(self.leeway)),
                as_i64(now),
                as_i64(self.config.max_remembered as u64),
            )
            .await
            .map_err(|err| {
                tracing::error!(error = ?err, "requester ids cannot be checked");
                ApiError::unavailable(
                    "The gateway cannot check the requester now; try again shortly.",
                )
            })?;
        match used {
            kinfold_store::AssertionUse::First => Ok(()),
            kinfold_store::AssertionUse::Replayed => Err(ApiError::unauthorised(
                IssueType::Security,
                "requester-replayed",
                "The Kinfold-Requester JWT was refused: its jti has been used before (each request needs a new requester JWT).",
            )),
            kinfold_store::AssertionUse::Full => Err(ApiError::unavailable(
                "Too many requesters at once; try again shortly.",
            )),
        }
    }

    /// Checks a system client's requester JWT and returns who is asking and why.
    pub(crate) fn requester(
        &self,
        client_id: &str,
        jwt: &str,
        audience: &str,
    ) -> Result<RequesterClaims, ApiError> {
        let refused = |why: String| {
            ApiError::unauthorised(
                IssueType::Security,
                "requester-invalid",
                format!("The Kinfold-Requester JWT was refused: {why}."),
            )
        };
        let (claims, client): (RequesterClaims, &SmartClient) = self
            .verify(jwt, Audience::Gateway(audience))
            .map_err(refused)?;
        if client.client_id != client_id {
            return Err(refused(
                "it is signed by another client than the access token's".into(),
            ));
        }
        crate::auth::who_and_why(
            &claims.sub,
            Some(&claims.role),
            Some(&claims.purpose),
            claims.justification.as_deref(),
        )
        .map_err(refused)?;
        if !client.organisations.iter().any(|o| o == &claims.org) {
            return Err(ApiError::refused(
                StatusCode::FORBIDDEN,
                IssueType::Forbidden,
                "requester-organisation",
                "The client is not registered to speak for that organisation.",
            ));
        }
        Ok(claims)
    }
}

/// Whether SMART v2 scopes let their holder read patient data.
pub(crate) fn reads_patients(scope: &str) -> bool {
    scope.split_whitespace().any(|s| {
        let Some((resource, access)) = s
            .strip_prefix("system/")
            .and_then(|rest| rest.split_once('.'))
        else {
            return false;
        };
        let access = access.split('?').next().unwrap_or_default();
        matches!(resource, "Patient" | "*")
            && access.contains('r')
            && access.chars().all(|c| "cruds".contains(c))
    })
}

/// The token request's form.
#[derive(Debug, Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    scope: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

fn token_url(
    state: &crate::state::GatewayState,
    clients: &Clients,
    request: &HttpRequest,
) -> String {
    clients.config.token_url.clone().unwrap_or_else(|| {
        format!(
            "{}/auth/token",
            kinfold_http::base_url(state.public_base_url.as_deref(), request)
        )
    })
}

/// Where and how system clients get tokens.
#[utoipa::path(get, path = "/.well-known/smart-configuration", tag = "SMART",
    responses((status = 200, description = "The SMART configuration", content_type = "application/json")))]
pub(crate) async fn smart_configuration(
    request: HttpRequest,
    state: web::Data<crate::state::GatewayState>,
    clients: web::Data<Clients>,
) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "token_endpoint": token_url(&state, &clients, &request),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": ["system/Patient.rs", "system/*.rs"],
        "capabilities": ["client-confidential-asymmetric"],
    }))
}

/// The form the token endpoint reads (`application/x-www-form-urlencoded`).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct TokenForm {
    /// `client_credentials`.
    grant_type: String,
    /// Space-separated SMART v2 scopes, e.g. `system/Patient.rs`.
    scope: String,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
    client_assertion_type: String,
    /// The signed client assertion.
    client_assertion: String,
}

/// A short-lived access token for a registered system client (SMART Backend Services).
#[utoipa::path(post, path = "/auth/token", tag = "SMART",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "An access token", content_type = "application/json"),
        (status = 400, description = "A malformed request (OAuth 2.0 error)", content_type = "application/json"),
        (status = 401, description = "The client assertion was refused (`invalid_client`)", content_type = "application/json")))]
pub(crate) async fn token(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<crate::state::GatewayState>,
    clients: web::Data<Clients>,
    auth: web::Data<AuthConfig>,
) -> HttpResponse {
    match issue(&request, &body, &state, &clients, &auth).await {
        Ok(answer) => HttpResponse::Ok()
            .insert_header(("cache-control", "no-store"))
            .json(answer),
        Err(error) => error.response(),
    }
}

async fn issue(
    request: &HttpRequest,
    body: &[u8],
    state: &crate::state::GatewayState,
    clients: &Clients,
    auth: &AuthConfig,
) -> Result<TokenAnswer, OAuthError> {
    if body.len() > 2 * MAX_JWT_BYTES {
        return Err(OAuthError::request(
            "invalid_request",
            "the request is too large",
        ));
    }
    let form: TokenRequest = serde_urlencoded::from_bytes(body)
        .map_err(|e| OAuthError::request("invalid_request", e.to_string()))?;
    if form.grant_type.as_deref() != Some("client_credentials") {
        return Err(OAuthError::request(
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        ));
    }
    if form.client_assertion_type.as_deref() != Some(JWT_BEARER) {
        return Err(OAuthError::request(
            "invalid_request",
            format!("client_assertion_type must be {JWT_BEARER}"),
        ));
    }
    let jwt = form
        .client_assertion
        .ok_or_else(|| OAuthError::request("invalid_request", "client_assertion is missing"))?;
    let audience = token_url(state, clients, request);
    let (assertion, client): (Assertion, &SmartClient) = clients
        .verify(&jwt, Audience::TokenEndpoint(&audience))
        .map_err(|why| OAuthError::client(format!("the client assertion was refused: {why}")))?;
    if assertion.sub != assertion.iss {
        return Err(OAuthError::client("sub is not the client id"));
    }
    let granted: Vec<&str> = form
        .scope
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .filter(|s| client.scopes.iter().any(|r| r == s))
        .collect();
    if granted.is_empty() {
        return Err(OAuthError::request(
            "invalid_scope",
            "none of the requested scopes is registered for this client",
        ));
    }
    clients
        .first_use(&state.store, &client.client_id, &assertion)
        .await?;
    let scope = granted.join(" ");
    let lifetime = clients
        .config
        .access_token_seconds
        .min(auth.max_lifetime_seconds);
    let token = crate::auth::issue_system_token(auth, &client.client_id, &scope, lifetime)
        .map_err(|e| {
            tracing::error!(error = %e, "an access token could not be signed");
            OAuthError::request("server_error", "the token could not be issued")
        })?;
    // The issue is recorded, as every token's is: for whom, not the token.
    state
        .ledger
        .record(vec![crate::audit::token_issued(
            "smart-token-endpoint",
            kinfold_http::request_id(request),
            &client.client_id,
            None,
            Some("system"),
        )])
        .await
        .map_err(|_| OAuthError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "temporarily_unavailable",
            description: "the audit ledger cannot record; no token is issued".into(),
        })?;
    Ok(TokenAnswer {
        access_token: token,
        token_type: "bearer",
        expires_in: lifetime,
        scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_read_scopes_on_patients_read_patients() {
        assert!(reads_patients("system/Patient.rs"));
        assert!(reads_patients("system/*.rs"));
        assert!(reads_patients("launch system/Patient.r"));
        assert!(!reads_patients("system/Patient.c"));
        assert!(!reads_patients("system/Observation.rs"));
        assert!(!reads_patients("user/Patient.rs"));
        assert!(!reads_patients("system/Patient.read"));
        assert!(!reads_patients(""));
    }
}
