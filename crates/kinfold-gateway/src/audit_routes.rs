//! The ledger's public, CT-style API (RFC 6962 section 4), and the audit views for privacy
//! officers and families.
//!
//! The `/ledger/v1/*` routes disclose no patient data (leaf inputs are sequence numbers, times
//! and hashes), so they are open to every agency's auditor. `AuditEvent` and
//! `$access-report` show who looked at whom: they need a token, and are themselves audited.

use std::collections::BTreeSet;

use actix_web::{HttpRequest, HttpResponse, web};
use kinfold_fhir::search::DateParam;
use kinfold_http::FhirResponse;
use kinfold_ledger::AuditRecord;
use kinfold_store::LedgerQuery;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::audit;
use crate::auth::Caller;
use crate::{GatewayError, GatewayState};

type State = web::Data<GatewayState>;

pub(crate) fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/AuditEvent", web::get().to(audit_events))
        .route("/Patient/{id}/$access-report", web::get().to(access_report));
}

#[derive(Debug, Deserialize)]
pub(crate) struct AuditQuery {
    patient: Option<String>,
    date: Option<String>,
    agent: Option<String>,
}

/// AuditEvents for privacy officers: who did what, filtered by patient, date and agent.
#[utoipa::path(get, path = "/AuditEvent", tag = "Audit",
    params(("patient" = Option<String>, Query, description = "Kinfold person id (or Patient/id)"),
           ("date" = Option<String>, Query, description = "FHIR date with optional prefix, on when the event was recorded"),
           ("agent" = Option<String>, Query, description = "The token subject who acted")),
    responses((status = 200, description = "searchset of AuditEvent (newest first, at most 1,000)", content_type = "application/fhir+json", body = serde_json::Value),
              (status = 401, description = "Missing or bad token", content_type = "application/fhir+json", body = serde_json::Value),
              (status = 503, description = "The ledger cannot record this access, so nothing is shown", content_type = "application/fhir+json", body = serde_json::Value)),
    security(("bearer" = [])))]
pub(crate) async fn audit_events(
    caller: Caller,
    state: State,
    request: HttpRequest,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, GatewayError> {
    let mut filter = LedgerQuery {
        limit: 1000,
        ..LedgerQuery::default()
    };
    filter.patient = query
        .patient
        .as_deref()
        .map(|p| p.strip_prefix("Patient/").unwrap_or(p).to_owned());
    filter.agent.clone_from(&query.agent);
    if let Some(date) = &query.date {
        let param = DateParam::parse("date", date).map_err(GatewayError::BadSearch)?;
        let c = param.constraint();
        if c.negate {
            return Err(GatewayError::BadSearch(
                kinfold_fhir::ParseError::SearchParameter {
                    name: "date".into(),
                    message: "ne is not supported here; use ge, le, gt, lt, sa, eb or eq".into(),
                },
            ));
        }
        filter.from = c.end_gt.or(c.start_ge);
        filter.until = c.start_lt.or(c.end_le);
    }
    let rows = state.store.ledger_search(&filter).await?;
    let events: Vec<Value> = rows.iter().filter_map(audit::to_audit_event).collect();
    state
        .record_access(audit::record(
            &caller,
            "search-type",
            "E",
            "AuditEvent",
            filter.patient.clone(),
            Vec::new(),
            &request,
        ))
        .await?;
    let entries: Vec<Value> = events
        .into_iter()
        .map(|e| json!({"fullUrl": format!("urn:kinfold:audit:{}", e["id"].as_str().unwrap_or_default()), "resource": e, "search": {"mode": "match"}}))
        .collect();
    let mut bundle = json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len()});
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    Ok(FhirResponse::ok(&bundle))
}

/// Who has looked at this child's records, in words a parent can read.
#[utoipa::path(get, path = "/Patient/{id}/$access-report", tag = "Audit",
    params(("id" = String, Path, description = "Kinfold person id")),
    responses((status = 200, description = "The access report: one plain sentence per access, newest first, overrides marked", body = serde_json::Value),
              (status = 401, description = "Missing or bad token", content_type = "application/fhir+json", body = serde_json::Value),
              (status = 404, description = "Unknown person", content_type = "application/fhir+json", body = serde_json::Value)),
    security(("bearer" = [])))]
pub(crate) async fn access_report(
    caller: Caller,
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, GatewayError> {
    let person = path.into_inner();
    state.nhs_number_of(&person).await?;
    let rows = state
        .store
        .ledger_search(&LedgerQuery {
            patient: Some(person.clone()),
            limit: 1000,
            ..LedgerQuery::default()
        })
        .await?;
    let accesses: Vec<Value> = rows
        .iter()
        .filter_map(|row| {
            serde_json::from_str::<AuditRecord>(&row.record)
                .ok()
                .map(|r| (row.seq, r))
        })
        .filter(|(_, r)| {
            r.event_type == "rest"
                && r.outcome == "0"
                && r.query != "AuditEvent"
                && r.query != "Patient/$access-report"
        })
        .map(|(seq, r)| describe(seq, &r))
        .collect();
    state
        .record_access(audit::record(
            &caller,
            "operation",
            "E",
            "Patient/$access-report",
            Some(person.clone()),
            Vec::new(),
            &request,
        ))
        .await?;
    let overrides = accesses.iter().filter(|a| a["override"] == true).count();
    Ok(HttpResponse::Ok().json(json!({
        "patient": person,
        "summary": match accesses.len() {
            0 => "Nobody has looked at these records through Kinfold.".to_owned(),
            1 if overrides == 1 => "Someone looked at these records through Kinfold once, using an override.".to_owned(),
            1 => "Someone looked at these records through Kinfold once.".to_owned(),
            n => format!("People looked at these records through Kinfold {n} times; {overrides} of those used an override."),
        },
        "accesses": accesses,
    })))
}

fn describe(seq: i64, record: &AuditRecord) -> Value {
    let agencies: BTreeSet<&str> = record
        .entities
        .iter()
        .filter_map(|e| e.agency.as_deref())
        .collect();
    let agencies: Vec<&str> = agencies
        .into_iter()
        .map(|a| {
            a.parse::<kinfold_fhir::Agency>()
                .map(|a| a.display_name())
                .unwrap_or(a)
        })
        .collect();
    let is_override = record.entities.iter().any(|e| e.disclosure == "override")
        || record.justification.is_some();
    let when = record
        .recorded
        .replace('T', " at ")
        .trim_end_matches('Z')
        .chars()
        .take(22)
        .collect::<String>();
    let who = match (&record.agent.role, &record.agent.organisation) {
        (Some(role), Some(org)) => format!("{} ({role}) from organisation {org}", record.agent.who),
        (Some(role), None) => format!("{} ({role})", record.agent.who),
        (None, Some(org)) => format!("{} from organisation {org}", record.agent.who),
        (None, None) => record.agent.who.clone(),
    };
    let what = match record.query.as_str() {
        "Patient/$everything" => format!("looked at {} records", record.entities.len()),
        "Patient?identifier" => "looked up who this child is".to_owned(),
        "Patient/{id}" => "looked at this child's details".to_owned(),
        other => format!("used {other}"),
    };
    let from = if agencies.is_empty() {
        String::new()
    } else {
        format!(" from {}", agencies.join(", "))
    };
    let purpose = record
        .purpose
        .as_deref()
        .map(|p| format!(" for {}", p.replace('-', " ")))
        .unwrap_or_default();
    let mut sentence = format!("On {when} (UTC), {who} {what}{from}{purpose}.");
    if is_override {
        sentence = format!(
            "OVERRIDE: {sentence} Reason given: {}",
            record.justification.as_deref().unwrap_or("none recorded")
        );
    }
    json!({
        "ledger_entry": seq,
        "when": record.recorded,
        "who": record.agent.who,
        "organisation": record.agent.organisation,
        "role": record.agent.role,
        "purpose": record.purpose,
        "agencies": agencies,
        "records": record.entities.len(),
        "override": is_override,
        "text": sentence,
    })
}
