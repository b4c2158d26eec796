//! The running audit ledger, shared by the gateway and the adapters: records audit entries
//! durably before the caller goes on (fail closed), with group commit, signs tree heads while
//! entries arrive, verifies a stored ledger, and serves the CT-style `/ledger/v1` API.
//!
//! The Merkle maths lives in `kinfold-ledger` (pure); this crate feeds it from the store and
//! keeps the tree in memory for proofs.

pub mod http;
pub mod refusals;

pub use refusals::{RefusalConfig, Refusals, Verdict};

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use kinfold_ledger::{AuditRecord, Hash, LeafInput, LedgerKey, MerkleLog, TreeHead, b64, from_b64};
use kinfold_store::{LedgerRow, Store, StoreError, TreeHeadRow};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// A secret that never prints: `Debug` shows `***`.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Ledger settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LedgerConfig {
    /// The Ed25519 signing key: its 32-byte seed, base64. Required.
    pub signing_key: Option<Secret>,
    /// How often a new tree head is signed while entries arrive, in milliseconds.
    pub tree_head_interval_ms: u64,
    /// The most audit records written in one group commit.
    pub max_group: usize,
    /// Several processes write this ledger (gateways sharing one database): before a caller
    /// writes entries in its own transaction (`record_within`), the entries the others added
    /// are read first. A group commit renumbers after a conflict either way. Default false:
    /// an adapter is its ledger's only writer, and that read would cost every ingest.
    pub shared: bool,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            signing_key: None,
            tree_head_interval_ms: 2000,
            max_group: 4096,
            shared: false,
        }
    }
}

/// What can go wrong with the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// No usable signing key in the configuration.
    #[error("ledger.signing_key must be a base64 Ed25519 seed of 32 bytes")]
    Key,
    /// The store refused or failed: nothing was recorded.
    #[error("the ledger's storage failed: {0}")]
    Store(#[from] StoreError),
    /// The ledger's writer is gone (shutting down).
    #[error("the ledger is not running")]
    Stopped,
    /// Stored entries do not match what was signed.
    #[error("the stored ledger does not verify: {0}")]
    Tampered(String),
}

impl LedgerError {
    /// Whose failure a write made with [`Ledger::record_within`] is: the ledger's when its
    /// rows could not be inserted ([`StoreError::Ledger`]: answered as the ledger being
    /// unavailable), otherwise the caller's own store error.
    pub fn blame<E: From<LedgerError> + From<StoreError>>(err: StoreError) -> E {
        match err {
            StoreError::Ledger(_) => LedgerError::Store(err).into(),
            err => err.into(),
        }
    }
}

/// Inbox entries appended at a time.
const INBOX_BATCH: i64 = 1000;

/// A signed tree head as the CT-style API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTreeHead {
    /// Number of entries.
    pub tree_size: u64,
    /// When signed, milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// Root hash, base64.
    pub sha256_root_hash: String,
    /// Ed25519 signature over the RFC 6962 `TreeHeadSignature` serialisation, base64.
    pub tree_head_signature: String,
}

impl SignedTreeHead {
    fn from_row(row: &TreeHeadRow) -> Self {
        Self {
            tree_size: u64::try_from(row.tree_size).unwrap_or(0),
            timestamp: u64::try_from(row.recorded).unwrap_or(0),
            sha256_root_hash: row.root_hash.clone(),
            tree_head_signature: row.signature.clone(),
        }
    }

    /// The head, if the root decodes.
    pub fn head(&self) -> Option<TreeHead> {
        Some(TreeHead {
            tree_size: self.tree_size,
            timestamp_ms: self.timestamp,
            root: from_b64(&self.sha256_root_hash)?.try_into().ok()?,
        })
    }

    /// Whether the signature verifies under `public_key`.
    pub fn verify(&self, public_key: &[u8; 32]) -> bool {
        match (self.head(), from_b64(&self.tree_head_signature)) {
            (Some(head), Some(signature)) => head.verify(public_key, &signature),
            _ => false,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    log: MerkleLog,
    by_leaf: HashMap<Hash, u64>,
    latest: Option<SignedTreeHead>,
}

/// An audit record made ready for the log by the caller: stamped, in canonical form, and
/// hashed. The hashing is most of an append's work, so it happens in the callers, in
/// parallel, and the writer only numbers the entries and commits them.
struct Prepared {
    canonical: String,
    commitment: Hash,
    patient: Option<String>,
    agent: String,
}

impl Prepared {
    /// Prepares records, stamping with the current time any that do not say when they were
    /// made.
    fn all(records: Vec<AuditRecord>) -> Vec<Self> {
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        records
            .into_iter()
            .map(|mut record| {
                if record.recorded.is_empty() {
                    record.recorded.clone_from(&now);
                }
                let canonical = record.canonical();
                Self {
                    commitment: AuditRecord::commitment(&canonical),
                    canonical,
                    patient: record.patient,
                    agent: record.agent.who,
                }
            })
            .collect()
    }
}

struct Append {
    entries: Vec<Prepared>,
    /// The store's inbox entries these came from, deleted in the same transaction.
    from_inbox: Vec<i64>,
    reply: Option<oneshot::Sender<Result<u64, ()>>>,
}

/// What the ledger's writer is asked to do.
enum Request {
    /// Append entries in its own transaction.
    Append(Append),
    /// Step aside while a caller writes entries in its own transaction (see
    /// [`Ledger::record_within`]).
    Turn(oneshot::Sender<Turn>),
}

/// A caller's turn to write ledger entries: the position of the first, and where to say how
/// the caller's transaction ended (the leaves it committed, or `None`).
struct Turn {
    start: u64,
    done: oneshot::Sender<Option<Vec<Hash>>>,
}

/// Proof that audit entries are durably in the ledger: the position of the last one. Only the
/// ledger makes one (its field is private), and only once the entries are committed, so an
/// answer that must be built from a receipt cannot be built before its audit entry exists.
///
/// Nothing outside this crate can make one:
///
/// ```compile_fail,E0451
/// let forged = kinfold_audit::Receipt { last: 7 };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    last: u64,
}

impl Receipt {
    /// The ledger position of the last entry recorded.
    pub fn position(&self) -> u64 {
        self.last
    }
}

/// The running ledger. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    appends: mpsc::Sender<Request>,
    state: Arc<RwLock<State>>,
    key: LedgerKey,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").finish_non_exhaustive()
    }
}

/// Reads a base64 seed into a signing key.
pub fn ledger_key(config: &LedgerConfig) -> Result<LedgerKey, LedgerError> {
    let seed = config
        .signing_key
        .as_ref()
        .and_then(|s| from_b64(s.expose()))
        .ok_or(LedgerError::Key)?;
    let seed: [u8; 32] = seed.try_into().map_err(|_| LedgerError::Key)?;
    Ok(LedgerKey::from_seed(seed))
}

/// Entries hashed together when a stored ledger is rebuilt.
const REBUILD_BATCH: i64 = 4096;

/// Batches being hashed at once on blocking threads while the store reads the next.
const REBUILD_IN_FLIGHT: usize = 3;

/// One stored entry, checked: its leaf hash recomputed from its record, whether that matches
/// the leaf hash stored beside it, and whether the columns that searches and access reports
/// select by (patient, agent) still say what the record says.
struct Checked {
    seq: i64,
    leaf: Hash,
    leaf_matches: bool,
    columns_match: bool,
}

/// Whether a canonical record's `patient` and `agent.who` are what its columns say.
///
/// A search for the exact field text rather than a parse: verification reads a million
/// records, and parsing each cost more than a tenth of the time. It is a complete check
/// because the canonical form has no white space and escapes every quote inside a string, so
/// `"patient":` with bare quotes can only be the record's own field (no other object in a
/// record has a `patient` or an `agent` key), and the value must end where the field does.
fn columns_match(row: &LedgerRow) -> bool {
    let record = row.record.as_str();
    let patient_matches = match &row.patient {
        Some(patient) => has_field(record, "\"patient\":", patient),
        None => !record.contains("\"patient\":"),
    };
    patient_matches && has_field(record, "\"agent\":{\"who\":", &row.agent)
}

/// Whether `record` holds `prefix` followed by `value` as a JSON string, ending the field.
fn has_field(record: &str, prefix: &str, value: &str) -> bool {
    let Ok(value) = serde_json::to_string(value) else {
        return false;
    };
    let field = format!("{prefix}{value}");
    record
        .match_indices(&field)
        .any(|(at, _)| matches!(record.as_bytes().get(at + field.len()), Some(b',' | b'}')))
}

fn check(rows: Vec<LedgerRow>) -> Vec<Checked> {
    rows.into_iter()
        .map(|row| {
            let leaf = leaf_of(&row);
            Checked {
                seq: row.seq,
                leaf_matches: hex(&leaf) == row.leaf_hash,
                columns_match: columns_match(&row),
                leaf,
            }
        })
        .collect()
}

/// The tree as it is rebuilt, entry by entry in stored order.
#[derive(Default)]
struct Rebuilt {
    log: MerkleLog,
    by_leaf: HashMap<Hash, u64>,
    problems: Vec<String>,
}

impl Rebuilt {
    /// Problems kept per kind before the rest are left out (the first is what matters).
    const MAX_PROBLEMS: usize = 20;

    fn take(&mut self, checked: Vec<Checked>, index_leaves: bool) {
        for entry in checked {
            let expected = self.log.len();
            let seq = u64::try_from(entry.seq).ok();
            if seq != Some(expected) && self.problems.len() < Self::MAX_PROBLEMS {
                self.problems.push(if seq.is_some_and(|s| s > expected) {
                    format!(
                        "entry {expected} is missing (the next stored entry is {})",
                        entry.seq
                    )
                } else {
                    format!("entry {} is out of order or duplicated", entry.seq)
                });
            }
            if !entry.leaf_matches && self.problems.len() < Self::MAX_PROBLEMS {
                self.problems.push(format!(
                    "entry {} has been altered: its record no longer matches its leaf hash",
                    entry.seq
                ));
            }
            if !entry.columns_match && self.problems.len() < Self::MAX_PROBLEMS {
                self.problems.push(format!(
                    "entry {} has been altered: its patient or agent column no longer matches its record",
                    entry.seq
                ));
            }
            if index_leaves {
                self.by_leaf.insert(entry.leaf, expected);
            }
            self.log.push(entry.leaf);
        }
    }
}

/// Rebuilds the tree from the stored entries, checking each against its stored leaf hash and
/// every signed tree head against the recomputed roots. Returns the log, the leaf index (if
/// asked for: the running ledger needs it for proofs by hash, a verifier does not) and every
/// problem found, first first.
///
/// Hashing every record is most of the work, so batches of entries are hashed on blocking
/// threads while the store reads the next ones; the tree is then built in stored order.
pub async fn rebuild(
    store: &Store,
    public_key: &[u8; 32],
    index_leaves: bool,
) -> Result<(MerkleLog, HashMap<Hash, u64>, Vec<String>), LedgerError> {
    let mut rebuilt = Rebuilt::default();
    let mut hashing = VecDeque::new();
    let mut after = None;
    loop {
        let batch = store.ledger_after(after, REBUILD_BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = Some(last.seq);
        hashing.push_back(tokio::task::spawn_blocking(move || check(batch)));
        if hashing.len() > REBUILD_IN_FLIGHT
            && let Some(oldest) = hashing.pop_front()
        {
            rebuilt.take(joined(oldest.await)?, index_leaves);
        }
    }
    for pending in hashing {
        rebuilt.take(joined(pending.await)?, index_leaves);
    }
    let Rebuilt {
        log,
        by_leaf,
        mut problems,
    } = rebuilt;
    for head in store.ledger_heads().await? {
        let signed = SignedTreeHead::from_row(&head);
        if !signed.verify(public_key) {
            problems.push(format!(
                "the tree head for size {} is not signed by this ledger's key",
                signed.tree_size
            ));
            continue;
        }
        let root = log.root(signed.tree_size);
        if root.map(|r| b64(&r)) != Some(signed.sha256_root_hash.clone()) {
            problems.push(match root {
                None => format!("the log holds {} entries but a signed tree head covers {}: entries were deleted (truncated)", log.len(), signed.tree_size),
                Some(_) => format!("the entries up to {} do not match their signed tree head: entries were altered, deleted or reordered", signed.tree_size),
            });
        }
    }
    Ok((log, by_leaf, problems))
}

/// A hashing task's result. It fails only if the runtime is shutting down (or the task
/// panicked, which hashing does not).
fn joined(
    result: Result<Vec<Checked>, tokio::task::JoinError>,
) -> Result<Vec<Checked>, LedgerError> {
    result.map_err(|_| LedgerError::Stopped)
}

fn leaf_of(row: &LedgerRow) -> Hash {
    LeafInput {
        seq: u64::try_from(row.seq).unwrap_or(0),
        timestamp_ms: u64::try_from(row.recorded).unwrap_or(0),
        record_hash: AuditRecord::commitment(&row.record),
    }
    .leaf_hash()
}

/// Lower-case hex (without a `format!` per byte: this runs once per entry when a million
/// entries are verified).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 15)]));
    }
    out
}

impl Ledger {
    /// Loads and checks the stored ledger, then starts the writer and the tree-head signer.
    /// Refuses to start on a ledger that does not verify.
    pub async fn open(store: Store, config: &LedgerConfig) -> Result<Self, LedgerError> {
        let key = ledger_key(config)?;
        let (log, by_leaf, problems) = rebuild(&store, &key.public_key(), true).await?;
        if let Some(first) = problems.first() {
            return Err(LedgerError::Tampered(first.clone()));
        }
        let latest = store
            .ledger_latest_head()
            .await?
            .map(|h| SignedTreeHead::from_row(&h));
        let state = Arc::new(RwLock::new(State {
            log,
            by_leaf,
            latest,
        }));
        let (appends, receiver) = mpsc::channel(16_384);
        let ledger = Self {
            appends,
            state,
            key,
        };
        ledger.sign_head(&store).await?;
        tokio::spawn(writer(
            receiver,
            store.clone(),
            ledger.state.clone(),
            config.max_group.max(1),
            config.shared,
        ));
        ledger.take_inbox(&store).await?;
        let signer = ledger.clone();
        let interval = Duration::from_millis(config.tree_head_interval_ms.max(100));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                if signer.appends.is_closed() {
                    break;
                }
                if let Err(err) = signer.take_inbox(&store).await {
                    tracing::error!(error = ?err, "could not take the ledger inbox");
                }
                if let Err(err) = signer.sign_head(&store).await {
                    tracing::error!(error = ?err, "could not sign a tree head");
                }
            }
        });
        Ok(ledger)
    }

    /// Records audit records durably. Returns once they are committed; an error means nothing
    /// was recorded, and the caller must not disclose.
    pub async fn record(&self, records: Vec<AuditRecord>) -> Result<Receipt, LedgerError> {
        let last = self.append(records, Vec::new()).await?;
        Ok(Receipt { last })
    }

    async fn append(
        &self,
        records: Vec<AuditRecord>,
        from_inbox: Vec<i64>,
    ) -> Result<u64, LedgerError> {
        let (reply, answer) = oneshot::channel();
        self.appends
            .send(Request::Append(Append {
                entries: Prepared::all(records),
                from_inbox,
                reply: Some(reply),
            }))
            .await
            .map_err(|_| LedgerError::Stopped)?;
        match answer.await {
            Ok(Ok(seq)) => Ok(seq),
            Ok(Err(())) => Err(LedgerError::Store(StoreError::Corrupt(
                "append failed".into(),
            ))),
            Err(_) => Err(LedgerError::Stopped),
        }
    }

    /// Records audit records in the caller's own transaction, so that they and what they
    /// record commit together, with one disk sync: `write` is given the ledger rows to insert
    /// beside its own data and must commit both, or neither. The ledger's writer waits
    /// meanwhile, so no other entry takes these positions. The entries count once `write`
    /// returns `Ok`; whatever else happens (an error, the caller giving up half-way), the
    /// writer reads back from the store what was committed.
    pub async fn record_within<T, E, F, Fut>(
        &self,
        records: Vec<AuditRecord>,
        write: F,
    ) -> Result<(T, Receipt), E>
    where
        F: FnOnce(Vec<LedgerRow>) -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
        E: From<LedgerError>,
    {
        let entries = Prepared::all(records);
        let (granted, turn) = oneshot::channel();
        self.appends
            .send(Request::Turn(granted))
            .await
            .map_err(|_| LedgerError::Stopped)?;
        let turn = turn.await.map_err(|_| LedgerError::Stopped)?;
        let (rows, leaves) = rows_of(&entries, turn.start, Utc::now().timestamp_millis());
        let count = rows.len() as u64;
        let written = write(rows).await;
        let _ = turn.done.send(written.is_ok().then_some(leaves));
        written.map(|answer| {
            let last = (turn.start + count).saturating_sub(1);
            (answer, Receipt { last })
        })
    }

    /// Records without waiting (for refused requests, which disclose nothing).
    pub fn record_in_background(&self, record: AuditRecord) {
        if self
            .appends
            .try_send(Request::Append(Append {
                entries: Prepared::all(vec![record]),
                from_inbox: Vec::new(),
                reply: None,
            }))
            .is_err()
        {
            tracing::warn!("the ledger queue is full; a refused request was not recorded");
        }
    }

    /// Appends the audit records that other processes left in the store's inbox (see
    /// [`Store::ledger_inbox_put`]), taking each out of the inbox in the same transaction.
    /// A text that is not an audit record is taken out and reported, not appended.
    pub async fn take_inbox(&self, store: &Store) -> Result<usize, LedgerError> {
        let waiting = store.ledger_inbox(INBOX_BATCH).await?;
        if waiting.is_empty() {
            return Ok(0);
        }
        let mut ids = Vec::with_capacity(waiting.len());
        let mut records = Vec::with_capacity(waiting.len());
        for (id, text) in waiting {
            ids.push(id);
            match serde_json::from_str::<AuditRecord>(&text) {
                Ok(record) => records.push(record),
                Err(_) => tracing::error!(
                    inbox_id = id,
                    "a ledger inbox entry is not an audit record; it is discarded"
                ),
            }
        }
        let appended = records.len();
        self.append(records, ids).await?;
        Ok(appended)
    }

    /// Signs and stores a tree head if the log has grown since the last one (or none exists).
    pub async fn sign_head(&self, store: &Store) -> Result<(), LedgerError> {
        let head = {
            let state = self.state.read().map_err(|_| LedgerError::Stopped)?;
            let size = state.log.len();
            if state.latest.as_ref().is_some_and(|h| h.tree_size >= size) {
                return Ok(());
            }
            TreeHead {
                tree_size: size,
                timestamp_ms: u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0),
                root: state.log.root(size).unwrap_or(kinfold_ledger::EMPTY_ROOT),
            }
        };
        let row = TreeHeadRow {
            tree_size: i64::try_from(head.tree_size).unwrap_or(i64::MAX),
            recorded: i64::try_from(head.timestamp_ms).unwrap_or(0),
            root_hash: b64(&head.root),
            signature: b64(&self.key.sign(&head)),
        };
        store.ledger_put_head(&row).await?;
        if let Ok(mut state) = self.state.write() {
            state.latest = Some(SignedTreeHead::from_row(&row));
        }
        Ok(())
    }

    /// The latest signed tree head.
    pub fn latest(&self) -> Option<SignedTreeHead> {
        self.state.read().ok()?.latest.clone()
    }

    /// The public key, 32 bytes.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.public_key()
    }

    /// Entries in the log now.
    pub fn size(&self) -> u64 {
        self.state.read().map_or(0, |s| s.log.len())
    }

    /// A consistency proof between two sizes.
    pub fn consistency(&self, first: u64, second: u64) -> Option<Vec<Hash>> {
        self.state.read().ok()?.log.consistency_proof(first, second)
    }

    /// The index of a leaf hash and its audit path in the tree of `size` entries.
    pub fn proof_by_hash(&self, leaf: &Hash, size: u64) -> Option<(u64, Vec<Hash>)> {
        let state = self.state.read().ok()?;
        let index = *state.by_leaf.get(leaf)?;
        Some((index, state.log.inclusion_proof(index, size)?))
    }

    /// The root of the tree of `size` entries.
    pub fn root(&self, size: u64) -> Option<Hash> {
        self.state.read().ok()?.log.root(size)
    }
}

/// Group commit: takes every append waiting, writes them in one transaction, then answers each.
async fn writer(
    mut receiver: mpsc::Receiver<Request>,
    store: Store,
    state: Arc<RwLock<State>>,
    max_group: usize,
    shared: bool,
) {
    let mut waiting = None;
    loop {
        let request = match waiting.take() {
            Some(request) => request,
            None => match receiver.recv().await {
                Some(request) => request,
                None => return,
            },
        };
        let first = match request {
            Request::Append(append) => append,
            Request::Turn(granted) => {
                give_turn(granted, &store, &state, shared).await;
                continue;
            }
        };
        let mut group = vec![first];
        let mut count = group[0].entries.len();
        while count < max_group {
            match receiver.try_recv() {
                Ok(Request::Append(next)) => {
                    count += next.entries.len();
                    group.push(next);
                }
                // A turn waits until this group is committed.
                Ok(turn) => {
                    waiting = Some(turn);
                    break;
                }
                Err(_) => break,
            }
        }
        let mut entries = Vec::with_capacity(count);
        let mut counts = Vec::with_capacity(group.len());
        let mut from_inbox = Vec::new();
        for append in &mut group {
            from_inbox.append(&mut append.from_inbox);
            counts.push(append.entries.len() as u64);
            entries.append(&mut append.entries);
        }
        // Numbered from the tree's size; if another gateway on the same database took those
        // positions first, its entries are read into the tree and these numbered again.
        let recorded = Utc::now().timestamp_millis();
        let mut attempts = 0;
        let (result, start) = loop {
            let start = state.read().map_or(0, |s| s.log.len());
            let (rows, leaves) = rows_of(&entries, start, recorded);
            match store.ledger_append(&rows, &from_inbox).await {
                Ok(()) => {
                    push_leaves(&state, leaves);
                    break (Ok(()), start);
                }
                Err(StoreError::Conflict(_)) if attempts < MAX_RENUMBERING => {
                    attempts += 1;
                    catch_up(&store, &state, start).await;
                }
                Err(err) => {
                    tracing::error!(error = ?err, records = rows.len(), "the ledger could not record; the disclosures are refused");
                    break (Err(err), start);
                }
            }
        };
        let ends: Vec<u64> = counts
            .iter()
            .scan(start, |end, n| {
                *end += n;
                Some(*end)
            })
            .collect();
        for (append, end) in group.into_iter().zip(ends) {
            if let Some(reply) = append.reply {
                let _ = reply.send(
                    result
                        .as_ref()
                        .map(|()| end.saturating_sub(1))
                        .map_err(|_| ()),
                );
            }
        }
    }
}

/// How many times one group is numbered again after other writers took its positions.
const MAX_RENUMBERING: usize = 5;

/// The stored rows of entries from position `start`, and their leaf hashes.
fn rows_of(entries: &[Prepared], start: u64, recorded: i64) -> (Vec<LedgerRow>, Vec<Hash>) {
    let mut rows = Vec::with_capacity(entries.len());
    let mut leaves = Vec::with_capacity(entries.len());
    for entry in entries {
        let seq = start + rows.len() as u64;
        let leaf = LeafInput {
            seq,
            timestamp_ms: u64::try_from(recorded).unwrap_or(0),
            record_hash: entry.commitment,
        }
        .leaf_hash();
        rows.push(LedgerRow {
            seq: i64::try_from(seq).unwrap_or(i64::MAX),
            recorded,
            patient: entry.patient.clone(),
            agent: entry.agent.clone(),
            leaf_hash: hex(&leaf),
            record: entry.canonical.clone(),
        });
        leaves.push(leaf);
    }
    (rows, leaves)
}

fn push_leaves(state: &RwLock<State>, leaves: Vec<Hash>) {
    if let Ok(mut state) = state.write() {
        for leaf in leaves {
            let index = state.log.len();
            state.log.push(leaf);
            state.by_leaf.insert(leaf, index);
        }
    }
}

/// Gives a caller its turn (see [`Ledger::record_within`]) and waits for it to end. If the
/// caller does not say that it committed, the entries it may have committed are read back.
async fn give_turn(
    granted: oneshot::Sender<Turn>,
    store: &Store,
    state: &RwLock<State>,
    shared: bool,
) {
    // Another gateway on the same database may have appended since: its entries first, so
    // that the caller's take the next free positions.
    if shared {
        let known = state.read().map_or(0, |s| s.log.len());
        catch_up(store, state, known).await;
    }
    let start = state.read().map_or(0, |s| s.log.len());
    let (done, ended) = oneshot::channel();
    if granted.send(Turn { start, done }).is_err() {
        return;
    }
    match ended.await {
        Ok(Some(leaves)) => push_leaves(state, leaves),
        Ok(None) | Err(_) => catch_up(store, state, start).await,
    }
}

/// Takes into the tree whatever entries the store holds from position `start` on: after a
/// caller's turn ended without saying it committed (it failed, or gave up while committing).
async fn catch_up(store: &Store, state: &RwLock<State>, start: u64) {
    match store
        .ledger_settled_from(i64::try_from(start).unwrap_or(i64::MAX))
        .await
    {
        Ok(rows) => push_leaves(state, rows.iter().map(leaf_of).collect()),
        Err(err) => {
            tracing::error!(error = ?err, "the ledger could not read back a caller's entries; it must be restarted to rebuild its tree")
        }
    }
}

/// What `kinfold ledger verify` found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// Entries read.
    pub entries: u64,
    /// Signed tree heads checked.
    pub heads: usize,
    /// Everything that does not match, first problem first. Empty means the ledger verifies.
    pub problems: Vec<String>,
}

/// Recomputes the whole tree from the stored records, checks every entry, every signed tree
/// head and, if given, a checkpoint saved earlier (an agency's own copy of a signed tree head).
pub async fn verify_store(
    store: &Store,
    public_key: &[u8; 32],
    checkpoint: Option<&SignedTreeHead>,
) -> Result<VerifyReport, LedgerError> {
    let (log, _, mut problems) = rebuild(store, public_key, false).await?;
    let heads = store.ledger_heads().await?.len();
    if let Some(checkpoint) = checkpoint {
        if !checkpoint.verify(public_key) {
            problems.push("the checkpoint is not signed by this ledger's key".to_owned());
        } else {
            match log.root(checkpoint.tree_size) {
                None => problems.push(format!(
                    "the log has been truncated: the checkpoint covers {} entries, the log holds {}",
                    checkpoint.tree_size,
                    log.len()
                )),
                Some(root) if b64(&root) != checkpoint.sha256_root_hash => problems.push(format!(
                    "the first {} entries no longer match the checkpoint: the log has been rewritten",
                    checkpoint.tree_size
                )),
                Some(_) => {}
            }
        }
    }
    Ok(VerifyReport {
        entries: log.len(),
        heads,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use kinfold_ledger::{AuditAgent, AuditEntity, AuditRecord};
    use kinfold_store::LedgerRow;

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    /// A record whose other strings try to look like the indexed fields.
    fn row(patient: Option<&str>, who: &str) -> LedgerRow {
        let record = AuditRecord {
            recorded: "2026-11-26T10:00:00.000Z".into(),
            event_type: "rest".into(),
            subtype: "operation".into(),
            action: "E".into(),
            outcome: "0".into(),
            query: r#"x","patient":"child-2","agent":{"who":"gp"}"#.into(),
            agent: AuditAgent {
                who: who.into(),
                organisation: Some(r#""patient":"child-2""#.into()),
                role: None,
            },
            purpose: None,
            patient: patient.map(str::to_owned),
            entities: vec![AuditEntity {
                reference: "Patient/child-2".into(),
                resource_type: "Patient".into(),
                agency: None,
                disclosure: "disclosed".into(),
            }],
            rule: None,
            justification: None,
            request_id: None,
            source: None,
            count: None,
            until: None,
        };
        LedgerRow {
            seq: 0,
            recorded: 0,
            patient: patient.map(str::to_owned),
            agent: who.into(),
            leaf_hash: String::new(),
            record: record.canonical(),
        }
    }

    #[test]
    fn columns_match_the_record_they_were_copied_from() {
        for (patient, who) in [
            (Some("child-1"), "nurse"),
            (None, "nurse"),
            (Some(r#"odd "id" \ here"#), r#"who "quoted""#),
        ] {
            assert!(
                super::columns_match(&row(patient, who)),
                "{patient:?} {who}"
            );
        }
    }

    #[test]
    fn an_edited_column_does_not_match_even_when_other_strings_look_like_it() {
        let cases = [
            (Some("child-1"), Some("child-2"), "nurse", "nurse"),
            (Some("child-1"), Some("child-10"), "nurse", "nurse"),
            (Some("child-10"), Some("child-1"), "nurse", "nurse"),
            (Some("child-1"), None, "nurse", "nurse"),
            (None, Some("child-2"), "nurse", "nurse"),
            (Some("child-1"), Some("child-1"), "nurse", "gp"),
            (Some("child-1"), Some("child-1"), "nurse", "nurs"),
        ];
        for (stored, column, who, agent_column) in cases {
            let mut row = row(stored, who);
            row.patient = column.map(str::to_owned);
            row.agent = agent_column.into();
            assert!(
                !super::columns_match(&row),
                "record {stored:?}/{who}, columns {column:?}/{agent_column}"
            );
        }
    }
}
