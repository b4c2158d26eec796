//! The `Caller` extractor: every data route's way in. It checks the bearer token
//! ([`Authenticator`]) and, for a system client's token, the request's `Kinfold-Requester` JWT
//! ([`crate::smart`]), so that no handler runs without knowing who is asking and why. A
//! refusal's answer is marked; the refusal counter counts it after the handler.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use kinfold_fhir::IssueType;
use kinfold_http::ApiError;

use crate::auth::{AuthConfig, Authenticator, Caller, bearer};

/// A system client's caller: who is asking and why, from its `Kinfold-Requester` JWT, and
/// the requester's claims, whose `jti` must be new.
fn through_client(
    request: &HttpRequest,
    caller: Caller,
) -> Result<(Caller, Option<crate::smart::RequesterClaims>), ApiError> {
    let Some(client) = caller.client.clone() else {
        return Ok((caller, None));
    };
    if !caller
        .scope
        .as_deref()
        .is_some_and(crate::smart::reads_patients)
    {
        return Err(ApiError::refused(
            actix_web::http::StatusCode::FORBIDDEN,
            IssueType::Forbidden,
            "insufficient-scope",
            "The access token's scopes do not include reading patients (system/Patient.rs).",
        ));
    }
    let (Some(clients), Some(auth)) = (
        request.app_data::<web::Data<crate::smart::Clients>>(),
        request.app_data::<web::Data<AuthConfig>>(),
    ) else {
        return Err(ApiError::internal());
    };
    let jwt = request
        .headers()
        .get(crate::smart::REQUESTER_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::unauthorised(
                IssueType::Login,
                "requester-missing",
                "A system client's request must say who is asking and why: a Kinfold-Requester JWT signed by the client's key.",
            )
        })?;
    let who = clients.requester(&client, jwt, &auth.audience)?;
    let caller = Caller {
        subject: format!("{} (through {client})", who.sub),
        organisation: who.org.parse().ok(),
        role: Some(who.role.clone()),
        purpose: Some(who.purpose.clone()),
        justification: who.justification.clone(),
        name: who.name.clone(),
        client: Some(client),
        scope: caller.scope,
    };
    Ok((caller, Some(who)))
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(authenticator) = request.app_data::<web::Data<Authenticator>>() else {
            tracing::error!("the gateway was built without an authenticator");
            return Box::pin(std::future::ready(Err(ApiError::internal())));
        };
        let result = match bearer(request) {
            Some(token) if token.len() > crate::smart::MAX_JWT_BYTES => {
                Err(ApiError::unauthorised(
                    IssueType::Security,
                    "token-too-large",
                    format!(
                        "The bearer token is over {} bytes.",
                        crate::smart::MAX_JWT_BYTES
                    ),
                ))
            }
            Some(token) => authenticator
                .check(token)
                .and_then(|caller| through_client(request, caller)),
            None => Err(ApiError::unauthorised(
                IssueType::Login,
                "token-missing",
                "This route needs a bearer token (Authorization: Bearer …).",
            )),
        };
        let clients = request
            .app_data::<web::Data<crate::smart::Clients>>()
            .cloned();
        let state = request
            .app_data::<web::Data<crate::state::GatewayState>>()
            .cloned();
        Box::pin(async move {
            let (caller, requester) = result?;
            if let Some(requester) = requester {
                // A requester is good for one request: its jti is remembered until it expires.
                let (Some(clients), Some(state)) = (clients, state) else {
                    return Err(ApiError::internal());
                };
                clients
                    .requester_first_use(&state.store, &requester)
                    .await?;
            }
            Ok(caller)
        })
    }
}
