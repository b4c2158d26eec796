//! Ingest, apart from HTTP.
//!
//! Each feed format turns its input into a [`Plan`]: the resources to store, each checked, or
//! the reason an entry cannot be stored (`fhir.rs` reads FHIR `transaction` and `batch`
//! Bundles, `hl7v2.rs` HL7 v2 ADT messages; both are pure and tested without a server). [`AdapterState::apply`] then carries out
//! any plan the same way: it refuses a Patient whose NHS number another Patient here holds,
//! records the ingest in the adapter's ledger, and only then writes the records in one
//! transaction. The HTTP route is a thin door onto it, and so will every other feed be.

mod fhir;
pub mod hl7v2;

pub use fhir::{
    BundleLimits, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_JSON_VALUES, EntryPlan, json_values, plan_json,
};
pub(crate) use fhir::{plan_of, response_bundle, valid_id};

use kinfold_fhir::search::{SearchQuery, TokenParam};
use kinfold_fhir::{NHS_NUMBER_SYSTEM, Resource, ResourceType};
use kinfold_ledger::{AuditAgent, AuditEntity, AuditRecord};
use kinfold_store::WriteOutcome;

use crate::{AdapterError, AdapterState};

/// Whether a plan is stored whole or entry by entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Atomicity {
    /// All or nothing: one faulty entry refuses the whole plan (a FHIR transaction, one HL7
    /// message).
    Whole,
    /// Each entry on its own: good entries are stored, faulty ones answered (a FHIR batch, the
    /// rows of an extract).
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

/// Who sent an input and how, for the audit record.
#[derive(Debug, Clone)]
pub struct Source {
    /// What kind of input (`transaction`, `batch`).
    pub kind: String,
    /// The door it came through (`POST / (ingest)`).
    pub door: String,
    /// The request id, to join the ledger with the logs.
    pub request_id: Option<String>,
}

/// Each entry of an applied plan: how it was stored, or why not.
pub type Applied = Vec<Result<WriteOutcome, AdapterError>>;

impl AdapterState {
    /// Carries out a plan: the one way records enter an adapter's store.
    pub(crate) async fn apply(
        &self,
        mut plan: Plan,
        source: &Source,
    ) -> Result<Applied, AdapterError> {
        self.refuse_held_nhs_numbers(&mut plan).await?;
        // The resources move out of their plans (no second copy); each plan keeps only whether
        // its entry is written.
        let mut writes: Vec<Resource> = Vec::new();
        let planned: Vec<Result<(), AdapterError>> = plan
            .entries
            .into_iter()
            .map(|entry| entry.map(|resource| writes.push(resource)))
            .collect();
        let mut outcomes = if writes.is_empty() {
            // Nothing to store, so nothing to record.
            Vec::new()
        } else {
            // No write without its audit entry: the ingest is in the ledger before anything is
            // stored.
            let mut audit = self.ingest_record(&writes, source);
            self.ledger.record(vec![audit.clone()]).await?;
            let written = self.store.write_all(writes).await;
            if written.is_err() {
                audit.outcome = "8".into();
                audit.subtype = format!("{} (failed)", audit.subtype);
                self.ledger.record_in_background(audit);
            }
            written?
        }
        .into_iter();
        planned
            .into_iter()
            .map(|entry| match entry {
                Ok(()) => outcomes.next().map(Ok).ok_or_else(|| {
                    AdapterError::Store(kinfold_store::StoreError::Corrupt(
                        "write count mismatch".into(),
                    ))
                }),
                Err(err) => Ok(Err(err)),
            })
            .collect()
    }

    /// A Patient may not claim an NHS number that another Patient here already has: in a
    /// whole plan that refuses everything, entry by entry just that entry.
    async fn refuse_held_nhs_numbers(&self, plan: &mut Plan) -> Result<(), AdapterError> {
        for (n, entry) in plan.entries.iter_mut().enumerate() {
            let Ok(resource) = entry else { continue };
            let own_id = resource.id().unwrap_or_default().to_owned();
            for (k, number) in fhir::nhs_numbers(resource) {
                let query = SearchQuery {
                    identifier: vec![vec![TokenParam {
                        system: Some(NHS_NUMBER_SYSTEM.into()),
                        code: Some(number),
                    }]],
                    count: 2,
                    ..SearchQuery::default()
                };
                let found = self.store.search(ResourceType::Patient, &query).await?;
                if let Some(owner) = found.items.iter().find(|i| i.id != own_id) {
                    let err = fhir::duplicate_nhs_number(n, k, &owner.id);
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
