//! Joining the agencies' answers into one FHIR searchset, saying where each record came
//! from and which agencies are missing (G4: never a silent partial answer; G12: provenance).

use chrono::{SecondsFormat, Utc};
use kinfold_fhir::{
    Agency, IssueSeverity, IssueType, NHS_NUMBER_SYSTEM, NhsNumber, OperationOutcome, Resource,
};
use serde_json::{Value, json};

use crate::fanout::{AgencyAnswer, AgencyFailure, AgencyRecord};

/// The order in which agencies' demographics are trusted for the gateway's Patient view: the
/// GP holds the registered details.
pub(crate) const DEMOGRAPHICS_ORDER: [Agency; 5] = [
    Agency::Gp,
    Agency::HealthVisiting,
    Agency::SchoolNursing,
    Agency::Midwifery,
    Agency::Ae,
];

/// The gateway's view of a person: Kinfold's id, the NHS number, demographics from the most
/// trusted agency that has them, and a `link` to each agency's own Patient record.
pub fn patient_view(
    person_id: &str,
    nhs: Option<&NhsNumber>,
    answers: &[AgencyAnswer],
) -> Option<Value> {
    let records: Vec<(Agency, &AgencyRecord)> = answers
        .iter()
        .filter_map(|a| a.result.as_ref().ok().map(|r| (a.agency, r)))
        .flat_map(|(agency, records)| records.iter().map(move |r| (agency, r)))
        .filter(|(_, r)| r.resource.get("resourceType").and_then(Value::as_str) == Some("Patient"))
        .collect();
    let best = DEMOGRAPHICS_ORDER
        .iter()
        .find_map(|agency| records.iter().find(|(a, _)| a == agency))?;
    let mut patient = json!({
        "resourceType": "Patient",
        "id": person_id,
        "meta": {"source": "urn:kinfold:gateway"},
    });
    if let Some(nhs) = nhs {
        patient["identifier"] = json!([{"system": NHS_NUMBER_SYSTEM, "value": nhs.as_str()}]);
    }
    for element in [
        "name",
        "gender",
        "birthDate",
        "communication",
        "deceasedBoolean",
        "multipleBirthBoolean",
        "multipleBirthInteger",
    ] {
        if let Some(value) = best.1.resource.get(element) {
            patient[element] = value.clone();
        }
    }
    patient["link"] = records
        .iter()
        .filter_map(|(agency, record)| {
            Some(agency_record_link(*agency, record.resource["id"].as_str()?))
        })
        .collect();
    Some(patient)
}

/// The system of a logical reference to an agency's record: `urn:kinfold:agency:{agency}`,
/// the same as the record's `meta.source`.
pub(crate) const AGENCY_RECORD_PREFIX: &str = "urn:kinfold:agency:";

/// A Patient view's link to one agency's Patient record. The adapters are not reachable by
/// clients, so the link is a logical reference (FHIR `Reference.identifier`): the agency (as
/// the system, the same as the record's `meta.source`) and the record's id there; in
/// `$everything` the record itself is in the same Bundle.
pub(crate) fn agency_record_link(agency: Agency, id: &str) -> Value {
    json!({
        "other": {
            "type": "Patient",
            "identifier": {"system": format!("{AGENCY_RECORD_PREFIX}{}", agency.as_str()), "value": id},
            "display": format!("{} record", agency.display_name())
        },
        "type": "seealso"
    })
}

/// The agency and `Patient/{id}` a link made by [`agency_record_link`] names.
pub(crate) fn linked_agency_record(link: &Value) -> Option<(Agency, String)> {
    let identifier = &link["other"]["identifier"];
    let agency = identifier["system"]
        .as_str()?
        .strip_prefix(AGENCY_RECORD_PREFIX)?
        .parse()
        .ok()?;
    Some((agency, format!("Patient/{}", identifier["value"].as_str()?)))
}

/// One person's part of an `$everything` answer.
#[derive(Debug)]
pub struct Part<'a> {
    /// Kinfold's person id.
    pub person_id: &'a str,
    /// Their NHS number, if known.
    pub nhs: Option<&'a NhsNumber>,
    /// How they are related to the person asked about (`None`: they are that person, or the
    /// answer is about one person only).
    pub kin: Option<kinfold_identity::family::Kin>,
    /// Each agency's answer about them.
    pub answers: Vec<AgencyAnswer>,
}

/// The extension on a family answer's entries naming whose record each is.
pub const FAMILY_MEMBER_EXTENSION: &str =
    "https://kinfold.example/fhir/StructureDefinition/family-member";

/// A searchset Bundle of every agency's records about one person, or a family.
///
/// Entries: each person's Patient view, then each agency's records (each stamped with
/// `meta.source` naming the agency), one `Provenance` per agency that answered, and an
/// `OperationOutcome` for every agency that did not. In a family answer (`family` true) every
/// entry carries a `family-member` extension: the person and their relationship to the child.
pub fn everything_bundle(self_url: &str, parts: Vec<Part<'_>>, family: bool) -> Value {
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut entries = Vec::new();
    let mut matches = 0u64;
    let mut provenance = Vec::new();
    let mut outcomes = Vec::new();
    for part in parts {
        let whose = family.then(|| whose(part.person_id, part.kin));
        // Built by moving each resource in (`json!` would copy it).
        let entry = |full_url: &str, resource: Value, mode: &str| {
            let mut entry = serde_json::Map::with_capacity(4);
            entry.insert("fullUrl".into(), Value::String(full_url.to_owned()));
            entry.insert("resource".into(), resource);
            entry.insert("search".into(), json!({ "mode": mode }));
            if let Some(whose) = &whose {
                entry.insert("extension".into(), Value::Array(vec![whose.clone()]));
            }
            Value::Object(entry)
        };
        if let Some(patient) = patient_view(part.person_id, part.nhs, &part.answers) {
            entries.push(entry(
                &format!("urn:kinfold:person:{}", part.person_id),
                patient,
                "match",
            ));
            matches += 1;
        }
        for answer in part.answers {
            if answer.truncated {
                outcomes.push(entry(&uuid_urn(), cut_short(answer.agency), "outcome"));
            }
            match answer.result {
                Ok(records) if records.is_empty() => {}
                Ok(records) => {
                    let targets: Vec<Value> = records
                        .iter()
                        .map(|r| json!({"reference": r.full_url}))
                        .collect();
                    for mut record in records {
                        stamp_source(&mut record.resource, answer.agency);
                        entries.push(entry(&record.full_url, record.resource, "match"));
                        matches += 1;
                    }
                    provenance.push(entry(
                        &uuid_urn(),
                        provenance_for(answer.agency, targets, &now),
                        "include",
                    ));
                }
                Err(failure) => outcomes.push(entry(
                    &uuid_urn(),
                    missing_agency(answer.agency, &failure),
                    "outcome",
                )),
            }
        }
    }
    entries.extend(provenance);
    entries.extend(outcomes);
    let mut bundle = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "meta": {"lastUpdated": now},
        "type": "searchset",
        "total": matches,
        "link": [{"relation": "self", "url": self_url}],
    });
    bundle["entry"] = Value::Array(entries);
    bundle
}

fn uuid_urn() -> String {
    format!("urn:uuid:{}", uuid::Uuid::new_v4())
}

/// The `family-member` extension: whose entry this is, and how they are related.
fn whose(person_id: &str, kin: Option<kinfold_identity::family::Kin>) -> Value {
    let relationship = match kin {
        Some(kin) => {
            let (system, code, display) = kin.coding();
            json!({"system": system, "code": code, "display": display})
        }
        None => {
            json!({"system": kinfold_identity::family::KIN_SYSTEM, "code": "self", "display": "the child asked about"})
        }
    };
    json!({
        "url": FAMILY_MEMBER_EXTENSION,
        "extension": [
            {"url": "person", "valueReference": {"reference": format!("Patient/{person_id}")}},
            {"url": "relationship", "valueCoding": relationship}
        ]
    })
}

/// Appends an outcome entry to a searchset.
pub fn add_outcome(bundle: &mut Value, outcome: Value) {
    if let Some(entries) = bundle["entry"].as_array_mut() {
        entries.push(
            json!({"fullUrl": uuid_urn(), "resource": outcome, "search": {"mode": "outcome"}}),
        );
    }
}

/// A searchset of the gateway's own resources (consents, flags), each under
/// `urn:kinfold:{kind}:{id}`.
pub fn own_searchset(kind: &str, resources: &[Value]) -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": resources.len(),
        "entry": resources.iter().map(|r| json!({
            "fullUrl": format!("urn:kinfold:{kind}:{}", r["id"].as_str().unwrap_or_default()),
            "resource": r,
            "search": {"mode": "match"},
        })).collect::<Vec<_>>(),
    })
}

/// Appends an outcome entry to a searchset, making its `entry` list if it has none.
pub fn add_outcome_entry(bundle: &mut Value, outcome: Value) {
    if !bundle["entry"].is_array() {
        bundle["entry"] = Value::Array(Vec::new());
    }
    add_outcome(bundle, outcome);
}

/// An `OperationOutcome` saying the person index has received events it has not read yet:
/// the answer used the index as it stands rather than wait.
pub fn index_behind(events: i64) -> Value {
    let outcome = OperationOutcome::single(
        IssueSeverity::Information,
        IssueType::Incomplete,
        format!(
            "The person index has {events} received event{} still to read: a person or link from the newest records may not show in this answer yet. Ask again shortly.",
            if events == 1 { "" } else { "s" }
        ),
    )
    .with_code("index-behind");
    serde_json::to_value(Resource::from(outcome)).unwrap_or(Value::Null)
}

/// An `OperationOutcome` saying how many of an agency's items the caller may not see, under
/// which rule, and whether an override could reveal them; nothing of their content.
pub fn suppressed(tally: &crate::disclosure::Withheld) -> Value {
    let override_note = if tally.overridable {
        "an override (purpose override, with a justification) can reveal them, and is recorded and reviewed"
    } else {
        "no override reveals them"
    };
    let outcome = OperationOutcome::single(
        IssueSeverity::Information,
        IssueType::Suppressed,
        format!(
            "{} item{} from {} ({}) withheld under rule {}; {override_note}.",
            tally.count,
            if tally.count == 1 { "" } else { "s" },
            tally.agency.display_name(),
            tally.agency.as_str(),
            tally.rule,
        ),
    )
    .with_code("withheld");
    naming(tally.agency, outcome)
}

/// An `OperationOutcome` saying a family answer left members out.
pub fn family_cut_short(left_out: usize) -> Value {
    let outcome = OperationOutcome::single(
        IssueSeverity::Warning,
        IssueType::TooCostly,
        format!(
            "The family has more members than one answer carries ({}); {left_out} are not in this answer. Ask for them one by one from the $family Group.",
            crate::disclosure::MAX_FAMILY
        ),
    )
    .with_code("family-truncated");
    serde_json::to_value(Resource::from(outcome)).unwrap_or(Value::Null)
}

/// A searchset of the gateway's Patient view (zero or one), with outcomes for missing agencies.
pub fn patient_search_bundle(
    self_url: &str,
    patient: Option<Value>,
    failures: Vec<(Agency, AgencyFailure)>,
) -> Value {
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let total = u64::from(patient.is_some());
    let mut entries: Vec<Value> = patient
        .into_iter()
        .map(|p| {
            let id = p["id"].as_str().unwrap_or_default().to_owned();
            json!({"fullUrl": format!("urn:kinfold:person:{id}"), "resource": p, "search": {"mode": "match"}})
        })
        .collect();
    entries.extend(failures.iter().map(|(agency, failure)| {
        json!({"fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()), "resource": missing_agency(*agency, failure), "search": {"mode": "outcome"}})
    }));
    let mut bundle = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "meta": {"lastUpdated": now},
        "type": "searchset",
        "total": total,
        "link": [{"relation": "self", "url": self_url}],
    });
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    bundle
}

fn stamp_source(resource: &mut Value, agency: Agency) {
    if let Some(object) = resource.as_object_mut() {
        let meta = object.entry("meta").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("source".into(), Value::String(agency.source_uri()));
        }
    }
}

fn provenance_for(agency: Agency, targets: Vec<Value>, now: &str) -> Value {
    json!({
        "resourceType": "Provenance",
        "id": uuid::Uuid::new_v4().to_string(),
        "target": targets,
        "recorded": now,
        "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "UPDATE", "display": "revise"}], "text": "Retrieved live from the agency's adapter by the Kinfold gateway"},
        "agent": [{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "custodian", "display": "Custodian"}]},
            "who": {"identifier": {"system": "urn:kinfold:agency", "value": agency.as_str()}, "display": agency.display_name()}
        }]
    })
}

/// An `OperationOutcome` saying an agency had more records than one answer carries.
pub fn cut_short(agency: Agency) -> Value {
    let outcome = OperationOutcome::single(
        IssueSeverity::Warning,
        IssueType::TooCostly,
        format!(
            "{} ({}) holds more records for this person than one answer carries ({} pages); only the first are in this answer.",
            agency.display_name(),
            agency.as_str(),
            crate::fanout::MAX_PAGES
        ),
    )
    .with_code("agency-truncated");
    naming(agency, outcome)
}

/// An outcome about one agency, its issue's details coded with the agency, as JSON.
fn naming(agency: Agency, mut outcome: OperationOutcome) -> Value {
    if let Some(issue) = outcome.issue.first_mut() {
        issue.details = Some(kinfold_fhir::CodeableConcept::coded(
            "urn:kinfold:agency",
            agency.as_str(),
            agency.display_name(),
        ));
    }
    serde_json::to_value(Resource::from(outcome)).unwrap_or(Value::Null)
}

/// The URL of the extension by which the gateway's Patient view names an agency whose record
/// is missing from it.
pub const MISSING_AGENCY_EXTENSION: &str =
    "https://kinfold.example/fhir/StructureDefinition/missing-agency";

/// Marks a Patient view built without some agencies: one `missing-agency` extension per
/// agency that did not answer (its code, and why), so a read is never silently partial.
pub fn name_missing_agencies(patient: &mut Value, answers: &[AgencyAnswer]) {
    let missing: Vec<Value> = answers
        .iter()
        .filter_map(|a| a.result.as_ref().err().map(|f| (a.agency, f)))
        .map(|(agency, failure)| {
            json!({
                "url": MISSING_AGENCY_EXTENSION,
                "extension": [
                    {"url": "agency", "valueCode": agency.as_str()},
                    {"url": "reason", "valueString": format!("{} ({}) {}; its record is missing from this view.", agency.display_name(), agency.as_str(), failure.describe())}
                ]
            })
        })
        .collect();
    if !missing.is_empty() {
        patient["extension"] = Value::Array(missing);
    }
}

/// An `OperationOutcome` naming an agency whose records are missing, and why.
pub fn missing_agency(agency: Agency, failure: &AgencyFailure) -> Value {
    let code = match failure {
        AgencyFailure::Timeout(_) => IssueType::Timeout,
        AgencyFailure::Unreachable => IssueType::Transient,
        AgencyFailure::Tls(_) => IssueType::Security,
        AgencyFailure::Status(_) => IssueType::Exception,
        AgencyFailure::Invalid => IssueType::Invalid,
        AgencyFailure::NotAsked => IssueType::Incomplete,
    };
    let why = failure.describe();
    let outcome = OperationOutcome::single(
        IssueSeverity::Warning,
        code,
        format!(
            "{} ({}) {why}; its records are missing from this answer.",
            agency.display_name(),
            agency.as_str()
        ),
    );
    naming(agency, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::AgencyRecord;

    fn answer(agency: Agency, truncated: bool) -> AgencyAnswer {
        AgencyAnswer {
            agency,
            result: Ok(vec![AgencyRecord {
                full_url: format!("http://{}/Observation/1", agency.as_str()),
                resource: json!({"resourceType": "Observation", "id": "1"}),
            }]),
            truncated,
        }
    }

    #[test]
    fn an_agency_cut_short_is_named_in_the_answer() {
        let nhs: NhsNumber = "9434765919".parse().unwrap();
        let bundle = everything_bundle(
            "http://gateway/x",
            vec![Part {
                person_id: "p",
                nhs: Some(&nhs),
                kin: None,
                answers: vec![answer(Agency::Gp, true), answer(Agency::Ae, false)],
            }],
            false,
        );
        let outcomes: Vec<&Value> = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["search"]["mode"] == "outcome")
            .collect();
        assert_eq!(outcomes.len(), 1, "{bundle}");
        let issue = &outcomes[0]["resource"]["issue"][0];
        assert_eq!(issue["code"], "too-costly");
        assert_eq!(issue["details"]["coding"][0]["code"], "gp");
        assert!(
            bundle["entry"][0].get("extension").is_none(),
            "one person: no family-member"
        );
    }

    #[test]
    fn a_family_answer_says_whose_each_entry_is() {
        let bundle = everything_bundle(
            "http://gateway/x",
            vec![
                Part {
                    person_id: "child",
                    nhs: None,
                    kin: None,
                    answers: vec![answer(Agency::Gp, false)],
                },
                Part {
                    person_id: "sib",
                    nhs: None,
                    kin: Some(kinfold_identity::family::Kin::Sibling),
                    answers: vec![answer(Agency::Ae, false)],
                },
            ],
            true,
        );
        let whose: Vec<(String, String)> = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["search"]["mode"] == "match")
            .map(|e| {
                let parts = &e["extension"][0]["extension"];
                (
                    parts[0]["valueReference"]["reference"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                    parts[1]["valueCoding"]["code"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            whose,
            [
                ("Patient/child".to_owned(), "self".to_owned()),
                ("Patient/sib".to_owned(), "SIB".to_owned())
            ]
        );
    }
}
