//! Who is calling: bearer JWTs checked against the keys in the gateway's configuration.
//!
//! Every data route takes a [`Caller`] argument, so no handler can run without an
//! authenticated caller. Tokens must be HS256, signed by a configured key, unexpired, and
//! issued for this gateway (`iss`, `aud`); `alg: none`, other algorithms and unknown keys are
//! refused. The role, organisation and purpose claims are carried for the consent rules that
//! come later.

use std::fmt;

use actix_web::HttpRequest;
use actix_web::http::header;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use kinfold_fhir::{IssueType, OdsCode};
use kinfold_http::ApiError;
use serde::{Deserialize, Serialize};

pub use kinfold_audit::Secret;

/// One token-signing key the gateway trusts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Key id, matched against the token header's `kid`.
    pub kid: String,
    /// The HS256 secret: at least 32 bytes.
    pub secret: Secret,
}

/// Token rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// Trusted keys.
    pub keys: Vec<KeyConfig>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_seconds: u64,
    /// The longest a token may live (`exp` after `iat`, and after now), in seconds. Default 12
    /// hours: a stolen token is useless by the next shift.
    pub max_lifetime_seconds: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: "kinfold".into(),
            audience: "kinfold-gateway".into(),
            keys: Vec::new(),
            leeway_seconds: 30,
            max_lifetime_seconds: 12 * 60 * 60,
        }
    }
}

/// The claims of a Kinfold access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The practitioner or system the token was issued to.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// Not before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// The caller's organisation (ODS code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// The caller's role, e.g. `health-visitor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Purpose of use: `direct-care`, `safeguarding` or `override`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// Why an override is needed (with purpose `override` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// The practitioner's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A system client's id (tokens from `/auth/token`); its requests say who is asking in a
    /// `Kinfold-Requester` JWT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The SMART scopes granted to a system client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Who: the token's subject.
    pub subject: String,
    /// Their organisation, if the token names a valid ODS code.
    pub organisation: Option<OdsCode>,
    /// Their role.
    pub role: Option<String>,
    /// Why they are asking.
    pub purpose: Option<String>,
    /// Why an override is needed.
    pub justification: Option<String>,
    /// Their name.
    pub name: Option<String>,
    /// The system client the request came through, if any.
    pub client: Option<String>,
    /// A system client's granted scopes.
    pub scope: Option<String>,
}

/// Why a key set cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// No keys configured.
    #[error("no token keys are configured (auth.keys)")]
    NoKeys,
    /// A secret is too short for HS256.
    #[error("the secret of key '{0}' is shorter than 32 bytes")]
    ShortSecret(String),
    /// A token would live longer than the gateway accepts.
    #[error("a token may live at most {0} seconds (auth.max_lifetime_seconds)")]
    TooLong(u64),
    /// A token would name nobody, or a role or purpose Kinfold does not know.
    #[error("{0}")]
    Claims(String),
}

/// Checks tokens. Built once from [`AuthConfig`].
pub struct Authenticator {
    keys: Vec<(String, DecodingKey)>,
    validation: Validation,
    leeway: u64,
    max_lifetime: u64,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Builds the checker; refuses an empty key set or short secrets.
    pub fn new(config: &AuthConfig) -> Result<Self, AuthConfigError> {
        if config.keys.is_empty() {
            return Err(AuthConfigError::NoKeys);
        }
        let keys = config
            .keys
            .iter()
            .map(|k| {
                if k.secret.expose().len() < 32 {
                    Err(AuthConfigError::ShortSecret(k.kid.clone()))
                } else {
                    Ok((
                        k.kid.clone(),
                        DecodingKey::from_secret(k.secret.expose().as_bytes()),
                    ))
                }
            })
            .collect::<Result<_, _>>()?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = config.leeway_seconds;
        validation.validate_nbf = true;
        Ok(Self {
            keys,
            validation,
            leeway: config.leeway_seconds,
            max_lifetime: config.max_lifetime_seconds,
        })
    }

    /// Whether a key with this id is one of this checker's.
    pub(crate) fn knows(&self, kid: &str) -> bool {
        self.keys.iter().any(|(id, _)| id == kid)
    }

    /// Checks a person's or a system client's bearer token and returns the caller it names:
    /// its signature, times and audience, then that its subject names someone and its role and
    /// purpose are ones Kinfold knows ([`who_and_why`]).
    pub fn check(&self, token: &str) -> Result<Caller, ApiError> {
        let caller = self.check_signed(token)?;
        who_and_why(
            &caller.subject,
            caller.role.as_deref(),
            caller.purpose.as_deref(),
            caller.justification.as_deref(),
        )
        .map_err(|why| ApiError::unauthorised(IssueType::Security, "token-claims", why))?;
        Ok(caller)
    }

    /// Checks a token's signature, times and audience only (an adapter's event token, whose
    /// subject and role name the adapter, not a person).
    pub(crate) fn check_signed(&self, token: &str) -> Result<Caller, ApiError> {
        let refused =
            |kind, code: &str, why: &str| ApiError::unauthorised(kind, code, why.to_owned());
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            refused(
                IssueType::Security,
                "token-malformed",
                "The bearer token is not a readable JWT.",
            )
        })?;
        if header.alg != Algorithm::HS256 {
            return Err(refused(
                IssueType::Security,
                "token-algorithm",
                "The token is not signed with an algorithm this gateway accepts.",
            ));
        }
        let key = match &header.kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|(id, _)| id == kid)
                .map(|(_, key)| key),
            None if self.keys.len() == 1 => self.keys.first().map(|(_, key)| key),
            None => None,
        }
        .ok_or_else(|| {
            refused(
                IssueType::Security,
                "token-key",
                "The token is not signed by a key this gateway trusts.",
            )
        })?;
        let data =
            jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(
                |err| match err.kind() {
                    ErrorKind::ExpiredSignature => refused(
                        IssueType::Expired,
                        "token-expired",
                        "The bearer token has expired.",
                    ),
                    ErrorKind::InvalidSignature => refused(
                        IssueType::Security,
                        "token-signature",
                        "The token's signature does not match a trusted key.",
                    ),
                    ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => refused(
                        IssueType::Security,
                        "token-audience",
                        "The token was not issued for this gateway.",
                    ),
                    ErrorKind::ImmatureSignature => refused(
                        IssueType::Security,
                        "token-not-yet-valid",
                        "The token is not valid yet.",
                    ),
                    _ => refused(
                        IssueType::Security,
                        "token-invalid",
                        "The bearer token is not valid.",
                    ),
                },
            )?;
        let claims = data.claims;
        let now = jsonwebtoken::get_current_timestamp();
        if claims.iat > now + self.leeway {
            return Err(refused(
                IssueType::Security,
                "token-not-yet-valid",
                "The token says it was issued in the future.",
            ));
        }
        let longest = self.max_lifetime + self.leeway;
        if claims.exp.saturating_sub(claims.iat) > longest
            || claims.exp.saturating_sub(now) > longest
        {
            return Err(refused(
                IssueType::Security,
                "token-lifetime",
                &format!(
                    "The token lives longer than this gateway allows ({} seconds).",
                    self.max_lifetime
                ),
            ));
        }
        Ok(Caller {
            subject: claims.sub,
            organisation: claims.org.and_then(|o| o.parse().ok()),
            role: claims.role,
            purpose: claims.purpose,
            justification: claims.justification,
            name: claims.name,
            client: claims.client_id,
            scope: claims.scope,
        })
    }
}

/// Whether a token's subject, role and purpose are ones Kinfold can act on: a subject that
/// names someone, a role Kinfold knows, a purpose of use with a justification only for an
/// override (its length is the disclosure policy's to judge). A token naming `superuser`,
/// `break-glass` or nobody is refused when it arrives and never issued.
pub fn who_and_why(
    subject: &str,
    role: Option<&str>,
    purpose: Option<&str>,
    justification: Option<&str>,
) -> Result<(), String> {
    if subject.trim().is_empty() || subject.chars().any(char::is_control) || subject.len() > 256 {
        return Err("The token's subject (sub) does not name anyone.".into());
    }
    if let Some(role) = role {
        role.parse::<kinfold_consent::Role>()
            .map_err(|e| format!("The token's role is not one Kinfold knows ({e})."))?;
    }
    match (purpose, justification) {
        (Some(purpose), _) => {
            kinfold_consent::Purpose::parse(purpose, justification)
                .map_err(|e| format!("The token's purpose of use is not usable ({e})."))?;
        }
        (None, Some(_)) => {
            return Err("A justification is given only with purpose override.".into());
        }
        (None, None) => {}
    }
    Ok(())
}

/// Who a token is for and why: its claims beyond the standard ones.
#[derive(Debug, Clone, Default)]
pub struct TokenFor<'a> {
    /// The practitioner or system (`sub`).
    pub subject: &'a str,
    /// Their name.
    pub name: Option<&'a str>,
    /// Their organisation (ODS code).
    pub org: Option<&'a str>,
    /// Their role.
    pub role: Option<&'a str>,
    /// Purpose of use (default `direct-care`).
    pub purpose: Option<&'a str>,
    /// An override's justification.
    pub justification: Option<&'a str>,
}

/// Issues an HS256 token signed with the first configured key (for `kinfold demo`, tests and
/// operators' tooling), for direct care.
pub fn issue_token(
    config: &AuthConfig,
    subject: &str,
    org: Option<&str>,
    role: Option<&str>,
    valid_for_seconds: u64,
) -> Result<String, AuthConfigError> {
    issue_token_for(
        config,
        &TokenFor {
            subject,
            org,
            role,
            ..TokenFor::default()
        },
        valid_for_seconds,
    )
}

/// Issues an HS256 token with every claim of [`TokenFor`].
pub fn issue_token_for(
    config: &AuthConfig,
    who: &TokenFor<'_>,
    valid_for_seconds: u64,
) -> Result<String, AuthConfigError> {
    let TokenFor {
        subject, org, role, ..
    } = *who;
    let key = config.keys.first().ok_or(AuthConfigError::NoKeys)?;
    if valid_for_seconds > config.max_lifetime_seconds {
        return Err(AuthConfigError::TooLong(config.max_lifetime_seconds));
    }
    let purpose = who.purpose.unwrap_or("direct-care");
    who_and_why(subject, role, Some(purpose), who.justification)
        .map_err(AuthConfigError::Claims)?;
    if let Ok(purpose) = kinfold_consent::Purpose::parse(purpose, who.justification) {
        purpose
            .check_justification(kinfold_consent::Policy::default().min_justification)
            .map_err(|e| AuthConfigError::Claims(format!("The override is not usable ({e}).")))?;
    }
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        iss: config.issuer.clone(),
        aud: config.audience.clone(),
        sub: subject.to_owned(),
        iat: now,
        nbf: None,
        exp: now + valid_for_seconds,
        org: org.map(str::to_owned),
        role: role.map(str::to_owned),
        purpose: Some(purpose.to_owned()),
        justification: who.justification.map(str::to_owned),
        name: who.name.map(str::to_owned),
        client_id: None,
        scope: None,
    };
    sign(key, &claims)
}

/// Signs claims with a gateway key (HS256, its `kid` in the header).
fn sign(key: &KeyConfig, claims: &Claims) -> Result<String, AuthConfigError> {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(key.secret.expose().as_bytes()),
    )
    .map_err(|_| AuthConfigError::ShortSecret(key.kid.clone()))
}

/// Issues a system client's access token (`/auth/token`): the client, its granted scopes, and
/// nobody's identity; its requests say who is asking.
pub(crate) fn issue_system_token(
    config: &AuthConfig,
    client_id: &str,
    scope: &str,
    valid_for_seconds: u64,
) -> Result<String, AuthConfigError> {
    let key = config.keys.first().ok_or(AuthConfigError::NoKeys)?;
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        iss: config.issuer.clone(),
        aud: config.audience.clone(),
        sub: client_id.to_owned(),
        iat: now,
        nbf: None,
        exp: now + valid_for_seconds.min(config.max_lifetime_seconds),
        org: None,
        role: None,
        purpose: None,
        justification: None,
        name: None,
        client_id: Some(client_id.to_owned()),
        scope: Some(scope.to_owned()),
    };
    sign(key, &claims)
}

/// The bearer token of a request, if it has one.
pub(crate) fn bearer(request: &HttpRequest) -> Option<&str> {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(secret: &str) -> AuthConfig {
        AuthConfig {
            keys: vec![KeyConfig {
                kid: "k1".into(),
                secret: Secret::new(secret.into()),
            }],
            ..AuthConfig::default()
        }
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_token_we_issued_names_its_caller() {
        let config = config(SECRET);
        let token = issue_token(&config, "dr-nowak", Some("A81001"), Some("gp"), 60).unwrap();
        let caller = Authenticator::new(&config).unwrap().check(&token).unwrap();
        assert_eq!(caller.subject, "dr-nowak");
        assert_eq!(caller.organisation.unwrap().as_str(), "A81001");
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let token = issue_token(
            &config("another-secret-that-is-32-bytes!!"),
            "x",
            None,
            None,
            60,
        )
        .unwrap();
        let err = Authenticator::new(&config(SECRET))
            .unwrap()
            .check(&token)
            .unwrap_err();
        assert_eq!(err.status.as_u16(), 401);
    }

    #[test]
    fn an_unsigned_token_is_refused() {
        // {"alg":"none","typ":"JWT"} . {"iss":"kinfold","aud":"kinfold-gateway","sub":"x","exp":9999999999} .
        let token = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpc3MiOiJraW5mb2xkIiwiYXVkIjoia2luZm9sZC1nYXRld2F5Iiwic3ViIjoieCIsImV4cCI6OTk5OTk5OTk5OX0.";
        let err = Authenticator::new(&config(SECRET))
            .unwrap()
            .check(token)
            .unwrap_err();
        assert_eq!(err.status.as_u16(), 401);
    }

    #[test]
    fn short_secrets_and_empty_key_sets_are_refused_at_start() {
        assert!(matches!(
            Authenticator::new(&config("short")),
            Err(AuthConfigError::ShortSecret(_))
        ));
        assert!(matches!(
            Authenticator::new(&AuthConfig::default()),
            Err(AuthConfigError::NoKeys)
        ));
    }

    #[test]
    fn secrets_never_print() {
        assert!(!format!("{:?}", config(SECRET)).contains(SECRET));
    }

    fn signed(claims: serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn refusal_code(token: &str) -> String {
        let err = Authenticator::new(&config(SECRET))
            .unwrap()
            .check(token)
            .unwrap_err();
        assert_eq!(err.status.as_u16(), 401);
        err.outcome.issue[0].details.as_ref().unwrap().coding[0]
            .code
            .clone()
            .unwrap()
    }

    #[test]
    fn a_token_naming_nobody_or_an_unknown_role_or_purpose_is_refused() {
        let now = jsonwebtoken::get_current_timestamp();
        let base = |extra: serde_json::Value| {
            let mut claims = serde_json::json!({"iss": "kinfold", "aud": "kinfold-gateway", "sub": "dr-x", "iat": now, "exp": now + 60});
            for (k, v) in extra.as_object().unwrap() {
                claims[k] = v.clone();
            }
            signed(claims)
        };
        assert_eq!(
            refusal_code(&base(serde_json::json!({"sub": ""}))),
            "token-claims"
        );
        assert_eq!(
            refusal_code(&base(serde_json::json!({"sub": "  "}))),
            "token-claims"
        );
        assert_eq!(
            refusal_code(&base(serde_json::json!({"role": "superuser"}))),
            "token-claims"
        );
        assert_eq!(
            refusal_code(&base(serde_json::json!({"purpose": "break-glass"}))),
            "token-claims"
        );
        assert_eq!(
            refusal_code(&base(
                serde_json::json!({"purpose": "direct-care", "justification": "because"})
            )),
            "token-claims"
        );
        // The same claims with a known role and purpose are taken.
        let fine = base(serde_json::json!({"role": "gp", "purpose": "direct-care"}));
        assert!(
            Authenticator::new(&config(SECRET))
                .unwrap()
                .check(&fine)
                .is_ok()
        );
    }

    #[test]
    fn tokens_naming_nobody_or_unknown_roles_are_never_issued() {
        let config = config(SECRET);
        let issue = |subject, role, purpose, justification| {
            issue_token_for(
                &config,
                &TokenFor {
                    subject,
                    role,
                    purpose,
                    justification,
                    ..TokenFor::default()
                },
                60,
            )
        };
        assert!(matches!(
            issue("", Some("gp"), None, None),
            Err(AuthConfigError::Claims(_))
        ));
        assert!(matches!(
            issue("x", Some("superuser"), None, None),
            Err(AuthConfigError::Claims(_))
        ));
        assert!(matches!(
            issue("x", Some("gp"), Some("break-glass"), None),
            Err(AuthConfigError::Claims(_))
        ));
        assert!(matches!(
            issue(
                "x",
                Some("gp"),
                Some("override"),
                Some("....................")
            ),
            Err(AuthConfigError::Claims(_))
        ));
        assert!(
            issue(
                "x",
                Some("gp"),
                Some("override"),
                Some("Bruising seen at today's visit")
            )
            .is_ok()
        );
    }

    #[test]
    fn a_token_not_valid_for_an_hour_is_refused() {
        let now = jsonwebtoken::get_current_timestamp();
        let token = signed(
            serde_json::json!({"iss": "kinfold", "aud": "kinfold-gateway", "sub": "x", "iat": now, "nbf": now + 3600, "exp": now + 7200}),
        );
        assert_eq!(refusal_code(&token), "token-not-yet-valid");
    }

    #[test]
    fn a_token_that_lives_too_long_is_refused() {
        let now = jsonwebtoken::get_current_timestamp();
        let token = signed(
            serde_json::json!({"iss": "kinfold", "aud": "kinfold-gateway", "sub": "x", "iat": now, "exp": 253402300799u64}),
        );
        assert_eq!(refusal_code(&token), "token-lifetime");
        // A recent iat does not excuse a far exp.
        let token = signed(
            serde_json::json!({"iss": "kinfold", "aud": "kinfold-gateway", "sub": "x", "iat": now + 20, "exp": now + 13 * 3600}),
        );
        assert_eq!(refusal_code(&token), "token-lifetime");
    }

    #[test]
    fn a_token_issued_in_the_future_or_without_iat_is_refused() {
        let now = jsonwebtoken::get_current_timestamp();
        let token = signed(
            serde_json::json!({"iss": "kinfold", "aud": "kinfold-gateway", "sub": "x", "iat": now + 600, "exp": now + 1200}),
        );
        assert_eq!(refusal_code(&token), "token-not-yet-valid");
        let token = signed(
            serde_json::json!({"iss": "kinfold", "aud": "kinfold-gateway", "sub": "x", "exp": now + 60}),
        );
        assert_eq!(refusal_code(&token), "token-invalid");
    }
}
