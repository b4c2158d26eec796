//! The gateway's HTTP routes.

use actix_web::{HttpRequest, HttpResponse, web};
use kinfold_fhir::{
    NHS_NUMBER_SYSTEM, NhsNumber, ParseError, Resource, ResourceType, capability_statement,
};
use kinfold_http::FhirResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::audit;
use crate::auth::Caller;
use crate::merge;
use crate::{GatewayError, GatewayState};

type State = web::Data<GatewayState>;

/// The gateway's OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Kinfold gateway",
        description = "The one door to every agency's child-health records. FHIR R4 JSON; every error is an OperationOutcome; every data route needs a bearer JWT."
    ),
    paths(
        metadata, health, patient_search, patient_read, patient_everything, binary_read,
        crate::audit_routes::audit_events, crate::audit_routes::access_report,
        crate::growth::growth, crate::growth::growth_chart, crate::events::receive,
        kinfold_audit::http::get_sth, kinfold_audit::http::get_sth_consistency,
        kinfold_audit::http::get_proof_by_hash, kinfold_audit::http::get_entries,
        kinfold_audit::http::public_key
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

pub(crate) fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/metadata", web::get().to(metadata))
        .route("/health", web::get().to(health))
        .route("/Patient", web::get().to(patient_search))
        .route("/Patient/{id}", web::get().to(patient_read))
        .route(
            "/Patient/{id}/$everything",
            web::get().to(patient_everything),
        )
        .route("/Binary/{id}", web::get().to(binary_read));
}

/// What the gateway supports. Open to all, as FHIR expects.
#[utoipa::path(get, path = "/metadata", tag = "FHIR",
    responses((status = 200, description = "CapabilityStatement", content_type = "application/fhir+json", body = serde_json::Value)))]
async fn metadata(
    state: State,
    request: HttpRequest,
) -> Result<HttpResponse, kinfold_http::ApiError> {
    kinfold_http::no_parameters(&request)?;
    Ok(FhirResponse::ok_text(state.capability.clone()))
}

/// The gateway's CapabilityStatement as JSON, built once at start.
pub(crate) fn capability(started: &str) -> String {
    Resource::from(capability_statement(
        "Kinfold gateway",
        "Answers consent-checked queries across the midwifery, A&E, GP, health-visiting and school-nursing records of a child and family.",
        started,
        &[ResourceType::Patient],
        &["read", "search-type"],
        &["everything"],
        &[],
    ))
    .to_json()
}

/// Liveness: the gateway answers and its database responds.
#[utoipa::path(get, path = "/health", tag = "Operations",
    responses((status = 200, description = "Healthy", body = serde_json::Value), (status = 503, description = "Database unavailable", body = serde_json::Value)))]
async fn health(state: State, request: HttpRequest) -> Result<HttpResponse, GatewayError> {
    kinfold_http::no_parameters(&request).map_err(GatewayError::Refused)?;
    state.store.ping().await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ok"})))
}

/// Find a person by NHS number across every agency.
#[utoipa::path(get, path = "/Patient", tag = "FHIR",
    params(("identifier" = String, Query, description = "https://fhir.nhs.uk/Id/nhs-number|NNNNNNNNNN")),
    responses(
        (status = 200, description = "searchset with the gateway's Patient (id is Kinfold's person id, with links to each agency's record) and an OperationOutcome for any agency that did not answer", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 400, description = "Missing, empty, repeated or invalid NHS number, or an unsupported parameter", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 401, description = "Missing, expired or untrusted token", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
async fn patient_search(
    caller: Caller,
    state: State,
    request: HttpRequest,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, GatewayError> {
    let nhs = nhs_number_from(&query)?;
    let answers = state.agencies.patients(&nhs).await;
    let failures: Vec<_> = answers
        .iter()
        .filter_map(|a| a.result.as_ref().err().map(|f| (a.agency, f.clone())))
        .collect();
    let anyone_knows = answers
        .iter()
        .any(|a| a.result.as_ref().is_ok_and(|r| !r.is_empty()));
    let mut records = Vec::new();
    let person_id = if anyone_knows {
        let (id, created) = state.store.link_person(&nhs).await?;
        if created {
            records.push(audit::identity_link(&caller.subject, &id, None));
        }
        Some(id)
    } else {
        None
    };
    let patient = person_id
        .as_deref()
        .and_then(|id| merge::patient_view(id, &nhs, &answers));
    let entities = patient.as_ref().map(disclosed_links).unwrap_or_default();
    records.push(audit::record(
        &caller,
        "search-type",
        "E",
        "Patient?identifier",
        person_id,
        entities,
        &request,
    ));
    state.ledger.record(records).await?;
    let self_url = format!(
        "{}{}",
        kinfold_http::base_url(state.public_base_url.as_deref(), &request),
        request.uri()
    );
    Ok(FhirResponse::ok(&merge::patient_search_bundle(
        &self_url, patient, failures,
    )))
}

/// Read the gateway's view of one person.
#[utoipa::path(get, path = "/Patient/{id}", tag = "FHIR",
    params(("id" = String, Path, description = "Kinfold person id, from a Patient search")),
    responses(
        (status = 200, description = "The gateway's Patient view; an agency that did not answer is named in a `missing-agency` extension (its code and why)", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 400, description = "A query parameter was given (none are taken)", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 401, description = "Missing, expired or untrusted token", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "Unknown person", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 504, description = "No agency answered in time", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
async fn patient_read(
    caller: Caller,
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, GatewayError> {
    kinfold_http::no_parameters(&request).map_err(GatewayError::Refused)?;
    let person_id = path.into_inner();
    let nhs = state.nhs_number_of(&person_id).await?;
    let answers = state.agencies.patients(&nhs).await;
    if answers.iter().all(|a| a.result.is_err()) {
        return Err(GatewayError::NoAgencyAnswered);
    }
    let mut patient =
        merge::patient_view(&person_id, &nhs, &answers).ok_or(GatewayError::UnknownPerson)?;
    merge::name_missing_agencies(&mut patient, &answers);
    state
        .record_access(audit::record(
            &caller,
            "read",
            "R",
            "Patient/{id}",
            Some(person_id),
            disclosed_links(&patient),
            &request,
        ))
        .await?;
    Ok(FhirResponse::ok(&patient))
}

/// Everything every agency holds about one person.
#[utoipa::path(get, path = "/Patient/{id}/$everything", tag = "FHIR",
    params(("id" = String, Path, description = "Kinfold person id, from a Patient search")),
    responses(
        (status = 200, description = "searchset: the Patient view, each agency's records (meta.source names the agency), a Provenance per agency, and an OperationOutcome for each agency that did not answer within its deadline or had more records than one answer carries", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 400, description = "A query parameter was given (none are taken)", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 401, description = "Missing, expired or untrusted token", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "Unknown person", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
async fn patient_everything(
    caller: Caller,
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, GatewayError> {
    kinfold_http::no_parameters(&request).map_err(GatewayError::Refused)?;
    let person_id = path.into_inner();
    let nhs = state.nhs_number_of(&person_id).await?;
    let answers = state.agencies.everything(&nhs).await;
    let self_url = format!(
        "{}{}",
        kinfold_http::base_url(state.public_base_url.as_deref(), &request),
        request.uri()
    );
    let bundle = merge::everything_bundle(&self_url, &person_id, &nhs, answers);
    // Fail closed: the disclosure is durably in the ledger before a byte is sent.
    state
        .record_access(audit::record(
            &caller,
            "operation",
            "E",
            "Patient/$everything",
            Some(person_id),
            disclosed_entries(&bundle),
            &request,
        ))
        .await?;
    Ok(FhirResponse::ok(&bundle))
}

/// The original of an ingest (a message, a file row, a Bundle), exactly as the agency received
/// it, from a Provenance's `entity.what` in `$everything`.
#[utoipa::path(get, path = "/Binary/{id}", tag = "FHIR",
    params(("id" = String, Path, description = "The Binary's id, as a Provenance names it (it starts with the agency: `ae.…`)")),
    responses(
        (status = 200, description = "Binary: contentType and the original, base64", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 401, description = "Missing, expired or untrusted token", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "No such original", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 504, description = "The agency did not answer", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
async fn binary_read(
    caller: Caller,
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, GatewayError> {
    kinfold_http::no_parameters(&request).map_err(GatewayError::Refused)?;
    let id = path.into_inner();
    let unknown =
        || GatewayError::Refused(kinfold_http::ApiError::not_found(format!("Binary/{id}")));
    // A FHIR id, nothing else, goes into the URL the gateway asks the agency at.
    if !kinfold_fhir::primitive::Primitive::Id.accepts(&id) {
        return Err(unknown());
    }
    let agency: kinfold_fhir::Agency = id
        .split_once('.')
        .and_then(|(agency, _)| agency.parse().ok())
        .ok_or_else(unknown)?;
    let agency_down = |_| GatewayError::NoAgencyAnswered;
    let binary = state
        .agencies
        .read(agency, &format!("Binary/{id}"))
        .await
        .map_err(agency_down)?
        .filter(|b| b["resourceType"] == "Binary")
        .ok_or_else(unknown)?;
    // Whose original it is, for the ledger: the person its security context names.
    let mut person = None;
    if let Some(patient) = binary["securityContext"]["reference"].as_str()
        && patient.starts_with("Patient/")
        && let Ok(Some(record)) = state.agencies.read(agency, patient).await
        && let Some(nhs) = record["identifier"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|i| {
                (i["system"] == kinfold_fhir::NHS_NUMBER_SYSTEM)
                    .then(|| i["value"].as_str()?.parse::<kinfold_fhir::NhsNumber>().ok())
                    .flatten()
            })
    {
        person = Some(state.store.person_id_for(&nhs).await?);
    }
    state
        .record_access(audit::record(
            &caller,
            "read",
            "R",
            "Binary/{id}",
            person,
            vec![audit::disclosed(
                &format!("Binary/{id}"),
                "Binary",
                Some(agency.as_str()),
            )],
            &request,
        ))
        .await?;
    Ok(FhirResponse::ok(&binary))
}

/// The agency records a Patient view links to.
fn disclosed_links(patient: &serde_json::Value) -> Vec<kinfold_ledger::AuditEntity> {
    patient["link"]
        .as_array()
        .map(|links| {
            links
                .iter()
                .filter_map(|l| {
                    let reference = l["other"]["reference"].as_str()?;
                    let display = l["other"]["display"].as_str().unwrap_or_default();
                    let agency = kinfold_fhir::Agency::ALL
                        .into_iter()
                        .find(|a| display == format!("{} record", a.display_name()))
                        .map(kinfold_fhir::Agency::as_str);
                    Some(audit::disclosed(reference, "Patient", agency))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every record a searchset discloses (matches and the Patient view; not outcomes).
fn disclosed_entries(bundle: &serde_json::Value) -> Vec<kinfold_ledger::AuditEntity> {
    bundle["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["search"]["mode"] == "match")
                .map(|e| {
                    let resource = &e["resource"];
                    let agency = resource["meta"]["source"]
                        .as_str()
                        .and_then(|s| s.strip_prefix("urn:kinfold:agency:"));
                    audit::disclosed(
                        e["fullUrl"].as_str().unwrap_or_default(),
                        resource["resourceType"].as_str().unwrap_or_default(),
                        agency,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The NHS number of a `Patient?identifier=` search; anything else is refused.
fn nhs_number_from(query: &[(String, String)]) -> Result<NhsNumber, GatewayError> {
    let mut nhs = None;
    for (name, value) in query {
        if value.is_empty() {
            return Err(GatewayError::BadSearch(ParseError::SearchParameter {
                name: name.clone(),
                message: "has no value".into(),
            }));
        }
        if nhs.is_some() && name == "identifier" {
            return Err(GatewayError::BadSearch(ParseError::SearchParameter {
                name: name.clone(),
                message: "may be given only once: the gateway finds one person by one NHS number"
                    .into(),
            }));
        }
        let bad = |message: &str| {
            GatewayError::BadSearch(ParseError::SearchParameter {
                name: name.clone(),
                message: message.to_owned(),
            })
        };
        match name.as_str() {
            "identifier" => {
                let number = value
                    .strip_prefix(NHS_NUMBER_SYSTEM)
                    .and_then(|rest| rest.strip_prefix('|'))
                    .ok_or_else(|| bad("the gateway finds people by NHS number: https://fhir.nhs.uk/Id/nhs-number|NNNNNNNNNN"))?;
                nhs = Some(
                    number
                        .parse::<NhsNumber>()
                        .map_err(GatewayError::BadNhsNumber)?,
                );
            }
            _ => {
                return Err(bad(
                    "is not supported by the gateway's Patient search (use identifier)",
                ));
            }
        }
    }
    nhs.ok_or_else(|| {
        GatewayError::BadSearch(ParseError::SearchParameter {
            name: "identifier".into(),
            message: "is required".into(),
        })
    })
}
