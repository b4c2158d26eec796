//! The identity and family routes: a person and their agency records, a child's family as a
//! FHIR `Group`, the review queue, manual link and unlink, and family edges asserted or taken
//! back by hand. Every change names who made it and why, and is in the ledger.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use kinfold_fhir::{Agency, IssueType};
use kinfold_http::ApiError;
use kinfold_identity::family::Member;
use kinfold_identity::{Edge, PersonId, RecordKey, Relation};
use kinfold_ledger::AuditEntity;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::answer::Disclosed;
use crate::audit::{self, Entry, Interaction};
use crate::auth::Caller;
use crate::error::GatewayError;
use crate::guard::identity_steward;
use crate::identity::apply::entity;
use crate::identity::state::{
    EdgeBody, Method, PersonBody, RecordBody, RefusalBody, Retraction, ReviewStatus, now,
};
use crate::identity::{Changes, Inner};
use crate::state::GatewayState;

type State = web::Data<GatewayState>;

/// The shortest reason a person may give for a change by hand.
pub const MIN_REASON: usize = 10;

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
    if kinfold_consent::letters(text) < MIN_REASON || text.len() > 1000 {
        return Err(bad(
            "reason",
            format!(
                "Say why, in at least {MIN_REASON} letters and at most 1,000 characters (reason)."
            ),
        ));
    }
    Ok(text.to_owned())
}

/// The identity steward's organisation, if it holds one of `records` or a record of one of
/// `people` (or is the area's); otherwise the attempt is recorded as refused and answered as
/// `not_found`.
async fn steward_concerned(
    state: &GatewayState,
    caller: &Caller,
    request: &HttpRequest,
    people: &[PersonId],
    records: &[&RecordKey],
    query: &str,
    not_found: GatewayError,
) -> Result<String, GatewayError> {
    let org = identity_steward(caller)?;
    let holds_one = records
        .iter()
        .any(|key| state.disclosure.owner_of(key.agency) == org);
    if holds_one || state.is_concerned(&org, people).await? {
        return Ok(org);
    }
    let mut entry = Entry::by_caller(caller, request, Interaction::Update, query)
        .refused("identity.organisation-not-concerned");
    if let Some(person) = people.first() {
        entry = entry.about(person.to_string());
    }
    state.record_access(entry.done()).await?;
    Err(not_found)
}

/// The ledger entry of a change by hand: who, in which request, about whom, under which rule,
/// with their reason.
fn change_entry(
    caller: &Caller,
    request: &HttpRequest,
    person: &PersonId,
    query: &str,
    rule: &str,
    entities: Vec<AuditEntity>,
    why: &str,
) -> kinfold_ledger::AuditRecord {
    Entry::by_caller(caller, request, Interaction::Update, query)
        .about(person.to_string())
        .entities(entities)
        .rule(rule)
        .justification(why)
        .done()
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
                Method::NhsNumber | Method::BirthAndMother | Method::SourceMerge => "level3",
                Method::Score | Method::Household => "level2",
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
            let id = r
                .record
                .reference
                .strip_prefix("Patient/")
                .unwrap_or(&r.record.reference);
            crate::merge::agency_record_link(r.record.agency, id)
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
) -> Result<Disclosed, GatewayError> {
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
    let receipt = state
        .record_access(
            Entry::by_caller(&caller, &request, Interaction::Read, "Person/{id}")
                .about(person.to_string())
                .entities(entities)
                .rule(&rule)
                .done(),
        )
        .await?;
    Ok(Disclosed::fhir(receipt, &resource))
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
    let gathered = crate::pipeline::gather(state, caller, request, asked, false, query).await?;
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
) -> Result<Disclosed, GatewayError> {
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
    let receipt = state
        .record_access(
            Entry::by_caller(&caller, &request, Interaction::Operation, "Patient/$family")
                .about(person.to_string())
                .entities(entities)
                .rule(&rule)
                .done(),
        )
        .await?;
    Ok(Disclosed::fhir(receipt, &group))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewQuery {
    status: Option<String>,
    #[serde(rename = "_count")]
    count: Option<usize>,
}

/// Review pairs listed per answer when the caller does not say, and at most.
const DEFAULT_REVIEWS: usize = 100;
const MAX_REVIEWS: usize = 500;

/// The review queue: pairs the index would not link by itself, for the identity stewards of
/// an organisation that holds one of the records (the area's see every pair).
#[utoipa::path(get, path = "/identity/reviews", tag = "Identity",
    params(("status" = Option<String>, Query, description = "`open` (default), `accepted` or `rejected`"),
           ("_count" = Option<usize>, Query, description = "Pairs per answer (default 100, at most 500), oldest first")),
    responses(
        (status = 200, description = "`{\"total\", \"shown\", \"reviews\": [...]}`: `total` counts every pair with that status this steward's organisation may see, `shown` how many are listed (oldest first); each pair's id, kind (`match`, or `nhs-number-conflict` when an NHS number joins records whose demographics disagree), the record and the candidate person, the score, the fields that agreed or disagreed with their weights, what held it back, and its status. Each pair listed is in the access report of its candidate person.", content_type = "application/json", body = serde_json::Value),
        (status = 400, description = "Unknown status or parameter", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 401, description = "Missing, expired or untrusted token", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 403, description = "Not an identity steward (role identity-steward with an organisation)", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 503, description = "The ledger cannot record this view, so nothing is shown", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn reviews(
    caller: Caller,
    state: State,
    request: HttpRequest,
    query: web::Query<ReviewQuery>,
) -> Result<Disclosed, GatewayError> {
    let org = identity_steward(&caller)?;
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
    let count = query.count.unwrap_or(DEFAULT_REVIEWS).clamp(1, MAX_REVIEWS);
    let disclosure = &state.disclosure;
    let everyone = org == disclosure.area;
    let (total, listed): (usize, Vec<(PersonId, RecordKey, Value)>) = state
        .identities
        .read(&state.store, &state.ledger, |inner| {
            let mut mine: Vec<&crate::identity::state::ReviewBody> = inner
                .reviews
                .values()
                .filter(|r| r.status == status)
                .filter(|r| {
                    everyone
                        || disclosure.owner_of(r.record.agency) == org
                        || disclosure.owner_of(r.candidate_record.agency) == org
                })
                .collect();
            mine.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
            let total = mine.len();
            let listed = mine
                .into_iter()
                .take(count)
                .filter_map(|r| {
                    let person = inner.current(&r.candidate).unwrap_or(r.candidate.clone());
                    Some((person, r.record.clone(), serde_json::to_value(r).ok()?))
                })
                .collect();
            (total, listed)
        })
        .await?;
    // Each pair shown is in its candidate's access report: it names their records.
    let view = || Entry::by_caller(&caller, &request, Interaction::Search, "identity-reviews");
    let mut records: Vec<_> = listed
        .iter()
        .map(|(person, record, _)| {
            view()
                .about(person.to_string())
                .entities(vec![entity(record, "shown on the identity review queue")])
                .rule("identity.steward")
                .done()
        })
        .collect();
    if records.is_empty() {
        records.push(view().rule("identity.steward").done());
    }
    let receipt = state.record_all(records).await?;
    let reviews: Vec<Value> = listed.into_iter().map(|(_, _, r)| r).collect();
    Ok(Disclosed::json(
        receipt,
        &json!({"total": total, "shown": reviews.len(), "reviews": reviews}),
    ))
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
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<Disclosed, GatewayError> {
    decide(caller, state, request, path.into_inner(), &body, true).await
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
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<Disclosed, GatewayError> {
    decide(caller, state, request, path.into_inner(), &body, false).await
}

async fn decide(
    caller: Caller,
    state: State,
    request: HttpRequest,
    id: String,
    body: &[u8],
    accept: bool,
) -> Result<Disclosed, GatewayError> {
    identity_steward(&caller)?;
    let decision: Decision = json_body(body)?;
    let why = reason(&decision.reason)?;
    let who = caller.subject.clone();
    // The pair as it stands, for whom it concerns; a pair this steward's organisation has no
    // part in answers as one that does not exist.
    let concerned = state
        .identities
        .read(&state.store, &state.ledger, |inner| {
            inner.reviews.get(&id).map(|r| {
                (
                    vec![r.candidate.clone()],
                    [r.record.clone(), r.candidate_record.clone()],
                )
            })
        })
        .await?;
    let Some((people, [record, candidate_record])) = concerned else {
        return Err(not_found("identity review"));
    };
    steward_concerned(
        &state,
        &caller,
        &request,
        &people,
        &[&record, &candidate_record],
        "identity-review",
        not_found("identity review"),
    )
    .await?;
    let query = if accept {
        "identity-review-accepted"
    } else {
        "identity-review-rejected"
    };
    let (answer, receipt) = state
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
                    (&caller, &request),
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
                // In the access report of both: the candidate, and the person the record
                // stays with.
                let mut about = vec![candidate.clone()];
                if let Some(holder) = inner.records.get(&review.record).map(|r| r.person.clone())
                    && holder != candidate
                {
                    about.push(holder);
                }
                for person in about {
                    changes.audit.push(change_entry(
                        &caller,
                        &request,
                        &person,
                        query,
                        "kinfold.identity.review-rejected",
                        vec![entity(&review.record, "not this person: review rejected")],
                        &why,
                    ));
                }
            }
            inner.put_review(review.clone(), changes);
            let person = accept.then(|| person_resource(inner, &candidate));
            Ok(json!({"review": review, "person": person}))
        })
        .await?;
    Ok(Disclosed::json(receipt, &answer))
}

/// Files a record under a person by a person's decision (manual link or accepted review),
/// with the ledger entries for both people.
fn move_record(
    inner: &mut Inner,
    key: &RecordKey,
    to: &PersonId,
    method: Method,
    (caller, request): (&Caller, &HttpRequest),
    why: &str,
    changes: &mut Changes,
) -> Result<(), GatewayError> {
    let who = caller.subject.as_str();
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
        changes.audit.push(change_entry(
            caller,
            request,
            person,
            "identity-link",
            rule,
            vec![entity(key, &what)],
            why,
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
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<Disclosed, GatewayError> {
    identity_steward(&caller)?;
    let (asked, key, why) = RecordChange::read(&path.into_inner(), &body)?;
    steward_concerned(
        &state,
        &caller,
        &request,
        std::slice::from_ref(&asked),
        &[&key],
        "identity-link",
        GatewayError::UnknownPerson,
    )
    .await?;
    let (person, receipt) = state
        .identities
        .change(&state.store, &state.ledger, |inner, changes| {
            let person = inner.current(&asked).ok_or(GatewayError::UnknownPerson)?;
            move_record(
                inner,
                &key,
                &person,
                Method::Manual,
                (&caller, &request),
                &why,
                changes,
            )?;
            Ok(person_resource(inner, &person))
        })
        .await?;
    Ok(Disclosed::fhir(receipt, &person))
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
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<Disclosed, GatewayError> {
    identity_steward(&caller)?;
    let (asked, key, why) = RecordChange::read(&path.into_inner(), &body)?;
    steward_concerned(
        &state,
        &caller,
        &request,
        std::slice::from_ref(&asked),
        &[&key],
        "identity-unlink",
        GatewayError::UnknownPerson,
    )
    .await?;
    let new_person: PersonId = uuid::Uuid::new_v4()
        .to_string()
        .parse()
        .map_err(|_| GatewayError::UnknownPerson)?;
    let (person, receipt) = state
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
                (&caller, &request),
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
    Ok(Disclosed::fhir(receipt, &person))
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
    request: HttpRequest,
    body: web::Bytes,
) -> Result<Disclosed, GatewayError> {
    identity_steward(&caller)?;
    let assertion: EdgeAssertion = json_body(&body)?;
    let why = reason(&assertion.reason)?;
    let relation = Relation::parse(&assertion.relation).ok_or_else(|| {
        bad(
            "relation",
            "relation is one of mother, father, parent, carer, named-adult, household-member",
        )
    })?;
    let (from, to) = (person_id(&assertion.from)?, person_id(&assertion.to)?);
    steward_concerned(
        &state,
        &caller,
        &request,
        &[from.clone(), to.clone()],
        &[],
        "family-edge",
        GatewayError::UnknownPerson,
    )
    .await?;
    let detail = assertion
        .detail
        .map(|d| d.chars().take(200).collect::<String>());
    let (edge, receipt) = state
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
            for person in [&edge.from, &edge.to] {
                changes.audit.push(change_entry(
                    &caller,
                    &request,
                    person,
                    "family-edge",
                    "kinfold.family.edge-asserted",
                    vec![edge_entity(&edge, "asserted by hand")],
                    &why,
                ));
            }
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
    Ok(Disclosed::json_with(
        receipt,
        actix_web::http::StatusCode::CREATED,
        &edge,
    ))
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
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<Disclosed, GatewayError> {
    identity_steward(&caller)?;
    let decision: Decision = json_body(&body)?;
    let why = reason(&decision.reason)?;
    let id = path.into_inner();
    let people = state
        .identities
        .read(&state.store, &state.ledger, |inner| {
            inner
                .edges
                .get(&id)
                .map(|e| vec![e.edge.from.clone(), e.edge.to.clone()])
        })
        .await?
        .ok_or_else(|| not_found("family edge"))?;
    steward_concerned(
        &state,
        &caller,
        &request,
        &people,
        &[],
        "family-edge",
        not_found("family edge"),
    )
    .await?;
    let (edge, receipt) = state
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
            for person in [&body.edge.from, &body.edge.to] {
                changes.audit.push(change_entry(
                    &caller,
                    &request,
                    person,
                    "family-edge",
                    "kinfold.family.edge-retracted",
                    vec![edge_entity(&body.edge, "taken back by hand")],
                    &why,
                ));
            }
            inner.put_edge(body.clone(), changes);
            Ok(body)
        })
        .await?;
    Ok(Disclosed::json(receipt, &edge))
}
