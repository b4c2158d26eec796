//! What the gateway keeps of consent: override reviews (one FHIR `Task`, as JSON, per override
//! and data-owning organisation, on that organisation's privacy officers' queue) and the consent
//! decisions recorded through it (FHIR `Consent`, as JSON, by person).

use sqlx::Row;

use crate::sql::Arg;
use crate::{Backend, Result, Store};

/// The most reviews one queue read returns.
pub const MAX_REVIEWS: i64 = 500;

/// What the store says of a client assertion's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionUse {
    /// Never seen: now remembered until it expires.
    First,
    /// Seen before: a replay.
    Replayed,
    /// The table already holds as many unexpired ids as it may.
    Full,
}

impl Store {
    /// Remembers a SMART client assertion's id until it expires (seconds since the epoch),
    /// unless it is already remembered (a replay) or `max` unexpired ids are (every gateway on
    /// this database shares the table). Expired ids are deleted first.
    pub async fn assertion_first_use(
        &self,
        client_id: &str,
        jti: &str,
        expires: i64,
        now: i64,
        max: i64,
    ) -> Result<AssertionUse> {
        let mut prune = self.sql();
        prune.push("DELETE FROM client_assertions WHERE expires < ");
        prune.bind(Arg::Int(now));
        let mut count = self.sql();
        count.push("SELECT COUNT(*) AS n FROM client_assertions");
        let mut insert = self.sql();
        insert.push("INSERT INTO client_assertions (client_id, jti, expires) VALUES (");
        insert.bind(Arg::text(client_id));
        insert.push(", ");
        insert.bind(Arg::text(jti));
        insert.push(", ");
        insert.bind(Arg::Int(expires));
        insert.push(") ON CONFLICT (client_id, jti) DO NOTHING");
        on_writer!(self, pool => {
            bound!(prune).execute(pool).await?;
            let held: i64 = bound!(count).fetch_one(pool).await?.try_get("n")?;
            if held >= max {
                return Ok(AssertionUse::Full);
            }
            let inserted = bound!(insert).execute(pool).await?.rows_affected();
            Ok(if inserted == 1 { AssertionUse::First } else { AssertionUse::Replayed })
        })
    }

    /// Keeps a review task (inserted, or replaced by id).
    pub async fn review_put(&self, id: &str, owner: &str, status: &str, body: &str) -> Result<()> {
        let mut sql = self.sql();
        sql.push("INSERT INTO override_reviews (task_id, owner, status, body, updated) VALUES (");
        sql.bind(Arg::text(id));
        sql.push(", ");
        sql.bind(Arg::text(owner));
        sql.push(", ");
        sql.bind(Arg::text(status));
        sql.push(", ");
        sql.bind(Arg::text(body));
        sql.push(", ");
        sql.bind(Arg::Int(chrono::Utc::now().timestamp_millis()));
        sql.push(
            ") ON CONFLICT (task_id) DO UPDATE SET status = excluded.status, body = excluded.body, updated = excluded.updated",
        );
        on_writer!(self, pool => { bound!(sql).execute(pool).await?; });
        Ok(())
    }

    /// One review task's owner and body.
    pub async fn review(&self, id: &str) -> Result<Option<(String, String)>> {
        let mut sql = self.sql();
        sql.push("SELECT owner, body FROM override_reviews WHERE task_id = ");
        sql.bind(Arg::text(id));
        Ok(on_pool!(self, pool => bound!(sql)
            .fetch_optional(pool)
            .await?
            .map(|row| Ok::<_, crate::StoreError>((row.try_get("owner")?, row.try_get("body")?)))
            .transpose()?))
    }

    /// An organisation's review tasks, newest first, optionally of one status, at most
    /// [`MAX_REVIEWS`]; and how many there are in all.
    pub async fn reviews_of(
        &self,
        owner: &str,
        status: Option<&str>,
    ) -> Result<(Vec<String>, i64)> {
        let filter = |sql: &mut crate::sql::Sql| {
            sql.bind(Arg::text(owner));
            if let Some(status) = status {
                sql.push(" AND status = ");
                sql.bind(Arg::text(status));
            }
        };
        let mut select = self.sql();
        select.push("SELECT body FROM override_reviews WHERE owner = ");
        filter(&mut select);
        select.push(" ORDER BY updated DESC, task_id LIMIT ");
        select.count(MAX_REVIEWS);
        let mut count = self.sql();
        count.push("SELECT COUNT(*) AS n FROM override_reviews WHERE owner = ");
        filter(&mut count);
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

/// The most consent decisions kept for one person.
pub const MAX_CONSENTS: i64 = 100;

impl Store {
    /// Keeps a consent decision (FHIR Consent as JSON) about a person.
    pub async fn consent_put(&self, id: &str, person: &str, body: &str) -> Result<()> {
        let mut sql = self.sql();
        sql.push("INSERT INTO consents (consent_id, person, body, updated) VALUES (");
        sql.bind(Arg::text(id));
        sql.push(", ");
        sql.bind(Arg::text(person));
        sql.push(", ");
        sql.bind(Arg::text(body));
        sql.push(", ");
        sql.bind(Arg::Int(chrono::Utc::now().timestamp_millis()));
        sql.push(") ON CONFLICT (consent_id) DO UPDATE SET body = excluded.body, updated = excluded.updated");
        on_writer!(self, pool => { bound!(sql).execute(pool).await?; });
        Ok(())
    }

    /// One consent decision: the person it is about, and its body.
    pub async fn consent(&self, id: &str) -> Result<Option<(String, String)>> {
        let mut sql = self.sql();
        sql.push("SELECT person, body FROM consents WHERE consent_id = ");
        sql.bind(Arg::text(id));
        Ok(on_pool!(self, pool => bound!(sql)
            .fetch_optional(pool)
            .await?
            .map(|row| Ok::<_, crate::StoreError>((row.try_get("person")?, row.try_get("body")?)))
            .transpose()?))
    }

    /// A person's consent decisions (at most [`MAX_CONSENTS`]), oldest first.
    pub async fn consents_of(&self, person: &str) -> Result<Vec<String>> {
        let mut sql = self.sql();
        sql.push("SELECT body FROM consents WHERE person = ");
        sql.bind(Arg::text(person));
        sql.push(" ORDER BY updated, consent_id LIMIT ");
        sql.count(MAX_CONSENTS);
        on_pool!(self, pool => {
            let bodies = bound!(sql)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| row.try_get("body"))
                .collect::<Result<Vec<String>, sqlx::Error>>()?;
            Ok(bodies)
        })
    }
}
