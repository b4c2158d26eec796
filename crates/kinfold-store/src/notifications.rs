//! The gateway's notifications (issue 27): one FHIR `Task` (JSON) per recipient, with the
//! columns the inbox, the escalation and the report search by, and the cursor over the received
//! events that the notifications are made from. The cursor moves only in the transaction that
//! keeps what its events made (compare-and-set), so two gateways on one database never make an
//! event's notifications twice.

use sqlx::Row;

use crate::ledger::InsertLedgerRows;
use crate::sql::Arg;
use crate::{Backend, Result, Store};

/// `next_escalation` of a notification that will not escalate (acknowledged, or at the top).
pub const NEVER: i64 = i64::MAX;
/// The most notifications one inbox read returns.
pub const MAX_INBOX: i64 = 500;

/// One notification as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredNotification {
    /// The Task's id.
    pub id: String,
    /// The rule that made it (`child-attendance`).
    pub rule: String,
    /// The child it is about (a Kinfold person id).
    pub person: String,
    /// The owning organisation (ODS code).
    pub owner_org: String,
    /// The role addressed at that organisation (`gp`, `health-visitor`, …).
    pub owner_role: String,
    /// The named practitioner, or empty for the team.
    pub owner_name: String,
    /// `requested`, `received` or `completed`.
    pub status: String,
    /// 0: the recipient; 1: their team lead; 2: the area's safeguarding lead.
    pub level: i64,
    /// The acknowledgement deadline (milliseconds since the epoch).
    pub due: i64,
    /// When it next moves up unacknowledged ([`NEVER`]: it does not).
    pub next_escalation: i64,
    /// The received event that set it off (its position).
    pub event_seq: i64,
    /// When it was made, and last changed.
    pub created: i64,
    /// When it last changed.
    pub updated: i64,
    /// The FHIR Task, as JSON.
    pub body: String,
}

macro_rules! stored {
    ($row:expr) => {
        StoredNotification {
            id: $row.try_get("task_id")?,
            rule: $row.try_get("rule")?,
            person: $row.try_get("person")?,
            owner_org: $row.try_get("owner_org")?,
            owner_role: $row.try_get("owner_role")?,
            owner_name: $row.try_get("owner_name")?,
            status: $row.try_get("status")?,
            level: $row.try_get("level")?,
            due: $row.try_get("due")?,
            next_escalation: $row.try_get("next_escalation")?,
            event_seq: $row.try_get("event_seq")?,
            created: $row.try_get("created")?,
            updated: $row.try_get("updated")?,
            body: $row.try_get("body")?,
        }
    };
}

const COLUMNS: &str = "task_id, rule, person, owner_org, owner_role, owner_name, status, level, due, next_escalation, event_seq, created, updated, body";

/// A deadline watched until what it waits for happens: a custody transfer's completion (G7),
/// a strategy meeting's minutes (G10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// Its id (derived from the record watched).
    pub id: String,
    /// `custody-transfer` or `minutes`.
    pub kind: String,
    /// The child.
    pub person: String,
    /// The record watched (its URL at the agency).
    pub source: String,
    /// When it started (milliseconds).
    pub started: i64,
    /// When it is overdue (milliseconds).
    pub due: i64,
    /// What the notification needs (JSON: a meeting's chair).
    pub detail: String,
}

/// Which notifications an inbox read asks for.
#[derive(Debug, Clone, Default)]
pub struct InboxQuery<'a> {
    /// The owning organisation.
    pub org: &'a str,
    /// The role addressed.
    pub role: &'a str,
    /// Only those owned by this practitioner or by the team (none: all of the organisation's
    /// in the role).
    pub name: Option<&'a str>,
    /// Only those in these statuses (empty: all).
    pub statuses: &'a [&'a str],
    /// Only those about this person.
    pub person: Option<&'a str>,
}

impl Store {
    /// How far the notification work has read the received events (0: not at all).
    pub async fn notify_cursor(&self) -> Result<i64> {
        let mut sql = self.sql();
        sql.push("SELECT seq FROM notification_cursor WHERE name = 'events'");
        on_pool!(self, pool => {
            match bound!(sql).fetch_optional(pool).await? {
                Some(row) => Ok(row.try_get("seq")?),
                None => Ok(0),
            }
        })
    }

    /// Keeps the notifications made from the received events after `from` up to `to`, with
    /// their ledger entries, and moves the cursor there, in one transaction, only if the
    /// cursor is still at `from` (else [`crate::StoreError::Conflict`]: another gateway read
    /// them first). A notification already kept (same id) is left as it is.
    pub async fn notify_save(
        &self,
        from: i64,
        to: i64,
        notifications: &[StoredNotification],
        watches: &[Watch],
        finished: &[String],
        audit: &[crate::LedgerRow],
    ) -> Result<()> {
        let mut watch_sql = Vec::new();
        for watch in watches {
            let mut sql = self.sql();
            sql.push(
                "INSERT INTO watches (id, kind, person, source, started, due, detail, status) VALUES (",
            );
            sql.bind(Arg::text(&watch.id));
            sql.push(", ");
            sql.bind(Arg::text(&watch.kind));
            sql.push(", ");
            sql.bind(Arg::text(&watch.person));
            sql.push(", ");
            sql.bind(Arg::text(&watch.source));
            sql.push(", ");
            sql.bind(Arg::Int(watch.started));
            sql.push(", ");
            sql.bind(Arg::Int(watch.due));
            sql.push(", ");
            sql.bind(Arg::text(&watch.detail));
            sql.push(", 'waiting') ON CONFLICT (id) DO NOTHING");
            watch_sql.push(sql);
        }
        for id in finished {
            let mut sql = self.sql();
            sql.push("UPDATE watches SET status = 'done' WHERE status = 'waiting' AND id = ");
            sql.bind(Arg::text(id));
            watch_sql.push(sql);
        }
        let mut bump = self.sql();
        if from == 0 {
            bump.push("INSERT INTO notification_cursor (name, seq) VALUES ('events', ");
            bump.bind(Arg::Int(to));
            bump.push(") ON CONFLICT (name) DO NOTHING");
        } else {
            bump.push("UPDATE notification_cursor SET seq = ");
            bump.bind(Arg::Int(to));
            bump.push(" WHERE name = 'events' AND seq = ");
            bump.bind(Arg::Int(from));
        }
        let inserts: Vec<_> = notifications
            .iter()
            .map(|n| (self.insert_sql(n), self.enqueue_sql(n)))
            .collect();
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            if bound!(bump).execute(&mut *tx).await?.rows_affected() != 1 {
                tx.rollback().await?;
                return Err(crate::StoreError::Conflict(
                    "the notification cursor was moved by another gateway".into(),
                ));
            }
            tx.insert_ledger_rows(audit).await.map_err(crate::StoreError::Ledger)?;
            for (insert, [count, enqueue]) in &inserts {
                // A notification already kept is not offered to the subscriptions again.
                if bound!(insert).execute(&mut *tx).await?.rows_affected() == 1 {
                    bound!(count).execute(&mut *tx).await?;
                    bound!(enqueue).execute(&mut *tx).await?;
                }
            }
            for sql in &watch_sql {
                bound!(sql).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Watches still waiting at `now` past their deadline, oldest first.
    pub async fn watches_due(&self, now: i64, limit: i64) -> Result<Vec<Watch>> {
        let mut sql = self.sql();
        sql.push("SELECT id, kind, person, source, started, due, detail FROM watches WHERE status = 'waiting' AND due <= ");
        sql.bind(Arg::Int(now));
        sql.push(" ORDER BY due, id LIMIT ");
        sql.count(limit);
        on_pool!(self, pool => {
            let mut found = Vec::new();
            for row in bound!(sql).fetch_all(pool).await? {
                found.push(Watch {
                    id: row.try_get("id")?,
                    kind: row.try_get("kind")?,
                    person: row.try_get("person")?,
                    source: row.try_get("source")?,
                    started: row.try_get("started")?,
                    due: row.try_get("due")?,
                    detail: row.try_get("detail")?,
                });
            }
            Ok(found)
        })
    }

    /// Marks an overdue watch told, keeping its notifications and their ledger entries,
    /// in one transaction, only if it is still waiting (else
    /// [`crate::StoreError::Conflict`]: another gateway told them, or it completed).
    pub async fn watch_fire(
        &self,
        id: &str,
        notifications: &[StoredNotification],
        audit: &[crate::LedgerRow],
    ) -> Result<()> {
        let mut fire = self.sql();
        fire.push("UPDATE watches SET status = 'fired' WHERE status = 'waiting' AND id = ");
        fire.bind(Arg::text(id));
        let inserts: Vec<_> = notifications
            .iter()
            .map(|n| (self.insert_sql(n), self.enqueue_sql(n)))
            .collect();
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            if bound!(fire).execute(&mut *tx).await?.rows_affected() != 1 {
                tx.rollback().await?;
                return Err(crate::StoreError::Conflict("the transfer was told of or completed meanwhile".into()));
            }
            tx.insert_ledger_rows(audit).await.map_err(crate::StoreError::Ledger)?;
            for (insert, [count, enqueue]) in &inserts {
                if bound!(insert).execute(&mut *tx).await?.rows_affected() == 1 {
                    bound!(count).execute(&mut *tx).await?;
                    bound!(enqueue).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Keeps notifications made by something other than an event (a protected child's record
    /// read), with their ledger entries, in one transaction; one already kept is left as it is.
    pub async fn notifications_add(
        &self,
        notifications: &[StoredNotification],
        audit: &[crate::LedgerRow],
    ) -> Result<()> {
        let inserts: Vec<_> = notifications
            .iter()
            .map(|n| (self.insert_sql(n), self.enqueue_sql(n)))
            .collect();
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            tx.insert_ledger_rows(audit).await.map_err(crate::StoreError::Ledger)?;
            for (insert, [count, enqueue]) in &inserts {
                // A notification already kept is not offered to the subscriptions again.
                if bound!(insert).execute(&mut *tx).await?.rows_affected() == 1 {
                    bound!(count).execute(&mut *tx).await?;
                    bound!(enqueue).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The two statements that put a new notification on the outbox of every active
    /// subscription of its organisation, numbered: the count first (on PostgreSQL its row lock
    /// orders two gateways' transactions), then the event with the new number.
    fn enqueue_sql(&self, n: &StoredNotification) -> [crate::sql::Sql; 2] {
        let mut count = self.sql();
        count.push("UPDATE subscriptions SET events_count = events_count + 1 WHERE owner_org = ");
        count.bind(Arg::text(&n.owner_org));
        count.push(" AND status = 'active'");
        let mut enqueue = self.sql();
        enqueue.push(
            "INSERT INTO subscription_events (subscription_id, number, task_id, created, delivered, attempts, next_attempt) SELECT id, events_count, ",
        );
        enqueue.bind(Arg::text(&n.id));
        enqueue.push(", ");
        enqueue.bind(Arg::Int(n.created));
        enqueue.push(", 0, 0, 0 FROM subscriptions WHERE owner_org = ");
        enqueue.bind(Arg::text(&n.owner_org));
        enqueue.push(" AND status = 'active'");
        [count, enqueue]
    }

    fn insert_sql(&self, n: &StoredNotification) -> crate::sql::Sql {
        let mut sql = self.sql();
        sql.push("INSERT INTO notifications (");
        sql.push(COLUMNS);
        sql.push(") VALUES (");
        for (i, arg) in [
            Arg::text(&n.id),
            Arg::text(&n.rule),
            Arg::text(&n.person),
            Arg::text(&n.owner_org),
            Arg::text(&n.owner_role),
            Arg::text(&n.owner_name),
            Arg::text(&n.status),
            Arg::Int(n.level),
            Arg::Int(n.due),
            Arg::Int(n.next_escalation),
            Arg::Int(n.event_seq),
            Arg::Int(n.created),
            Arg::Int(n.updated),
            Arg::text(&n.body),
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(arg);
        }
        sql.push(") ON CONFLICT (task_id) DO NOTHING");
        sql
    }

    /// One notification.
    pub async fn notification(&self, id: &str) -> Result<Option<StoredNotification>> {
        let mut sql = self.sql();
        sql.push("SELECT ");
        sql.push(COLUMNS);
        sql.push(" FROM notifications WHERE task_id = ");
        sql.bind(Arg::text(id));
        on_pool!(self, pool => {
            match bound!(sql).fetch_optional(pool).await? {
                Some(row) => Ok(Some(stored!(row))),
                None => Ok(None),
            }
        })
    }

    /// An inbox: the notifications an organisation's professionals in a role own (a named
    /// practitioner's and the team's), most urgent first (earliest deadline), at most
    /// [`MAX_INBOX`]; and how many there are.
    pub async fn notifications_of(
        &self,
        query: &InboxQuery<'_>,
    ) -> Result<(Vec<StoredNotification>, i64)> {
        let filter = |sql: &mut crate::sql::Sql| {
            sql.push(" FROM notifications WHERE owner_org = ");
            sql.bind(Arg::text(query.org));
            sql.push(" AND owner_role = ");
            sql.bind(Arg::text(query.role));
            if let Some(name) = query.name {
                sql.push(" AND (owner_name = '' OR owner_name = ");
                sql.bind(Arg::text(name));
                sql.push(")");
            }
            if !query.statuses.is_empty() {
                sql.push(" AND status IN (");
                for (n, status) in query.statuses.iter().enumerate() {
                    if n > 0 {
                        sql.push(", ");
                    }
                    sql.bind(Arg::text(status));
                }
                sql.push(")");
            }
            if let Some(person) = query.person {
                sql.push(" AND person = ");
                sql.bind(Arg::text(person));
            }
        };
        let mut select = self.sql();
        select.push("SELECT ");
        select.push(COLUMNS);
        filter(&mut select);
        select.push(" ORDER BY due, task_id LIMIT ");
        select.count(MAX_INBOX);
        let mut count = self.sql();
        count.push("SELECT COUNT(*) AS n");
        filter(&mut count);
        on_pool!(self, pool => {
            let mut found = Vec::new();
            for row in bound!(select).fetch_all(pool).await? {
                found.push(stored!(row));
            }
            let total: i64 = bound!(count).fetch_one(pool).await?.try_get("n")?;
            Ok((found, total))
        })
    }

    /// Unacknowledged notifications by rule and team: `(rule, organisation, role, open,
    /// overdue at now)`, for the metrics.
    pub async fn notification_counts(
        &self,
        now: i64,
    ) -> Result<Vec<(String, String, String, i64, i64)>> {
        let mut sql = self.sql();
        sql.push("SELECT rule, owner_org, owner_role, COUNT(*) AS open, SUM(CASE WHEN due < ");
        sql.bind(Arg::Int(now));
        sql.push(
            " THEN 1 ELSE 0 END) AS overdue FROM notifications WHERE status = 'requested' GROUP BY rule, owner_org, owner_role ORDER BY rule, owner_org, owner_role",
        );
        on_pool!(self, pool => {
            let mut found = Vec::new();
            for row in bound!(sql).fetch_all(pool).await? {
                found.push((
                    row.try_get("rule")?,
                    row.try_get("owner_org")?,
                    row.try_get("owner_role")?,
                    row.try_get("open")?,
                    row.try_get("overdue")?,
                ));
            }
            Ok(found)
        })
    }

    /// Unacknowledged notifications whose escalation falls at or before `now`, oldest first.
    pub async fn notifications_to_escalate(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<StoredNotification>> {
        let mut sql = self.sql();
        sql.push("SELECT ");
        sql.push(COLUMNS);
        sql.push(" FROM notifications WHERE next_escalation <= ");
        sql.bind(Arg::Int(now));
        sql.push(" AND status = 'requested' ORDER BY next_escalation, task_id LIMIT ");
        sql.count(limit);
        on_pool!(self, pool => {
            let mut found = Vec::new();
            for row in bound!(sql).fetch_all(pool).await? {
                found.push(stored!(row));
            }
            Ok(found)
        })
    }

    /// Every notification made in a period (by `created`, milliseconds), for the oversight
    /// report: at most `most`, and how many there are.
    pub async fn notifications_between(
        &self,
        from: i64,
        until: i64,
        most: i64,
    ) -> Result<(Vec<StoredNotification>, i64)> {
        let filter = |sql: &mut crate::sql::Sql| {
            sql.push(" FROM notifications WHERE created >= ");
            sql.bind(Arg::Int(from));
            sql.push(" AND created < ");
            sql.bind(Arg::Int(until));
        };
        let mut select = self.sql();
        select.push("SELECT ");
        select.push(COLUMNS);
        filter(&mut select);
        select.push(" ORDER BY created, task_id LIMIT ");
        select.count(most);
        let mut count = self.sql();
        count.push("SELECT COUNT(*) AS n");
        filter(&mut count);
        on_pool!(self, pool => {
            let mut found = Vec::new();
            for row in bound!(select).fetch_all(pool).await? {
                found.push(stored!(row));
            }
            let total: i64 = bound!(count).fetch_one(pool).await?.try_get("n")?;
            Ok((found, total))
        })
    }

    /// Changes a notification, only if it is still in the status and level it was read in
    /// (else [`crate::StoreError::Conflict`]: someone acted on it first), keeping any
    /// notifications the change makes (an escalation's) and its ledger entries, in one
    /// transaction.
    pub async fn notification_change(
        &self,
        changed: &StoredNotification,
        was: (&str, i64),
        made: &[StoredNotification],
        audit: &[crate::LedgerRow],
    ) -> Result<()> {
        let mut update = self.sql();
        update.push("UPDATE notifications SET status = ");
        update.bind(Arg::text(&changed.status));
        update.push(", level = ");
        update.bind(Arg::Int(changed.level));
        update.push(", next_escalation = ");
        update.bind(Arg::Int(changed.next_escalation));
        update.push(", updated = ");
        update.bind(Arg::Int(changed.updated));
        update.push(", body = ");
        update.bind(Arg::text(&changed.body));
        update.push(" WHERE task_id = ");
        update.bind(Arg::text(&changed.id));
        update.push(" AND status = ");
        update.bind(Arg::text(was.0));
        update.push(" AND level = ");
        update.bind(Arg::Int(was.1));
        let inserts: Vec<_> = made
            .iter()
            .map(|n| (self.insert_sql(n), self.enqueue_sql(n)))
            .collect();
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            if bound!(update).execute(&mut *tx).await?.rows_affected() != 1 {
                tx.rollback().await?;
                return Err(crate::StoreError::Conflict(
                    "the notification was changed meanwhile".into(),
                ));
            }
            tx.insert_ledger_rows(audit).await.map_err(crate::StoreError::Ledger)?;
            for (insert, [count, enqueue]) in &inserts {
                // A notification already kept is not offered to the subscriptions again.
                if bound!(insert).execute(&mut *tx).await?.rows_affected() == 1 {
                    bound!(count).execute(&mut *tx).await?;
                    bound!(enqueue).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }
}
