//! The dashboard's state (its sessions, users and API client) and what every page handler
//! shares: finding the session, checking a form's CSRF token, the page and refusal answers.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::api;
use crate::api::{Purpose, Tokens};
use crate::layout;
use crate::session::{self, Limits, Session, Sessions, User};

/// How long a minted API token lives (a session mints a new one when it has a minute left).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// The dashboard's settings (`[dashboard]` in the gateway's configuration).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// The demo's sign-in: these users, chosen from a list, with no password. Only for
    /// `kinfold demo` on loopback: the gateway refuses to start with it on any other address.
    /// A deployment signs in through OpenID Connect instead (`ARCHITECTURE.md`).
    pub demo_users: Vec<User>,
    /// The most sessions at once (the longest idle goes first).
    pub max_sessions: usize,
    /// A session ends after this many minutes without a request.
    pub idle_minutes: u64,
    /// A session ends this many hours after sign-in.
    pub max_hours: u64,
    /// The API the pages call. Default: the gateway's own listener on loopback (without TLS),
    /// or `public_base_url` (with TLS).
    pub api_url: Option<String>,
    /// An extra authority (PEM) to trust for the API's certificate, when it is not a public one.
    pub api_ca: Option<std::path::PathBuf>,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            demo_users: Vec::new(),
            max_sessions: 1000,
            idle_minutes: 30,
            max_hours: 12,
            api_url: None,
            api_ca: None,
        }
    }
}

/// The dashboard: its sessions, its users and its API client.
#[derive(Debug)]
pub struct Dashboard {
    pub(crate) sessions: Sessions,
    pub(crate) users: Vec<User>,
    pub(crate) api: api::Api,
    pub(crate) secure_cookies: bool,
}

/// Why the dashboard cannot start.
#[derive(Debug)]
pub struct DashboardError(pub String);

impl std::fmt::Display for DashboardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DashboardError {}

impl Dashboard {
    /// The dashboard for `config`, calling the API at `api_url` with tokens from `tokens`;
    /// `secure_cookies` over TLS.
    pub fn new(
        config: &DashboardConfig,
        api_url: String,
        tokens: Arc<dyn Tokens>,
        secure_cookies: bool,
        internal_key: String,
    ) -> Result<Self, DashboardError> {
        let root = match &config.api_ca {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    DashboardError(format!("dashboard.api_ca {}: {e}", path.display()))
                })?;
                Some(reqwest::Certificate::from_pem(&pem).map_err(|e| {
                    DashboardError(format!("dashboard.api_ca {}: {e}", path.display()))
                })?)
            }
            None => None,
        };
        let api = api::Api::new(api_url, tokens, root, internal_key)
            .map_err(|e| DashboardError(format!("the dashboard's API client: {e}")))?;
        Ok(Self {
            sessions: Sessions::new(Limits {
                max_sessions: config.max_sessions,
                idle: Duration::from_secs(config.idle_minutes.max(1) * 60),
                max_age: Duration::from_secs(config.max_hours.max(1) * 3600),
            }),
            users: config.demo_users.clone(),
            api,
            secure_cookies,
        })
    }

    /// The signed-in session of a request, and its reference.
    pub(crate) fn signed_in(&self, request: &HttpRequest) -> Option<(String, Session)> {
        let reference = request.cookie(session::COOKIE)?.value().to_owned();
        let session = self.sessions.find(&reference)?;
        Some((reference, session))
    }

    /// A token for this session and purpose: kept ones are reused; an override's never is.
    pub(crate) async fn token(
        &self,
        request: &HttpRequest,
        reference: &str,
        session: &Session,
        purpose: &Purpose,
    ) -> Result<api::Who, Box<HttpResponse>> {
        let from = kinfold_http::client_address(request);
        let keep = !matches!(purpose, Purpose::Override(_));
        if keep && let Some(token) = self.sessions.token(reference, purpose.code()) {
            return Ok(api::Who { token, from });
        }
        match self
            .api
            .tokens
            .mint(&session.user, purpose, TOKEN_LIFETIME)
            .await
        {
            Ok(token) => {
                if keep {
                    self.sessions.keep_token(
                        reference,
                        purpose.code(),
                        token.clone(),
                        TOKEN_LIFETIME,
                    );
                }
                Ok(api::Who { token, from })
            }
            Err(why) => {
                tracing::warn!(why = %why, "dashboard: no token could be issued");
                Err(Box::new(problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(session),
                    "Kinfold cannot record this just now",
                    "Nothing is shown without its entry in the audit ledger, and the ledger cannot record at the moment. Try again in a minute.",
                )))
            }
        }
    }
}

/// The form fields of a POST, or a refusal when the CSRF token is missing or not this
/// session's.
pub(crate) fn form_of(
    session: &Session,
    body: &[u8],
) -> Result<std::collections::HashMap<String, String>, Box<HttpResponse>> {
    let fields: std::collections::HashMap<String, String> =
        serde_urlencoded::from_bytes(body).unwrap_or_default();
    let given = fields.get("csrf").map(String::as_str).unwrap_or("");
    if !session::same_secret(given, &session.csrf) {
        return Err(Box::new(problem(
            StatusCode::FORBIDDEN,
            Some(session),
            "This form cannot be sent",
            "The form did not come from this signed-in page (its security token is missing or belongs to another session). Nothing was changed. Go back, reload the page and try again.",
        )));
    }
    Ok(fields)
}

/// Headers every page carries: nothing cached, nothing framed, nothing fetched from elsewhere.
pub(crate) fn harden(mut response: HttpResponse) -> HttpResponse {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// A page.
pub(crate) fn html(status: StatusCode, body: String) -> HttpResponse {
    harden(
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body),
    )
}

/// A page that says something went wrong, and what to do.
pub(crate) fn problem(
    status: StatusCode,
    session: Option<&Session>,
    title: &str,
    words: &str,
) -> HttpResponse {
    let body = maud::html! {
        div class="banner warn" role="alert" { p { (words) } }
        p { a href="/app/worklist" { "Back to the worklist" } }
    };
    html(status, layout::page(title, session, body))
}

/// Sends the browser on (`303`, so a form is not sent twice by reloading).
pub(crate) fn see_other(to: &str) -> HttpResponse {
    harden(
        HttpResponse::SeeOther()
            .insert_header((header::LOCATION, to))
            .finish(),
    )
}

/// The signed-in session, or the way to the sign-in page.
pub(crate) fn require(
    dashboard: &web::Data<Dashboard>,
    request: &HttpRequest,
) -> Result<(String, Session), Box<HttpResponse>> {
    dashboard
        .signed_in(request)
        .ok_or_else(|| Box::new(see_other("/app/sign-in")))
}
