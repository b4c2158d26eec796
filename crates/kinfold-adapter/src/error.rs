//! The adapter's errors, and the one place they become HTTP answers.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use kinfold_fhir::{IssueType, ParseError};
use kinfold_http::ApiError;
use kinfold_store::StoreError;

/// Everything an adapter request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The URL names a resource type this adapter does not store.
    #[error("unknown resource type")]
    UnknownType(String),
    /// No such resource (or version).
    #[error("not found")]
    NotFound(String),
    /// A search parameter is unsupported or unreadable.
    #[error("bad search")]
    BadSearch(ParseError),
    /// The request body is not a FHIR resource.
    #[error("bad body")]
    BadBody(ParseError),
    /// `POST /` with something other than a transaction or batch Bundle.
    #[error("not a transaction or batch")]
    NotABundle(String),
    /// One entry of a Bundle is wrong; where, and why.
    #[error("bad entry")]
    BadEntry {
        /// FHIRPath-like location, e.g. `Bundle.entry[3].resource.identifier[0].value`.
        path: String,
        /// What is wrong.
        message: String,
        /// 400 for a malformed request, 422 for content that breaks a rule.
        status: StatusCode,
    },
    /// The request body is over the configured limit.
    #[error("body too large")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The Bundle has more entries than one ingest may carry.
    #[error("too many entries")]
    TooManyEntries {
        /// The limit.
        limit: usize,
    },
    /// The body holds more JSON values than one ingest may.
    #[error("too many JSON values")]
    TooManyValues {
        /// The limit.
        limit: usize,
        /// How many the body has.
        found: usize,
    },
    /// As many ingests as the adapter runs at once are already running.
    #[error("busy")]
    Busy {
        /// How many run at once.
        limit: usize,
    },
    /// Refused at the HTTP edge (an unsupported parameter, say), already in wire form.
    #[error("refused")]
    Refused(ApiError),
    /// The adapter's ledger could not record the ingest, so nothing was stored.
    #[error("ledger unavailable")]
    Ledger(#[from] kinfold_audit::LedgerError),
    /// The store failed.
    #[error("store failure")]
    Store(#[from] StoreError),
}

impl AdapterError {
    /// The wire form: status plus `OperationOutcome`, one arm per error.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            AdapterError::UnknownType(name) => ApiError::new(
                StatusCode::NOT_FOUND,
                IssueType::NotSupported,
                "unknown-type",
                format!("This adapter does not store resources of type '{name}'"),
            ),
            AdapterError::NotFound(what) => {
                ApiError::not_found(format!("{what} is not known here"))
            }
            AdapterError::BadSearch(err) => ApiError::from_parse(
                StatusCode::BAD_REQUEST,
                IssueType::NotSupported,
                "bad-search",
                err,
            ),
            AdapterError::BadBody(err) => {
                let kind = match err {
                    ParseError::Json { .. } => IssueType::Structure,
                    _ => IssueType::Invalid,
                };
                ApiError::from_parse(StatusCode::BAD_REQUEST, kind, "bad-body", err)
            }
            AdapterError::NotABundle(what) => ApiError::new(
                StatusCode::BAD_REQUEST,
                IssueType::Invalid,
                "not-a-transaction",
                format!("POST / takes a Bundle of type transaction or batch; this is {what}"),
            )
            .at("Bundle.type"),
            AdapterError::BadEntry {
                path,
                message,
                status,
            } => {
                let kind = match *status {
                    StatusCode::UNPROCESSABLE_ENTITY => IssueType::BusinessRule,
                    StatusCode::CONFLICT => IssueType::Duplicate,
                    _ => IssueType::Invalid,
                };
                ApiError::new(*status, kind, "bad-entry", format!("{path}: {message}"))
                    .at(path.clone())
            }
            AdapterError::TooLarge { limit } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                IssueType::TooLong,
                "body-too-large",
                format!("The request body is over this adapter's limit of {limit} bytes; nothing was stored. Send the records in smaller Bundles."),
            ),
            AdapterError::TooManyEntries { limit } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                IssueType::TooCostly,
                "too-many-entries",
                format!("The Bundle has more than {limit} entries, the most one ingest may carry; nothing was stored. Send the records in smaller Bundles."),
            )
            .at("Bundle.entry"),
            AdapterError::TooManyValues { limit, found } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                IssueType::TooCostly,
                "too-many-values",
                format!("The Bundle holds {found} JSON values (object members and array items); one ingest may hold at most {limit}. Nothing was stored. Send the records in smaller Bundles."),
            ),
            AdapterError::Busy { limit } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                IssueType::Transient,
                "busy",
                format!("This adapter is already running {limit} ingests at once; nothing was stored. Try again shortly."),
            )
            .retry_after(1),
            AdapterError::Refused(api) => api.clone(),
            AdapterError::Ledger(err) => {
                tracing::error!(error = ?err, "ingest refused: the ledger cannot record");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    IssueType::Transient,
                    "ledger-unavailable",
                    "The adapter's audit ledger cannot record this ingest, so nothing was stored. Try again later.",
                )
            }
            AdapterError::Store(StoreError::Conflict(what)) => ApiError::new(
                StatusCode::CONFLICT,
                IssueType::Duplicate,
                "conflict",
                format!("{what}; nothing was stored."),
            ),
            AdapterError::Store(err) => {
                tracing::error!(error = ?err, "store failure");
                ApiError::unavailable(
                    "The adapter's database is not available; nothing was changed.",
                )
            }
        }
    }
}

impl ResponseError for AdapterError {
    fn status_code(&self) -> StatusCode {
        self.to_api_error().status
    }

    fn error_response(&self) -> HttpResponse {
        self.to_api_error().error_response()
    }
}
