//! The worklist: the notifications addressed to the signed-in user's team (the API's inbox,
//! `GET /Task?code=notification`), most urgent and soonest due first, overdue ones marked;
//! acknowledged with a note and completed with the action taken, each one form.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{Answer, Purpose, encode};
use crate::app::{Dashboard, form_of, html, problem, require, see_other};
use crate::layout::{choice, csrf_field, page, purpose_field};
use crate::session::Session;

/// The most notifications one page of the worklist reads (the API's largest page).
const PAGE: usize = 500;

/// The worklist's filters.
#[derive(Debug, Default, Deserialize)]
pub struct WorklistQuery {
    status: Option<String>,
    rule: Option<String>,
    team: Option<String>,
    done: Option<String>,
}

const STATUSES: [(&str, &str); 4] = [
    ("open", "Waiting (not completed)"),
    ("requested", "Not yet acknowledged"),
    ("received", "Acknowledged"),
    ("completed", "Completed"),
];

/// One notification as the worklist shows it.
struct Row<'a> {
    task: &'a Value,
    urgent: bool,
    due: Option<DateTime<Utc>>,
    overdue: bool,
}

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn rows(tasks: &[Value], now: DateTime<Utc>) -> Vec<Row<'_>> {
    let mut rows: Vec<Row<'_>> = tasks
        .iter()
        .map(|task| {
            let due = DateTime::parse_from_rfc3339(text(task, "/restriction/period/end"))
                .ok()
                .map(|d| d.with_timezone(&Utc));
            Row {
                task,
                urgent: matches!(text(task, "/priority"), "urgent" | "asap" | "stat"),
                due,
                overdue: text(task, "/status") != "completed" && due.is_some_and(|d| d < now),
            }
        })
        .collect();
    // Most urgent first, then the soonest due (the longest overdue at the top).
    rows.sort_by(|a, b| {
        b.urgent
            .cmp(&a.urgent)
            .then(a.due.is_none().cmp(&b.due.is_none()))
            .then(a.due.cmp(&b.due))
    });
    rows
}

fn status_words(status: &str) -> &str {
    match status {
        "requested" => "Not yet acknowledged",
        "received" => "Acknowledged",
        "completed" => "Completed",
        other => other,
    }
}

fn outputs(task: &Value) -> Vec<String> {
    task["output"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            format!(
                "{}: {}",
                text(o, "/type/text"),
                o["valueString"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn actions(row: &Row<'_>, session: &Session, n: usize) -> Markup {
    let id = text(row.task, "/id");
    let status = text(row.task, "/status");
    html! {
        @if status == "requested" {
            form class="inline" method="post" action=(format!("/app/tasks/{}/acknowledge", encode(id))) {
                (csrf_field(session))
                div {
                    label for=(format!("note-{n}")) { "Note (optional)" }
                    input type="text" id=(format!("note-{n}")) name="note" maxlength="2000";
                }
                (purpose_field(&format!("ack-purpose-{n}"), "direct-care"))
                button class="primary" type="submit" { "Acknowledge" }
            }
        }
        @if status != "completed" {
            form class="inline" method="post" action=(format!("/app/tasks/{}/complete", encode(id))) {
                (csrf_field(session))
                div {
                    label for=(format!("action-{n}")) { "Action taken" }
                    input type="text" id=(format!("action-{n}")) name="action" required minlength="10" maxlength="2000";
                }
                button class="secondary" type="submit" { "Complete" }
            }
        }
        @for line in outputs(row.task) {
            div class="muted" { (line) }
        }
    }
}

/// `GET /app/worklist`.
pub async fn worklist_page(
    dashboard: web::Data<Dashboard>,
    request: HttpRequest,
    query: web::Query<WorklistQuery>,
) -> HttpResponse {
    let (reference, session) = match require(&dashboard, &request) {
        Ok(signed_in) => signed_in,
        Err(to_sign_in) => return *to_sign_in,
    };
    let token = match dashboard
        .token(&request, &reference, &session, &Purpose::DirectCare)
        .await
    {
        Ok(token) => token,
        Err(refused) => return *refused,
    };
    let status = query.status.as_deref().unwrap_or("open");
    let api_status = match status {
        "requested" | "received" | "completed" => status,
        _ => "requested,received",
    };
    let answer = dashboard
        .api
        .get(
            &token,
            &format!("/Task?code=notification&status={api_status}&_count={PAGE}"),
        )
        .await;
    let bundle = match answer {
        Answer::Json(bundle) => bundle,
        Answer::Forbidden => json!({"entry": [], "total": 0, "forbidden": true}),
        other => {
            let words = match other {
                Answer::Refused(_, words) => words,
                _ => String::new(),
            };
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(&session),
                "Worklist",
                &format!("The worklist cannot be read just now. {words}"),
            );
        }
    };
    // Privacy officers review each override: their queue is on the same page.
    let reviews: Option<Vec<Value>> = if session.user.role == "privacy-officer" {
        match dashboard
            .api
            .get(&token, "/Task?code=override-review")
            .await
        {
            Answer::Json(found) => Some(
                found["entry"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| e["resource"].clone())
                    .collect(),
            ),
            _ => None,
        }
    } else {
        None
    };
    let tasks: Vec<Value> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["resource"].clone())
        .collect();
    let total = bundle["total"].as_u64().unwrap_or(tasks.len() as u64);
    let now = Utc::now();
    let all = rows(&tasks, now);
    let mut rules: Vec<(&str, &str)> = all
        .iter()
        .map(|r| {
            (
                text(r.task, "/reasonCode/coding/0/code"),
                text(r.task, "/reasonCode/text"),
            )
        })
        .collect();
    rules.sort();
    rules.dedup();
    let mut teams: Vec<&str> = all.iter().map(|r| text(r.task, "/owner/display")).collect();
    teams.sort();
    teams.dedup();
    let rule = query.rule.as_deref().unwrap_or("");
    let team = query.team.as_deref().unwrap_or("");
    let shown: Vec<&Row<'_>> = all
        .iter()
        .filter(|r| rule.is_empty() || text(r.task, "/reasonCode/coding/0/code") == rule)
        .filter(|r| team.is_empty() || text(r.task, "/owner/display") == team)
        .collect();
    let overdue = shown.iter().filter(|r| r.overdue).count();
    let body = html! {
        @match query.done.as_deref() {
            Some("acknowledged") => div id="done-acknowledged" class="banner done" role="status" { p { "Acknowledged: your name and the time are on the notification, and it will not escalate." } },
            Some("completed") => div id="done-completed" class="banner done" role="status" { p { "Completed: the action you took is recorded on the notification." } },
            _ => {},
        }
        @if let Some(reviews) = &reviews {
            (override_reviews(reviews))
        }
        @if bundle["forbidden"] == true {
            div class="banner" { p { "Notifications are addressed to teams by role; your role receives none." } }
        }
        form class="inline" method="get" action="/app/worklist" {
            (choice("status", "status", "Status", status, STATUSES))
            (choice("rule", "rule", "Rule", rule,
                std::iter::once(("", "Every rule")).chain(rules.iter().copied())))
            (choice("team", "team", "Team", team,
                std::iter::once(("", "Every team")).chain(teams.iter().map(|t| (*t, *t)))))
            button class="secondary" type="submit" { "Filter" }
        }
        p {
            strong { (shown.len()) } " notification" @if shown.len() != 1 { "s" } " shown"
            @if overdue > 0 { ", " span class="urgent" { (overdue) " overdue" } }
            "."
            @if total as usize > tasks.len() {
                " " strong { "This list shows the first " (tasks.len()) " of " (total) ": complete some, or filter, to see the rest." }
            }
        }
        @if shown.is_empty() {
            p { "Nothing to do here." }
        } @else {
            table {
                caption class="visually-hidden" { "Notifications" }
                thead {
                    tr {
                        th scope="col" { "Due" }
                        th scope="col" { "Child" }
                        th scope="col" { "What happened" }
                        th scope="col" { "For" }
                        th scope="col" { "Status" }
                        th scope="col" { "Act" }
                    }
                }
                tbody {
                    @for (n, row) in shown.iter().enumerate() {
                        tr class=[row.overdue.then_some("overdue")] {
                            td {
                                @if row.overdue { span class="urgent" { "OVERDUE" } br; }
                                @if row.urgent { span class="tag alert" { "Urgent" } br; }
                                (row.due.map(|d| d.format("%a %d %b %H:%M").to_string()).unwrap_or_default())
                            }
                            td {
                                @let child = text(row.task, "/for/reference").trim_start_matches("Patient/");
                                @let named = text(row.task, "/for/display");
                                a href=(format!("/app/child/{}", encode(child))) {
                                    @if named.is_empty() { "Open the child's page" } @else { (named) }
                                }
                            }
                            td {
                                (text(row.task, "/reasonCode/text"))
                                @for note in row.task["note"].as_array().into_iter().flatten().skip(1) {
                                    div class="muted" { (text(note, "/text")) }
                                }
                                @if row.task.get("focus").is_none() {
                                    div class="muted" { "The record itself is withheld from you; ask its service." }
                                }
                            }
                            td { (text(row.task, "/owner/display")) br; span class="muted" { (text(row.task, "/businessStatus/text")) } }
                            td { (status_words(text(row.task, "/status"))) }
                            td { (actions(row, &session, n)) }
                        }
                    }
                }
            }
        }
    };
    html(StatusCode::OK, page("Worklist", Some(&session), body))
}

/// The overrides waiting for a privacy officer's review.
fn override_reviews(reviews: &[Value]) -> Markup {
    html! {
        section class="panel" aria-labelledby="reviews" {
            h2 id="reviews" { "Overrides to review" }
            @if reviews.is_empty() {
                p { "No override is waiting for review." }
            } @else {
                table {
                    caption class="visually-hidden" { "Overrides to review" }
                    thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "Their reason" } th scope="col" { "Records revealed" } th scope="col" { "Status" } } }
                    tbody {
                        @for review in reviews {
                            tr {
                                td { (text(review, "/authoredOn").get(..16).unwrap_or("").replace('T', " ")) }
                                td { (text(review, "/requester/display")) }
                                td { (text(review, "/reasonCode/text")) }
                                td { (review["input"].as_array().map_or(0, Vec::len)) }
                                td {
                                    @match text(review, "/status") {
                                        "completed" => "Reviewed",
                                        _ => "Waiting for review",
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A task id as the API mints them.
fn is_task_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

async fn act(
    dashboard: web::Data<Dashboard>,
    request: HttpRequest,
    id: String,
    body: web::Bytes,
    acknowledge: bool,
) -> HttpResponse {
    let (reference, session) = match require(&dashboard, &request) {
        Ok(signed_in) => signed_in,
        Err(to_sign_in) => return *to_sign_in,
    };
    let fields = match form_of(&session, &body) {
        Ok(fields) => fields,
        Err(refused) => return *refused,
    };
    if !is_task_id(&id) {
        return problem(
            StatusCode::NOT_FOUND,
            Some(&session),
            "No such notification",
            "No such notification.",
        );
    }
    let purpose = Purpose::chosen(fields.get("purpose").map(String::as_str));
    let token = match dashboard
        .token(&request, &reference, &session, &purpose)
        .await
    {
        Ok(token) => token,
        Err(refused) => return *refused,
    };
    let (path, payload, done) = if acknowledge {
        let note = fields.get("note").map(|n| n.trim()).unwrap_or("");
        let payload = if note.is_empty() {
            json!({})
        } else {
            json!({"note": note})
        };
        (format!("/Task/{id}/$acknowledge"), payload, "acknowledged")
    } else {
        let action = fields.get("action").map(|a| a.trim()).unwrap_or("");
        (
            format!("/Task/{id}/$complete"),
            json!({"action": action}),
            "completed",
        )
    };
    match dashboard.api.post(&token, &path, &payload).await {
        Answer::Json(_) | Answer::Text(_) => see_other(&format!("/app/worklist?done={done}")),
        Answer::NotFound | Answer::Forbidden => problem(
            StatusCode::NOT_FOUND,
            Some(&session),
            "No such notification",
            "No such notification is addressed to you.",
        ),
        Answer::Refused(status, words) => problem(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            Some(&session),
            "Not done",
            &format!("Kinfold did not take this: {words} Nothing was changed."),
        ),
    }
}

/// `POST /app/tasks/{id}/acknowledge`.
pub async fn acknowledge(
    dashboard: web::Data<Dashboard>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    act(dashboard, request, path.into_inner(), body, true).await
}

/// `POST /app/tasks/{id}/complete`.
pub async fn complete(
    dashboard: web::Data<Dashboard>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    act(dashboard, request, path.into_inner(), body, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urgent_first_then_soonest_due_and_overdue_marked() {
        let tasks = vec![
            json!({"id": "a", "priority": "routine", "status": "requested", "restriction": {"period": {"end": "2026-01-02T09:00:00Z"}}}),
            json!({"id": "b", "priority": "urgent", "status": "requested", "restriction": {"period": {"end": "2026-01-05T09:00:00Z"}}}),
            json!({"id": "c", "priority": "routine", "status": "requested", "restriction": {"period": {"end": "2026-01-01T09:00:00Z"}}}),
            json!({"id": "d", "priority": "routine", "status": "completed", "restriction": {"period": {"end": "2025-12-01T09:00:00Z"}}}),
        ];
        let now = DateTime::parse_from_rfc3339("2026-01-02T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let order: Vec<(&str, bool)> = rows(&tasks, now)
            .iter()
            .map(|r| (text(r.task, "/id"), r.overdue))
            .collect();
        assert_eq!(
            order,
            vec![("b", false), ("d", false), ("c", true), ("a", true)]
        );
    }
}
