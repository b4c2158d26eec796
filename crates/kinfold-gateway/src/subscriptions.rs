//! FHIR Subscriptions for systems (issue 27): the R4 backport's topic-based `rest-hook`
//! channel, for registered SMART clients only.
//!
//! * **Who may subscribe, and where to.** Only a system client's token (`/auth/token`) may
//!   create one, for the notification topic and one of the organisations the client is
//!   registered for (`Task?owner={ODS}`), to an endpoint registered for that client exactly
//!   (`smart.clients[].endpoints`): no other address is ever posted to, so a subscription
//!   cannot be pointed at the gateway's own network. An endpoint is `https`, or `http` on a
//!   loopback address. Redirects are not followed. The endpoint must answer a handshake
//!   before the subscription is kept.
//! * **What is delivered.** Each notification addressed to the organisation, as the Task was
//!   made for that organisation's professionals (so only what they may see), numbered per
//!   subscription (`events-since-subscription-start`), in a `history` Bundle with the
//!   `SubscriptionStatus` Parameters first. Heartbeats when nothing has been sent for the
//!   subscription's period.
//! * **Never given up.** The events wait in the database (put there in the transaction that
//!   made the notification) and are posted in order of number, at least once, with back-off
//!   from 1 s doubling to 5 minutes on the gateway's clock; an endpoint that is down delays
//!   later events, never drops them. The notification itself is in the organisation's inbox
//!   and escalates by its deadline whatever the endpoint does. A gateway claims an event
//!   before posting it (compare-and-set on its next attempt), so two gateways on one database
//!   do not post it together. A subscriber that missed one (a gap in the numbers) reads it
//!   again with `$events`.

use std::sync::{Arc, Weak};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use chrono::SecondsFormat;
use kinfold_fhir::IssueType;
use kinfold_http::ApiError;
use kinfold_store::StoredSubscription;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::answer::Disclosed;
use crate::audit::{Entry, Interaction};
use crate::auth::Caller;
use crate::error::GatewayError;
use crate::state::GatewayState;

/// The topic: a safeguarding notification addressed to an organisation.
pub const TOPIC: &str = "https://kinfold.example/fhir/SubscriptionTopic/notification";
const BACKPORT: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";
/// The longest wait between two attempts.
const MAX_BACKOFF_SECONDS: i64 = 300;
/// How long a claimed delivery is held before another gateway may try it.
const CLAIM_MS: i64 = 30_000;
/// The shortest heartbeat period taken, in seconds.
const MIN_HEARTBEAT: i64 = 10;
/// The most events one `$events` answer carries.
const MOST_EVENTS: i64 = 500;

fn refused(status: StatusCode, issue: IssueType, code: &str, message: &str) -> GatewayError {
    GatewayError::Refused(ApiError::new(status, issue, code, message.to_owned()))
}

fn not_found(id: &str) -> GatewayError {
    GatewayError::Refused(ApiError::not_found(format!("Subscription/{id}")))
}

/// The system client behind a caller, or `403`.
fn system_client(caller: &Caller) -> Result<String, GatewayError> {
    caller.client.clone().ok_or_else(|| {
        GatewayError::Refused(ApiError::refused(
            StatusCode::FORBIDDEN,
            IssueType::Forbidden,
            "role-not-permitted",
            "Subscriptions are for registered system clients: use a token from /auth/token.",
        ))
    })
}

/// Whether an endpoint may be posted to at all: `https`, or `http` to a loopback address.
fn endpoint_allowed(endpoint: &str) -> bool {
    let Ok(url) = url::Url::parse(endpoint) else {
        return false;
    };
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            _ => false,
        },
        _ => false,
    }
}

/// The subscription's status Parameters, as the backport writes them.
fn status_parameters(
    sub: &StoredSubscription,
    kind: &str,
    events: &[(i64, String)],
    now: &str,
) -> Value {
    let mut parameters = vec![
        json!({"name": "subscription", "valueReference": {"reference": format!("Subscription/{}", sub.id)}}),
        json!({"name": "topic", "valueCanonical": TOPIC}),
        json!({"name": "status", "valueCode": sub.status}),
        json!({"name": "type", "valueCode": kind}),
        json!({"name": "events-since-subscription-start", "valueString": sub.events_count.to_string()}),
    ];
    for (number, task) in events {
        parameters.push(json!({"name": "notification-event", "part": [
            {"name": "event-number", "valueString": number.to_string()},
            {"name": "timestamp", "valueInstant": now},
            {"name": "focus", "valueReference": {"reference": format!("Task/{task}")}},
        ]}));
    }
    json!({
        "resourceType": "Parameters",
        "id": uuid::Uuid::new_v4().to_string(),
        "meta": {"profile": [format!("{BACKPORT}backport-subscription-status-r4")]},
        "parameter": parameters,
    })
}

/// A notification Bundle: the status first, then each Task.
fn notification_bundle(
    sub: &StoredSubscription,
    kind: &str,
    events: &[(i64, Value)],
    now: &str,
) -> Value {
    let ids: Vec<(i64, String)> = events
        .iter()
        .map(|(n, task)| (*n, task["id"].as_str().unwrap_or_default().to_owned()))
        .collect();
    let mut entries = vec![json!({
        "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        "resource": status_parameters(sub, kind, &ids, now),
        "request": {"method": "GET", "url": format!("Subscription/{}/$status", sub.id)},
        "response": {"status": "200"},
    })];
    for (_, task) in events {
        entries.push(json!({
            "fullUrl": format!("urn:kinfold:task:{}", task["id"].as_str().unwrap_or_default()),
            "resource": task,
            "request": {"method": "POST", "url": "Task"},
            "response": {"status": "201"},
        }));
    }
    json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "type": "history",
        "timestamp": now,
        "entry": entries,
    })
}

/// What a Subscription asks, read and checked against the client's registration.
struct Asked {
    org: String,
    endpoint: String,
    heartbeat: i64,
}

fn read_subscription(
    body: &Value,
    registration: &crate::smart::SmartClient,
) -> Result<Asked, GatewayError> {
    let bad = |code: &str, message: &str| {
        refused(StatusCode::BAD_REQUEST, IssueType::Invalid, code, message)
    };
    if body["resourceType"] != "Subscription" {
        return Err(bad("subscription", "The body is not a FHIR Subscription."));
    }
    if body["criteria"] != TOPIC {
        return Err(bad(
            "subscription-topic",
            &format!("criteria is the topic's canonical URL, {TOPIC}"),
        ));
    }
    let filter = body["_criteria"]["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| {
            e["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("backport-filter-criteria"))
        })
        .and_then(|e| e["valueString"].as_str())
        .ok_or_else(|| {
            bad(
                "subscription-filter",
                "Say whose notifications: a backport-filter-criteria extension on _criteria, Task?owner={ODS code}",
            )
        })?;
    let org = filter
        .strip_prefix("Task?owner=")
        .map(|o| {
            o.strip_prefix(kinfold_fhir::ODS_CODE_SYSTEM)
                .and_then(|r| r.strip_prefix('|'))
                .unwrap_or(o)
        })
        .filter(|o| !o.is_empty())
        .ok_or_else(|| bad("subscription-filter", "The filter is Task?owner={ODS code}"))?;
    if !registration.organisations.iter().any(|o| o == org) {
        return Err(refused(
            StatusCode::FORBIDDEN,
            IssueType::Forbidden,
            "subscription-organisation",
            "This client is not registered for that organisation.",
        ));
    }
    let channel = &body["channel"];
    if channel["type"] != "rest-hook" {
        return Err(bad("subscription-channel", "The channel is rest-hook."));
    }
    let endpoint = channel["endpoint"].as_str().unwrap_or_default();
    if !registration.endpoints.iter().any(|e| e == endpoint) || !endpoint_allowed(endpoint) {
        return Err(refused(
            StatusCode::FORBIDDEN,
            IssueType::Forbidden,
            "subscription-endpoint",
            "The endpoint is not one registered for this client (https, or http on loopback).",
        ));
    }
    if channel["payload"]
        .as_str()
        .is_some_and(|p| p != "application/fhir+json")
    {
        return Err(bad(
            "subscription-payload",
            "Notifications are sent as application/fhir+json.",
        ));
    }
    let heartbeat = channel["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| {
            e["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("backport-heartbeat-period"))
        })
        .and_then(|e| e["valueUnsignedInt"].as_i64())
        .unwrap_or(0);
    if heartbeat != 0 && heartbeat < MIN_HEARTBEAT {
        return Err(bad(
            "subscription-heartbeat",
            "A heartbeat period is at least 10 seconds.",
        ));
    }
    Ok(Asked {
        org: org.to_owned(),
        endpoint: endpoint.to_owned(),
        heartbeat,
    })
}

/// Makes a subscription, after its endpoint answers the handshake.
#[utoipa::path(post, path = "/Subscription", tag = "Notifications",
    request_body(content = serde_json::Value, description = "A FHIR R4 Subscription (backport): `criteria` the topic https://kinfold.example/fhir/SubscriptionTopic/notification; `_criteria.extension` backport-filter-criteria `Task?owner={ODS code}` (an organisation the client is registered for); `channel.type` rest-hook, `channel.endpoint` one registered for the client, `channel.payload` application/fhir+json; optional backport-heartbeat-period (seconds, at least 10)", content_type = "application/fhir+json"),
    responses(
        (status = 201, description = "The Subscription, `active`: the endpoint answered the handshake", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 400, description = "Not such a Subscription", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 403, description = "Not a system client's token, or an organisation or endpoint the client is not registered for", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 422, description = "The endpoint did not answer the handshake with 2xx, or the client holds 20 subscriptions already; nothing kept", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn create(
    caller: Caller,
    state: web::Data<GatewayState>,
    clients: web::Data<crate::smart::Clients>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<Disclosed, GatewayError> {
    let client = system_client(&caller)?;
    let registration = clients.registration(&client).ok_or_else(|| {
        refused(
            StatusCode::FORBIDDEN,
            IssueType::Forbidden,
            "role-not-permitted",
            "This client is no longer registered.",
        )
    })?;
    let body: Value = serde_json::from_slice(&body).map_err(|e| {
        refused(
            StatusCode::BAD_REQUEST,
            IssueType::Invalid,
            "subscription",
            &format!("The body is not JSON: {e}"),
        )
    })?;
    let asked = read_subscription(&body, registration)?;
    let now = state.notifier.now();
    let stamp = now.to_rfc3339_opts(SecondsFormat::Millis, true);
    let id = uuid::Uuid::new_v4().to_string();
    let mut subscription = body.clone();
    subscription["id"] = json!(id);
    subscription["status"] = json!("active");
    let mut stored = StoredSubscription {
        id: id.clone(),
        client_id: client.clone(),
        owner_org: asked.org.clone(),
        endpoint: asked.endpoint.clone(),
        status: "active".into(),
        heartbeat_seconds: asked.heartbeat,
        events_count: 0,
        last_sent: now.timestamp_millis(),
        created: now.timestamp_millis(),
        body: String::new(),
    };
    let handshake = notification_bundle(&stored, "handshake", &[], &stamp);
    if !state.hooks.post(&client, &asked.endpoint, &handshake).await {
        return Err(refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            IssueType::Processing,
            "subscription-handshake-failed",
            "The endpoint did not answer the handshake with a 2xx status; nothing was kept.",
        ));
    }
    stored.body = subscription.to_string();
    let record = Entry::by_caller(&caller, &request, Interaction::Create, "Subscription")
        .entities(vec![crate::audit::disclosed(
            &format!("Subscription/{id}"),
            "Subscription",
            None,
        )])
        .rule("subscription.registered-client")
        .justification(format!(
            "notifications of {} to {} for client {client}",
            asked.org, asked.endpoint
        ))
        .done();
    let (kept, receipt) = state
        .ledger
        .record_within(vec![record], |rows| {
            let stored = &stored;
            let state = &state;
            async move {
                state
                    .store
                    .subscription_add(stored, &rows)
                    .await
                    .map_err(GatewayError::from)
            }
        })
        .await?;
    if !kept {
        return Err(refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            IssueType::TooCostly,
            "subscription-limit",
            "This client holds 20 subscriptions already.",
        ));
    }
    Ok(Disclosed::fhir_created(
        receipt,
        &format!("Subscription/{id}"),
        &subscription,
    ))
}

/// A subscription of the calling client's, or "not found".
async fn own(
    state: &GatewayState,
    caller: &Caller,
    id: &str,
) -> Result<StoredSubscription, GatewayError> {
    let client = system_client(caller)?;
    match state.store.subscription(id).await? {
        Some(sub) if sub.client_id == client => Ok(sub),
        _ => Err(not_found(id)),
    }
}

/// The subscription's status: how many events it has numbered.
#[utoipa::path(get, path = "/Subscription/{id}/$status", tag = "Notifications",
    params(("id" = String, Path, description = "The Subscription's id")),
    responses(
        (status = 200, description = "A searchset Bundle with the SubscriptionStatus Parameters: status, topic, `events-since-subscription-start`", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 403, description = "Not a system client's token", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn status(
    caller: Caller,
    state: web::Data<GatewayState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<Disclosed, GatewayError> {
    let sub = own(&state, &caller, &path).await?;
    let now = state
        .notifier
        .now()
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    let receipt = state
        .record_access(
            Entry::by_caller(
                &caller,
                &request,
                Interaction::Read,
                &format!("Subscription/{}/$status", sub.id),
            )
            .rule("subscription.registered-client")
            .done(),
        )
        .await?;
    let parameters = status_parameters(&sub, "query-status", &[], &now);
    Ok(Disclosed::fhir(
        receipt,
        &json!({
            "resourceType": "Bundle",
            "id": uuid::Uuid::new_v4().to_string(),
            "type": "searchset",
            "total": 1,
            "entry": [{"resource": parameters, "search": {"mode": "match"}}],
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct EventsQuery {
    events_since_number: Option<String>,
    events_until_number: Option<String>,
}

/// Events again, by number: how a subscriber that missed one recovers it.
#[utoipa::path(get, path = "/Subscription/{id}/$events", tag = "Notifications",
    params(("id" = String, Path, description = "The Subscription's id"),
        ("eventsSinceNumber" = Option<i64>, Query, description = "The first event number (default 1)"),
        ("eventsUntilNumber" = Option<i64>, Query, description = "The last (default the latest); at most 500 events an answer")),
    responses(
        (status = 200, description = "A history Bundle as a delivery would be (`type` query-event): the status Parameters, then each event's Task; events older than the 10,000 kept are gone", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 400, description = "A number that cannot be read", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 403, description = "Not a system client's token", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn events(
    caller: Caller,
    state: web::Data<GatewayState>,
    request: HttpRequest,
    path: web::Path<String>,
    query: web::Query<EventsQuery>,
) -> Result<Disclosed, GatewayError> {
    let sub = own(&state, &caller, &path).await?;
    let number = |name: &str, text: &Option<String>, default: i64| -> Result<i64, GatewayError> {
        match text {
            Some(t) => t
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| crate::error::bad_parameter(name, "must be a whole number")),
            None => Ok(default),
        }
    };
    let since = number("eventsSinceNumber", &query.events_since_number, 1)?;
    let until = number(
        "eventsUntilNumber",
        &query.events_until_number,
        sub.events_count,
    )?;
    let found = state
        .store
        .subscription_events(&sub.id, since, until, MOST_EVENTS)
        .await?;
    let tasks: Vec<(i64, Value)> = found
        .iter()
        .filter_map(|(n, body)| Some((*n, serde_json::from_str::<Value>(body).ok()?)))
        .collect();
    let mut people: Vec<String> = tasks
        .iter()
        .filter_map(|(_, t)| {
            t["for"]["reference"]
                .as_str()?
                .strip_prefix("Patient/")
                .map(str::to_owned)
        })
        .collect();
    people.sort();
    people.dedup();
    let query_text = format!("Subscription/{}/$events?{since}-{until}", sub.id);
    let mut records: Vec<kinfold_ledger::AuditRecord> = people
        .iter()
        .map(|person| {
            Entry::by_caller(&caller, &request, Interaction::Search, &query_text)
                .about(person.clone())
                .entities(
                    tasks
                        .iter()
                        .filter(|(_, t)| t["for"]["reference"] == format!("Patient/{person}"))
                        .map(|(_, t)| {
                            crate::audit::disclosed(
                                &format!("Task/{}", t["id"].as_str().unwrap_or_default()),
                                "Task",
                                None,
                            )
                        })
                        .collect(),
                )
                .rule("subscription.registered-client")
                .done()
        })
        .collect();
    if records.is_empty() {
        records.push(
            Entry::by_caller(&caller, &request, Interaction::Search, &query_text)
                .rule("subscription.registered-client")
                .done(),
        );
    }
    let receipt = state.record_all(records).await?;
    let now = state
        .notifier
        .now()
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    Ok(Disclosed::fhir(
        receipt,
        &notification_bundle(&sub, "query-event", &tasks, &now),
    ))
}

/// Delivers every subscription's waiting events, in order, and its heartbeats, until the
/// gateway stops: every quarter of a second.
pub(crate) async fn run(state: Weak<GatewayState>) {
    loop {
        let Some(strong) = state.upgrade() else {
            return;
        };
        if let Err(error) = deliver(&strong).await {
            tracing::warn!(
                ?error,
                "subscriptions: delivery failed; trying again shortly"
            );
        }
        drop(strong);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One round: every active subscription at once, each its due events in order (stopping at
/// the first that fails, or after a second's sending, so that a slow endpoint holds the
/// others up by one post's deadline at most), or a heartbeat when it has sent nothing for its
/// period.
async fn deliver(state: &Arc<GatewayState>) -> Result<(), GatewayError> {
    let subscriptions = state.store.subscriptions_active().await?;
    futures::future::join_all(subscriptions.into_iter().map(|sub| deliver_one(state, sub)))
        .await
        .into_iter()
        .collect()
}

/// How long one subscription's round keeps sending.
const ROUND: Duration = Duration::from_secs(1);

async fn deliver_one(
    state: &Arc<GatewayState>,
    sub: StoredSubscription,
) -> Result<(), GatewayError> {
    let started = std::time::Instant::now();
    let mut sent = 0;
    while sent < 100 && started.elapsed() < ROUND {
        let now = state.notifier.now();
        let Some(due) = state.store.subscription_next(&sub.id).await? else {
            break;
        };
        if due.next_attempt > now.timestamp_millis() {
            break;
        }
        if !state
            .store
            .subscription_claim(
                &sub.id,
                due.number,
                due.next_attempt,
                now.timestamp_millis() + CLAIM_MS,
            )
            .await?
        {
            break;
        }
        let Ok(task) = serde_json::from_str::<Value>(&due.task) else {
            break;
        };
        if due.attempts == 0 {
            // A delivery is a disclosure: in the ledger before it is sent.
            let person = task["for"]["reference"]
                .as_str()
                .and_then(|r| r.strip_prefix("Patient/"))
                .map(str::to_owned);
            let mut entity =
                crate::audit::disclosed(&format!("Task/{}", due.task_id), "Task", None);
            entity.disclosure = format!("delivered to {} at {}", sub.client_id, sub.endpoint);
            state
                .record_access(
                    Entry::by(
                        crate::notice::NOTIFIER,
                        None,
                        Interaction::Create,
                        &format!("Subscription/{} event {}", sub.id, due.number),
                    )
                    .about_maybe(person)
                    .entities(vec![entity])
                    .rule("subscription.registered-client")
                    .done(),
                )
                .await?;
        }
        let mut numbered = sub.clone();
        numbered.events_count = due.number;
        let stamp = now.to_rfc3339_opts(SecondsFormat::Millis, true);
        let bundle = notification_bundle(
            &numbered,
            "event-notification",
            &[(due.number, task)],
            &stamp,
        );
        if state
            .hooks
            .post(&sub.client_id, &sub.endpoint, &bundle)
            .await
        {
            state
                .store
                .subscription_attempted(&sub.id, due.number, now.timestamp_millis(), None)
                .await?;
            sent += 1;
        } else {
            let wait = 1i64
                .checked_shl(u32::try_from(due.attempts.min(20)).unwrap_or(20))
                .unwrap_or(MAX_BACKOFF_SECONDS)
                .min(MAX_BACKOFF_SECONDS);
            state
                .store
                .subscription_attempted(
                    &sub.id,
                    due.number,
                    now.timestamp_millis(),
                    Some(now.timestamp_millis() + wait * 1000),
                )
                .await?;
            tracing::info!(subscription = %sub.id, number = due.number, attempts = due.attempts + 1, "subscriptions: endpoint did not take the event; trying again later");
            break;
        }
    }
    let now = state.notifier.now();
    if sent == 0
        && sub.heartbeat_seconds > 0
        && now.timestamp_millis() - sub.last_sent >= sub.heartbeat_seconds * 1000
        && state.store.subscription_next(&sub.id).await?.is_none()
    {
        let stamp = now.to_rfc3339_opts(SecondsFormat::Millis, true);
        let heartbeat = notification_bundle(&sub, "heartbeat", &[], &stamp);
        if state
            .hooks
            .post(&sub.client_id, &sub.endpoint, &heartbeat)
            .await
        {
            state
                .store
                .subscription_heartbeat(&sub.id, now.timestamp_millis())
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_endpoints_are_posted_to() {
        assert!(endpoint_allowed("https://ehr.example.nhs.uk/kinfold/hook"));
        assert!(endpoint_allowed("http://127.0.0.1:9000/hook"));
        assert!(endpoint_allowed("http://[::1]:9000/hook"));
        assert!(!endpoint_allowed("http://10.0.0.5/hook"));
        assert!(!endpoint_allowed("http://ehr.example.nhs.uk/hook"));
        assert!(!endpoint_allowed("http://localhost.evil.example/hook"));
        assert!(!endpoint_allowed("file:///etc/passwd"));
        assert!(!endpoint_allowed("not a url"));
    }
}
