//! What the gateway and the adapters share at the HTTP edge.
//!
//! * [`FhirResponse`] helpers write FHIR JSON with the right media type.
//! * [`ApiError`] is the one shape every handler error takes on the wire: a status and an
//!   `OperationOutcome` saying what went wrong and where. Each service maps its own error enum
//!   into it in one exhaustive `match`.
//! * [`request_log`] logs each request as method, route pattern, status and time, never the
//!   path or query (they can hold patient identifiers), with a request id echoed back.
//!
//! Architecture invariant: no patient data and no token reaches a log line from this crate.

pub mod tls;

use std::fmt;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use kinfold_fhir::{IssueSeverity, IssueType, OperationOutcome, Resource};
use serde::Serialize;

/// The header carrying a request's id, accepted from the caller or made up here.
pub const REQUEST_ID: &str = "x-request-id";

/// A FHIR JSON response.
#[derive(Debug)]
pub struct FhirResponse;

impl FhirResponse {
    /// `status` with a FHIR JSON body.
    pub fn with_status<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> HttpResponse {
        match serde_json::to_vec(body) {
            Ok(bytes) => HttpResponse::build(status)
                .insert_header((header::CONTENT_TYPE, fhir_content_type()))
                .body(bytes),
            Err(err) => {
                tracing::error!(error = %err, "could not serialise a response body");
                ApiError::internal().error_response()
            }
        }
    }

    /// `200 OK` with a FHIR JSON body.
    pub fn ok<T: Serialize + ?Sized>(body: &T) -> HttpResponse {
        Self::with_status(StatusCode::OK, body)
    }

    /// `200 OK` with JSON text already written (e.g. a stored resource, served as stored).
    pub fn ok_text(json: String) -> HttpResponse {
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, fhir_content_type()))
            .body(json)
    }
}

fn fhir_content_type() -> HeaderValue {
    HeaderValue::from_static("application/fhir+json; charset=utf-8")
}

/// An error on the wire: a status and an `OperationOutcome`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong and where (boxed: errors travel through `Result`s and stay small).
    pub outcome: Box<OperationOutcome>,
    /// Whether to add `WWW-Authenticate: Bearer` (401 answers).
    pub challenge: bool,
    /// Seconds to send in `Retry-After` (429 and 503 answers), if any.
    pub retry_after: Option<u64>,
    /// Whether this answer refuses a caller (no credential, a bad one, or one not allowed
    /// here): such answers carry a [`Refusal`] for the refusal counter.
    pub refusal: bool,
}

/// Marks a response that refuses its caller, with the refusal's code; the refusal counter
/// (`kinfold_audit::http::count_refusals`) reads it after the handler has run.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The refusal's stable code, e.g. `token-expired`.
    pub code: String,
}

impl ApiError {
    /// An error with one issue and a stable error code.
    pub fn new(
        status: StatusCode,
        kind: IssueType,
        code: &str,
        diagnostics: impl Into<String>,
    ) -> Self {
        Self {
            status,
            outcome: Box::new(
                OperationOutcome::single(IssueSeverity::Error, kind, diagnostics).with_code(code),
            ),
            challenge: false,
            retry_after: None,
            refusal: false,
        }
    }

    /// A refusal of the caller (`401` or `403`), counted by source, reason and route.
    pub fn refused(
        status: StatusCode,
        kind: IssueType,
        code: &str,
        why: impl Into<String>,
    ) -> Self {
        Self {
            refusal: true,
            ..Self::new(status, kind, code, why)
        }
    }

    /// The error's stable code.
    pub fn code(&self) -> Option<&str> {
        self.outcome
            .issue
            .first()
            .and_then(|i| i.details.as_ref())
            .and_then(|d| d.coding.first())
            .and_then(|c| c.code.as_deref())
    }

    /// Adds `Retry-After: seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Adds where the fault is (`issue.expression`).
    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.outcome = Box::new(self.outcome.at(expression));
        self
    }

    /// An error from a parse failure, located at the fault when the parser knows where it is.
    pub fn from_parse(
        status: StatusCode,
        kind: IssueType,
        code: &str,
        err: &kinfold_fhir::ParseError,
    ) -> Self {
        let api = Self::new(status, kind, code, err.to_string());
        match err.location() {
            Some(at) => api.at(at),
            None => api,
        }
    }

    /// `401` with a Bearer challenge.
    pub fn unauthorised(kind: IssueType, code: &str, diagnostics: impl Into<String>) -> Self {
        Self {
            challenge: true,
            ..Self::refused(StatusCode::UNAUTHORIZED, kind, code, diagnostics)
        }
    }

    /// `404` for an unknown resource.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            IssueType::NotFound,
            "not-found",
            what,
        )
    }

    /// `500`, opaque on purpose: the cause is logged by the caller, not sent.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            IssueType::Exception,
            "internal",
            "An internal error occurred; it has been logged.",
        )
    }

    /// `503`: a dependency (database, ledger) is not available.
    pub fn unavailable(diagnostics: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            IssueType::Transient,
            "unavailable",
            diagnostics,
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        let mut response = FhirResponse::with_status(
            self.status,
            &Resource::OperationOutcome((*self.outcome).clone()),
        );
        if self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"kinfold\""),
            );
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.refusal {
            response.extensions_mut().insert(Refusal {
                code: self.code().unwrap_or_default().to_owned(),
            });
        }
        response
    }
}

/// The fallback for routes that do not exist: a FHIR `404` rather than an empty body.
pub async fn no_such_route(request: HttpRequest) -> HttpResponse {
    ApiError::new(
        StatusCode::NOT_FOUND,
        IssueType::NotSupported,
        "no-such-route",
        format!(
            "{} is not an operation this server supports",
            request.method()
        ),
    )
    .error_response()
}

/// A route that takes no parameters refuses any, rather than ignore them.
pub fn no_parameters(request: &HttpRequest) -> Result<(), ApiError> {
    allow_parameters(request, &[])
}

/// Refuses any query parameter not in `allowed`, and any given twice: Kinfold never silently
/// ignores what a caller asked for.
pub fn allow_parameters(request: &HttpRequest, allowed: &[&str]) -> Result<(), ApiError> {
    let mut seen: Vec<String> = Vec::new();
    for (name, _) in url::form_urlencoded::parse(request.query_string().as_bytes()) {
        if !allowed.contains(&name.as_ref()) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                IssueType::NotSupported,
                "unsupported-parameter",
                if allowed.is_empty() {
                    format!("'{name}' is not supported: this route takes no parameters")
                } else {
                    format!(
                        "'{name}' is not supported here (supported: {})",
                        allowed.join(", ")
                    )
                },
            )
            .at(name.into_owned()));
        }
        if seen.iter().any(|s| *s == name) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                IssueType::NotSupported,
                "repeated-parameter",
                format!("'{name}' may be given only once here"),
            )
            .at(name.into_owned()));
        }
        seen.push(name.into_owned());
    }
    Ok(())
}

/// Query strings that do not decode become a FHIR `400`.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            IssueType::Invalid,
            "bad-query",
            err.to_string(),
        )
        .into()
    })
}

/// Path segments that do not decode become a FHIR `400`.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            IssueType::Invalid,
            "bad-path",
            err.to_string(),
        )
        .into()
    })
}

/// The base URL for links in answers: the configured public URL, or else the address the
/// server is listening on. Never the request's `Host` or `X-Forwarded-Host`: a caller could
/// otherwise make the server mint links to a host of their choosing.
pub fn base_url(public: Option<&str>, request: &HttpRequest) -> String {
    match public {
        Some(base) => base.trim_end_matches('/').to_owned(),
        None => {
            let config = request.app_config();
            let scheme = if config.secure() { "https" } else { "http" };
            format!("{scheme}://{}", config.local_addr())
        }
    }
}

/// Which peers may say, in `X-Forwarded-For`, who their client was.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<std::net::IpAddr>);

/// A client inside the server's own process (the dashboard calling the gateway's API for a
/// browser): it proves it with a key made at start and known to nobody else, and names the
/// browser it calls for ([`ON_BEHALF_OF`]), so that refusals are counted against that
/// browser's address, not against loopback (where one user's refusals would slow everyone's).
#[derive(Clone)]
pub struct InternalCallers {
    key: String,
}

impl std::fmt::Debug for InternalCallers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalCallers(..)")
    }
}

impl InternalCallers {
    /// Internal callers proving themselves with `key`.
    pub fn new(key: String) -> Self {
        Self { key }
    }
}

/// The header in which an internal caller gives its key.
pub const INTERNAL_KEY: &str = "kinfold-internal-key";
/// The header in which an internal caller names the address it calls for.
pub const ON_BEHALF_OF: &str = "kinfold-on-behalf-of";

/// Whether two secrets are the same, in time that does not depend on where they first differ
/// (a key, a CSRF token).
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The address an internal caller on loopback, with the right key, calls for.
fn on_behalf_of(request: &HttpRequest, peer: std::net::IpAddr) -> Option<std::net::IpAddr> {
    if !peer.is_loopback() {
        return None;
    }
    let internal = request.app_data::<web::Data<InternalCallers>>()?;
    let given = request.headers().get(INTERNAL_KEY)?.as_bytes();
    if !same_secret(given, internal.key.as_bytes()) {
        return None;
    }
    request
        .headers()
        .get(ON_BEHALF_OF)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The address of the client that made a request: the peer, or, when the peer is a trusted
/// proxy, the last address in `X-Forwarded-For` that is not itself a trusted proxy, or, for an
/// internal caller with its key ([`InternalCallers`]), the address it calls for.
pub fn client_address(request: &HttpRequest) -> Option<std::net::IpAddr> {
    let peer = request.peer_addr()?.ip();
    if let Some(browser) = on_behalf_of(request, peer) {
        return Some(browser);
    }
    let trusted = request
        .app_data::<web::Data<TrustedProxies>>()
        .map(|t| t.0.as_slice())
        .unwrap_or_default();
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<std::net::IpAddr> = request
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|a| !trusted.contains(a))
            .unwrap_or(peer),
    )
}

/// The id of this request: the caller's `X-Request-ID` if it is a plain token of at most 64
/// letters, digits and hyphens, otherwise one made up by [`request_log`]. The same id is
/// echoed in the response, logged, and written to audit records.
pub fn request_id(request: &HttpRequest) -> Option<String> {
    request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone())
}

/// When [`request_log`] first saw this request (for answers that must take as long as others).
pub fn request_started(request: &HttpRequest) -> Option<Instant> {
    request.extensions().get::<RequestStarted>().map(|s| s.0)
}

/// When the request arrived, kept in its extensions by [`request_log`].
#[derive(Debug, Clone, Copy)]
struct RequestStarted(Instant);

/// The request id, kept in the request's extensions by [`request_log`].
#[derive(Debug, Clone)]
struct RequestId(String);

/// The longest request line target (path and query) served, in bytes.
pub const MAX_URI_BYTES: usize = 16 * 1024;
/// The longest single header value accepted (a bearer token fits in far less), in bytes.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// The most header bytes in one request.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// A request whose head is over the limits above, answered before any handler runs.
fn oversized_head(request: &ServiceRequest) -> Option<ApiError> {
    let uri = request.uri().to_string().len();
    if uri > MAX_URI_BYTES {
        return Some(ApiError::new(
            StatusCode::URI_TOO_LONG,
            IssueType::TooLong,
            "uri-too-long",
            format!("The request URI is {uri} bytes; at most {MAX_URI_BYTES} are accepted."),
        ));
    }
    let mut total = 0;
    for (name, value) in request.headers() {
        let size = name.as_str().len() + value.len();
        total += size;
        if value.len() > MAX_HEADER_BYTES {
            return Some(ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                IssueType::TooLong,
                "header-too-large",
                format!(
                    "The {} header is {} bytes; at most {MAX_HEADER_BYTES} are accepted in one header.",
                    name.as_str(),
                    value.len()
                ),
            ));
        }
    }
    (total > MAX_HEAD_BYTES).then(|| {
        ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            IssueType::TooLong,
            "headers-too-large",
            format!(
                "The request headers are {total} bytes; at most {MAX_HEAD_BYTES} are accepted."
            ),
        )
    })
}

/// The edge every request passes: refuses oversized heads with an `OperationOutcome`, gives
/// the request its id, logs it (method, route pattern, status, milliseconds, request id: never
/// the path or query, which can carry patient identifiers), echoes the id, and marks every
/// answer `Cache-Control: no-store` and `X-Content-Type-Options: nosniff`. An error answer
/// that has no body yet (a `413` from a body limit, say) gets an `OperationOutcome`.
pub async fn request_log(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    request.extensions_mut().insert(RequestStarted(started));
    let method = request.method().clone();
    let route = request
        .match_pattern()
        .unwrap_or_else(|| "(unmatched)".into());
    let mut response = match oversized_head(&request) {
        Some(refusal) => request.into_response(refusal.error_response()),
        None => with_outcome_body(next.call(request).await?.map_into_boxed_body()),
    };
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(%method, %route, status, elapsed_ms, request_id = %request_id, "request");
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(HeaderName::from_static(REQUEST_ID), value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

/// An error answer without a body (actix's own `413`, `404` or `405`) becomes one with an
/// `OperationOutcome`, so that every error a client sees says what went wrong.
fn with_outcome_body(response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = response.status();
    let has_type = response.headers().contains_key(header::CONTENT_TYPE);
    if !(status.is_client_error() || status.is_server_error()) || has_type {
        return response;
    }
    let (code, kind, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            "body-too-large",
            IssueType::TooLong,
            "The request body is larger than this server accepts.".to_owned(),
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method-not-allowed",
            IssueType::NotSupported,
            "This method is not supported here.".to_owned(),
        ),
        other => (
            "error",
            IssueType::Processing,
            format!(
                "The request failed: {}",
                other.canonical_reason().unwrap_or("error")
            ),
        ),
    };
    let (request, original) = response.into_parts();
    let mut answer = ApiError::new(status, kind, code, message).error_response();
    for (name, value) in original.headers() {
        if !answer.headers().contains_key(name) {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    ServiceResponse::new(request, answer)
}

/// A server bound to its listener: the port it really got (tests bind port 0) and the server
/// to poll. The gateway's and the adapters' `Application`s are this.
pub struct Running {
    port: u16,
    server: actix_web::dev::Server,
}

impl Running {
    /// Wraps a built server and the port its listener is bound to.
    pub fn new(port: u16, server: actix_web::dev::Server) -> Self {
        Self { port, server }
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn request(peer: &str, key: Option<&str>, behalf: &str) -> HttpRequest {
        let mut request = TestRequest::default()
            .peer_addr(peer.parse().expect("address"))
            .app_data(web::Data::new(InternalCallers::new("the-right-key".into())))
            .insert_header((ON_BEHALF_OF, behalf));
        if let Some(key) = key {
            request = request.insert_header((INTERNAL_KEY, key));
        }
        request.to_http_request()
    }

    #[test]
    fn only_an_internal_caller_with_the_key_names_the_browser() {
        let browser: std::net::IpAddr = "192.0.2.7".parse().expect("address");
        let loopback: std::net::IpAddr = "127.0.0.1".parse().expect("address");
        assert_eq!(
            client_address(&request(
                "127.0.0.1:5000",
                Some("the-right-key"),
                "192.0.2.7"
            )),
            Some(browser)
        );
        assert_eq!(
            client_address(&request(
                "127.0.0.1:5000",
                Some("the-wrong-key"),
                "192.0.2.7"
            )),
            Some(loopback)
        );
        assert_eq!(
            client_address(&request("127.0.0.1:5000", None, "192.0.2.7")),
            Some(loopback)
        );
        // The key from another machine counts for nothing.
        assert_eq!(
            client_address(&request(
                "198.51.100.2:5000",
                Some("the-right-key"),
                "192.0.2.7"
            )),
            Some("198.51.100.2".parse().expect("address"))
        );
    }
}
