//! The events an adapter owes the gateway: one per person per stored input, naming the
//! agency, the records stored, the person's identifiers and demographics (so that the gateway
//! can link them without asking back), and event codes for the rules that read them.
//!
//! Codes come from two places: each record's type (`ed-attendance`, `condition`, …), and the
//! tags a feed puts on what it makes (`meta.tag` in [`EVENT_SYSTEM`]: `injury`,
//! `birth-notification`, `domestic-abuse-notification`, …). `docs/feeds/events.md` lists them.

use kinfold_fhir::{Agency, NHS_NUMBER_SYSTEM, Resource};
use serde::Serialize;
use serde_json::Value;

/// The code system of event codes, as `meta.tag` on the records a feed makes.
pub use kinfold_fhir::codes::EVENT_SYSTEM;

/// One event, as the gateway receives it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedEvent {
    /// Unique at this agency; the same input never makes two.
    pub id: String,
    /// The agency whose adapter stored the records.
    pub agency: Agency,
    /// When the adapter received the input (its own clock).
    pub received: String,
    /// The sender's id for the input, if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_message_id: Option<String>,
    /// The person, if the records are about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<EventPatient>,
    /// The records stored, as references at the adapter (`Encounter/visit-1`).
    pub resources: Vec<String>,
    /// What happened, for rules: see the module documentation.
    pub codes: Vec<String>,
    /// People the records name as related to the person (RelatedPerson records), for the
    /// gateway's family graph.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub relations: Vec<EventRelation>,
    /// A booked pregnancy among the records: the unborn child's due date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pregnancy: Option<EventPregnancy>,
}

/// Someone a record names as related to the person.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRelation {
    /// `RelatedPerson/{id}` at the adapter.
    pub reference: String,
    /// The HL7 v3 RoleCode of the relationship, when coded (`MTH`, `FTH`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The relationship in words, when given ("mother's partner").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Named in a domestic-abuse notification about the person.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub named_in_domestic_abuse_notification: bool,
    /// The related person's own Patient record at this adapter, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// The related person's NHS number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nhs_number: Option<String>,
    /// Family name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Given names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub given: Vec<String>,
    /// The name in words, when it was not split into parts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_text: Option<String>,
    /// Date of birth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    /// Administrative gender.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// Postcode of their first address, when the record gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postcode: Option<String>,
    /// First line of that address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address_line: Option<String>,
}

/// The HL7 v3 RoleCode system, in which the gateway reads relationships.
pub const ROLE_CODE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleCode";

/// The extension naming a related person's own Patient record at the adapter.
pub const KINFOLD_PATIENT_EXTENSION: &str =
    "https://kinfold.example/fhir/StructureDefinition/kinfold-patient";
/// The extension carrying a pregnancy's estimated due date.
pub const DUE_DATE_EXTENSION: &str =
    "https://kinfold.example/fhir/StructureDefinition/estimated-due-date";

impl EventRelation {
    /// The relation a RelatedPerson record states.
    pub fn of(record: &Resource) -> Option<Self> {
        let Resource::RelatedPerson(r) = record else {
            return None;
        };
        let relationship = r.relationship.first();
        let name = r.name.first();
        let codes = record.meta().map(|m| m.tag).unwrap_or_default();
        let address = |field: &str| {
            r.extra
                .get("address")
                .and_then(|a| a.get(0))
                .and_then(|a| a.get(field))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Some(Self {
            reference: format!("RelatedPerson/{}", r.id.as_deref()?),
            // The v3 RoleCode coding when there is one (an NK1 also carries its HL7 v2
            // table 0063 code); otherwise the first code given.
            code: relationship
                .and_then(|c| {
                    c.coding
                        .iter()
                        .find(|c| c.system.as_deref() == Some(ROLE_CODE_SYSTEM))
                        .or(c.coding.first())
                })
                .and_then(|c| c.code.clone()),
            text: relationship.and_then(|c| c.text.clone()),
            named_in_domestic_abuse_notification: codes.iter().any(|t| {
                t.system.as_deref() == Some(EVENT_SYSTEM)
                    && t.code.as_deref() == Some("named-in-domestic-abuse-notification")
            }),
            patient: r
                .extra
                .get("extension")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|e| e["url"] == KINFOLD_PATIENT_EXTENSION)
                .and_then(|e| e["valueReference"]["reference"].as_str())
                .map(str::to_owned),
            nhs_number: r
                .identifier
                .iter()
                .find(|i| i.system.as_deref() == Some(NHS_NUMBER_SYSTEM))
                .and_then(|i| i.value.clone()),
            family: name.and_then(|n| n.family.clone()),
            given: name.map(|n| n.given.clone()).unwrap_or_default(),
            name_text: name.and_then(|n| n.text.clone()),
            birth_date: r.birth_date.clone(),
            gender: r.gender.clone(),
            postcode: address("postalCode"),
            address_line: r
                .extra
                .get("address")
                .and_then(|a| a.get(0))
                .and_then(|a| a.get("line"))
                .and_then(|l| l.get(0))
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

/// Each RelatedPerson that a Patient among these records says is itself (`Patient.link` to
/// `RelatedPerson/{id}`), mapped to that Patient: `RelatedPerson/{id}` → `Patient/{id}`.
pub fn linked_related_people(records: &[Resource]) -> std::collections::BTreeMap<String, String> {
    let mut own = std::collections::BTreeMap::new();
    for record in records {
        let Resource::Patient(patient) = record else {
            continue;
        };
        let Some(id) = patient.id.as_deref() else {
            continue;
        };
        for link in patient
            .extra
            .get("link")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(other) = link["other"]["reference"].as_str()
                && other.starts_with("RelatedPerson/")
            {
                own.insert(other.to_owned(), format!("Patient/{id}"));
            }
        }
    }
    own
}

/// A booked pregnancy.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventPregnancy {
    /// The record of the pregnancy (`EpisodeOfCare/{id}`).
    pub reference: String,
    /// Its estimated due date.
    pub due_date: String,
}

impl EventPregnancy {
    /// The pregnancy a record books, if it is one (tagged `pregnancy-booked`, with a due date).
    pub fn of(record: &Resource) -> Option<Self> {
        let Resource::EpisodeOfCare(episode) = record else {
            return None;
        };
        if !codes_of(record).iter().any(|c| c == "pregnancy-booked") {
            return None;
        }
        let due = episode
            .extra
            .get("extension")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|e| e["url"] == DUE_DATE_EXTENSION)
            .and_then(|e| e["valueDate"].as_str())?;
        Some(Self {
            reference: format!("EpisodeOfCare/{}", episode.id.as_deref()?),
            due_date: due.to_owned(),
        })
    }
}

/// Who the records are about, as the agency knows them.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventPatient {
    /// `Patient/{id}` at the adapter.
    pub reference: String,
    /// The NHS number, when the agency holds one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nhs_number: Option<String>,
    /// Every identifier the agency holds (`system|value`).
    pub identifiers: Vec<String>,
    /// Family name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Given names.
    pub given: Vec<String>,
    /// Date of birth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    /// Administrative gender.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// Postcode of the first address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postcode: Option<String>,
    /// First line of the first address (for households: people at one address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address_line: Option<String>,
    /// Town of the first address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Since when the person has lived there, if the record says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address_from: Option<String>,
    /// Until when, if the record says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address_until: Option<String>,
    /// Records of this agency that this one replaces (`Patient.link` of type `replaces`: an
    /// HL7 A40 merge), as references at the adapter.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replaces: Vec<String>,
}

impl EventPatient {
    /// The person as a Patient record describes them.
    pub fn of(patient: &Resource) -> Option<Self> {
        let Resource::Patient(p) = patient else {
            return None;
        };
        let name = p.name.first();
        let address_value = p.extra.get("address").and_then(|a| a.get(0));
        let address = |field: &str| {
            address_value
                .and_then(|a| a.get(field))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let period = |end: &str| {
            address_value
                .and_then(|a| a.get("period"))
                .and_then(|p| p.get(end))
                .and_then(Value::as_str)
                .map(|d| d.get(..10).unwrap_or(d).to_owned())
        };
        Some(Self {
            reference: format!("Patient/{}", p.id.as_deref()?),
            nhs_number: p
                .identifier
                .iter()
                .find(|i| i.system.as_deref() == Some(NHS_NUMBER_SYSTEM))
                .and_then(|i| i.value.clone()),
            identifiers: p
                .identifier
                .iter()
                .filter_map(|i| {
                    Some(format!(
                        "{}|{}",
                        i.system.as_deref().unwrap_or(""),
                        i.value.as_deref()?
                    ))
                })
                .collect(),
            family: name.and_then(|n| n.family.clone()),
            given: name.map(|n| n.given.clone()).unwrap_or_default(),
            birth_date: p.birth_date.clone(),
            gender: p.gender.clone(),
            postcode: address("postalCode"),
            address_line: address_value
                .and_then(|a| a.get("line"))
                .and_then(|l| l.get(0))
                .and_then(Value::as_str)
                .map(str::to_owned),
            city: address("city"),
            address_from: period("start"),
            address_until: period("end"),
            replaces: p
                .extra
                .get("link")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|l| l["type"] == "replaces")
                .filter_map(|l| l["other"]["reference"].as_str())
                .filter(|r| r.starts_with("Patient/"))
                .map(str::to_owned)
                .collect(),
        })
    }
}

/// The event codes of one record: its kind, then the feed's tags.
pub fn codes_of(resource: &Resource) -> Vec<String> {
    let kind = match resource {
        Resource::Patient(_) => "patient",
        Resource::Encounter(e) => {
            if e.class.as_ref().and_then(|c| c.code.as_deref()) == Some("EMER") {
                "ed-attendance"
            } else {
                "encounter"
            }
        }
        Resource::Condition(_) => "condition",
        Resource::Observation(_) => "observation",
        Resource::Flag(_) => "flag",
        Resource::DocumentReference(_) => "document",
        Resource::EpisodeOfCare(_) => "episode-of-care",
        Resource::RelatedPerson(_) => "related-person",
        Resource::Communication(_) => "communication",
        Resource::Task(_) => "task",
        Resource::Consent(_) => "consent",
        _ => "record",
    };
    let mut codes = vec![kind.to_owned()];
    let tags = resource.meta().map(|meta| meta.tag).unwrap_or_default();
    codes.extend(
        tags.into_iter()
            .filter(|tag| tag.system.as_deref() == Some(EVENT_SYSTEM))
            .filter_map(|tag| tag.code),
    );
    codes
}

/// Every distinct code of a set of records, in first-seen order.
pub fn codes_of_all<'a>(resources: impl IntoIterator<Item = &'a Resource>) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for resource in resources {
        for code in codes_of(resource) {
            if !all.contains(&code) {
                all.push(code);
            }
        }
    }
    all
}

/// Tags a record made by a feed with event codes (as `meta.tag`).
pub fn tag(resource: &mut Value, codes: &[&str]) {
    if codes.is_empty() {
        return;
    }
    let tags: Vec<Value> = codes
        .iter()
        .map(|c| serde_json::json!({"system": EVENT_SYSTEM, "code": c}))
        .collect();
    let meta = &mut resource["meta"];
    if !meta.is_object() {
        *meta = serde_json::json!({});
    }
    match meta.get_mut("tag").and_then(Value::as_array_mut) {
        Some(existing) => existing.extend(tags),
        None => meta["tag"] = Value::Array(tags),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn codes_come_from_the_kind_and_the_feed_tags() {
        let mut value = json!({
            "resourceType": "Encounter", "id": "v1", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
            "subject": {"reference": "Patient/p1"}
        });
        tag(&mut value, &["ed-attendance-adult-risk"]);
        let encounter = Resource::from_value(value).expect("valid");
        assert_eq!(
            codes_of(&encounter),
            ["ed-attendance", "ed-attendance-adult-risk"]
        );
        let condition = Resource::from_value(json!({
            "resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
            "meta": {"tag": [{"system": "http://other.example", "code": "injury"}]}
        }))
        .expect("valid");
        // A tag in another system is not ours.
        assert_eq!(codes_of(&condition), ["condition"]);
        assert_eq!(
            codes_of_all([&encounter, &condition, &encounter]),
            ["ed-attendance", "ed-attendance-adult-risk", "condition"]
        );
    }

    #[test]
    fn relations_and_pregnancies_travel_for_the_family_graph() {
        let mut mother = json!({
            "resourceType": "RelatedPerson", "id": "mother-of-b1",
            "patient": {"reference": "Patient/b1"},
            "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": "9990000018"}],
            "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH"}]}],
            "name": [{"family": "Haddad", "given": ["Rana"]}],
            "extension": [{"url": KINFOLD_PATIENT_EXTENSION, "valueReference": {"reference": "Patient/m1"}}]
        });
        tag(&mut mother, &["mother-of"]);
        let relation =
            EventRelation::of(&Resource::from_value(mother).expect("valid")).expect("a relation");
        assert_eq!(relation.reference, "RelatedPerson/mother-of-b1");
        assert_eq!(relation.code.as_deref(), Some("MTH"));
        assert_eq!(relation.patient.as_deref(), Some("Patient/m1"));
        assert_eq!(relation.nhs_number.as_deref(), Some("9990000018"));
        assert!(!relation.named_in_domestic_abuse_notification);
        let mut named = json!({
            "resourceType": "RelatedPerson", "id": "dan-adult-0", "patient": {"reference": "Patient/c1"},
            "relationship": [{"text": "mother's partner"}], "name": [{"text": "Dean Rowe"}]
        });
        tag(&mut named, &["named-in-domestic-abuse-notification"]);
        let named =
            EventRelation::of(&Resource::from_value(named).expect("valid")).expect("a relation");
        assert!(named.named_in_domestic_abuse_notification);
        assert_eq!(named.text.as_deref(), Some("mother's partner"));
        assert_eq!(named.name_text.as_deref(), Some("Dean Rowe"));
        let mut booking = json!({
            "resourceType": "EpisodeOfCare", "id": "preg-1", "status": "active",
            "patient": {"reference": "Patient/m1"},
            "extension": [{"url": DUE_DATE_EXTENSION, "valueDate": "2027-03-01"}]
        });
        let untagged = Resource::from_value(booking.clone()).expect("valid");
        assert_eq!(
            EventPregnancy::of(&untagged),
            None,
            "only a booked pregnancy"
        );
        tag(&mut booking, &["pregnancy-booked"]);
        let pregnancy = EventPregnancy::of(&Resource::from_value(booking).expect("valid"))
            .expect("a pregnancy");
        assert_eq!(pregnancy.reference, "EpisodeOfCare/preg-1");
        assert_eq!(pregnancy.due_date, "2027-03-01");
    }

    #[test]
    fn the_person_travels_with_their_identifiers_and_demographics() {
        let patient = Resource::from_value(json!({
            "resourceType": "Patient", "id": "nhs-9434765919",
            "identifier": [
                {"system": NHS_NUMBER_SYSTEM, "value": "9434765919"},
                {"system": "urn:oid:1.2.3", "value": "MRN7"}
            ],
            "name": [{"family": "Wójcik", "given": ["Ola", "Maria"]}],
            "gender": "female", "birthDate": "2021-03-04",
            "address": [{"line": ["3 Hyde Terrace"], "postalCode": "LS6 2AB", "period": {"start": "2020-01-01T00:00:00Z"}}]
        }))
        .expect("valid");
        let person = EventPatient::of(&patient).expect("a patient");
        assert_eq!(person.reference, "Patient/nhs-9434765919");
        assert_eq!(person.nhs_number.as_deref(), Some("9434765919"));
        assert_eq!(person.identifiers[1], "urn:oid:1.2.3|MRN7");
        assert_eq!(person.family.as_deref(), Some("Wójcik"));
        assert_eq!(person.given, ["Ola", "Maria"]);
        assert_eq!(person.postcode.as_deref(), Some("LS6 2AB"));
        assert_eq!(person.address_line.as_deref(), Some("3 Hyde Terrace"));
        assert_eq!(person.address_from.as_deref(), Some("2020-01-01"));
        assert_eq!(person.address_until, None);
    }
}
