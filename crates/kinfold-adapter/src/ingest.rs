//! Ingest: turning a FHIR `transaction` or `batch` Bundle into checked writes.
//!
//! A transaction is all or nothing: any faulty entry rejects the whole Bundle before anything
//! is stored. A batch stores its good entries and answers each faulty one with its own outcome.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use kinfold_fhir::{Bundle, BundleType, NHS_NUMBER_SYSTEM, NhsNumber, Resource, ResourceType};
use serde_json::Value;

use crate::AdapterError;

/// One entry's plan: a resource ready to store (id set), or why it cannot be.
pub(crate) type EntryPlan = Result<Resource, AdapterError>;

/// Checks a Bundle and plans its writes.
pub(crate) fn plan(bundle: Bundle) -> Result<(BundleType, Vec<EntryPlan>), AdapterError> {
    let kind = match bundle.r#type {
        Some(kind @ (BundleType::Transaction | BundleType::Batch)) => kind,
        Some(other) => {
            return Err(AdapterError::NotABundle(
                format!("a {other:?} Bundle").to_lowercase(),
            ));
        }
        None => return Err(AdapterError::NotABundle("a Bundle without a type".into())),
    };

    // First pass: work out each entry's target, assigning ids to creates, so that a
    // transaction's `urn:uuid:` references can point at them.
    let targets: Vec<Result<(ResourceType, String), AdapterError>> = bundle
        .entry
        .iter()
        .enumerate()
        .map(|(n, entry)| target(n, entry))
        .collect();
    let mut local_ids: HashMap<String, String> = HashMap::new();
    if kind == BundleType::Transaction {
        for (entry, target) in bundle.entry.iter().zip(&targets) {
            if let (Some(full_url), Ok((resource_type, id))) = (&entry.full_url, target)
                && (full_url.starts_with("urn:uuid:") || full_url.starts_with("urn:oid:"))
            {
                local_ids.insert(full_url.clone(), format!("{}/{id}", resource_type.as_str()));
            }
        }
    }

    let plans: Vec<EntryPlan> = bundle
        .entry
        .into_iter()
        .zip(targets)
        .enumerate()
        .map(|(n, (entry, target))| {
            let (resource_type, id) = target?;
            let resource = entry
                .resource
                .ok_or_else(|| bad(n, "resource", "is missing", StatusCode::BAD_REQUEST))?;
            let mut resource = if local_ids.is_empty() {
                resource
            } else {
                let mut value = serde_json::to_value(&resource)
                    .map_err(|e| bad(n, "resource", &e.to_string(), StatusCode::BAD_REQUEST))?;
                rewrite_references(&mut value, &local_ids);
                Resource::from_value(value)
                    .map_err(|e| bad(n, "resource", &e.to_string(), StatusCode::BAD_REQUEST))?
            };
            if resource.type_name() != resource_type.as_str() {
                return Err(bad(
                    n,
                    "resource.resourceType",
                    &format!(
                        "is {} but the request URL names {}",
                        resource.type_name(),
                        resource_type.as_str()
                    ),
                    StatusCode::BAD_REQUEST,
                ));
            }
            if let Some(given) = resource.id()
                && given != id
                && !given.is_empty()
            {
                return Err(bad(
                    n,
                    "resource.id",
                    "does not match the id in the request URL",
                    StatusCode::BAD_REQUEST,
                ));
            }
            resource.set_id(id);
            check_rules(n, &resource)?;
            Ok(resource)
        })
        .collect();

    if kind == BundleType::Transaction
        && let Some(position) = plans.iter().position(Result::is_err)
    {
        let mut plans = plans;
        return Err(plans
            .swap_remove(position)
            .err()
            .unwrap_or(AdapterError::NotABundle("invalid".into())));
    }
    Ok((kind, plans))
}

/// What an entry's request asks to write: its type and id (new for a create).
fn target(
    n: usize,
    entry: &kinfold_fhir::BundleEntry,
) -> Result<(ResourceType, String), AdapterError> {
    let request = entry
        .request
        .as_ref()
        .ok_or_else(|| bad(n, "request", "is missing", StatusCode::BAD_REQUEST))?;
    let method = request.method.as_deref().unwrap_or("");
    let url = request
        .url
        .as_deref()
        .ok_or_else(|| bad(n, "request.url", "is missing", StatusCode::BAD_REQUEST))?;
    let url = url.split('?').next().unwrap_or(url);
    let mut parts = url.trim_start_matches('/').split('/');
    let type_name = parts.next().unwrap_or("");
    let resource_type: ResourceType =
        type_name
            .parse()
            .ok()
            .filter(|t| storable(*t))
            .ok_or_else(|| {
                bad(
                    n,
                    "request.url",
                    &format!("'{type_name}' is not a resource type this adapter stores"),
                    StatusCode::BAD_REQUEST,
                )
            })?;
    match (method, parts.next(), parts.next()) {
        ("POST", None, _) => Ok((resource_type, uuid::Uuid::new_v4().to_string())),
        ("PUT", Some(id), None) if valid_id(id) => Ok((resource_type, id.to_owned())),
        ("PUT", _, _) => Err(bad(
            n,
            "request.url",
            "a PUT must name Type/id with a valid FHIR id",
            StatusCode::BAD_REQUEST,
        )),
        ("POST", Some(_), _) => Err(bad(
            n,
            "request.url",
            "a POST names only the resource type",
            StatusCode::BAD_REQUEST,
        )),
        (other, _, _) => Err(bad(
            n,
            "request.method",
            &format!("'{other}' is not supported at ingest (POST and PUT are)"),
            StatusCode::BAD_REQUEST,
        )),
    }
}

/// Types an agency's records may be: not the protocol resources.
fn storable(resource_type: ResourceType) -> bool {
    !matches!(
        resource_type,
        ResourceType::Bundle | ResourceType::OperationOutcome | ResourceType::CapabilityStatement
    )
}

/// A FHIR id: 1 to 64 letters, digits, `-` and `.`.
pub(crate) fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Rules content must meet before Kinfold stores it.
fn check_rules(n: usize, resource: &Resource) -> Result<(), AdapterError> {
    let identifiers = match resource {
        Resource::Patient(p) => &p.identifier,
        Resource::RelatedPerson(r) => &r.identifier,
        _ => return Ok(()),
    };
    for (i, identifier) in identifiers.iter().enumerate() {
        if identifier.system.as_deref() == Some(NHS_NUMBER_SYSTEM) {
            let value = identifier.value.as_deref().unwrap_or("");
            if let Err(err) = value.parse::<NhsNumber>() {
                return Err(bad(
                    n,
                    &format!("resource.identifier[{i}].value"),
                    &err.to_string(),
                    StatusCode::UNPROCESSABLE_ENTITY,
                ));
            }
        }
    }
    Ok(())
}

fn rewrite_references(value: &mut Value, local_ids: &HashMap<String, String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match child {
                    Value::String(text) if key == "reference" => {
                        if let Some(target) = local_ids.get(text.as_str()) {
                            *text = target.clone();
                        }
                    }
                    _ => rewrite_references(child, local_ids),
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| rewrite_references(item, local_ids)),
        _ => {}
    }
}

fn bad(n: usize, path: &str, message: &str, status: StatusCode) -> AdapterError {
    AdapterError::BadEntry {
        path: format!("Bundle.entry[{n}].{path}"),
        message: message.to_owned(),
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bundle(value: Value) -> Bundle {
        match Resource::from_value(value) {
            Ok(Resource::Bundle(b)) => b,
            other => panic!("not a bundle: {other:?}"),
        }
    }

    #[test]
    fn a_transaction_rewrites_its_own_urn_references() {
        let (_, plans) = plan(bundle(json!({
            "resourceType": "Bundle", "type": "transaction",
            "entry": [
                {"fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
                 "resource": {"resourceType": "Patient"},
                 "request": {"method": "POST", "url": "Patient"}},
                {"resource": {"resourceType": "Observation", "subject": {"reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}},
                 "request": {"method": "POST", "url": "Observation"}}
            ]
        })))
        .unwrap();
        let patient_id = plans[0].as_ref().unwrap().id().unwrap().to_owned();
        let Ok(Resource::Observation(obs)) = &plans[1] else {
            panic!("observation planned")
        };
        assert_eq!(
            obs.subject.as_ref().unwrap().reference.as_deref(),
            Some(format!("Patient/{patient_id}").as_str())
        );
    }

    #[test]
    fn a_bad_nhs_number_rejects_the_whole_transaction_and_says_where() {
        let err = plan(bundle(json!({
            "resourceType": "Bundle", "type": "transaction",
            "entry": [
                {"resource": {"resourceType": "Patient", "id": "a"}, "request": {"method": "PUT", "url": "Patient/a"}},
                {"resource": {"resourceType": "Patient", "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": "9434765918"}]},
                 "request": {"method": "PUT", "url": "Patient/b"}}
            ]
        })))
        .unwrap_err();
        let AdapterError::BadEntry { path, status, .. } = err else {
            panic!("bad entry expected")
        };
        assert_eq!(path, "Bundle.entry[1].resource.identifier[0].value");
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn a_batch_keeps_its_good_entries() {
        let (kind, plans) = plan(bundle(json!({
            "resourceType": "Bundle", "type": "batch",
            "entry": [
                {"resource": {"resourceType": "Patient"}, "request": {"method": "DELETE", "url": "Patient/x"}},
                {"resource": {"resourceType": "Patient"}, "request": {"method": "PUT", "url": "Patient/ok"}}
            ]
        })))
        .unwrap();
        assert_eq!(kind, BundleType::Batch);
        assert!(plans[0].is_err());
        assert_eq!(plans[1].as_ref().unwrap().id(), Some("ok"));
    }

    #[test]
    fn a_put_whose_body_names_another_id_is_refused() {
        let err = plan(bundle(json!({
            "resourceType": "Bundle", "type": "transaction",
            "entry": [{"resource": {"resourceType": "Patient", "id": "other"}, "request": {"method": "PUT", "url": "Patient/mine"}}]
        })))
        .unwrap_err();
        assert!(
            matches!(err, AdapterError::BadEntry { ref path, .. } if path == "Bundle.entry[0].resource.id")
        );
    }

    #[test]
    fn a_searchset_is_not_ingested() {
        let err = plan(bundle(
            json!({"resourceType": "Bundle", "type": "searchset"}),
        ))
        .unwrap_err();
        assert!(matches!(err, AdapterError::NotABundle(_)));
    }
}
