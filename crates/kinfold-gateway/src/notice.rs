//! Making a notification: the Task for one recipient, its ledger entry and its row; who the
//! recipients of a rule's role are, found in the child's records; and the one notification
//! made outside the event stream, a protected child's record read from unscheduled care
//! (called from the disclosure pipeline). The event stream itself is read in
//! `crate::notifications`.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use kinfold_consent::{ChildFacts, Purpose, Requester, Role as Professional};
use kinfold_fhir::Agency;
use kinfold_identity::PersonId;
use kinfold_notify::{Planned, Role, Trigger};
use kinfold_store::{NEVER, StoredNotification};
use serde_json::{Value, json};
use std::collections::HashSet;

use crate::audit::{Entry, Interaction};
use crate::error::GatewayError;
use crate::fanout::AgencyAnswer;
use crate::notifier::Notifier;
use crate::reviews::TASK_SYSTEM;
use crate::state::GatewayState;

/// The task code of a notification.
pub const NOTIFICATION: &str = "notification";
/// The code system of the rules (a Task's `reasonCode`).
pub const RULE_SYSTEM: &str = "https://kinfold.example/fhir/CodeSystem/notification-rule";
/// The code system of escalation levels (a Task's `businessStatus`).
pub const ESCALATION_SYSTEM: &str = "https://kinfold.example/fhir/CodeSystem/escalation";
/// Where Kinfold's extensions are defined.
pub(crate) const EXTENSION: &str = "https://kinfold.example/fhir/StructureDefinition/";
/// Who the ledger says made a notification or escalated one.
pub const NOTIFIER: &str = "kinfold-notify";
/// Namespace of notification ids (UUID version 5 of what makes a notification the same).
pub(crate) const ID_SPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6b69_6e66_6f6c_642d_6e6f_7469_6679_0001);

impl Notifier {
    /// Access is a notification too (as CP-IS does it, G20): a child with an active
    /// child-protection plan or looked-after flag read from unscheduled care (an emergency
    /// department) tells the child's health visitor or school nurse and the area's
    /// safeguarding lead who looked, when and why. One notification per reader, child and day.
    pub(crate) async fn protected_child_read(
        &self,
        state: &GatewayState,
        person: &str,
        reader: &Requester,
        facts: &ChildFacts,
        answers: &[AgencyAnswer],
    ) -> Result<(), GatewayError> {
        if reader.role != Professional::EmergencyDepartmentClinician {
            return Ok(());
        }
        let protected = state
            .flags_of(person)
            .await?
            .into_iter()
            .filter(|f| f.status == "active")
            .any(|f| f.kind == "child-protection-plan" || f.kind == "looked-after");
        if !protected {
            return Ok(());
        }
        let now = self.now();
        let today = now.date_naive();
        let born = answers
            .iter()
            .filter_map(|a| a.result.as_ref().ok())
            .flatten()
            .filter(|r| r.resource["resourceType"] == "Patient")
            .find_map(|r| r.resource["birthDate"].as_str())
            .and_then(|d| NaiveDate::parse_from_str(d.get(..10)?, "%Y-%m-%d").ok());
        let under_five = born.is_none_or(|b| years(b, today) < 5);
        let event = kinfold_notify::Event::new(Trigger::ProtectedChildAccessed, now);
        let subject: PersonId = person.parse().map_err(|_| GatewayError::UnknownPerson)?;
        let purpose = match &reader.purpose {
            Purpose::DirectCare => "direct care".to_owned(),
            Purpose::Safeguarding => "safeguarding".to_owned(),
            Purpose::Override { justification } => format!("an override: {justification}"),
        };
        let who = format!(
            "{} ({}, {} at {})",
            reader.name.as_deref().unwrap_or(&reader.practitioner),
            reader.practitioner,
            reader.role.as_str(),
            reader.organisation
        );
        let mut made = Made::default();
        for planned in self.rules.plan(&event, &self.calendar) {
            let (recipients, unresolved) =
                match resolve(planned.role, facts, under_five, answers, &state.disclosure) {
                    Ok(found) if !found.is_empty() => (found, None),
                    Ok(_) => (
                        vec![area_lead(&state.disclosure)],
                        Some(format!(
                            "The records name no {} for this child.",
                            role_words(planned.role)
                        )),
                    ),
                    Err(why) => (vec![area_lead(&state.disclosure)], Some(why)),
                };
            for recipient in recipients {
                let id = same_id(&[
                    planned.rule.as_str(),
                    role_words(planned.role),
                    person,
                    &reader.practitioner,
                    &reader.organisation,
                    &today.to_string(),
                    recipient.org.as_str(),
                    recipient.role.as_str(),
                ]);
                if !made.ids.insert(id.clone()) {
                    continue;
                }
                let stamp = now.to_rfc3339_opts(SecondsFormat::Millis, true);
                self.plain(
                    &mut made,
                    Plain {
                        id,
                        planned: &planned,
                        subject: subject.as_str(),
                        recipient,
                        unresolved: unresolved.clone(),
                        summary: "A child with an active child-protection or looked-after flag read from an unscheduled-care setting",
                        notes: vec![format!(
                            "Read from unscheduled care by {who} at {stamp}, for {purpose}."
                        )],
                        inputs: vec![json!({"type": {"text": "read by"}, "valueString": who})],
                        focus: None,
                        audit_rule: "notification.protected-child-accessed",
                        now,
                    },
                );
            }
        }
        let Made { tasks, audit, .. } = made;
        state
            .ledger
            .record_within(audit, |rows| async move {
                state
                    .store
                    .notifications_add(&tasks, &rows)
                    .await
                    .map_err(GatewayError::from)
            })
            .await?;
        Ok(())
    }

    /// A notification that is not about a record the recipient's view must be decided for (a
    /// read of a protected child's record, an overdue transfer): its Task, ledger entry and
    /// row added to `made`.
    pub(crate) fn plain(&self, made: &mut Made, notice: Plain<'_>) {
        let Plain {
            id,
            planned,
            subject,
            recipient,
            unresolved,
            summary,
            notes,
            inputs,
            focus,
            audit_rule,
            now,
        } = notice;
        let stamp = now.to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut extensions = vec![
            json!({"url": format!("{EXTENSION}notification-requirement"), "valueCode": planned.requirement}),
            json!({"url": format!("{EXTENSION}owner-role"), "valueCode": recipient.role.as_str()}),
        ];
        let mut notes: Vec<Value> = notes.into_iter().map(|n| json!({"text": n})).collect();
        if let Some(why) = &unresolved {
            extensions.push(
                json!({"url": format!("{EXTENSION}recipient-unresolved"), "valueString": why}),
            );
            notes.push(json!({"text": format!("Sent to the area's safeguarding lead: {why}")}));
        }
        let mut task = json!({
            "resourceType": "Task",
            "id": id,
            "status": "requested",
            "intent": "order",
            "priority": "routine",
            "code": {"coding": [{"system": TASK_SYSTEM, "code": NOTIFICATION, "display": "Safeguarding notification"}]},
            "reasonCode": {"coding": [{"system": RULE_SYSTEM, "code": planned.rule, "display": summary}], "text": summary},
            "for": {"reference": format!("Patient/{subject}")},
            "authoredOn": stamp,
            "lastModified": stamp,
            "owner": owner_reference(&recipient),
            "restriction": {"period": {"end": planned.due.to_rfc3339_opts(SecondsFormat::Secs, true)}},
            "businessStatus": level_concept(0),
            "input": inputs,
            "extension": extensions,
            "note": notes,
        });
        if let Some(focus) = &focus {
            task["focus"] = json!({"reference": focus});
        }
        made.audit.push(
            Entry::by(
                NOTIFIER,
                None,
                Interaction::Create,
                &format!("notification {} to {}", planned.rule, recipient.label),
            )
            .about(subject.to_owned())
            .entities(vec![kinfold_ledger::AuditEntity {
                reference: format!("Task/{id}"),
                resource_type: "Task".into(),
                agency: None,
                disclosure: format!("notification to {}", recipient.label),
            }])
            .rule(audit_rule)
            .done(),
        );
        let next = match kinfold_notify::escalation(planned.due, false, now, &self.calendar) {
            (_, Some(next)) => next.timestamp_millis(),
            (_, None) => NEVER,
        };
        made.tasks.push(StoredNotification {
            id,
            rule: planned.rule.clone(),
            person: subject.to_owned(),
            owner_org: recipient.org,
            owner_role: recipient.role.as_str().to_owned(),
            owner_name: recipient.name.unwrap_or_default(),
            status: "requested".into(),
            level: 0,
            due: planned.due.timestamp_millis(),
            next_escalation: next,
            event_seq: 0,
            created: now.timestamp_millis(),
            updated: now.timestamp_millis(),
            body: task.to_string(),
        });
    }
}

/// A notification [`Notifier::plain`] makes.
pub(crate) struct Plain<'a> {
    pub(crate) id: String,
    pub(crate) planned: &'a Planned,
    pub(crate) subject: &'a str,
    pub(crate) recipient: Recipient,
    pub(crate) unresolved: Option<String>,
    pub(crate) summary: &'a str,
    pub(crate) notes: Vec<String>,
    pub(crate) inputs: Vec<Value>,
    pub(crate) focus: Option<String>,
    pub(crate) audit_rule: &'a str,
    pub(crate) now: DateTime<Utc>,
}

/// What one pass made: the Tasks, their ledger entries, their ids, the transfers to watch
/// and those completed.
#[derive(Default)]
pub(crate) struct Made {
    pub(crate) tasks: Vec<StoredNotification>,
    pub(crate) audit: Vec<kinfold_ledger::AuditRecord>,
    pub(crate) ids: HashSet<String>,
    pub(crate) watches: Vec<kinfold_store::Watch>,
    pub(crate) finished: Vec<String>,
}

/// The safeguarding lead of the service holding an agency's records.
pub(crate) fn transfer_lead(
    config: &crate::disclosure::DisclosureConfig,
    agency: Agency,
    words: &str,
) -> Option<Recipient> {
    let org = config.organisation_of(agency)?;
    Some(Recipient {
        org: org.to_owned(),
        role: Professional::SafeguardingProfessional,
        name: None,
        label: format!("the {words} safeguarding lead of {org}"),
    })
}

/// Someone told: an organisation's professionals in a role, or one of them by name.
#[derive(Debug, Clone)]
pub(crate) struct Recipient {
    pub(crate) org: String,
    pub(crate) role: Professional,
    pub(crate) name: Option<String>,
    pub(crate) label: String,
}

pub(crate) fn area_lead(config: &crate::disclosure::DisclosureConfig) -> Recipient {
    Recipient {
        org: config.area.clone(),
        role: Professional::SafeguardingProfessional,
        name: None,
        label: format!("the area safeguarding lead ({})", config.area),
    }
}

/// The recipients a rule's role names for one child, from the child's records; `Err` says
/// why they could not be found (the agency that would say did not answer).
pub(crate) fn resolve(
    role: Role,
    facts: &ChildFacts,
    under_five: bool,
    answers: &[AgencyAnswer],
    config: &crate::disclosure::DisclosureConfig,
) -> Result<Vec<Recipient>, String> {
    let failed = |agency: Agency| {
        answers
            .iter()
            .any(|a| a.agency == agency && a.result.is_err())
            .then(|| format!("the {} records did not answer in time", agency.as_str()))
    };
    let of_agency = |agency: Agency, role: Professional, words: &str| {
        config
            .organisation_of(agency)
            .map(|org| Recipient {
                org: org.to_owned(),
                role,
                name: None,
                label: format!("{words} of {org}"),
            })
            .into_iter()
            .collect::<Vec<_>>()
    };
    let found = match role {
        Role::RegisteredGp => {
            if let Some(why) = failed(Agency::Gp) {
                return Err(why);
            }
            let mut practices = facts.registered_practices.clone();
            practices.dedup();
            practices
                .into_iter()
                .map(|org| Recipient {
                    label: format!("the registered GP practice {org}"),
                    org,
                    role: Professional::Gp,
                    name: None,
                })
                .collect()
        }
        Role::HealthVisitorOrSchoolNurse => {
            let (first, second) = if under_five {
                (Agency::HealthVisiting, Agency::SchoolNursing)
            } else {
                (Agency::SchoolNursing, Agency::HealthVisiting)
            };
            let allocated = |agency: Agency| -> Vec<Recipient> {
                let mut found: Vec<Recipient> = facts
                    .allocations
                    .iter()
                    .filter(|a| a.agency == agency)
                    .filter_map(|a| {
                        let org = a.organisation.clone()?;
                        let role = if agency == Agency::HealthVisiting {
                            Professional::HealthVisitor
                        } else {
                            Professional::SchoolNurse
                        };
                        let label = match &a.practitioner {
                            Some(name) => format!("{} {name} of {org}", role.as_str()),
                            None => format!("the {} team of {org}", role.as_str()),
                        };
                        Some(Recipient {
                            org,
                            role,
                            name: a.practitioner.clone(),
                            label,
                        })
                    })
                    .collect();
                // The latest allocation is the current one.
                found.reverse();
                found.truncate(1);
                found
            };
            let mut found = allocated(first);
            if found.is_empty() {
                if let Some(why) = failed(first) {
                    return Err(why);
                }
                found = allocated(second);
            }
            found
        }
        Role::PaediatricLiaison => of_agency(
            Agency::Ae,
            Professional::PaediatricLiaisonNurse,
            "the paediatric liaison team",
        ),
        Role::MidwifeOfUnborn => {
            if let Some(why) = failed(Agency::Midwifery) {
                return Err(why);
            }
            let mut orgs: Vec<String> =
                facts.maternity_bookings.iter().flatten().cloned().collect();
            orgs.sort();
            orgs.dedup();
            orgs.into_iter()
                .map(|org| Recipient {
                    label: format!("the midwives of {org}"),
                    org,
                    role: Professional::Midwife,
                    name: None,
                })
                .collect()
        }
        Role::MidwiferySafeguardingLead => of_agency(
            Agency::Midwifery,
            Professional::SafeguardingProfessional,
            "the midwifery safeguarding lead",
        ),
        Role::HealthVisitingTeam => of_agency(
            Agency::HealthVisiting,
            Professional::HealthVisitor,
            "the health visiting team",
        ),
        Role::AreaSafeguardingLead => vec![area_lead(config)],
        // The meeting, transfer and referral feeds are not yet read into events.
        Role::SendingServiceLead
        | Role::ReceivingServiceLead
        | Role::MeetingChair
        | Role::Referrer => Vec::new(),
    };
    Ok(found)
}

/// The professional a referral or a meeting names as its requester (the referrer, the
/// chair): their organisation, Kinfold role and name.
pub(crate) fn referrer_of(task: &Value, who: &str) -> Option<Recipient> {
    let requester = &task["requester"];
    let org = requester["identifier"]["value"].as_str()?.to_owned();
    let role: Professional = requester["extension"].as_array()?.iter().find(|e| {
        e["url"]
            .as_str()
            .is_some_and(|u| u.ends_with("referrer-role"))
    })?["valueCode"]
        .as_str()?
        .parse()
        .ok()?;
    let name = requester["display"].as_str().map(str::to_owned);
    Some(Recipient {
        label: format!(
            "{} ({} at {org}), {who}",
            name.as_deref().unwrap_or("the professional"),
            role.as_str()
        ),
        org,
        role,
        name,
    })
}

/// A role in words, for a note.
pub(crate) fn role_words(role: Role) -> &'static str {
    match role {
        Role::RegisteredGp => "registered GP practice",
        Role::HealthVisitorOrSchoolNurse => "allocated health visitor or school nurse",
        Role::PaediatricLiaison => "paediatric liaison team",
        Role::MidwifeOfUnborn => "midwife of the unborn child",
        Role::MidwiferySafeguardingLead => "midwifery safeguarding lead",
        Role::HealthVisitingTeam => "health visiting team",
        Role::SendingServiceLead => "sending service's lead",
        Role::ReceivingServiceLead => "receiving service's lead",
        Role::MeetingChair => "meeting chair",
        Role::AreaSafeguardingLead => "area safeguarding lead",
        Role::Referrer => "referrer",
    }
}

/// Whole years from `born` to `on`.
pub(crate) fn years(born: NaiveDate, on: NaiveDate) -> u32 {
    on.years_since(born).unwrap_or(0)
}

/// An id that is the same whenever its parts are (UUID version 5).
pub(crate) fn same_id(parts: &[&str]) -> String {
    uuid::Uuid::new_v5(&ID_SPACE, parts.join("\u{1f}").as_bytes()).to_string()
}

/// A Task's `owner`: the organisation, and the practitioner when one is named.
pub(crate) fn owner_reference(recipient: &Recipient) -> Value {
    json!({
        "identifier": {"system": kinfold_fhir::ODS_CODE_SYSTEM, "value": recipient.org},
        "display": recipient.label,
    })
}

/// An escalation level as a Task's `businessStatus`.
pub(crate) fn level_concept(level: i64) -> Value {
    let (code, display) = match level {
        0 => ("recipient", "With the recipient"),
        1 => (
            "team-lead",
            "Escalated to the recipient organisation's safeguarding lead",
        ),
        _ => (
            "area-safeguarding-lead",
            "Escalated to the area's safeguarding lead",
        ),
    };
    json!({"coding": [{"system": ESCALATION_SYSTEM, "code": code, "display": display}], "text": display})
}
