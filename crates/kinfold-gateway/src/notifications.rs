//! Notifications (issue 27): the "think family" rules of `kinfold-notify` run over the events the
//! adapters deliver, each notification a FHIR `Task` for one recipient resolved from the
//! records, kept with its ledger entry, and escalated on the clock when nobody acknowledges it.
//!
//! * **Made from the received events, never lost or made twice.** The events are durable at
//!   the gateway before anything reads them (`received_events`). A pass reads the next events
//!   the person index has already read (so "every child in the household" is the family graph
//!   as those events left it), makes their notifications, and keeps them with their ledger
//!   entries and the new cursor position in one transaction, only if the cursor is still
//!   where the pass found it: a second gateway on the database that read the same events
//!   first wins, and this pass's work is dropped. A notification's id is derived from the
//!   rule, the record that set it off, the child and the recipient, so an agency's update of
//!   the same attendance does not tell anyone twice.
//! * **Recipients come from the records.** The child's registered practice (the GP's
//!   Patient), the current health-visiting or school-nursing allocation (a named practitioner,
//!   or the team's pool), the hospital whose A&E it was, the maternity service that booked the
//!   pregnancy. When the records name nobody (or the agency that would have said did not
//!   answer), the notification goes to the area's safeguarding lead and says why.
//! * **A notification is a disclosure.** Each recipient is a requester of the consent engine
//!   (their role and organisation, purpose direct care): the triggering record is the Task's
//!   `focus` only if the engine permits it to them, and otherwise the Task says that a record
//!   exists that they may not see. The ledger entry names what each recipient was shown or
//!   had withheld.
//! * **Escalation runs on the clock.** Unacknowledged past its deadline, a notification goes
//!   to the recipient organisation's safeguarding lead, and a working day later to the area's;
//!   each step is a Task of its own (`partOf` the notification) and a ledger entry.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use kinfold_consent::{ChildFacts, Purpose, Relationship, Requester, Role as Professional, Whose};
use kinfold_fhir::Agency;
use kinfold_identity::PersonId;
use kinfold_identity::family::Kin;
use kinfold_notify::{Escalation, ForEach, Injury, Planned, Priority, Role, Trigger};
use kinfold_store::{NEVER, StoreError, StoredNotification};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::audit::{Entry, Interaction};
use crate::disclosure::{facts, screen};
use crate::error::GatewayError;
use crate::fanout::AgencyAnswer;
use crate::notice::{
    EXTENSION, Made, NOTIFICATION, NOTIFIER, Plain, RULE_SYSTEM, Recipient, area_lead,
    level_concept, owner_reference, referrer_of, resolve, role_words, same_id, transfer_lead,
    years,
};
use crate::notifier::Notifier;
use crate::reviews::TASK_SYSTEM;
use crate::state::GatewayState;

/// The most received events one pass reads.
const EVENTS_PER_PASS: i64 = 50;
/// How many people's records a notification pass asks the agencies for at once.
const PEOPLE_AT_ONCE: usize = 4;
/// The most escalations one pass makes.
const ESCALATIONS_PER_PASS: i64 = 100;

impl Notifier {
    /// Reads the next received events into notifications; answers whether more may wait.
    pub(crate) async fn pass(&self, state: &GatewayState) -> Result<bool, GatewayError> {
        let _one = self.pass.lock().await;
        let from = state.store.notify_cursor().await?;
        let read = state
            .identities
            .read(&state.store, &state.ledger, |inner| inner.cursor)
            .await?;
        if read <= from {
            return Ok(false);
        }
        let events: Vec<_> = state
            .store
            .events_after(from, EVENTS_PER_PASS)
            .await?
            .into_iter()
            .filter(|e| e.seq <= read)
            .collect();
        let Some(to) = events.last().map(|e| e.seq) else {
            return Ok(false);
        };
        let now = self.now();
        let mut made = Made::default();
        let mut records = Records::default();
        // The records of every person these events may notify about, asked for side by side
        // (the events are then read in turn, each with its records at hand).
        records.prefetch(state, &events).await?;
        for event in &events {
            self.notifications_of(state, event, now, &mut records, &mut made)
                .await?;
        }
        let Made {
            tasks,
            audit,
            watches,
            finished,
            ..
        } = made;
        let count = tasks.len();
        let made_from: Vec<i64> = tasks.iter().map(|t| t.event_seq).collect();
        let saved = state
            .ledger
            .record_within(audit, |rows| async move {
                state
                    .store
                    .notify_save(from, to, &tasks, &watches, &finished, &rows)
                    .await
                    .map_err(GatewayError::from)
            })
            .await;
        match saved {
            Ok(_) => {
                let arrived: std::collections::HashSet<i64> = made_from.iter().copied().collect();
                let now = Utc::now().timestamp_millis();
                for event in events.iter().filter(|e| arrived.contains(&e.seq)) {
                    state
                        .metrics
                        .event_to_notification((now - event.received) as f64 / 1000.0);
                }
                if count > 0 {
                    tracing::info!(
                        notifications = count,
                        events = events.len(),
                        "notifications made"
                    );
                }
                Ok(to < read)
            }
            // Another gateway read these events first: its notifications stand.
            Err(GatewayError::Store(StoreError::Conflict(_))) => Ok(true),
            Err(other) => Err(other),
        }
    }

    /// The notifications one received event calls for, added to `made`.
    async fn notifications_of(
        &self,
        state: &GatewayState,
        event: &kinfold_store::ReceivedEvent,
        now: DateTime<Utc>,
        records: &mut Records,
        made: &mut Made,
    ) -> Result<(), GatewayError> {
        let Ok(feed) = serde_json::from_str::<FeedEvent>(&event.payload) else {
            // The identity work reads the same events and says what it cannot read.
            return Ok(());
        };
        let key = kinfold_identity::RecordKey {
            agency: feed.agency,
            reference: feed.patient.reference.clone(),
        };
        let today = now.date_naive();
        let found = state
            .identities
            .read(&state.store, &state.ledger, |inner| {
                let person = inner.current(&inner.records.get(&key)?.person)?;
                let born = birth_date(inner, &person);
                let family = inner
                    .graph()
                    .family_of(&person)
                    .into_iter()
                    .map(|m| {
                        let born = birth_date(inner, &m.person);
                        (m.person, m.kin, born)
                    })
                    .collect::<Vec<_>>();
                Some((person, born, family))
            })
            .await?;
        let Some((person, born, family)) = found else {
            return Ok(());
        };
        let born = born.or_else(|| {
            feed.patient
                .birth_date
                .as_deref()
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        });
        let child = born.is_some_and(|b| years(b, today) < 18);
        // What the codes say, and what the child's records say about them: a was-not-brought
        // that repeats (G17, as the chronology counts them), a growth measurement that meets
        // a NICE NG75 threshold. Each with the record that makes it the same notification
        // (`None`: the event's own).
        let mut triggers: Vec<(Trigger, Vec<kinfold_notify::Reason>, Option<String>)> =
            kinfold_notify::triggers_of(&feed.codes, child)
                .into_iter()
                .map(|(t, r)| (t, r, None))
                .collect();
        let has = |code: &str| has_code(&feed.codes, code);
        if child && has("was-not-brought") {
            let answers = records.of(state, &person).await?;
            if repeated_was_not_brought(answers) {
                triggers.push((Trigger::RepeatedWasNotBrought, Vec::new(), None));
            }
        }
        if child && has("growth-measurement") {
            let answers = records.of(state, &person).await?;
            if let Ok(report) = crate::growth::report(person.as_str(), None, answers) {
                // An episode first met within the last year: older ones were someone's news
                // long ago (the chronology keeps them).
                for episode in report
                    .history
                    .iter()
                    .filter(|e| (today - e.date).num_days() <= 365)
                {
                    let rule = serde_json::to_value(episode.finding.rule)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    triggers.push((
                        Trigger::FalteringGrowth,
                        Vec::new(),
                        Some(format!("ng75/{rule}/{}", episode.date)),
                    ));
                }
            }
        }
        if triggers.is_empty() && !watched(&feed.codes) {
            return Ok(());
        }
        // The records that set it off: the event's own, at the agency that sent it.
        let answers = records.of(state, &person).await?;
        let mut focus: Vec<crate::fanout::AgencyRecord> = answers
            .iter()
            .filter(|a| a.agency == feed.agency)
            .filter_map(|a| a.result.as_ref().ok())
            .flatten()
            .filter(|r| {
                feed.resources.iter().any(|res| {
                    !res.starts_with("Patient/") && r.full_url.ends_with(&format!("/{res}"))
                })
            })
            .cloned()
            .collect();
        // What happened first (the attendance, the notification, the booking), then what
        // was recorded with it (the injury, the diagnosis).
        focus.sort_by_key(|r| {
            !matches!(
                r.resource["resourceType"].as_str(),
                Some("Encounter" | "Communication" | "EpisodeOfCare")
            )
        });
        let source = focus.first().map_or_else(
            || format!("{}/{}", feed.agency.as_str(), feed.patient.reference),
            |r| r.full_url.clone(),
        );
        // A transfer of custody (G7): watched from its start until it completes, and its
        // services' leads told if its deadline passes first.
        if let Some(task) = focus
            .iter()
            .find(|r| r.resource["code"]["coding"][0]["code"] == "custody-transfer")
        {
            let id = same_id(&["custody-transfer", &task.full_url]);
            if has("custody-transfer-completed") {
                made.finished.push(id);
            } else if let Some(after) = self
                .rules
                .rules
                .iter()
                .find(|r| r.trigger == Trigger::CustodyTransferOverdue)
                .and_then(|r| r.overdue_after)
            {
                made.watches.push(kinfold_store::Watch {
                    id,
                    kind: "custody-transfer".into(),
                    detail: "{}".into(),
                    person: person.to_string(),
                    source: task.full_url.clone(),
                    started: now.timestamp_millis(),
                    due: after.due(now, &self.calendar).timestamp_millis(),
                });
            }
        }
        // A strategy meeting (G10): watched until every attendee's minutes are filed, and
        // its chair and the area's lead told if they are due first.
        if let Some(meeting) = focus
            .iter()
            .find(|r| r.resource["code"]["coding"][0]["code"] == "strategy-meeting")
        {
            let id = same_id(&["strategy-meeting", &meeting.full_url]);
            let due = meeting.resource["restriction"]["period"]["end"]
                .as_str()
                .and_then(|d| NaiveDate::parse_from_str(d.get(..10)?, "%Y-%m-%d").ok());
            if has("minutes-complete") {
                made.finished.push(id);
            } else if let (true, Some(due)) = (has("minutes-outstanding"), due) {
                // Due by the end of the day they are due.
                let overdue = (due + chrono::Duration::days(1))
                    .and_hms_opt(0, 0, 0)
                    .map_or(now, |t| t.and_utc());
                made.watches.push(kinfold_store::Watch {
                    id,
                    kind: "minutes".into(),
                    person: person.to_string(),
                    source: meeting.full_url.clone(),
                    started: now.timestamp_millis(),
                    due: overdue.timestamp_millis(),
                    detail: json!({"requester": meeting.resource["requester"]}).to_string(),
                });
            }
        }
        // A referral's referrer, as the referral names them (G15).
        let referrer = focus
            .iter()
            .find(|r| r.resource["code"]["coding"][0]["code"] == "referral")
            .and_then(|r| referrer_of(&r.resource, "who made the referral"));
        for (trigger, reasons, same_as) in triggers {
            let source = same_as.as_deref().unwrap_or(&source);
            let mut planned_event = kinfold_notify::Event::new(trigger, now);
            planned_event.reasons = reasons;
            if trigger == Trigger::ChildAttendance {
                planned_event.child_age_months = born.map(|b| months(b, today));
                planned_event.injuries = injuries(&focus);
            }
            if trigger == Trigger::BookedPregnancy {
                let children: Vec<String> = family
                    .iter()
                    .filter(|(_, kin, _)| *kin == Kin::Child)
                    .map(|(p, _, _)| p.to_string())
                    .collect();
                planned_event.safeguarding_history = state
                    .store
                    .flags_of(&children)
                    .await?
                    .iter()
                    .any(|f| f.status == "active");
            }
            for planned in self.rules.plan(&planned_event, &self.calendar) {
                for (subject, unborn) in subjects(&person, child, planned.for_each, &family, today)
                {
                    let wanted_unborn = planned.role == Role::MidwifeOfUnborn;
                    if unborn != wanted_unborn {
                        continue;
                    }
                    let subject_born = if subject == person {
                        born
                    } else {
                        family
                            .iter()
                            .find(|(p, _, _)| *p == subject)
                            .and_then(|(_, _, b)| *b)
                    };
                    let subject_answers = records.of(state, &subject).await?;
                    let facts = facts(&state.disclosure, subject_answers);
                    let under_five = subject_born.is_none_or(|b| years(b, today) < 5);
                    let resolved = if planned.role == Role::Referrer {
                        Ok(referrer.clone().into_iter().collect())
                    } else {
                        resolve(
                            planned.role,
                            &facts,
                            under_five,
                            subject_answers,
                            &state.disclosure,
                        )
                    };
                    let (recipients, unresolved) = match resolved {
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
                        let whose = if subject == person {
                            Whose::Child
                        } else {
                            Whose::Family
                        };
                        self.notify(
                            state,
                            Notice {
                                event: event.seq,
                                planned: &planned,
                                source,
                                subject: &subject,
                                recipient,
                                unresolved: unresolved.clone(),
                                facts: &facts,
                                focus: &focus,
                                focus_agency: feed.agency,
                                whose,
                                now,
                            },
                            made,
                        )
                        .await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// One notification: the recipient's view of the focus decided, the Task and its ledger
    /// entry added to `made`.
    async fn notify(
        &self,
        state: &GatewayState,
        notice: Notice<'_>,
        made: &mut Made,
    ) -> Result<(), GatewayError> {
        let Notice {
            event,
            planned,
            source,
            subject,
            recipient,
            unresolved,
            facts,
            focus,
            focus_agency,
            whose,
            now,
        } = notice;
        let id = same_id(&[
            planned.rule.as_str(),
            role_words(planned.role),
            source,
            subject.as_str(),
            recipient.org.as_str(),
            recipient.role.as_str(),
            recipient.name.as_deref().unwrap_or(""),
        ]);
        if !made.ids.insert(id.clone()) {
            return Ok(());
        }
        let requester = Requester {
            practitioner: recipient
                .name
                .clone()
                .unwrap_or_else(|| format!("{}@{}", recipient.role.as_str(), recipient.org)),
            name: recipient.name.clone(),
            role: recipient.role,
            organisation: recipient.org.clone(),
            purpose: Purpose::DirectCare,
        };
        let policy = state.disclosure.policy();
        let relationship =
            kinfold_consent::relationship(&requester, facts, now.date_naive(), &policy)
                .unwrap_or_else(|| Relationship {
                    rule: "relationship.notification-recipient",
                    basis: format!("a recipient of the {} rule", planned.rule),
                });
        let screened = screen(
            &policy,
            &requester,
            &relationship,
            whose,
            &[],
            vec![AgencyAnswer {
                agency: focus_agency,
                result: Ok(focus.to_vec()),
                truncated: false,
            }],
        );
        let shown: Vec<&crate::fanout::AgencyRecord> = screened
            .answers
            .iter()
            .filter_map(|a| a.result.as_ref().ok())
            .flatten()
            .collect();
        let withheld = screened.withheld_records.len();
        let due = planned.due;
        let next = match kinfold_notify::escalation(due, false, now, &self.calendar) {
            (_, Some(next)) => next.timestamp_millis(),
            (_, None) => NEVER,
        };
        let stamp = now.to_rfc3339_opts(SecondsFormat::Millis, true);
        let rule = self.rules.rules.iter().find(|r| r.id == planned.rule);
        let summary = rule.map_or(planned.rule.as_str(), |r| r.summary.as_str());
        let mut extensions = vec![
            json!({"url": format!("{EXTENSION}notification-requirement"), "valueCode": planned.requirement}),
            json!({"url": format!("{EXTENSION}owner-role"), "valueCode": recipient.role.as_str()}),
        ];
        if withheld > 0 {
            extensions.push(
                json!({"url": format!("{EXTENSION}withheld-count"), "valueInteger": withheld}),
            );
        }
        if let Some(why) = &unresolved {
            extensions.push(
                json!({"url": format!("{EXTENSION}recipient-unresolved"), "valueString": why}),
            );
        }
        let mut notes = vec![json!({"text": summary})];
        if withheld > 0 {
            notes.push(json!({"text": format!(
                "{withheld} record about this that you may not see exists; ask its holder, or use the override path where the law allows."
            )}));
        }
        if let Some(why) = &unresolved {
            notes.push(json!({"text": format!("Sent to the area's safeguarding lead: {why}")}));
        }
        let mut task = json!({
            "resourceType": "Task",
            "id": id,
            "status": "requested",
            "intent": "order",
            "priority": match planned.priority { Priority::Urgent => "urgent", Priority::Routine => "routine" },
            "code": {"coding": [{"system": TASK_SYSTEM, "code": NOTIFICATION, "display": "Safeguarding notification"}]},
            "reasonCode": {"coding": [{"system": RULE_SYSTEM, "code": planned.rule, "display": summary}], "text": summary},
            "for": {"reference": format!("Patient/{subject}")},
            "authoredOn": stamp,
            "lastModified": stamp,
            "owner": owner_reference(&recipient),
            "restriction": {"period": {"end": due.to_rfc3339_opts(SecondsFormat::Secs, true)}},
            "businessStatus": level_concept(0),
            "extension": extensions,
            "note": notes,
        });
        if let Some(record) = shown.first() {
            task["focus"] = json!({"reference": record.full_url});
            task["input"] = Value::Array(
                shown
                    .iter()
                    .map(|r| json!({"type": {"text": "record"}, "valueReference": {"reference": r.full_url}}))
                    .collect(),
            );
        }
        let mut entities = vec![crate::audit::disclosed(&format!("Task/{id}"), "Task", None)];
        entities[0].disclosure = format!("notification to {}", recipient.label);
        for record in &shown {
            entities.push(kinfold_ledger::AuditEntity {
                reference: record.full_url.clone(),
                resource_type: record.resource["resourceType"]
                    .as_str()
                    .unwrap_or("")
                    .into(),
                agency: Some(focus_agency.as_str().to_owned()),
                disclosure: format!("notified to {}", recipient.label),
            });
        }
        entities.extend(
            screened
                .withheld_records
                .iter()
                .map(|(url, kind, agency, rule)| kinfold_ledger::AuditEntity {
                    reference: url.clone(),
                    resource_type: kind.clone(),
                    agency: Some(agency.as_str().to_owned()),
                    disclosure: format!("withheld ({rule})"),
                }),
        );
        made.audit.push(
            Entry::by(
                NOTIFIER,
                None,
                Interaction::Create,
                &format!("notification {} to {}", planned.rule, recipient.label),
            )
            .about(subject.to_string())
            .entities(entities)
            .rule(relationship.rule)
            .done(),
        );
        made.tasks.push(StoredNotification {
            id,
            rule: planned.rule.clone(),
            person: subject.to_string(),
            owner_org: recipient.org,
            owner_role: recipient.role.as_str().to_owned(),
            owner_name: recipient.name.unwrap_or_default(),
            status: "requested".into(),
            level: 0,
            due: due.timestamp_millis(),
            next_escalation: next,
            event_seq: event,
            created: now.timestamp_millis(),
            updated: now.timestamp_millis(),
            body: task.to_string(),
        });
        Ok(())
    }

    /// Tells of every watched deadline that passed, once each: both services' leads of a custody
    /// transfer not completed (G7), a meeting's chair and the area's lead of minutes not all
    /// filed (G10). Answers how many were overdue.
    pub(crate) async fn watches_overdue(
        &self,
        state: &GatewayState,
    ) -> Result<usize, GatewayError> {
        let now = self.now();
        let due = state
            .store
            .watches_due(now.timestamp_millis(), ESCALATIONS_PER_PASS)
            .await?;
        let mut fired = 0;
        for watch in due {
            let mut made = Made::default();
            let minutes = watch.kind == "minutes";
            let trigger = if minutes {
                Trigger::MinutesOverdue
            } else {
                Trigger::CustodyTransferOverdue
            };
            let event = kinfold_notify::Event::new(trigger, now);
            let mut told: Vec<(String, Professional)> = Vec::new();
            let since = DateTime::from_timestamp_millis(watch.started).unwrap_or(now);
            let due_text = DateTime::from_timestamp_millis(watch.due)
                .unwrap_or(now)
                .to_rfc3339_opts(SecondsFormat::Secs, true);
            let chair = serde_json::from_str::<Value>(&watch.detail)
                .ok()
                .and_then(|d| referrer_of(&d, "who chaired the meeting"));
            for planned in self.rules.plan(&event, &self.calendar) {
                let recipient = match planned.role {
                    Role::MeetingChair => chair.clone(),
                    Role::AreaSafeguardingLead => Some(area_lead(&state.disclosure)),
                    Role::SendingServiceLead => {
                        transfer_lead(&state.disclosure, Agency::HealthVisiting, "health visiting")
                    }
                    Role::ReceivingServiceLead => {
                        transfer_lead(&state.disclosure, Agency::SchoolNursing, "school nursing")
                    }
                    _ => None,
                };
                let (recipient, unresolved) = match recipient {
                    Some(found) => (found, None),
                    None => (
                        area_lead(&state.disclosure),
                        Some(format!("No {} could be found.", role_words(planned.role))),
                    ),
                };
                // One notification to a lead of both services.
                if told.contains(&(recipient.org.clone(), recipient.role)) {
                    continue;
                }
                told.push((recipient.org.clone(), recipient.role));
                let id = same_id(&[
                    planned.rule.as_str(),
                    watch.id.as_str(),
                    recipient.org.as_str(),
                    recipient.role.as_str(),
                ]);
                self.plain(
                    &mut made,
                    Plain {
                        id,
                        planned: &planned,
                        subject: watch.person.as_str(),
                        recipient,
                        unresolved,
                        summary: if minutes {
                            "Strategy-meeting minutes not filed for every attendee by their deadline"
                        } else {
                            "A record custody transfer not completed by its deadline"
                        },
                        notes: vec![if minutes {
                            format!("Minutes of this child's strategy meeting were due by {due_text} and not every attendee has filed them.")
                        } else {
                            format!(
                                "The transfer of this child's record from health visiting to school nursing started {} and was not completed by {due_text}. Both services can read and add to the record meanwhile.",
                                since.date_naive()
                            )
                        }],
                        inputs: Vec::new(),
                        focus: Some(watch.source.clone()),
                        audit_rule: if minutes {
                            "notification.minutes-overdue"
                        } else {
                            "notification.custody-transfer-overdue"
                        },
                        now,
                    },
                );
            }
            let Made { tasks, audit, .. } = made;
            let id = watch.id.clone();
            let saved = state
                .ledger
                .record_within(audit, |rows| async move {
                    state
                        .store
                        .watch_fire(&id, &tasks, &rows)
                        .await
                        .map_err(GatewayError::from)
                })
                .await;
            match saved {
                Ok(_) => fired += 1,
                Err(GatewayError::Store(StoreError::Conflict(_))) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(fired)
    }

    /// Moves every notification nobody acknowledged in time one step up the ladder: to the
    /// recipient organisation's safeguarding lead, then the area's. Answers how many moved.
    pub(crate) async fn escalate(&self, state: &GatewayState) -> Result<usize, GatewayError> {
        let _one = self.pass.lock().await;
        let now = self.now();
        let waiting = state
            .store
            .notifications_to_escalate(now.timestamp_millis(), ESCALATIONS_PER_PASS)
            .await?;
        let mut moved = 0;
        for notification in waiting {
            let due = DateTime::from_timestamp_millis(notification.due).unwrap_or(now);
            let (step, _) = kinfold_notify::escalation(due, false, now, &self.calendar);
            let reached = match step {
                Escalation::Recipient => 0,
                Escalation::TeamLead => 1,
                Escalation::AreaSafeguardingLead => 2,
            };
            let mut changed = notification.clone();
            let Ok(mut body) = serde_json::from_str::<Value>(&notification.body) else {
                continue;
            };
            let stamp = now.to_rfc3339_opts(SecondsFormat::Millis, true);
            let mut made = Vec::new();
            let mut audit = Vec::new();
            if reached > notification.level {
                // One step at a time, each recorded, even when the clock passed both.
                let level = notification.level + 1;
                let area_time = self.calendar.working_days_after(due, 1);
                changed.level = level;
                changed.next_escalation = if level == 1 {
                    area_time.timestamp_millis()
                } else {
                    NEVER
                };
                body["businessStatus"] = level_concept(level);
                body["lastModified"] = json!(stamp);
                let lead = if level == 1 {
                    Recipient {
                        org: notification.owner_org.clone(),
                        role: Professional::SafeguardingProfessional,
                        name: None,
                        label: format!("the safeguarding lead of {}", notification.owner_org),
                    }
                } else {
                    area_lead(&state.disclosure)
                };
                let id = same_id(&[notification.id.as_str(), &level.to_string()]);
                let lead_due = if level == 1 {
                    area_time
                } else {
                    self.calendar.start_of_next_working_day(now)
                };
                let whose = if notification.owner_name.is_empty() {
                    format!("{} at {}", notification.owner_role, notification.owner_org)
                } else {
                    format!(
                        "{} ({} at {})",
                        notification.owner_name, notification.owner_role, notification.owner_org
                    )
                };
                let escalation_task = json!({
                    "resourceType": "Task",
                    "id": id,
                    "status": "requested",
                    "intent": "order",
                    "priority": "urgent",
                    "code": {"coding": [{"system": TASK_SYSTEM, "code": NOTIFICATION, "display": "Safeguarding notification"}]},
                    "reasonCode": body["reasonCode"].clone(),
                    "partOf": [{"reference": format!("Task/{}", notification.id)}],
                    "for": body["for"].clone(),
                    "authoredOn": stamp,
                    "lastModified": stamp,
                    "owner": owner_reference(&lead),
                    "restriction": {"period": {"end": lead_due.to_rfc3339_opts(SecondsFormat::Secs, true)}},
                    "businessStatus": level_concept(level),
                    "extension": [
                        {"url": format!("{EXTENSION}notification-requirement"), "valueCode": body["extension"][0]["valueCode"].clone()},
                        {"url": format!("{EXTENSION}owner-role"), "valueCode": lead.role.as_str()},
                    ],
                    "note": [{"text": format!(
                        "Escalated: the notification to {whose} was not acknowledged by {}. See that the child's services act on it.",
                        due.to_rfc3339_opts(SecondsFormat::Secs, true)
                    )}],
                });
                audit.push(
                    Entry::by(
                        NOTIFIER,
                        None,
                        Interaction::Update,
                        &format!("escalation of Task/{} to {}", notification.id, lead.label),
                    )
                    .about(notification.person.clone())
                    .entities(vec![
                        kinfold_ledger::AuditEntity {
                            reference: format!("Task/{}", notification.id),
                            resource_type: "Task".into(),
                            agency: None,
                            disclosure: format!("escalated to level {level}"),
                        },
                        kinfold_ledger::AuditEntity {
                            reference: format!("Task/{id}"),
                            resource_type: "Task".into(),
                            agency: None,
                            disclosure: format!("notification to {}", lead.label),
                        },
                    ])
                    .rule("notification.escalation")
                    .done(),
                );
                made.push(StoredNotification {
                    id,
                    rule: notification.rule.clone(),
                    person: notification.person.clone(),
                    owner_org: lead.org,
                    owner_role: lead.role.as_str().to_owned(),
                    owner_name: String::new(),
                    status: "requested".into(),
                    level,
                    due: lead_due.timestamp_millis(),
                    next_escalation: NEVER,
                    event_seq: notification.event_seq,
                    created: now.timestamp_millis(),
                    updated: now.timestamp_millis(),
                    body: escalation_task.to_string(),
                });
            } else {
                changed.next_escalation =
                    match kinfold_notify::escalation(due, false, now, &self.calendar) {
                        (_, Some(next)) if reached < 2 => next.timestamp_millis(),
                        _ => NEVER,
                    };
            }
            changed.updated = now.timestamp_millis();
            changed.body = body.to_string();
            let was = (notification.status.as_str(), notification.level);
            let saved = state
                .ledger
                .record_within(audit, |rows| async move {
                    state
                        .store
                        .notification_change(&changed, was, &made, &rows)
                        .await
                        .map_err(GatewayError::from)
                })
                .await;
            match saved {
                Ok(_) => moved += 1,
                // Acknowledged meanwhile, or escalated by another gateway.
                Err(GatewayError::Store(StoreError::Conflict(_))) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(moved)
    }
}

/// Runs the notification work until the gateway stops: after each delivery of events, and
/// every second for the escalations (on the gateway's clock) and for a pass that failed.
pub(crate) async fn run(state: std::sync::Weak<GatewayState>) {
    loop {
        let Some(strong) = state.upgrade() else {
            return;
        };
        let mut more = true;
        while more {
            more = match strong.notifier.pass(&strong).await {
                Ok(more) => more,
                Err(error) => {
                    tracing::warn!(
                        ?error,
                        "notifications: a pass failed; trying again in a second"
                    );
                    false
                }
            };
        }
        if let Err(error) = strong.notifier.watches_overdue(&strong).await {
            tracing::warn!(
                ?error,
                "notifications: overdue deadlines not told; trying again in a second"
            );
        }
        if let Err(error) = strong.notifier.escalate(&strong).await {
            tracing::warn!(
                ?error,
                "notifications: escalation failed; trying again in a second"
            );
        }
        let notifier = Arc::clone(&strong);
        drop(strong);
        notifier
            .notifier
            .woken(std::time::Duration::from_secs(1))
            .await;
    }
}

/// What [`Notifier::notify`] needs to know about one notification.
struct Notice<'a> {
    event: i64,
    planned: &'a Planned,
    source: &'a str,
    subject: &'a PersonId,
    recipient: Recipient,
    unresolved: Option<String>,
    facts: &'a ChildFacts,
    focus: &'a [crate::fanout::AgencyRecord],
    focus_agency: Agency,
    whose: Whose,
    now: DateTime<Utc>,
}

/// Each person's records, fetched once per pass.
#[derive(Default)]
struct Records(HashMap<PersonId, Vec<AgencyAnswer>>);

impl Records {
    /// Fetches at once the records of each event's person where the event's codes may call
    /// for a notification (as [`Notifier::notifications_of`] would fetch them one by one).
    async fn prefetch(
        &mut self,
        state: &GatewayState,
        events: &[kinfold_store::ReceivedEvent],
    ) -> Result<(), GatewayError> {
        let keys: Vec<kinfold_identity::RecordKey> = events
            .iter()
            .filter_map(|event| serde_json::from_str::<FeedEvent>(&event.payload).ok())
            .filter(|feed| may_notify(&feed.codes))
            .map(|feed| kinfold_identity::RecordKey {
                agency: feed.agency,
                reference: feed.patient.reference,
            })
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let mut people: Vec<PersonId> = state
            .identities
            .read(&state.store, &state.ledger, |inner| {
                keys.iter()
                    .filter_map(|key| inner.current(&inner.records.get(key)?.person))
                    .collect()
            })
            .await?;
        people.sort();
        people.dedup();
        people.retain(|person| !self.0.contains_key(person));
        // A few people at a time: a burst of events must not flood the agencies that are
        // still taking the burst's messages.
        use futures::StreamExt as _;
        let fetched: Vec<Result<(PersonId, Vec<AgencyAnswer>), GatewayError>> =
            futures::stream::iter(people.into_iter().map(|person| async move {
                let answers = Self::fetch(state, &person).await?;
                Ok((person, answers))
            }))
            .buffer_unordered(PEOPLE_AT_ONCE)
            .collect()
            .await;
        for result in fetched {
            let (person, answers) = result?;
            self.0.insert(person, answers);
        }
        Ok(())
    }

    /// Every agency's records of one person (none for a person the index does not know).
    async fn fetch(
        state: &GatewayState,
        person: &PersonId,
    ) -> Result<Vec<AgencyAnswer>, GatewayError> {
        match state.target_of(person.as_str()).await {
            Ok((_, target)) => Ok(state.agencies.everything_of(&target).await),
            Err(GatewayError::UnknownPerson) => Ok(Vec::new()),
            Err(other) => Err(other),
        }
    }

    async fn of(
        &mut self,
        state: &GatewayState,
        person: &PersonId,
    ) -> Result<&[AgencyAnswer], GatewayError> {
        if !self.0.contains_key(person) {
            let answers = Self::fetch(state, person).await?;
            self.0.insert(person.clone(), answers);
        }
        Ok(self.0.get(person).map_or(&[][..], Vec::as_slice))
    }
}

fn has_code(codes: &[String], code: &str) -> bool {
    codes.iter().any(|c| c == code)
}

/// Codes that start or end a watched deadline (a custody transfer, a strategy meeting).
fn watched(codes: &[String]) -> bool {
    [
        "custody-transfer-started",
        "custody-transfer-completed",
        "strategy-meeting",
    ]
    .iter()
    .any(|code| has_code(codes, code))
}

/// Whether an event with these codes may make a notification, for a child or an adult (and
/// so whether its person's records will be read).
fn may_notify(codes: &[String]) -> bool {
    !kinfold_notify::triggers_of(codes, true).is_empty()
        || !kinfold_notify::triggers_of(codes, false).is_empty()
        || watched(codes)
        || has_code(codes, "was-not-brought")
        || has_code(codes, "growth-measurement")
}

/// The event as the notification work reads it (`docs/feeds/events.md`).
#[derive(Deserialize)]
struct FeedEvent {
    agency: Agency,
    patient: EventPatient,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    codes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventPatient {
    reference: String,
    birth_date: Option<String>,
}

/// The children a rule's recipients are found for, each with whether they are unborn.
fn subjects(
    person: &PersonId,
    child: bool,
    for_each: Option<ForEach>,
    family: &[(PersonId, Kin, Option<NaiveDate>)],
    today: NaiveDate,
) -> Vec<(PersonId, bool)> {
    let young = |born: &Option<NaiveDate>| born.is_some_and(|b| years(b, today) < 18);
    let mut found: Vec<(PersonId, bool)> = match for_each {
        None => vec![(person.clone(), false)],
        Some(ForEach::ChildOfMother) => family
            .iter()
            .filter(|(_, kin, _)| *kin == Kin::Child)
            .map(|(p, _, _)| (p.clone(), false))
            .collect(),
        Some(ForEach::ChildInHousehold) => {
            let mut all = Vec::new();
            if child {
                all.push((person.clone(), false));
            }
            for (member, kin, born) in family {
                let take = match kin {
                    Kin::Child | Kin::Sibling | Kin::HalfSibling => true,
                    Kin::UnbornChild | Kin::UnbornSibling => true,
                    Kin::HouseholdMember => young(born),
                    _ => false,
                };
                if take {
                    all.push((
                        member.clone(),
                        matches!(kin, Kin::UnbornChild | Kin::UnbornSibling),
                    ));
                }
            }
            all
        }
    };
    let mut seen = HashSet::new();
    found.retain(|(p, _)| seen.insert(p.clone()));
    found
}

/// Whether the child's records hold was-not-brought appointments that repeat: two or more
/// within the chronology's window (G17), the latest among them.
fn repeated_was_not_brought(answers: &[AgencyAnswer]) -> bool {
    let mut days: Vec<NaiveDate> = answers
        .iter()
        .filter_map(|a| a.result.as_ref().ok())
        .flatten()
        .filter(|r| {
            r.resource["meta"]["tag"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t["code"] == "was-not-brought")
        })
        .filter_map(|r| {
            let start = r.resource["start"].as_str()?;
            NaiveDate::parse_from_str(start.get(..10)?, "%Y-%m-%d").ok()
        })
        .collect();
    days.sort_unstable();
    days.last().is_some_and(|last| {
        days.iter()
            .filter(|d| {
                (*last - **d).num_days()
                    <= kinfold_chronology::patterns::WAS_NOT_BROUGHT_WINDOW_DAYS
            })
            .count()
            >= 2
    })
}

/// The injuries the triggering records name, as the rules read them.
fn injuries(focus: &[crate::fanout::AgencyRecord]) -> Vec<Injury> {
    let mut found = Vec::new();
    for record in focus {
        let words = crate::chronology::words_of(&record.resource).to_lowercase();
        let mut named = crate::chronology::injuries_in(&record.resource);
        if named.is_empty()
            && record.resource["meta"]["tag"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t["code"] == "injury")
        {
            named.push(kinfold_chronology::Injury::Other);
        }
        for injury in named {
            let as_rule = match injury {
                kinfold_chronology::Injury::Fracture => Injury::Fracture,
                kinfold_chronology::Injury::Bruise => Injury::Bruise,
                kinfold_chronology::Injury::Burn => Injury::Burn,
                kinfold_chronology::Injury::Scald => Injury::Scald,
                kinfold_chronology::Injury::HeadInjury => Injury::HeadInjury,
                kinfold_chronology::Injury::Ingestion => Injury::Ingestion,
                // Only a dog's bite is the rule's.
                kinfold_chronology::Injury::Bite if words.contains("dog") => Injury::DogBite,
                kinfold_chronology::Injury::Bite | kinfold_chronology::Injury::Other => Injury::Any,
            };
            if !found.contains(&as_rule) {
                found.push(as_rule);
            }
        }
    }
    found
}

/// A person's date of birth, from the first of their records that gives one.
fn birth_date(inner: &crate::identity::Inner, person: &PersonId) -> Option<NaiveDate> {
    inner
        .index
        .records_of(person)
        .into_iter()
        .filter_map(|key| inner.records.get(&key))
        .filter_map(|r| r.demographics.birth_date.as_deref())
        .find_map(|d| NaiveDate::parse_from_str(d.get(..10)?, "%Y-%m-%d").ok())
}

/// Whole months from `born` to `on`.
fn months(born: NaiveDate, on: NaiveDate) -> u32 {
    use chrono::Datelike;
    let mut months = (on.year() - born.year()) * 12 + on.month() as i32 - born.month() as i32;
    if on.day() < born.day() {
        months -= 1;
    }
    u32::try_from(months).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn ages_count_whole_months_and_years() {
        assert_eq!(months(day("2026-01-31"), day("2026-02-28")), 0);
        assert_eq!(months(day("2026-01-15"), day("2026-02-15")), 1);
        assert_eq!(months(day("2024-12-03"), day("2026-12-02")), 23);
        assert_eq!(months(day("2024-12-03"), day("2026-12-03")), 24);
        assert_eq!(years(day("2021-12-04"), day("2026-12-03")), 4);
        assert_eq!(years(day("2021-12-03"), day("2026-12-03")), 5);
    }

    #[test]
    fn a_household_rule_reaches_every_child_and_the_unborn_but_no_adult() {
        let me: PersonId = "p-adult".parse().expect("id");
        let id = |s: &str| -> PersonId { s.parse().expect("id") };
        let family = vec![
            (id("p-child"), Kin::Child, Some(day("2022-01-01"))),
            (id("p-unborn"), Kin::UnbornChild, None),
            (
                id("p-partner"),
                Kin::HouseholdMember,
                Some(day("1990-01-01")),
            ),
            (
                id("p-lodger-child"),
                Kin::HouseholdMember,
                Some(day("2015-01-01")),
            ),
            (id("p-mother"), Kin::Mother, Some(day("1960-01-01"))),
        ];
        let found = subjects(
            &me,
            false,
            Some(ForEach::ChildInHousehold),
            &family,
            day("2026-12-03"),
        );
        assert_eq!(
            found,
            vec![
                (id("p-child"), false),
                (id("p-unborn"), true),
                (id("p-lodger-child"), false)
            ]
        );
        // A child's own notification includes the child.
        let sibling = vec![(id("p-sister"), Kin::Sibling, Some(day("2020-01-01")))];
        let found = subjects(
            &id("p-child"),
            true,
            Some(ForEach::ChildInHousehold),
            &sibling,
            day("2026-12-03"),
        );
        assert_eq!(found, vec![(id("p-child"), false), (id("p-sister"), false)]);
    }
}
