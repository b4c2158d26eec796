//! Where every stored record came from (G12): the original input kept verbatim as a `Binary`,
//! and a `Provenance` per person per input naming the source agency, the author where the
//! source gives one, when the source recorded it, when this adapter received it (our own
//! clock, never the sender's) and the sender's message id.
//!
//! Ids are derived from the agency and the sender's message id (or, without one, the
//! input's bytes), so a resent input finds its provenance already stored: the first receipt
//! stands. A `Binary`'s id starts with its agency (`ae.…`) so that the gateway knows which
//! adapter to ask for it.

use base64::Engine as _;
use kinfold_fhir::{Agency, Resource};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

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

/// A short, stable key for an input: its message id, else a hash of its bytes.
pub(crate) fn input_key(agency: Agency, origin: &Origin) -> String {
    let mut hash = Sha256::new();
    hash.update(agency.as_str().as_bytes());
    hash.update([0]);
    match (&origin.message_id, &origin.original) {
        (Some(id), _) => {
            hash.update(b"id:");
            hash.update(id.as_bytes());
        }
        (None, Some(original)) => {
            hash.update(b"bytes:");
            hash.update(&original.bytes);
        }
        (None, None) => hash.update(uuid::Uuid::new_v4().as_bytes()),
    }
    hex(&hash.finalize()[..16])
}

/// A key for one person's part of an input.
pub(crate) fn part_key(input: &str, patient: Option<&str>) -> String {
    let mut hash = Sha256::new();
    hash.update(input.as_bytes());
    hash.update([0]);
    hash.update(patient.unwrap_or("").as_bytes());
    hex(&hash.finalize()[..16])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

    fn origin(id: Option<&str>, bytes: &[u8]) -> Origin {
        Origin {
            message_id: id.map(str::to_owned),
            original: Some(Original {
                content_type: "text/plain".into(),
                bytes: bytes.to_vec(),
            }),
            ..Origin::default()
        }
    }

    #[test]
    fn a_resend_has_the_same_key_and_another_message_another() {
        let a = input_key(Agency::Ae, &origin(Some("MSG1"), b"one"));
        assert_eq!(
            a,
            input_key(Agency::Ae, &origin(Some("MSG1"), b"one, resent"))
        );
        assert_ne!(a, input_key(Agency::Ae, &origin(Some("MSG2"), b"one")));
        assert_ne!(a, input_key(Agency::Gp, &origin(Some("MSG1"), b"one")));
        // Without a message id, the bytes decide.
        let b = input_key(Agency::Ae, &origin(None, b"row"));
        assert_eq!(b, input_key(Agency::Ae, &origin(None, b"row")));
        assert_ne!(b, input_key(Agency::Ae, &origin(None, b"row2")));
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
