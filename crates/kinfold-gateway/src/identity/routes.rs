//! The identity and family routes: a person and their agency records, a child's family as a
//! FHIR `Group`, the review queue, manual link and unlink, and family edges asserted or taken
//! back by hand. Every change names who made it and why, and is in the ledger.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use kinfold_fhir::{Agency, IssueType};
use kinfold_http::{ApiError, FhirResponse};
use kinfold_identity::family::Member;
use kinfold_identity::{Edge, PersonId, RecordKey, Relation};
use kinfold_ledger::AuditEntity;
use serde::Deserialize;
use serde_json::{Value, json};

use super::apply::entity;
use super::state::{
    EdgeBody, Method, PersonBody, RecordBody, RefusalBody, Retraction, ReviewStatus, now,
};
use super::{Changes, Inner};
use crate::auth::Caller;
use crate::{GatewayError, GatewayState, audit};

type State = web::Data<GatewayState>;

/// The shortest reason a person may give for a change by hand.
pub const MIN_REASON: usize = 10;

pub(crate) fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/Person/{id}", web::get().to(person_read))
        .route("/Person/{id}/$link", web::post().to(person_link))
        .route("/Person/{id}/$unlink", web::post().to(person_unlink))
        .route("/Patient/{id}/$family", web::get().to(family))
        .route("/identity/reviews", web::get().to(reviews))
        .route(
            "/identity/reviews/{id}/$accept",
            web::post().to(review_accept),
        )
        .route(
            "/identity/reviews/{id}/$reject",
            web::post().to(review_reject),
        )
        .route("/family-edges", web::post().to(edge_assert))
        .route("/family-edges/{id}/$retract", web::post().to(edge_retract));
}

fn bad(code: &str, message: impl Into<String>) -> GatewayError {
    GatewayError::Refused(ApiError::new(
        StatusCode::BAD_REQUEST,
        IssueType::Invalid,
        code,
        message.into(),
    ))
}

fn not_found(what: &str) -> GatewayError {
    GatewayError::Refused(ApiError::not_found(what.to_owned()))
}

fn person_id(text: &str) -> Result<PersonId, GatewayError> {
    text.parse().map_err(|_| GatewayError::UnknownPerson)
}

fn reason(text: &str) -> Result<String, GatewayError> {
    let text = text.trim();
    if text.chars().count() < MIN_REASON || text.len() > 1000 {
        return Err(bad(
            "reason",
            format!("Say why, in {MIN_REASON} to 1,000 characters (reason)."),
        ));
    }
    Ok(text.to_owned())
}

fn json_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, GatewayError> {
    serde_json::from_slice(body).map_err(|e| {
        bad(
            "body",
            format!("The body is not what this route takes: {e}"),
        )
    })
}

/// The person as FHIR `Person`: each agency record linked with how sure the link is.
fn person_resource(inner: &Inner, person: &PersonId) -> Value {
    let links: Vec<Value> = inner
        .index
        .records_of(person)
        .into_iter()
        .filter_map(|key| inner.records.get(&key))
        .map(|record| {
            let assurance = match record.method {
                Method::Manual | Method::Review => "level4",
                Method::NhsNumber | Method::BirthAndMother => "level3",
                Method::Score => "level2",
                Method::New => "level1",
            };
            let mut extension = vec![json!({"url": "method", "valueCode": record.method.as_str()})];
            if let Some(score) = record.score {
                extension.push(json!({"url": "score", "valueDecimal": (score * 10.0).round() / 10.0}));
            }
            json!({
                "target": {
                    "reference": record.record.reference,
                    "display": format!("{} record", record.record.agency.display_name()),
                    "extension": [{"url": AGENCY_EXTENSION, "valueCode": record.record.agency.as_str()}]
                },
                "assurance": assurance,
                "extension": [{"url": LINK_EXTENSION, "extension": extension}]
            })
        })
        .collect();
    let mut resource = json!({
        "resourceType": "Person",
        "id": person.as_str(),
        "meta": {"source": "urn:kinfold:gateway"},
        "active": true,
        "link": links,
    });
    if let Some(body) = inner.persons.get(person)
        && let Some(due) = body.due_date
    {
        resource["extension"] = json!([{"url": UNBORN_EXTENSION, "valueDate": due.to_string()}]);
    }
    resource
}

/// A Patient view built from what the index holds (no agency asked): demographics from the
/// most trusted agency's record (GP first), the NHS number if one is held, and a link to each
/// agency's record.
pub(crate) fn patient_from_index(inner: &Inner, person: &PersonId) -> Value {
    let records: Vec<&RecordBody> = inner
        .locate(person)
        .iter()
        .filter_map(|key| inner.records.get(key))
        .collect();
    let best = crate::merge::DEMOGRAPHICS_ORDER
        .iter()
        .find_map(|agency| records.iter().find(|r| r.record.agency == *agency));
    let mut patient = json!({
        "resourceType": "Patient",
        "id": person.as_str(),
        "meta": {"source": "urn:kinfold:gateway"},
    });
    if let Some(nhs) = inner.nhs_number_of(person) {
        patient["identifier"] =
            json!([{"system": kinfold_fhir::NHS_NUMBER_SYSTEM, "value": nhs.as_str()}]);
    }
    if let Some(best) = best {
        let d = &best.demographics;
        patient["name"] = json!([{"family": d.family, "given": d.given}]);
        if let Some(gender) = &d.gender {
            patient["gender"] = json!(gender);
        }
        if let Some(born) = &d.birth_date {
            patient["birthDate"] = json!(born);
        }
    }
    patient["link"] = records
        .iter()
        .map(|r| {
            json!({
                "other": {"reference": r.record.reference, "display": format!("{} record", r.record.agency.display_name())},
                "type": "seealso"
            })
        })
        .collect();
    patient
}

/// The extension naming the agency of a Person's linked record.
pub const AGENCY_EXTENSION: &str = "https://kinfold.example/fhir/StructureDefinition/agency";
/// The extension saying how a record was linked (method, score).
pub const LINK_EXTENSION: &str = "https://kinfold.example/fhir/StructureDefinition/identity-link";
/// The extension giving an unborn child's due date.
pub const UNBORN_EXTENSION: &str =
    "https://kinfold.example/fhir/StructureDefinition/unborn-due-date";

/// One person with their agency records (the record locator's view).
#[utoipa::path(get, path = "/Person/{id}", tag = "Identity",
    params(("id" = String, Path, description = "Kinfold person id")),
    responses(
        (status = 200, description = "Person: a `link` to each agency's record of them, with `assurance` (level4 by hand or review, level3 NHS number, level2 score, level1 new) and how it was linked", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 401, description = "Missing, expired or untrusted token", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "Unknown person", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn person_read(
    caller: Caller,
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, GatewayError> {
    kinfold_http::no_parameters(&request).map_err(GatewayError::Refused)?;
    let asked_text = path.into_inner();
    let asked = person_id(&asked_text)?;
    let rule = relationship_rule(&state, &caller, &request, &asked_text, "Person/{id}").await?;
    let (person, resource) = state
        .identities
        .read(&state.store, &state.ledger, |inner| {
            let person = inner.current(&asked)?;
            Some((person.clone(), person_resource(inner, &person)))
        })
        .await?
        .ok_or(GatewayError::UnknownPerson)?;
    let entities = resource["link"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            audit::disclosed(
                l["target"]["reference"].as_str().unwrap_or_default(),
                "Patient",
                l["target"]["extension"][0]["valueCode"].as_str(),
            )
        })
        .collect();
    let mut record = audit::record(
        &caller,
        "read",
        "R",
        "Person/{id}",
        Some(person.to_string()),
        entities,
        &request,
    );
    record.rule = Some(rule);
    state.record_access(record).await?;
    Ok(FhirResponse::ok(&resource))
}

/// The caller's relationship with the person (through the disclosure pipeline: a caller with
/// none is refused, and the refusal recorded), as its rule.
async fn relationship_rule(
    state: &GatewayState,
    caller: &Caller,
    request: &HttpRequest,
    asked: &str,
    query: &str,
) -> Result<String, GatewayError> {
    let gathered = crate::disclosure::gather(state, caller, request, asked, false, query).await?;
    Ok(gathered.relationship.rule.to_owned())
}

/// The members of a family as a FHIR `Group`.
fn family_group(person: &PersonId, members: &[Member]) -> Value {
    let member: Vec<Value> = members
        .iter()
        .map(|m| {
            let (system, code, display) = m.kin.coding();
            let mut extension = vec![
                json!({"url": "relationship", "valueCodeableConcept": {"coding": [{"system": system, "code": code, "display": display}], "text": m.detail.clone().unwrap_or_else(|| display.to_owned())}}),
                json!({"url": "confidence", "valueDecimal": m.confidence}),
            ];
            extension.extend(m.sources.iter().map(|s| json!({"url": "source", "valueString": s})));
            extension.extend(m.edges.iter().map(|e| json!({"url": "edge", "valueString": e})));
            json!({
                "entity": {"reference": format!("Patient/{}", m.person)},
                "extension": [{"url": FAMILY_EXTENSION, "extension": extension}]
            })
        })
        .collect();
    json!({
        "resourceType": "Group",
        "id": person.as_str(),
        "meta": {"source": "urn:kinfold:gateway"},
        "type": "person",
        "actual": true,
        "name": "Family",
        "managingEntity": {"display": "Kinfold gateway"},
        "quantity": member.len(),
        "characteristic": [{
            "code": {"text": "family of"},
            "valueReference": {"reference": format!("Patient/{person}")},
            "exclude": false
        }],
        "member": member,
    })
}

/// The extension on a family Group's member: relationship, confidence, sources and edges.
pub const FAMILY_EXTENSION: &str =
    "https://kinfold.example/fhir/StructureDefinition/family-relationship";

/// A person's family: the members, their relationship to the person and each edge's source.
#[utoipa::path(get, path = "/Patient/{id}/$family", tag = "Identity",
    params(("id" = String, Path, description = "Kinfold person id")),
    responses(
        (status = 200, description = "Group (id: the person's id) whose members are the family: mother, father, carers, siblings (through a shared parent), an unborn sibling (booked pregnancy), adults named in domestic-abuse notifications, household members. Each member's extension gives the relationship (HL7 v3 RoleCode where one fits), the confidence, and the source records and edges", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 401, description = "Missing, expired or untrusted token", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "Unknown person", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn family(
    caller: Caller,
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, GatewayError> {
    kinfold_http::no_parameters(&request).map_err(GatewayError::Refused)?;
    let asked_text = path.into_inner();
    let asked = person_id(&asked_text)?;
    let rule = relationship_rule(&state, &caller, &request, &asked_text, "Patient/$family").await?;
    let (person, members) = state.family_of(&asked).await?;
    let group = family_group(&person, &members);
    let entities = members
        .iter()
        .map(|m| audit::disclosed(&format!("urn:kinfold:person:{}", m.person), "Person", None))
        .collect();
    let mut record = audit::record(
        &caller,
        "operation",
        "E",
        "Patient/$family",
        Some(person.to_string()),
        entities,
        &request,
    );
    record.rule = Some(rule);
    state.record_access(record).await?;
    Ok(FhirResponse::ok(&group))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewQuery {
    status: Option<String>,
}

/// The review queue: pairs the index would not link by itself.
#[utoipa::path(get, path = "/identity/reviews", tag = "Identity",
    params(("status" = Option<String>, Query, description = "`open` (default), `accepted` or `rejected`")),
    responses(
        (status = 200, description = "`{\"reviews\": [...]}`: each pair's id, kind (`match`, or `nhs-number-conflict` when an NHS number joins records whose demographics disagree), the record and the candidate person, the score, the fields that agreed or disagreed with their weights, what held it back, and its status", content_type = "application/json", body = serde_json::Value),
        (status = 400, description = "Unknown status or parameter", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 401, description = "Missing, expired or untrusted token", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn reviews(
    _caller: Caller,
    state: State,
    query: web::Query<ReviewQuery>,
) -> Result<HttpResponse, GatewayError> {
    let status = match query.status.as_deref().unwrap_or("open") {
        "open" => ReviewStatus::Open,
        "accepted" => ReviewStatus::Accepted,
        "rejected" => ReviewStatus::Rejected,
        other => {
            return Err(bad(
                "status",
                format!("status is open, accepted or rejected, not {other:?}"),
            ));
        }
    };
    let reviews: Vec<Value> = state
        .identities
        .read(&state.store, &state.ledger, |inner| {
            inner
                .reviews
                .values()
                .filter(|r| r.status == status)
                .filter_map(|r| serde_json::to_value(r).ok())
                .collect()
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({"reviews": reviews})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    reason: String,
}

/// Accepts a review pair: the record joins the candidate person.
#[utoipa::path(post, path = "/identity/reviews/{id}/$accept", tag = "Identity",
    params(("id" = String, Path, description = "Review pair id")),
    request_body(content = serde_json::Value, description = "`{\"reason\": \"…\"}` (at least 10 characters)", content_type = "application/json"),
    responses(
        (status = 200, description = "The pair, accepted; the record is now the candidate's (Person view of the candidate in `person`)", content_type = "application/json", body = serde_json::Value),
        (status = 400, description = "No reason, or the pair is already decided", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "No such pair", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn review_accept(
    caller: Caller,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, GatewayError> {
    decide(caller, state, path.into_inner(), &body, true).await
}

/// Rejects a review pair: the record and the candidate stay two people, and the index never
/// offers the pair again.
#[utoipa::path(post, path = "/identity/reviews/{id}/$reject", tag = "Identity",
    params(("id" = String, Path, description = "Review pair id")),
    request_body(content = serde_json::Value, description = "`{\"reason\": \"…\"}` (at least 10 characters)", content_type = "application/json"),
    responses(
        (status = 200, description = "The pair, rejected", content_type = "application/json", body = serde_json::Value),
        (status = 400, description = "No reason, or the pair is already decided", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "No such pair", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn review_reject(
    caller: Caller,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, GatewayError> {
    decide(caller, state, path.into_inner(), &body, false).await
}

async fn decide(
    caller: Caller,
    state: State,
    id: String,
    body: &[u8],
    accept: bool,
) -> Result<HttpResponse, GatewayError> {
    let decision: Decision = json_body(body)?;
    let why = reason(&decision.reason)?;
    let who = caller.subject.clone();
    let answer = state
        .identities
        .change(&state.store, &state.ledger, |inner, changes| {
            let mut review = inner
                .reviews
                .get(&id)
                .cloned()
                .ok_or_else(|| not_found("identity review"))?;
            if review.status != ReviewStatus::Open {
                return Err(bad("decided", "This pair is already decided."));
            }
            review.status = if accept {
                ReviewStatus::Accepted
            } else {
                ReviewStatus::Rejected
            };
            review.decided_by = Some(who.clone());
            review.reason = Some(why.clone());
            let candidate = inner
                .current(&review.candidate)
                .ok_or(GatewayError::UnknownPerson)?;
            if accept {
                move_record(
                    inner,
                    &review.record,
                    &candidate,
                    Method::Review,
                    &who,
                    &why,
                    changes,
                )?;
            } else {
                inner.put_refusal(
                    RefusalBody {
                        record: review.record.clone(),
                        person: candidate.clone(),
                        by: who.clone(),
                        reason: why.clone(),
                    },
                    changes,
                );
                changes.audit.push(audit::identity_change(
                    &who,
                    &candidate,
                    "identity-review-rejected",
                    "kinfold.identity.review-rejected",
                    vec![entity(&review.record, "not this person: review rejected")],
                    Some(why.clone()),
                ));
            }
            inner.put_review(review.clone(), changes);
            let person = accept.then(|| person_resource(inner, &candidate));
            Ok(json!({"review": review, "person": person}))
        })
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Files a record under a person by a person's decision (manual link or accepted review),
/// with the ledger entries for both people.
fn move_record(
    inner: &mut Inner,
    key: &RecordKey,
    to: &PersonId,
    method: Method,
    who: &str,
    why: &str,
    changes: &mut Changes,
) -> Result<(), GatewayError> {
    let mut record = inner
        .records
        .get(key)
        .cloned()
        .ok_or_else(|| not_found("agency record"))?;
    let from = record.person.clone();
    record.person = to.clone();
    record.method = method;
    record.score = None;
    record.by = Some(who.to_owned());
    record.reason = Some(why.to_owned());
    record.updated = now();
    inner.put_record(record, changes);
    let rule = match method {
        Method::Review => "kinfold.identity.review-accepted",
        _ => "kinfold.identity.manual-link",
    };
    for (person, what) in [
        (to, format!("linked by hand from person {from}")),
        (&from, format!("moved by hand to person {to}")),
    ] {
        changes.audit.push(audit::identity_change(
            who,
            person,
            "identity-link",
            rule,
            vec![entity(key, &what)],
            Some(why.to_owned()),
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordChange {
    agency: Agency,
    reference: String,
    reason: String,
}

impl RecordChange {
    /// The person asked about, the record to move and the reason, from a `$link` or `$unlink`.
    fn read(person: &str, body: &[u8]) -> Result<(PersonId, RecordKey, String), GatewayError> {
        let change: RecordChange = json_body(body)?;
        let why = reason(&change.reason)?;
        let key = RecordKey {
            agency: change.agency,
            reference: change.reference,
        };
        Ok((person_id(person)?, key, why))
    }
}

/// Links an agency record to this person by hand (a merge of that record; undone by
/// `$unlink`). It wins over the algorithm: the index never moves it again.
#[utoipa::path(post, path = "/Person/{id}/$link", tag = "Identity",
    params(("id" = String, Path, description = "Kinfold person id")),
    request_body(content = serde_json::Value, description = "`{\"agency\": \"school-nursing\", \"reference\": \"Patient/…\", \"reason\": \"…\"}`", content_type = "application/json"),
    responses(
        (status = 200, description = "The Person, with the record linked", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 400, description = "No reason, or an unreadable body", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "Unknown person or record", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn person_link(
    caller: Caller,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, GatewayError> {
    let (asked, key, why) = RecordChange::read(&path.into_inner(), &body)?;
    let person = state
        .identities
        .change(&state.store, &state.ledger, |inner, changes| {
            let person = inner.current(&asked).ok_or(GatewayError::UnknownPerson)?;
            move_record(
                inner,
                &key,
                &person,
                Method::Manual,
                &caller.subject,
                &why,
                changes,
            )?;
            Ok(person_resource(inner, &person))
        })
        .await?;
    Ok(FhirResponse::ok(&person))
}

/// Takes an agency record away from this person by hand (a split): it becomes a person of
/// its own, and the index never offers it to this person again.
#[utoipa::path(post, path = "/Person/{id}/$unlink", tag = "Identity",
    params(("id" = String, Path, description = "Kinfold person id")),
    request_body(content = serde_json::Value, description = "`{\"agency\": \"school-nursing\", \"reference\": \"Patient/…\", \"reason\": \"…\"}`", content_type = "application/json"),
    responses(
        (status = 200, description = "The new Person holding the record", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 400, description = "No reason, the record is not this person's, or it is their only record", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "Unknown person or record", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn person_unlink(
    caller: Caller,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, GatewayError> {
    let (asked, key, why) = RecordChange::read(&path.into_inner(), &body)?;
    let new_person: PersonId = uuid::Uuid::new_v4()
        .to_string()
        .parse()
        .map_err(|_| GatewayError::UnknownPerson)?;
    let person = state
        .identities
        .change(&state.store, &state.ledger, |inner, changes| {
            let person = inner.current(&asked).ok_or(GatewayError::UnknownPerson)?;
            let record: &RecordBody = inner
                .records
                .get(&key)
                .ok_or_else(|| not_found("agency record"))?;
            if record.person != person {
                return Err(bad("not-linked", "That record is not this person's."));
            }
            if inner.index.records_of(&person).len() < 2 {
                return Err(bad(
                    "only-record",
                    "That is the person's only record; there is nothing to split.",
                ));
            }
            inner.put_person(
                PersonBody {
                    id: new_person.clone(),
                    created: now(),
                    due_date: None,
                    pregnancy: None,
                    merged_into: None,
                },
                changes,
            );
            move_record(
                inner,
                &key,
                &new_person,
                Method::Manual,
                &caller.subject,
                &why,
                changes,
            )?;
            inner.put_refusal(
                RefusalBody {
                    record: key.clone(),
                    person: person.clone(),
                    by: caller.subject.clone(),
                    reason: why.clone(),
                },
                changes,
            );
            Ok(person_resource(inner, &new_person))
        })
        .await?;
    Ok(FhirResponse::ok(&person))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EdgeAssertion {
    from: String,
    to: String,
    relation: String,
    detail: Option<String>,
    reason: String,
}

/// Asserts a family edge by hand (`from` is `relation` of `to`).
#[utoipa::path(post, path = "/family-edges", tag = "Identity",
    request_body(content = serde_json::Value, description = "`{\"from\": PERSON, \"to\": PERSON, \"relation\": \"mother|father|parent|carer|named-adult|household-member\", \"detail\": \"…\", \"reason\": \"…\"}`", content_type = "application/json"),
    responses(
        (status = 201, description = "The edge (its id, for `$retract`)", content_type = "application/json", body = serde_json::Value),
        (status = 400, description = "Unknown relation, the same person twice, or no reason", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "Unknown person", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn edge_assert(
    caller: Caller,
    state: State,
    body: web::Bytes,
) -> Result<HttpResponse, GatewayError> {
    let assertion: EdgeAssertion = json_body(&body)?;
    let why = reason(&assertion.reason)?;
    let relation = Relation::parse(&assertion.relation).ok_or_else(|| {
        bad(
            "relation",
            "relation is one of mother, father, parent, carer, named-adult, household-member",
        )
    })?;
    let (from, to) = (person_id(&assertion.from)?, person_id(&assertion.to)?);
    let detail = assertion
        .detail
        .map(|d| d.chars().take(200).collect::<String>());
    let edge = state
        .identities
        .change(&state.store, &state.ledger, |inner, changes| {
            let from = inner.current(&from).ok_or(GatewayError::UnknownPerson)?;
            let to = inner.current(&to).ok_or(GatewayError::UnknownPerson)?;
            if from == to {
                return Err(bad("same-person", "An edge joins two people."));
            }
            let edge = Edge {
                id: format!("manual-{}", uuid::Uuid::new_v4()),
                from,
                to: to.clone(),
                relation,
                detail,
                source: "manual".into(),
                confidence: 1.0,
            };
            changes.audit.push(audit::identity_change(
                &caller.subject,
                &to,
                "family-edge",
                "kinfold.family.edge-asserted",
                vec![edge_entity(&edge, "asserted by hand")],
                Some(why.clone()),
            ));
            let body = EdgeBody {
                edge,
                origin: "manual".into(),
                asserted_by: Some(caller.subject.clone()),
                reason: Some(why),
                retracted: None,
            };
            inner.put_edge(body.clone(), changes);
            Ok(body)
        })
        .await?;
    Ok(HttpResponse::Created().json(edge))
}

fn edge_entity(edge: &Edge, what: &str) -> AuditEntity {
    AuditEntity {
        reference: format!("urn:kinfold:family-edge:{}", edge.id),
        resource_type: "Group".into(),
        agency: None,
        disclosure: format!(
            "{} is {} of {}: {what}",
            edge.from,
            edge.relation.as_str(),
            edge.to
        ),
    }
}

/// Takes a family edge back (from the data or by hand); it stays on record, taken back, and
/// the data does not put it back.
#[utoipa::path(post, path = "/family-edges/{id}/$retract", tag = "Identity",
    params(("id" = String, Path, description = "Edge id (from a $family Group's member `edge`)")),
    request_body(content = serde_json::Value, description = "`{\"reason\": \"…\"}`", content_type = "application/json"),
    responses(
        (status = 200, description = "The edge, taken back", content_type = "application/json", body = serde_json::Value),
        (status = 400, description = "No reason, or already taken back", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "No such edge", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn edge_retract(
    caller: Caller,
    state: State,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, GatewayError> {
    let decision: Decision = json_body(&body)?;
    let why = reason(&decision.reason)?;
    let id = path.into_inner();
    let edge = state
        .identities
        .change(&state.store, &state.ledger, |inner, changes| {
            let mut body = inner
                .edges
                .get(&id)
                .cloned()
                .ok_or_else(|| not_found("family edge"))?;
            if body.retracted.is_some() {
                return Err(bad("retracted", "This edge is already taken back."));
            }
            body.retracted = Some(Retraction {
                by: caller.subject.clone(),
                reason: why.clone(),
                at: now(),
            });
            changes.audit.push(audit::identity_change(
                &caller.subject,
                &body.edge.to,
                "family-edge",
                "kinfold.family.edge-retracted",
                vec![edge_entity(&body.edge, "taken back by hand")],
                Some(why),
            ));
            inner.put_edge(body.clone(), changes);
            Ok(body)
        })
        .await?;
    Ok(HttpResponse::Ok().json(edge))
}
