//! The search columns Kinfold extracts from each resource when it is stored.

use serde_json::Value;

use crate::{CodeableConcept, Identifier, Period, Reference, Resource};

/// A span of time in milliseconds since the Unix epoch, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    /// First millisecond in the range.
    pub start: i64,
    /// First millisecond after the range.
    pub end: i64,
}

/// A `system|code` pair as stored for token search. An absent system is the empty string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenValue {
    /// The code system or identifier system; empty if none.
    pub system: String,
    /// The code or identifier value.
    pub code: String,
}

/// Everything a store needs to index one resource.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchIndex {
    /// The patient the resource is about (a Patient's own id for a Patient).
    pub patient: Option<String>,
    /// Business identifiers.
    pub identifiers: Vec<TokenValue>,
    /// The resource's main codes.
    pub codes: Vec<TokenValue>,
    /// The clinically relevant date.
    pub date: Option<DateRange>,
}

impl Resource {
    /// The search columns of this resource.
    pub fn search_index(&self) -> SearchIndex {
        let patient = |r: &Option<Reference>| {
            r.as_ref()
                .and_then(|r| r.id_of("Patient"))
                .map(str::to_owned)
        };
        let one = |c: &Option<CodeableConcept>| tokens(c.iter());
        let period = |p: &Option<Period>| {
            p.as_ref()
                .and_then(|p| DateRange::of_period(p.start.as_deref(), p.end.as_deref()))
        };
        let date = |d: &Option<String>| d.as_deref().and_then(DateRange::parse);
        match self {
            Resource::Patient(r) => SearchIndex {
                patient: r.id.clone(),
                identifiers: identifiers(&r.identifier),
                codes: vec![],
                date: date(&r.birth_date),
            },
            Resource::RelatedPerson(r) => SearchIndex {
                patient: patient(&r.patient),
                identifiers: identifiers(&r.identifier),
                codes: tokens(r.relationship.iter()),
                date: date(&r.birth_date),
            },
            Resource::Group(r) => SearchIndex {
                identifiers: identifiers(&r.identifier),
                codes: one(&r.code),
                ..SearchIndex::default()
            },
            Resource::Encounter(r) => SearchIndex {
                patient: patient(&r.subject),
                identifiers: identifiers(&r.identifier),
                codes: tokens(r.r#type.iter()),
                date: period(&r.period),
            },
            Resource::EpisodeOfCare(r) => SearchIndex {
                patient: patient(&r.patient),
                identifiers: identifiers(&r.identifier),
                codes: tokens(r.r#type.iter()),
                date: period(&r.period),
            },
            Resource::Observation(r) => SearchIndex {
                patient: patient(&r.subject),
                identifiers: identifiers(&r.identifier),
                codes: one(&r.code),
                date: date(&r.effective_date_time).or_else(|| period(&r.effective_period)),
            },
            Resource::Condition(r) => SearchIndex {
                patient: patient(&r.subject),
                identifiers: identifiers(&r.identifier),
                codes: one(&r.code),
                date: date(&r.onset_date_time).or_else(|| date(&r.recorded_date)),
            },
            Resource::Flag(r) => SearchIndex {
                patient: patient(&r.subject),
                identifiers: identifiers(&r.identifier),
                codes: one(&r.code),
                date: period(&r.period),
            },
            Resource::DocumentReference(r) => SearchIndex {
                patient: patient(&r.subject),
                identifiers: identifiers(&r.identifier),
                codes: one(&r.r#type),
                date: date(&r.date),
            },
            Resource::Appointment(r) => SearchIndex {
                patient: r.participant.iter().find_map(|p| {
                    p.pointer("/actor/reference")
                        .and_then(Value::as_str)
                        .and_then(|r| r.strip_prefix("Patient/"))
                        .map(str::to_owned)
                }),
                identifiers: identifiers(&r.identifier),
                codes: tokens(r.service_type.iter()),
                date: date(&r.start),
            },
            Resource::AllergyIntolerance(r) => SearchIndex {
                patient: patient(&r.patient),
                identifiers: identifiers(&r.identifier),
                codes: one(&r.code),
                date: date(&r.recorded_date),
            },
            Resource::Immunization(r) => SearchIndex {
                patient: patient(&r.patient),
                identifiers: identifiers(&r.identifier),
                codes: one(&r.vaccine_code),
                date: date(&r.occurrence_date_time),
            },
            Resource::MedicationStatement(r) => SearchIndex {
                patient: patient(&r.subject),
                identifiers: identifiers(&r.identifier),
                codes: one(&r.medication_codeable_concept),
                date: date(&r.effective_date_time).or_else(|| period(&r.effective_period)),
            },
            Resource::MedicationRequest(r) => SearchIndex {
                patient: patient(&r.subject),
                identifiers: identifiers(&r.identifier),
                codes: one(&r.medication_codeable_concept),
                date: date(&r.authored_on),
            },
            Resource::Procedure(r) => SearchIndex {
                patient: patient(&r.subject),
                identifiers: identifiers(&r.identifier),
                codes: one(&r.code),
                date: date(&r.performed_date_time),
            },
            Resource::ServiceRequest(r) => SearchIndex {
                patient: patient(&r.subject),
                identifiers: identifiers(&r.identifier),
                codes: one(&r.code),
                date: date(&r.authored_on),
            },
            Resource::DiagnosticReport(r) => SearchIndex {
                patient: patient(&r.subject),
                identifiers: identifiers(&r.identifier),
                codes: one(&r.code),
                date: date(&r.effective_date_time),
            },
            Resource::CarePlan(r) => SearchIndex {
                patient: patient(&r.subject),
                identifiers: identifiers(&r.identifier),
                codes: tokens(r.category.iter()),
                date: period(&r.period),
            },
            Resource::Organization(r) => SearchIndex {
                identifiers: identifiers(&r.identifier),
                ..SearchIndex::default()
            },
            Resource::Practitioner(r) => SearchIndex {
                identifiers: identifiers(&r.identifier),
                ..SearchIndex::default()
            },
            Resource::Communication(r) => SearchIndex {
                patient: patient(&r.subject),
                identifiers: identifiers(&r.identifier),
                codes: tokens(r.category.iter()),
                date: date(&r.sent),
            },
            Resource::Task(r) => SearchIndex {
                patient: patient(&r.r#for),
                identifiers: identifiers(&r.identifier),
                codes: one(&r.code),
                date: date(&r.authored_on),
            },
            Resource::Consent(r) => SearchIndex {
                patient: patient(&r.patient),
                identifiers: identifiers(&r.identifier),
                codes: tokens(r.category.iter()),
                date: date(&r.date_time),
            },
            Resource::AuditEvent(r) => SearchIndex {
                codes: r
                    .r#type
                    .iter()
                    .filter_map(|c| {
                        Some(TokenValue {
                            system: c.system.clone().unwrap_or_default(),
                            code: c.code.clone()?,
                        })
                    })
                    .collect(),
                date: date(&r.recorded),
                ..SearchIndex::default()
            },
            // A Provenance is about the patient among its targets (as `Provenance.patient` is
            // defined), so that a patient's `$everything` carries where their records came from.
            Resource::Provenance(r) => SearchIndex {
                patient: r
                    .target
                    .iter()
                    .find_map(|t| t.id_of("Patient"))
                    .map(str::to_owned),
                date: date(&r.recorded),
                ..SearchIndex::default()
            },
            // An original message is never part of `$everything`: it is fetched by reference.
            // A record area Kinfold does not model (an immunisation, a medication, an allergy)
            // still belongs to its patient, so that nothing is invisible because of where it
            // was typed (G16).
            Resource::Other(o) => SearchIndex {
                patient: ["subject", "patient", "for", "beneficiary"]
                    .iter()
                    .find_map(|k| {
                        o.body
                            .get(*k)
                            .and_then(|r| r.get("reference"))
                            .and_then(Value::as_str)
                            .and_then(|r| r.strip_prefix("Patient/"))
                            .filter(|id| !id.is_empty() && !id.contains('/'))
                            .map(str::to_owned)
                    }),
                ..SearchIndex::default()
            },
            Resource::Binary(_)
            | Resource::Bundle(_)
            | Resource::OperationOutcome(_)
            | Resource::CapabilityStatement(_) => SearchIndex::default(),
        }
    }
}

fn identifiers(list: &[Identifier]) -> Vec<TokenValue> {
    list.iter()
        .filter_map(|i| {
            Some(TokenValue {
                system: i.system.clone().unwrap_or_default(),
                code: i.value.clone()?,
            })
        })
        .collect()
}

fn tokens<'a>(concepts: impl Iterator<Item = &'a CodeableConcept>) -> Vec<TokenValue> {
    concepts
        .flat_map(|c| c.coding.iter())
        .filter_map(|c| {
            Some(TokenValue {
                system: c.system.clone().unwrap_or_default(),
                code: c.code.clone()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_observation_is_indexed_by_subject_code_and_date() {
        let obs = Resource::from_value(json!({
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "subject": {"reference": "Patient/child-1"},
            "effectiveDateTime": "2021-03-04"
        }))
        .unwrap();
        let index = obs.search_index();
        assert_eq!(index.patient.as_deref(), Some("child-1"));
        assert_eq!(
            index.codes,
            vec![TokenValue {
                system: "http://loinc.org".into(),
                code: "29463-7".into()
            }]
        );
        assert_eq!(index.date, DateRange::parse("2021-03-04"));
    }

    #[test]
    fn an_open_period_reaches_to_the_end_of_time() {
        let flag = Resource::from_value(json!({
            "resourceType": "Flag",
            "subject": {"reference": "Patient/c"},
            "period": {"start": "2020-01-01"}
        }))
        .unwrap();
        let range = flag.search_index().date.unwrap();
        assert_eq!(range.end, DateRange::END);
    }
}
