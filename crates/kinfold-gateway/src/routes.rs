//! The gateway's HTTP routes.

use actix_web::{HttpRequest, HttpResponse, web};
use kinfold_fhir::{
    NHS_NUMBER_SYSTEM, NhsNumber, ParseError, Resource, ResourceType, capability_statement,
};
use kinfold_http::FhirResponse;

use crate::answer::Disclosed;
use crate::audit::{self, Entry, Interaction};
use crate::auth::Caller;
use crate::error::GatewayError;
use crate::merge;
use crate::state::GatewayState;

type State = web::Data<GatewayState>;

/// What the gateway supports. Open to all, as FHIR expects.
#[utoipa::path(get, path = "/metadata", tag = "FHIR",
    responses((status = 200, description = "CapabilityStatement", content_type = "application/fhir+json", body = serde_json::Value)))]
pub(crate) async fn metadata(
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
pub(crate) async fn health(
    state: State,
    request: HttpRequest,
) -> Result<HttpResponse, GatewayError> {
    kinfold_http::no_parameters(&request).map_err(GatewayError::Refused)?;
    state.store.ping().await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ok"})))
}

/// Find a person by NHS number across every agency, or by name and date of birth through
/// the person index.
#[utoipa::path(get, path = "/Patient", tag = "FHIR",
    params(("identifier" = Option<String>, Query, description = "https://fhir.nhs.uk/Id/nhs-number|NNNNNNNNNN"),
        ("name" = Option<String>, Query, description = "A name as written (\"Ola Wójcik\": the last word is the family name); with birthdate, for callers without an NHS number"),
        ("family" = Option<String>, Query, description = "Family name (instead of name)"),
        ("given" = Option<String>, Query, description = "Given name (with family)"),
        ("birthdate" = Option<String>, Query, description = "Date of birth, YYYY-MM-DD: required with a name")),
    responses(
        (status = 200, description = "searchset. By NHS number: the gateway's Patient (id is Kinfold's person id, with links to each agency's record) and an OperationOutcome for any agency that did not answer. By name: up to 10 people the index would link to that name and date (folded names, nicknames, a typo or a day/month transposition tolerated; never a person whose given name differs), best first, each with `search.score` (the match score over 40, at most 1)", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 400, description = "Missing, empty, repeated or invalid NHS number, a name without a date of birth, or an unsupported parameter", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 401, description = "Missing, expired or untrusted token", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn patient_search(
    caller: Caller,
    state: State,
    request: HttpRequest,
    query: web::Query<Vec<(String, String)>>,
) -> Result<Disclosed, GatewayError> {
    let self_url = format!(
        "{}{}",
        kinfold_http::base_url(state.public_base_url.as_deref(), &request),
        request.uri()
    );
    let started = kinfold_http::request_started(&request).unwrap_or_else(std::time::Instant::now);
    let nhs = match patient_query(&query)? {
        PatientQuery::Nhs(nhs) => nhs,
        PatientQuery::Demographics(identity) => {
            return search_by_demographics(caller, state, request, identity, &self_url, started)
                .await;
        }
    };
    let known = state
        .identities
        .read(&state.store, &state.ledger, |inner| {
            inner.index.person_with_nhs(nhs.as_str()).cloned()
        })
        .await?;
    let mut records = Vec::new();
    let (person_id, answers) = match known {
        // The index knows them: the disclosure pipeline below asks for every record it holds.
        Some(person) => (Some(person.to_string()), Vec::new()),
        None => {
            let answers = state.agencies.patients(&nhs).await;
            let anyone_knows = answers
                .iter()
                .any(|a| a.result.as_ref().is_ok_and(|r| !r.is_empty()));
            let person_id = if anyone_knows {
                let (id, created) = state.store.link_person(&nhs).await?;
                if created {
                    records.push(audit::identity_link(
                        &caller.subject,
                        &id,
                        kinfold_http::request_id(&request),
                    ));
                }
                Some(id)
            } else {
                None
            };
            (person_id, answers)
        }
    };
    // Through the disclosure pipeline: a person the caller has no relationship with is
    // answered exactly like a number no agency knows (the attempt is recorded), so a search
    // cannot probe who is known.
    let mut rule = None;
    let (person_id, answers) = match person_id {
        Some(id) => {
            match crate::pipeline::gather(
                &state,
                &caller,
                &request,
                &id,
                false,
                "Patient?identifier",
            )
            .await
            {
                Ok(mut gathered) => {
                    rule = Some(gathered.relationship.rule.to_owned());
                    let part = gathered.parts.remove(0);
                    (Some(part.id), part.screened.answers)
                }
                Err(GatewayError::NoRelationship) => {
                    // Answered as a number nobody knows: no one found.
                    records.push(
                        Entry::by_caller(
                            &caller,
                            &request,
                            Interaction::Search,
                            "Patient?identifier",
                        )
                        .refused("relationship.none")
                        .done(),
                    );
                    let receipt = state.record_all(records).await?;
                    state.pace.hold("Patient?identifier", started).await;
                    let failures = answers
                        .iter()
                        .filter_map(|a| a.result.as_ref().err().map(|f| (a.agency, f.clone())))
                        .collect();
                    let mut bundle = merge::patient_search_bundle(&self_url, None, failures);
                    say_behind(&state, &mut bundle).await?;
                    return Ok(Disclosed::fhir(receipt, &bundle));
                }
                Err(other) => return Err(other),
            }
        }
        None => {
            // Nobody to decide about, but still only for a caller who says who and why; as
            // long as a refusal takes.
            crate::disclosure::requester(&caller, &state.disclosure)?;
            state.pace.hold("Patient?identifier", started).await;
            (None, answers)
        }
    };
    let failures: Vec<_> = answers
        .iter()
        .filter_map(|a| a.result.as_ref().err().map(|f| (a.agency, f.clone())))
        .collect();
    let patient = person_id
        .as_deref()
        .and_then(|id| merge::patient_view(id, Some(&nhs), &answers));
    let entities = patient.as_ref().map(disclosed_links).unwrap_or_default();
    let mut entry = Entry::by_caller(&caller, &request, Interaction::Search, "Patient?identifier")
        .about_maybe(person_id)
        .entities(entities);
    if let Some(rule) = &rule {
        entry = entry.rule(rule);
    }
    records.push(entry.done());
    let receipt = state.record_all(records).await?;
    let mut bundle = merge::patient_search_bundle(&self_url, patient, failures);
    say_behind(&state, &mut bundle).await?;
    Ok(Disclosed::fhir(receipt, &bundle))
}

/// Says, in a searchset, how many received events the person index has still to read (the
/// answer did not wait for them), when there are any.
async fn say_behind(
    state: &GatewayState,
    bundle: &mut serde_json::Value,
) -> Result<(), GatewayError> {
    let behind = state.identities.behind(&state.store).await?;
    if behind > 0 {
        merge::add_outcome_entry(bundle, merge::index_behind(behind));
    }
    Ok(())
}

/// The most people a search by name answers with.
const MAX_NAME_MATCHES: usize = 10;

/// `Patient?name=&birthdate=`: the people the index finds, each as a Patient built from the
/// agency records it holds (no agency is asked: the index is the answer).
async fn search_by_demographics(
    caller: Caller,
    state: State,
    request: HttpRequest,
    identity: kinfold_identity::Identity,
    self_url: &str,
    started: std::time::Instant,
) -> Result<Disclosed, GatewayError> {
    let found: Vec<(String, f64, serde_json::Value)> = state
        .identities
        .read(&state.store, &state.ledger, |inner| {
            // Only people the index would link: a search discloses no near-misses (a twin
            // whose given name differs is not the child asked about).
            let link = inner.index.thresholds().link;
            inner
                .index
                .candidates(&identity)
                .into_iter()
                .filter(|c| c.comparison.score >= link && c.hold.is_none())
                .filter(|c| {
                    inner
                        .persons
                        .get(&c.person)
                        .is_some_and(|p| p.merged_into.is_none())
                })
                .take(MAX_NAME_MATCHES)
                .map(|c| {
                    let patient = crate::identity_routes::patient_from_index(inner, &c.person);
                    (c.person.to_string(), c.comparison.score, patient)
                })
                .collect()
        })
        .await?;
    // Only people the caller has a relationship with (each other attempt is recorded as
    // refused, and the person left out as if the index did not know them).
    crate::disclosure::requester(&caller, &state.disclosure)?;
    let mut related = Vec::with_capacity(found.len());
    for (person, score, patient) in found {
        match crate::pipeline::gather(
            &state,
            &caller,
            &request,
            &person,
            false,
            "Patient?name&birthdate",
        )
        .await
        {
            Ok(_) => related.push((person, score, patient)),
            Err(GatewayError::NoRelationship) => {}
            Err(other) => return Err(other),
        }
    }
    let found = related;
    if found.is_empty() {
        // No one, known or not: as long as a refusal takes.
        state.pace.hold("Patient?name&birthdate", started).await;
    }
    let search = || {
        Entry::by_caller(
            &caller,
            &request,
            Interaction::Search,
            "Patient?name&birthdate",
        )
    };
    let mut records: Vec<_> = found
        .iter()
        .map(|(person, _, patient)| {
            search()
                .about(person.clone())
                .entities(disclosed_links(patient))
                .done()
        })
        .collect();
    if records.is_empty() {
        records.push(search().done());
    }
    let receipt = state.record_all(records).await?;
    let entries: Vec<serde_json::Value> = found
        .into_iter()
        .map(|(person, score, patient)| {
            serde_json::json!({
                "fullUrl": format!("urn:kinfold:person:{person}"),
                "resource": patient,
                "search": {"mode": "match", "score": ((score / 40.0).min(1.0) * 100.0).round() / 100.0}
            })
        })
        .collect();
    let mut bundle = serde_json::json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "type": "searchset",
        "total": entries.len(),
        "link": [{"relation": "self", "url": self_url}],
    });
    if !entries.is_empty() {
        bundle["entry"] = serde_json::Value::Array(entries);
    }
    say_behind(&state, &mut bundle).await?;
    Ok(Disclosed::fhir(receipt, &bundle))
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
pub(crate) async fn patient_read(
    caller: Caller,
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<Disclosed, GatewayError> {
    kinfold_http::no_parameters(&request).map_err(GatewayError::Refused)?;
    // Through the disclosure pipeline: only a caller with a relationship to the child reads
    // who the child is and where their records are.
    let gathered = crate::pipeline::gather(
        &state,
        &caller,
        &request,
        &path.into_inner(),
        false,
        "Patient/{id}",
    )
    .await?;
    let part = &gathered.parts[0];
    let answers = &part.screened.answers;
    if answers.iter().all(|a| a.result.is_err()) {
        return Err(GatewayError::NoAgencyAnswered);
    }
    let mut patient = merge::patient_view(&part.id, part.nhs.as_ref(), answers)
        .ok_or(GatewayError::UnknownPerson)?;
    merge::name_missing_agencies(&mut patient, answers);
    let receipt = state
        .record_access(
            Entry::by_caller(&caller, &request, Interaction::Read, "Patient/{id}")
                .about(part.id.clone())
                .entities(disclosed_links(&patient))
                .rule(gathered.relationship.rule)
                .done(),
        )
        .await?;
    Ok(Disclosed::fhir(receipt, &patient))
}

/// Everything every agency holds about one person.
#[utoipa::path(get, path = "/Patient/{id}/$everything", tag = "FHIR",
    params(("id" = String, Path, description = "Kinfold person id, from a Patient search"),
        ("family" = Option<bool>, Query, description = "`true`: the whole family's records (as `$family` lists them), each entry's `family-member` extension naming whose it is and the relationship")),
    responses(
        (status = 200, description = "searchset: the Patient view, each agency's records (meta.source names the agency), a Provenance per agency, and an OperationOutcome for each agency that did not answer within its deadline, had more records than one answer carries, or could not be asked (no record known there and no NHS number)", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 400, description = "A query parameter other than family=true|false", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 401, description = "Missing, expired or untrusted token", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 403, description = "The token lacks role, organisation or purpose of use (`who-and-why`), or the records show no legitimate relationship between the caller and the child (`no-relationship`, recorded); nothing is disclosed", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "Unknown person", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn patient_everything(
    caller: Caller,
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> Result<Disclosed, GatewayError> {
    let family = match query.as_slice() {
        [] => false,
        [(name, value)] if name == "family" && (value == "true" || value == "false") => {
            value == "true"
        }
        _ => {
            return Err(GatewayError::BadSearch(ParseError::SearchParameter {
                name: query.first().map(|(n, _)| n.clone()).unwrap_or_default(),
                message: "is not supported here: $everything takes only family=true|false".into(),
            }));
        }
    };
    everything(caller, state, request, path.into_inner(), family).await
}

/// The whole family's records in one Bundle (the family of the person the Group is about).
#[utoipa::path(get, path = "/Group/{id}/$everything", tag = "FHIR",
    params(("id" = String, Path, description = "A family Group's id, as `Patient/{id}/$family` gives it (the child's person id)")),
    responses(
        (status = 200, description = "searchset: every family member's records, as `Patient/{id}/$everything?family=true`", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 401, description = "Missing, expired or untrusted token", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 403, description = "The token lacks role, organisation or purpose of use (`who-and-why`), or the records show no legitimate relationship between the caller and the child (`no-relationship`, recorded); nothing is disclosed", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "Unknown person", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn group_everything(
    caller: Caller,
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<Disclosed, GatewayError> {
    kinfold_http::no_parameters(&request).map_err(GatewayError::Refused)?;
    everything(caller, state, request, path.into_inner(), true).await
}

async fn everything(
    caller: Caller,
    state: State,
    request: HttpRequest,
    asked: String,
    family: bool,
) -> Result<Disclosed, GatewayError> {
    let query = if family {
        "Patient/$everything?family=true"
    } else {
        "Patient/$everything"
    };
    let mut gathered =
        crate::pipeline::gather(&state, &caller, &request, &asked, family, query).await?;
    let withheld = gathered.withheld();
    let parts = gathered
        .parts
        .iter_mut()
        .map(|part| merge::Part {
            person_id: &part.id,
            nhs: part.nhs.as_ref(),
            kin: part.kin,
            answers: std::mem::take(&mut part.screened.answers),
        })
        .collect();
    let self_url = format!(
        "{}{}",
        kinfold_http::base_url(state.public_base_url.as_deref(), &request),
        request.uri()
    );
    let mut bundle = merge::everything_bundle(&self_url, parts, family);
    for tally in &withheld {
        merge::add_outcome(&mut bundle, merge::suppressed(tally));
    }
    if gathered.left_out > 0 {
        merge::add_outcome(&mut bundle, merge::family_cut_short(gathered.left_out));
    }
    say_behind(&state, &mut bundle).await?;
    // An override goes on the privacy officers' queue of each organisation whose records it
    // revealed, before anything is answered.
    let tasks = gathered.override_reviews(&state, &caller).await?;
    // Fail closed: the disclosure is durably in the ledger before a byte is sent, one entry
    // per person whose records it carries (so each is in that person's access report).
    let records = gathered.audit_records(&caller, &request, query, &tasks, |person| {
        disclosed_entries(&bundle, family.then_some(person))
    });
    let receipt = state.record_all(records).await?;
    Ok(Disclosed::fhir(receipt, &bundle))
}

/// The original of an ingest (a message, a file row, a Bundle), exactly as the agency received
/// it, from a Provenance's `entity.what` in `$everything`.
#[utoipa::path(get, path = "/Binary/{id}", tag = "FHIR",
    params(("id" = String, Path, description = "The Binary's id, as a Provenance names it (it starts with the agency: `ae.…`)")),
    responses(
        (status = 200, description = "Binary: contentType and the original, base64", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 401, description = "Missing, expired or untrusted token", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 403, description = "No role, organisation and purpose; no relationship with the person; the records it made are withheld from the caller (`withheld`); or an original about several people (`original-of-several`)", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "No such original", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 504, description = "The agency did not answer", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn binary_read(
    caller: Caller,
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<Disclosed, GatewayError> {
    kinfold_http::no_parameters(&request).map_err(GatewayError::Refused)?;
    // Who and why first: a refusal by who the caller is does not depend on the original.
    crate::disclosure::requester(&caller, &state.disclosure)?;
    let id = path.into_inner();
    // Every refusal below answers exactly as an original that does not exist.
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
    // Whose original it is, for the ledger: the person its security context names, as the
    // person index knows that agency record (no link is made here).
    let mut person = None;
    if let Some(patient) = binary["securityContext"]["reference"].as_str()
        && patient.starts_with("Patient/")
    {
        let key = kinfold_identity::RecordKey {
            agency,
            reference: patient.to_owned(),
        };
        person = state
            .identities
            .read(&state.store, &state.ledger, |inner| {
                inner
                    .index
                    .person_of(&key)
                    .and_then(|p| inner.current(p))
                    .map(|p| p.to_string())
            })
            .await?;
    }
    // Through the disclosure pipeline: the original is shown only with the records it made,
    // to a caller with a relationship to the person. An original about several people (a
    // birth notification), or whose person the index does not know yet, is shown to no one
    // through the gateway: the records it made are.
    let Some(person) = person else {
        state
            .record_access(
                Entry::by_caller(&caller, &request, Interaction::Read, "Binary/{id}")
                    .refused("binary.original-of-several")
                    .done(),
            )
            .await?;
        return Err(unknown());
    };
    let gathered =
        match crate::pipeline::gather(&state, &caller, &request, &person, false, "Binary/{id}")
            .await
        {
            Ok(gathered) => gathered,
            Err(GatewayError::NoRelationship | GatewayError::UnknownPerson) => {
                return Err(unknown());
            }
            Err(other) => return Err(other),
        };
    let binary_reference = format!("Binary/{id}");
    let shown = gathered.parts[0]
        .screened
        .answers
        .iter()
        .filter_map(|a| a.result.as_ref().ok())
        .flatten()
        .any(|r| {
            r.resource["resourceType"] == "Provenance"
                && r.resource["entity"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|e| e["what"]["reference"] == binary_reference.as_str())
        });
    if !shown {
        state
            .record_access(
                Entry::by_caller(&caller, &request, Interaction::Read, "Binary/{id}")
                    .about(person)
                    .refused("provenance.of-withheld")
                    .done(),
            )
            .await?;
        return Err(unknown());
    }
    let receipt = state
        .record_access(
            Entry::by_caller(&caller, &request, Interaction::Read, "Binary/{id}")
                .about(person)
                .entities(vec![audit::disclosed(
                    &binary_reference,
                    "Binary",
                    Some(agency.as_str()),
                )])
                .rule(gathered.relationship.rule)
                .done(),
        )
        .await?;
    Ok(Disclosed::fhir(receipt, &binary))
}

/// The agency records a Patient view links to.
fn disclosed_links(patient: &serde_json::Value) -> Vec<kinfold_ledger::AuditEntity> {
    patient["link"]
        .as_array()
        .map(|links| {
            links
                .iter()
                .filter_map(|l| {
                    let (agency, reference) = crate::merge::linked_agency_record(l)?;
                    Some(audit::disclosed(
                        &reference,
                        "Patient",
                        Some(agency.as_str()),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every record a searchset discloses (matches and the Patient view; not outcomes); in a
/// family answer, those of one person.
fn disclosed_entries(
    bundle: &serde_json::Value,
    person: Option<&str>,
) -> Vec<kinfold_ledger::AuditEntity> {
    let whose = person.map(|p| format!("Patient/{p}"));
    bundle["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["search"]["mode"] == "match")
                .filter(|e| {
                    whose.as_ref().is_none_or(|whose| {
                        e["extension"][0]["extension"][0]["valueReference"]["reference"]
                            == whose.as_str()
                    })
                })
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

/// What a Patient search asks for.
enum PatientQuery {
    /// One person by NHS number.
    Nhs(NhsNumber),
    /// People by name and date of birth.
    Demographics(kinfold_identity::Identity),
}

/// Reads a Patient search: `identifier` alone, or a name (`name`, or `family` with an optional
/// `given`) with `birthdate`; anything else is refused.
fn patient_query(query: &[(String, String)]) -> Result<PatientQuery, GatewayError> {
    let mut nhs = None;
    let mut name = None;
    let mut family = None;
    let mut given = None;
    let mut birthdate = None;
    for (param, value) in query {
        let bad = |message: &str| {
            GatewayError::BadSearch(ParseError::SearchParameter {
                name: param.clone(),
                message: message.to_owned(),
            })
        };
        if value.is_empty() {
            return Err(bad("has no value"));
        }
        if value.len() > 200 {
            return Err(bad("is too long"));
        }
        let slot = match param.as_str() {
            "identifier" => {
                if nhs.is_some() {
                    return Err(bad(
                        "may be given only once: the gateway finds one person by one NHS number",
                    ));
                }
                let number = value
                    .strip_prefix(NHS_NUMBER_SYSTEM)
                    .and_then(|rest| rest.strip_prefix('|'))
                    .ok_or_else(|| bad("the gateway finds people by NHS number: https://fhir.nhs.uk/Id/nhs-number|NNNNNNNNNN"))?;
                nhs = Some(
                    number
                        .parse::<NhsNumber>()
                        .map_err(GatewayError::BadNhsNumber)?,
                );
                continue;
            }
            "name" => &mut name,
            "family" => &mut family,
            "given" => &mut given,
            "birthdate" => &mut birthdate,
            _ => {
                return Err(bad(
                    "is not supported by the gateway's Patient search (use identifier, or name and birthdate)",
                ));
            }
        };
        if slot.is_some() {
            return Err(bad("may be given only once"));
        }
        *slot = Some(value.clone());
    }
    let by_name = name.is_some() || family.is_some() || given.is_some() || birthdate.is_some();
    let required = |name: &str, message: &str| {
        GatewayError::BadSearch(ParseError::SearchParameter {
            name: name.into(),
            message: message.into(),
        })
    };
    match (nhs, by_name) {
        (Some(_), true) => Err(required(
            "identifier",
            "is given alone: search by NHS number, or by name and birthdate, not both",
        )),
        (Some(nhs), false) => Ok(PatientQuery::Nhs(nhs)),
        (None, false) => Err(required(
            "identifier",
            "is required (or name and birthdate)",
        )),
        (None, true) => {
            let birthdate =
                birthdate.ok_or_else(|| required("birthdate", "is required with a name"))?;
            if chrono::NaiveDate::parse_from_str(&birthdate, "%Y-%m-%d").is_err() {
                return Err(required("birthdate", "is a date of birth, YYYY-MM-DD"));
            }
            let (family, given) = match (name, family) {
                (Some(_), Some(_)) => {
                    return Err(required("name", "is given instead of family, not with it"));
                }
                (Some(name), None) => {
                    let mut words: Vec<String> =
                        name.split_whitespace().map(str::to_owned).collect();
                    let family = words.pop();
                    (family, words.into_iter().take(1).chain(given).collect())
                }
                (None, Some(family)) => (Some(family), given.into_iter().collect()),
                (None, None) => {
                    return Err(required("name", "is required with birthdate (or family)"));
                }
            };
            Ok(PatientQuery::Demographics(kinfold_identity::Identity {
                family,
                given,
                birth_date: Some(birthdate),
                ..kinfold_identity::Identity::default()
            }))
        }
    }
}
