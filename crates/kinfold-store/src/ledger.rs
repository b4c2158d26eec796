//! Storage of the audit ledger: entries and signed tree heads.

use sqlx::Row;

use crate::sql::Arg;
use crate::{Backend, Result, Store};

/// One stored ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    /// Position in the log, from 0.
    pub seq: i64,
    /// When appended, milliseconds since the Unix epoch.
    pub recorded: i64,
    /// The Kinfold person the event was about.
    pub patient: Option<String>,
    /// Who acted (the token subject).
    pub agent: String,
    /// The leaf hash, hex, as computed at append time.
    pub leaf_hash: String,
    /// The canonical audit record.
    pub record: String,
}

/// One stored signed tree head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeHeadRow {
    /// Entries covered.
    pub tree_size: i64,
    /// When signed, milliseconds since the Unix epoch.
    pub recorded: i64,
    /// Root hash, base64.
    pub root_hash: String,
    /// Ed25519 signature, base64.
    pub signature: String,
}

/// Filters for reading ledger entries back.
#[derive(Debug, Clone, Default)]
pub struct LedgerQuery {
    /// Only entries about this person.
    pub patient: Option<String>,
    /// Only entries by this agent.
    pub agent: Option<String>,
    /// Recorded at or after (ms).
    pub from: Option<i64>,
    /// Recorded before (ms).
    pub until: Option<i64>,
    /// Only entries before this position (for paging newest first).
    pub before: Option<i64>,
    /// At most this many, newest first.
    pub limit: i64,
}

/// `WHERE …` for a ledger query's patient, agent and time filters.
fn ledger_filters(sql: &mut crate::sql::Sql, query: &LedgerQuery) {
    sql.push(" WHERE 1 = 1");
    if let Some(patient) = &query.patient {
        sql.push(" AND patient = ");
        sql.bind(Arg::text(patient));
    }
    if let Some(agent) = &query.agent {
        sql.push(" AND agent = ");
        sql.bind(Arg::text(agent));
    }
    if let Some(from) = query.from {
        sql.push(" AND recorded >= ");
        sql.bind(Arg::Int(from));
    }
    if let Some(until) = query.until {
        sql.push(" AND recorded < ");
        sql.bind(Arg::Int(until));
    }
}

fn entry<R: Row>(row: &R) -> Result<LedgerRow>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database>,
{
    Ok(LedgerRow {
        seq: row.try_get("seq")?,
        recorded: row.try_get("recorded")?,
        patient: row.try_get("patient")?,
        agent: row.try_get("agent")?,
        leaf_hash: row.try_get("leaf_hash")?,
        record: row.try_get("record")?,
    })
}

fn head<R: Row>(row: &R) -> Result<TreeHeadRow>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(TreeHeadRow {
        tree_size: row.try_get("tree_size")?,
        recorded: row.try_get("recorded")?,
        root_hash: row.try_get("root_hash")?,
        signature: row.try_get("signature")?,
    })
}

/// Rows per `INSERT` statement on SQLite (six parameters each).
const SQLITE_CHUNK: usize = 32;

/// The `INSERT` for `rows` ledger rows (1 to [`SQLITE_CHUNK`]), built once per size.
fn sqlite_insert(rows: usize) -> &'static str {
    static STATEMENTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let statements = STATEMENTS.get_or_init(|| {
        (0..=SQLITE_CHUNK)
            .map(|n| {
                format!(
                    "INSERT INTO ledger_entries (seq, recorded, patient, agent, leaf_hash, record) VALUES {}",
                    vec!["(?, ?, ?, ?, ?, ?)"; n].join(", ")
                )
            })
            .collect()
    });
    &statements[rows.min(SQLITE_CHUNK)]
}

/// Inserts ledger rows on a connection, inside whatever transaction it is in, the fastest way
/// its backend has: the running ledger's own appends ([`Store::ledger_append`]) and an
/// adapter's ingest, whose entries commit with its records
/// ([`Store::write_units_audited`](crate::Store::write_units_audited)).
pub(crate) trait InsertLedgerRows {
    fn insert_ledger_rows(
        &mut self,
        rows: &[LedgerRow],
    ) -> impl std::future::Future<Output = Result<(), sqlx::Error>> + Send;
}

impl InsertLedgerRows for sqlx::SqliteConnection {
    /// Multi-row `VALUES` in chunks of a fixed size, so that SQLite compiles each statement
    /// once (sqlx caches it) and a group costs a few calls to the worker thread. Measured
    /// against unpacking one JSON argument with `json_each`, this halved the cost of a group.
    async fn insert_ledger_rows(&mut self, rows: &[LedgerRow]) -> Result<(), sqlx::Error> {
        for chunk in rows.chunks(SQLITE_CHUNK) {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sqlite_insert(chunk.len())));
            for row in chunk {
                query = query
                    .bind(row.seq)
                    .bind(row.recorded)
                    .bind(row.patient.as_deref())
                    .bind(row.agent.as_str())
                    .bind(row.leaf_hash.as_str())
                    .bind(row.record.as_str());
            }
            query.execute(&mut *self).await?;
        }
        Ok(())
    }
}

impl InsertLedgerRows for sqlx::PgConnection {
    /// One `UNNEST` of six arrays, however many rows.
    async fn insert_ledger_rows(&mut self, rows: &[LedgerRow]) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO ledger_entries (seq, recorded, patient, agent, leaf_hash, record) \
             SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[])",
        )
        .bind(rows.iter().map(|r| r.seq).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.recorded).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.patient.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.agent.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.leaf_hash.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.record.as_str()).collect::<Vec<_>>())
        .execute(&mut *self)
        .await?;
        Ok(())
    }
}

/// Ledger entries framed as one text, as SQLite's `ledger_after` query writes them. Each entry
/// is a header of six numbers, each followed by a space (seq, recorded, then the byte lengths
/// of patient (-1 for none), agent, leaf hash and record), then those four texts.
struct Framed<'a>(&'a str);

impl Framed<'_> {
    fn rows(mut self) -> Result<Vec<LedgerRow>> {
        let mut rows = Vec::new();
        while !self.0.is_empty() {
            let seq = self.number()?;
            let recorded = self.number()?;
            let lengths = [
                self.number()?,
                self.number()?,
                self.number()?,
                self.number()?,
            ];
            let patient = (lengths[0] >= 0)
                .then(|| self.text(lengths[0]))
                .transpose()?;
            rows.push(LedgerRow {
                seq,
                recorded,
                patient,
                agent: self.text(lengths[1])?,
                leaf_hash: self.text(lengths[2])?,
                record: self.text(lengths[3])?,
            });
        }
        Ok(rows)
    }

    fn number(&mut self) -> Result<i64> {
        let (number, rest) = self.0.split_once(' ').ok_or_else(Self::corrupt)?;
        self.0 = rest;
        number.parse().map_err(|_| Self::corrupt())
    }

    fn text(&mut self, length: i64) -> Result<String> {
        let length = usize::try_from(length).map_err(|_| Self::corrupt())?;
        let text = self.0.get(..length).ok_or_else(Self::corrupt)?;
        self.0 = &self.0[length..];
        Ok(text.to_owned())
    }

    fn corrupt() -> crate::StoreError {
        crate::StoreError::Corrupt("a ledger entry cannot be read back".into())
    }
}

const ENTRY_COLUMNS: &str =
    "SELECT seq, recorded, patient, agent, leaf_hash, record FROM ledger_entries";

impl Store {
    /// Appends entries in one transaction: all are durable when this returns, or none is.
    /// The same transaction deletes the inbox entries `from_inbox` (those the rows came from).
    pub async fn ledger_append(&self, rows: &[LedgerRow], from_inbox: &[i64]) -> Result<()> {
        match &self.backend {
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                // A position already taken (another gateway on this database appended first)
                // is a conflict: the ledger reads what it missed and numbers its entries again.
                tx.insert_ledger_rows(rows)
                    .await
                    .map_err(crate::conflict_or_failure)?;
                if !from_inbox.is_empty() {
                    sqlx::query("DELETE FROM ledger_inbox WHERE id = ANY($1)")
                        .bind(from_inbox)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }
            Backend::Sqlite(_, pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                tx.insert_ledger_rows(rows)
                    .await
                    .map_err(crate::conflict_or_failure)?;
                for id in from_inbox {
                    sqlx::query("DELETE FROM ledger_inbox WHERE id = ?1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    }

    /// Up to `limit` entries after position `after` (from the first if `None`), in order: a
    /// verifier reads the whole log this way, one batch at a time.
    ///
    /// On SQLite the batch comes back as one framed text (see [`Framed`]) rather than a row
    /// per entry: sqlx hands each row from SQLite's thread to the caller's task, and for a
    /// million entries those hand-offs cost more than the reading itself.
    pub async fn ledger_after(&self, after: Option<i64>, limit: i64) -> Result<Vec<LedgerRow>> {
        let after = after.unwrap_or(-1);
        match &self.backend {
            Backend::Sqlite(pool, _) => {
                // The row count in the text, not bound (see `Sql::count`).
                let framed: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT group_concat(\
                         seq || ' ' || recorded || ' ' || coalesce(octet_length(patient), -1) || ' ' || \
                         octet_length(agent) || ' ' || octet_length(leaf_hash) || ' ' || octet_length(record) || ' ' || \
                         coalesce(patient, '') || agent || leaf_hash || record, '') \
                     FROM (SELECT * FROM ledger_entries WHERE seq > ?1 ORDER BY seq LIMIT {limit})",
                )))
                .bind(after)
                .fetch_one(pool)
                .await?;
                // The subquery's order is the order SQLite concatenates in; sorting again (a
                // single pass over sorted rows) keeps that from being an assumption.
                let mut rows = Framed(framed.as_deref().unwrap_or_default()).rows()?;
                rows.sort_by_key(|row| row.seq);
                Ok(rows)
            }
            Backend::Postgres(pool) => {
                let mut sql = self.sql();
                sql.push(ENTRY_COLUMNS);
                sql.push(" WHERE seq > ");
                sql.bind(Arg::Int(after));
                sql.push(" ORDER BY seq LIMIT ");
                sql.count(limit);
                bound!(sql)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(entry)
                    .collect()
            }
        }
    }

    /// Entries with `start <= seq < end`, in order.
    pub async fn ledger_range(&self, start: i64, end: i64) -> Result<Vec<LedgerRow>> {
        let mut sql = self.sql();
        sql.push(ENTRY_COLUMNS);
        sql.push(" WHERE seq >= ");
        sql.bind(Arg::Int(start));
        sql.push(" AND seq < ");
        sql.bind(Arg::Int(end));
        sql.push(" ORDER BY seq");
        on_pool!(self, pool => bound!(sql).fetch_all(pool).await?.iter().map(entry).collect())
    }

    /// Entries from position `start` on, in order, read once no write is under way (on
    /// SQLite, through the writing connection): what a write that gave up half-way did or did
    /// not commit.
    pub async fn ledger_settled_from(&self, start: i64) -> Result<Vec<LedgerRow>> {
        let mut sql = self.sql();
        sql.push(ENTRY_COLUMNS);
        sql.push(" WHERE seq >= ");
        sql.bind(Arg::Int(start));
        sql.push(" ORDER BY seq");
        on_writer!(self, pool => bound!(sql).fetch_all(pool).await?.iter().map(entry).collect())
    }

    /// Entries matching a query, newest first.
    pub async fn ledger_search(&self, query: &LedgerQuery) -> Result<Vec<LedgerRow>> {
        let mut sql = self.sql();
        sql.push(ENTRY_COLUMNS);
        ledger_filters(&mut sql, query);
        if let Some(before) = query.before {
            sql.push(" AND seq < ");
            sql.bind(Arg::Int(before));
        }
        sql.push(" ORDER BY seq DESC LIMIT ");
        sql.count(query.limit.max(0));
        on_pool!(self, pool => bound!(sql).fetch_all(pool).await?.iter().map(entry).collect())
    }

    /// How many entries match a query's filters (its position and limit aside).
    pub async fn ledger_count(&self, query: &LedgerQuery) -> Result<u64> {
        let mut sql = self.sql();
        sql.push("SELECT COUNT(*) AS total FROM ledger_entries");
        ledger_filters(&mut sql, query);
        let total =
            on_pool!(self, pool => bound!(sql).fetch_one(pool).await?.try_get::<i64, _>("total")?);
        Ok(u64::try_from(total).unwrap_or(0))
    }

    /// Leaves an audit record (canonical JSON) for the running ledger to append: for a
    /// process that is not the ledger's writer. Durable when this returns.
    pub async fn ledger_inbox_put(&self, record: &str) -> Result<()> {
        let mut sql = self.sql();
        sql.push("INSERT INTO ledger_inbox (record) VALUES (");
        sql.bind(Arg::text(record));
        sql.push(")");
        on_writer!(self, pool => bound!(sql).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Up to `limit` records waiting in the inbox, oldest first, with their inbox ids.
    pub async fn ledger_inbox(&self, limit: i64) -> Result<Vec<(i64, String)>> {
        let mut sql = self.sql();
        sql.push("SELECT id, record FROM ledger_inbox ORDER BY id LIMIT ");
        sql.count(limit);
        on_pool!(self, pool => bound!(sql)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| Ok((row.try_get("id")?, row.try_get("record")?)))
            .collect())
    }

    /// Stores a signed tree head (idempotent for the same size).
    pub async fn ledger_put_head(&self, head: &TreeHeadRow) -> Result<()> {
        let mut sql = self.sql();
        sql.push(
            "INSERT INTO ledger_tree_heads (tree_size, recorded, root_hash, signature) VALUES (",
        );
        sql.bind(Arg::Int(head.tree_size));
        sql.push(", ");
        sql.bind(Arg::Int(head.recorded));
        sql.push(", ");
        sql.bind(Arg::text(&head.root_hash));
        sql.push(", ");
        sql.bind(Arg::text(&head.signature));
        sql.push(") ON CONFLICT (tree_size) DO NOTHING");
        on_writer!(self, pool => bound!(sql).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Every signed tree head, smallest first.
    pub async fn ledger_heads(&self) -> Result<Vec<TreeHeadRow>> {
        let sql = {
            let mut sql = self.sql();
            sql.push("SELECT tree_size, recorded, root_hash, signature FROM ledger_tree_heads ORDER BY tree_size");
            sql
        };
        on_pool!(self, pool => bound!(sql).fetch_all(pool).await?.iter().map(head).collect())
    }

    /// The largest signed tree head.
    pub async fn ledger_latest_head(&self) -> Result<Option<TreeHeadRow>> {
        let mut sql = self.sql();
        sql.push("SELECT tree_size, recorded, root_hash, signature FROM ledger_tree_heads ORDER BY tree_size DESC LIMIT 1");
        let rows: Vec<TreeHeadRow> = on_pool!(self, pool => bound!(sql).fetch_all(pool).await?.iter().map(head).collect::<Result<_>>()?);
        Ok(rows.into_iter().next())
    }

    /// Runs one statement against the store (tests and operators' tools only: e.g. simulating
    /// storage that refuses writes). Never called with request data.
    pub async fn execute_admin(&self, statement: &str) -> Result<()> {
        on_writer!(self, pool => sqlx::query(sqlx::AssertSqlSafe(statement.to_owned())).execute(pool).await.map(|_| ()))?;
        Ok(())
    }
}
