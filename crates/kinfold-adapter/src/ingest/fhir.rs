//! The FHIR feed: turning a `transaction` or `batch` Bundle into a plan of checked writes.
//!
//! A transaction is all or nothing: any faulty entry rejects the whole Bundle before anything
//! is stored. A batch stores its good entries and answers each faulty one with its own outcome.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use kinfold_fhir::{
    Bundle, BundleEntry, BundleEntryResponse, BundleType, NHS_NUMBER_SYSTEM, NhsNumber, Resource,
    ResourceType,
};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{Applied, Atomicity, Plan};
use crate::AdapterError;

/// One entry's plan: a resource ready to store (id set), or why it cannot be.
pub type EntryPlan = Result<Resource, AdapterError>;

/// The most entries one ingest may carry, unless configured otherwise.
pub const DEFAULT_MAX_ENTRIES: usize = 5_000;

/// The most JSON values (every object member and array item, nested ones included) one
/// ingest may carry, unless configured otherwise. Parsed, a JSON value takes a hundred to
/// two hundred and fifty bytes, so this bounds what an ingest costs in memory whatever the
/// shape of the Bundle: a 5,000-entry Bundle of typical Observations has about 75,000.
pub const DEFAULT_MAX_JSON_VALUES: usize = 200_000;

/// Limits on one ingest's Bundle, checked before its entries are parsed.
#[derive(Debug, Clone, Copy)]
pub struct BundleLimits {
    /// Most entries.
    pub max_entries: usize,
    /// Most JSON values in the whole body.
    pub max_json_values: usize,
}

/// Counts the values in JSON text (object members and array items at every depth, and the
/// root), without building them: one pass over the bytes, no allocation but a stack of
/// open containers. Text that is not JSON gets some count; the parser then refuses it.
pub fn json_values(text: &[u8]) -> usize {
    let mut count = 1;
    let mut in_string = false;
    let mut escaped = false;
    // For each open container: is it an array, and has it had an item yet?
    let mut open: Vec<(bool, bool)> = Vec::new();
    for &byte in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => {
                in_string = true;
                if let Some((true, seen)) = open.last_mut()
                    && !*seen
                {
                    *seen = true;
                    count += 1;
                }
            }
            b'{' | b'[' => {
                if let Some((true, seen)) = open.last_mut()
                    && !*seen
                {
                    *seen = true;
                    count += 1;
                }
                open.push((byte == b'[', false));
            }
            b'}' | b']' => {
                open.pop();
            }
            b':' => count += 1,
            b',' if matches!(open.last(), Some((true, _))) => count += 1,
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {}
            _ => {
                if let Some((true, seen)) = open.last_mut()
                    && !*seen
                {
                    *seen = true;
                    count += 1;
                }
            }
        }
    }
    count
}

/// Reads a transaction or batch Bundle from its JSON bytes and plans its writes.
///
/// Memory stays bounded: the Bundle is first read as a skeleton (its type and one borrowed
/// slice of text per entry), refused at once when it has more than `max_entries` entries, and
/// only then is each entry parsed, checked against FHIR's primitive types and planned. A
/// transaction stops at its first faulty entry.
pub fn plan_json(
    body: &[u8],
    limits: BundleLimits,
) -> Result<(BundleType, Vec<EntryPlan>), AdapterError> {
    plan_bundle(body, limits).map(|plan| (plan.kind, plan.entries))
}

/// A Bundle's plan, with what the Bundle says about itself for its provenance.
#[derive(Debug)]
pub struct BundlePlan {
    /// `transaction` or `batch`.
    pub kind: BundleType,
    /// Each entry's plan.
    pub entries: Vec<EntryPlan>,
    /// `Bundle.identifier.value`: the sender's id for it.
    pub identifier: Option<String>,
    /// `Bundle.timestamp`: when the sender assembled it.
    pub timestamp: Option<String>,
}

/// Like [`plan_json`], keeping the Bundle's identifier and timestamp.
pub fn plan_bundle(body: &[u8], limits: BundleLimits) -> Result<BundlePlan, AdapterError> {
    let values = json_values(body);
    if values > limits.max_json_values {
        return Err(AdapterError::TooManyValues {
            limit: limits.max_json_values,
            found: values,
        });
    }
    let max_entries = limits.max_entries;
    let skeleton = Skeleton::read(body, max_entries)?;
    match skeleton.resource_type.as_deref() {
        Some("Bundle") => {}
        Some(other) => return Err(AdapterError::NotABundle(format!("a {other}"))),
        None => {
            return Err(AdapterError::BadBody(kinfold_fhir::ParseError::Element {
                path: "resourceType".into(),
                message: "is missing".into(),
            }));
        }
    }
    let kind = match skeleton.kind.as_deref() {
        Some("transaction") => BundleType::Transaction,
        Some("batch") => BundleType::Batch,
        Some(other) => return Err(AdapterError::NotABundle(format!("a {other} Bundle"))),
        None => return Err(AdapterError::NotABundle("a Bundle without a type".into())),
    };
    let mut entries = Vec::with_capacity(skeleton.entries.len());
    for (n, raw) in skeleton.entries.into_iter().enumerate() {
        let entry = read_entry(n, raw);
        if kind == BundleType::Transaction
            && let Err(err) = entry
        {
            return Err(err);
        }
        entries.push(entry);
    }
    let text = |v: Option<Value>, pointer: &str| {
        v.and_then(|v| {
            v.pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
    };
    Ok(BundlePlan {
        kind,
        entries: plan_entries(kind, entries)?.1,
        identifier: text(skeleton.identifier, "/value"),
        timestamp: text(skeleton.timestamp, ""),
    })
}

/// One entry, parsed and checked: every primitive value valid, every element the right shape.
fn read_entry(n: usize, raw: &RawValue) -> Result<BundleEntry, AdapterError> {
    let mut value: Value = serde_json::from_str(raw.get())
        .map_err(|e| bad(n, "", &e.to_string(), StatusCode::BAD_REQUEST))?;
    let resource = value
        .as_object_mut()
        .and_then(|entry| entry.remove("resource"));
    let mut entry: BundleEntry = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        bad(
            n,
            if path == "." { "" } else { &path },
            &e.into_inner().to_string(),
            StatusCode::BAD_REQUEST,
        )
    })?;
    if let Some(resource) = resource {
        let at = format!("Bundle.entry[{n}].resource");
        let located = |e: kinfold_fhir::ParseError, strip_type: bool| {
            let inner = e.location().unwrap_or_default();
            let inner = if strip_type {
                inner.split_once('.').map_or("", |(_, rest)| rest)
            } else {
                inner
                    .strip_prefix(&at)
                    .map_or(inner, |r| r.trim_start_matches('.'))
            };
            AdapterError::BadEntry {
                path: if inner.is_empty() || inner == "(root)" {
                    at.clone()
                } else {
                    format!("{at}.{inner}")
                },
                message: match e {
                    kinfold_fhir::ParseError::Element { message, .. } => message,
                    other => other.to_string(),
                },
                status: StatusCode::BAD_REQUEST,
            }
        };
        kinfold_fhir::primitive::check_resource(&resource, &at).map_err(|e| located(e, false))?;
        entry.resource = Some(Resource::from_value(resource).map_err(|e| located(e, true))?);
    }
    Ok(entry)
}

/// A Bundle read only as far as ingest needs before it commits memory to the entries.
struct Skeleton<'a> {
    resource_type: Option<String>,
    kind: Option<String>,
    identifier: Option<Value>,
    timestamp: Option<Value>,
    entries: Vec<&'a RawValue>,
}

impl<'a> Skeleton<'a> {
    fn read(body: &'a [u8], max_entries: usize) -> Result<Self, AdapterError> {
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let skeleton = SkeletonSeed { max_entries }
            .deserialize(&mut deserializer)
            .and_then(|s| deserializer.end().map(|()| s));
        skeleton.map_err(|err| {
            if err.to_string().starts_with(TOO_MANY) {
                AdapterError::TooManyEntries { limit: max_entries }
            } else {
                AdapterError::BadBody(kinfold_fhir::ParseError::Json {
                    message: err.to_string(),
                    line: err.line(),
                    column: err.column(),
                })
            }
        })
    }
}

const TOO_MANY: &str = "too many entries";

struct SkeletonSeed {
    max_entries: usize,
}

impl<'de> DeserializeSeed<'de> for SkeletonSeed {
    type Value = Skeleton<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SkeletonSeed {
    type Value = Skeleton<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a FHIR Bundle (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut skeleton = Skeleton {
            resource_type: None,
            kind: None,
            identifier: None,
            timestamp: None,
            entries: Vec::new(),
        };
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "resourceType" => skeleton.resource_type = Some(map.next_value()?),
                "type" => skeleton.kind = Some(map.next_value()?),
                "identifier" => skeleton.identifier = Some(map.next_value()?),
                "timestamp" => skeleton.timestamp = Some(map.next_value()?),
                "entry" => {
                    skeleton.entries = map.next_value_seed(EntriesSeed {
                        max_entries: self.max_entries,
                    })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(skeleton)
    }
}

struct EntriesSeed {
    max_entries: usize,
}

impl<'de> DeserializeSeed<'de> for EntriesSeed {
    type Value = Vec<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("Bundle.entry as a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = seq.next_element::<&'de RawValue>()? {
            if entries.len() == self.max_entries {
                return Err(serde::de::Error::custom(TOO_MANY));
            }
            entries.push(entry);
        }
        Ok(entries)
    }
}

/// Plans the writes of a Bundle's entries.
fn plan_entries(
    kind: BundleType,
    entries: Vec<Result<BundleEntry, AdapterError>>,
) -> Result<(BundleType, Vec<EntryPlan>), AdapterError> {
    // First pass: work out each entry's target, assigning ids to creates, so that a
    // transaction's `urn:uuid:` references can point at them.
    let targets: Vec<Result<(ResourceType, String), AdapterError>> = entries
        .iter()
        .enumerate()
        .map(|(n, entry)| match entry {
            Ok(entry) => target(n, entry),
            Err(_) => Err(AdapterError::NotABundle("(entry already refused)".into())),
        })
        .collect();
    let mut local_ids: HashMap<String, String> = HashMap::new();
    if kind == BundleType::Transaction {
        for (entry, target) in entries.iter().zip(&targets) {
            if let (Ok(entry), Ok((resource_type, id))) = (entry, target)
                && let Some(full_url) = &entry.full_url
                && (full_url.starts_with("urn:uuid:") || full_url.starts_with("urn:oid:"))
            {
                local_ids.insert(full_url.clone(), format!("{}/{id}", resource_type.as_str()));
            }
        }
    }

    // Which entry first claimed each NHS number: one agency holds one Patient per NHS number.
    let mut nhs_owners: HashMap<String, String> = HashMap::new();
    let plans: Vec<EntryPlan> = entries
        .into_iter()
        .zip(targets)
        .enumerate()
        .map(|(n, (entry, target))| {
            let entry = entry?;
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
            check_one_patient_per_nhs_number(n, &resource, &mut nhs_owners)?;
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
fn target(n: usize, entry: &BundleEntry) -> Result<(ResourceType, String), AdapterError> {
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

/// A Bundle's plan, for [`crate::AdapterState::apply`]: a transaction is whole, a batch per
/// entry.
pub(crate) fn plan_of(kind: BundleType, entries: Vec<EntryPlan>) -> Plan {
    Plan {
        atomicity: if kind == BundleType::Transaction {
            Atomicity::Whole
        } else {
            Atomicity::PerEntry
        },
        entries,
    }
}

/// The `transaction-response` or `batch-response` Bundle for an applied plan: each entry's
/// status, location and version, or its `OperationOutcome`.
pub(crate) fn response_bundle(kind: BundleType, applied: Applied) -> Bundle {
    let mut response = Bundle::new(match kind {
        BundleType::Transaction => BundleType::TransactionResponse,
        _ => BundleType::BatchResponse,
    });
    for entry in applied {
        let entry_response = match entry {
            Ok(done) => BundleEntryResponse {
                status: Some(
                    if done.created {
                        "201 Created"
                    } else {
                        "200 OK"
                    }
                    .into(),
                ),
                location: Some(format!(
                    "{}/{}/_history/{}",
                    done.resource_type, done.id, done.version_id
                )),
                etag: Some(format!("W/\"{}\"", done.version_id)),
                last_modified: chrono::DateTime::from_timestamp_millis(done.last_updated)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                ..BundleEntryResponse::default()
            },
            Err(err) => {
                let api = err.to_api_error();
                BundleEntryResponse {
                    status: Some(format!(
                        "{} {}",
                        api.status.as_u16(),
                        api.status.canonical_reason().unwrap_or("")
                    )),
                    outcome: Some(Resource::OperationOutcome(*api.outcome)),
                    ..BundleEntryResponse::default()
                }
            }
        };
        response.entry.push(BundleEntry {
            response: Some(entry_response),
            ..BundleEntry::default()
        });
    }
    response
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

/// The NHS numbers a Patient claims (valid ones; an invalid one is refused by [`check_rules`]).
pub(super) fn nhs_numbers(resource: &Resource) -> Vec<(usize, String)> {
    match resource {
        Resource::Patient(p) => p
            .identifier
            .iter()
            .enumerate()
            .filter(|(_, i)| i.system.as_deref() == Some(NHS_NUMBER_SYSTEM))
            .filter_map(|(k, i)| i.value.clone().map(|v| (k, v)))
            .collect(),
        _ => Vec::new(),
    }
}

/// Within one Bundle, a second Patient (another id) claiming an NHS number already claimed is
/// refused with `409`: the adapter keeps one Patient per NHS number.
fn check_one_patient_per_nhs_number(
    n: usize,
    resource: &Resource,
    owners: &mut HashMap<String, String>,
) -> Result<(), AdapterError> {
    let id = resource.id().unwrap_or_default().to_owned();
    for (k, number) in nhs_numbers(resource) {
        match owners.get(&number) {
            Some(owner) if *owner != id => {
                return Err(duplicate_nhs_number(n, k, owner));
            }
            _ => {
                owners.insert(number, id.clone());
            }
        }
    }
    Ok(())
}

/// The error for a Patient claiming an NHS number another Patient here already has.
pub(super) fn duplicate_nhs_number(n: usize, k: usize, owner: &str) -> AdapterError {
    bad(
        n,
        &format!("resource.identifier[{k}].value"),
        &format!(
            "this NHS number already belongs to Patient/{owner}: this adapter keeps one Patient per NHS number (update that record with PUT Patient/{owner})"
        ),
        StatusCode::CONFLICT,
    )
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
        path: if path.is_empty() {
            format!("Bundle.entry[{n}]")
        } else {
            format!("Bundle.entry[{n}].{path}")
        },
        message: message.to_owned(),
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(value: Value) -> Result<(BundleType, Vec<EntryPlan>), AdapterError> {
        plan_json(
            &serde_json::to_vec(&value).expect("json"),
            BundleLimits {
                max_entries: 100,
                max_json_values: 10_000,
            },
        )
    }

    #[test]
    fn a_transaction_rewrites_its_own_urn_references() {
        let (_, plans) = plan(json!({
            "resourceType": "Bundle", "type": "transaction",
            "entry": [
                {"fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
                 "resource": {"resourceType": "Patient"},
                 "request": {"method": "POST", "url": "Patient"}},
                {"resource": {"resourceType": "Observation", "subject": {"reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"}},
                 "request": {"method": "POST", "url": "Observation"}}
            ]
        }))
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
        let err = plan(json!({
            "resourceType": "Bundle", "type": "transaction",
            "entry": [
                {"resource": {"resourceType": "Patient", "id": "a"}, "request": {"method": "PUT", "url": "Patient/a"}},
                {"resource": {"resourceType": "Patient", "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": "9434765918"}]},
                 "request": {"method": "PUT", "url": "Patient/b"}}
            ]
        }))
        .unwrap_err();
        let AdapterError::BadEntry { path, status, .. } = err else {
            panic!("bad entry expected")
        };
        assert_eq!(path, "Bundle.entry[1].resource.identifier[0].value");
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn a_batch_keeps_its_good_entries() {
        let (kind, plans) = plan(json!({
            "resourceType": "Bundle", "type": "batch",
            "entry": [
                {"resource": {"resourceType": "Patient"}, "request": {"method": "DELETE", "url": "Patient/x"}},
                {"resource": {"resourceType": "Patient"}, "request": {"method": "PUT", "url": "Patient/ok"}}
            ]
        }))
        .unwrap();
        assert_eq!(kind, BundleType::Batch);
        assert!(plans[0].is_err());
        assert_eq!(plans[1].as_ref().unwrap().id(), Some("ok"));
    }

    #[test]
    fn a_put_whose_body_names_another_id_is_refused() {
        let err = plan(json!({
            "resourceType": "Bundle", "type": "transaction",
            "entry": [{"resource": {"resourceType": "Patient", "id": "other"}, "request": {"method": "PUT", "url": "Patient/mine"}}]
        }))
        .unwrap_err();
        assert!(
            matches!(err, AdapterError::BadEntry { ref path, .. } if path == "Bundle.entry[0].resource.id")
        );
    }

    #[test]
    fn a_searchset_is_not_ingested() {
        let err = plan(json!({"resourceType": "Bundle", "type": "searchset"})).unwrap_err();
        assert!(matches!(err, AdapterError::NotABundle(_)));
    }

    #[test]
    fn too_many_entries_are_refused_before_any_entry_is_read() {
        let entries: Vec<Value> = (0..101).map(|_| json!({"not": "even an entry"})).collect();
        let err = plan(json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}))
            .unwrap_err();
        assert!(
            matches!(err, AdapterError::TooManyEntries { limit: 100 }),
            "{err:?}"
        );
    }

    #[test]
    fn a_bad_date_in_the_third_entry_rejects_the_transaction_and_says_where() {
        let obs = |date: &str| json!({"resource": {"resourceType": "Observation", "status": "final", "effectiveDateTime": date}, "request": {"method": "POST", "url": "Observation"}});
        let err = plan(json!({"resourceType": "Bundle", "type": "transaction",
            "entry": [obs("2020-02-01"), obs("2020-02-02"), obs("2020-02-30")]}))
        .unwrap_err();
        let AdapterError::BadEntry { path, status, .. } = err else {
            panic!("bad entry expected: {err:?}")
        };
        assert_eq!(path, "Bundle.entry[2].resource.effectiveDateTime");
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn two_patients_with_one_nhs_number_in_one_bundle_are_refused() {
        let patient = |id: &str| json!({"resource": {"resourceType": "Patient", "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": "9434765919"}]}, "request": {"method": "PUT", "url": format!("Patient/{id}")}});
        let err = plan(json!({"resourceType": "Bundle", "type": "transaction",
            "entry": [patient("a"), patient("a"), patient("b")]}))
        .unwrap_err();
        let AdapterError::BadEntry {
            path,
            status,
            message,
        } = err
        else {
            panic!("bad entry expected: {err:?}")
        };
        assert_eq!(path, "Bundle.entry[2].resource.identifier[0].value");
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(message.contains("Patient/a"), "{message}");
    }

    #[test]
    fn malformed_json_is_located() {
        let limits = BundleLimits {
            max_entries: 10,
            max_json_values: 100,
        };
        let err = plan_json(b"{\"resourceType\": \"Bundle\", \"entry\": [", limits).unwrap_err();
        assert!(
            matches!(
                err,
                AdapterError::BadBody(kinfold_fhir::ParseError::Json { line: 1, .. })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn json_values_are_counted_as_members_and_items_at_every_depth() {
        let count = |v: Value| json_values(&serde_json::to_vec(&v).unwrap());
        assert_eq!(count(json!({})), 1);
        assert_eq!(count(json!([])), 1);
        assert_eq!(count(json!({"a": 1})), 2);
        assert_eq!(count(json!([1, 2, 3])), 4);
        assert_eq!(count(json!({"a": [1, {"b": "x,y:[z]{"}], "c": null})), 6);
        assert_eq!(count(json!([[], [[]], {}])), 5);
        assert_eq!(json_values(br#"{"a" : [ 1 , "q\"," ] }"#), 4);
    }

    #[test]
    fn a_bundle_of_too_many_tiny_values_is_refused_before_parsing() {
        let tiny: Vec<Value> = (0..6000).map(|_| json!({"url": "u"})).collect();
        let err = plan(json!({"resourceType": "Bundle", "type": "transaction",
            "entry": [{"resource": {"resourceType": "Observation", "extension": tiny}, "request": {"method": "POST", "url": "Observation"}}]}))
        .unwrap_err();
        assert!(
            matches!(err, AdapterError::TooManyValues { limit: 10_000, .. }),
            "{err:?}"
        );
    }
}
