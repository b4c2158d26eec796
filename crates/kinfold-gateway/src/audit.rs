//! Building audit records for what the gateway does, and showing them as FHIR AuditEvents.

use actix_web::HttpRequest;
use chrono::{SecondsFormat, Utc};
use kinfold_ledger::{AuditAgent, AuditEntity, AuditRecord};
use kinfold_store::LedgerRow;
use serde_json::{Value, json};

use crate::auth::Caller;

/// The rule of an answer no relationship decides (a Patient search that found nobody): an
/// authenticated caller who says who and why. Named so
/// that every record says which rule let it through.
pub const DEFAULT_RULE: &str = "kinfold.authenticated-caller";

/// A record of a request that succeeded.
pub fn record(
    caller: &Caller,
    subtype: &str,
    action: &str,
    query: &str,
    patient: Option<String>,
    entities: Vec<AuditEntity>,
    request: &HttpRequest,
) -> AuditRecord {
    AuditRecord {
        recorded: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        event_type: "rest".into(),
        subtype: subtype.into(),
        action: action.into(),
        outcome: "0".into(),
        query: query.into(),
        agent: AuditAgent {
            who: caller.subject.clone(),
            organisation: caller.organisation.as_ref().map(ToString::to_string),
            role: caller.role.clone(),
        },
        purpose: caller.purpose.clone(),
        patient,
        entities,
        rule: Some(DEFAULT_RULE.into()),
        justification: None,
        request_id: request_id(request),
        source: None,
        count: None,
        until: None,
    }
}

/// A record of a request refused by a rule (no legitimate relationship): who asked about
/// whom, and why nothing was disclosed.
pub fn refused(
    caller: &Caller,
    query: &str,
    patient: Option<String>,
    request: &HttpRequest,
    rule: &str,
) -> AuditRecord {
    let mut record = record(
        caller,
        "operation",
        "E",
        query,
        patient,
        Vec::new(),
        request,
    );
    record.outcome = "4".into();
    record.rule = Some(rule.into());
    record
}

fn request_id(request: &HttpRequest) -> Option<String> {
    kinfold_http::request_id(request)
}

/// One disclosed record.
pub fn disclosed(reference: &str, resource_type: &str, agency: Option<&str>) -> AuditEntity {
    AuditEntity {
        reference: reference.to_owned(),
        resource_type: resource_type.to_owned(),
        agency: agency.map(str::to_owned),
        disclosure: "disclosed".into(),
    }
}

/// A stored ledger entry as a FHIR AuditEvent (Basic Audit Log Patterns vocabulary).
pub fn to_audit_event(row: &LedgerRow) -> Option<Value> {
    let record: AuditRecord = serde_json::from_str(&row.record).ok()?;
    let (type_code, type_display) = match (record.event_type.as_str(), record.subtype.as_str()) {
        ("security", "token-issued") => ("110114", "User Authentication"),
        ("security", _) => ("110113", "Security Alert"),
        _ => ("rest", "RESTful Operation"),
    };
    let type_system = if record.event_type == "security" {
        "http://dicom.nema.org/resources/ontology/DCM"
    } else {
        "http://terminology.hl7.org/CodeSystem/audit-event-type"
    };
    let mut agent = json!({
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type", "code": "humanuser", "display": "human user"}]},
        "who": {"identifier": {"system": "urn:kinfold:token-subject", "value": record.agent.who}, "display": record.agent.who},
        "requestor": true
    });
    if let Some(role) = &record.agent.role {
        agent["role"] = json!([{"text": role}]);
    }
    if let Some(source) = &record.source {
        agent["network"] = json!({"address": source, "type": "2"});
    }
    let mut agents = vec![agent];
    if let Some(org) = &record.agent.organisation {
        agents.push(json!({
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleClass", "code": "PROV", "display": "healthcare provider"}]},
            "who": {"identifier": {"system": kinfold_fhir::ODS_CODE_SYSTEM, "value": org}},
            "requestor": false
        }));
    }
    let mut entities: Vec<Value> = Vec::new();
    if let Some(patient) = &record.patient {
        entities.push(json!({
            "what": {"reference": format!("Patient/{patient}")},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"}
        }));
    }
    for entity in &record.entities {
        let mut detail = vec![json!({"type": "disclosure", "valueString": entity.disclosure})];
        if let Some(agency) = &entity.agency {
            detail.push(json!({"type": "agency", "valueString": agency}));
        }
        entities.push(json!({
            "what": {"reference": entity.reference, "type": entity.resource_type},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"},
            "detail": detail
        }));
    }
    let mut event = json!({
        "resourceType": "AuditEvent",
        "id": format!("ledger-{}", row.seq),
        "type": {"system": type_system, "code": type_code, "display": type_display},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": record.subtype}],
        "action": record.action,
        "recorded": record.recorded,
        "outcome": record.outcome,
        "outcomeDesc": match record.count {
            Some(count) => format!(
                "{count} refused request{} to {} from {} (reason: {})",
                if count == 1 { "" } else { "s" },
                record.query,
                record.source.as_deref().unwrap_or("an unknown address"),
                record.rule.as_deref().unwrap_or("none")
            ),
            None => format!("{} (rule: {})", record.query, record.rule.as_deref().unwrap_or("none")),
        },
        "agent": agents,
        "source": {"observer": {"display": "Kinfold gateway"}, "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}]}
    });
    if let Some(purpose) = &record.purpose {
        event["purposeOfEvent"] = json!([{"text": purpose}]);
    }
    if let Some(until) = &record.until {
        event["period"] = json!({"start": record.recorded, "end": until});
    }
    if !entities.is_empty() {
        event["entity"] = Value::Array(entities);
    }
    Some(event)
}

/// A record of a new identity link: Kinfold's person id now stands for an NHS number.
pub fn identity_link(who: &str, person_id: &str, request_id: Option<String>) -> AuditRecord {
    AuditRecord {
        recorded: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        event_type: "rest".into(),
        subtype: "create".into(),
        action: "C".into(),
        outcome: "0".into(),
        query: "identity-link".into(),
        agent: AuditAgent {
            who: who.to_owned(),
            ..AuditAgent::default()
        },
        purpose: None,
        patient: Some(person_id.to_owned()),
        entities: vec![disclosed(
            &format!("urn:kinfold:person:{person_id}"),
            "Patient",
            None,
        )],
        rule: Some("kinfold.nhs-number-match".into()),
        justification: None,
        request_id,
        source: None,
        count: None,
        until: None,
    }
}

/// A record of a bearer token issued: to whom, for which organisation and role. The token
/// itself is never recorded.
pub fn token_issued(
    issuer: &str,
    subject: &str,
    organisation: Option<&str>,
    role: Option<&str>,
) -> AuditRecord {
    AuditRecord {
        recorded: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        event_type: "security".into(),
        subtype: "token-issued".into(),
        action: "C".into(),
        outcome: "0".into(),
        query: "token".into(),
        agent: AuditAgent {
            who: issuer.to_owned(),
            ..AuditAgent::default()
        },
        purpose: None,
        patient: None,
        entities: vec![AuditEntity {
            reference: format!("urn:kinfold:token-subject:{subject}"),
            resource_type: "Practitioner".into(),
            agency: None,
            disclosure: format!(
                "token issued (organisation {}, role {})",
                organisation.unwrap_or("none"),
                role.unwrap_or("none")
            ),
        }],
        rule: None,
        justification: None,
        request_id: None,
        source: None,
        count: None,
        until: None,
    }
}

/// A record of a change to who is who or who is family: a link, merge, split, review
/// decision or family edge. It names the person it is about (so it is in their access report),
/// the records it touched and the rule (or the person, with their reason) that made it.
pub fn identity_change(
    who: &str,
    person: &kinfold_identity::PersonId,
    query: &str,
    rule: &str,
    entities: Vec<AuditEntity>,
    justification: Option<String>,
) -> AuditRecord {
    AuditRecord {
        recorded: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        event_type: "rest".into(),
        subtype: "update".into(),
        action: "U".into(),
        outcome: "0".into(),
        query: query.into(),
        agent: AuditAgent {
            who: who.to_owned(),
            ..AuditAgent::default()
        },
        purpose: None,
        patient: Some(person.to_string()),
        entities,
        rule: Some(rule.into()),
        justification,
        request_id: None,
        source: None,
        count: None,
        until: None,
    }
}
