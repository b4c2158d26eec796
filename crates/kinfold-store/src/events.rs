//! Events between the adapters and the gateway: an adapter's outbox (written with the records
//! by [`Store::write_units`], read and cleared here by its delivery task), and the gateway's
//! store of the events it has received.

use sqlx::Row;

use crate::sql::Arg;
use crate::{Backend, Result, Store};

/// An event waiting in an adapter's outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvent {
    /// Its position in the outbox.
    pub seq: i64,
    /// Its id.
    pub id: String,
    /// The event as JSON text.
    pub payload: String,
    /// How many deliveries have failed so far.
    pub attempts: i64,
}

/// An event the gateway has received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedEvent {
    /// Its position at the gateway, in order of arrival.
    pub seq: i64,
    /// The agency that sent it.
    pub agency: String,
    /// Its id at that agency.
    pub id: String,
    /// When it arrived, in milliseconds since the Unix epoch.
    pub received: i64,
    /// The event as JSON text.
    pub payload: String,
}

/// The SQLite writing connection while its commits do not wait for the disk. Unless it was
/// set back to waiting (`.1`), it is closed when dropped instead of going back to the pool,
/// so that no later write (a record, a ledger entry) can commit without its sync, even if
/// this write was abandoned half-way.
struct Unsynced(sqlx::pool::PoolConnection<sqlx::Sqlite>, bool);

impl Drop for Unsynced {
    fn drop(&mut self) {
        if !self.1 {
            self.0.close_on_drop();
        }
    }
}

impl Store {
    /// Up to `limit` outbox events due at `now` (milliseconds), oldest first.
    pub async fn outbox_due(&self, now: i64, limit: i64) -> Result<Vec<PendingEvent>> {
        let mut sql = self.sql();
        sql.push("SELECT seq, event_id, payload, attempts FROM outbox WHERE next_attempt <= ");
        sql.bind(Arg::Int(now));
        sql.push(" ORDER BY seq LIMIT ");
        sql.count(limit);
        on_pool!(self, pool => bound!(sql)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| Ok(PendingEvent {
                seq: row.try_get("seq")?,
                id: row.try_get("event_id")?,
                payload: row.try_get("payload")?,
                attempts: row.try_get("attempts")?,
            }))
            .collect())
    }

    /// How many events wait in the outbox, and the earliest time one is due.
    pub async fn outbox_status(&self) -> Result<(u64, Option<i64>)> {
        let sql = {
            let mut sql = self.sql();
            sql.push("SELECT COUNT(*) AS waiting, MIN(next_attempt) AS due FROM outbox");
            sql
        };
        let (waiting, due): (i64, Option<i64>) = on_pool!(self, pool => {
            let row = bound!(sql).fetch_one(pool).await?;
            (row.try_get("waiting")?, row.try_get("due")?)
        });
        Ok((u64::try_from(waiting).unwrap_or(0), due))
    }

    /// Removes delivered events, without waiting for the disk. Losing this in a power cut
    /// costs only a second delivery, which the gateway ignores (it keeps each event once by
    /// its id); waiting for the disk here cost the writer a sync per delivery, shared with
    /// every ingest. The next durable commit on the same log makes it durable as well (the
    /// log is written and synced in order).
    pub async fn outbox_delivered(&self, seqs: &[i64]) -> Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let mut sql = self.sql();
        sql.push("DELETE FROM outbox WHERE seq IN ");
        positions(&mut sql, seqs);
        match &self.backend {
            Backend::Sqlite(_, writer) => {
                let mut unsynced = Unsynced(writer.acquire().await?, false);
                sqlx::query("PRAGMA synchronous = NORMAL")
                    .execute(&mut *unsynced.0)
                    .await?;
                let deleted = bound!(sql).execute(&mut *unsynced.0).await;
                sqlx::query("PRAGMA synchronous = FULL")
                    .execute(&mut *unsynced.0)
                    .await?;
                unsynced.1 = true;
                deleted?;
            }
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SET LOCAL synchronous_commit = off")
                    .execute(&mut *tx)
                    .await?;
                bound!(sql).execute(&mut *tx).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Puts events back for a later attempt (at `next_attempt`, milliseconds), counting the
    /// failed one.
    pub async fn outbox_retry(&self, seqs: &[i64], next_attempt: i64) -> Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let mut sql = self.sql();
        sql.push("UPDATE outbox SET attempts = attempts + 1, next_attempt = ");
        sql.bind(Arg::Int(next_attempt));
        sql.push(" WHERE seq IN ");
        positions(&mut sql, seqs);
        on_writer!(self, pool => bound!(sql).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Keeps events received from an agency, each once (a redelivery is ignored). Returns how
    /// many were new.
    pub async fn events_receive(
        &self,
        agency: &str,
        events: &[(String, String)],
        received: i64,
    ) -> Result<u64> {
        if events.is_empty() {
            return Ok(0);
        }
        let mut sql = self.sql();
        sql.push("INSERT INTO received_events (agency, event_id, received, payload) VALUES ");
        for (n, (id, payload)) in events.iter().enumerate() {
            if n > 0 {
                sql.push(", ");
            }
            sql.push("(");
            sql.bind(Arg::text(agency));
            sql.push(", ");
            sql.bind(Arg::text(id));
            sql.push(", ");
            sql.bind(Arg::Int(received));
            sql.push(", ");
            sql.bind(Arg::text(payload));
            sql.push(")");
        }
        sql.push(" ON CONFLICT (agency, event_id) DO NOTHING");
        let inserted = on_writer!(self, pool => bound!(sql).execute(pool).await?.rows_affected());
        Ok(inserted)
    }

    /// How many received events come after `after`, counting at most `most` (an identity
    /// answer says how far behind the person index is). One index probe when there are none.
    pub async fn events_count_after(&self, after: i64, most: i64) -> Result<i64> {
        let mut sql = self.sql();
        sql.push("SELECT COUNT(*) AS n FROM (SELECT 1 FROM received_events WHERE seq > ");
        sql.bind(Arg::Int(after));
        sql.push(" LIMIT ");
        sql.count(most);
        sql.push(") AS pending");
        on_pool!(self, pool => Ok(bound!(sql).fetch_one(pool).await?.try_get("n")?))
    }

    /// Up to `limit` received events after position `after`, in order of arrival.
    pub async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<ReceivedEvent>> {
        let mut sql = self.sql();
        sql.push(
            "SELECT seq, agency, event_id, received, payload FROM received_events WHERE seq > ",
        );
        sql.bind(Arg::Int(after));
        sql.push(" ORDER BY seq LIMIT ");
        sql.count(limit);
        on_pool!(self, pool => bound!(sql)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| Ok(ReceivedEvent {
                seq: row.try_get("seq")?,
                agency: row.try_get("agency")?,
                id: row.try_get("event_id")?,
                received: row.try_get("received")?,
                payload: row.try_get("payload")?,
            }))
            .collect())
    }
}

/// `(?, ?, …)`: the outbox positions, bound.
fn positions(sql: &mut crate::sql::Sql, seqs: &[i64]) {
    sql.push("(");
    for (n, seq) in seqs.iter().enumerate() {
        if n > 0 {
            sql.push(", ");
        }
        sql.bind(Arg::Int(*seq));
    }
    sql.push(")");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writing connection's `synchronous` setting (2 is FULL).
    async fn writer_synchronous(store: &Store) -> i64 {
        let Backend::Sqlite(_, writer) = &store.backend else {
            unreachable!("a SQLite store");
        };
        let mut conn = writer.acquire().await.expect("the writer");
        sqlx::query("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .expect("read")
            .try_get(0)
            .expect("a number")
    }

    /// A SQLite store in a directory of its own (kept while the store is used).
    async fn sqlite_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open_sqlite(&dir.path().join("a.db"))
            .await
            .expect("store");
        (dir, store)
    }

    #[tokio::test]
    async fn a_delivery_leaves_the_writer_waiting_for_the_disk_again() {
        let (_dir, store) = sqlite_store().await;
        assert_eq!(writer_synchronous(&store).await, 2);
        let unit = crate::WriteUnit {
            events: vec![crate::OutboxEvent {
                id: "e1".into(),
                payload: "{}".into(),
            }],
            records: vec![
                kinfold_fhir::Resource::from_value(serde_json::json!({
                    "resourceType": "Patient", "id": "p1"
                }))
                .expect("a Patient"),
            ],
            first_copy: Vec::new(),
        };
        store.write_units(vec![unit]).await.expect("written");
        let due = store.outbox_due(i64::MAX, 10).await.expect("due");
        assert_eq!(due.len(), 1);
        store
            .outbox_delivered(&[due[0].seq])
            .await
            .expect("deleted");
        assert_eq!(store.outbox_status().await.expect("status").0, 0);
        assert_eq!(writer_synchronous(&store).await, 2);
    }

    #[tokio::test]
    async fn an_abandoned_unsynced_writer_is_closed_not_reused() {
        let (_dir, store) = sqlite_store().await;
        let Backend::Sqlite(_, writer) = &store.backend else {
            unreachable!("a SQLite store");
        };
        {
            let mut unsynced = Unsynced(writer.acquire().await.expect("the writer"), false);
            sqlx::query("PRAGMA synchronous = NORMAL")
                .execute(&mut *unsynced.0)
                .await
                .expect("set");
            // Dropped here without being set back, as an abandoned write would be.
        }
        assert_eq!(writer_synchronous(&store).await, 2);
    }
}
