//! Consent decisions recorded through the gateway: a person's dissent (FHIR `Consent`,
//! `provision.type = deny`) for some agencies' records, some categories, or a period. The
//! disclosure pipeline reads a person's active dissents before deciding their records.
//!
//! The decision is the person's own: `performer` is the patient, who is 16 or over, or younger
//! and assessed as competent (the `competence-assessed` extension). The caller recording it
//! needs a relationship with them, and the recording is in the ledger.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use chrono::NaiveDate;
use kinfold_consent::Category;
use kinfold_fhir::{Agency, IssueType};
use kinfold_http::ApiError;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::answer::Disclosed;
use crate::audit::{self, Entry, Interaction};
use crate::auth::Caller;
use crate::error::GatewayError;
use crate::state::GatewayState;

/// The code system of record categories in `provision.code`.
pub const CATEGORY_SYSTEM: &str = "https://kinfold.example/fhir/CodeSystem/record-category";
/// The identifier system naming an agency in `provision.actor`.
pub const AGENCY_SYSTEM: &str = "urn:kinfold:agency";
/// The extension saying a young person under 16 was assessed as competent to decide.
pub const COMPETENCE_EXTENSION: &str =
    "https://kinfold.example/fhir/StructureDefinition/competence-assessed";
/// The age from which a young person decides about their own records.
const AGE_OF_DECISION: u32 = 16;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Withdrawal {
    reason: String,
}

/// Withdraws a recorded dissent (the person changed their mind): the Consent is kept, as
/// `inactive`, and from then on the records it covered are decided as before it.
#[utoipa::path(post, path = "/Consent/{id}/$withdraw", tag = "Consent",
    params(("id" = String, Path, description = "The Consent's id")),
    request_body(content = serde_json::Value, description = "`{\"reason\": \"…\"}` (10 to 1,000 characters)", content_type = "application/json"),
    responses(
        (status = 200, description = "The Consent, inactive", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 403, description = "No relationship with the person", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "No such Consent", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 422, description = "No reason, or already withdrawn", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn withdraw(
    caller: Caller,
    state: web::Data<GatewayState>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<Disclosed, GatewayError> {
    // Who and why first: a refusal by who the caller is does not depend on the Consent.
    crate::disclosure::requester(&caller, &state.disclosure)?;
    let withdrawal: Withdrawal = serde_json::from_slice(&body)
        .map_err(|e| invalid("body", "", format!("The body is not a withdrawal: {e}")))?;
    let reason = withdrawal.reason.trim().to_owned();
    if kinfold_consent::letters(&reason) < 10 || reason.chars().count() > 1000 {
        return Err(invalid(
            "reason",
            "reason",
            "Say why, in 10 to 1,000 characters.",
        ));
    }
    let id = path.into_inner();
    let unknown = || GatewayError::Refused(ApiError::not_found(format!("Consent/{id}")));
    let (person, stored) = state.store.consent(&id).await?.ok_or_else(unknown)?;
    // The caller needs a relationship with the person, as to record it; without one, the
    // Consent is answered as one that does not exist.
    match crate::pipeline::gather(
        &state,
        &caller,
        &request,
        &person,
        false,
        "Consent/$withdraw",
    )
    .await
    {
        Ok(_) => {}
        Err(GatewayError::NoRelationship | GatewayError::UnknownPerson) => return Err(unknown()),
        Err(other) => return Err(other),
    }
    let mut consent: Value = serde_json::from_str(&stored).map_err(|_| {
        GatewayError::Store(kinfold_store::StoreError::Corrupt(
            "a consent cannot be read back".into(),
        ))
    })?;
    if consent["status"] != "active" {
        return Err(invalid(
            "withdrawn",
            "Consent.status",
            "This decision is already withdrawn.",
        ));
    }
    consent["status"] = json!("inactive");
    consent["meta"]["lastUpdated"] =
        json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let receipt = state
        .record_access(
            Entry::by_caller(&caller, &request, Interaction::Update, "consent-withdrawn")
                .about(person.clone())
                .entities(vec![audit::disclosed(
                    &format!("Consent/{id}"),
                    "Consent",
                    None,
                )])
                .rule("kinfold.consent.withdrawn")
                .justification(reason)
                .done(),
        )
        .await?;
    state
        .store
        .consent_put(&id, &person, &consent.to_string())
        .await?;
    Ok(Disclosed::fhir(receipt, &consent))
}

fn invalid(code: &str, at: &str, message: impl Into<String>) -> GatewayError {
    GatewayError::Refused(
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            IssueType::Invalid,
            code,
            message.into(),
        )
        .at(at),
    )
}

fn date(value: &Value, at: &str) -> Result<Option<NaiveDate>, GatewayError> {
    match value.as_str() {
        None if value.is_null() => Ok(None),
        Some(text) => NaiveDate::parse_from_str(text.get(..10).unwrap_or(text), "%Y-%m-%d")
            .map(Some)
            .map_err(|_| invalid("date", at, "a date, YYYY-MM-DD")),
        None => Err(invalid("date", at, "a date, YYYY-MM-DD")),
    }
}

/// Checks a Consent as sent, and the person it is about.
fn check(consent: &Value) -> Result<String, GatewayError> {
    if consent["resourceType"] != "Consent" {
        return Err(invalid(
            "not-consent",
            "resourceType",
            "The body is a FHIR Consent.",
        ));
    }
    if consent["status"] != "active" {
        return Err(invalid(
            "status",
            "Consent.status",
            "A decision is recorded as active.",
        ));
    }
    let person = consent["patient"]["reference"]
        .as_str()
        .and_then(|r| r.strip_prefix("Patient/"))
        .ok_or_else(|| {
            invalid(
                "patient",
                "Consent.patient",
                "Consent.patient is Patient/{Kinfold person id}.",
            )
        })?
        .to_owned();
    let provision = &consent["provision"];
    if provision["type"] != "deny" {
        return Err(invalid(
            "provision-type",
            "Consent.provision.type",
            "Kinfold records dissent (deny): permitting is what the relationship rules already do.",
        ));
    }
    for (n, actor) in provision["actor"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let agency = &actor["reference"]["identifier"];
        if agency["system"] != AGENCY_SYSTEM
            || agency["value"]
                .as_str()
                .and_then(|a| a.parse::<Agency>().ok())
                .is_none()
        {
            return Err(invalid(
                "actor",
                &format!("Consent.provision.actor[{n}]"),
                format!(
                    "an agency: reference.identifier {{system {AGENCY_SYSTEM}, value midwifery|ae|gp|health-visiting|school-nursing}}"
                ),
            ));
        }
    }
    for (n, code) in provision["code"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let known = code["coding"].as_array().is_some_and(|c| {
            !c.is_empty()
                && c.iter().all(|c| {
                    c["system"] == CATEGORY_SYSTEM
                        && c["code"].as_str().and_then(Category::parse).is_some()
                })
        });
        if !known {
            return Err(invalid(
                "code",
                &format!("Consent.provision.code[{n}]"),
                format!("a record category in {CATEGORY_SYSTEM} (docs/consent.md)"),
            ));
        }
    }
    let from = date(
        &provision["period"]["start"],
        "Consent.provision.period.start",
    )?;
    let until = date(&provision["period"]["end"], "Consent.provision.period.end")?;
    if let (Some(from), Some(until)) = (from, until)
        && until < from
    {
        return Err(invalid(
            "period",
            "Consent.provision.period",
            "The period ends before it starts.",
        ));
    }
    let performer = consent["performer"][0]["reference"].as_str();
    if performer != Some(&format!("Patient/{person}")) {
        return Err(invalid(
            "performer",
            "Consent.performer",
            "The decision is the person's own: performer is the same Patient.",
        ));
    }
    Ok(person)
}

/// Records a person's dissent.
#[utoipa::path(post, path = "/Consent", tag = "Consent",
    request_body(content = serde_json::Value, description = "FHIR Consent: status active, patient and performer `Patient/{person}`, provision.type deny, optional provision.actor (agencies: reference.identifier system urn:kinfold:agency), provision.code (categories in https://kinfold.example/fhir/CodeSystem/record-category) and provision.period; under 16, the extension competence-assessed = true", content_type = "application/fhir+json"),
    responses(
        (status = 201, description = "The Consent as kept (its id assigned); from now on the person's records it covers are withheld (`consent.dissent.{id}`)", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 403, description = "No relationship with the person, or no role, organisation and purpose", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "Unknown person", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 422, description = "Not a dissent Kinfold can keep (what and where in the OperationOutcome), or a young person under 16 not assessed as competent", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn record(
    caller: Caller,
    state: web::Data<GatewayState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<Disclosed, GatewayError> {
    crate::disclosure::requester(&caller, &state.disclosure)?;
    let mut consent: Value = serde_json::from_slice(&body)
        .map_err(|e| invalid("json", "", format!("The body is not JSON: {e}")))?;
    let asked = check(&consent)?;
    let gathered =
        crate::pipeline::gather(&state, &caller, &request, &asked, false, "Consent").await?;
    let part = &gathered.parts[0];
    // The person's age, from their records as the index holds them.
    let born = state
        .identities
        .read(&state.store, &state.ledger, |inner| {
            let person = inner.current(&part.id.parse().ok()?)?;
            inner
                .locate(&person)
                .iter()
                .find_map(|k| inner.records.get(k)?.demographics.birth_date.clone())
        })
        .await?;
    let today = chrono::Utc::now().date_naive();
    let age = born
        .as_deref()
        .and_then(|b| NaiveDate::parse_from_str(b, "%Y-%m-%d").ok())
        .and_then(|b| today.years_since(b));
    let competent = consent["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["url"] == COMPETENCE_EXTENSION && e["valueBoolean"] == true);
    if !competent && age.is_none_or(|a| a < AGE_OF_DECISION) {
        return Err(invalid(
            "not-of-age",
            "Consent.performer",
            "A young person under 16 decides about their own records only when assessed as competent (extension competence-assessed = true).",
        ));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    consent["id"] = json!(id);
    consent["patient"] = json!({"reference": format!("Patient/{}", part.id)});
    consent["performer"] = json!([{"reference": format!("Patient/{}", part.id)}]);
    consent["meta"] = json!({"lastUpdated": now, "source": "urn:kinfold:gateway"});
    if consent["dateTime"].is_null() {
        consent["dateTime"] = json!(now);
    }
    let receipt = state
        .record_access(
            Entry::by_caller(&caller, &request, Interaction::Create, "consent-recorded")
                .about(part.id.clone())
                .entities(vec![audit::disclosed(
                    &format!("Consent/{id}"),
                    "Consent",
                    None,
                )])
                .rule("kinfold.consent.recorded")
                .done(),
        )
        .await?;
    state
        .store
        .consent_put(&id, &part.id, &consent.to_string())
        .await?;
    Ok(Disclosed::fhir_created(
        receipt,
        &format!("Consent/{id}"),
        &consent,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsentQuery {
    patient: String,
}

/// A person's recorded consent decisions.
#[utoipa::path(get, path = "/Consent", tag = "Consent",
    params(("patient" = String, Query, description = "Kinfold person id")),
    responses(
        (status = 200, description = "searchset of the person's Consent decisions", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 403, description = "No relationship with the person", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn search(
    caller: Caller,
    state: web::Data<GatewayState>,
    request: HttpRequest,
    query: web::Query<ConsentQuery>,
) -> Result<Disclosed, GatewayError> {
    let asked = query.patient.trim_start_matches("Patient/").to_owned();
    let gathered =
        crate::pipeline::gather(&state, &caller, &request, &asked, false, "Consent?patient")
            .await?;
    let person = gathered.parts[0].id.clone();
    let consents: Vec<Value> = state
        .store
        .consents_of(&person)
        .await?
        .iter()
        .filter_map(|b| serde_json::from_str(b).ok())
        .collect();
    let receipt = state
        .record_access(
            Entry::by_caller(&caller, &request, Interaction::Search, "Consent?patient")
                .about(person)
                .entities(
                    consents
                        .iter()
                        .map(|c| {
                            audit::disclosed(
                                &format!("Consent/{}", c["id"].as_str().unwrap_or_default()),
                                "Consent",
                                None,
                            )
                        })
                        .collect(),
                )
                .rule(gathered.relationship.rule)
                .done(),
        )
        .await?;
    Ok(Disclosed::fhir(
        receipt,
        &crate::merge::own_searchset("consent", &consents),
    ))
}
