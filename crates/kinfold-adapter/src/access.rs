//! Who may use an adapter: the gateway reads, the agency's feeds send, auditors read the ledger.
//!
//! An adapter serves only over mutual TLS. The handshake lets a connection without a client
//! certificate through (so that auditors can read `/ledger/v1` and anyone can read
//! `/metadata`), but refuses a certificate the client authority did not sign. Then each
//! request is matched to its door:
//!
//! | door | routes | who |
//! |---|---|---|
//! | open | `/ledger/v1/*`, `/metadata` | anyone |
//! | ingest | `POST /`, `POST /$import` | a certificate naming one of `tls.feed_names` |
//! | read | everything else | a certificate naming one of `tls.gateway_names` |
//!
//! No certificate is `401`, a certificate not allowed through that door is `403`; both answer
//! with an OperationOutcome and are counted into the adapter's ledger by the refusal counter.
//! The gateway's certificate cannot send, and a feed's cannot read.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use kinfold_fhir::IssueType;
use kinfold_http::ApiError;
use kinfold_http::tls::peer_certificate;
use serde::Deserialize;

/// The adapter's TLS: its certificate, the authority of its callers, and which callers may
/// use which door.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterTls {
    /// The adapter's certificate chain (PEM).
    pub cert: std::path::PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: std::path::PathBuf,
    /// The authority that signs the gateway's and the feeds' client certificates (PEM).
    pub client_ca: std::path::PathBuf,
    /// DNS names (subjectAltName) of the gateway's client certificates: the only callers
    /// served records.
    pub gateway_names: Vec<String>,
    /// DNS names of this agency's feed certificates: the only callers whose ingest, HTTP or
    /// MLLP, is taken.
    pub feed_names: Vec<String>,
}

impl AdapterTls {
    /// The server side of the adapter's HTTP listener (client certificates optional at the
    /// handshake, checked per door).
    pub(crate) fn server(&self) -> kinfold_http::tls::ServerTls {
        kinfold_http::tls::ServerTls {
            cert: self.cert.clone(),
            key: self.key.clone(),
            client_ca: self.client_ca.clone(),
        }
    }
}

/// Which callers each door admits.
#[derive(Debug, Clone)]
pub(crate) struct Doors {
    pub(crate) gateway: Vec<String>,
    pub(crate) feeds: Vec<String>,
}

/// The door a request comes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Door {
    Open,
    Ingest,
    Read,
}

impl Door {
    pub(crate) fn of(method: &Method, path: &str) -> Self {
        if path.starts_with("/ledger/v1/") || path == "/metadata" {
            Door::Open
        } else if method == Method::POST {
            Door::Ingest
        } else {
            Door::Read
        }
    }
}

/// Middleware: admits a request only through a door its client certificate opens.
pub(crate) async fn admit(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let door = Door::of(request.method(), request.path());
    if door == Door::Open {
        return next
            .call(request)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let Some(doors) = request.app_data::<web::Data<Doors>>().cloned() else {
        tracing::error!("the adapter was built without its doors");
        return Ok(request
            .into_response(ApiError::internal().error_response())
            .map_into_right_body());
    };
    let allowed = if door == Door::Ingest {
        &doors.feeds
    } else {
        &doors.gateway
    };
    let refusal = match peer_certificate(request.request()) {
        Some(cert) if cert.names_any(allowed) => None,
        Some(_) => Some(ApiError::refused(
            StatusCode::FORBIDDEN,
            IssueType::Forbidden,
            "client-not-allowed",
            if door == Door::Ingest {
                "This client certificate may not send records to this adapter: only its agency's feeds may."
            } else {
                "This client certificate may not read this adapter: only the Kinfold gateway may."
            },
        )),
        None => Some(ApiError::refused(
            StatusCode::UNAUTHORIZED,
            IssueType::Login,
            "client-certificate-missing",
            "This adapter answers only the Kinfold gateway and its agency's feeds, each known by its client certificate; none was presented.",
        )),
    };
    match refusal {
        None => next
            .call(request)
            .await
            .map(ServiceResponse::map_into_left_body),
        Some(refusal) => Ok(request
            .into_response(refusal.error_response())
            .map_into_right_body()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_has_its_door() {
        assert_eq!(Door::of(&Method::GET, "/ledger/v1/get-sth"), Door::Open);
        assert_eq!(Door::of(&Method::GET, "/metadata"), Door::Open);
        assert_eq!(Door::of(&Method::POST, "/"), Door::Ingest);
        assert_eq!(Door::of(&Method::POST, "/$import"), Door::Ingest);
        assert_eq!(Door::of(&Method::GET, "/Patient/p1"), Door::Read);
        assert_eq!(Door::of(&Method::GET, "/Binary/b1"), Door::Read);
        // A route the adapter does not have still needs a reader: nothing is learnt for free.
        assert_eq!(Door::of(&Method::DELETE, "/Patient/p1"), Door::Read);
        assert_eq!(Door::of(&Method::GET, "/ledger/v1-not"), Door::Read);
    }
}
