//! The fast path of [`Store::write_units`](crate::Store::write_units): every unit of a group
//! commit written with a handful of multi-row statements instead of several statements per
//! record. It reads the current version of every record the group touches in one query,
//! decides versions, resends and first copies in memory (in unit order, so a later unit sees an
//! earlier one's write), then writes versions, current rows, search tokens and outbox events
//! in bulk. A unit that breaks a rule fails the bulk write; the caller then rolls it back and
//! writes unit by unit, so that only the faulty unit is refused.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use kinfold_fhir::{Resource, SearchIndex};
use sqlx::Row;

use crate::sql::{Arg, Sql};
use crate::{Result, StoreError, UnitOutcome, WriteOutcome, WriteUnit, same_content};

/// Rows per multi-row statement (SQLite binds at most 32,766 values in one).
const ROWS_PER_STATEMENT: usize = 200;

/// One version to write.
struct Version {
    resource_type: String,
    id: String,
    version_id: i64,
    index: SearchIndex,
    json: String,
}

/// The statements that write a group of units, and each unit's outcome.
pub(crate) struct Planned {
    pub(crate) statements: Vec<Sql>,
    pub(crate) outcomes: Vec<UnitOutcome>,
}

/// The query for the current version of each `(type, id)`, in chunks.
pub(crate) fn current_queries(postgres: bool, keys: &[(String, String)]) -> Vec<Sql> {
    keys.chunks(ROWS_PER_STATEMENT)
        .map(|chunk| {
            let mut sql = Sql::new(postgres);
            sql.push(
                "SELECT resource_type, id, version_id, last_updated, content FROM resources WHERE ",
            );
            any_key(
                &mut sql,
                chunk.iter().map(|(t, id)| (t.as_str(), id.as_str())),
            );
            sql
        })
        .collect()
}

/// `(…), (…)`: one parenthesised row of values per item.
fn rows<T>(sql: &mut Sql, items: &[T], mut row: impl FnMut(&mut Sql, &T)) {
    for (n, item) in items.iter().enumerate() {
        sql.push(if n > 0 { ", (" } else { "(" });
        row(sql, item);
        sql.push(")");
    }
}

/// `(resource_type = ? AND id = ?) OR …` for each key.
fn any_key<'a>(sql: &mut Sql, keys: impl Iterator<Item = (&'a str, &'a str)>) {
    for (n, (resource_type, id)) in keys.enumerate() {
        if n > 0 {
            sql.push(" OR ");
        }
        sql.push("(resource_type = ");
        sql.bind(Arg::text(resource_type));
        sql.push(" AND id = ");
        sql.bind(Arg::text(id));
        sql.push(")");
    }
}

/// Every `(type, id)` a group touches, once each.
pub(crate) fn keys(units: &[WriteUnit]) -> Result<Vec<(String, String)>> {
    let mut seen = std::collections::HashSet::new();
    let mut keys = Vec::new();
    for unit in units {
        for resource in unit.records.iter().chain(&unit.first_copy) {
            let key = key_of(resource)?;
            if seen.insert(key.clone()) {
                keys.push(key);
            }
        }
    }
    Ok(keys)
}

fn key_of(resource: &Resource) -> Result<(String, String)> {
    let id = resource
        .id()
        .ok_or_else(|| StoreError::Corrupt("a resource to store has no id".into()))?;
    Ok((resource.type_name().to_owned(), id.to_owned()))
}

/// A record's type and id.
pub(crate) type Key = (String, String);
/// A record's current version, time stored and content.
pub(crate) type Stored = (i64, i64, String);
/// The current rows a group touches, as read.
pub(crate) type Current = HashMap<Key, Stored>;

/// Reads one row of a current-version query.
pub(crate) fn current_row<R: Row>(row: &R) -> Result<(Key, Stored)>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok((
        (row.try_get("resource_type")?, row.try_get("id")?),
        (
            row.try_get("version_id")?,
            row.try_get("last_updated")?,
            row.try_get("content")?,
        ),
    ))
}

/// Decides every write of the group and builds its statements.
pub(crate) fn plan(
    postgres: bool,
    now: i64,
    units: &[WriteUnit],
    mut current: Current,
) -> Result<Planned> {
    let stamp = DateTime::<Utc>::from_timestamp_millis(now)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut versions: Vec<Version> = Vec::new();
    let mut events = Vec::new();
    let mut outcomes = Vec::with_capacity(units.len());
    // The versions records had before this group's writes, for the history.
    let mut superseded: Vec<(Key, Stored)> = Vec::new();
    for unit in units {
        let mut records = Vec::with_capacity(unit.records.len());
        let mut changed = false;
        for resource in &unit.records {
            let key = key_of(resource)?;
            if let Some((version_id, last_updated, content)) = current.get(&key)
                && same_content(resource, content)
            {
                records.push(WriteOutcome {
                    resource_type: key.0,
                    id: key.1,
                    version_id: *version_id,
                    last_updated: *last_updated,
                    created: false,
                });
                continue;
            }
            let previous = current.get(&key).map(|c| c.0);
            let version = stamped(resource, previous.unwrap_or(0) + 1, &stamp, key.clone());
            if let Some(old) =
                current.insert(key.clone(), (version.version_id, now, version.json.clone()))
            {
                superseded.push((key.clone(), old));
            }
            records.push(WriteOutcome {
                resource_type: key.0,
                id: key.1,
                version_id: version.version_id,
                last_updated: now,
                created: previous.is_none(),
            });
            versions.push(version);
            changed = true;
        }
        if changed {
            for resource in &unit.first_copy {
                let key = key_of(resource)?;
                if current.contains_key(&key) {
                    continue;
                }
                let version = stamped(resource, 1, &stamp, key.clone());
                current.insert(key, (1, now, version.json.clone()));
                versions.push(version);
            }
            events.extend(unit.events.iter());
        }
        outcomes.push(UnitOutcome { records, changed });
    }
    let mut statements = Vec::new();
    // Each record's last version goes into `resources`; the versions it replaced, into the
    // history.
    let mut last: HashMap<(&str, &str), &Version> = HashMap::new();
    for version in &versions {
        last.insert((&version.resource_type, &version.id), version);
    }
    let mut finals: Vec<&Version> = last.into_values().collect();
    finals.sort_by(|a, b| (&a.resource_type, &a.id).cmp(&(&b.resource_type, &b.id)));
    for chunk in superseded.chunks(ROWS_PER_STATEMENT) {
        let mut sql = Sql::new(postgres);
        sql.push("INSERT INTO resource_versions (resource_type, id, version_id, last_updated, content) VALUES ");
        rows(
            &mut sql,
            chunk,
            |sql, ((resource_type, id), (version_id, last_updated, content))| {
                sql.bind(Arg::text(resource_type));
                sql.push(", ");
                sql.bind(Arg::text(id));
                sql.push(", ");
                sql.bind(Arg::Int(*version_id));
                sql.push(", ");
                sql.bind(Arg::Int(*last_updated));
                sql.push(", ");
                sql.bind(Arg::text(content));
            },
        );
        statements.push(sql);
    }
    for chunk in finals.chunks(ROWS_PER_STATEMENT) {
        let mut sql = Sql::new(postgres);
        sql.push("INSERT INTO resources (resource_type, id, version_id, last_updated, patient, date_start, date_end, content) VALUES ");
        rows(&mut sql, chunk, |sql, v| {
            sql.bind(Arg::text(&v.resource_type));
            sql.push(", ");
            sql.bind(Arg::text(&v.id));
            sql.push(", ");
            sql.bind(Arg::Int(v.version_id));
            sql.push(", ");
            sql.bind(Arg::Int(now));
            sql.push(", ");
            match v.index.patient.as_deref() {
                Some(patient) => sql.bind(Arg::text(patient)),
                None => sql.push("NULL"),
            }
            for value in [v.index.date.map(|d| d.start), v.index.date.map(|d| d.end)] {
                sql.push(", ");
                match value {
                    Some(value) => sql.bind(Arg::Int(value)),
                    None => sql.push("NULL"),
                }
            }
            sql.push(", ");
            sql.bind(Arg::text(&v.json));
        });
        sql.push(" ON CONFLICT (resource_type, id) DO UPDATE SET version_id = excluded.version_id, last_updated = excluded.last_updated, patient = excluded.patient, date_start = excluded.date_start, date_end = excluded.date_end, content = excluded.content");
        statements.push(sql);
    }
    // Records stored before lose their old search tokens (a new record has none to lose):
    // those their replaced content gives, found by the token index itself. (There is no index
    // by owner: it cost every new token a write at a scattered key.) Content that no longer
    // reads as a resource has its tokens found by owner instead, a slower scan that is still
    // right.
    let mut replaced: Vec<(&Key, SearchIndex)> = Vec::new();
    let mut unreadable: std::collections::BTreeSet<&Key> = std::collections::BTreeSet::new();
    for (key, (_, _, content)) in &superseded {
        match Resource::from_json(content.as_bytes()) {
            Ok(old) => replaced.push((key, old.search_index())),
            Err(_) => {
                unreadable.insert(key);
            }
        }
    }
    let mut stale: std::collections::BTreeSet<Token<'_>> = std::collections::BTreeSet::new();
    for (key, index) in &replaced {
        stale.extend(tokens_of(&key.0, &key.1, index));
    }
    let stale: Vec<Token<'_>> = stale.into_iter().collect();
    for chunk in stale.chunks(ROWS_PER_STATEMENT) {
        let mut clear = Sql::new(postgres);
        clear.push("DELETE FROM resource_tokens WHERE ");
        for (n, (resource_type, id, kind, system, code)) in chunk.iter().enumerate() {
            clear.push(if n > 0 { " OR (kind = " } else { "(kind = " });
            clear.bind(Arg::text(kind));
            clear.push(" AND code = ");
            clear.bind(Arg::text(code));
            clear.push(" AND system = ");
            clear.bind(Arg::text(system));
            clear.push(" AND resource_type = ");
            clear.bind(Arg::text(resource_type));
            clear.push(" AND id = ");
            clear.bind(Arg::text(id));
            clear.push(")");
        }
        statements.push(clear);
    }
    let unreadable: Vec<&Key> = unreadable.into_iter().collect();
    for chunk in unreadable.chunks(ROWS_PER_STATEMENT) {
        let mut clear = Sql::new(postgres);
        clear.push("DELETE FROM resource_tokens WHERE ");
        any_key(
            &mut clear,
            chunk.iter().map(|(t, id)| (t.as_str(), id.as_str())),
        );
        statements.push(clear);
    }
    let tokens: Vec<Token<'_>> = finals
        .iter()
        .flat_map(|v| tokens_of(&v.resource_type, &v.id, &v.index))
        .collect();
    for chunk in tokens.chunks(ROWS_PER_STATEMENT) {
        let mut sql = Sql::new(postgres);
        sql.push("INSERT INTO resource_tokens (resource_type, id, kind, system, code) VALUES ");
        rows(
            &mut sql,
            chunk,
            |sql, (resource_type, id, kind, system, code)| {
                sql.bind(Arg::text(resource_type));
                sql.push(", ");
                sql.bind(Arg::text(id));
                sql.push(", ");
                sql.bind(Arg::text(kind));
                sql.push(", ");
                sql.bind(Arg::text(system));
                sql.push(", ");
                sql.bind(Arg::text(code));
            },
        );
        statements.push(sql);
    }
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let mut sql = Sql::new(postgres);
        sql.push("INSERT INTO outbox (event_id, created, payload, attempts, next_attempt) VALUES ");
        rows(&mut sql, chunk, |sql, event| {
            sql.bind(Arg::text(&event.id));
            sql.push(", ");
            sql.bind(Arg::Int(now));
            sql.push(", ");
            sql.bind(Arg::text(&event.payload));
            sql.push(", 0, ");
            sql.bind(Arg::Int(now));
        });
        sql.push(" ON CONFLICT (event_id) DO NOTHING");
        statements.push(sql);
    }
    Ok(Planned {
        statements,
        outcomes,
    })
}

/// One search token row: `(resource_type, id, kind, system, code)`.
type Token<'a> = (&'a str, &'a str, &'static str, &'a str, &'a str);

/// The token rows a version of a record has, each once.
fn tokens_of<'a>(resource_type: &'a str, id: &'a str, index: &'a SearchIndex) -> Vec<Token<'a>> {
    let distinct: std::collections::BTreeSet<_> = index
        .identifiers
        .iter()
        .map(|t| ("identifier", t.system.as_str(), t.code.as_str()))
        .chain(
            index
                .codes
                .iter()
                .map(|t| ("code", t.system.as_str(), t.code.as_str())),
        )
        .collect();
    distinct
        .into_iter()
        .map(|(kind, system, code)| (resource_type, id, kind, system, code))
        .collect()
}

/// A resource with its new version and time stamped, indexed and serialised.
fn stamped(resource: &Resource, version_id: i64, stamp: &str, key: (String, String)) -> Version {
    let mut resource = resource.clone();
    resource.update_meta(|meta| {
        meta.version_id = Some(version_id.to_string());
        meta.last_updated = Some(stamp.to_owned());
    });
    Version {
        resource_type: key.0,
        id: key.1,
        version_id,
        index: resource.search_index(),
        json: resource.to_json(),
    }
}
