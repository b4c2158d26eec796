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

/// What kind of interaction an entry records (FHIR restful-interaction, or a security event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    /// A read of one resource.
    Read,
    /// A search.
    Search,
    /// An operation (`$everything`, `$family`, `$growth`, …).
    Operation,
    /// Something made (a consent recorded, an identity link).
    Create,
    /// Something changed (an identity or family change, a review completed).
    Update,
    /// A bearer token issued.
    TokenIssued,
}

impl Interaction {
    /// (event type, subtype, action).
    fn codes(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Interaction::Read => ("rest", "read", "R"),
            Interaction::Search => ("rest", "search-type", "E"),
            Interaction::Operation => ("rest", "operation", "E"),
            Interaction::Create => ("rest", "create", "C"),
            Interaction::Update => ("rest", "update", "U"),
            Interaction::TokenIssued => ("security", "token-issued", "C"),
        }
    }
}

/// The one way the gateway writes an audit record: who acted (a caller in a request, or one of
/// Kinfold's own processes), the interaction and what it asked, then what it concerned. The
/// request id is taken from the request, so every entry a request causes carries it.
#[derive(Debug, Clone)]
pub struct Entry(AuditRecord);

impl Entry {
    /// An entry for what a caller did in a request.
    pub fn by_caller(
        caller: &Caller,
        request: &HttpRequest,
        interaction: Interaction,
        query: &str,
    ) -> Self {
        let mut entry = Self::by(
            &caller.subject,
            kinfold_http::request_id(request),
            interaction,
            query,
        );
        entry.0.agent.organisation = caller.organisation.as_ref().map(ToString::to_string);
        entry.0.agent.role = caller.role.clone();
        entry.0.purpose = caller.purpose.clone();
        entry
    }

    /// An entry for what one of Kinfold's own processes did (`kinfold-identity` reading the
    /// events, `kinfold-demo` issuing tokens), in the request that caused it if there was one.
    pub fn by(
        who: &str,
        request_id: Option<String>,
        interaction: Interaction,
        query: &str,
    ) -> Self {
        let (event_type, subtype, action) = interaction.codes();
        Self(AuditRecord {
            recorded: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            event_type: event_type.into(),
            subtype: subtype.into(),
            action: action.into(),
            outcome: "0".into(),
            query: query.into(),
            agent: AuditAgent {
                who: who.to_owned(),
                ..AuditAgent::default()
            },
            purpose: None,
            patient: None,
            entities: Vec::new(),
            rule: Some(DEFAULT_RULE.into()),
            justification: None,
            request_id,
            source: None,
            count: None,
            until: None,
        })
    }

    /// The person it is about (so that it is in their access report).
    pub fn about(mut self, person: impl Into<String>) -> Self {
        self.0.patient = Some(person.into());
        self
    }

    /// The person it is about, if any.
    pub fn about_maybe(mut self, person: Option<String>) -> Self {
        self.0.patient = person;
        self
    }

    /// The records it disclosed, withheld or changed.
    pub fn entities(mut self, entities: Vec<AuditEntity>) -> Self {
        self.0.entities = entities;
        self
    }

    /// The rule that allowed it (a relationship's, or the rule of a change).
    pub fn rule(mut self, rule: &str) -> Self {
        self.0.rule = Some(rule.to_owned());
        self
    }

    /// The reason given (an override's justification, a change's reason).
    pub fn justification(mut self, why: impl Into<String>) -> Self {
        self.0.justification = Some(why.into());
        self
    }

    /// Refused under `rule`: nothing was disclosed or changed.
    pub fn refused(mut self, rule: &str) -> Self {
        self.0.outcome = "4".into();
        self.0.entities.clear();
        self.rule(rule)
    }

    /// The record to append.
    pub fn done(self) -> AuditRecord {
        self.0
    }
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
    Entry::by(who, request_id, Interaction::Create, "identity-link")
        .about(person_id)
        .entities(vec![disclosed(
            &format!("urn:kinfold:person:{person_id}"),
            "Patient",
            None,
        )])
        .rule("kinfold.nhs-number-match")
        .done()
}

/// A record of a bearer token issued: to whom, for which organisation and role. The token
/// itself is never recorded.
pub fn token_issued(
    issuer: &str,
    request_id: Option<String>,
    subject: &str,
    organisation: Option<&str>,
    role: Option<&str>,
) -> AuditRecord {
    let mut record = Entry::by(issuer, request_id, Interaction::TokenIssued, "token")
        .entities(vec![AuditEntity {
            reference: format!("urn:kinfold:token-subject:{subject}"),
            resource_type: "Practitioner".into(),
            agency: None,
            disclosure: format!(
                "token issued (organisation {}, role {})",
                organisation.unwrap_or("none"),
                role.unwrap_or("none")
            ),
        }])
        .done();
    record.rule = None;
    record
}

/// A record of a change to who is who or who is family made by Kinfold itself (reading the
/// agencies' events): a link, an edge, an unborn child. It names the person it is about (so it
/// is in their access report), the records it touched and the rule that made it.
pub fn identity_change(
    who: &str,
    person: &kinfold_identity::PersonId,
    query: &str,
    rule: &str,
    entities: Vec<AuditEntity>,
    justification: Option<String>,
) -> AuditRecord {
    let mut entry = Entry::by(who, None, Interaction::Update, query)
        .about(person.to_string())
        .entities(entities)
        .rule(rule);
    if let Some(why) = justification {
        entry = entry.justification(why);
    }
    entry.done()
}
