//! The answer of a guarded route. A [`Disclosed`] answer carries person, audit or identity
//! data, and the only way to build one takes the [`Receipt`] the ledger gives once the
//! request's audit entry is durable: a handler cannot answer before its entry is written, or
//! without one. The route table ([`crate::policy`]) registers every guarded route through
//! [`crate::policy::guarded`], which accepts only handlers that answer with a `Disclosed`.

use actix_web::body::BoxBody;
use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, Responder};
use kinfold_audit::Receipt;
use kinfold_http::FhirResponse;
use serde::Serialize;

/// An answer built from the ledger receipt of its audit entry. Its fields are private and
/// every constructor takes a [`Receipt`], so nothing can build one without an entry:
///
/// ```compile_fail,E0451
/// let answer = kinfold_gateway::Disclosed {
///     receipt: todo!(),
///     response: actix_web::HttpResponse::Ok().finish(),
/// };
/// ```
#[derive(Debug)]
pub struct Disclosed {
    receipt: Receipt,
    response: HttpResponse,
}

impl Disclosed {
    /// A FHIR JSON resource (`200`).
    pub(crate) fn fhir(receipt: Receipt, body: &impl Serialize) -> Self {
        Self {
            receipt,
            response: FhirResponse::ok(body),
        }
    }

    /// A FHIR JSON resource just made (`201`, with its `Location`).
    pub(crate) fn fhir_created(receipt: Receipt, location: &str, body: &impl Serialize) -> Self {
        let mut response = FhirResponse::with_status(StatusCode::CREATED, body);
        if let Ok(value) = location.parse() {
            response.headers_mut().insert(LOCATION, value);
        }
        Self { receipt, response }
    }

    /// Plain JSON (`200`), for answers that are not FHIR resources (an access report, the
    /// identity review queue).
    pub(crate) fn json(receipt: Receipt, body: &impl Serialize) -> Self {
        Self {
            receipt,
            response: HttpResponse::Ok().json(body),
        }
    }

    /// Plain JSON with another status (`201` for a family edge made).
    pub(crate) fn json_with(receipt: Receipt, status: StatusCode, body: &impl Serialize) -> Self {
        Self {
            receipt,
            response: HttpResponse::build(status).json(body),
        }
    }

    /// Another media type (an SVG chart).
    pub(crate) fn body(receipt: Receipt, content_type: &str, body: String) -> Self {
        Self {
            receipt,
            response: HttpResponse::Ok().content_type(content_type).body(body),
        }
    }

    /// The receipt this answer was built from.
    pub fn receipt(&self) -> Receipt {
        self.receipt
    }
}

impl Responder for Disclosed {
    type Body = BoxBody;

    fn respond_to(self, _: &HttpRequest) -> HttpResponse<Self::Body> {
        self.response
    }
}
