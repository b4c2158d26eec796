//! The ledger's public, CT-style API (RFC 6962 section 4), and the audit views for privacy
//! officers and families.
//!
//! The `/ledger/v1/*` routes disclose no patient data (leaf inputs are sequence numbers, times
//! and hashes), so they are open to every agency's auditor. `AuditEvent` and
//! `$access-report` show who looked at whom: they need a token, and are themselves audited.

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use kinfold_fhir::IssueType;
use kinfold_fhir::search::DateParam;
use kinfold_http::{ApiError, FhirResponse};
use kinfold_ledger::{AuditRecord, LeafInput, b64, from_b64};
use kinfold_store::LedgerQuery;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::audit;
use crate::auth::Caller;
use crate::{GatewayError, GatewayState};

type State = web::Data<GatewayState>;

pub(crate) fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/ledger/v1/get-sth", web::get().to(get_sth))
        .route(
            "/ledger/v1/get-sth-consistency",
            web::get().to(get_sth_consistency),
        )
        .route(
            "/ledger/v1/get-proof-by-hash",
            web::get().to(get_proof_by_hash),
        )
        .route("/ledger/v1/get-entries", web::get().to(get_entries))
        .route("/ledger/v1/public-key", web::get().to(public_key))
        .route("/AuditEvent", web::get().to(audit_events))
        .route("/Patient/{id}/$access-report", web::get().to(access_report));
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        IssueType::Invalid,
        "bad-ledger-request",
        message,
    )
}

/// The latest signed tree head.
#[utoipa::path(get, path = "/ledger/v1/get-sth", tag = "Ledger",
    responses((status = 200, description = "tree_size, timestamp (ms), sha256_root_hash and tree_head_signature (base64; Ed25519 over RFC 6962's TreeHeadSignature serialisation)", body = serde_json::Value)))]
pub(crate) async fn get_sth(state: State) -> Result<HttpResponse, ApiError> {
    let head = state
        .ledger
        .latest()
        .ok_or_else(|| ApiError::unavailable("No tree head has been signed yet."))?;
    Ok(HttpResponse::Ok().json(head))
}

#[derive(Debug, Deserialize)]
pub(crate) struct Consistency {
    first: u64,
    second: u64,
}

/// A consistency proof between two tree sizes.
#[utoipa::path(get, path = "/ledger/v1/get-sth-consistency", tag = "Ledger",
    params(("first" = u64, Query, description = "The older tree size"), ("second" = u64, Query, description = "The newer tree size")),
    responses((status = 200, description = "consistency: base64 node hashes (RFC 6962 section 2.1.2)", body = serde_json::Value),
              (status = 400, description = "Sizes out of range", body = serde_json::Value)))]
pub(crate) async fn get_sth_consistency(
    state: State,
    query: web::Query<Consistency>,
) -> Result<HttpResponse, ApiError> {
    let proof = state
        .ledger
        .consistency(query.first, query.second)
        .ok_or_else(|| {
            bad(format!(
                "need 0 < first <= second <= {}",
                state.ledger.size()
            ))
        })?;
    Ok(HttpResponse::Ok()
        .json(json!({"consistency": proof.iter().map(|h| b64(h)).collect::<Vec<_>>()})))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ProofByHash {
    hash: String,
    tree_size: u64,
}

/// An inclusion proof for a leaf hash in a tree of a given size.
#[utoipa::path(get, path = "/ledger/v1/get-proof-by-hash", tag = "Ledger",
    params(("hash" = String, Query, description = "The leaf hash, base64: SHA-256(0x00 ‖ leaf_input)"), ("tree_size" = u64, Query, description = "The tree size to prove against")),
    responses((status = 200, description = "leaf_index and audit_path (base64)", body = serde_json::Value),
              (status = 400, description = "Unknown hash or size out of range", body = serde_json::Value)))]
pub(crate) async fn get_proof_by_hash(
    state: State,
    query: web::Query<ProofByHash>,
) -> Result<HttpResponse, ApiError> {
    let leaf: [u8; 32] = from_b64(&query.hash)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| bad("hash must be a base64 SHA-256"))?;
    let (index, path) = state
        .ledger
        .proof_by_hash(&leaf, query.tree_size)
        .ok_or_else(|| bad("no such leaf in a tree of that size"))?;
    Ok(HttpResponse::Ok().json(
        json!({"leaf_index": index, "audit_path": path.iter().map(|h| b64(h)).collect::<Vec<_>>()}),
    ))
}

#[derive(Debug, Deserialize)]
pub(crate) struct Entries {
    start: u64,
    end: u64,
}

/// Entries `start..=end` (at most 1,000): each `leaf_input` is the exact bytes hashed.
#[utoipa::path(get, path = "/ledger/v1/get-entries", tag = "Ledger",
    params(("start" = u64, Query, description = "First index"), ("end" = u64, Query, description = "Last index (inclusive)")),
    responses((status = 200, description = "entries: leaf_input (base64: 0x01 ‖ seq u64 ‖ time ms u64 ‖ SHA-256 of the canonical audit record) and extra_data (empty)", body = serde_json::Value),
              (status = 400, description = "Bad range", body = serde_json::Value)))]
pub(crate) async fn get_entries(
    state: State,
    query: web::Query<Entries>,
) -> Result<HttpResponse, GatewayError> {
    if query.end < query.start {
        return Err(GatewayError::BadLedgerRequest(
            "end must not be before start".into(),
        ));
    }
    let end = query.end.min(query.start + 999);
    let rows = state
        .store
        .ledger_range(
            i64::try_from(query.start).unwrap_or(i64::MAX),
            i64::try_from(end + 1).unwrap_or(i64::MAX),
        )
        .await?;
    let entries: Vec<Value> = rows
        .iter()
        .map(|row| {
            let input = LeafInput {
                seq: u64::try_from(row.seq).unwrap_or(0),
                timestamp_ms: u64::try_from(row.recorded).unwrap_or(0),
                record_hash: AuditRecord::commitment(&row.record),
            };
            json!({"leaf_input": b64(&input.to_bytes()), "extra_data": ""})
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"entries": entries})))
}

/// The ledger's Ed25519 public key, and how tree heads are signed.
#[utoipa::path(get, path = "/ledger/v1/public-key", tag = "Ledger",
    responses((status = 200, description = "algorithm, public_key (base64, 32 bytes) and the signed serialisation", body = serde_json::Value)))]
pub(crate) async fn public_key(state: State) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "algorithm": "Ed25519",
        "public_key": b64(&state.ledger.public_key()),
        "signed_serialisation": "RFC 6962 section 3.5 TreeHeadSignature: 0x00 (v1) ‖ 0x01 (tree_hash) ‖ timestamp (u64, big-endian, ms) ‖ tree_size (u64, big-endian) ‖ sha256_root_hash (32 bytes)",
        "leaf_input": "0x01 ‖ seq (u64, big-endian) ‖ timestamp (u64, big-endian, ms) ‖ SHA-256 of the canonical audit record (32 bytes); leaf hash = SHA-256(0x00 ‖ leaf_input)"
    }))
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
        .ledger
        .record(vec![audit::record(
            &caller,
            "search-type",
            "E",
            "AuditEvent",
            filter.patient.clone(),
            Vec::new(),
            &request,
        )])
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
        .ledger
        .record(vec![audit::record(
            &caller,
            "operation",
            "E",
            "Patient/$access-report",
            Some(person.clone()),
            Vec::new(),
            &request,
        )])
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
