//! Safeguarding flags kept by the gateway (FHIR `Flag`, as JSON, by person) and every action on
//! them (raised, resolved, a resolution refused), for the oversight report.

use sqlx::Row;

use crate::sql::Arg;
use crate::{Backend, Result, Store};

/// A `flags` row as a [`StoredFlag`] (a macro: the row's type differs by backend).
macro_rules! stored {
    ($row:expr) => {
        StoredFlag {
            id: $row.try_get("flag_id")?,
            person: $row.try_get("person")?,
            kind: $row.try_get("kind")?,
            status: $row.try_get("status")?,
            body: $row.try_get("body")?,
        }
    };
}

/// The most flags one read returns for a person.
pub const MAX_FLAGS: i64 = 200;
/// The most actions one oversight report reads.
pub const MAX_FLAG_ACTIONS: i64 = 1000;

/// One flag as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFlag {
    /// Its id.
    pub id: String,
    /// Whom it is about.
    pub person: String,
    /// Its kind's code.
    pub kind: String,
    /// `active` or `inactive`.
    pub status: String,
    /// The FHIR Flag, as JSON.
    pub body: String,
}

impl Store {
    /// Keeps a flag (inserted, or replaced by id), and the action on it (JSON), together.
    pub async fn flag_put(
        &self,
        flag: &StoredFlag,
        action: &str,
        at: i64,
        body: &str,
    ) -> Result<()> {
        let mut put = self.sql();
        put.push("INSERT INTO flags (flag_id, person, kind, status, body, updated) VALUES (");
        put.bind(Arg::text(&flag.id));
        put.push(", ");
        put.bind(Arg::text(&flag.person));
        put.push(", ");
        put.bind(Arg::text(&flag.kind));
        put.push(", ");
        put.bind(Arg::text(&flag.status));
        put.push(", ");
        put.bind(Arg::text(&flag.body));
        put.push(", ");
        put.bind(Arg::Int(at));
        put.push(
            ") ON CONFLICT (flag_id) DO UPDATE SET status = excluded.status, body = excluded.body, updated = excluded.updated",
        );
        let insert = self.flag_action_sql(&flag.id, &flag.person, action, at, body);
        on_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            bound!(put).execute(&mut *tx).await?;
            bound!(insert).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    fn flag_action_sql(
        &self,
        flag: &str,
        person: &str,
        action: &str,
        at: i64,
        body: &str,
    ) -> crate::sql::Sql {
        let mut sql = self.sql();
        sql.push("INSERT INTO flag_actions (flag_id, person, action, at, body) VALUES (");
        sql.bind(Arg::text(flag));
        sql.push(", ");
        sql.bind(Arg::text(person));
        sql.push(", ");
        sql.bind(Arg::text(action));
        sql.push(", ");
        sql.bind(Arg::Int(at));
        sql.push(", ");
        sql.bind(Arg::text(body));
        sql.push(")");
        sql
    }

    /// Keeps an action on a flag without changing it (a refused resolution), unless the flag
    /// already has `most` actions of that kind: returns whether it was kept.
    pub async fn flag_action_add(
        &self,
        flag: &str,
        person: &str,
        action: &str,
        at: i64,
        body: &str,
        most: i64,
    ) -> Result<bool> {
        let mut count = self.sql();
        count.push("SELECT COUNT(*) AS n FROM flag_actions WHERE flag_id = ");
        count.bind(Arg::text(flag));
        count.push(" AND action = ");
        count.bind(Arg::text(action));
        let insert = self.flag_action_sql(flag, person, action, at, body);
        on_writer!(self, pool => {
            let held: i64 = bound!(count).fetch_one(pool).await?.try_get("n")?;
            if held >= most {
                return Ok(false);
            }
            bound!(insert).execute(pool).await?;
            Ok(true)
        })
    }

    /// One flag.
    pub async fn flag(&self, id: &str) -> Result<Option<StoredFlag>> {
        let mut sql = self.sql();
        sql.push("SELECT flag_id, person, kind, status, body FROM flags WHERE flag_id = ");
        sql.bind(Arg::text(id));
        on_pool!(self, pool => {
            match bound!(sql).fetch_optional(pool).await? {
                Some(row) => Ok(Some(stored!(row))),
                None => Ok(None),
            }
        })
    }

    /// The flags about any of these people (a person and the ids merged into them), oldest
    /// first, at most [`MAX_FLAGS`].
    pub async fn flags_of(&self, people: &[String]) -> Result<Vec<StoredFlag>> {
        if people.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = self.sql();
        sql.push("SELECT flag_id, person, kind, status, body FROM flags WHERE person IN (");
        for (n, person) in people.iter().enumerate() {
            if n > 0 {
                sql.push(", ");
            }
            sql.bind(Arg::text(person));
        }
        sql.push(") ORDER BY updated, flag_id LIMIT ");
        sql.count(MAX_FLAGS);
        on_pool!(self, pool => {
            let mut flags = Vec::new();
            for row in bound!(sql).fetch_all(pool).await? {
                flags.push(stored!(row));
            }
            Ok(flags)
        })
    }

    /// The actions on flags from `from` up to `until` (milliseconds since the epoch), oldest
    /// first, at most [`MAX_FLAG_ACTIONS`]; and how many there are in the period.
    pub async fn flag_actions(&self, from: i64, until: i64) -> Result<(Vec<String>, i64)> {
        let period = |sql: &mut crate::sql::Sql| {
            sql.bind(Arg::Int(from));
            sql.push(" AND at < ");
            sql.bind(Arg::Int(until));
        };
        let mut select = self.sql();
        select.push("SELECT body FROM flag_actions WHERE at >= ");
        period(&mut select);
        select.push(" ORDER BY at, flag_id LIMIT ");
        select.count(MAX_FLAG_ACTIONS);
        let mut count = self.sql();
        count.push("SELECT COUNT(*) AS n FROM flag_actions WHERE at >= ");
        period(&mut count);
        on_pool!(self, pool => {
            let bodies = bound!(select)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| row.try_get("body"))
                .collect::<Result<Vec<String>, sqlx::Error>>()?;
            let total: i64 = bound!(count).fetch_one(pool).await?.try_get("n")?;
            Ok((bodies, total))
        })
    }
}
