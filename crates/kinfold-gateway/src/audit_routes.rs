//! The ledger's public, CT-style API (RFC 6962 section 4), and the audit views for privacy
//! officers and families.
//!
//! The `/ledger/v1/*` routes disclose no patient data (leaf inputs are sequence numbers, times
//! and hashes), so they are open to every agency's auditor. `AuditEvent` and `$why` show who
//! looked at whom and what was withheld: they are for privacy officers of an organisation
//! whose records are concerned. `$access-report` is for those officers, and for professionals
//! with a current relationship to the person, who see who looked and when but not what was
//! withheld from others. Who has looked at a child's record says which services are involved,
//! so each view is itself audited, and a refusal answers as "not found".

use std::collections::{BTreeMap, BTreeSet};

use actix_web::{HttpRequest, web};
use kinfold_fhir::search::DateParam;
use kinfold_ledger::AuditRecord;
use kinfold_store::LedgerQuery;
use serde_json::{Value, json};

use crate::answer::Disclosed;
use crate::audit::{self, Entry, Interaction};
use crate::auth::Caller;
use crate::error::{GatewayError, bad_parameter};
use crate::guard::privacy_officer;
use crate::state::GatewayState;

type State = web::Data<GatewayState>;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WhyQuery {
    resource: String,
}

/// Why a record was shown to, or withheld from, one request: the decision and the rule, as
/// the ledger recorded them. For privacy officers.
#[utoipa::path(get, path = "/AuditEvent/{id}/$why", tag = "Audit",
    params(("id" = String, Path, description = "The AuditEvent's id (`ledger-{n}`)"),
        ("resource" = String, Query, description = "The record's URL, as the AuditEvent's entity names it")),
    responses(
        (status = 200, description = "`{\"request\", \"resource\", \"decision\": disclosed|override|withheld, \"rule\", \"relationship\", \"who\", \"when\", \"purpose\"}`", content_type = "application/json", body = serde_json::Value),
        (status = 403, description = "Not a privacy officer", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "No such entry, or the request did not concern that record", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn why(
    caller: Caller,
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    query: web::Query<WhyQuery>,
) -> Result<Disclosed, GatewayError> {
    let org = privacy_officer(&caller)?;
    let id = path.into_inner();
    let not_found = || {
        GatewayError::Refused(kinfold_http::ApiError::not_found(format!(
            "AuditEvent/{id} naming {}",
            query.resource
        )))
    };
    let seq: i64 = id
        .strip_prefix("ledger-")
        .and_then(|n| n.parse().ok())
        .ok_or_else(not_found)?;
    let row = state
        .store
        .ledger_range(seq, seq + 1)
        .await?
        .into_iter()
        .next()
        .ok_or_else(not_found)?;
    let record: AuditRecord = serde_json::from_str(&row.record).map_err(|_| not_found())?;
    let entity = record
        .entities
        .iter()
        .find(|e| e.reference == query.resource)
        .ok_or_else(not_found)?;
    // Only an officer of an organisation concerned: the record's own, or one holding records
    // of the person the entry is about. Any other entry answers as one that does not exist.
    let agency_owner = entity
        .agency
        .as_deref()
        .and_then(|a| a.parse::<kinfold_fhir::Agency>().ok())
        .map(|a| state.disclosure.owner_of(a));
    let person: Vec<kinfold_identity::PersonId> = record
        .patient
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect();
    if agency_owner.as_deref() != Some(org.as_str()) && !state.is_concerned(&org, &person).await? {
        state
            .record_access(
                Entry::by_caller(&caller, &request, Interaction::Read, "AuditEvent/$why")
                    .refused("audit.organisation-not-concerned")
                    .done(),
            )
            .await?;
        return Err(not_found());
    }
    let (decision, rule) = match entity.disclosure.as_str() {
        "override" => ("override", record.rule.clone()),
        text if text.starts_with("withheld (") => (
            "withheld",
            text.strip_prefix("withheld (")
                .and_then(|r| r.strip_suffix(')'))
                .map(str::to_owned),
        ),
        _ => ("disclosed", record.rule.clone()),
    };
    let receipt = state
        .record_access(
            Entry::by_caller(&caller, &request, Interaction::Read, "AuditEvent/$why")
                .about_maybe(record.patient.clone())
                .entities(vec![audit::disclosed(
                    &format!("urn:kinfold:audit:{id}"),
                    "AuditEvent",
                    None,
                )])
                .rule("audit.privacy-officer")
                .done(),
        )
        .await?;
    Ok(Disclosed::json(
        receipt,
        &json!({
            "request": id,
            "resource": entity.reference,
            "decision": decision,
            "rule": rule,
            "relationship": record.rule,
            "who": record.agent.who,
            "when": record.recorded,
            "purpose": record.purpose,
            "justification": record.justification,
        }),
    ))
}

/// Audit entries per page when the caller does not say.
const DEFAULT_AUDIT_COUNT: usize = 100;
/// The most audit entries on one page.
const MAX_AUDIT_COUNT: usize = 1000;
/// Ledger rows read at a time while summarising.
const SCAN_BATCH: i64 = 4096;

/// The paging parameters of an audit view: `_count` and `_before` (a ledger position, from a
/// `next` link).
#[derive(Debug, Clone, Copy)]
struct Paging {
    count: usize,
    before: Option<i64>,
}

impl Paging {
    fn read(name: &str, value: &str, paging: &mut Paging) -> Result<bool, GatewayError> {
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| bad_parameter(name, &format!("'{value}' is not a whole number")))
        };
        match name {
            "_count" => {
                paging.count = usize::try_from(number()?)
                    .unwrap_or(usize::MAX)
                    .clamp(1, MAX_AUDIT_COUNT);
            }
            "_before" => paging.before = Some(i64::try_from(number()?).unwrap_or(i64::MAX)),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Query pairs, each name at most once except those in `repeatable`, none empty.
fn pairs(
    request: &HttpRequest,
    repeatable: &[&str],
) -> Result<Vec<(String, String)>, GatewayError> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(request.query_string().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    for (n, (name, value)) in pairs.iter().enumerate() {
        if value.is_empty() {
            return Err(bad_parameter(name, "has no value"));
        }
        if !repeatable.contains(&name.as_str()) && pairs[..n].iter().any(|(k, _)| k == name) {
            return Err(bad_parameter(name, "may be given only once"));
        }
    }
    Ok(pairs)
}

/// The URL of the next page: this request's own parameters with `_before` moved on.
fn next_link(
    base: &str,
    path: &str,
    pairs: &[(String, String)],
    count: usize,
    before: i64,
) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs
        .iter()
        .filter(|(n, _)| n != "_before" && n != "_count")
    {
        query.append_pair(name, value);
    }
    query.append_pair("_count", &count.to_string());
    query.append_pair("_before", &before.to_string());
    format!("{base}{path}?{}", query.finish())
}

/// AuditEvents for privacy officers: who did what, filtered by patient, date and agent, newest
/// first, every matching entry reachable by `next` links, with the true total.
#[utoipa::path(get, path = "/AuditEvent", tag = "Audit",
    params(("patient" = Option<String>, Query, description = "Kinfold person id (or Patient/id)"),
           ("date" = Option<String>, Query, description = "FHIR date with a prefix (ge, le, gt, lt, sa, eb, eq), on when the event was recorded; give two for a range"),
           ("agent" = Option<String>, Query, description = "The token subject who acted"),
           ("_count" = Option<usize>, Query, description = "Entries per page (default 100, at most 1000)"),
           ("_before" = Option<i64>, Query, description = "Only entries before this ledger position: what `next` links carry")),
    responses((status = 200, description = "searchset of AuditEvent, newest first: `total` counts every matching entry, a `next` link leads to the rest, and an OperationOutcome names any ledger entry that could not be read", content_type = "application/fhir+json", body = serde_json::Value),
              (status = 400, description = "An unsupported, repeated or empty parameter, or an unreadable date", content_type = "application/fhir+json", body = serde_json::Value),
              (status = 401, description = "Missing or bad token", content_type = "application/fhir+json", body = serde_json::Value),
              (status = 503, description = "The ledger cannot record this access, so nothing is shown", content_type = "application/fhir+json", body = serde_json::Value)),
    security(("bearer" = [])))]
pub(crate) async fn audit_events(
    caller: Caller,
    state: State,
    request: HttpRequest,
) -> Result<Disclosed, GatewayError> {
    let org = privacy_officer(&caller)?;
    let pairs = pairs(&request, &["date"])?;
    let mut filter = LedgerQuery::default();
    let mut paging = Paging {
        count: DEFAULT_AUDIT_COUNT,
        before: None,
    };
    let mut dates = 0;
    for (name, value) in &pairs {
        if Paging::read(name, value, &mut paging)? {
            continue;
        }
        match name.as_str() {
            "patient" => {
                filter.patient = Some(value.strip_prefix("Patient/").unwrap_or(value).to_owned());
            }
            "agent" => filter.agent = Some(value.clone()),
            "date" => {
                dates += 1;
                if dates > 2 {
                    return Err(bad_parameter(
                        "date",
                        "may be given at most twice (a range)",
                    ));
                }
                let param = DateParam::parse("date", value).map_err(GatewayError::BadSearch)?;
                let c = param.constraint();
                if c.negate {
                    return Err(bad_parameter(
                        "date",
                        "ne is not supported here; use ge, le, gt, lt, sa, eb or eq",
                    ));
                }
                if let Some(from) = c.end_gt.or(c.start_ge) {
                    filter.from = Some(filter.from.map_or(from, |f| f.max(from)));
                }
                if let Some(until) = c.start_lt.or(c.end_le) {
                    filter.until = Some(filter.until.map_or(until, |u| u.min(until)));
                }
            }
            other => {
                return Err(bad_parameter(
                    other,
                    "is not supported by AuditEvent search (patient, date, agent, _count, _before)",
                ));
            }
        }
    }
    // The whole trail is the area's privacy officers'; an agency's officers name the person.
    let concerned = match &filter.patient {
        Some(patient) => {
            let person: Vec<kinfold_identity::PersonId> = patient.parse().into_iter().collect();
            state.is_concerned(&org, &person).await?
        }
        None if org == state.disclosure.area => true,
        None => {
            return Err(GatewayError::Refused(kinfold_http::ApiError::refused(
                actix_web::http::StatusCode::FORBIDDEN,
                kinfold_fhir::IssueType::Forbidden,
                "patient-required",
                "An organisation's privacy officers search the audit trail of one person at a time (patient=); the whole trail is for the area's privacy officers.",
            )));
        }
    };
    let search = || Entry::by_caller(&caller, &request, Interaction::Search, "AuditEvent");
    if !concerned {
        // Answered as a person nobody has looked at.
        let receipt = state
            .record_access(search().refused("audit.organisation-not-concerned").done())
            .await?;
        let base = kinfold_http::base_url(state.public_base_url.as_deref(), &request);
        return Ok(Disclosed::fhir(
            receipt,
            &json!({"resourceType": "Bundle", "type": "searchset", "total": 0,
                "link": [{"relation": "self", "url": format!("{base}{}", request.uri())}]}),
        ));
    }
    let total = state.store.ledger_count(&filter).await?;
    // One row more than the page: if it comes back, there is a next page.
    let mut rows = state
        .store
        .ledger_search(&LedgerQuery {
            before: paging.before,
            limit: i64::try_from(paging.count + 1).unwrap_or(i64::MAX),
            ..filter.clone()
        })
        .await?;
    let more = rows.len() > paging.count;
    rows.truncate(paging.count);
    let receipt = state
        .record_access(
            search()
                .about_maybe(filter.patient.clone())
                .rule("audit.privacy-officer")
                .done(),
        )
        .await?;
    let base = kinfold_http::base_url(state.public_base_url.as_deref(), &request);
    let mut entries = Vec::with_capacity(rows.len());
    let mut unreadable = Vec::new();
    for row in &rows {
        match audit::to_audit_event(row) {
            Some(event) => entries.push(json!({"fullUrl": format!("urn:kinfold:audit:ledger-{}", row.seq), "resource": event, "search": {"mode": "match"}})),
            None => unreadable.push(row.seq),
        }
    }
    if !unreadable.is_empty() {
        entries.push(json!({"fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()), "resource": unreadable_outcome(&unreadable), "search": {"mode": "outcome"}}));
    }
    let mut links = vec![json!({"relation": "self", "url": format!("{base}{}", request.uri())})];
    if more && let Some(last) = rows.last() {
        links.push(json!({"relation": "next", "url": next_link(&base, "/AuditEvent", &pairs, paging.count, last.seq)}));
    }
    let mut bundle =
        json!({"resourceType": "Bundle", "type": "searchset", "total": total, "link": links});
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    Ok(Disclosed::fhir(receipt, &bundle))
}

/// An OperationOutcome naming ledger entries that are not readable audit records: shown, not
/// skipped, so that a reader knows the view is not whole.
fn unreadable_outcome(seqs: &[i64]) -> Value {
    let listed: Vec<String> = seqs.iter().map(ToString::to_string).collect();
    let outcome = kinfold_fhir::OperationOutcome::single(
        kinfold_fhir::IssueSeverity::Error,
        kinfold_fhir::IssueType::Exception,
        format!(
            "{} ledger entr{} could not be read as an audit record (positions {}); run `kinfold ledger verify`.",
            seqs.len(),
            if seqs.len() == 1 { "y" } else { "ies" },
            listed.join(", ")
        ),
    )
    .with_code("unreadable-ledger-entry");
    serde_json::to_value(kinfold_fhir::Resource::from(outcome)).unwrap_or(Value::Null)
}

/// Who looked: subject, organisation, role and purpose.
type Who = (String, Option<String>, Option<String>, Option<String>);

/// Who looked, how often, and when first and last: one line of an access report.
#[derive(Debug, Default)]
struct Group {
    accesses: u64,
    records: u64,
    overrides: u64,
    first: String,
    last: String,
    agencies: BTreeSet<String>,
}

/// Who has looked at this child's records, in words a parent can read: every access counted
/// and grouped by who, organisation, role and purpose, and the accesses themselves, newest
/// first, a page at a time.
#[utoipa::path(get, path = "/Patient/{id}/$access-report", tag = "Audit",
    params(("id" = String, Path, description = "Kinfold person id"),
           ("_count" = Option<usize>, Query, description = "Accesses listed per page (default 100, at most 1000)"),
           ("_before" = Option<i64>, Query, description = "Only accesses before this ledger position: what `next` carries")),
    responses((status = 200, description = "The access report: `total` accesses, a summary `by_who` over all of them (who, organisation, role, purpose, how many accesses and records, first and last time, overrides), one plain sentence per access on this page with the rule that allowed it (newest first, overrides marked; changes to who is who and who is family are listed too, with the reason given), `next` for the rest, and `unreadable_entries` if any ledger entry could not be read", body = serde_json::Value),
              (status = 400, description = "An unsupported, repeated or empty parameter", content_type = "application/fhir+json", body = serde_json::Value),
              (status = 401, description = "Missing or bad token", content_type = "application/fhir+json", body = serde_json::Value),
              (status = 404, description = "Unknown person", content_type = "application/fhir+json", body = serde_json::Value),
              (status = 503, description = "The ledger cannot record this access, so nothing is shown", content_type = "application/fhir+json", body = serde_json::Value)),
    security(("bearer" = [])))]
pub(crate) async fn access_report(
    caller: Caller,
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<Disclosed, GatewayError> {
    let pairs = pairs(&request, &[])?;
    let mut paging = Paging {
        count: DEFAULT_AUDIT_COUNT,
        before: None,
    };
    for (name, value) in &pairs {
        if !Paging::read(name, value, &mut paging)? {
            return Err(bad_parameter(
                name,
                "is not supported by $access-report (_count, _before)",
            ));
        }
    }
    // The person as the person index knows them now (a child without an NHS number, an
    // unborn sibling, a merged id's survivor); unknown, 404.
    let (person, _) = state.target_of(&path.into_inner()).await?;
    let entry = || {
        Entry::by_caller(
            &caller,
            &request,
            Interaction::Operation,
            "Patient/$access-report",
        )
        .about(person.clone())
    };
    let (view, rule) = match privacy_officer(&caller) {
        Ok(org) => {
            let id: Vec<kinfold_identity::PersonId> = person.parse().into_iter().collect();
            if !state.is_concerned(&org, &id).await? {
                state
                    .record_access(entry().refused("audit.organisation-not-concerned").done())
                    .await?;
                return Err(GatewayError::UnknownPerson);
            }
            (View::Officer, "audit.privacy-officer".to_owned())
        }
        // Anyone else needs a current relationship with the person, as for their records.
        Err(_) => {
            let gathered = crate::pipeline::gather(
                &state,
                &caller,
                &request,
                &person,
                false,
                "Patient/$access-report",
            )
            .await?;
            (View::Professional, gathered.relationship.rule.to_owned())
        }
    };

    // Every entry about this person, newest first, a batch at a time: the summary covers all
    // of them, and the page lists those before `_before`.
    let mut groups: BTreeMap<Who, Group> = BTreeMap::new();
    let mut total = 0u64;
    let mut overrides = 0u64;
    let mut unreadable = Vec::new();
    let mut page = Vec::new();
    let mut more_after_page = None;
    let mut cursor = None;
    loop {
        let rows = state
            .store
            .ledger_search(&LedgerQuery {
                patient: Some(person.clone()),
                before: cursor,
                limit: SCAN_BATCH,
                ..LedgerQuery::default()
            })
            .await?;
        for row in &rows {
            let Ok(record) = serde_json::from_str::<AuditRecord>(&row.record) else {
                if unreadable.len() < 100 {
                    unreadable.push(row.seq);
                }
                continue;
            };
            if !is_access(&record) {
                continue;
            }
            total += 1;
            let is_override = is_override(&record);
            overrides += u64::from(is_override);
            let group = groups
                .entry((
                    record.agent.who.clone(),
                    record.agent.organisation.clone(),
                    record.agent.role.clone(),
                    record.purpose.clone(),
                ))
                .or_default();
            group.accesses += 1;
            group.records += shown(&record) as u64;
            group.overrides += u64::from(is_override);
            if group.last.is_empty() {
                group.last.clone_from(&record.recorded);
            }
            group.first.clone_from(&record.recorded);
            group
                .agencies
                .extend(agencies(&record).into_iter().map(str::to_owned));
            if paging.before.is_none_or(|b| row.seq < b) {
                if page.len() < paging.count {
                    // Only the accesses on this page are written out as sentences.
                    page.push(describe(row.seq, &record, view));
                } else if more_after_page.is_none() {
                    more_after_page = page.last().and_then(|p| p["ledger_entry"].as_i64());
                }
            }
        }
        match rows.last() {
            Some(last) if rows.len() == usize::try_from(SCAN_BATCH).unwrap_or(usize::MAX) => {
                cursor = Some(last.seq);
            }
            _ => break,
        }
    }
    let receipt = state.record_access(entry().rule(&rule).done()).await?;
    let base = kinfold_http::base_url(state.public_base_url.as_deref(), &request);
    let by_who: Vec<Value> = groups
        .into_iter()
        .map(|((who, organisation, role, purpose), g)| {
            json!({
                "who": who, "organisation": organisation, "role": role, "purpose": purpose,
                "accesses": g.accesses, "records": g.records, "overrides": g.overrides,
                "first": g.first, "last": g.last, "agencies": g.agencies,
            })
        })
        .collect();
    let people = by_who.len();
    let mut summary = match total {
        0 => "Nobody has looked at these records through Kinfold.".to_owned(),
        1 if overrides == 1 => {
            "Someone looked at these records through Kinfold once, using an override.".to_owned()
        }
        1 => "Someone looked at these records through Kinfold once.".to_owned(),
        n => format!(
            "{people} {} looked at these records through Kinfold {n} times in all; {overrides} of those used an override.",
            if people == 1 {
                "person or system"
            } else {
                "people or systems"
            }
        ),
    };
    if !unreadable.is_empty() {
        summary.push_str(" Some ledger entries could not be read, so this report may be incomplete: see unreadable_entries.");
    }
    let next = more_after_page.map(|before| {
        next_link(
            &base,
            &format!("/Patient/{person}/$access-report"),
            &pairs,
            paging.count,
            before,
        )
    });
    Ok(Disclosed::json(
        receipt,
        &json!({
            "patient": person,
            "summary": summary,
            "total": total,
            "by_who": by_who,
            "accesses": page,
            "next": next,
            "unreadable_entries": unreadable,
        }),
    ))
}

/// Whether a ledger entry is an access to the person's records (not a refusal, and not a look
/// at the audit trail itself).
fn is_access(record: &AuditRecord) -> bool {
    record.event_type == "rest"
        && record.outcome == "0"
        && record.query != "AuditEvent"
        && record.query != "Patient/$access-report"
}

/// The agencies an access disclosed records from, by name, once each.
fn agencies(record: &AuditRecord) -> Vec<&str> {
    let agencies: BTreeSet<&str> = record
        .entities
        .iter()
        .filter_map(|e| e.agency.as_deref())
        .collect();
    agencies
        .into_iter()
        .map(|a| {
            a.parse::<kinfold_fhir::Agency>()
                .map(|a| a.display_name())
                .unwrap_or(a)
        })
        .collect()
}

/// Whether an access used a safeguarding override.
fn is_override(record: &AuditRecord) -> bool {
    !is_recorded_decision(record)
        && (record.entities.iter().any(|e| e.disclosure == "override")
            || record.justification.is_some())
}

/// Whether an entry records a decision (a change to who is who or who is family, an override
/// review), not a disclosure.
fn is_recorded_decision(record: &AuditRecord) -> bool {
    record.query.starts_with("identity-")
        || record.query.starts_with("family-")
        || record.query == "override-review"
        || record.query.starts_with("consent-")
}

/// Who reads an access report: a privacy officer sees every access with its rule and what was
/// withheld; a professional sees who looked and when, and the records shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Officer,
    Professional,
}

/// How many records an access showed (not those it withheld).
fn shown(record: &AuditRecord) -> usize {
    record
        .entities
        .iter()
        .filter(|e| !e.disclosure.starts_with("withheld"))
        .count()
}

fn describe(seq: i64, record: &AuditRecord, view: View) -> Value {
    let agencies = agencies(record);
    let is_override = is_override(record);
    let when = record
        .recorded
        .replace('T', " at ")
        .trim_end_matches('Z')
        .chars()
        .take(22)
        .collect::<String>();
    let who = match (&record.agent.role, &record.agent.organisation) {
        (Some(role), Some(org)) => format!("{} ({role}) from organisation {org}", record.agent.who),
        (Some(role), None) => format!("{} ({role})", record.agent.who),
        (None, Some(org)) => format!("{} from organisation {org}", record.agent.who),
        (None, None) => record.agent.who.clone(),
    };
    let what = match record.query.as_str() {
        "Patient/$everything" => format!("looked at {} records", shown(record)),
        "Patient?identifier" => "looked up who this child is".to_owned(),
        "Patient/{id}" => "looked at this child's details".to_owned(),
        "Patient/$everything?family=true" => format!(
            "looked at {} of this person's records as part of their family's records",
            shown(record)
        ),
        "Patient/$family" => "looked at who this person's family is".to_owned(),
        "Person/{id}" => "looked at which agencies hold this person's records".to_owned(),
        "identity-link" => "linked an agency's record to this person".to_owned(),
        "override-review" => "reviewed an override of this person's records".to_owned(),
        "consent-recorded" => {
            "recorded this person's decision not to share some records".to_owned()
        }
        "consent-withdrawn" => {
            "withdrew this person's decision not to share some records".to_owned()
        }
        "identity-review-queued" => {
            "put a possible match for this person on the review queue".to_owned()
        }
        "identity-review-rejected" => "decided a possible match was not this person".to_owned(),
        "family-edge" => "changed this person's family links".to_owned(),
        "family-unborn-child" => "recorded a booked pregnancy as an unborn child".to_owned(),
        "family-born" => "recorded that the unborn child was born as this baby".to_owned(),
        other => format!("used {other}"),
    };
    let from = if agencies.is_empty() {
        String::new()
    } else {
        format!(" from {}", agencies.join(", "))
    };
    let purpose = record
        .purpose
        .as_deref()
        .map(|p| format!(" for {}", p.replace('-', " ")))
        .unwrap_or_default();
    let mut sentence = format!("On {when} (UTC), {who} {what}{from}{purpose}.");
    if is_override {
        sentence = format!(
            "OVERRIDE: {sentence} Reason given: {}",
            record.justification.as_deref().unwrap_or("none recorded")
        );
    } else if is_recorded_decision(record)
        && let Some(reason) = &record.justification
    {
        sentence = format!("{sentence} Reason given: {reason}");
    }
    let mut line = json!({
        "ledger_entry": seq,
        "when": record.recorded,
        "who": record.agent.who,
        "organisation": record.agent.organisation,
        "role": record.agent.role,
        "purpose": record.purpose,
        "agencies": agencies,
        "records": shown(record),
        "override": is_override,
        "rule": record.rule,
        "text": sentence,
    });
    if view == View::Officer {
        // What was withheld from the caller, and under which rules: for privacy officers.
        let withheld: Vec<&str> = record
            .entities
            .iter()
            .filter_map(|e| e.disclosure.strip_prefix("withheld (")?.strip_suffix(')'))
            .collect();
        line["withheld"] = json!(withheld.len());
        if !withheld.is_empty() {
            line["withheld_rules"] = json!(withheld.into_iter().collect::<BTreeSet<_>>());
        }
    }
    line
}
