//! Where every stored record came from (G12): the original input kept verbatim as a `Binary`,
//! and a `Provenance` per person per input naming the source agency, the author where the
//! source gives one, when the source recorded it, when this adapter received it (our own
//! clock, never the sender's) and the sender's message id.
//!
//! Ids are given at receipt, in order of arrival (UUID version 7: time first), so that each
//! new original, Provenance and event lands at the end of its index instead of on a page of
//! its own. A resend writes none of them: an input whose records are all stored already
//! stores nothing (see `Store::write_units`). A `Binary`'s id starts with its agency
//! (`ae.…`) so that the gateway knows which adapter to ask for it.

use base64::Engine as _;
use kinfold_fhir::{Agency, Resource};
use serde_json::{Value, json};

/// The input exactly as it came, and its media type.
#[derive(Debug, Clone)]
pub struct Original {
    /// e.g. `x-application/hl7-v2+er7`, `application/fhir+json`, `application/x-ndjson`.
    pub content_type: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// Who recorded an item at the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// Their name as the source gives it.
    pub name: String,
    /// Their role, if given (e.g. `health visitor`).
    pub role: Option<String>,
}

/// What the source says about an input, beyond its records.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The sender's id for it: `MSH-10`, `Bundle.identifier`, an extract row's id.
    pub message_id: Option<String>,
    /// When the source recorded it (a FHIR dateTime), if it says.
    pub recorded: Option<String>,
    /// Who recorded it, if the source says.
    pub author: Option<Author>,
    /// The input as it came; `None` only where there is nothing to keep.
    pub original: Option<Original>,
}

/// A new id, later in order than every id this process gave before: 32 hex digits, time
/// first (UUID version 7).
pub(crate) fn arrival_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// The id of the `Binary` that keeps an input: `{agency}.{key}`.
pub(crate) fn binary_id(agency: Agency, key: &str) -> String {
    format!("{}.{key}", agency.as_str())
}

/// The agency a `Binary` id belongs to.
pub fn agency_of_binary(id: &str) -> Option<Agency> {
    id.split_once('.')?.0.parse().ok()
}

/// The `Binary` keeping an input verbatim; its security context is the person, when the input
/// is about one person.
pub(crate) fn binary(id: &str, original: &Original, patient: Option<&str>) -> Option<Resource> {
    let mut value = json!({
        "resourceType": "Binary",
        "id": id,
        "contentType": original.content_type,
        "data": base64::engine::general_purpose::STANDARD.encode(&original.bytes),
    });
    if let Some(patient) = patient {
        value["securityContext"] = json!({"reference": format!("Patient/{patient}")});
    }
    Resource::from_value(value).ok()
}

/// One person's `Provenance` for an input.
pub(crate) struct ProvenanceParts<'a> {
    pub(crate) id: String,
    pub(crate) agency: Agency,
    pub(crate) patient: Option<&'a str>,
    pub(crate) targets: Vec<String>,
    pub(crate) received: &'a str,
    pub(crate) activity: &'a str,
    pub(crate) origin: &'a Origin,
    pub(crate) binary: Option<&'a str>,
}

impl ProvenanceParts<'_> {
    pub(crate) fn resource(self) -> Option<Resource> {
        let mut targets: Vec<Value> = Vec::with_capacity(self.targets.len() + 1);
        if let Some(patient) = self.patient {
            let reference = format!("Patient/{patient}");
            if !self.targets.contains(&reference) {
                targets.push(json!({"reference": reference}));
            }
        }
        targets.extend(self.targets.iter().map(|t| json!({"reference": t})));
        let mut agents = vec![json!({
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "custodian", "display": "Custodian"}]},
            "who": {"identifier": {"system": "urn:kinfold:agency", "value": self.agency.as_str()}, "display": self.agency.display_name()}
        })];
        if let Some(author) = &self.origin.author {
            let mut agent = json!({
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "author", "display": "Author"}]},
                "who": {"display": author.name},
            });
            if let Some(role) = &author.role {
                agent["role"] = json!([{"text": role}]);
            }
            agents.push(agent);
        }
        let mut what = serde_json::Map::new();
        if let Some(binary) = self.binary {
            what.insert("reference".into(), json!(format!("Binary/{binary}")));
        }
        if let Some(id) = &self.origin.message_id {
            what.insert(
                "identifier".into(),
                json!({"system": format!("urn:kinfold:message-id:{}", self.agency.as_str()), "value": id}),
            );
        }
        what.insert("display".into(), json!(self.activity));
        let mut value = json!({
            "resourceType": "Provenance",
            "id": self.id,
            "target": targets,
            "recorded": self.received,
            "activity": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "CREATE", "display": "create"}],
                "text": self.activity
            },
            "agent": agents,
            "entity": [{"role": "source", "what": what}],
        });
        if let Some(recorded) = &self.origin.recorded {
            value["occurredDateTime"] = json!(recorded);
        }
        Resource::from_value(value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_in_order_of_arrival() {
        let ids: Vec<String> = (0..1000).map(|_| arrival_id()).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
        assert!(ids.iter().all(|id| id.len() == 32));
    }

    #[test]
    fn a_binary_id_names_its_agency() {
        let id = binary_id(Agency::HealthVisiting, "abc");
        assert_eq!(agency_of_binary(&id), Some(Agency::HealthVisiting));
        assert_eq!(agency_of_binary("nobody.abc"), None);
        assert_eq!(agency_of_binary("abc"), None);
    }

    #[test]
    fn provenance_names_source_author_times_and_the_original() {
        let origin = Origin {
            message_id: Some("MSG1".into()),
            recorded: Some("2026-11-30T09:15:00+00:00".into()),
            author: Some(Author {
                name: "R. Okafor".into(),
                role: Some("triage nurse".into()),
            }),
            original: None,
        };
        let resource = ProvenanceParts {
            id: "prov-1".into(),
            agency: Agency::Ae,
            patient: Some("nhs-1"),
            targets: vec!["Encounter/visit-1".into()],
            received: "2026-11-30T09:15:02.120Z",
            activity: "HL7 v2 ADT^A01 over MLLP",
            origin: &origin,
            binary: Some("ae.abc"),
        }
        .resource()
        .expect("a valid Provenance");
        let json = serde_json::to_value(&resource).expect("json");
        assert_eq!(json["target"][0]["reference"], "Patient/nhs-1");
        assert_eq!(json["target"][1]["reference"], "Encounter/visit-1");
        assert_eq!(json["occurredDateTime"], "2026-11-30T09:15:00+00:00");
        assert_eq!(json["recorded"], "2026-11-30T09:15:02.120Z");
        assert_eq!(json["agent"][1]["who"]["display"], "R. Okafor");
        assert_eq!(json["agent"][1]["role"][0]["text"], "triage nurse");
        assert_eq!(json["entity"][0]["what"]["reference"], "Binary/ae.abc");
        assert_eq!(json["entity"][0]["what"]["identifier"]["value"], "MSG1");
        assert_eq!(resource.search_index().patient.as_deref(), Some("nhs-1"));
    }
}
