//! `POST /events`: where the adapters deliver the events their ingests write (the outbox), and
//! the gateway keeps each once in its own store for the identity and notification work.
//!
//! Each adapter signs its deliveries with its own event key; a key is accepted only for its
//! own agency's events, and for nothing else (it is no user token: the data routes do not know
//! it). The route holds no patient data to disclose, so it is not an access in any person's
//! report.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use kinfold_fhir::{Agency, IssueType};
use kinfold_http::ApiError;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::auth::{AuthConfig, Authenticator, KeyConfig, Secret, bearer};
use crate::error::GatewayError;
use crate::state::GatewayState;

/// One adapter's event key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventKey {
    /// The agency whose adapter holds it.
    pub agency: Agency,
    /// Its id, as in the adapter's tokens' `kid`.
    pub kid: String,
    /// The HS256 secret: at least 32 bytes.
    pub secret: Secret,
}

/// The largest delivery taken, in bytes.
pub const MAX_DELIVERY_BYTES: usize = 4 * 1024 * 1024;
/// The most events in one delivery.
pub const MAX_EVENTS: usize = 1000;
/// The longest event id.
const MAX_ID: usize = 128;

/// The role an adapter's event token carries.
const ADAPTER_ROLE: &str = "kinfold-adapter";

/// Which client certificates may deliver events: with the gateway's TLS on, a connection must
/// present one naming an adapter (`tls.adapter_names`); without it (the demo, on loopback),
/// the event key alone.
#[derive(Debug)]
pub(crate) struct EventDoors(pub(crate) Option<Vec<String>>);

/// Checks the adapters' event tokens, one key per agency.
#[derive(Debug)]
pub(crate) struct EventSenders {
    keys: Vec<(Agency, Authenticator)>,
}

impl EventSenders {
    pub(crate) fn new(
        keys: &[EventKey],
        auth: &AuthConfig,
    ) -> Result<Self, crate::auth::AuthConfigError> {
        let keys = keys
            .iter()
            .map(|key| {
                let config = AuthConfig {
                    keys: vec![KeyConfig {
                        kid: key.kid.clone(),
                        secret: key.secret.clone(),
                    }],
                    max_lifetime_seconds: 600,
                    ..auth.clone()
                };
                Ok((key.agency, Authenticator::new(&config)?))
            })
            .collect::<Result<_, crate::auth::AuthConfigError>>()?;
        Ok(Self { keys })
    }

    /// The agency a delivery comes from, if its token is one of the adapters' event tokens.
    fn sender(&self, token: &str) -> Result<Agency, ApiError> {
        let kid = jsonwebtoken::decode_header(token)
            .ok()
            .and_then(|h| h.kid)
            .unwrap_or_default();
        let refused = || {
            ApiError::unauthorised(
                IssueType::Security,
                "token-key",
                "The token is not signed by an adapter's event key.",
            )
        };
        let (agency, checker) = self
            .keys
            .iter()
            .find(|(_, checker)| checker.knows(&kid))
            .ok_or_else(refused)?;
        let caller = checker.check_signed(token)?;
        if caller.role.as_deref() != Some(ADAPTER_ROLE)
            || caller.subject != format!("{}-adapter", agency.as_str())
        {
            return Err(refused());
        }
        Ok(*agency)
    }
}

#[derive(Deserialize)]
struct Delivery<'a> {
    agency: Agency,
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct EventHead {
    id: String,
    agency: Agency,
}

/// Takes a delivery of events from an adapter.
#[utoipa::path(post, path = "/events", tag = "Adapters",
    security(("bearer" = [])),
    request_body(content = serde_json::Value, description = "`{\"agency\": \"ae\", \"events\": [FeedEvent, …]}` (docs/feeds/events.md); at most 1,000 events and 4 MiB", content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"received\": n, \"new\": m}`: every event is kept (a redelivered one once)", content_type = "application/json", body = serde_json::Value),
        (status = 400, description = "Not a delivery, or an event without an id or of another agency; nothing kept", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 401, description = "No token, or not this agency's adapter event token", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 413, description = "Over 4 MiB", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 503, description = "The store is unavailable; deliver again later", content_type = "application/fhir+json", body = serde_json::Value),
    ))]
pub(crate) async fn receive(
    state: web::Data<GatewayState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, GatewayError> {
    kinfold_http::no_parameters(&request).map_err(GatewayError::Refused)?;
    if let Some(names) = request
        .app_data::<web::Data<EventDoors>>()
        .and_then(|doors| doors.0.as_ref())
    {
        match kinfold_http::tls::peer_certificate(&request) {
            Some(cert) if cert.names_any(names) => {}
            Some(_) => {
                return Err(GatewayError::Refused(ApiError::refused(
                    StatusCode::FORBIDDEN,
                    IssueType::Forbidden,
                    "client-not-allowed",
                    "Events are taken only from an adapter's client certificate.",
                )));
            }
            None => {
                return Err(GatewayError::Refused(ApiError::unauthorised(
                    IssueType::Login,
                    "client-certificate-missing",
                    "Events are delivered over mutual TLS: present the adapter's client certificate.",
                )));
            }
        }
    }
    let sender = match (
        bearer(&request),
        request.app_data::<web::Data<EventSenders>>(),
    ) {
        (Some(token), Some(senders)) => senders.sender(token),
        (None, _) => Err(ApiError::unauthorised(
            IssueType::Login,
            "token-missing",
            "This route needs an adapter's event token (Authorization: Bearer …).",
        )),
        (Some(_), None) => Err(ApiError::unauthorised(
            IssueType::Security,
            "token-key",
            "This gateway takes events from no adapter (event_keys is empty).",
        )),
    }
    .map_err(GatewayError::Refused)?;
    let bad = |code: &str, why: String| {
        GatewayError::Refused(ApiError::new(
            StatusCode::BAD_REQUEST,
            IssueType::Invalid,
            code,
            why,
        ))
    };
    let delivery: Delivery = serde_json::from_slice(&body).map_err(|e| {
        bad(
            "events-unreadable",
            format!("The delivery is not readable: {e}"),
        )
    })?;
    if delivery.agency != sender {
        return Err(bad(
            "events-agency",
            format!("This token delivers only {} events.", sender.as_str()),
        ));
    }
    if delivery.events.len() > MAX_EVENTS {
        return Err(bad(
            "events-too-many",
            format!("A delivery carries at most {MAX_EVENTS} events."),
        ));
    }
    let mut events = Vec::with_capacity(delivery.events.len());
    for (n, raw) in delivery.events.iter().enumerate() {
        let head: EventHead = serde_json::from_str(raw.get()).map_err(|e| {
            bad(
                "event-unreadable",
                format!("events[{n}] is not an event: {e}"),
            )
        })?;
        if head.id.is_empty() || head.id.len() > MAX_ID || head.agency != sender {
            return Err(bad(
                "event-invalid",
                format!(
                    "events[{n}] needs an id of 1 to {MAX_ID} characters and agency {}",
                    sender.as_str()
                ),
            ));
        }
        events.push((head.id, raw.get().to_owned()));
    }
    let received = chrono::Utc::now().timestamp_millis();
    let new = state
        .store
        .events_receive(sender.as_str(), &events, received)
        .await?;
    tracing::debug!(agency = %sender, received = events.len(), new, "events received");
    // The events are kept: read them into the person index now. If that fails (the ledger
    // cannot record, say), they are read again at the next delivery or query.
    if new > 0
        && let Err(error) = state.identities.catch_up(&state.store, &state.ledger).await
    {
        tracing::warn!(
            ?error,
            "identity: received events not yet read into the index"
        );
    }
    if new > 0 {
        state.notifier.wake();
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({"received": events.len(), "new": new})))
}
