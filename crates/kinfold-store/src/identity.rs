//! The gateway's identity and family state (`kinfold-identity` decides; this keeps): one JSON
//! body per `(kind, key)`, loaded whole at start and changed a batch at a time, with how far
//! the received events have been read, in one transaction.

use sqlx::Row;

use crate::ledger::InsertLedgerRows;
use crate::sql::Arg;
use crate::{Backend, Result, Store};

/// One piece of identity state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRow {
    /// What it is (`record`, `person`, `edge`, `review`, `refusal`).
    pub kind: String,
    /// Its key within the kind.
    pub key: String,
    /// Its JSON body.
    pub body: String,
}

/// The kind that keeps the events cursor.
const CURSOR: &str = "cursor";
/// The kind that counts the saves: every gateway on the database bumps it with each save and
/// checks it before it answers, so that two gateways keep one state.
const GENERATION: &str = "generation";

impl Store {
    /// Every piece of identity state (but the cursor), and the position of the last received
    /// event already read (0 when none).
    pub async fn identity_load(&self) -> Result<(Vec<IdentityRow>, i64)> {
        let mut sql = self.sql();
        sql.push("SELECT kind, key, body FROM identity_state ORDER BY kind, key");
        let rows: Vec<IdentityRow> = on_pool!(self, pool => bound!(sql)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| Ok(IdentityRow {
                kind: row.try_get("kind")?,
                key: row.try_get("key")?,
                body: row.try_get("body")?,
            }))
            .collect::<Result<_>>()?);
        let mut cursor = 0;
        let mut state = Vec::with_capacity(rows.len());
        for row in rows {
            if row.kind == GENERATION {
                continue;
            }
            if row.kind == CURSOR {
                cursor = row.body.parse().map_err(|_| {
                    crate::StoreError::Corrupt("the identity cursor is not a number".into())
                })?;
            } else {
                state.push(row);
            }
        }
        Ok((state, cursor))
    }

    /// How many times the state has been saved (0 before the first save). Read it before
    /// [`identity_load`](Self::identity_load): a save between the two only makes the state
    /// look older than it is, and it is loaded again.
    pub async fn identity_generation(&self) -> Result<i64> {
        let mut sql = self.sql();
        sql.push("SELECT body FROM identity_state WHERE kind = ");
        sql.bind(Arg::text(GENERATION));
        sql.push(" AND key = 'state'");
        let body: Option<String> = on_pool!(self, pool => bound!(sql)
            .fetch_optional(pool)
            .await?
            .map(|row| row.try_get::<String, _>("body"))
            .transpose()?);
        body.map_or(Ok(0), |b| {
            b.parse().map_err(|_| {
                crate::StoreError::Corrupt("the identity generation is not a number".into())
            })
        })
    }

    /// Writes (inserts or replaces) pieces of state and, if given, the events cursor, all in
    /// one transaction. A piece given more than once is written as it was given last.
    pub async fn identity_save(&self, rows: &[IdentityRow], cursor: Option<i64>) -> Result<()> {
        self.identity_save_audited(rows, cursor, &[]).await
    }

    /// [`identity_save`](Self::identity_save) with the ledger rows that record the change, in
    /// the same transaction (see `kinfold_audit::Ledger::record_within`): both commit, with
    /// one disk sync, or neither does. Rows the ledger could not insert fail as
    /// [`StoreError::Ledger`](crate::StoreError::Ledger).
    pub async fn identity_save_audited(
        &self,
        rows: &[IdentityRow],
        cursor: Option<i64>,
        audit: &[crate::LedgerRow],
    ) -> Result<()> {
        let current = self.identity_generation().await?;
        self.identity_save_if(rows, cursor, audit, current)
            .await
            .map(|_| ())
    }

    /// [`identity_save_audited`](Self::identity_save_audited), only if the state is still at
    /// generation `expected` (no other gateway has saved since it was read); it is then at the
    /// generation returned. Otherwise nothing is written and the answer is
    /// [`StoreError::Conflict`](crate::StoreError::Conflict): load the state again.
    pub async fn identity_save_if(
        &self,
        rows: &[IdentityRow],
        cursor: Option<i64>,
        audit: &[crate::LedgerRow],
        expected: i64,
    ) -> Result<i64> {
        let mut bump = self.sql();
        if expected == 0 {
            bump.push("INSERT INTO identity_state (kind, key, body, updated) VALUES (");
            bump.bind(Arg::text(GENERATION));
            bump.push(", 'state', '1', ");
            bump.bind(Arg::Int(chrono::Utc::now().timestamp_millis()));
            bump.push(") ON CONFLICT (kind, key) DO NOTHING");
        } else {
            bump.push("UPDATE identity_state SET body = ");
            bump.bind(Arg::text(&(expected + 1).to_string()));
            bump.push(" WHERE kind = ");
            bump.bind(Arg::text(GENERATION));
            bump.push(" AND key = 'state' AND body = ");
            bump.bind(Arg::text(&expected.to_string()));
        }
        let now = chrono::Utc::now().timestamp_millis();
        let cursor_row = cursor.map(|seq| IdentityRow {
            kind: CURSOR.into(),
            key: "events".into(),
            body: seq.to_string(),
        });
        // One row per (kind, key), the last given: PostgreSQL refuses an upsert that touches
        // a row twice, and the last is the state to keep.
        let mut last: std::collections::HashMap<(&str, &str), usize> = Default::default();
        for (n, row) in rows.iter().enumerate() {
            last.insert((&row.kind, &row.key), n);
        }
        let all: Vec<&IdentityRow> = rows
            .iter()
            .enumerate()
            .filter(|(n, row)| last.get(&(row.kind.as_str(), row.key.as_str())) == Some(n))
            .map(|(_, row)| row)
            .chain(cursor_row.as_ref())
            .collect();
        if all.is_empty() && audit.is_empty() {
            return Ok(expected);
        }
        let mut statements = Vec::new();
        for chunk in all.chunks(200) {
            let mut sql = self.sql();
            sql.push("INSERT INTO identity_state (kind, key, body, updated) VALUES ");
            for (n, row) in chunk.iter().enumerate() {
                sql.push(if n == 0 { "(" } else { ", (" });
                sql.bind(Arg::text(&row.kind));
                sql.push(", ");
                sql.bind(Arg::text(&row.key));
                sql.push(", ");
                sql.bind(Arg::text(&row.body));
                sql.push(", ");
                sql.bind(Arg::Int(now));
                sql.push(")");
            }
            sql.push(
                " ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body, updated = excluded.updated",
            );
            statements.push(sql);
        }
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            if bound!(bump).execute(&mut *tx).await?.rows_affected() != 1 {
                tx.rollback().await?;
                return Err(crate::StoreError::Conflict(
                    "the identity state was changed by another gateway".into(),
                ));
            }
            tx.insert_ledger_rows(audit).await.map_err(crate::StoreError::Ledger)?;
            for sql in &statements {
                bound!(sql).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(expected + 1)
    }
}
