//! The gateway's person index, family graph and record locator: `kinfold-identity` decides,
//! this module keeps the state (the store's `identity_state`), reads the adapters' events
//! into it, and writes every link, merge, split, review decision and edge change to the
//! ledger before it is kept.
//!
//! The state lives in memory behind one lock (a `PersonIndex`, the persons, edges and review
//! pairs) and is loaded whole on first use. Events are read in order of arrival from
//! `received_events`, after each delivery and, when a delivery has come since, before any
//! identity answer. A pass decides against the state in memory, then records its changes in
//! the ledger, then saves them with the new events cursor in one transaction. If either fails,
//! the state is loaded again from the store as it was, and the same events are read again next
//! time.

pub(crate) mod apply;
pub(crate) mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};

use kinfold_fhir::NhsNumber;
use kinfold_identity::{Edge, FamilyGraph, PersonId, PersonIndex, RecordKey, Thresholds, Weights};
use kinfold_ledger::AuditRecord;
use kinfold_store::{IdentityRow, Store};
use tokio::sync::RwLock;

use crate::error::GatewayError;
use kinfold_audit::{Ledger, LedgerError, Receipt};
pub(crate) use state::{EdgeBody, PersonBody, RecordBody, ReviewBody};

/// How many received events one pass reads. An answer never waits for more than one pass
/// (the state is written only a pass at a time), so a pass is kept short.
const EVENTS_PER_PASS: i64 = 100;

/// The most an answer counts when it says how far behind the index is.
const MOST_BEHIND_COUNTED: i64 = 100_000;

/// The identity service. Its state is loaded from the store on first use.
///
/// Answers read the state as it stands (`read`, many at once) and never start a pass of the
/// received events themselves: deliveries do (`catch_up`, a pass at a time, the state locked
/// for writing only during each pass), and a task retries every second after a pass that
/// failed (`retry_catch_up`). How far behind the index is, an answer can say (`behind`).
#[derive(Debug)]
pub(crate) struct Identities {
    inner: RwLock<Option<Inner>>,
    /// Events may have arrived that are not read yet (set by each delivery, and at start).
    unread: AtomicBool,
    /// Other gateways write the same database (`ledger.shared`): check the store's generation
    /// before every answer. A lone gateway's state changes only through itself.
    shared: bool,
    /// One catch-up at a time: deliveries read their events in turn, and a re-estimate of the
    /// weights finishes before the next delivery's events are read with them.
    passes: tokio::sync::Mutex<()>,
}

impl Default for Identities {
    fn default() -> Self {
        Self {
            inner: RwLock::default(),
            unread: AtomicBool::new(true),
            shared: false,
            passes: tokio::sync::Mutex::new(()),
        }
    }
}

/// Everything the identity service knows.
#[derive(Debug, Default)]
pub(crate) struct Inner {
    pub(crate) index: PersonIndex,
    pub(crate) records: HashMap<RecordKey, RecordBody>,
    pub(crate) persons: BTreeMap<PersonId, PersonBody>,
    /// The persons merged into each person (a merged record's, an unborn child's into the
    /// baby's), kept with `persons`.
    merged_from: HashMap<PersonId, Vec<PersonId>>,
    pub(crate) edges: BTreeMap<String, EdgeBody>,
    pub(crate) reviews: BTreeMap<String, ReviewBody>,
    pub(crate) cursor: i64,
    /// The store's save count when this state was read or last saved: another gateway on the
    /// same database has changed the state when the store's differs.
    generation: i64,
    /// Who lives where: each folded address and the records that give it.
    pub(crate) addresses: HashMap<String, std::collections::BTreeSet<RecordKey>>,
    /// How many records the weights were last estimated from.
    estimated_from: usize,
}

/// A pass's reading done before it takes the index ([`Identities::read_ahead`]).
struct Ahead {
    /// The cursor the events follow: stale if the index moved on meanwhile.
    cursor: i64,
    events: Vec<kinfold_store::ReceivedEvent>,
    person_ids: HashMap<String, String>,
}

/// A set of changes to keep together: the ledger records, then the rows.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub(crate) audit: Vec<AuditRecord>,
    pub(crate) rows: Vec<IdentityRow>,
    /// Person ids already given to NHS numbers (by NHS number), linked before the pass took
    /// the index: a new person with one of these numbers takes its id without a write.
    pub(crate) person_ids: HashMap<String, String>,
}

impl Identities {
    /// The service, told whether other gateways share its database.
    pub(crate) fn new(shared: bool) -> Self {
        Self {
            shared,
            ..Self::default()
        }
    }

    /// Reads every received event not yet read into the index and graph (called after each
    /// delivery), a pass at a time: between passes, answers read the state.
    pub(crate) async fn catch_up(
        &self,
        store: &Store,
        ledger: &Ledger,
    ) -> Result<(), GatewayError> {
        self.unread.store(true, Ordering::SeqCst);
        let _passes = self.passes.lock().await;
        loop {
            // Cleared before reading: a delivery while this reads sets it again.
            let unread = self.unread.swap(false, Ordering::SeqCst);
            // The pass's reading and linking done before it takes the index, so that answers
            // meanwhile wait for none of it.
            let ahead = if unread {
                self.read_ahead(store).await
            } else {
                None
            };
            let mut slot = self.inner.write().await;
            if let Err(error) = self.reload_if_another_saved(&mut slot, store).await {
                self.unread.store(true, Ordering::SeqCst);
                return Err(error);
            }
            if !unread && slot.is_some() {
                return Ok(());
            }
            match one_pass(&mut slot, store, ledger, ahead).await {
                Ok(more) => {
                    if more {
                        self.unread.store(true, Ordering::SeqCst);
                    }
                }
                Err(error) => {
                    self.unread.store(true, Ordering::SeqCst);
                    return Err(error);
                }
            }
            // The weights estimated again when the index has grown enough: seconds of work
            // on a large index, done on a copy of the records with the state unlocked, so
            // answers (and the notification work, which waits for the index) go on meanwhile;
            // the next delivery's events wait for the new weights.
            let due = slot.as_mut().and_then(Inner::estimate_due);
            drop(slot);
            if let Some((records, prepared)) = due {
                match tokio::task::spawn_blocking(move || Weights::estimate(&prepared)).await {
                    Ok(weights) => {
                        let mut slot = self.inner.write().await;
                        if let Some(inner) = slot.as_mut().filter(|i| i.estimated_from == records) {
                            inner.index.set_weights(weights);
                        }
                    }
                    Err(error) => tracing::warn!(
                        ?error,
                        "identity: the weights could not be estimated again; the last ones stay"
                    ),
                }
            }
        }
    }

    /// The next pass's events, read with the index unlocked, and the person ids of the NHS
    /// numbers they name that the index does not know yet, linked in one transaction (a new
    /// person with an NHS number keeps the id the gateway gave that number). `None` when the
    /// state is not loaded, or the store did not answer (the pass then reads for itself).
    async fn read_ahead(&self, store: &Store) -> Option<Ahead> {
        let cursor = self.inner.read().await.as_ref()?.cursor;
        let events = store.events_after(cursor, EVENTS_PER_PASS).await.ok()?;
        let mut numbers: Vec<NhsNumber> = events.iter().flat_map(apply::nhs_numbers).collect();
        numbers.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        numbers.dedup_by(|a, b| a.as_str() == b.as_str());
        {
            let slot = self.inner.read().await;
            let inner = slot.as_ref()?;
            numbers.retain(|n| inner.index.person_with_nhs(n.as_str()).is_none());
        }
        let person_ids = match store.link_persons(&numbers).await {
            Ok(ids) => ids,
            Err(error) => {
                tracing::warn!(?error, "identity: person ids not linked ahead of the pass");
                HashMap::new()
            }
        };
        Some(Ahead {
            cursor,
            events,
            person_ids,
        })
    }

    /// Catches up if a delivery's pass failed or events may be unread (the gateway's task
    /// calls this every second, so that a ledger back from an outage is caught up without
    /// waiting for the next delivery).
    pub(crate) async fn retry_catch_up(
        &self,
        store: &Store,
        ledger: &Ledger,
    ) -> Result<(), GatewayError> {
        if self.unread.load(Ordering::SeqCst) {
            // `catch_up` sets the flag again; it clears it once it has read everything.
            self.catch_up(store, ledger).await
        } else {
            Ok(())
        }
    }

    /// How many received events the index has not read yet (at most 100,000 counted): an
    /// identity answer says so when it is not zero.
    pub(crate) async fn behind(&self, store: &Store) -> Result<i64, GatewayError> {
        let cursor = match self.inner.read().await.as_ref() {
            Some(inner) => inner.cursor,
            None => 0,
        };
        Ok(store
            .events_count_after(cursor, MOST_BEHIND_COUNTED)
            .await?)
    }

    /// With other gateways on this database: when one has saved since this state was read,
    /// forget it, to be read again.
    async fn reload_if_another_saved(
        &self,
        slot: &mut Option<Inner>,
        store: &Store,
    ) -> Result<(), GatewayError> {
        if self.shared
            && let Some(inner) = slot.as_ref()
            && store.identity_generation().await? != inner.generation
        {
            *slot = None;
        }
        Ok(())
    }

    /// Loads the state if need be and reads the events if any may be unread (a query without
    /// new deliveries costs no database round trip).
    async fn catch_up_locked(
        &self,
        slot: &mut Option<Inner>,
        store: &Store,
        ledger: &Ledger,
    ) -> Result<(), GatewayError> {
        self.reload_if_another_saved(slot, store).await?;
        // Cleared before reading: a delivery while this reads sets it again.
        if self.unread.swap(false, Ordering::SeqCst) || slot.is_none() {
            let result = catch_up(slot, store, ledger).await;
            if result.is_err() {
                self.unread.store(true, Ordering::SeqCst);
            }
            return result;
        }
        Ok(())
    }

    /// Runs `work` on the state, caught up with the events; what it changes is kept (ledger,
    /// then store), or the state is loaded again as it was.
    pub(crate) async fn change<T>(
        &self,
        store: &Store,
        ledger: &Ledger,
        work: impl FnOnce(&mut Inner, &mut Changes) -> Result<T, GatewayError>,
    ) -> Result<(T, Receipt), GatewayError> {
        let mut slot = self.inner.write().await;
        self.catch_up_locked(&mut slot, store, ledger).await?;
        let Some(inner) = slot.as_mut() else {
            return Err(GatewayError::UnknownPerson);
        };
        let mut changes = Changes::default();
        let result = match work(inner, &mut changes) {
            // A change by hand is never kept without its audit entry.
            Ok(_) if changes.audit.is_empty() => Err(GatewayError::Unaudited),
            Ok(answer) => keep(store, ledger, &changes, None, inner.generation)
                .await
                .and_then(|(receipt, generation)| {
                    inner.generation = generation;
                    receipt.ok_or(GatewayError::Unaudited)
                })
                .map(|receipt| (answer, receipt)),
            Err(error) => Err(error),
        };
        if result.is_err() && !changes.rows.is_empty() {
            *slot = None;
        }
        result
    }

    /// Reads the state as it stands: never waits for more than a pass under way, and starts
    /// none (the first read loads the state and reads the events received so far). With other
    /// gateways on this database, whose deliveries this one does not see, it first reads
    /// what they saved and the events they received (a ledger that cannot record holds new
    /// links back; what is known still answers).
    pub(crate) async fn read<T>(
        &self,
        store: &Store,
        ledger: &Ledger,
        work: impl FnOnce(&Inner) -> T,
    ) -> Result<T, GatewayError> {
        if !self.shared {
            let slot = self.inner.read().await;
            if let Some(inner) = slot.as_ref() {
                return Ok(work(inner));
            }
        }
        let mut slot = self.inner.write().await;
        if let Err(error) = self.catch_up_locked(&mut slot, store, ledger).await {
            tracing::warn!(
                ?error,
                "identity: new events could not be read; answering with what is known"
            );
        }
        if slot.is_none() {
            *slot = Some(Inner::load(store).await?);
        }
        match slot.as_ref() {
            Some(inner) => Ok(work(inner)),
            None => Err(GatewayError::UnknownPerson),
        }
    }
}

/// One pass: loads the state if it is not loaded, then reads up to [`EVENTS_PER_PASS`]
/// events not yet read; answers whether there may be more.
async fn one_pass(
    slot: &mut Option<Inner>,
    store: &Store,
    ledger: &Ledger,
    ahead: Option<Ahead>,
) -> Result<bool, GatewayError> {
    if slot.is_none() {
        *slot = Some(Inner::load(store).await?);
    }
    let Some(inner) = slot.as_mut() else {
        return Ok(false);
    };
    let mut changes = Changes::default();
    let events = match ahead {
        Some(ahead) if ahead.cursor == inner.cursor => {
            changes.person_ids = ahead.person_ids;
            ahead.events
        }
        _ => store.events_after(inner.cursor, EVENTS_PER_PASS).await?,
    };
    let Some(last) = events.last().map(|e| e.seq) else {
        return Ok(false);
    };
    let mut result = Ok(());
    for event in &events {
        result = apply::event(inner, store, event, &mut changes).await;
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = keep(store, ledger, &changes, Some(last), inner.generation)
            .await
            .map(|(_, generation)| inner.generation = generation);
    }
    if let Err(error) = result {
        // Nothing of this pass was kept: forget it; the events are read again next time.
        *slot = None;
        return Err(error);
    }
    inner.cursor = last;
    Ok(i64::try_from(events.len()).unwrap_or(i64::MAX) == EVENTS_PER_PASS)
}

/// Loads the state if it is not loaded, then reads the events not yet read, a pass at a time
/// (the state held throughout: for a change by hand, which needs it current).
async fn catch_up(
    slot: &mut Option<Inner>,
    store: &Store,
    ledger: &Ledger,
) -> Result<(), GatewayError> {
    while one_pass(slot, store, ledger, None).await? {}
    Ok(())
}

/// Keeps a set of changes: their ledger entries and their rows in one transaction, so that
/// both commit with one disk sync, or neither does; and only if no other gateway has saved
/// since this one read the state at `generation` (then nothing is kept, and the state is read
/// again). Answers the receipt and the state's new generation.
async fn keep(
    store: &Store,
    ledger: &Ledger,
    changes: &Changes,
    cursor: Option<i64>,
    generation: i64,
) -> Result<(Option<Receipt>, i64), GatewayError> {
    if changes.audit.is_empty() {
        let generation = store
            .identity_save_if(&changes.rows, cursor, &[], generation)
            .await?;
        return Ok((None, generation));
    }
    let (generation, receipt) = ledger
        .record_within(changes.audit.clone(), |entries| async move {
            store
                .identity_save_if(&changes.rows, cursor, &entries, generation)
                .await
                .map_err(LedgerError::blame::<GatewayError>)
        })
        .await?;
    Ok((Some(receipt), generation))
}

/// The match weights the person index uses now, as it would have them after loading the
/// gateway's identity state from `store` (estimated from its records once there are enough):
/// how many records the index holds, whether the weights were estimated from them (or are
/// the priors), and field by field `m`, `u` and the weight. Reads only.
pub async fn match_weights(
    store: &Store,
) -> Result<(usize, bool, Vec<kinfold_identity::WeightRow>), GatewayError> {
    let inner = Inner::load(store).await?;
    let records = inner.index.len();
    Ok((
        records,
        records >= kinfold_identity::matching::MIN_RECORDS_TO_ESTIMATE,
        inner.index.weights().table(),
    ))
}

/// Every agency record the person index holds and the person it is filed under (the record
/// locator, for an identity steward's export and the linkage benchmark). Reads only.
pub async fn record_links(store: &Store) -> Result<Vec<(String, String, String)>, GatewayError> {
    let inner = Inner::load(store).await?;
    let mut links: Vec<(String, String, String)> = inner
        .records
        .values()
        .map(|r| {
            (
                r.record.agency.as_str().to_owned(),
                r.record.reference.clone(),
                r.person.as_str().to_owned(),
            )
        })
        .collect();
    links.sort();
    Ok(links)
}

impl Inner {
    async fn load(store: &Store) -> Result<Self, GatewayError> {
        // The generation first: a save between the two reads only makes the state look older
        // than it is, and it is read again.
        let generation = store.identity_generation().await?;
        let (rows, cursor) = store.identity_load().await?;
        let mut inner = Inner {
            index: PersonIndex::new(Weights::default(), Thresholds::default()),
            cursor,
            generation,
            ..Inner::default()
        };
        for row in rows {
            inner.restore(&row)?;
        }
        inner.estimate_if_grown();
        Ok(inner)
    }

    /// When the weights are due to be estimated again ([`Inner::estimate_if_grown`]): how many
    /// records, and a copy of them to estimate from (the estimate is then taken as made).
    fn estimate_due(&mut self) -> Option<(usize, Vec<kinfold_identity::matching::Prepared>)> {
        let records = self.index.len();
        if !kinfold_identity::estimate_due(records, self.estimated_from) {
            return None;
        }
        self.estimated_from = records;
        Some((records, self.index.prepared()))
    }

    /// Estimates the match weights from the records again once the index has grown by a
    /// quarter since the last estimate ([`kinfold_identity::estimate_due`]; below
    /// [`kinfold_identity::matching::MIN_RECORDS_TO_ESTIMATE`] records the priors stay).
    fn estimate_if_grown(&mut self) {
        let records = self.index.len();
        if kinfold_identity::estimate_due(records, self.estimated_from) {
            self.index
                .set_weights(Weights::estimate(&self.index.prepared()));
            self.estimated_from = records;
        }
    }

    /// The person an id names now: a merged person's survivor, an unborn child's baby.
    pub(crate) fn current(&self, person: &PersonId) -> Option<PersonId> {
        let mut at = person.clone();
        for _ in 0..16 {
            let body = self.persons.get(&at)?;
            match &body.merged_into {
                Some(next) => at = next.clone(),
                None => return Some(at),
            }
        }
        None
    }

    /// Every id a person has been known by: their own, and each person merged into them (an
    /// unborn child's, a record's linked in later), however many steps back.
    pub(crate) fn known_as(&self, person: &PersonId) -> Vec<PersonId> {
        let mut ids = vec![person.clone()];
        let mut at = 0;
        while at < ids.len() && ids.len() < 64 {
            if let Some(from) = self.merged_from.get(&ids[at]) {
                for id in from {
                    if !ids.contains(id) {
                        ids.push(id.clone());
                    }
                }
            }
            at += 1;
        }
        ids
    }

    /// The records an agency holds for a person: the record locator (Patient records only).
    pub(crate) fn locate(&self, person: &PersonId) -> Vec<RecordKey> {
        self.index
            .records_of(person)
            .into_iter()
            .filter(|k| k.reference.starts_with("Patient/"))
            .collect()
    }

    /// How the person's records name them and their date of birth (the first record, in key
    /// order, that gives a name), for lists that must say whom each line is about.
    pub(crate) fn named(&self, person: &PersonId) -> Option<(String, Option<String>)> {
        let mut keys = self.index.records_of(person);
        keys.sort_by_cached_key(state::record_key);
        keys.iter()
            .filter_map(|key| self.records.get(key))
            .map(|record| &record.demographics)
            .find(|d| d.family.is_some() || !d.given.is_empty())
            .map(|d| {
                let name = d
                    .given
                    .iter()
                    .map(String::as_str)
                    .chain(d.family.as_deref())
                    .collect::<Vec<_>>()
                    .join(" ");
                (name, d.birth_date.clone())
            })
    }

    /// The person's valid NHS number, if any record of theirs holds one.
    pub(crate) fn nhs_number_of(&self, person: &PersonId) -> Option<NhsNumber> {
        self.index.nhs_number_of(person).cloned()
    }

    /// The family graph as it stands (retracted edges left out).
    pub(crate) fn graph(&self) -> FamilyGraph {
        let edges: Vec<Edge> = self
            .edges
            .values()
            .filter(|e| e.retracted.is_none())
            .map(|e| e.edge.clone())
            .collect();
        let unborn = self
            .persons
            .values()
            .filter(|p| p.merged_into.is_none())
            .filter_map(|p| Some((p.id.clone(), p.due_date?)))
            .collect();
        FamilyGraph::new(edges, unborn)
    }
}
