//! Override reviews: every safeguarding override puts a FHIR `Task` (code `override-review`,
//! status `requested`) on the privacy officers' queue of each organisation whose records it
//! revealed; a privacy officer of that organisation lists them and completes each with an
//! outcome. Both are in the ledger.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use kinfold_fhir::{Agency, IssueType};
use kinfold_http::ApiError;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::answer::Disclosed;
use crate::audit::{self, Entry, Interaction};
use crate::auth::Caller;
use crate::error::GatewayError;
use crate::guard::privacy_officer;
use crate::state::GatewayState;

/// The code system of Kinfold's task codes.
pub const TASK_SYSTEM: &str = "https://kinfold.example/fhir/CodeSystem/task";
/// The task code of an override review.
pub const OVERRIDE_REVIEW: &str = "override-review";

/// Builds the review tasks of one override: one per organisation whose records it revealed.
pub(crate) fn tasks_for(
    state: &GatewayState,
    caller: &Caller,
    person: &str,
    justification: &str,
    revealed: &[(String, Agency)],
) -> Vec<(String, String, Value)> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut owners: Vec<String> = revealed
        .iter()
        .map(|(_, agency)| state.disclosure.owner_of(*agency))
        .collect();
    owners.sort();
    owners.dedup();
    owners
        .into_iter()
        .map(|owner| {
            let id = uuid::Uuid::new_v4().to_string();
            let inputs: Vec<Value> = revealed
                .iter()
                .filter(|(_, agency)| state.disclosure.owner_of(*agency) == owner)
                .map(|(url, _)| json!({"type": {"text": "revealed record"}, "valueReference": {"reference": url}}))
                .collect();
            let task = json!({
                "resourceType": "Task",
                "id": id,
                "status": "requested",
                "intent": "order",
                "code": {"coding": [{"system": TASK_SYSTEM, "code": OVERRIDE_REVIEW, "display": "Review a safeguarding override"}]},
                "for": {"reference": format!("Patient/{person}")},
                "authoredOn": now,
                "lastModified": now,
                "requester": {
                    "identifier": {"system": "urn:kinfold:token-subject", "value": caller.subject},
                    "display": caller.subject
                },
                "owner": {
                    "identifier": {"system": kinfold_fhir::ODS_CODE_SYSTEM, "value": owner},
                    "display": format!("Privacy officers of {owner}")
                },
                "reasonCode": {"text": justification},
                "input": inputs,
            });
            (id, owner, task)
        })
        .collect()
}

/// The privacy officers' queue of override reviews (`GET /Task?code=override-review`,
/// documented with the inbox in `crate::inbox`).
pub(crate) async fn queue(
    caller: Caller,
    state: web::Data<GatewayState>,
    request: HttpRequest,
    status: Option<String>,
) -> Result<Disclosed, GatewayError> {
    let bad = |message: &str| {
        GatewayError::Refused(ApiError::new(
            StatusCode::BAD_REQUEST,
            IssueType::NotSupported,
            "bad-search",
            message.to_owned(),
        ))
    };
    if let Some(status) = &status
        && status != "requested"
        && status != "completed"
    {
        return Err(bad("status is requested or completed"));
    }
    let org = privacy_officer(&caller)?;
    let (bodies, total) = state.store.reviews_of(&org, status.as_deref()).await?;
    let entries: Vec<Value> = bodies
        .iter()
        .filter_map(|b| serde_json::from_str::<Value>(b).ok())
        .map(|task| json!({"fullUrl": format!("urn:kinfold:task:{}", task["id"].as_str().unwrap_or_default()), "resource": task, "search": {"mode": "match"}}))
        .collect();
    let receipt = state
        .record_access(
            Entry::by_caller(
                &caller,
                &request,
                Interaction::Search,
                "Task?code=override-review",
            )
            .done(),
        )
        .await?;
    let mut bundle = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "type": "searchset",
        "total": total,
    });
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    Ok(Disclosed::fhir(receipt, &bundle))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Completion {
    outcome: String,
    justified: bool,
}

/// A privacy officer completes an override review with its outcome (`POST
/// /Task/{id}/$complete` for a Task that is no notification; documented in `crate::inbox`).
pub(crate) async fn complete(
    caller: Caller,
    state: web::Data<GatewayState>,
    request: HttpRequest,
    id: String,
    body: web::Bytes,
) -> Result<Disclosed, GatewayError> {
    let org = privacy_officer(&caller)?;
    let bad = |code: &str, message: &str| {
        GatewayError::Refused(ApiError::new(
            StatusCode::BAD_REQUEST,
            IssueType::Invalid,
            code,
            message.to_owned(),
        ))
    };
    let completion: Completion = serde_json::from_slice(&body)
        .map_err(|e| bad("body", &format!("The body is not a completion: {e}")))?;
    let outcome = completion.outcome.trim();
    if !(10..=2000).contains(&outcome.chars().count()) {
        return Err(bad(
            "outcome",
            "Say what the review found, in 10 to 2,000 characters.",
        ));
    }
    let not_found = || GatewayError::Refused(ApiError::not_found(format!("Task/{id}")));
    let (owner, stored) = state.store.review(&id).await?.ok_or_else(not_found)?;
    if owner != org {
        // Another organisation's review: as if it did not exist.
        return Err(not_found());
    }
    let mut task: Value = serde_json::from_str(&stored).map_err(|_| {
        GatewayError::Store(kinfold_store::StoreError::Corrupt(
            "a review task cannot be read back".into(),
        ))
    })?;
    if task["status"] != "requested" {
        return Err(bad("completed", "This review is already completed."));
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    task["status"] = json!("completed");
    task["lastModified"] = json!(now);
    task["output"] = json!([
        {"type": {"text": "outcome"}, "valueString": outcome},
        {"type": {"text": "justified"}, "valueBoolean": completion.justified},
        {"type": {"text": "reviewed by"}, "valueString": caller.subject}
    ]);
    let person = task["for"]["reference"]
        .as_str()
        .and_then(|r| r.strip_prefix("Patient/"))
        .map(str::to_owned);
    let receipt = state
        .record_access(
            Entry::by_caller(&caller, &request, Interaction::Update, "override-review")
                .about_maybe(person)
                .entities(vec![audit::disclosed(&format!("Task/{id}"), "Task", None)])
                .rule("kinfold.override.reviewed")
                .justification(format!(
                    "{} ({})",
                    outcome,
                    if completion.justified {
                        "justified"
                    } else {
                        "not justified"
                    }
                ))
                .done(),
        )
        .await?;
    state
        .store
        .review_put(&id, &owner, "completed", &task.to_string())
        .await?;
    Ok(Disclosed::fhir(receipt, &task))
}
