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

use std::fmt;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
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
        }
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
            ..Self::new(StatusCode::UNAUTHORIZED, kind, code, diagnostics)
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

/// The base URL for links in answers: the configured public URL, or the one the request came
/// in on.
pub fn base_url(public: Option<&str>, request: &HttpRequest) -> String {
    match public {
        Some(base) => base.trim_end_matches('/').to_owned(),
        None => {
            let info = request.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    }
}

/// Logs each request (method, route pattern, status, milliseconds, request id) and echoes the
/// request id. The path and query are never logged: they can carry patient identifiers.
pub async fn request_log(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
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
    let method = request.method().clone();
    let route = request
        .match_pattern()
        .unwrap_or_else(|| "(unmatched)".into());
    let mut response = next.call(request).await?;
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(%method, %route, status, elapsed_ms, request_id = %request_id, "request");
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID), value);
    }
    Ok(response)
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
