//! Ingest, apart from HTTP.
//!
//! Each feed format turns its input into a [`Plan`]: the resources to store, each checked, or
//! the reason an entry cannot be stored (`fhir.rs` reads FHIR `transaction` and `batch`
//! Bundles, `hl7v2.rs` HL7 v2 ADT messages, `extract.rs` the agencies' file extracts; all are
//! pure and tested without a server). [`AdapterState::apply_all`] then carries out any plans
//! the same way: it refuses a Patient whose NHS number another Patient here holds, and writes,
//! in one transaction, each input's entry in the adapter's ledger, its records with their
//! provenance (the original kept verbatim, `provenance.rs`) and its events for the gateway
//! (`events.rs`, delivered by `crate::outbox`). The HTTP route, the MLLP listener and
//! `kinfold import` are thin doors onto it.

pub mod events;
pub mod extract;
mod fhir;
pub mod hl7v2;
mod letters;
pub mod provenance;
pub(crate) mod queue;

pub use fhir::{
    BundleLimits, BundlePlan, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_JSON_VALUES, EntryPlan, json_values,
    plan_bundle, plan_json,
};
pub(crate) use fhir::{plan_of, response_bundle, valid_id};
pub use provenance::{Author, Origin, Original};

use std::collections::BTreeMap;

use kinfold_audit::LedgerError;
use kinfold_fhir::{Resource, ResourceType};
use kinfold_ledger::{AuditAgent, AuditEntity, AuditRecord};
use kinfold_store::{OutboxEvent, WriteOutcome, WriteUnit};

use crate::{AdapterError, AdapterState};
use events::{EventPatient, FeedEvent};

/// Whether a plan is stored whole or entry by entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Atomicity {
    /// All or nothing: one faulty entry refuses the whole plan (a FHIR transaction, one HL7
    /// message, one extract row).
    Whole,
    /// Each entry on its own: good entries are stored, faulty ones answered (a FHIR batch).
    PerEntry,
}

/// What one input asks to store.
#[derive(Debug)]
pub struct Plan {
    /// Whole or entry by entry.
    pub atomicity: Atomicity,
    /// Each entry: a resource ready to store (id set), or why it cannot be.
    pub entries: Vec<EntryPlan>,
}

/// Who sent an input, how, and what the source says about it.
#[derive(Debug, Clone)]
pub struct Source {
    /// What kind of input (`transaction`, `HL7 v2 ADT^A01`, `health-visiting extract row`).
    pub kind: String,
    /// The door it came through (`POST / (ingest)`, `MLLP`, `import`).
    pub door: String,
    /// The request id, to join the ledger with the logs.
    pub request_id: Option<String>,
    /// Its provenance: message id, source time, author, the original.
    pub origin: Origin,
}

/// Each entry of an applied plan: how it was stored, or why not.
pub type Applied = Vec<Result<WriteOutcome, AdapterError>>;

/// What became of one input.
#[derive(Debug)]
pub struct Stored {
    /// Each entry: how it was stored, or why not.
    pub entries: Applied,
    /// Whether anything was written (false when it was all stored already: a resend).
    pub changed: bool,
}

/// One input staged for the store: ready to commit, or already refused.
struct Staged(Result<Prepared, AdapterError>);

/// One input on its way to the store.
struct Prepared {
    /// Per entry: stored as the n-th record of the unit, or refused.
    planned: Vec<Result<usize, AdapterError>>,
    unit: WriteUnit,
    audit: Option<AuditRecord>,
}

impl AdapterState {
    /// Carries out one plan: the one way records enter an adapter's store.
    pub(crate) async fn apply(&self, plan: Plan, source: &Source) -> Result<Applied, AdapterError> {
        let mut results = self.apply_all(vec![(plan, source)]).await?;
        results
            .pop()
            .unwrap_or_else(|| Err(corrupt("an ingest lost its plan")))
            .map(|stored| stored.entries)
    }

    /// Carries out several plans in one commit (one disk sync for all): each input stands or
    /// falls alone. The outer error means nothing was stored (the ledger or the database
    /// refused).
    pub(crate) async fn apply_all(
        &self,
        inputs: Vec<(Plan, &Source)>,
    ) -> Result<Vec<Result<Stored, AdapterError>>, AdapterError> {
        let staged = self.stage(inputs).await?;
        self.commit(staged).await
    }

    /// The first half of [`AdapterState::apply_all`], which reads but writes nothing: refuses a
    /// Patient whose NHS number another Patient here holds, and prepares each input's unit and
    /// audit record.
    async fn stage(&self, inputs: Vec<(Plan, &Source)>) -> Result<Vec<Staged>, AdapterError> {
        let received = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let held = self.holders(&inputs).await?;
        let mut staged = Vec::with_capacity(inputs.len());
        for (mut plan, source) in inputs {
            staged.push(match Self::refuse_held_nhs_numbers(&mut plan, &held) {
                Err(err) => Staged(Err(err)),
                Ok(()) => Staged(self.prepare(plan, source, &received).await),
            });
        }
        Ok(staged)
    }

    /// The second half of [`AdapterState::apply_all`]: writes the staged inputs, each with its
    /// entry in the ledger, in one transaction, and says what became of each.
    async fn commit(
        &self,
        staged: Vec<Staged>,
    ) -> Result<Vec<Result<Stored, AdapterError>>, AdapterError> {
        // No write without its audit entry: each input's entry in the ledger commits in the
        // same transaction as its records. An input that would store nothing is not recorded.
        let mut audits: Vec<AuditRecord> = Vec::new();
        let mut units = Vec::new();
        let mut slots = Vec::with_capacity(staged.len());
        for Staged(p) in staged {
            match p {
                Ok(mut p) => {
                    if let Some(audit) = &p.audit {
                        audits.push(audit.clone());
                        units.push(std::mem::take(&mut p.unit));
                    }
                    slots.push(Ok(p));
                }
                Err(err) => slots.push(Err(err)),
            }
        }
        let written = if units.is_empty() {
            Vec::new()
        } else {
            let store = &self.store;
            self.ledger
                .record_within(audits, |rows| async move {
                    store
                        .write_units_audited(units, &rows)
                        .await
                        .map_err(LedgerError::blame::<AdapterError>)
                })
                .await?
                .0
        };
        if written.iter().any(|w| w.as_ref().is_ok_and(|w| w.changed)) {
            self.outbox_wake.notify_one();
        }
        let mut written = written.into_iter();
        let mut results = Vec::with_capacity(slots.len());
        for slot in slots {
            let result = match slot {
                Err(err) => Err(err),
                // Nothing to write: every entry was refused.
                Ok(p) if p.audit.is_none() => Ok(Stored {
                    entries: p
                        .planned
                        .into_iter()
                        .map(|entry| entry.and_then(|_| Err(corrupt("write count mismatch"))))
                        .collect(),
                    changed: false,
                }),
                Ok(p) => match written.next() {
                    None => Err(corrupt("write count mismatch")),
                    Some(Err(err)) => {
                        self.record_unit_failure(p.audit);
                        Err(err.into())
                    }
                    Some(Ok(done)) => {
                        let mut records = done.records.into_iter().map(Some).collect::<Vec<_>>();
                        let entries = p
                            .planned
                            .into_iter()
                            .map(|entry| {
                                entry.and_then(|n| {
                                    records
                                        .get_mut(n)
                                        .and_then(Option::take)
                                        .ok_or_else(|| corrupt("write count mismatch"))
                                })
                            })
                            .collect();
                        Ok(Stored {
                            entries,
                            changed: done.changed,
                        })
                    }
                },
            };
            results.push(result);
        }
        Ok(results)
    }

    /// The unit of one input: its records, its provenance and original, its events, and the
    /// audit record that commits with it (none if it stores nothing).
    async fn prepare(
        &self,
        plan: Plan,
        source: &Source,
        received: &str,
    ) -> Result<Prepared, AdapterError> {
        // The resources move out of their plans (no second copy); each plan keeps only where
        // its entry is written.
        let mut records: Vec<Resource> = Vec::new();
        let planned: Vec<Result<usize, AdapterError>> = plan
            .entries
            .into_iter()
            .map(|entry| {
                entry.map(|resource| {
                    records.push(resource);
                    records.len() - 1
                })
            })
            .collect();
        if records.is_empty() {
            return Ok(Prepared {
                planned,
                unit: WriteUnit::default(),
                audit: None,
            });
        }
        // A letter's safeguarding section is kept as its own record too (stored with the
        // letter, not answered as an entry of its own).
        let derived: Vec<Resource> = records
            .iter()
            .filter_map(letters::safeguarding_section)
            .collect();
        records.extend(derived);
        let audit = self.ingest_record(&records, source);
        // Each person's records, in order; records about no one are grouped together.
        let mut people: BTreeMap<Option<String>, Vec<usize>> = BTreeMap::new();
        for (n, record) in records.iter().enumerate() {
            people
                .entry(record.search_index().patient)
                .or_default()
                .push(n);
        }
        let only_person = match people.keys().collect::<Vec<_>>().as_slice() {
            [Some(one)] => Some(one.as_str()),
            _ => None,
        };
        let binary_id = provenance::binary_id(self.agency, &provenance::arrival_id());
        let mut first_copy = Vec::new();
        let binary = source
            .origin
            .original
            .as_ref()
            .and_then(|original| provenance::binary(&binary_id, original, only_person));
        let has_binary = binary.is_some();
        first_copy.extend(binary);
        // A GP's Patient may say, by `Patient.link`, that it is the same person as a
        // RelatedPerson in the same input (the mother's own record beside her child's
        // RelatedPerson of her): that relation names her Patient record, and her record's
        // event goes first so that the gateway knows her before it reads the relation.
        let own_records = events::linked_related_people(&records);
        let mut people: Vec<(Option<String>, Vec<usize>)> = people.into_iter().collect();
        people.sort_by_key(|(patient, _)| {
            !patient.as_ref().is_some_and(|p| {
                own_records
                    .values()
                    .any(|own| own.strip_prefix("Patient/") == Some(p.as_str()))
            })
        });
        let mut events = Vec::new();
        for (patient, members) in &people {
            let part = provenance::arrival_id();
            let targets: Vec<String> = members.iter().map(|&n| reference_of(&records[n])).collect();
            let provenance = provenance::ProvenanceParts {
                id: format!("prov-{part}"),
                agency: self.agency,
                patient: patient.as_deref(),
                targets: targets.clone(),
                received,
                activity: &format!("{} via {}", source.kind, source.door),
                origin: &source.origin,
                binary: has_binary.then_some(binary_id.as_str()),
            }
            .resource()
            .ok_or_else(|| corrupt("a Provenance the adapter made is not valid"))?;
            first_copy.push(provenance);
            let person = match patient {
                None => None,
                Some(id) => self.person(id, &records).await?,
            };
            let event = FeedEvent {
                id: format!("evt-{part}"),
                agency: self.agency,
                received: received.to_owned(),
                source_message_id: source.origin.message_id.clone(),
                patient: person,
                resources: targets,
                codes: events::codes_of_all(members.iter().map(|&n| &records[n])),
                relations: members
                    .iter()
                    .filter_map(|&n| events::EventRelation::of(&records[n]))
                    .map(|mut relation| {
                        if relation.patient.is_none() {
                            relation.patient = own_records.get(&relation.reference).cloned();
                        }
                        relation
                    })
                    .collect(),
                pregnancy: members
                    .iter()
                    .find_map(|&n| events::EventPregnancy::of(&records[n])),
            };
            events.push(OutboxEvent {
                id: event.id.clone(),
                payload: serde_json::to_string(&event)
                    .map_err(|_| corrupt("an event could not be written"))?,
            });
        }
        Ok(Prepared {
            planned,
            unit: WriteUnit {
                records,
                first_copy,
                events,
            },
            audit: Some(audit),
        })
    }

    /// The person a part of an input is about: from its own Patient record, or as stored.
    async fn person(
        &self,
        id: &str,
        records: &[Resource],
    ) -> Result<Option<EventPatient>, AdapterError> {
        if let Some(patient) = records
            .iter()
            .find(|r| matches!(r, Resource::Patient(_)) && r.id() == Some(id))
        {
            return Ok(EventPatient::of(patient));
        }
        let Some(stored) = self.store.read(ResourceType::Patient, id).await? else {
            return Ok(Some(EventPatient {
                reference: format!("Patient/{id}"),
                ..EventPatient::default()
            }));
        };
        Ok(Resource::from_json(stored.json.as_bytes())
            .ok()
            .and_then(|p| EventPatient::of(&p)))
    }

    /// The ledger says this input was stored (its entry committed with the others'), but the
    /// store refused it on its own: the ledger must also say it was not.
    fn record_unit_failure(&self, audit: Option<AuditRecord>) {
        if let Some(mut audit) = audit {
            audit.outcome = "8".into();
            audit.subtype = format!("{} (failed)", audit.subtype);
            self.ledger.record_in_background(audit);
        }
    }

    /// Stores the rows of an extract (JSON Lines), numbered from `first_line`: each row whole
    /// or not at all, all the good rows in one commit.
    pub(crate) async fn import_rows(
        &self,
        text: &str,
        first_line: usize,
        request_id: Option<String>,
    ) -> Result<extract::ImportSummary, AdapterError> {
        let mut summary = extract::ImportSummary::default();
        let mut planned = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            summary.rows += 1;
            if summary.rows > extract::MAX_IMPORT_ROWS {
                return Err(AdapterError::BadBody(kinfold_fhir::ParseError::Json {
                    message: format!(
                        "one import carries at most {} rows; send the rest in another",
                        extract::MAX_IMPORT_ROWS
                    ),
                    line: first_line + n,
                    column: 0,
                }));
            }
            match extract::plan_row(self.agency, first_line + n, line) {
                Ok((plan, origin)) => {
                    let source = Source {
                        kind: format!("{} extract row", self.agency.as_str()),
                        door: "POST /$import".into(),
                        request_id: request_id.clone(),
                        origin,
                    };
                    planned.push((first_line + n, plan, source));
                }
                Err(row) => summary.rejected.push(row.into()),
            }
        }
        let inputs = planned.iter_mut().map(|(_, plan, source)| {
            let plan = std::mem::replace(
                plan,
                Plan {
                    atomicity: Atomicity::Whole,
                    entries: Vec::new(),
                },
            );
            (plan, &*source)
        });
        let results = self.apply_all(inputs.collect()).await?;
        for ((line, _, _), result) in planned.iter().zip(results) {
            match result {
                Ok(stored) if stored.changed => summary.stored += 1,
                Ok(_) => summary.unchanged += 1,
                Err(err) => {
                    let api = err.to_api_error();
                    let issue = api.outcome.issue.first();
                    summary.rejected.push(extract::RejectedRow {
                        line: *line,
                        field: issue
                            .and_then(|i| i.expression.first().cloned())
                            .unwrap_or_default(),
                        message: issue
                            .and_then(|i| i.diagnostics.clone())
                            .unwrap_or_else(|| "the row could not be stored".into()),
                    });
                }
            }
        }
        summary.rejected.sort_by_key(|r| r.line);
        Ok(summary)
    }

    /// A Patient may not claim an NHS number that another Patient here already has: in a
    /// whole plan that refuses everything, entry by entry just that entry. `held` is who holds
    /// each number already (asked once for a whole group).
    fn refuse_held_nhs_numbers(
        plan: &mut Plan,
        held: &std::collections::HashMap<String, Vec<String>>,
    ) -> Result<(), AdapterError> {
        for (n, entry) in plan.entries.iter_mut().enumerate() {
            let Ok(resource) = entry else { continue };
            let own_id = resource.id().unwrap_or_default().to_owned();
            for (k, number) in fhir::nhs_numbers(resource) {
                let owner = held
                    .get(&number)
                    .and_then(|owners| owners.iter().find(|id| **id != own_id));
                if let Some(owner) = owner {
                    let err = fhir::duplicate_nhs_number(n, k, owner);
                    if plan.atomicity == Atomicity::Whole {
                        return Err(err);
                    }
                    *entry = Err(err);
                    break;
                }
            }
        }
        Ok(())
    }

    /// Who holds each NHS number the plans' Patients claim.
    async fn holders(
        &self,
        plans: &[(Plan, &Source)],
    ) -> Result<std::collections::HashMap<String, Vec<String>>, AdapterError> {
        let numbers: Vec<String> = plans
            .iter()
            .flat_map(|(plan, _)| plan.entries.iter().flatten())
            .flat_map(|resource| fhir::nhs_numbers(resource).into_iter().map(|(_, n)| n))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut held: std::collections::HashMap<String, Vec<String>> = Default::default();
        if numbers.is_empty() {
            return Ok(held);
        }
        for (number, id) in self.store.patients_holding(&numbers).await? {
            held.entry(number).or_default().push(id);
        }
        Ok(held)
    }

    /// The audit record of one ingest: every record it stores, by whom (the agency's feed).
    fn ingest_record(&self, writes: &[Resource], source: &Source) -> AuditRecord {
        AuditRecord {
            recorded: String::new(),
            event_type: "rest".into(),
            subtype: source.kind.clone(),
            action: "C".into(),
            outcome: "0".into(),
            query: source.door.clone(),
            agent: AuditAgent {
                who: format!("{}-feed", self.agency),
                organisation: None,
                role: None,
            },
            purpose: Some("record-keeping".into()),
            patient: None,
            entities: writes
                .iter()
                .map(|r| AuditEntity {
                    reference: format!("{}/{}", r.type_name(), r.id().unwrap_or_default()),
                    resource_type: r.type_name().to_owned(),
                    agency: Some(self.agency.as_str().to_owned()),
                    disclosure: "stored".into(),
                })
                .collect(),
            rule: None,
            justification: None,
            request_id: source.request_id.clone(),
            source: None,
            count: None,
            until: None,
        }
    }
}

/// Text made safe for part of a FHIR id: letters, digits, `-` and `.`, at most `longest`
/// characters (others become `-`).
pub(crate) fn id_part(text: &str, longest: usize) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(longest)
        .collect()
}

fn reference_of(resource: &Resource) -> String {
    format!(
        "{}/{}",
        resource.type_name(),
        resource.id().unwrap_or_default()
    )
}

fn corrupt(why: &str) -> AdapterError {
    AdapterError::Store(kinfold_store::StoreError::Corrupt(why.into()))
}
