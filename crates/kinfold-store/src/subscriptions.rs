//! FHIR Subscriptions of registered system clients (issue 27) and their numbered events: the
//! outbox a notification is put on in the transaction that makes it
//! (`Store::notify_save` and its siblings), delivered in order of number. A delivery is
//! claimed by moving its `next_attempt` on (compare-and-set), so two gateways on one database
//! never post the same event at once; a delivered event is kept for `$events` until the
//! subscription holds more than [`KEEP_EVENTS`].

use sqlx::Row;

use crate::ledger::InsertLedgerRows;
use crate::sql::Arg;
use crate::{Backend, Result, Store};

/// The delivered events a subscription keeps for `$events`.
pub const KEEP_EVENTS: i64 = 10_000;
/// The most subscriptions one client may hold.
pub const MAX_SUBSCRIPTIONS: i64 = 20;

/// One subscription as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubscription {
    /// Its id.
    pub id: String,
    /// The system client that made it.
    pub client_id: String,
    /// The organisation whose notifications it receives.
    pub owner_org: String,
    /// The rest-hook endpoint.
    pub endpoint: String,
    /// `active` or `off`.
    pub status: String,
    /// Seconds between heartbeats (0: none).
    pub heartbeat_seconds: i64,
    /// Events numbered so far.
    pub events_count: i64,
    /// When something was last delivered (milliseconds).
    pub last_sent: i64,
    /// When it was made.
    pub created: i64,
    /// The FHIR Subscription, as JSON.
    pub body: String,
}

/// A subscription's next event to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueEvent {
    /// Its number.
    pub number: i64,
    /// The notification's Task id.
    pub task_id: String,
    /// Attempts so far.
    pub attempts: i64,
    /// When it may be tried (milliseconds).
    pub next_attempt: i64,
    /// The Task, as JSON.
    pub task: String,
}

macro_rules! stored {
    ($row:expr) => {
        StoredSubscription {
            id: $row.try_get("id")?,
            client_id: $row.try_get("client_id")?,
            owner_org: $row.try_get("owner_org")?,
            endpoint: $row.try_get("endpoint")?,
            status: $row.try_get("status")?,
            heartbeat_seconds: $row.try_get("heartbeat_seconds")?,
            events_count: $row.try_get("events_count")?,
            last_sent: $row.try_get("last_sent")?,
            created: $row.try_get("created")?,
            body: $row.try_get("body")?,
        }
    };
}

const COLUMNS: &str = "id, client_id, owner_org, endpoint, status, heartbeat_seconds, events_count, last_sent, created, body";

impl Store {
    /// Keeps a new subscription with its ledger entry, unless its client already holds
    /// [`MAX_SUBSCRIPTIONS`] (answers whether it was kept).
    pub async fn subscription_add(
        &self,
        s: &StoredSubscription,
        audit: &[crate::LedgerRow],
    ) -> Result<bool> {
        let mut count = self.sql();
        count.push("SELECT COUNT(*) AS n FROM subscriptions WHERE client_id = ");
        count.bind(Arg::text(&s.client_id));
        let mut insert = self.sql();
        insert.push("INSERT INTO subscriptions (");
        insert.push(COLUMNS);
        insert.push(") VALUES (");
        for (i, arg) in [
            Arg::text(&s.id),
            Arg::text(&s.client_id),
            Arg::text(&s.owner_org),
            Arg::text(&s.endpoint),
            Arg::text(&s.status),
            Arg::Int(s.heartbeat_seconds),
            Arg::Int(s.events_count),
            Arg::Int(s.last_sent),
            Arg::Int(s.created),
            Arg::text(&s.body),
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                insert.push(", ");
            }
            insert.bind(arg);
        }
        insert.push(")");
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let held: i64 = bound!(count).fetch_one(&mut *tx).await?.try_get("n")?;
            if held >= MAX_SUBSCRIPTIONS {
                tx.rollback().await?;
                return Ok(false);
            }
            tx.insert_ledger_rows(audit).await.map_err(crate::StoreError::Ledger)?;
            bound!(insert).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(true)
    }

    /// One subscription.
    pub async fn subscription(&self, id: &str) -> Result<Option<StoredSubscription>> {
        let mut sql = self.sql();
        sql.push("SELECT ");
        sql.push(COLUMNS);
        sql.push(" FROM subscriptions WHERE id = ");
        sql.bind(Arg::text(id));
        on_pool!(self, pool => {
            match bound!(sql).fetch_optional(pool).await? {
                Some(row) => Ok(Some(stored!(row))),
                None => Ok(None),
            }
        })
    }

    /// Every active subscription.
    pub async fn subscriptions_active(&self) -> Result<Vec<StoredSubscription>> {
        let mut sql = self.sql();
        sql.push("SELECT ");
        sql.push(COLUMNS);
        sql.push(" FROM subscriptions WHERE status = 'active' ORDER BY id");
        on_pool!(self, pool => {
            let mut found = Vec::new();
            for row in bound!(sql).fetch_all(pool).await? {
                found.push(stored!(row));
            }
            Ok(found)
        })
    }

    /// A subscription's lowest undelivered event, with its Task.
    pub async fn subscription_next(&self, id: &str) -> Result<Option<DueEvent>> {
        let mut sql = self.sql();
        sql.push(
            "SELECT e.number, e.task_id, e.attempts, e.next_attempt, n.body FROM subscription_events e JOIN notifications n ON n.task_id = e.task_id WHERE e.subscription_id = ",
        );
        sql.bind(Arg::text(id));
        sql.push(" AND e.delivered = 0 ORDER BY e.number LIMIT 1");
        on_pool!(self, pool => {
            match bound!(sql).fetch_optional(pool).await? {
                Some(row) => Ok(Some(DueEvent {
                    number: row.try_get("number")?,
                    task_id: row.try_get("task_id")?,
                    attempts: row.try_get("attempts")?,
                    next_attempt: row.try_get("next_attempt")?,
                    task: row.try_get("body")?,
                })),
                None => Ok(None),
            }
        })
    }

    /// Claims an event for delivery until `until`, only if nobody moved its `next_attempt`
    /// from `was` meanwhile: answers whether this caller has it.
    pub async fn subscription_claim(
        &self,
        id: &str,
        number: i64,
        was: i64,
        until: i64,
    ) -> Result<bool> {
        let mut sql = self.sql();
        sql.push("UPDATE subscription_events SET next_attempt = ");
        sql.bind(Arg::Int(until));
        sql.push(" WHERE subscription_id = ");
        sql.bind(Arg::text(id));
        sql.push(" AND number = ");
        sql.bind(Arg::Int(number));
        sql.push(" AND delivered = 0 AND next_attempt = ");
        sql.bind(Arg::Int(was));
        on_writer!(self, pool => {
            Ok(bound!(sql).execute(pool).await?.rows_affected() == 1)
        })
    }

    /// Records a delivery: the event delivered at `at` (or, with `retry_at`, its attempt
    /// failed and it is tried again then), and the subscription's last sending; delivered
    /// events beyond [`KEEP_EVENTS`] are let go.
    pub async fn subscription_attempted(
        &self,
        id: &str,
        number: i64,
        at: i64,
        retry_at: Option<i64>,
    ) -> Result<()> {
        let mut event = self.sql();
        match retry_at {
            Some(retry) => {
                event.push(
                    "UPDATE subscription_events SET attempts = attempts + 1, next_attempt = ",
                );
                event.bind(Arg::Int(retry));
            }
            None => {
                event.push("UPDATE subscription_events SET attempts = attempts + 1, delivered = ");
                event.bind(Arg::Int(at.max(1)));
            }
        }
        event.push(" WHERE subscription_id = ");
        event.bind(Arg::text(id));
        event.push(" AND number = ");
        event.bind(Arg::Int(number));
        let mut sent = self.sql();
        sent.push("UPDATE subscriptions SET last_sent = ");
        sent.bind(Arg::Int(at));
        sent.push(" WHERE id = ");
        sent.bind(Arg::text(id));
        let mut prune = self.sql();
        prune.push("DELETE FROM subscription_events WHERE subscription_id = ");
        prune.bind(Arg::text(id));
        prune.push(" AND delivered > 0 AND number <= ");
        prune.bind(Arg::Int(number - KEEP_EVENTS));
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            bound!(event).execute(&mut *tx).await?;
            if retry_at.is_none() {
                bound!(sent).execute(&mut *tx).await?;
                bound!(prune).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Subscription events numbered and not yet delivered, for the metrics.
    pub async fn subscription_events_waiting(&self) -> Result<i64> {
        let mut sql = self.sql();
        sql.push("SELECT COUNT(*) AS n FROM subscription_events WHERE delivered = 0");
        on_pool!(self, pool => {
            Ok(bound!(sql).fetch_one(pool).await?.try_get("n")?)
        })
    }

    /// Records a heartbeat sent at `at`.
    pub async fn subscription_heartbeat(&self, id: &str, at: i64) -> Result<()> {
        let mut sent = self.sql();
        sent.push("UPDATE subscriptions SET last_sent = ");
        sent.bind(Arg::Int(at));
        sent.push(" WHERE id = ");
        sent.bind(Arg::text(id));
        on_writer!(self, pool => {
            bound!(sent).execute(pool).await?;
        });
        Ok(())
    }

    /// A subscription's events numbered from `since` to `until` (both included) that it still
    /// keeps, in order, at most `most`, each with its Task.
    pub async fn subscription_events(
        &self,
        id: &str,
        since: i64,
        until: i64,
        most: i64,
    ) -> Result<Vec<(i64, String)>> {
        let mut sql = self.sql();
        sql.push(
            "SELECT e.number, n.body FROM subscription_events e JOIN notifications n ON n.task_id = e.task_id WHERE e.subscription_id = ",
        );
        sql.bind(Arg::text(id));
        sql.push(" AND e.number >= ");
        sql.bind(Arg::Int(since));
        sql.push(" AND e.number <= ");
        sql.bind(Arg::Int(until));
        sql.push(" ORDER BY e.number LIMIT ");
        sql.count(most);
        on_pool!(self, pool => {
            let mut found = Vec::new();
            for row in bound!(sql).fetch_all(pool).await? {
                found.push((row.try_get("number")?, row.try_get("body")?));
            }
            Ok(found)
        })
    }
}
