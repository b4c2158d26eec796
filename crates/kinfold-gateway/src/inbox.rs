//! The gateway's `Task` routes: the inbox of notifications (issue 27) and the privacy officers'
//! queue of override reviews share `GET /Task` (by `code`) and `$complete` (by the Task's id).
//!
//! A notification is seen and acted on only by those it is addressed to: professionals of the
//! owning organisation in the owning role (the named practitioner, or a colleague covering),
//! and once it has been escalated, the safeguarding lead it was escalated to. To anyone else a
//! notification is answered exactly as one that does not exist. Reading the inbox,
//! acknowledging and completing are each a ledger entry about the child.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use chrono::SecondsFormat;
use kinfold_consent::{Requester, Role};
use kinfold_fhir::IssueType;
use kinfold_http::ApiError;
use kinfold_store::{InboxQuery, NEVER, StoreError, StoredNotification};
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::answer::Disclosed;
use crate::audit::{self, Entry, Interaction};
use crate::auth::Caller;
use crate::disclosure::requester;
use crate::error::GatewayError;
use crate::notice::NOTIFICATION;
use crate::reviews::OVERRIDE_REVIEW;
use crate::state::GatewayState;

/// The statuses a notification passes through.
const STATUSES: [&str; 3] = ["requested", "received", "completed"];
/// The longest note or action taken.
const MOST_WORDS: usize = 2000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TaskQuery {
    code: String,
    status: Option<String>,
    owner: Option<String>,
    patient: Option<String>,
    #[serde(rename = "_count")]
    count: Option<String>,
}

fn bad(code: &str, message: impl Into<String>) -> GatewayError {
    GatewayError::Refused(ApiError::new(
        StatusCode::BAD_REQUEST,
        IssueType::Invalid,
        code,
        message.into(),
    ))
}

fn not_found(id: &str) -> GatewayError {
    GatewayError::Refused(ApiError::not_found(format!("Task/{id}")))
}

/// The Task queues: notifications (`code=notification`) for the caller's organisation and
/// role, or override reviews (`code=override-review`) for its privacy officers.
#[utoipa::path(get, path = "/Task", tag = "Notifications",
    params(
        ("code" = String, Query, description = "`notification` (the caller's inbox) or `override-review` (the privacy officers' queue)"),
        ("status" = Option<String>, Query, description = "Notifications: `requested`, `received`, `completed`, or several comma-separated; default all. Reviews: `requested` or `completed`"),
        ("owner" = Option<String>, Query, description = "Notifications: the caller's own organisation (`RX1` or `https://fhir.nhs.uk/Id/ods-organization-code|RX1`); another's finds nothing"),
        ("patient" = Option<String>, Query, description = "Notifications: only those about this person (a Kinfold person id)"),
        ("_count" = Option<u32>, Query, description = "Notifications: at most this many (1 to 500, default 100), earliest deadline first; `total` counts them all"),
    ),
    responses(
        (status = 200, description = "searchset of Tasks: the notifications addressed to the caller (by name, or to their team) in their role at their organisation, each with its rule, priority, deadline (`restriction.period.end`), escalation level (`businessStatus`) and, where the caller may see it, the record that set it off (`focus`); or the organisation's override reviews", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 400, description = "Another code, or an unreadable status or count", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 403, description = "A token without role, organisation or purpose; for reviews, not a privacy officer", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn search(
    caller: Caller,
    state: web::Data<GatewayState>,
    request: HttpRequest,
    query: web::Query<TaskQuery>,
) -> Result<Disclosed, GatewayError> {
    let query = query.into_inner();
    match query.code.as_str() {
        OVERRIDE_REVIEW => {
            if query.owner.is_some() || query.patient.is_some() || query.count.is_some() {
                return Err(bad(
                    "bad-search",
                    "The override-review queue takes code and status only.",
                ));
            }
            crate::reviews::queue(caller, state, request, query.status).await
        }
        NOTIFICATION => inbox(caller, state, request, query).await,
        _ => Err(bad("bad-search", "code is notification or override-review")),
    }
}

async fn inbox(
    caller: Caller,
    state: web::Data<GatewayState>,
    request: HttpRequest,
    query: TaskQuery,
) -> Result<Disclosed, GatewayError> {
    let me = requester(&caller, &state.disclosure)?;
    let statuses: Vec<&str> = match &query.status {
        Some(list) => list
            .split(',')
            .map(|s| {
                STATUSES
                    .iter()
                    .find(|known| **known == s)
                    .copied()
                    .ok_or_else(|| bad("bad-search", "status is requested, received or completed (comma-separated for several)"))
            })
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let most: usize = match &query.count {
        Some(text) => text
            .parse()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| bad("bad-search", "_count is a number from 1 to 500"))?,
        None => 100,
    };
    let own = query.owner.as_deref().is_none_or(|owner| {
        let code = owner
            .strip_prefix(kinfold_fhir::ODS_CODE_SYSTEM)
            .and_then(|rest| rest.strip_prefix('|'))
            .unwrap_or(owner);
        code == me.organisation
    });
    let (found, total) = if own {
        state
            .store
            .notifications_of(&InboxQuery {
                org: &me.organisation,
                role: me.role.as_str(),
                name: None,
                statuses: &statuses,
                person: query.patient.as_deref(),
            })
            .await?
    } else {
        (Vec::new(), 0)
    };
    // A named practitioner's notifications are theirs and their team's; the team's are all
    // of them: a colleague covers when someone is away.
    let total = usize::try_from(total).unwrap_or(0);
    let shown: Vec<&StoredNotification> = found.iter().take(most).collect();
    let mut people: Vec<&str> = shown.iter().map(|n| n.person.as_str()).collect();
    people.sort_unstable();
    people.dedup();
    let query_text = format!("Task?code=notification&owner={}", me.organisation);
    let mut records: Vec<kinfold_ledger::AuditRecord> = people
        .iter()
        .map(|person| {
            Entry::by_caller(&caller, &request, Interaction::Search, &query_text)
                .about((*person).to_owned())
                .entities(
                    shown
                        .iter()
                        .filter(|n| n.person == *person)
                        .map(|n| audit::disclosed(&format!("Task/{}", n.id), "Task", None))
                        .collect(),
                )
                .rule("notification.addressee")
                .done()
        })
        .collect();
    if records.is_empty() {
        records.push(Entry::by_caller(&caller, &request, Interaction::Search, &query_text).done());
    }
    let receipt = state.record_all(records).await?;
    // Whom each notification is about, as the records name them (`for.display`): a worklist
    // must say which child a line is about without opening each.
    let names: HashMap<String, String> = state
        .identities
        .read(&state.store, &state.ledger, |inner| {
            people
                .iter()
                .filter_map(|p| {
                    let id: kinfold_identity::PersonId = p.parse().ok()?;
                    let (name, born) = inner.named(&id)?;
                    let display = match born {
                        Some(born) => format!("{name} (born {born})"),
                        None => name,
                    };
                    Some(((*p).to_owned(), display))
                })
                .collect()
        })
        .await?;
    let entries: Vec<Value> = shown
        .iter()
        .filter_map(|n| {
            let mut task = serde_json::from_str::<Value>(&n.body).ok()?;
            if let Some(display) = names.get(&n.person) {
                task["for"]["display"] = json!(display);
            }
            Some(task)
        })
        .map(|task| {
            json!({
                "fullUrl": format!("urn:kinfold:task:{}", task["id"].as_str().unwrap_or_default()),
                "resource": task,
                "search": {"mode": "match"}
            })
        })
        .collect();
    let mut bundle = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "type": "searchset",
        "total": total,
    });
    if total > entries.len() {
        bundle["entry"] = json!([]);
        bundle["meta"] = json!({"tag": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED", "display": "More notifications match than this page shows"}]});
    }
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    Ok(Disclosed::fhir(receipt, &bundle))
}

/// Whether this requester may see and act on this notification: the owning organisation's
/// professionals in the owning role, and once escalated, the lead it went to.
fn addressed_to(me: &Requester, notification: &StoredNotification, area: &str) -> bool {
    let owner =
        me.organisation == notification.owner_org && me.role.as_str() == notification.owner_role;
    let team_lead = notification.level >= 1
        && me.role == Role::SafeguardingProfessional
        && me.organisation == notification.owner_org;
    let area_lead = notification.level >= 2
        && me.role == Role::SafeguardingProfessional
        && me.organisation == area;
    owner || team_lead || area_lead
}

/// A notification the caller may act on, or "not found" (the same for one that does not
/// exist and one addressed to someone else).
async fn addressed(
    state: &GatewayState,
    me: &Requester,
    id: &str,
) -> Result<StoredNotification, GatewayError> {
    let found = state.store.notification(id).await?;
    match found {
        Some(n) if addressed_to(me, &n, &state.disclosure.area) => Ok(n),
        _ => Err(not_found(id)),
    }
}

/// One notification.
#[utoipa::path(get, path = "/Task/{id}", tag = "Notifications",
    params(("id" = String, Path, description = "The notification's id")),
    responses(
        (status = 200, description = "The Task", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn read(
    caller: Caller,
    state: web::Data<GatewayState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<Disclosed, GatewayError> {
    let me = requester(&caller, &state.disclosure)?;
    let id = path.into_inner();
    let notification = addressed(&state, &me, &id).await?;
    let receipt = state
        .record_access(
            Entry::by_caller(&caller, &request, Interaction::Read, &format!("Task/{id}"))
                .about(notification.person.clone())
                .entities(vec![audit::disclosed(&format!("Task/{id}"), "Task", None)])
                .rule("notification.addressee")
                .done(),
        )
        .await?;
    let task: Value = serde_json::from_str(&notification.body).map_err(|_| {
        GatewayError::Store(StoreError::Corrupt(
            "a notification cannot be read back".into(),
        ))
    })?;
    Ok(Disclosed::fhir(receipt, &task))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Acknowledgement {
    note: Option<String>,
}

/// A named practitioner acknowledges a notification: they have seen it (status `received`).
/// It escalates no further.
#[utoipa::path(post, path = "/Task/{id}/$acknowledge", tag = "Notifications",
    params(("id" = String, Path, description = "The notification's id")),
    request_body(content = serde_json::Value, description = "`{\"note\": \"…\"}` (optional, at most 2,000 characters)", content_type = "application/json"),
    responses(
        (status = 200, description = "The Task, `received`, naming who acknowledged it and when", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 400, description = "Not an acknowledgement, or no longer waiting for one", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 409, description = "Changed meanwhile (escalated or acknowledged): read it again", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn acknowledge(
    caller: Caller,
    state: web::Data<GatewayState>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<Disclosed, GatewayError> {
    let me = requester(&caller, &state.disclosure)?;
    let ack: Acknowledgement = if body.is_empty() {
        Acknowledgement { note: None }
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| bad("body", format!("The body is not an acknowledgement: {e}")))?
    };
    let note = ack
        .note
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if note
        .as_ref()
        .is_some_and(|n| n.chars().count() > MOST_WORDS)
    {
        return Err(bad("note", "A note is at most 2,000 characters."));
    }
    let id = path.into_inner();
    let notification = addressed(&state, &me, &id).await?;
    if notification.status != "requested" {
        return Err(bad(
            "acknowledged",
            "This notification is already acknowledged.",
        ));
    }
    let mut outputs = vec![json!({"type": {"text": "acknowledged by"}, "valueString": who(&me)})];
    if let Some(note) = &note {
        outputs.push(json!({"type": {"text": "note"}, "valueString": note}));
    }
    change(
        &state,
        &caller,
        &request,
        &me,
        notification,
        "received",
        outputs,
        "notification.acknowledged",
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Done {
    action: String,
}

/// Completes a Task: a notification with the action taken (or why none), by its addressee; an
/// override review with its outcome, by a privacy officer of its organisation.
#[utoipa::path(post, path = "/Task/{id}/$complete", tag = "Notifications",
    params(("id" = String, Path, description = "The Task's id")),
    request_body(content = serde_json::Value, description = "A notification: `{\"action\": \"…\"}` (10 to 2,000 characters: what was done, or why nothing). An override review: `{\"outcome\": \"…\" (10 to 2,000 characters), \"justified\": true|false}`", content_type = "application/json"),
    responses(
        (status = 200, description = "The Task, completed, with the action or outcome in `output`", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 400, description = "No action or outcome, or already completed", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 403, description = "An override review, and not a privacy officer", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 409, description = "Changed meanwhile: read it again", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn complete(
    caller: Caller,
    state: web::Data<GatewayState>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<Disclosed, GatewayError> {
    let id = path.into_inner();
    let Some(notification) = state.store.notification(&id).await? else {
        return crate::reviews::complete(caller, state, request, id, body).await;
    };
    let me = requester(&caller, &state.disclosure)?;
    if !addressed_to(&me, &notification, &state.disclosure.area) {
        return Err(not_found(&id));
    }
    let done: Done = serde_json::from_slice(&body)
        .map_err(|e| bad("body", format!("The body is not a completion: {e}")))?;
    let action = done.action.trim();
    if !(10..=MOST_WORDS).contains(&action.chars().count()) {
        return Err(bad(
            "action",
            "Say what was done (or why nothing was), in 10 to 2,000 characters.",
        ));
    }
    if notification.status == "completed" {
        return Err(bad("completed", "This notification is already completed."));
    }
    let outputs = vec![
        json!({"type": {"text": "completed by"}, "valueString": who(&me)}),
        json!({"type": {"text": "action taken"}, "valueString": action}),
    ];
    change(
        &state,
        &caller,
        &request,
        &me,
        notification,
        "completed",
        outputs,
        "notification.completed",
    )
    .await
}

/// The practitioner as a Task names them.
fn who(me: &Requester) -> String {
    match &me.name {
        Some(name) => format!(
            "{name} ({}, {} at {})",
            me.practitioner,
            me.role.as_str(),
            me.organisation
        ),
        None => format!(
            "{} ({} at {})",
            me.practitioner,
            me.role.as_str(),
            me.organisation
        ),
    }
}

/// Moves a notification to `status`, adding `outputs`, with its ledger entry in the same
/// transaction; `409` if someone changed it first.
#[allow(clippy::too_many_arguments)]
async fn change(
    state: &GatewayState,
    caller: &Caller,
    request: &HttpRequest,
    me: &Requester,
    notification: StoredNotification,
    status: &str,
    outputs: Vec<Value>,
    rule: &str,
) -> Result<Disclosed, GatewayError> {
    let now = state.notifier.now();
    let stamp = now.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut task: Value = serde_json::from_str(&notification.body).map_err(|_| {
        GatewayError::Store(StoreError::Corrupt(
            "a notification cannot be read back".into(),
        ))
    })?;
    task["status"] = json!(status);
    task["lastModified"] = json!(stamp);
    let mut all = task["output"].as_array().cloned().unwrap_or_default();
    for mut output in outputs {
        output["extension"] = json!([{"url": "https://kinfold.example/fhir/StructureDefinition/recorded", "valueDateTime": stamp}]);
        all.push(output);
    }
    task["output"] = Value::Array(all);
    if status == "received" || task["executionPeriod"]["start"].is_null() {
        task["executionPeriod"]["start"] = json!(stamp);
    }
    if status == "completed" {
        task["executionPeriod"]["end"] = json!(stamp);
    }
    let mut changed = notification.clone();
    changed.status = status.to_owned();
    changed.next_escalation = NEVER;
    changed.updated = now.timestamp_millis();
    changed.body = task.to_string();
    let was = (notification.status.as_str(), notification.level);
    let record = Entry::by_caller(
        caller,
        request,
        Interaction::Update,
        &format!("Task/{}/{status}", notification.id),
    )
    .about(notification.person.clone())
    .entities(vec![kinfold_ledger::AuditEntity {
        reference: format!("Task/{}", notification.id),
        resource_type: "Task".into(),
        agency: None,
        disclosure: format!("{status} by {}", me.practitioner),
    }])
    .rule(rule)
    .done();
    let saved = state
        .ledger
        .record_within(vec![record], |rows| {
            let changed = &changed;
            async move {
                state
                    .store
                    .notification_change(changed, was, &[], &rows)
                    .await
                    .map_err(GatewayError::from)
            }
        })
        .await;
    match saved {
        Ok(((), receipt)) => {
            if status == "received" {
                state.metrics.notification_to_ack(
                    (now.timestamp_millis() - notification.created) as f64 / 1000.0,
                );
            }
            Ok(Disclosed::fhir(receipt, &task))
        }
        Err(GatewayError::Store(StoreError::Conflict(_))) => {
            Err(GatewayError::Refused(ApiError::new(
                StatusCode::CONFLICT,
                IssueType::Conflict,
                "changed-meanwhile",
                "This notification changed meanwhile (acknowledged or escalated): read it again.",
            )))
        }
        Err(other) => Err(other),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportQuery {
    period: Option<String>,
}

/// The most notifications one report reads.
const MOST_REPORTED: i64 = 20_000;

/// How one rule did for one team.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Tally {
    rule: String,
    requirement: String,
    organisation: String,
    role: String,
    notified: usize,
    acknowledged_in_time: usize,
    acknowledged_late: usize,
    completed: usize,
    overdue: usize,
    escalated: usize,
    recipient_unresolved: usize,
}

/// The notifications oversight report (G20): per rule and team, how many were notified,
/// acknowledged in time or late, completed, are overdue now, were escalated, and went to the
/// area's lead because nobody could be found.
#[utoipa::path(get, path = "/$notification-report", tag = "Notifications",
    params(("period" = Option<String>, Query, description = "`YYYY-MM-DD/YYYY-MM-DD`, both days included, by when the notifications were made (default: the last 30 days)")),
    responses(
        (status = 200, description = "`rows`: per rule and team (organisation and role), `notified`, `acknowledgedInTime`, `acknowledgedLate`, `completed`, `overdue` (unacknowledged past the deadline now), `escalated`, `recipientUnresolved`; of the caller's organisation's teams (the area's: every team); escalations are not counted as notifications of their own. `complete` is false when the period holds more than one report reads (20,000): ask for a shorter period", content_type = "application/json", body = serde_json::Value),
        (status = 400, description = "A period that cannot be read", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn report(
    caller: Caller,
    state: web::Data<GatewayState>,
    request: HttpRequest,
    query: web::Query<ReportQuery>,
) -> Result<Disclosed, GatewayError> {
    let org = crate::flags::overseer(&caller)?;
    let now = state.notifier.now();
    let today = now.date_naive();
    let (from, to) = match &query.period {
        Some(text) => {
            let (a, b) = text.split_once('/').ok_or_else(|| {
                crate::error::bad_parameter("period", "is two days, YYYY-MM-DD/YYYY-MM-DD")
            })?;
            let from = crate::error::day_parameter("period", Some(a))?.unwrap_or(today);
            let to = crate::error::day_parameter("period", Some(b))?.unwrap_or(today);
            if from > to {
                return Err(crate::error::bad_parameter(
                    "period",
                    "starts after it ends",
                ));
            }
            (from, to)
        }
        None => (today - chrono::Duration::days(29), today),
    };
    let millis = |day: chrono::NaiveDate| {
        day.and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp_millis())
    };
    let (found, total) = state
        .store
        .notifications_between(
            millis(from),
            millis(to + chrono::Duration::days(1)),
            MOST_REPORTED,
        )
        .await?;
    let everyone = org == state.disclosure.area;
    let mut rows: BTreeMap<(String, String, String), Tally> = BTreeMap::new();
    for n in found.iter().filter(|n| everyone || n.owner_org == org) {
        let Ok(task) = serde_json::from_str::<Value>(&n.body) else {
            continue;
        };
        if task["partOf"].is_array() {
            continue;
        }
        let tally = rows
            .entry((n.rule.clone(), n.owner_org.clone(), n.owner_role.clone()))
            .or_insert_with(|| Tally {
                rule: n.rule.clone(),
                requirement: task["extension"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|e| {
                        e["url"]
                            .as_str()
                            .is_some_and(|u| u.ends_with("notification-requirement"))
                    })
                    .and_then(|e| e["valueCode"].as_str())
                    .unwrap_or_default()
                    .to_owned(),
                organisation: n.owner_org.clone(),
                role: n.owner_role.clone(),
                ..Tally::default()
            });
        tally.notified += 1;
        let acknowledged = task["executionPeriod"]["start"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis());
        match acknowledged {
            Some(at) if at <= n.due => tally.acknowledged_in_time += 1,
            Some(_) => tally.acknowledged_late += 1,
            None if now.timestamp_millis() > n.due => tally.overdue += 1,
            None => {}
        }
        if n.status == "completed" {
            tally.completed += 1;
        }
        if n.level > 0 {
            tally.escalated += 1;
        }
        if task["extension"].as_array().into_iter().flatten().any(|e| {
            e["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("recipient-unresolved"))
        }) {
            tally.recipient_unresolved += 1;
        }
    }
    let receipt = state
        .record_access(
            Entry::by_caller(
                &caller,
                &request,
                Interaction::Search,
                &format!("$notification-report?period={from}/{to}"),
            )
            .rule("notification.oversight")
            .done(),
        )
        .await?;
    let shown = found.len();
    let total = usize::try_from(total).unwrap_or(0);
    Ok(Disclosed::json(
        receipt,
        &json!({
            "organisation": org,
            "period": {"start": from.to_string(), "end": to.to_string()},
            "at": now.to_rfc3339_opts(SecondsFormat::Secs, true),
            "complete": shown >= total,
            "total": total,
            "shown": shown,
            "rows": rows.into_values().collect::<Vec<_>>(),
        }),
    ))
}
