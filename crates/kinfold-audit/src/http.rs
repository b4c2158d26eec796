//! The ledger's public API, in the shape of the Certificate Transparency log API (RFC 6962
//! section 4). Leaf inputs carry no patient data, so these routes are open to every agency's
//! auditor.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use kinfold_fhir::IssueType;
use kinfold_http::ApiError;
use kinfold_ledger::{AuditRecord, LeafInput, b64, from_b64};
use kinfold_store::Store;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Ledger;

/// What the ledger routes need: the running ledger and the store it writes to.
#[derive(Debug, Clone)]
pub struct LedgerApi {
    /// The running ledger.
    pub ledger: Ledger,
    /// Its store.
    pub store: Store,
}

type Api = web::Data<LedgerApi>;

/// Registers `/ledger/v1/*`. The app must hold a `web::Data<LedgerApi>`.
pub fn configure(config: &mut web::ServiceConfig) {
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
        .route("/ledger/v1/public-key", web::get().to(public_key));
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
pub async fn get_sth(api: Api, request: actix_web::HttpRequest) -> Result<HttpResponse, ApiError> {
    kinfold_http::no_parameters(&request)?;
    let head = api
        .ledger
        .latest()
        .ok_or_else(|| ApiError::unavailable("No tree head has been signed yet."))?;
    Ok(HttpResponse::Ok().json(head))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consistency {
    first: u64,
    second: u64,
}

/// A consistency proof between two tree sizes.
#[utoipa::path(get, path = "/ledger/v1/get-sth-consistency", tag = "Ledger",
    params(("first" = u64, Query, description = "The older tree size"), ("second" = u64, Query, description = "The newer tree size")),
    responses((status = 200, description = "consistency: base64 node hashes (RFC 6962 section 2.1.2)", body = serde_json::Value),
              (status = 400, description = "Sizes out of range", content_type = "application/fhir+json", body = serde_json::Value)))]
pub async fn get_sth_consistency(
    api: Api,
    query: web::Query<Consistency>,
) -> Result<HttpResponse, ApiError> {
    let proof = api
        .ledger
        .consistency(query.first, query.second)
        .ok_or_else(|| bad(format!("need 0 < first <= second <= {}", api.ledger.size())))?;
    Ok(HttpResponse::Ok()
        .json(json!({"consistency": proof.iter().map(|h| b64(h)).collect::<Vec<_>>()})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofByHash {
    hash: String,
    tree_size: u64,
}

/// An inclusion proof for a leaf hash in a tree of a given size.
#[utoipa::path(get, path = "/ledger/v1/get-proof-by-hash", tag = "Ledger",
    params(("hash" = String, Query, description = "The leaf hash, base64: SHA-256(0x00 ‖ leaf_input)"), ("tree_size" = u64, Query, description = "The tree size to prove against")),
    responses((status = 200, description = "leaf_index and audit_path (base64)", body = serde_json::Value),
              (status = 400, description = "Unknown hash or size out of range", content_type = "application/fhir+json", body = serde_json::Value)))]
pub async fn get_proof_by_hash(
    api: Api,
    query: web::Query<ProofByHash>,
) -> Result<HttpResponse, ApiError> {
    let leaf: [u8; 32] = from_b64(&query.hash)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| bad("hash must be a base64 SHA-256"))?;
    let (index, path) = api
        .ledger
        .proof_by_hash(&leaf, query.tree_size)
        .ok_or_else(|| bad("no such leaf in a tree of that size"))?;
    Ok(HttpResponse::Ok().json(
        json!({"leaf_index": index, "audit_path": path.iter().map(|h| b64(h)).collect::<Vec<_>>()}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entries {
    start: u64,
    end: u64,
}

/// Entries `start..=end` (at most 1,000): each `leaf_input` is the exact bytes hashed.
#[utoipa::path(get, path = "/ledger/v1/get-entries", tag = "Ledger",
    params(("start" = u64, Query, description = "First index"), ("end" = u64, Query, description = "Last index (inclusive)")),
    responses((status = 200, description = "entries: leaf_input (base64: 0x01 ‖ seq u64 ‖ time ms u64 ‖ SHA-256 of the canonical audit record) and extra_data (empty)", body = serde_json::Value),
              (status = 400, description = "Bad range", content_type = "application/fhir+json", body = serde_json::Value)))]
pub async fn get_entries(api: Api, query: web::Query<Entries>) -> Result<HttpResponse, ApiError> {
    if query.end < query.start {
        return Err(bad("end must not be before start"));
    }
    let end = query.end.min(query.start + 999);
    let rows = api
        .store
        .ledger_range(
            i64::try_from(query.start).unwrap_or(i64::MAX),
            i64::try_from(end + 1).unwrap_or(i64::MAX),
        )
        .await
        .map_err(|err| {
            tracing::error!(error = ?err, "ledger entries could not be read");
            ApiError::unavailable("The ledger's storage is not available.")
        })?;
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
pub async fn public_key(
    api: Api,
    request: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    kinfold_http::no_parameters(&request)?;
    Ok(HttpResponse::Ok().json(json!({
        "algorithm": "Ed25519",
        "public_key": b64(&api.ledger.public_key()),
        "signed_serialisation": "RFC 6962 section 3.5 TreeHeadSignature: 0x00 (v1) ‖ 0x01 (tree_hash) ‖ timestamp (u64, big-endian, ms) ‖ tree_size (u64, big-endian) ‖ sha256_root_hash (32 bytes)",
        "leaf_input": "0x01 ‖ seq (u64, big-endian) ‖ timestamp (u64, big-endian, ms) ‖ SHA-256 of the canonical audit record (32 bytes); leaf hash = SHA-256(0x00 ‖ leaf_input)"
    })))
}
