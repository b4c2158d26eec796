//! The gateway's shared state: what every handler reaches, and the few things they ask of it
//! (who a person id names now and how to ask the agencies about them, a person's family, and
//! the durable ledger write every disclosure waits for).

use kinfold_store::Store;

use crate::error::GatewayError;
use crate::fanout::{self, Agencies};
use crate::{disclosure, identity};
use kinfold_audit::{Ledger, Receipt};

/// Shared state of the gateway's handlers.
#[derive(Debug)]
pub(crate) struct GatewayState {
    pub(crate) store: Store,
    pub(crate) ledger: Ledger,
    pub(crate) agencies: Agencies,
    pub(crate) public_base_url: Option<String>,
    /// The CapabilityStatement, serialised once at start.
    pub(crate) capability: String,
    /// The person index, family graph and record locator.
    pub(crate) identities: identity::Identities,
    /// The disclosure policy and who holds which records.
    pub(crate) disclosure: disclosure::DisclosureConfig,
    /// How long a refusal takes, which every "not found" about a person is held to.
    pub(crate) pace: crate::pace::NotFoundPace,
    /// Each caller's "not found" answers about people in this interval.
    pub(crate) misses: crate::pace::Misses,
    /// The notification rules, calendar and clock.
    pub(crate) notifier: crate::notifier::Notifier,
    /// The client that posts to subscribers.
    pub(crate) hooks: crate::hooks::Hooks,
    /// What `/metrics` reports.
    pub(crate) metrics: std::sync::Arc<crate::metrics::Metrics>,
}

impl GatewayState {
    /// The NHS number behind a Kinfold person id; an unknown id is a `404`.
    pub(crate) async fn nhs_number_of(
        &self,
        person_id: &str,
    ) -> Result<kinfold_fhir::NhsNumber, GatewayError> {
        self.store
            .nhs_number_of(person_id)
            .await?
            .ok_or(GatewayError::UnknownPerson)
    }

    /// Whom a person id names now (a merged person's survivor) and how to ask the agencies
    /// about them: the record locator's records, and the NHS number for the others. An id the
    /// identity index does not know yet is looked up in the NHS-number links; unknown, `404`.
    pub(crate) async fn target_of(
        &self,
        asked: &str,
    ) -> Result<(String, fanout::Target), GatewayError> {
        let known = match asked.parse::<kinfold_identity::PersonId>() {
            Ok(id) => {
                self.identities
                    .read(&self.store, &self.ledger, |inner| {
                        let person = inner.current(&id)?;
                        let target = fanout::Target {
                            records: inner
                                .locate(&person)
                                .into_iter()
                                .map(|k| (k.agency, k.reference))
                                .collect(),
                            nhs: inner.nhs_number_of(&person),
                        };
                        Some((person, target))
                    })
                    .await?
            }
            Err(_) => None,
        };
        match known {
            Some((person, mut target)) => {
                if target.nhs.is_none() {
                    target.nhs = self.store.nhs_number_of(person.as_str()).await?;
                }
                Ok((person.to_string(), target))
            }
            None => {
                let nhs = self.nhs_number_of(asked).await?;
                Ok((
                    asked.to_owned(),
                    fanout::Target {
                        records: Vec::new(),
                        nhs: Some(nhs),
                    },
                ))
            }
        }
    }

    /// A person's family (the person as they are now, and the members).
    pub(crate) async fn family_of(
        &self,
        asked: &kinfold_identity::PersonId,
    ) -> Result<
        (
            kinfold_identity::PersonId,
            Vec<kinfold_identity::family::Member>,
        ),
        GatewayError,
    > {
        self.identities
            .read(&self.store, &self.ledger, |inner| {
                let person = inner.current(asked)?;
                let members = inner.graph().family_of(&person);
                Some((person, members))
            })
            .await?
            .ok_or(GatewayError::UnknownPerson)
    }

    /// Writes one access to the ledger and waits until it is durable: the gate every
    /// disclosure passes. An error means nothing may be sent (fail closed).
    pub(crate) async fn record_access(
        &self,
        record: kinfold_ledger::AuditRecord,
    ) -> Result<Receipt, GatewayError> {
        let started = std::time::Instant::now();
        let receipt = self.ledger.record(vec![record]).await?;
        self.metrics.ledger_append(started.elapsed());
        Ok(receipt)
    }

    /// Writes several entries at once (one per person an answer concerns) and waits until
    /// they are durable.
    pub(crate) async fn record_all(
        &self,
        records: Vec<kinfold_ledger::AuditRecord>,
    ) -> Result<Receipt, GatewayError> {
        let started = std::time::Instant::now();
        let receipt = self.ledger.record(records).await?;
        self.metrics.ledger_append(started.elapsed());
        Ok(receipt)
    }

    /// A person's safeguarding flags, under every id they have been known by.
    pub(crate) async fn flags_of(
        &self,
        person: &str,
    ) -> Result<Vec<kinfold_store::StoredFlag>, GatewayError> {
        let ids: Vec<String> = match person.parse::<kinfold_identity::PersonId>() {
            Ok(id) => {
                self.identities
                    .read(&self.store, &self.ledger, |inner| {
                        inner
                            .known_as(&id)
                            .into_iter()
                            .map(|p| p.to_string())
                            .collect()
                    })
                    .await?
            }
            Err(_) => vec![person.to_owned()],
        };
        Ok(self.store.flags_of(&ids).await?)
    }
}
