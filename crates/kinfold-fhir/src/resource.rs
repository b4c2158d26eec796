//! The resources Kinfold exchanges, and [`Resource`], the one type that holds any of them.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::{
    Bundle, CodeableConcept, Coding, HumanName, Identifier, Meta, OperationOutcome, ParseError,
    Period, Quantity, Reference,
};

fhir_resource! {
    /// A child, parent or carer as one agency knows them.
    Patient {
        identifier: Vec<Identifier>,
        active: Option<bool>,
        name: Vec<HumanName>,
        gender: Option<String>,
        birth_date: Option<String>,
        deceased_boolean: Option<bool>,
        multiple_birth_boolean: Option<bool>,
        multiple_birth_integer: Option<i64>,
        communication: Vec<Value>,
        managing_organization: Option<Reference>,
    }
}

fhir_resource! {
    /// Someone related to a patient: a mother, a partner, a carer.
    RelatedPerson {
        identifier: Vec<Identifier>,
        active: Option<bool>,
        patient: Option<Reference>,
        relationship: Vec<CodeableConcept>,
        name: Vec<HumanName>,
        gender: Option<String>,
        birth_date: Option<String>,
    }
}

fhir_resource! {
    /// A set of people, such as a household.
    Group {
        identifier: Vec<Identifier>,
        r#type: Option<String>,
        actual: Option<bool>,
        code: Option<CodeableConcept>,
        name: Option<String>,
        member: Vec<Value>,
    }
}

fhir_resource! {
    /// A contact between a patient and a service: an A&E attendance, a home visit.
    Encounter {
        identifier: Vec<Identifier>,
        status: Option<String>,
        class: Option<Coding>,
        r#type: Vec<CodeableConcept>,
        subject: Option<Reference>,
        period: Option<Period>,
        reason_code: Vec<CodeableConcept>,
        service_provider: Option<Reference>,
    }
}

fhir_resource! {
    /// A period of care by one service, such as health visiting.
    EpisodeOfCare {
        identifier: Vec<Identifier>,
        status: Option<String>,
        r#type: Vec<CodeableConcept>,
        patient: Option<Reference>,
        managing_organization: Option<Reference>,
        period: Option<Period>,
        care_manager: Option<Reference>,
    }
}

fhir_resource! {
    /// A measurement or finding, such as a weight.
    Observation {
        identifier: Vec<Identifier>,
        status: Option<String>,
        category: Vec<CodeableConcept>,
        code: Option<CodeableConcept>,
        subject: Option<Reference>,
        encounter: Option<Reference>,
        effective_date_time: Option<String>,
        effective_period: Option<Period>,
        issued: Option<String>,
        performer: Vec<Reference>,
        value_quantity: Option<Quantity>,
        value_codeable_concept: Option<CodeableConcept>,
        value_string: Option<String>,
    }
}

fhir_resource! {
    /// A problem, diagnosis or injury.
    Condition {
        identifier: Vec<Identifier>,
        clinical_status: Option<CodeableConcept>,
        verification_status: Option<CodeableConcept>,
        category: Vec<CodeableConcept>,
        code: Option<CodeableConcept>,
        subject: Option<Reference>,
        encounter: Option<Reference>,
        onset_date_time: Option<String>,
        recorded_date: Option<String>,
    }
}

fhir_resource! {
    /// A warning to anyone who opens the record, such as a safeguarding concern.
    Flag {
        identifier: Vec<Identifier>,
        status: Option<String>,
        category: Vec<CodeableConcept>,
        code: Option<CodeableConcept>,
        subject: Option<Reference>,
        period: Option<Period>,
        author: Option<Reference>,
    }
}

fhir_resource! {
    /// A document: a letter, a form, strategy-meeting minutes.
    DocumentReference {
        identifier: Vec<Identifier>,
        status: Option<String>,
        r#type: Option<CodeableConcept>,
        category: Vec<CodeableConcept>,
        subject: Option<Reference>,
        date: Option<String>,
        author: Vec<Reference>,
        description: Option<String>,
        content: Vec<Value>,
    }
}

fhir_resource! {
    /// A booked appointment, and whether the patient came (`noshow`: was not brought).
    Appointment {
        identifier: Vec<Identifier>,
        status: Option<String>,
        service_type: Vec<CodeableConcept>,
        description: Option<String>,
        start: Option<String>,
        participant: Vec<Value>,
    }
}

fhir_resource! {
    /// An allergy or intolerance (a GP record area).
    AllergyIntolerance {
        identifier: Vec<Identifier>,
        code: Option<CodeableConcept>,
        patient: Option<Reference>,
        recorded_date: Option<String>,
    }
}

fhir_resource! {
    /// A vaccination given (a GP record area).
    Immunization {
        identifier: Vec<Identifier>,
        status: Option<String>,
        vaccine_code: Option<CodeableConcept>,
        patient: Option<Reference>,
        occurrence_date_time: Option<String>,
    }
}

fhir_resource! {
    /// A medicine the patient takes or took (a GP record area).
    MedicationStatement {
        identifier: Vec<Identifier>,
        status: Option<String>,
        medication_codeable_concept: Option<CodeableConcept>,
        subject: Option<Reference>,
        effective_date_time: Option<String>,
        effective_period: Option<Period>,
    }
}

fhir_resource! {
    /// A prescription (a GP record area).
    MedicationRequest {
        identifier: Vec<Identifier>,
        status: Option<String>,
        medication_codeable_concept: Option<CodeableConcept>,
        subject: Option<Reference>,
        authored_on: Option<String>,
    }
}

fhir_resource! {
    /// Something done to or for the patient (a GP record area).
    Procedure {
        identifier: Vec<Identifier>,
        status: Option<String>,
        code: Option<CodeableConcept>,
        subject: Option<Reference>,
        performed_date_time: Option<String>,
    }
}

fhir_resource! {
    /// A referral or request for a service (a GP record area).
    ServiceRequest {
        identifier: Vec<Identifier>,
        status: Option<String>,
        code: Option<CodeableConcept>,
        subject: Option<Reference>,
        authored_on: Option<String>,
    }
}

fhir_resource! {
    /// A set of results, such as a blood test (a GP record area).
    DiagnosticReport {
        identifier: Vec<Identifier>,
        status: Option<String>,
        code: Option<CodeableConcept>,
        subject: Option<Reference>,
        effective_date_time: Option<String>,
    }
}

fhir_resource! {
    /// A plan of care (a GP record area).
    CarePlan {
        identifier: Vec<Identifier>,
        status: Option<String>,
        category: Vec<CodeableConcept>,
        subject: Option<Reference>,
        period: Option<Period>,
    }
}

fhir_resource! {
    /// An organisation: a GP practice, a school, a trust.
    Organization {
        identifier: Vec<Identifier>,
        name: Option<String>,
    }
}

fhir_resource! {
    /// A professional: a GP, a health visitor.
    Practitioner {
        identifier: Vec<Identifier>,
        name: Vec<HumanName>,
    }
}

fhir_resource! {
    /// A message that was sent, such as a notification to a health visitor.
    Communication {
        identifier: Vec<Identifier>,
        status: Option<String>,
        category: Vec<CodeableConcept>,
        subject: Option<Reference>,
        sent: Option<String>,
        received: Option<String>,
        recipient: Vec<Reference>,
        sender: Option<Reference>,
        payload: Vec<Value>,
    }
}

fhir_resource! {
    /// Work for someone to do, such as acknowledging a notification.
    Task {
        identifier: Vec<Identifier>,
        status: Option<String>,
        intent: Option<String>,
        code: Option<CodeableConcept>,
        description: Option<String>,
        r#for: Option<Reference>,
        authored_on: Option<String>,
        last_modified: Option<String>,
        owner: Option<Reference>,
    }
}

fhir_resource! {
    /// A consent or objection to sharing.
    Consent {
        identifier: Vec<Identifier>,
        status: Option<String>,
        scope: Option<CodeableConcept>,
        category: Vec<CodeableConcept>,
        patient: Option<Reference>,
        date_time: Option<String>,
        provision: Option<Value>,
    }
}

fhir_resource! {
    /// A record of who did what to which record, when and why.
    AuditEvent {
        r#type: Option<Coding>,
        subtype: Vec<Coding>,
        action: Option<String>,
        period: Option<Period>,
        recorded: Option<String>,
        outcome: Option<String>,
        outcome_desc: Option<String>,
        purpose_of_event: Vec<CodeableConcept>,
        agent: Vec<Value>,
        source: Option<Value>,
        entity: Vec<Value>,
    }
}

fhir_resource! {
    /// Where resources came from: which agency, recorded when.
    Provenance {
        target: Vec<Reference>,
        occurred_date_time: Option<String>,
        recorded: Option<String>,
        activity: Option<CodeableConcept>,
        agent: Vec<Value>,
        entity: Vec<Value>,
    }
}

fhir_resource! {
    /// Content kept exactly as it came, such as the original message of an ingest.
    Binary {
        content_type: Option<String>,
        security_context: Option<Reference>,
        data: Option<String>,
    }
}

fhir_resource! {
    /// What a server can do (`GET /metadata`).
    CapabilityStatement {
        url: Option<String>,
        name: Option<String>,
        title: Option<String>,
        status: Option<String>,
        date: Option<String>,
        publisher: Option<String>,
        description: Option<String>,
        kind: Option<String>,
        software: Option<Value>,
        implementation: Option<Value>,
        fhir_version: Option<String>,
        format: Vec<String>,
        rest: Vec<Value>,
    }
}

/// A resource of a type Kinfold does not model, kept whole so that nothing is lost.
#[derive(Debug, Clone, PartialEq)]
pub struct OtherResource {
    /// Its `resourceType`.
    pub resource_type: String,
    /// Every other element, as it came.
    pub body: Map<String, Value>,
}

macro_rules! resources {
    ($($variant:ident),* $(,)?) => {
        /// Any FHIR resource. Kinfold's own types where we model them, [`OtherResource`] otherwise.
        #[derive(Debug, Clone, PartialEq)]
        #[allow(clippy::large_enum_variant)]
        pub enum Resource {
            $(
                #[doc = concat!("A `", stringify!($variant), "`.")]
                $variant($variant),
            )*
            /// A resource type Kinfold does not model.
            Other(OtherResource),
        }

        /// The resource types Kinfold models, for routing and search.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ResourceType {
            $(
                #[doc = concat!("`", stringify!($variant), "`.")]
                $variant,
            )*
        }

        impl ResourceType {
            /// Every modelled type, in a stable order.
            pub const ALL: &'static [ResourceType] = &[$(ResourceType::$variant),*];

            /// The FHIR name, as in `resourceType` and URLs.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ResourceType::$variant => stringify!($variant),)*
                }
            }
        }

        impl std::str::FromStr for ResourceType {
            type Err = ParseError;

            fn from_str(s: &str) -> Result<Self, ParseError> {
                match s {
                    $(stringify!($variant) => Ok(ResourceType::$variant),)*
                    _ => Err(ParseError::Element {
                        path: "resourceType".into(),
                        message: format!("'{s}' is not a resource type Kinfold stores"),
                    }),
                }
            }
        }

        impl Resource {
            /// The `resourceType` string.
            pub fn type_name(&self) -> &str {
                match self {
                    $(Resource::$variant(_) => stringify!($variant),)*
                    Resource::Other(other) => &other.resource_type,
                }
            }

            /// The modelled type, or `None` for [`Resource::Other`].
            pub fn resource_type(&self) -> Option<ResourceType> {
                match self {
                    $(Resource::$variant(_) => Some(ResourceType::$variant),)*
                    Resource::Other(_) => None,
                }
            }

            /// The logical id, if assigned.
            pub fn id(&self) -> Option<&str> {
                match self {
                    $(Resource::$variant(r) => r.id.as_deref(),)*
                    Resource::Other(o) => o.body.get("id").and_then(Value::as_str),
                }
            }

            /// Sets the logical id.
            pub fn set_id(&mut self, id: String) {
                match self {
                    $(Resource::$variant(r) => r.id = Some(id),)*
                    Resource::Other(o) => {
                        o.body.insert("id".into(), Value::String(id));
                    }
                }
            }

            /// A copy of `meta`, if the resource has one.
            pub fn meta(&self) -> Option<Meta> {
                match self {
                    $(Resource::$variant(r) => r.meta.clone(),)*
                    Resource::Other(o) => o.body.get("meta")
                        .and_then(|m| serde_json::from_value::<Meta>(m.clone()).ok()),
                }
            }

            /// Changes `meta` (created if missing): version, last update, source.
            pub fn update_meta(&mut self, change: impl FnOnce(&mut Meta)) {
                match self {
                    $(Resource::$variant(r) => change(r.meta.get_or_insert_with(Meta::default)),)*
                    Resource::Other(o) => {
                        let mut meta = o.body.remove("meta")
                            .and_then(|m| serde_json::from_value::<Meta>(m).ok())
                            .unwrap_or_default();
                        change(&mut meta);
                        if let Ok(value) = serde_json::to_value(meta) {
                            o.body.insert("meta".into(), value);
                        }
                    }
                }
            }

            fn from_tagged(resource_type: &str, body: Map<String, Value>) -> Result<Self, ParseError> {
                match resource_type {
                    $(stringify!($variant) => element(resource_type, body).map(Resource::$variant),)*
                    _ => Ok(Resource::Other(OtherResource {
                        resource_type: resource_type.to_owned(),
                        body,
                    })),
                }
            }
        }

        impl Serialize for Resource {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(Resource::$variant(r) => Tagged { resource_type: stringify!($variant), body: r }.serialize(serializer),)*
                    Resource::Other(o) => Tagged { resource_type: &o.resource_type, body: &o.body }.serialize(serializer),
                }
            }
        }

        $(
            impl From<$variant> for Resource {
                fn from(value: $variant) -> Self {
                    Resource::$variant(value)
                }
            }
        )*
    };
}

resources!(
    Patient,
    RelatedPerson,
    Group,
    Encounter,
    EpisodeOfCare,
    Observation,
    Condition,
    Flag,
    DocumentReference,
    Appointment,
    AllergyIntolerance,
    Immunization,
    MedicationStatement,
    MedicationRequest,
    Procedure,
    ServiceRequest,
    DiagnosticReport,
    CarePlan,
    Organization,
    Practitioner,
    Communication,
    Task,
    Consent,
    AuditEvent,
    Provenance,
    Binary,
    Bundle,
    OperationOutcome,
    CapabilityStatement,
);

/// Serialises `resourceType` first, then the body's own elements.
#[derive(Serialize)]
struct Tagged<'a, T: Serialize> {
    #[serde(rename = "resourceType")]
    resource_type: &'a str,
    #[serde(flatten)]
    body: &'a T,
}

/// Reads one modelled resource from its JSON body, naming the element at fault.
fn element<T: serde::de::DeserializeOwned>(
    resource_type: &str,
    body: Map<String, Value>,
) -> Result<T, ParseError> {
    serde_path_to_error::deserialize(Value::Object(body)).map_err(|err| {
        let inner = err.path().to_string();
        let path = if inner == "." {
            resource_type.to_owned()
        } else {
            format!("{resource_type}.{inner}")
        };
        let message = err.into_inner().to_string();
        // A fault inside a nested resource (e.g. a Bundle entry) arrives as that resource's
        // own "Type.path: message"; splice its path onto ours so the location stays exact.
        match nested_fault(&message) {
            Some((inner, message)) => ParseError::Element {
                path: format!("{path}{inner}"),
                message: message.to_owned(),
            },
            None => ParseError::Element { path, message },
        }
    })
}

/// Splits "Observation.status: message" into (".status", "message").
fn nested_fault(message: &str) -> Option<(&str, &str)> {
    let (head, rest) = message.split_once(": ")?;
    let (type_name, inner) = head.split_once('.').unwrap_or((head, ""));
    let looks_like_type = type_name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_uppercase())
        && type_name.chars().all(|c| c.is_ascii_alphabetic());
    let inner_start = head.len() - inner.len();
    looks_like_type.then(|| {
        (
            if inner.is_empty() {
                ""
            } else {
                &head[inner_start - 1..]
            },
            rest,
        )
    })
}

impl Resource {
    /// Parses a resource from JSON text, with the fault located if it does not fit.
    pub fn from_json(text: &[u8]) -> Result<Self, ParseError> {
        let value: Value = serde_json::from_slice(text).map_err(|err| ParseError::Json {
            message: err.to_string(),
            line: err.line(),
            column: err.column(),
        })?;
        Self::from_value(value)
    }

    /// Parses a resource from a JSON value.
    pub fn from_value(value: Value) -> Result<Self, ParseError> {
        let Value::Object(mut body) = value else {
            return Err(ParseError::Element {
                path: "(root)".into(),
                message: "a resource must be a JSON object".into(),
            });
        };
        let resource_type = match body.remove("resourceType") {
            Some(Value::String(name)) if !name.is_empty() => name,
            Some(_) => {
                return Err(ParseError::Element {
                    path: "resourceType".into(),
                    message: "must be a non-empty string".into(),
                });
            }
            None => {
                return Err(ParseError::Element {
                    path: "resourceType".into(),
                    message: "is missing".into(),
                });
            }
        };
        Self::from_tagged(&resource_type, body)
    }

    /// The resource as JSON text.
    pub fn to_json(&self) -> String {
        // Serialising our own types into a String cannot fail: every key is a string and no
        // Serialize impl here returns an error.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl<'de> Deserialize<'de> for Resource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Resource::from_value(value).map_err(D::Error::custom)
    }
}

impl Serialize for OtherResource {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Tagged {
            resource_type: &self.resource_type,
            body: &self.body,
        }
        .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_elements_survive_a_round_trip() {
        let input = json!({
            "resourceType": "Patient",
            "id": "p1",
            "extension": [{"url": "https://example.org/x", "valueString": "kept"}],
            "_birthDate": {"extension": [{"url": "https://example.org/t", "valueTime": "10:00:00"}]},
            "birthDate": "2019-04-01",
            "name": [{"family": "Wiśniewska", "given": ["Zofia"], "period": {"start": "2019"}}]
        });
        let parsed = Resource::from_value(input.clone()).unwrap();
        assert!(matches!(parsed, Resource::Patient(_)));
        assert_eq!(serde_json::to_value(&parsed).unwrap(), input);
    }

    #[test]
    fn unmodelled_resource_types_are_kept_whole() {
        let input = json!({"resourceType": "Medication", "id": "m", "code": {"text": "x"}});
        let parsed = Resource::from_value(input.clone()).unwrap();
        assert_eq!(parsed.type_name(), "Medication");
        assert_eq!(serde_json::to_value(&parsed).unwrap(), input);
    }

    #[test]
    fn a_misshapen_element_is_located() {
        let input = json!({"resourceType": "Observation", "valueQuantity": {"value": "heavy"}});
        let err = Resource::from_value(input).unwrap_err();
        assert_eq!(err.location(), Some("Observation.valueQuantity.value"));
    }

    #[test]
    fn a_fault_inside_a_bundle_entry_is_located_exactly() {
        let input = json!({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation", "status": 5}}]});
        let err = Resource::from_value(input).unwrap_err();
        assert_eq!(err.location(), Some("Bundle.entry[0].resource.status"));
    }

    #[test]
    fn a_missing_resource_type_is_an_error() {
        let err = Resource::from_value(json!({"id": "x"})).unwrap_err();
        assert_eq!(err.location(), Some("resourceType"));
    }

    #[test]
    fn update_meta_works_for_unmodelled_types_too() {
        let mut other = Resource::from_value(json!({"resourceType": "Medication"})).unwrap();
        other.update_meta(|m| m.version_id = Some("2".into()));
        assert_eq!(
            serde_json::to_value(&other).unwrap()["meta"]["versionId"],
            "2"
        );
    }
}
