//! Reading one adapter event into the person index and the family graph.
//!
//! * The event's person is filed: by NHS number, by score, or as a new person with any close
//!   candidates put on the review queue.
//! * Each related person it names (a RelatedPerson: mother, father, carer, an adult named in
//!   a domestic-abuse notification) is filed the same way, and an edge joins them.
//! * A booked pregnancy makes an unborn child (a person with a due date) and its mother edge;
//!   a birth notification whose mother has an unborn child due near the birth makes that
//!   unborn child the baby.

use kinfold_fhir::Agency;
use kinfold_identity::family::Residence;
use kinfold_identity::{Candidate, Edge, PersonId, RecordKey, Relation, Resolution};
use kinfold_ledger::AuditEntity;
use kinfold_store::{ReceivedEvent, Store};
use serde::Deserialize;

use super::state::{
    Demographics, EdgeBody, Method, PersonBody, RecordBody, ReviewBody, ReviewStatus, now,
};
use super::{Changes, Inner};
use crate::audit;
use crate::error::GatewayError;

/// Who the ledger names for what the index decides by itself.
pub(crate) const INDEX_AGENT: &str = "kinfold-identity";
/// The most review pairs one record puts on the queue.
const MAX_REVIEW_PAIRS: usize = 3;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    agency: Agency,
    #[serde(default)]
    patient: Option<EventPerson>,
    #[serde(default)]
    codes: Vec<String>,
    #[serde(default)]
    relations: Vec<EventRelation>,
    #[serde(default)]
    pregnancy: Option<Pregnancy>,
}

#[derive(Deserialize)]
struct EventPerson {
    reference: String,
    #[serde(default)]
    replaces: Vec<String>,
    #[serde(flatten)]
    demographics: Demographics,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventRelation {
    reference: String,
    code: Option<String>,
    text: Option<String>,
    #[serde(default)]
    named_in_domestic_abuse_notification: bool,
    patient: Option<String>,
    nhs_number: Option<String>,
    family: Option<String>,
    #[serde(default)]
    given: Vec<String>,
    name_text: Option<String>,
    birth_date: Option<String>,
    gender: Option<String>,
    postcode: Option<String>,
    address_line: Option<String>,
}

impl EventRelation {
    /// What the related person is to the person, and how sure the record is: coded (1.0), in
    /// words (0.7), or named in a domestic-abuse notification (0.8). `None` for a relation
    /// that is not family (a friend, an emergency contact): no edge.
    fn kind(&self) -> Option<(Relation, f64)> {
        if self.named_in_domestic_abuse_notification {
            Some((Relation::NamedAdult, 0.8))
        } else if let Some(code) = &self.code {
            Relation::from_role_code(code).map(|r| (r, 1.0))
        } else {
            let words = self.text.as_deref().unwrap_or_default().to_lowercase();
            let kind = match words.trim() {
                "mother" | "mum" | "birth mother" => Relation::Mother,
                "father" | "dad" | "birth father" => Relation::Father,
                "parent" => Relation::Parent,
                "friend" | "neighbour" | "emergency contact" | "self" => return None,
                _ => Relation::Carer,
            };
            Some((kind, 0.7))
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Pregnancy {
    reference: String,
    due_date: String,
}

/// The NHS numbers an event names (its person's and each related person's), valid ones only:
/// a pass links the numbers the index does not know yet to person ids in one transaction
/// before it takes the index ([`Changes::person_ids`]).
pub(crate) fn nhs_numbers(received: &ReceivedEvent) -> Vec<kinfold_fhir::NhsNumber> {
    let Ok(event) = serde_json::from_str::<Event>(&received.payload) else {
        return Vec::new();
    };
    let patient = event.patient.and_then(|p| p.demographics.nhs_number);
    patient
        .into_iter()
        .chain(event.relations.into_iter().filter_map(|r| r.nhs_number))
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// Reads one received event.
pub(crate) async fn event(
    inner: &mut Inner,
    store: &Store,
    received: &ReceivedEvent,
    changes: &mut Changes,
) -> Result<(), GatewayError> {
    let Ok(event) = serde_json::from_str::<Event>(&received.payload) else {
        tracing::warn!(
            seq = received.seq,
            "an event that cannot be read is left out of the index"
        );
        return Ok(());
    };
    let Some(patient) = event.patient else {
        return Ok(());
    };
    if !patient.reference.starts_with("Patient/") || received.agency != event.agency.as_str() {
        return Ok(());
    }
    // Who is still a child decides whether dates of birth years apart may link.
    inner.index.set_today(chrono::Utc::now().date_naive());
    let agency = event.agency;
    let key = RecordKey {
        agency,
        reference: patient.reference,
    };
    let birth_date = patient.demographics.birth_date.clone();
    let replaces = patient.replaces;
    let person = file(inner, store, key.clone(), patient.demographics, changes).await?;
    for replaced in replaces {
        source_merge(inner, &key, &person, replaced, changes);
    }
    let born = event.codes.iter().any(|c| c == "birth-notification");
    // Only a birth or a new parent edge can make a baby and a named child one person: the
    // join (which reads the whole graph) runs for those events alone.
    let names_a_parent = event
        .relations
        .iter()
        .any(|r| r.kind().is_some_and(|(kind, _)| kind.is_parental()));
    for relation in event.relations {
        relate(inner, store, agency, &person, relation, changes).await?;
    }
    if born && let Some(born_on) = birth_date.as_deref().and_then(date) {
        birth(inner, &person, born_on, changes);
    }
    if (born || names_a_parent)
        && let Some(born_on) = &birth_date
    {
        join_baby(inner, &person, born_on, changes);
    }
    if let Some(pregnancy) = event.pregnancy {
        book(inner, agency, &person, pregnancy, changes);
    }
    Ok(())
}

fn date(text: &str) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// Files one record under its person and says whom.
async fn file(
    inner: &mut Inner,
    store: &Store,
    key: RecordKey,
    demographics: Demographics,
    changes: &mut Changes,
) -> Result<PersonId, GatewayError> {
    let resolution = inner.index.resolve(&key, &demographics.identity());
    file_resolved(inner, store, key, demographics, resolution, changes).await
}

/// Files one record as the index resolved it.
async fn file_resolved(
    inner: &mut Inner,
    store: &Store,
    key: RecordKey,
    demographics: Demographics,
    resolution: Resolution,
    changes: &mut Changes,
) -> Result<PersonId, GatewayError> {
    let identity = demographics.identity();
    let body = |person: &PersonId, method: Method, score: Option<f64>| RecordBody {
        record: key.clone(),
        person: person.clone(),
        demographics: demographics.clone(),
        method,
        score,
        by: None,
        reason: None,
        updated: now(),
    };
    let (person, method, score, reviews) = match resolution {
        Resolution::Known(person) => {
            let kept = inner.records.get(&key);
            if let Some(kept) = kept.filter(|r| r.demographics != demographics) {
                let mut updated = kept.clone();
                updated.demographics = demographics.clone();
                updated.updated = now();
                inner.put_record(updated, changes);
                households(inner, &demographics, changes);
            }
            return Ok(person);
        }
        Resolution::Exact { person, conflict } => {
            let conflicts: Vec<Candidate> = conflict.into_iter().collect();
            (
                person,
                Method::NhsNumber,
                None,
                (conflicts, "nhs-number-conflict"),
            )
        }
        Resolution::Linked(candidate) => {
            // A link the household rule made (no score above the threshold) says so.
            let method = if candidate.comparison.score >= inner.index.thresholds().link {
                Method::Score
            } else {
                Method::Household
            };
            (
                candidate.person,
                method,
                Some(candidate.comparison.score),
                (Vec::new(), "match"),
            )
        }
        Resolution::Review(candidates) => {
            let person = new_person(inner, store, &identity, changes).await?;
            (person, Method::New, None, (candidates, "match"))
        }
        Resolution::New => {
            let person = new_person(inner, store, &identity, changes).await?;
            (person, Method::New, None, (Vec::new(), "match"))
        }
    };
    inner.put_record(body(&person, method, score), changes);
    households(inner, &demographics, changes);
    let described = match score {
        Some(score) => format!(
            "filed under the person ({}, score {score:.1})",
            method.as_str()
        ),
        None => format!("filed under the person ({})", method.as_str()),
    };
    changes.audit.push(audit::identity_change(
        INDEX_AGENT,
        &person,
        "identity-link",
        &format!("kinfold.identity.{}", method.as_str()),
        vec![entity(&key, &described)],
        None,
    ));
    let (candidates, kind) = reviews;
    for candidate in candidates.into_iter().take(MAX_REVIEW_PAIRS) {
        queue_review(inner, &key, &person, candidate, kind, changes);
    }
    Ok(person)
}

/// One agency record as a ledger entity, with what happened to it.
pub(crate) fn entity(key: &RecordKey, what: &str) -> AuditEntity {
    AuditEntity {
        reference: key.reference.clone(),
        resource_type: key
            .reference
            .split_once('/')
            .map_or("Patient", |(kind, _)| kind)
            .to_owned(),
        agency: Some(key.agency.as_str().to_owned()),
        disclosure: what.to_owned(),
    }
}

/// A new person: a record with an NHS number keeps the person id the gateway may already
/// have given that number; anyone else gets a fresh one.
async fn new_person(
    inner: &mut Inner,
    store: &Store,
    identity: &kinfold_identity::Identity,
    changes: &mut Changes,
) -> Result<PersonId, GatewayError> {
    let id = match &identity.nhs_number {
        Some(nhs) => match changes.person_ids.get(nhs.as_str()) {
            Some(id) => id.clone(),
            None => store.link_person(nhs).await?.0,
        },
        None => uuid::Uuid::new_v4().to_string(),
    };
    let person: PersonId = id.parse().map_err(|_| {
        GatewayError::Store(kinfold_store::StoreError::Corrupt(
            "a person id is not valid".into(),
        ))
    })?;
    if !inner.persons.contains_key(&person) {
        inner.put_person(
            PersonBody {
                id: person.clone(),
                created: now(),
                due_date: None,
                pregnancy: None,
                merged_into: None,
            },
            changes,
        );
    }
    Ok(person)
}

fn queue_review(
    inner: &mut Inner,
    key: &RecordKey,
    person: &PersonId,
    candidate: Candidate,
    kind: &str,
    changes: &mut Changes,
) {
    if candidate.person == *person {
        return;
    }
    let id = review_id(key, &candidate.person);
    if inner.reviews.contains_key(&id) {
        return;
    }
    let body = ReviewBody {
        id,
        kind: kind.to_owned(),
        record: key.clone(),
        candidate: candidate.person.clone(),
        candidate_record: candidate.record.clone(),
        score: candidate.comparison.score,
        comparison: serde_json::to_value(&candidate.comparison.fields).unwrap_or_default(),
        hold: candidate.hold.and_then(|h| serde_json::to_value(h).ok()),
        status: ReviewStatus::Open,
        created: now(),
        decided_by: None,
        reason: None,
    };
    changes.audit.push(audit::identity_change(
        INDEX_AGENT,
        person,
        "identity-review-queued",
        "kinfold.identity.review",
        vec![entity(
            key,
            &format!(
                "may be person {} (score {:.1}): queued for review",
                candidate.person, candidate.comparison.score
            ),
        )],
        None,
    ));
    inner.put_review(body, changes);
}

/// A review pair's id: the record and the candidate decide it.
fn review_id(key: &RecordKey, candidate: &PersonId) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    (key, candidate).hash(&mut hasher);
    format!("rv-{:016x}", hasher.finish())
}

/// Files a related person and joins them to the person by an edge.
async fn relate(
    inner: &mut Inner,
    store: &Store,
    agency: Agency,
    person: &PersonId,
    relation: EventRelation,
    changes: &mut Changes,
) -> Result<(), GatewayError> {
    if !relation.reference.starts_with("RelatedPerson/") {
        return Ok(());
    }
    let Some((kind, confidence)) = relation.kind() else {
        return Ok(());
    };
    let own_record = relation
        .patient
        .as_ref()
        .filter(|p| p.starts_with("Patient/"))
        .and_then(|p| {
            inner.index.person_of(&RecordKey {
                agency,
                reference: p.clone(),
            })
        })
        .cloned();
    let (family, given) = match (&relation.family, &relation.name_text) {
        (None, Some(text)) => split_name(text),
        _ => (relation.family.clone(), relation.given.clone()),
    };
    let related = match own_record {
        Some(related) => related,
        None => {
            let key = RecordKey {
                agency,
                reference: relation.reference.clone(),
            };
            let demographics = Demographics {
                nhs_number: relation.nhs_number.clone(),
                family,
                given,
                birth_date: relation.birth_date.clone(),
                gender: relation.gender.clone(),
                postcode: relation.postcode.clone(),
                address_line: relation.address_line.clone(),
                ..Demographics::default()
            };
            let mut resolution = inner.index.resolve(&key, &demographics.identity());
            if matches!(resolution, Resolution::New | Resolution::Review(_)) {
                // Too little to score (a partner named without a date of birth): the one
                // person of that name already around the child, or a person decides.
                let circle: Vec<PersonId> = inner
                    .graph()
                    .family_of(person)
                    .into_iter()
                    .map(|m| m.person)
                    .collect();
                match inner
                    .index
                    .within_household(&circle, &key, &demographics.identity())
                {
                    Resolution::New => {}
                    Resolution::Review(mut near) => {
                        if let Resolution::Review(scored) = resolution {
                            for candidate in scored {
                                if !near.iter().any(|n| n.person == candidate.person) {
                                    near.push(candidate);
                                }
                            }
                        }
                        resolution = Resolution::Review(near);
                    }
                    household => resolution = household,
                }
            }
            file_resolved(inner, store, key, demographics, resolution, changes).await?
        }
    };
    if related == *person {
        return Ok(());
    }
    let edge = Edge {
        id: edge_id(agency, &relation.reference),
        from: related,
        to: person.clone(),
        relation: kind,
        detail: relation.text.clone(),
        source: format!("{}/{}", agency.as_str(), relation.reference),
        confidence,
    };
    put_data_edge(inner, edge, changes);
    Ok(())
}

/// A baby notified at birth before naming ("Baby of …", no given name) and the same child's
/// named record elsewhere are one person when the data says so through the mother: the same
/// mother, the same date of birth, no other child of hers born that day (twins are never
/// joined this way), the same sex where both say, and no agency holding both. The score alone
/// may miss it (a baby registered under the father's surname at a new address).
fn join_baby(inner: &mut Inner, person: &PersonId, born_on: &str, changes: &mut Changes) {
    let graph = inner.graph();
    let mothers: Vec<PersonId> = graph
        .edges()
        .iter()
        .filter(|e| e.to == *person && e.relation.is_parental())
        .map(|e| e.from.clone())
        .collect();
    for mother in mothers {
        let mut same_day: Vec<PersonId> = graph
            .edges()
            .iter()
            .filter(|e| e.from == mother && e.relation.is_parental() && e.to != *person)
            .filter_map(|e| inner.current(&e.to))
            .filter(|child| child != person && born(inner, child) == Some(born_on))
            .collect();
        same_day.sort();
        same_day.dedup();
        let [other] = same_day.as_slice() else {
            continue;
        };
        let (baby, named) = match (unnamed(inner, person), unnamed(inner, other)) {
            (true, false) => (person.clone(), other.clone()),
            (false, true) => (other.clone(), person.clone()),
            _ => continue,
        };
        let agencies = |p: &PersonId| -> Vec<Agency> {
            inner.locate(p).into_iter().map(|k| k.agency).collect()
        };
        let (baby_at, named_at) = (agencies(&baby), agencies(&named));
        let sexes = |p: &PersonId| -> Vec<String> {
            inner
                .locate(p)
                .iter()
                .filter_map(|k| inner.records.get(k)?.demographics.gender.clone())
                .collect()
        };
        let conflicting_sex = sexes(&baby)
            .iter()
            .any(|a| sexes(&named).iter().any(|b| a != b));
        if baby_at.iter().any(|a| named_at.contains(a)) || conflicting_sex {
            continue;
        }
        let words = (
            format!("the baby notified at birth (person {baby}) is this child"),
            format!("this baby is person {named}, named since"),
        );
        merge_person(
            inner,
            &baby,
            &named,
            (
                Method::BirthAndMother,
                "kinfold.identity.birth-and-mother",
                words,
            ),
            changes,
        );
        return;
    }
}

/// The date of birth a person's records give (the first that gives one).
fn born<'a>(inner: &'a Inner, person: &PersonId) -> Option<&'a str> {
    inner
        .locate(person)
        .iter()
        .find_map(|k| inner.records.get(k)?.demographics.birth_date.as_deref())
}

/// Whether none of a person's records gives a given name (a baby before naming).
fn unnamed(inner: &Inner, person: &PersonId) -> bool {
    let records = inner.locate(person);
    !records.is_empty()
        && records.iter().all(|k| {
            inner
                .records
                .get(k)
                .is_none_or(|r| kinfold_identity::normalise::is_placeholder(&r.demographics.given))
        })
}

/// Moves every record and edge of one person to another (the one person they are), and keeps
/// the first's id answering as the second.
/// An agency merged one of its records into another (an HL7 A40): the person the old record
/// belongs to is the surviving record's person from now on, with the merge in both people's
/// access reports. A merge that contradicts Kinfold's own evidence (the two people hold
/// different valid NHS numbers) goes to review instead.
fn source_merge(
    inner: &mut Inner,
    surviving: &RecordKey,
    person: &PersonId,
    replaced: String,
    changes: &mut Changes,
) {
    let old_key = RecordKey {
        agency: surviving.agency,
        reference: replaced,
    };
    let Some(old) = inner
        .index
        .person_of(&old_key)
        .cloned()
        .and_then(|p| inner.current(&p))
    else {
        return;
    };
    if old == *person {
        return;
    }
    let conflict = matches!(
        (inner.nhs_number_of(&old), inner.nhs_number_of(person)),
        (Some(a), Some(b)) if a != b
    );
    if conflict {
        if let Some(candidate) = inner.index.compare_person(&old, surviving) {
            queue_review(inner, surviving, person, candidate, "source-merge", changes);
        }
        return;
    }
    let agency = surviving.agency.display_name();
    let words = (
        format!(
            "{agency} merged its record {} into {} (HL7 A40): person {old} is this person",
            old_key.reference, surviving.reference
        ),
        format!(
            "{agency} merged its record {} into {}: this person is person {person}",
            old_key.reference, surviving.reference
        ),
    );
    merge_person(
        inner,
        &old,
        person,
        (Method::SourceMerge, "kinfold.identity.source-merge", words),
        changes,
    );
}

/// Files every record of one person under another, with how and why: the method the records
/// are now linked by, the ledger rule, and the words for the surviving and the merged person.
fn merge_person(
    inner: &mut Inner,
    from: &PersonId,
    into: &PersonId,
    (method, rule, (into_words, from_words)): (Method, &str, (String, String)),
    changes: &mut Changes,
) {
    let keys = inner.index.records_of(from);
    for key in &keys {
        if let Some(mut record) = inner.records.get(key).cloned() {
            record.person = into.clone();
            record.method = method;
            record.score = None;
            record.updated = now();
            inner.put_record(record, changes);
        }
    }
    let moved: Vec<EdgeBody> = inner
        .edges
        .values()
        .filter(|e| e.edge.to == *from || e.edge.from == *from)
        .cloned()
        .collect();
    for mut body in moved {
        if body.edge.to == *from {
            body.edge.to = into.clone();
        }
        if body.edge.from == *from {
            body.edge.from = into.clone();
        }
        inner.put_edge(body, changes);
    }
    if let Some(body) = inner.persons.get(from).cloned() {
        inner.put_person(
            PersonBody {
                merged_into: Some(into.clone()),
                ..body
            },
            changes,
        );
    }
    for (person, what) in [(into, into_words), (from, from_words)] {
        changes.audit.push(audit::identity_change(
            INDEX_AGENT,
            person,
            "identity-link",
            rule,
            keys.iter().map(|k| entity(k, &what)).collect(),
            None,
        ));
    }
}

/// Household edges between the people at this record's address over overlapping dates.
fn households(inner: &mut Inner, demographics: &Demographics, changes: &mut Changes) {
    let Some(address) = demographics.address_key() else {
        return;
    };
    let Some(keys) = inner.addresses.get(&address) else {
        return;
    };
    let residences: Vec<Residence> = keys
        .iter()
        .filter(|k| k.reference.starts_with("Patient/"))
        .filter_map(|k| inner.records.get(k))
        .filter_map(|r| {
            Some(Residence {
                person: inner.current(&r.person)?,
                address: address.clone(),
                from: r.demographics.address_from.as_deref().and_then(date),
                until: r.demographics.address_until.as_deref().and_then(date),
                source: format!("{}/{}", r.record.agency.as_str(), r.record.reference),
            })
        })
        .collect();
    for edge in kinfold_identity::family::households(&residences) {
        put_data_edge(inner, edge, changes);
    }
}

/// "Dean Rowe" as family "Rowe" and given "Dean".
fn split_name(text: &str) -> (Option<String>, Vec<String>) {
    let mut words: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
    let family = words.pop();
    (family, words)
}

fn edge_id(agency: Agency, reference: &str) -> String {
    format!("{}.{}", agency.as_str(), reference.replace('/', "-"))
}

/// Keeps an edge the data states, unless it is already kept as it is (an edge taken back by
/// hand stays taken back).
fn put_data_edge(inner: &mut Inner, edge: Edge, changes: &mut Changes) {
    if let Some(kept) = inner.edges.get(&edge.id)
        && (kept.edge == edge || kept.retracted.is_some())
    {
        return;
    }
    changes.audit.push(audit::identity_change(
        INDEX_AGENT,
        &edge.to,
        "family-edge",
        "kinfold.family.edge-from-data",
        vec![AuditEntity {
            reference: edge.source.clone(),
            resource_type: "RelatedPerson".into(),
            agency: edge.source.split('/').next().map(str::to_owned),
            disclosure: format!(
                "{} is {} (edge {})",
                edge.from,
                edge.relation.as_str(),
                edge.id
            ),
        }],
        None,
    ));
    inner.put_edge(
        EdgeBody {
            edge,
            origin: "data".into(),
            asserted_by: None,
            reason: None,
            retracted: None,
        },
        changes,
    );
}

/// A booked pregnancy: the unborn child and its mother edge (once per pregnancy record).
fn book(
    inner: &mut Inner,
    agency: Agency,
    mother: &PersonId,
    pregnancy: Pregnancy,
    changes: &mut Changes,
) {
    let Some(due) = date(&pregnancy.due_date) else {
        return;
    };
    let id = edge_id(agency, &pregnancy.reference);
    let source = format!("{}/{}", agency.as_str(), pregnancy.reference);
    if let Some(kept) = inner.edges.get(&id) {
        // The pregnancy is known: keep its due date current.
        let unborn = kept.edge.to.clone();
        if let Some(body) = inner.persons.get(&unborn).cloned()
            && body.merged_into.is_none()
            && body.due_date != Some(due)
        {
            inner.put_person(
                PersonBody {
                    due_date: Some(due),
                    ..body
                },
                changes,
            );
        }
        return;
    }
    let unborn: PersonId = format!("unborn-{}", uuid::Uuid::new_v4())
        .parse()
        .expect("a uuid makes a valid person id");
    inner.put_person(
        PersonBody {
            id: unborn.clone(),
            created: now(),
            due_date: Some(due),
            pregnancy: Some(source.clone()),
            merged_into: None,
        },
        changes,
    );
    changes.audit.push(audit::identity_change(
        INDEX_AGENT,
        mother,
        "family-unborn-child",
        "kinfold.family.unborn-child",
        vec![AuditEntity {
            reference: pregnancy.reference.clone(),
            resource_type: "EpisodeOfCare".into(),
            agency: Some(agency.as_str().to_owned()),
            disclosure: format!("unborn child {unborn} due {due}"),
        }],
        None,
    ));
    put_data_edge(
        inner,
        Edge {
            id,
            from: mother.clone(),
            to: unborn,
            relation: Relation::Mother,
            detail: Some("booked pregnancy".into()),
            source,
            confidence: 1.0,
        },
        changes,
    );
}

/// A baby born: the unborn child its mother was carrying, if one was due near the birth,
/// becomes the baby (the unborn child's person now names the baby, and its edges move).
fn birth(inner: &mut Inner, baby: &PersonId, born: chrono::NaiveDate, changes: &mut Changes) {
    let graph = inner.graph();
    let mothers: Vec<PersonId> = graph
        .edges()
        .iter()
        .filter(|e| e.to == *baby && e.relation == Relation::Mother)
        .map(|e| e.from.clone())
        .collect();
    for mother in mothers {
        let Some(unborn) = graph.unborn_for_birth(&mother, born).cloned() else {
            continue;
        };
        if unborn == *baby {
            continue;
        }
        if let Some(body) = inner.persons.get(&unborn).cloned() {
            inner.put_person(
                PersonBody {
                    merged_into: Some(baby.clone()),
                    ..body
                },
                changes,
            );
        }
        let moved: Vec<EdgeBody> = inner
            .edges
            .values()
            .filter(|e| e.edge.to == unborn || e.edge.from == unborn)
            .cloned()
            .collect();
        for mut body in moved {
            if body.edge.to == unborn {
                body.edge.to = baby.clone();
            }
            if body.edge.from == unborn {
                body.edge.from = baby.clone();
            }
            inner.put_edge(body, changes);
        }
        changes.audit.push(audit::identity_change(
            INDEX_AGENT,
            baby,
            "family-born",
            "kinfold.family.born",
            vec![AuditEntity {
                reference: format!("urn:kinfold:person:{unborn}"),
                resource_type: "Person".into(),
                agency: None,
                disclosure: format!("the unborn child {unborn} is this baby, born {born}"),
            }],
            None,
        ));
    }
}
