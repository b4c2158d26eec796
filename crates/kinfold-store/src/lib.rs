//! Kinfold's storage: FHIR resources as JSON text with extracted, indexed search columns, on
//! SQLite (the embedded default) or PostgreSQL (production), behind one API.
//!
//! Invariants:
//! * Every write happens inside one database transaction: a Bundle that fails half-way leaves
//!   nothing behind, and an update keeps the previous version in `resource_versions` (which
//!   holds every version but the current one, kept in `resources`).
//! * SQL is parameterised; no value from a request is ever spliced into SQL text.
//! * Both backends run the same code paths and the same test suite; only DDL differs, in
//!   `migrations/sqlite` and `migrations/postgres`.

mod sql;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kinfold_fhir::search::SearchQuery;
use kinfold_fhir::{NhsNumber, Resource, ResourceType};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Row, SqlitePool};

use crate::ledger::InsertLedgerRows;
use crate::sql::{Arg, Sql};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The configured PostgreSQL database does not exist, and the configured role may not
    /// create it.
    #[error("{0}")]
    MissingDatabase(Box<MissingDatabase>),
    /// A stored row cannot be read back (should never happen; means the data was altered).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A write would break a uniqueness rule (one Patient per NHS number); nothing was written.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The audit ledger's entries for a write could not be inserted; nothing was written.
    #[error("the ledger's entries could not be written")]
    Ledger(#[source] sqlx::Error),
    /// The URL names no backend Kinfold supports.
    #[error("unsupported database URL (expected sqlite:// or postgres://)")]
    UnsupportedUrl,
}

/// A PostgreSQL database that does not exist and cannot be created by the configured role,
/// with what to do about it.
#[derive(Debug, thiserror::Error)]
#[error(
    "the database \"{database}\" does not exist on {host}:{port}, and the role \"{role}\" may not create it ({why}). Create it as a role that may, for example `createdb -h {host} -p {port} -O {role} {database}`, then start again"
)]
pub struct MissingDatabase {
    /// The database's name.
    pub database: String,
    /// The server's host.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The role in the URL.
    pub role: String,
    /// What the server said when asked to create it.
    pub why: String,
}

/// A convenient alias.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// SQLite, one file.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

#[derive(Debug, Clone)]
enum Backend {
    /// SQLite: the pool that reads, and the one connection that writes.
    Sqlite(SqlitePool, SqlitePool),
    Postgres(PgPool),
}

/// Runs the same body against whichever pool the store holds. The body is compiled once per
/// backend, so the code is shared while the types stay exact.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            Backend::Sqlite($pool, _) => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}

/// Like `on_pool!`, for a body that writes: on SQLite it runs on the store's one writing
/// connection (see [`Store::open_sqlite`]).
macro_rules! on_writer {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            Backend::Sqlite(_, $pool) => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}

/// Builds a `sqlx::query` from a [`Sql`] and binds its arguments in order.
macro_rules! bound {
    ($sql:expr) => {{
        let mut query = sqlx::query(sqlx::AssertSqlSafe($sql.text.as_str()));
        for arg in &$sql.args {
            query = match arg {
                Arg::Text(text) => query.bind(text.as_str()),
                Arg::Int(int) => query.bind(*int),
            };
        }
        query
    }};
}

mod batch;
mod events;
mod flags;
mod identity;
mod ledger;
mod notifications;
mod reviews;
mod subscriptions;
pub mod testing;

pub use events::{PendingEvent, ReceivedEvent};
pub use flags::{MAX_FLAG_ACTIONS, MAX_FLAGS, StoredFlag};
pub use identity::IdentityRow;
pub use ledger::{LedgerQuery, LedgerRow, TreeHeadRow};
pub use notifications::{InboxQuery, MAX_INBOX, NEVER, StoredNotification, Watch};
pub use reviews::{AssertionUse, MAX_CONSENTS, MAX_REVIEWS};
pub use subscriptions::{DueEvent, KEEP_EVENTS, MAX_SUBSCRIPTIONS, StoredSubscription};

/// A stored resource as the store hands it out: the JSON text exactly as stored, plus the
/// columns a server needs without parsing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResource {
    /// `resourceType`.
    pub resource_type: String,
    /// Logical id.
    pub id: String,
    /// Version, counting from 1.
    pub version_id: i64,
    /// When this version was stored, in milliseconds since the Unix epoch.
    pub last_updated: i64,
    /// The resource as FHIR JSON, with `meta.versionId` and `meta.lastUpdated` set.
    pub json: String,
}

/// One page of search results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    /// How many resources match in all (not just on this page).
    pub total: u64,
    /// This page's resources.
    pub items: Vec<StoredResource>,
}

/// One page, with the total if it came free.
struct Page {
    total: Option<u64>,
    items: Vec<StoredResource>,
}

/// What one write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// `resourceType`.
    pub resource_type: String,
    /// Logical id.
    pub id: String,
    /// The version just written.
    pub version_id: i64,
    /// When, in milliseconds since the Unix epoch.
    pub last_updated: i64,
    /// Whether this created the resource (version 1).
    pub created: bool,
}

/// One unit of ingest (a message, a file row, a Bundle): stored whole or not at all.
#[derive(Debug, Default)]
pub struct WriteUnit {
    /// The records, versioned as by [`Store::write_all`].
    pub records: Vec<Resource>,
    /// Written only if nothing of that type and id is stored yet (provenance, originals).
    pub first_copy: Vec<Resource>,
    /// Events for the outbox, written with the records.
    pub events: Vec<OutboxEvent>,
}

/// An event an adapter owes the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// Its id: the same event is never queued twice.
    pub id: String,
    /// The event as JSON text.
    pub payload: String,
}

/// What one unit's write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitOutcome {
    /// Each record, in order.
    pub records: Vec<WriteOutcome>,
    /// Whether anything was written (false for a resend of what is stored).
    pub changed: bool,
}

/// How often the background task copies the write-ahead log into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Copies the write-ahead log into the database file every [`CHECKPOINT_EVERY`], beside the
/// writers (a passive checkpoint waits for no one and blocks no one), so that a commit does not
/// pay for it. Measured with the A&E feed's benchmark: the 90th percentile of a group commit
/// fell from 22 to 7 ms. Stops when the pool is closed or the last `Store` handle is dropped.
async fn checkpoints(pool: sqlx::SqlitePool) {
    loop {
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        if pool.is_closed() {
            return;
        }
        if let Err(err) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %err, "a background checkpoint failed; the next commit past the limit checkpoints instead");
        }
    }
}

/// Kinfold's FHIR store.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    /// The background checkpoints (SQLite), stopped when the last handle goes.
    _checkpoints: Option<Arc<Background>>,
}

/// A task that is stopped when dropped.
#[derive(Debug)]
struct Background(tokio::task::JoinHandle<()>);

impl Drop for Background {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Store {
    /// Opens (creating if needed) a SQLite database file and applies migrations.
    pub async fn open_sqlite(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before it returns (WAL synced), so "durably committed"
            // holds through a power cut, not only a process crash. The ledger depends on it.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            // A 32 MiB page cache per connection (SQLite's default is 2 MiB): ingest touches
            // several indexes per record, and a miss is a read from the file.
            .pragma("cache_size", "-32768")
            // Savepoints (a unit at fault in a group commit) journal in memory, not a file.
            .pragma("temp_store", "memory")
            // Checkpoints run in the background (see `checkpoints`), not inside a writer's
            // commit; a commit checkpoints itself only if the log passes 40 MiB.
            .pragma("wal_autocheckpoint", "10000");
        // A local file cannot drop a connection the way a network can: skip the ping that
        // sqlx otherwise sends before handing out each connection (it doubled query time).
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("../../migrations/sqlite").run(&pool).await?;
        // Every write goes through one connection, kept open. SQLite takes one writer at a
        // time anyway, and a connection whose file another connection has changed throws its
        // page cache away: with writes spread over the pool, each write transaction began by
        // reading every index page it touched back from the file. Writers now queue for this
        // connection in order, and its cache stays warm.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        let checkpoints = Background(tokio::spawn(checkpoints(pool.clone())));
        Ok(Self {
            backend: Backend::Sqlite(pool, writer),
            _checkpoints: Some(Arc::new(checkpoints)),
        })
    }

    /// Connects to PostgreSQL and applies migrations. A database that does not exist is
    /// created when the configured role may create databases; otherwise the error names the
    /// database and how to create it.
    pub async fn open_postgres(url: &str) -> Result<Self> {
        // The server's NOTICEs ("relation _sqlx_migrations already exists, skipping" at every
        // start) are not news: only warnings and errors are sent to Kinfold.
        let options =
            PgConnectOptions::from_str(url)?.options([("client_min_messages", "warning")]);
        let connect = || {
            PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options.clone())
        };
        let pool = match connect().await {
            Err(error) if is_missing_database(&error) => {
                create_missing_database(&options).await?;
                connect().await?
            }
            other => other?,
        };
        sqlx::migrate!("../../migrations/postgres")
            .run(&pool)
            .await?;
        Ok(Self {
            backend: Backend::Postgres(pool),
            _checkpoints: None,
        })
    }

    /// Opens a store by URL: `sqlite://PATH` or `postgres://…` (`postgresql://` too).
    pub async fn open(url: &str) -> Result<Self> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            Self::open_sqlite(Path::new(path)).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::open_postgres(url).await
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }

    /// Opens a store to read, never to change: no migrations, no file created, and (SQLite)
    /// a read-only connection. For auditors' tools (`kinfold ledger verify`), which must work
    /// with a role that may only `SELECT` and must never alter a production schema.
    pub async fn open_read_only(url: &str) -> Result<Self> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            let options = SqliteConnectOptions::new()
                .filename(path)
                .read_only(true)
                .create_if_missing(false)
                .busy_timeout(Duration::from_secs(5));
            let pool = SqlitePoolOptions::new()
                .max_connections(2)
                .connect_with(options)
                .await?;
            Ok(Self {
                backend: Backend::Sqlite(pool.clone(), pool),
                _checkpoints: None,
            })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(2)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(PgConnectOptions::from_str(url)?)
                .await?;
            Ok(Self {
                backend: Backend::Postgres(pool),
                _checkpoints: None,
            })
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }

    /// How many of this release's migrations the database has not had (read-only: for
    /// `kinfold check`). A database never migrated has all of them pending.
    pub async fn migrations_pending(&self) -> Result<usize> {
        let known: Vec<i64> = match self.kind() {
            BackendKind::Sqlite => sqlx::migrate!("../../migrations/sqlite")
                .iter()
                .map(|m| m.version)
                .collect(),
            BackendKind::Postgres => sqlx::migrate!("../../migrations/postgres")
                .iter()
                .map(|m| m.version)
                .collect(),
        };
        let applied: std::result::Result<Vec<i64>, sqlx::Error> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(pool)
                .await
        });
        let applied = match applied {
            Ok(applied) => applied,
            // No migrations table: never migrated.
            Err(sqlx::Error::Database(e))
                if e.code().is_some_and(|c| c == "42P01")
                    || e.message().contains("no such table") =>
            {
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        };
        Ok(known.iter().filter(|v| !applied.contains(v)).count())
    }

    /// Which backend this is.
    pub fn kind(&self) -> BackendKind {
        match self.backend {
            Backend::Sqlite(..) => BackendKind::Sqlite,
            Backend::Postgres(_) => BackendKind::Postgres,
        }
    }

    fn sql(&self) -> Sql {
        Sql::new(self.kind() == BackendKind::Postgres)
    }

    /// Closes every connection; the store is unusable afterwards.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
        on_writer!(self, pool => pool.close().await);
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<()> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Reads the current version of one resource.
    pub async fn read(
        &self,
        resource_type: ResourceType,
        id: &str,
    ) -> Result<Option<StoredResource>> {
        let mut sql = self.sql();
        sql.push("SELECT resource_type, id, version_id, last_updated, content FROM resources WHERE resource_type = ");
        sql.bind(Arg::text(resource_type.as_str()));
        sql.push(" AND id = ");
        sql.bind(Arg::text(id));
        let rows = on_pool!(self, pool => {
            bound!(sql).fetch_all(pool).await?.iter().map(stored).collect::<Result<Vec<_>>>()
        })?;
        Ok(rows.into_iter().next())
    }

    /// Reads one version of a resource, current or past.
    pub async fn read_version(
        &self,
        resource_type: ResourceType,
        id: &str,
        version_id: i64,
    ) -> Result<Option<StoredResource>> {
        // The current version is in `resources`, the ones it replaced in `resource_versions`.
        let mut sql = self.sql();
        for (n, table) in ["resources", "resource_versions"].into_iter().enumerate() {
            if n > 0 {
                sql.push(" UNION ALL ");
            }
            sql.push("SELECT resource_type, id, version_id, last_updated, content FROM ");
            sql.push(table);
            sql.push(" WHERE resource_type = ");
            sql.bind(Arg::text(resource_type.as_str()));
            sql.push(" AND id = ");
            sql.bind(Arg::text(id));
            sql.push(" AND version_id = ");
            sql.bind(Arg::Int(version_id));
        }
        let rows = on_pool!(self, pool => {
            bound!(sql).fetch_all(pool).await?.iter().map(stored).collect::<Result<Vec<_>>>()
        })?;
        Ok(rows.into_iter().next())
    }

    /// Searches one resource type. Results are ordered by clinical date, then id.
    pub async fn search(
        &self,
        resource_type: ResourceType,
        query: &SearchQuery,
    ) -> Result<SearchPage> {
        let mut sql = self.sql();
        sql.push("SELECT resource_type, id, version_id, last_updated, content FROM resources r WHERE r.resource_type = ");
        sql.bind(Arg::text(resource_type.as_str()));
        sql.filters(resource_type.as_str(), query);
        sql.push(" ORDER BY r.date_start, r.id");
        let page = self.page(sql, query.count, query.offset).await?;
        let total = match page.total {
            Some(total) => total,
            None => self.count_matches(resource_type, query).await?,
        };
        Ok(SearchPage {
            total,
            items: page.items,
        })
    }

    /// Runs a query for one page. The total comes free when the page is the first and not
    /// full (the usual case for one patient's records); otherwise it is left to the caller.
    async fn page(&self, mut sql: Sql, count: usize, offset: usize) -> Result<Page> {
        sql.push(" LIMIT ");
        sql.count(i64::try_from(count).unwrap_or(i64::MAX));
        sql.push(" OFFSET ");
        sql.count(i64::try_from(offset).unwrap_or(i64::MAX));
        let items = on_pool!(self, pool => {
            bound!(sql).fetch_all(pool).await?.iter().map(stored).collect::<Result<Vec<_>>>()?
        });
        let total =
            (offset == 0 && items.len() < count).then(|| u64::try_from(items.len()).unwrap_or(0));
        Ok(Page { total, items })
    }

    async fn count_matches(&self, resource_type: ResourceType, query: &SearchQuery) -> Result<u64> {
        let mut sql = self.sql();
        sql.push("SELECT COUNT(*) AS total FROM resources r WHERE r.resource_type = ");
        sql.bind(Arg::text(resource_type.as_str()));
        sql.filters(resource_type.as_str(), query);
        self.count_of(sql).await
    }

    async fn count_of(&self, sql: Sql) -> Result<u64> {
        let total =
            on_pool!(self, pool => bound!(sql).fetch_one(pool).await?.try_get::<i64, _>("total")?);
        Ok(u64::try_from(total).unwrap_or(0))
    }

    /// Every resource about one patient (the Patient itself first), ordered by type, date and
    /// id; `count` and `offset` page through them.
    pub async fn everything(
        &self,
        patient_id: &str,
        types: &[String],
        count: usize,
        offset: usize,
    ) -> Result<SearchPage> {
        // Only these resource types (`_type`), the Patient always among them.
        let only = |sql: &mut Sql| {
            if !types.is_empty() {
                sql.push(" AND r.resource_type IN ('Patient'");
                for kind in types {
                    sql.push(", ");
                    sql.bind(Arg::text(kind));
                }
                sql.push(")");
            }
        };
        let mut sql = self.sql();
        sql.push("SELECT resource_type, id, version_id, last_updated, content FROM resources r WHERE r.patient = ");
        sql.bind(Arg::text(patient_id));
        only(&mut sql);
        sql.push(" ORDER BY CASE WHEN r.resource_type = 'Patient' THEN 0 ELSE 1 END, r.resource_type, r.date_start, r.id");
        let page = self.page(sql, count, offset).await?;
        let total = match page.total {
            Some(total) => total,
            None => {
                let mut sql = self.sql();
                sql.push("SELECT COUNT(*) AS total FROM resources r WHERE r.patient = ");
                sql.bind(Arg::text(patient_id));
                only(&mut sql);
                self.count_of(sql).await?
            }
        };
        Ok(SearchPage {
            total,
            items: page.items,
        })
    }

    /// How many current resources the store holds.
    pub async fn count(&self) -> Result<u64> {
        let total = on_pool!(self, pool => {
            sqlx::query("SELECT COUNT(*) AS total FROM resources").fetch_one(pool).await?.try_get::<i64, _>("total")?
        });
        Ok(u64::try_from(total).unwrap_or(0))
    }

    /// Writes resources in one transaction: all are stored, or none is.
    ///
    /// Each resource must have an id. A resource that already exists gets the next version;
    /// the previous one stays in the version history. `meta.versionId` and `meta.lastUpdated`
    /// are set by the store.
    pub async fn write_all(&self, resources: Vec<Resource>) -> Result<Vec<WriteOutcome>> {
        let unit = WriteUnit {
            records: resources,
            ..WriteUnit::default()
        };
        let mut results = self.write_units(vec![unit]).await?;
        match results.pop() {
            Some(result) => result.map(|done| done.records),
            None => Err(StoreError::Corrupt("a write lost its unit".into())),
        }
    }

    /// Writes several units in one transaction (one commit, one disk sync), each unit whole or
    /// not at all: a unit that breaks a rule is rolled back to its savepoint and answered with
    /// its error, and the others are stored. The outer error is the commit itself failing, when
    /// nothing is stored.
    ///
    /// In each unit, `records` are written as by [`Store::write_all`]; `first_copy` resources
    /// are written only if none of that type and id is stored yet (provenance, original
    /// messages: the first receipt stands); `events` go to the outbox. If no record in a unit
    /// changed (a resent message), nothing of it is written at all: no provenance, no event.
    pub async fn write_units(&self, units: Vec<WriteUnit>) -> Result<Vec<Result<UnitOutcome>>> {
        self.write_units_audited(units, &[]).await
    }

    /// Like [`Store::write_units`], with the audit ledger's rows for these units inserted in
    /// the same transaction: the records and their audit entries commit together, with one
    /// disk sync, or neither does. (A unit refused on its own still has its entry; the caller
    /// records that it failed.)
    pub async fn write_units_audited(
        &self,
        units: Vec<WriteUnit>,
        audit: &[LedgerRow],
    ) -> Result<Vec<Result<UnitOutcome>>> {
        let now = Utc::now().timestamp_millis();
        let postgres = self.kind() == BackendKind::Postgres;
        // SQLite: take the write lock at the start (BEGIN IMMEDIATE), so that concurrent
        // writers queue on the busy timeout instead of failing when a read lock is upgraded.
        let begin = if postgres { "BEGIN" } else { "BEGIN IMMEDIATE" };
        on_writer!(self, pool => {
            // The fast path: the whole group in a few multi-row statements. (No savepoint
            // around it: SQLite would journal every page it touches a second time.)
            let mut tx = pool.begin_with(begin).await?;
            tx.insert_ledger_rows(audit).await.map_err(StoreError::Ledger)?;
            match write_group(&mut tx, postgres, now, &units).await {
                Ok(outcomes) => {
                    tx.commit().await?;
                    return Ok(outcomes.into_iter().map(Ok).collect());
                }
                // Only a broken rule (one Patient per NHS number) in a group of several is
                // worth the slow path: it finds the unit at fault, in a new transaction, each
                // unit behind a savepoint. Anything else fails the commit.
                Err(StoreError::Conflict(_)) if units.len() > 1 => tx.rollback().await?,
                Err(err) => return Err(err),
            }
            let mut tx = pool.begin_with(begin).await?;
            tx.insert_ledger_rows(audit).await.map_err(StoreError::Ledger)?;
            let mut results = Vec::with_capacity(units.len());
            for unit in &units {
                let mut savepoint = sqlx::Acquire::begin(&mut tx).await?;
                let written = write_group(&mut savepoint, postgres, now, std::slice::from_ref(unit)).await;
                let result = match written {
                    Ok(mut outcomes) => {
                        savepoint.commit().await?;
                        outcomes.pop().ok_or_else(|| StoreError::Corrupt("a write lost its unit".into()))
                    }
                    Err(err) => {
                        savepoint.rollback().await?;
                        Err(err)
                    }
                };
                results.push(result);
            }
            tx.commit().await?;
            Ok(results)
        })
    }

    /// The Patients here that hold any of these NHS numbers: `(number, Patient id)` pairs, in
    /// one query however many numbers are asked about.
    pub async fn patients_holding(&self, numbers: &[String]) -> Result<Vec<(String, String)>> {
        let mut found = Vec::new();
        for chunk in numbers.chunks(500) {
            let mut sql = self.sql();
            sql.push("SELECT code, id FROM resource_tokens WHERE resource_type = 'Patient' AND kind = 'identifier' AND system = ");
            sql.bind(Arg::text(kinfold_fhir::NHS_NUMBER_SYSTEM));
            sql.push(" AND code IN (");
            for (n, number) in chunk.iter().enumerate() {
                if n > 0 {
                    sql.push(", ");
                }
                sql.bind(Arg::text(number));
            }
            sql.push(")");
            let rows: Vec<(String, String)> = on_pool!(self, pool => bound!(sql)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| Ok((row.try_get("code")?, row.try_get("id")?)))
                .collect::<Result<_>>()?);
            found.extend(rows);
        }
        Ok(found)
    }

    /// Kinfold's opaque person id for an NHS number, created on first sight.
    pub async fn person_id_for(&self, nhs_number: &NhsNumber) -> Result<String> {
        Ok(self.link_person(nhs_number).await?.0)
    }

    /// Like [`Store::person_id_for`], and says whether this call created the link (an
    /// identity-link change, which belongs in the audit ledger).
    pub async fn link_person(&self, nhs_number: &NhsNumber) -> Result<(String, bool)> {
        let mut insert = self.sql();
        insert.push("INSERT INTO person_index (person_id, nhs_number, created) VALUES (");
        insert.bind(Arg::text(&uuid::Uuid::new_v4().to_string()));
        insert.push(", ");
        insert.bind(Arg::text(nhs_number.as_str()));
        insert.push(", ");
        insert.bind(Arg::Int(Utc::now().timestamp_millis()));
        insert.push(") ON CONFLICT (nhs_number) DO NOTHING");
        let mut select = self.sql();
        select.push("SELECT person_id FROM person_index WHERE nhs_number = ");
        select.bind(Arg::text(nhs_number.as_str()));
        let (id, created) = on_writer!(self, pool => {
            let created = bound!(insert).execute(pool).await?.rows_affected() == 1;
            let id = bound!(select).fetch_one(pool).await?.try_get::<String, _>("person_id")?;
            (id, created)
        });
        Ok((id, created))
    }

    /// [`Store::link_person`] for many NHS numbers at once, in one transaction (one disk sync
    /// however many): each number's person id, created where there was none.
    pub async fn link_persons(
        &self,
        numbers: &[NhsNumber],
    ) -> Result<std::collections::HashMap<String, String>> {
        let mut found = std::collections::HashMap::with_capacity(numbers.len());
        if numbers.is_empty() {
            return Ok(found);
        }
        let now = Utc::now().timestamp_millis();
        let mut statements = Vec::new();
        for chunk in numbers.chunks(200) {
            let mut insert = self.sql();
            insert.push("INSERT INTO person_index (person_id, nhs_number, created) VALUES ");
            for (n, number) in chunk.iter().enumerate() {
                insert.push(if n == 0 { "(" } else { ", (" });
                insert.bind(Arg::text(&uuid::Uuid::new_v4().to_string()));
                insert.push(", ");
                insert.bind(Arg::text(number.as_str()));
                insert.push(", ");
                insert.bind(Arg::Int(now));
                insert.push(")");
            }
            insert.push(" ON CONFLICT (nhs_number) DO NOTHING");
            let mut select = self.sql();
            select.push("SELECT nhs_number, person_id FROM person_index WHERE nhs_number IN (");
            for (n, number) in chunk.iter().enumerate() {
                if n > 0 {
                    select.push(", ");
                }
                select.bind(Arg::text(number.as_str()));
            }
            select.push(")");
            statements.push((insert, select));
        }
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            for (insert, select) in &statements {
                bound!(insert).execute(&mut *tx).await?;
                for row in bound!(select).fetch_all(&mut *tx).await? {
                    found.insert(row.try_get("nhs_number")?, row.try_get("person_id")?);
                }
            }
            tx.commit().await?;
        });
        Ok(found)
    }

    /// The NHS number behind one of Kinfold's person ids.
    pub async fn nhs_number_of(&self, person_id: &str) -> Result<Option<NhsNumber>> {
        let mut select = self.sql();
        select.push("SELECT nhs_number FROM person_index WHERE person_id = ");
        select.bind(Arg::text(person_id));
        let found: Option<String> = on_pool!(self, pool => {
            bound!(select).fetch_optional(pool).await?.map(|r| r.try_get("nhs_number")).transpose()?
        });
        found
            .map(|n| {
                n.parse().map_err(|_| {
                    StoreError::Corrupt("person_index holds an invalid NHS number".into())
                })
            })
            .transpose()
    }
}

/// Writes a group of units inside a transaction (or savepoint): the current version of every
/// record it touches read in one query, then `batch`'s multi-row statements.
async fn write_group<'c, DB>(
    tx: &mut sqlx::Transaction<'c, DB>,
    postgres: bool,
    now: i64,
    units: &[WriteUnit],
) -> Result<Vec<UnitOutcome>>
where
    DB: sqlx::Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'a> &'a str: sqlx::ColumnIndex<DB::Row>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: for<'q> sqlx::Encode<'q, DB> + for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    String: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
{
    let keys = batch::keys(units)?;
    let mut current = batch::Current::new();
    for query in batch::current_queries(postgres, &keys) {
        for row in bound!(query).fetch_all(&mut **tx).await? {
            let (key, value) = batch::current_row(&row)?;
            current.insert(key, value);
        }
    }
    let planned = batch::plan(postgres, now, units, current)?;
    for statement in &planned.statements {
        bound!(statement)
            .execute(&mut **tx)
            .await
            .map_err(conflict_or_failure)?;
    }
    Ok(planned.outcomes)
}

/// Whether a resource says the same as a stored one, its version and time aside.
pub(crate) fn same_content(resource: &Resource, stored: &str) -> bool {
    let Ok(mut stored) = serde_json::from_str::<serde_json::Value>(stored) else {
        return false;
    };
    let Ok(mut new) = serde_json::to_value(resource) else {
        return false;
    };
    for value in [&mut stored, &mut new] {
        if let Some(object) = value.as_object_mut() {
            let empty = object
                .get_mut("meta")
                .and_then(serde_json::Value::as_object_mut)
                .map(|meta| {
                    meta.remove("versionId");
                    meta.remove("lastUpdated");
                    meta.is_empty()
                });
            if empty == Some(true) {
                object.remove("meta");
            }
        }
    }
    stored == new
}

/// A unique-index violation during a write is a conflict the sender can act on; anything else
/// is a database failure.
pub(crate) fn conflict_or_failure(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(
            "a record in this write conflicts with one already stored (another Patient here has this NHS number, or the same record was written at the same moment)".into(),
        ),
        _ => StoreError::Database(err),
    }
}

fn stored<R: Row>(row: &R) -> Result<StoredResource>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(StoredResource {
        resource_type: row.try_get("resource_type")?,
        id: row.try_get("id")?,
        version_id: row.try_get("version_id")?,
        last_updated: row.try_get("last_updated")?,
        json: row.try_get("content")?,
    })
}

/// Creates a PostgreSQL database, connecting to `admin_url` without touching its schema
/// (for tests and first-time set-up). The name must be a plain identifier.
pub async fn create_postgres_database(admin_url: &str, name: &str) -> Result<()> {
    admin_statement(
        admin_url,
        format!("CREATE DATABASE {}", plain_identifier(name)?),
    )
    .await
}

/// Whether a connection failed because its database does not exist (SQLSTATE 3D000).
fn is_missing_database(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "3D000")
}

/// Creates the database a URL names, through the server's `postgres` database with the same
/// role; if the role may not, an error naming the database and the command that creates it.
async fn create_missing_database(options: &PgConnectOptions) -> Result<()> {
    use sqlx::Connection;
    let database = options.get_database().unwrap_or_default().to_owned();
    let (host, port, role) = (
        options.get_host().to_owned(),
        options.get_port(),
        options.get_username().to_owned(),
    );
    let missing = |why: String| {
        StoreError::MissingDatabase(Box::new(MissingDatabase {
            database: database.clone(),
            host: host.clone(),
            port,
            role: role.clone(),
            why,
        }))
    };
    let name = plain_identifier(&database)
        .map_err(|_| missing("its name is not a plain lower-case identifier".into()))?;
    let mut admin = sqlx::PgConnection::connect_with(&options.clone().database("postgres"))
        .await
        .map_err(|e| missing(format!("the postgres database could not be reached: {e}")))?;
    let created = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await;
    let _ = admin.close().await;
    match created {
        Ok(_) => {
            tracing::info!(database = %name, "created the database (it did not exist)");
            Ok(())
        }
        // Another service created it at the same moment: fine.
        Err(e)
            if e.as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "42P04") =>
        {
            Ok(())
        }
        Err(e) => Err(missing(
            e.as_database_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_owned()),
        )),
    }
}

/// Drops a PostgreSQL database made by [`create_postgres_database`].
pub async fn drop_postgres_database(admin_url: &str, name: &str) -> Result<()> {
    admin_statement(
        admin_url,
        format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            plain_identifier(name)?
        ),
    )
    .await
}

async fn admin_statement(admin_url: &str, statement: String) -> Result<()> {
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(&mut connection)
        .await?;
    connection.close().await?;
    Ok(())
}

/// Database names cannot be bound parameters, so they are checked instead.
fn plain_identifier(name: &str) -> Result<&str> {
    let plain = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if plain {
        Ok(name)
    } else {
        Err(StoreError::Corrupt(format!(
            "'{name}' is not a plain database name"
        )))
    }
}
