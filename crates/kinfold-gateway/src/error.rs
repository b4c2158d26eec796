//! The gateway's errors, and the one place they become HTTP answers.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use kinfold_fhir::{IssueType, ParseError};
use kinfold_http::ApiError;
use kinfold_store::StoreError;

/// Everything a gateway request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A search parameter is unsupported or unreadable.
    #[error("bad search")]
    BadSearch(ParseError),
    /// An NHS number that fails its check.
    #[error("bad NHS number")]
    BadNhsNumber(ParseError),
    /// No such person in Kinfold.
    #[error("unknown person")]
    UnknownPerson,
    /// The records show no legitimate relationship between the caller and the person
    /// (answered exactly as [`GatewayError::UnknownPerson`]).
    #[error("no relationship")]
    NoRelationship,
    /// Every agency failed; there is nothing to answer with.
    #[error("no agency answered")]
    NoAgencyAnswered,
    /// The ledger could not record the disclosure: nothing is disclosed (fail closed).
    #[error("ledger unavailable")]
    Ledger(#[from] kinfold_audit::LedgerError),
    /// The gateway's own database failed.
    #[error("store failure")]
    Store(#[from] StoreError),
    /// The records lack what a growth chart needs (birth date, sex).
    #[error("not chartable")]
    NotChartable(String),
    /// Refused at the HTTP edge (an unsupported parameter, say), already in wire form.
    #[error("refused")]
    Refused(ApiError),
    /// Drawing a chart failed.
    #[error("chart failure")]
    Chart(String),
    /// An export (a chronology's CSV) could not be written.
    #[error("export failed: {0}")]
    Export(String),
    /// The caller has had too many "not found" answers about people in this interval: the
    /// seconds until it ends.
    #[error("too many misses")]
    Throttled(u64),
    /// A change was about to be kept without its audit entry (a bug): nothing is kept.
    #[error("change without its audit entry")]
    Unaudited,
}

impl GatewayError {
    /// The wire form: status plus `OperationOutcome`, one arm per error.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            GatewayError::BadSearch(err) => ApiError::from_parse(
                StatusCode::BAD_REQUEST,
                IssueType::NotSupported,
                "bad-search",
                err,
            ),
            GatewayError::BadNhsNumber(err) => ApiError::new(
                StatusCode::BAD_REQUEST,
                IssueType::Value,
                "bad-nhs-number",
                err.to_string(),
            )
            .at("identifier"),
            // A refusal by what the records say answers exactly as an unknown person: the
            // caller learns nothing of whom Kinfold knows (the refusal is in the ledger).
            GatewayError::UnknownPerson | GatewayError::NoRelationship => unknown_person(),
            GatewayError::NoAgencyAnswered => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                IssueType::Timeout,
                "no-agency-answered",
                "No agency answered in time; try again.",
            ),
            GatewayError::Ledger(err) => {
                tracing::error!(error = ?err, "disclosure refused: the ledger cannot record");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    IssueType::Transient,
                    "ledger-unavailable",
                    "The audit ledger cannot record this disclosure, so nothing is disclosed. Try again later.",
                )
            }
            GatewayError::NotChartable(why) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                IssueType::Processing,
                "not-chartable",
                why.clone(),
            ),
            GatewayError::Refused(api) => api.clone(),
            GatewayError::Throttled(wait) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                IssueType::Throttled,
                "too-many-misses",
                "Too many requests about people this caller is not answered about; try again later.",
            )
            .retry_after(*wait),
            GatewayError::Unaudited => {
                tracing::error!("a change without its audit entry was refused");
                ApiError::internal()
            }
            GatewayError::Chart(err) => {
                tracing::error!(error = %err, "growth chart failed to draw");
                ApiError::internal()
            }
            GatewayError::Export(err) => {
                tracing::error!(error = %err, "an export failed to write");
                ApiError::internal()
            }
            GatewayError::Store(err) => {
                tracing::error!(error = ?err, "gateway store failure");
                ApiError::unavailable("The gateway's database is not available.")
            }
        }
    }
}

/// The answer for a person Kinfold does not know, or does not show this caller.
pub(crate) fn unknown_person() -> ApiError {
    ApiError::not_found(
        "No person with this id is known to Kinfold, or none whose records you have a relationship with.",
    )
}

impl ResponseError for GatewayError {
    fn status_code(&self) -> StatusCode {
        self.to_api_error().status
    }

    fn error_response(&self) -> HttpResponse {
        self.to_api_error().error_response()
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The token keys are unusable.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthConfigError),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The listener could not be bound.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    /// The adapters' TLS is missing or unusable.
    #[error("adapter TLS: {0}")]
    Tls(#[from] kinfold_http::tls::TlsError),
    /// No TLS, on an address other machines reach.
    #[error(
        "the gateway serves plain HTTP only on a loopback address, not on {0}: configure tls (cert, key, client_ca, adapter_names)"
    )]
    PlainOnNetwork(std::net::SocketAddr),
    /// Adapters are configured, but not the gateway's TLS to reach them.
    #[error("the adapters are reached only over mutual TLS: set adapter_tls (ca, cert, key)")]
    NoAdapterTls,
    /// An adapter is configured, but no key to check its events.
    #[error(
        "the {0} adapter is configured ([[adapters]]) but [[event_keys]] has no key for agency \"{0}\": its events would be refused (401) and retried for ever. Add [[event_keys]] with agency = \"{0}\" and the kid and secret its outbox signs with"
    )]
    NoEventKey(kinfold_fhir::Agency),
    /// A registered SMART client's key can never verify.
    #[error("{0}")]
    SmartKey(String),
    /// The notification rules could not be read.
    #[error(transparent)]
    Rules(#[from] kinfold_notify::RulesError),
    /// The demo's sign-in (a list of users, no password) on an address other machines reach.
    #[error(
        "dashboard.demo_users lets anyone sign in as anyone: it is for `kinfold demo` on loopback only, not on {0}. Remove it and sign in through OpenID Connect (ARCHITECTURE.md)"
    )]
    DemoSignInOnNetwork(std::net::SocketAddr),
    /// The dashboard could not start.
    #[error("dashboard: {0}")]
    Dashboard(String),
}

/// A query parameter that cannot be read: `400`, naming it and saying why.
pub(crate) fn bad_parameter(name: &str, message: &str) -> GatewayError {
    GatewayError::BadSearch(kinfold_fhir::ParseError::SearchParameter {
        name: name.to_owned(),
        message: message.to_owned(),
    })
}

/// A day parameter (`YYYY-MM-DD`), if given.
pub(crate) fn day_parameter(
    name: &str,
    text: Option<&str>,
) -> Result<Option<chrono::NaiveDate>, GatewayError> {
    text.map(|t| {
        chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .map_err(|_| bad_parameter(name, "must be a date, YYYY-MM-DD"))
    })
    .transpose()
}
