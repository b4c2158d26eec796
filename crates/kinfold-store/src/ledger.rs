//! Storage of the audit ledger: entries and signed tree heads.

use futures::TryStreamExt;
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
    /// At most this many, newest first.
    pub limit: i64,
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

const ENTRY_COLUMNS: &str =
    "SELECT seq, recorded, patient, agent, leaf_hash, record FROM ledger_entries";

impl Store {
    /// Appends entries in one transaction: all are durable when this returns, or none is.
    /// One statement carries the whole group: arrays on PostgreSQL, multi-row `VALUES` on SQLite.
    pub async fn ledger_append(&self, rows: &[LedgerRow]) -> Result<()> {
        match &self.backend {
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
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
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }
            Backend::Sqlite(pool) => {
                // The whole group as one JSON argument, unpacked by SQLite's json_each: binding
                // six arguments a row through sqlx cost more than the insert itself.
                // Serialised straight from borrowed tuples: no copy of any record text.
                let group: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        (
                            r.seq,
                            r.recorded,
                            &r.patient,
                            &r.agent,
                            &r.leaf_hash,
                            &r.record,
                        )
                    })
                    .collect();
                let group = serde_json::to_string(&group)
                    .map_err(|e| crate::StoreError::Corrupt(e.to_string()))?;
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                sqlx::query(
                    "INSERT INTO ledger_entries (seq, recorded, patient, agent, leaf_hash, record) \
                     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5 \
                     FROM json_each(?1) ORDER BY key",
                )
                .bind(group)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }
        }
    }

    /// Calls `visit` for every entry in sequence order, streaming (the log can be large).
    pub async fn ledger_for_each(
        &self,
        mut visit: impl FnMut(LedgerRow) -> Result<()>,
    ) -> Result<()> {
        let mut sql = self.sql();
        sql.push(ENTRY_COLUMNS);
        sql.push(" ORDER BY seq");
        on_pool!(self, pool => {
            let mut rows = bound!(sql).fetch(pool);
            while let Some(row) = rows.try_next().await? {
                visit(entry(&row)?)?;
            }
            Ok(())
        })
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

    /// Entries matching a query, newest first.
    pub async fn ledger_search(&self, query: &LedgerQuery) -> Result<Vec<LedgerRow>> {
        let mut sql = self.sql();
        sql.push(ENTRY_COLUMNS);
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
        sql.push(" ORDER BY seq DESC LIMIT ");
        sql.bind(Arg::Int(query.limit.max(0)));
        on_pool!(self, pool => bound!(sql).fetch_all(pool).await?.iter().map(entry).collect())
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
        on_pool!(self, pool => bound!(sql).execute(pool).await.map(|_| ()))?;
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
        on_pool!(self, pool => sqlx::query(sqlx::AssertSqlSafe(statement.to_owned())).execute(pool).await.map(|_| ()))?;
        Ok(())
    }
}
