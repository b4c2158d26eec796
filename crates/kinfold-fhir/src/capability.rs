//! The CapabilityStatement a Kinfold server publishes at `/metadata`.

use serde_json::json;

use crate::search::SUPPORTED_PARAMETERS;
use crate::{CapabilityStatement, FHIR_JSON, FHIR_VERSION, ResourceType};

/// What a Kinfold server (gateway or adapter) can do.
///
/// `interactions` are the type-level interactions (`read`, `search-type`); `operations` are
/// instance operations on Patient such as `everything`; `system` lists system interactions
/// such as `transaction` and `batch`.
pub fn capability_statement(
    title: &str,
    description: &str,
    date: &str,
    types: &[ResourceType],
    interactions: &[&str],
    patient_operations: &[&str],
    system: &[&str],
) -> CapabilityStatement {
    let search_params: Vec<_> = SUPPORTED_PARAMETERS
        .iter()
        .map(|(name, kind, doc)| json!({"name": name, "type": kind, "documentation": doc}))
        .collect();
    let resources: Vec<_> = types
        .iter()
        .map(|t| {
            let mut resource = json!({
                "type": t.as_str(),
                "interaction": interactions.iter().map(|i| json!({"code": i})).collect::<Vec<_>>(),
                "searchParam": search_params,
            });
            if *t == ResourceType::Patient && !patient_operations.is_empty() {
                resource["operation"] = patient_operations
                    .iter()
                    .map(|op| json!({"name": op, "definition": format!("http://hl7.org/fhir/OperationDefinition/Patient-{op}")}))
                    .collect();
            }
            resource
        })
        .collect();
    let mut rest = json!({"mode": "server", "resource": resources});
    if !system.is_empty() {
        rest["interaction"] = system.iter().map(|i| json!({"code": i})).collect();
    }
    CapabilityStatement {
        name: Some(title.replace(' ', "")),
        title: Some(title.to_owned()),
        status: Some("active".into()),
        date: Some(date.to_owned()),
        publisher: Some("Kinfold".into()),
        description: Some(description.to_owned()),
        kind: Some("instance".into()),
        software: Some(json!({"name": "Kinfold", "version": env!("CARGO_PKG_VERSION")})),
        fhir_version: Some(FHIR_VERSION.into()),
        format: vec![FHIR_JSON.into(), "json".into()],
        rest: vec![rest],
        ..CapabilityStatement::default()
    }
}
