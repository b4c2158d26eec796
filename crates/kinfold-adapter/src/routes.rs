//! The adapter's HTTP routes: FHIR read, search, `$everything`, and ingest.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use kinfold_fhir::search::{MAX_COUNT, SearchQuery};
use kinfold_fhir::{BundleType, Resource, ResourceType, capability_statement};
use kinfold_http::FhirResponse;
use kinfold_store::{SearchPage, StoredResource};
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::OpenApi;

use crate::ingest::{self, valid_id};
use crate::{AdapterError, AdapterState};

type State = web::Data<AdapterState>;
type Query = web::Query<Vec<(String, String)>>;

/// The adapter's OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Kinfold agency adapter",
        description = "One agency's FHIR R4 store, served to the Kinfold gateway. Every error is a FHIR OperationOutcome."
    ),
    paths(
        metadata,
        ingest_bundle,
        import_extract,
        search,
        read,
        vread,
        everything,
        kinfold_audit::http::get_sth,
        kinfold_audit::http::get_sth_consistency,
        kinfold_audit::http::get_proof_by_hash,
        kinfold_audit::http::get_entries,
        kinfold_audit::http::public_key
    )
)]
pub struct ApiDoc;

pub(crate) fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/metadata", web::get().to(metadata))
        .route("/", web::post().to(ingest_bundle))
        .route("/$import", web::post().to(import_extract))
        .route("/Patient/{id}/$everything", web::get().to(everything))
        .route("/{type}", web::get().to(search))
        .route("/{type}/{id}", web::get().to(read))
        .route("/{type}/{id}/_history/{vid}", web::get().to(vread));
}

/// What this adapter supports.
#[utoipa::path(get, path = "/metadata", tag = "FHIR",
    responses((status = 200, description = "CapabilityStatement", content_type = "application/fhir+json", body = serde_json::Value)))]
async fn metadata(state: State, request: HttpRequest) -> Result<HttpResponse, AdapterError> {
    kinfold_http::no_parameters(&request).map_err(AdapterError::Refused)?;
    Ok(FhirResponse::ok_text(state.capability.clone()))
}

/// This adapter's CapabilityStatement as JSON, built once at start.
pub(crate) fn capability(agency: kinfold_fhir::Agency, started: &str) -> String {
    let title = format!("Kinfold {} adapter", agency.display_name());
    let types: Vec<_> = ResourceType::ALL
        .iter()
        .copied()
        .filter(|t| {
            !matches!(
                t,
                ResourceType::Bundle
                    | ResourceType::OperationOutcome
                    | ResourceType::CapabilityStatement
            )
        })
        .collect();
    let statement = capability_statement(
        &title,
        "Stores one agency's records and serves them to the Kinfold gateway.",
        started,
        &types,
        &["read", "vread", "search-type"],
        &["everything"],
        &["transaction", "batch"],
    );
    Resource::from(statement).to_json()
}

/// Ingest a FHIR `transaction` (all or nothing) or `batch` Bundle.
#[utoipa::path(post, path = "/", tag = "Ingest",
    request_body(content = serde_json::Value, content_type = "application/fhir+json", description = "A Bundle of type transaction or batch; entries use POST Type or PUT Type/id. At most `max_body_bytes` (default 8 MiB) and `max_entries` (default 5,000) entries; every primitive value must be valid FHIR (date, dateTime, instant, code, id, uri, string)."),
    responses(
        (status = 200, description = "transaction-response or batch-response Bundle", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 400, description = "Malformed Bundle or entry, or an invalid primitive value (the OperationOutcome's expression names it); nothing stored", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 409, description = "A Patient claims an NHS number another Patient here already has; nothing stored", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 413, description = "Body or entry count over the limit; nothing stored", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 422, description = "An entry breaks a rule (e.g. NHS number check digit); nothing stored", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 503, description = "As many ingests as the adapter runs at once are running (Retry-After), or the ledger or database is unavailable; nothing stored", content_type = "application/fhir+json", body = serde_json::Value),
    ))]
async fn ingest_bundle(
    state: State,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AdapterError> {
    // The memory one adapter spends on ingest is bounded whoever is sending.
    let _slot = ingest_slot(&state).await?;
    let body = read_body(&request, payload, state.limits.max_body_bytes).await?;
    let planned = ingest::plan_bundle(&body, state.limits.bundle)?;
    let kind = planned.kind;
    let source = ingest::Source {
        kind: if kind == BundleType::Transaction {
            "transaction"
        } else {
            "batch"
        }
        .into(),
        door: "POST / (ingest)".into(),
        request_id: kinfold_http::request_id(&request),
        origin: ingest::Origin {
            message_id: planned.identifier,
            recorded: planned.timestamp,
            author: None,
            original: Some(ingest::Original {
                content_type: kinfold_fhir::FHIR_JSON.into(),
                bytes: body.to_vec(),
            }),
        },
    };
    drop(body);
    let applied = state
        .apply(ingest::plan_of(kind, planned.entries), &source)
        .await?;
    Ok(FhirResponse::ok(&Resource::from(ingest::response_bundle(
        kind, applied,
    ))))
}

/// Takes rows of the agency's extract (JSON Lines, `docs/feeds/`): each row stored whole or not
/// at all, the good rows in one commit.
#[utoipa::path(post, path = "/$import", tag = "Ingest",
    params(("first_line" = Option<usize>, Query, description = "The file line of the body's first line, so that errors name file lines (default 1)")),
    request_body(content = String, description = "JSON Lines: one extract row per line (at most 2,000 rows and 8 MiB)", content_type = "application/x-ndjson"),
    responses(
        (status = 200, description = "What became of each row: stored, unchanged, or rejected with line, field and reason", content_type = "application/json", body = ingest::extract::ImportSummary),
        (status = 400, description = "Not UTF-8, or more than 2,000 rows", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "This agency takes no extracts (A&E takes HL7 v2 over MLLP; the GP feed FHIR Bundles at POST /)", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 413, description = "Over 8 MiB", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 503, description = "Busy, or the ledger or database is unavailable; nothing stored", content_type = "application/fhir+json", body = serde_json::Value),
    ))]
async fn import_extract(
    state: State,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AdapterError> {
    kinfold_http::allow_parameters(&request, &["first_line"]).map_err(AdapterError::Refused)?;
    if !ingest::extract::takes_extracts(state.agency) {
        return Err(AdapterError::UnknownType("$import".into()));
    }
    let first_line = request
        .query_string()
        .split('&')
        .find_map(|p| p.strip_prefix("first_line="))
        .map(|v| {
            v.parse::<usize>().map_err(|_| {
                AdapterError::BadSearch(kinfold_fhir::ParseError::SearchParameter {
                    name: "first_line".into(),
                    message: format!("'{v}' is not a whole number"),
                })
            })
        })
        .transpose()?
        .unwrap_or(1);
    let _slot = ingest_slot(&state).await?;
    let body = read_body(&request, payload, state.limits.max_body_bytes).await?;
    let text = std::str::from_utf8(&body).map_err(|e| {
        AdapterError::BadBody(kinfold_fhir::ParseError::Json {
            message: format!("an extract is UTF-8 text: {e}"),
            line: 0,
            column: 0,
        })
    })?;
    let summary = state
        .import_rows(text, first_line, kinfold_http::request_id(&request))
        .await?;
    Ok(HttpResponse::Ok().json(summary))
}

/// One of the ingest slots: at most `max_concurrent_ingests` bodies are read and parsed at
/// once, whoever is sending. A sender waits a moment for a slot (its body stays unread in the
/// socket meanwhile), then is told to retry.
async fn ingest_slot(
    state: &AdapterState,
) -> Result<tokio::sync::SemaphorePermit<'_>, AdapterError> {
    let busy = || AdapterError::Busy {
        limit: state.limits.max_concurrent_ingests,
    };
    tokio::time::timeout(INGEST_WAIT, state.ingest_slots.acquire())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())
}

/// How long an ingest waits for a free slot before it is answered `503`.
const INGEST_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The request body, refused with `413` as soon as it is known to be over `limit` bytes (from
/// `Content-Length`, or while it is read).
async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, AdapterError> {
    use futures::StreamExt;
    let declared = request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(AdapterError::TooLarge { limit });
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            AdapterError::BadBody(kinfold_fhir::ParseError::Json {
                message: format!("the body could not be read: {e}"),
                line: 0,
                column: 0,
            })
        })?;
        if body.len() + chunk.len() > limit {
            return Err(AdapterError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Search one resource type.
#[utoipa::path(get, path = "/{type}", tag = "FHIR",
    params(
        ("type" = String, Path, description = "Resource type, e.g. Observation"),
        ("patient" = Option<String>, Query, description = "Patient/id"),
        ("code" = Option<String>, Query, description = "system|code; comma-separated values are ORed, a repeated parameter is ANDed (at most 32 of each)"),
        ("identifier" = Option<String>, Query, description = "system|value (lists and repeats as for code)"),
        ("date" = Option<String>, Query, description = "FHIR date with optional prefix (ge, le, gt, lt, eq, ne, sa, eb); repeat to AND"),
        ("_lastUpdated" = Option<String>, Query, description = "As date, on when the record was stored here"),
        ("_id" = Option<String>, Query, description = "Logical id"),
        ("_count" = Option<usize>, Query, description = "Page size (default 50, at most 1000)"),
        ("_offset" = Option<usize>, Query, description = "Where the page starts"),
    ),
    responses(
        (status = 200, description = "searchset Bundle with self and next links", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 400, description = "Unsupported, unreadable or empty parameter, a repeated _count or _offset, or more than 32 parameters or 32 values in one", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "This adapter does not store resources of that type", content_type = "application/fhir+json", body = serde_json::Value),
    ))]
async fn search(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    query: Query,
) -> Result<HttpResponse, AdapterError> {
    let resource_type = resource_type(&path)?;
    let pairs = query.into_inner();
    let parsed = SearchQuery::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(AdapterError::BadSearch)?;
    let page = state.store.search(resource_type, &parsed).await?;
    let base = kinfold_http::base_url(state.public_base_url.as_deref(), &request);
    searchset(
        &base,
        resource_type.as_str(),
        &pairs,
        parsed.count,
        parsed.offset,
        page,
    )
}

/// Read the current version of one resource.
#[utoipa::path(get, path = "/{type}/{id}", tag = "FHIR",
    params(("type" = String, Path, description = "Resource type"), ("id" = String, Path, description = "Logical id")),
    responses(
        (status = 200, description = "The resource", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 400, description = "A query parameter was given (none are taken)", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "Not known here", content_type = "application/fhir+json", body = serde_json::Value),
    ))]
async fn read(
    state: State,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AdapterError> {
    kinfold_http::no_parameters(&request).map_err(AdapterError::Refused)?;
    let (type_name, id) = path.into_inner();
    let resource_type = resource_type(&type_name)?;
    let found = if valid_id(&id) {
        state.store.read(resource_type, &id).await?
    } else {
        None
    };
    let stored = found.ok_or_else(|| AdapterError::NotFound(format!("{type_name}/{id}")))?;
    Ok(versioned(stored))
}

/// Read one version of a resource.
#[utoipa::path(get, path = "/{type}/{id}/_history/{vid}", tag = "FHIR",
    params(("type" = String, Path, description = "Resource type"), ("id" = String, Path, description = "Logical id"), ("vid" = i64, Path, description = "Version")),
    responses(
        (status = 200, description = "That version", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 400, description = "A query parameter was given (none are taken)", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "Not known here", content_type = "application/fhir+json", body = serde_json::Value),
    ))]
async fn vread(
    state: State,
    request: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, AdapterError> {
    kinfold_http::no_parameters(&request).map_err(AdapterError::Refused)?;
    let (type_name, id, version) = path.into_inner();
    let resource_type = resource_type(&type_name)?;
    let not_found = || AdapterError::NotFound(format!("{type_name}/{id}/_history/{version}"));
    let version: i64 = version.parse().map_err(|_| not_found())?;
    let stored = state
        .store
        .read_version(resource_type, &id, version)
        .await?
        .ok_or_else(not_found)?;
    Ok(versioned(stored))
}

/// Everything this agency holds about one patient.
#[utoipa::path(get, path = "/Patient/{id}/$everything", tag = "FHIR",
    params(
        ("id" = String, Path, description = "This adapter's Patient id"),
        ("_count" = Option<usize>, Query, description = "Page size (default 1000)"),
        ("_offset" = Option<usize>, Query, description = "Where the page starts"),
        ("_type" = Option<String>, Query, description = "Only these resource types (comma-separated; the Patient is always included)"),
    ),
    responses(
        (status = 200, description = "searchset Bundle: the Patient, then their records", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 400, description = "An unsupported, repeated or unreadable parameter", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "No such patient here", content_type = "application/fhir+json", body = serde_json::Value),
    ))]
async fn everything(
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    query: Query,
) -> Result<HttpResponse, AdapterError> {
    let id = path.into_inner();
    let pairs = query.into_inner();
    let mut count = MAX_COUNT;
    let mut offset = 0;
    let mut types: Vec<String> = Vec::new();
    for (n, (name, value)) in pairs.iter().enumerate() {
        if pairs[..n].iter().any(|(earlier, _)| earlier == name) {
            return Err(AdapterError::BadSearch(
                kinfold_fhir::ParseError::SearchParameter {
                    name: name.clone(),
                    message: "may be given only once".into(),
                },
            ));
        }
        let number = || {
            value.parse::<usize>().map_err(|_| {
                AdapterError::BadSearch(kinfold_fhir::ParseError::SearchParameter {
                    name: name.clone(),
                    message: format!("'{value}' is not a whole number"),
                })
            })
        };
        match name.as_str() {
            "_count" => count = number()?.min(MAX_COUNT),
            "_offset" => offset = number()?,
            "_type" => {
                for kind in value.split(',') {
                    let known = kind.trim().parse::<ResourceType>().map_err(|_| {
                        AdapterError::BadSearch(kinfold_fhir::ParseError::SearchParameter {
                            name: name.clone(),
                            message: format!("'{kind}' is not a resource type Kinfold keeps"),
                        })
                    })?;
                    types.push(known.as_str().to_owned());
                }
            }
            _ => {
                return Err(AdapterError::BadSearch(
                    kinfold_fhir::ParseError::SearchParameter {
                        name: name.clone(),
                        message: "is not supported by $everything".into(),
                    },
                ));
            }
        }
    }
    let not_found = || AdapterError::NotFound(format!("Patient/{id}"));
    if !valid_id(&id) {
        return Err(not_found());
    }
    // The Patient is its own first record: no rows at all means no such patient here.
    let page = state.store.everything(&id, &types, count, offset).await?;
    if page.total == 0 {
        return Err(not_found());
    }
    let base = kinfold_http::base_url(state.public_base_url.as_deref(), &request);
    searchset(
        &base,
        &format!("Patient/{id}/$everything"),
        &pairs,
        count,
        offset,
        page,
    )
}

fn resource_type(name: &str) -> Result<ResourceType, AdapterError> {
    name.parse()
        .map_err(|_| AdapterError::UnknownType(name.to_owned()))
}

fn versioned(stored: StoredResource) -> HttpResponse {
    let mut response = FhirResponse::ok_text(stored.json);
    if let Ok(etag) =
        actix_web::http::header::HeaderValue::from_str(&format!("W/\"{}\"", stored.version_id))
    {
        response
            .headers_mut()
            .insert(actix_web::http::header::ETAG, etag);
    }
    response
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SearchSet<'a> {
    resource_type: &'static str,
    id: String,
    meta: Meta,
    r#type: &'static str,
    total: u64,
    link: Vec<Link>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    entry: Vec<Entry<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    last_updated: String,
}

#[derive(Serialize)]
struct Link {
    relation: &'static str,
    url: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry<'a> {
    full_url: String,
    resource: &'a RawValue,
    search: EntrySearch,
}

#[derive(Serialize)]
struct EntrySearch {
    mode: &'static str,
}

/// A searchset Bundle written around stored JSON, without re-parsing it into types.
fn searchset(
    base: &str,
    path: &str,
    pairs: &[(String, String)],
    count: usize,
    offset: usize,
    page: SearchPage,
) -> Result<HttpResponse, AdapterError> {
    let link_to = |offset: usize| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in pairs
            .iter()
            .filter(|(n, _)| n != "_offset" && n != "_count")
        {
            query.append_pair(name, value);
        }
        query.append_pair("_count", &count.to_string());
        query.append_pair("_offset", &offset.to_string());
        format!("{base}/{path}?{}", query.finish())
    };
    let mut link = vec![Link {
        relation: "self",
        url: link_to(offset),
    }];
    let shown = u64::try_from(offset + page.items.len()).unwrap_or(u64::MAX);
    if shown < page.total && !page.items.is_empty() {
        link.push(Link {
            relation: "next",
            url: link_to(offset + page.items.len()),
        });
    }
    if offset > 0 {
        link.push(Link {
            relation: "previous",
            url: link_to(offset.saturating_sub(count.max(1))),
        });
    }
    let raws: Vec<&RawValue> = page
        .items
        .iter()
        .map(|item| serde_json::from_str::<&RawValue>(&item.json))
        .collect::<Result<_, _>>()
        .map_err(|e| {
            AdapterError::Store(kinfold_store::StoreError::Corrupt(format!(
                "stored JSON does not parse: {e}"
            )))
        })?;
    let entry = page
        .items
        .iter()
        .zip(raws)
        .map(|(item, resource)| Entry {
            full_url: format!("{base}/{}/{}", item.resource_type, item.id),
            resource,
            search: EntrySearch { mode: "match" },
        })
        .collect();
    let bundle = SearchSet {
        resource_type: "Bundle",
        id: uuid::Uuid::new_v4().to_string(),
        meta: Meta {
            last_updated: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        },
        r#type: "searchset",
        total: page.total,
        link,
        entry,
    };
    Ok(FhirResponse::with_status(StatusCode::OK, &bundle))
}
