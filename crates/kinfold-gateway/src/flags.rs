//! Safeguarding flags with oversight (FHIR `Flag`; issue 23, G11, G20), kept by the gateway on
//! the person, so that they survive an agency's case closure and record transfer, and follow
//! the person when records are linked (an unborn child's flag is the baby's).
//!
//! * `POST /Flag` raises one (a professional with a relationship to the child);
//! * `GET /Flag?patient=` lists a person's flags, active and resolved;
//! * `POST /Flag/{id}/$resolve` resolves one with a reason. A flag needing oversight (cause of
//!   injury inconclusive) is resolved only by a senior safeguarding professional who did not
//!   raise it; the raiser's own attempt, or anyone else's not senior, is refused, recorded in
//!   the ledger and kept for the report (`kinfold_chronology::flags` decides);
//! * `GET /Flag/$oversight-report` lists flags raised, resolved, by whom, and refused attempts,
//!   for safeguarding professionals and privacy officers, of the people their organisation is
//!   concerned with.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use chrono::{DateTime, NaiveDate, Utc};
use kinfold_chronology::flags::{self, Action, FlagAction, FlagKind, Practitioner, Refusal};
use kinfold_consent::{Requester, Role};
use kinfold_fhir::IssueType;
use kinfold_http::ApiError;
use kinfold_store::StoredFlag;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::answer::Disclosed;
use crate::audit::{self, Entry, Interaction};
use crate::auth::Caller;
use crate::error::{GatewayError, bad_parameter, day_parameter};
use crate::state::GatewayState;

type State = web::Data<GatewayState>;

/// The code system of Kinfold's safeguarding flags.
pub const FLAG_SYSTEM: &str = "https://kinfold.example/fhir/CodeSystem/safeguarding-flag";
/// Extensions on a kept Flag.
const EXTENSION: &str = "https://kinfold.example/fhir/StructureDefinition/flag";
/// The identifier system of a practitioner (the token's subject).
const PRACTITIONER_SYSTEM: &str = "urn:kinfold:practitioner";
/// The most refused attempts kept for one flag's report (each is in the ledger regardless).
const MAX_REFUSALS_KEPT: i64 = 100;
/// The longest detail a flag carries (`code.text`).
const MAX_DETAIL_CHARS: usize = 500;

fn invalid(code: &str, at: &str, message: impl Into<String>) -> GatewayError {
    GatewayError::Refused(
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            IssueType::Invalid,
            code,
            message.into(),
        )
        .at(at),
    )
}

fn corrupt() -> GatewayError {
    GatewayError::Store(kinfold_store::StoreError::Corrupt(
        "a flag cannot be read back".into(),
    ))
}

/// The practitioner a requester is.
fn practitioner(requester: &Requester) -> Practitioner {
    Practitioner {
        subject: requester.practitioner.clone(),
        organisation: requester.organisation.clone(),
        role: requester.role.as_str().to_owned(),
        senior_safeguarding: requester.role == Role::SafeguardingProfessional,
    }
}

/// Who, in words, for the Flag's `author` and the report.
fn described(requester: &Requester) -> String {
    format!(
        "{}{} of {}",
        requester
            .name
            .as_deref()
            .map(|n| format!("{n}, "))
            .unwrap_or_default(),
        requester.role.as_str(),
        requester.organisation
    )
}

fn now_text(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A person's flags as FHIR, for answers that show them (`GET /Flag`, `$chronology`).
pub(crate) async fn shown(state: &GatewayState, person: &str) -> Result<Vec<Value>, GatewayError> {
    state
        .flags_of(person)
        .await?
        .iter()
        .map(|f| serde_json::from_str(&f.body).map_err(|_| corrupt()))
        .collect()
}

/// The kind and person of a Flag as sent, and its detail and start.
struct Raised {
    kind: FlagKind,
    person: String,
    detail: Option<String>,
    start: Option<String>,
}

fn check(flag: &Value) -> Result<Raised, GatewayError> {
    if flag["resourceType"] != "Flag" {
        return Err(invalid(
            "not-flag",
            "resourceType",
            "The body is a FHIR Flag.",
        ));
    }
    if !flag["status"].is_null() && flag["status"] != "active" {
        return Err(invalid(
            "status",
            "Flag.status",
            "A flag is raised active; it is resolved with $resolve.",
        ));
    }
    let person = flag["subject"]["reference"]
        .as_str()
        .and_then(|r| r.strip_prefix("Patient/"))
        .ok_or_else(|| {
            invalid(
                "subject",
                "Flag.subject",
                "Flag.subject is Patient/{Kinfold person id}.",
            )
        })?
        .to_owned();
    let codes: Vec<FlagKind> = flag["code"]["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["system"] == FLAG_SYSTEM)
        .filter_map(|c| c["code"].as_str().and_then(FlagKind::parse))
        .collect();
    let [kind] = codes[..] else {
        let known: Vec<&str> = FlagKind::ALL.iter().map(|k| k.code()).collect();
        return Err(invalid(
            "code",
            "Flag.code.coding",
            format!("One coding in {FLAG_SYSTEM}: {}.", known.join(", ")),
        ));
    };
    let detail = match flag["code"]["text"].as_str().map(str::trim) {
        Some(text) if text.is_empty() || text.chars().count() > MAX_DETAIL_CHARS => {
            return Err(invalid(
                "detail",
                "Flag.code.text",
                format!("The detail is 1 to {MAX_DETAIL_CHARS} characters."),
            ));
        }
        other => other.map(str::to_owned),
    };
    let start = match flag["period"]["start"].as_str() {
        None => None,
        Some(text) => {
            let day = text.get(..10).unwrap_or(text);
            let parsed = NaiveDate::parse_from_str(day, "%Y-%m-%d")
                .map_err(|_| invalid("period", "Flag.period.start", "a date, YYYY-MM-DD"))?;
            if parsed > Utc::now().date_naive() {
                return Err(invalid(
                    "period",
                    "Flag.period.start",
                    "A flag starts today or earlier.",
                ));
            }
            Some(text.to_owned())
        }
    };
    Ok(Raised {
        kind,
        person,
        detail,
        start,
    })
}

/// One action on a flag, as kept for the report.
fn action(
    flag: &str,
    kind: FlagKind,
    person: &str,
    what: Action,
    at: DateTime<Utc>,
    by: Practitioner,
    reason: Option<String>,
) -> Result<String, GatewayError> {
    serde_json::to_string(&FlagAction {
        flag: flag.to_owned(),
        kind,
        person: person.to_owned(),
        action: what,
        at,
        by,
        reason,
    })
    .map_err(|_| corrupt())
}

/// Raises a safeguarding flag on a person.
#[utoipa::path(post, path = "/Flag", tag = "Flag",
    request_body(content = serde_json::Value, description = "FHIR Flag: subject `Patient/{person}`, one coding in https://kinfold.example/fhir/CodeSystem/safeguarding-flag (child-protection-plan, looked-after, unborn-child-concern, domestic-abuse, cause-of-injury-inconclusive), optional code.text (the detail, up to 500 characters) and period.start (today or earlier)", content_type = "application/fhir+json"),
    responses(
        (status = 201, description = "The Flag as kept: its id, status active, the author from the token, and whether it needs oversight to be resolved (extension flag-needs-oversight)", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "Unknown person, or no legitimate relationship with them (answered alike, and recorded)", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 422, description = "Not a flag Kinfold keeps (what and where in the OperationOutcome), one of the same kind already active (`flag.already-active`, naming it), or the person already has as many flags as Kinfold keeps for one (200, `flag.too-many`)", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn raise(
    caller: Caller,
    state: State,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<Disclosed, GatewayError> {
    crate::disclosure::requester(&caller, &state.disclosure)?;
    let sent: Value = serde_json::from_slice(&body)
        .map_err(|e| invalid("json", "", format!("The body is not JSON: {e}")))?;
    let raised = check(&sent)?;
    let gathered =
        crate::pipeline::gather(&state, &caller, &request, &raised.person, false, "Flag").await?;
    let person = gathered.parts[0].id.clone();
    let held = state.flags_of(&person).await?;
    if held.len() >= usize::try_from(kinfold_store::MAX_FLAGS).unwrap_or(usize::MAX) {
        // Raising and resolving in a loop would otherwise grow the tables without bound.
        return Err(invalid(
            "flag.too-many",
            "Flag.subject",
            format!(
                "This person already has {} flags, as many as Kinfold keeps for one person: ask the area's safeguarding lead.",
                held.len()
            ),
        ));
    }
    if let Some(active) = held
        .iter()
        .find(|f| f.status == "active" && f.kind == raised.kind.code())
    {
        return Err(GatewayError::Refused(
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                IssueType::Duplicate,
                "flag.already-active",
                format!(
                    "Flag/{} already says this and is active: one flag of each kind at a time.",
                    active.id
                ),
            )
            .at("Flag.code"),
        ));
    }
    let now = Utc::now();
    let id = uuid::Uuid::new_v4().to_string();
    let by = practitioner(&gathered.requester);
    let mut code = json!({"coding": [{"system": FLAG_SYSTEM, "code": raised.kind.code(), "display": raised.kind.display()}]});
    if let Some(detail) = &raised.detail {
        code["text"] = json!(detail);
    }
    let flag = json!({
        "resourceType": "Flag",
        "id": id,
        "meta": {"lastUpdated": now_text(now), "source": "urn:kinfold:gateway"},
        "status": "active",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/flag-category", "code": "safety", "display": "Safety"}]}],
        "code": code,
        "subject": {"reference": format!("Patient/{person}")},
        "period": {"start": raised.start.clone().unwrap_or_else(|| now_text(now))},
        "author": {"identifier": {"system": PRACTITIONER_SYSTEM, "value": by.subject}, "display": described(&gathered.requester)},
        "extension": [{"url": format!("{EXTENSION}-needs-oversight"), "valueBoolean": raised.kind.needs_oversight()}],
    });
    let receipt = state
        .record_access(
            Entry::by_caller(&caller, &request, Interaction::Create, "flag-raised")
                .about(person.clone())
                .entities(vec![audit::disclosed(&format!("Flag/{id}"), "Flag", None)])
                .rule(gathered.relationship.rule)
                .done(),
        )
        .await?;
    let kept = StoredFlag {
        id: id.clone(),
        person: person.clone(),
        kind: raised.kind.code().to_owned(),
        status: "active".into(),
        body: flag.to_string(),
    };
    let what = action(&id, raised.kind, &person, Action::Raised, now, by, None)?;
    state
        .store
        .flag_put(&kept, "raised", now.timestamp_millis(), &what)
        .await?;
    Ok(Disclosed::fhir_created(
        receipt,
        &format!("Flag/{id}"),
        &flag,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlagQuery {
    patient: String,
}

/// A person's safeguarding flags, active and resolved.
#[utoipa::path(get, path = "/Flag", tag = "Flag",
    params(("patient" = String, Query, description = "Kinfold person id")),
    responses(
        (status = 200, description = "searchset of the person's Flags (under every id they have been known by: an unborn child's flags are the baby's), oldest first: each active or inactive, with who raised it and, once resolved, who resolved it, when and why", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "Unknown person, or no legitimate relationship with them (answered alike, and recorded)", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn search(
    caller: Caller,
    state: State,
    request: HttpRequest,
    query: web::Query<FlagQuery>,
) -> Result<Disclosed, GatewayError> {
    let asked = query.patient.trim_start_matches("Patient/").to_owned();
    let gathered =
        crate::pipeline::gather(&state, &caller, &request, &asked, false, "Flag?patient").await?;
    let person = gathered.parts[0].id.clone();
    let flags = shown(&state, &person).await?;
    let receipt = state
        .record_access(
            Entry::by_caller(&caller, &request, Interaction::Search, "Flag?patient")
                .about(person)
                .entities(
                    flags
                        .iter()
                        .map(|f| {
                            audit::disclosed(
                                &format!("Flag/{}", f["id"].as_str().unwrap_or_default()),
                                "Flag",
                                None,
                            )
                        })
                        .collect(),
                )
                .rule(gathered.relationship.rule)
                .done(),
        )
        .await?;
    Ok(Disclosed::fhir(
        receipt,
        &crate::merge::own_searchset("flag", &flags),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Resolution {
    reason: String,
}

/// Resolves a flag, with a reason.
#[utoipa::path(post, path = "/Flag/{id}/$resolve", tag = "Flag",
    params(("id" = String, Path, description = "The Flag's id")),
    request_body(content = serde_json::Value, description = "`{\"reason\": \"…\"}` (10 to 1,000 characters)", content_type = "application/json"),
    responses(
        (status = 200, description = "The Flag, inactive, with period.end, who resolved it and why", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 403, description = "A flag needing oversight, and the caller raised it (`flag.raiser-may-not-resolve`) or is not a safeguarding professional (`flag.oversight-required`): the attempt is recorded in the ledger and in the oversight report", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "No such flag, or no legitimate relationship with its person (answered alike, and recorded)", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 422, description = "No reason (`flag.reason-required`), or already resolved (`flag.already-resolved`)", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn resolve(
    caller: Caller,
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<Disclosed, GatewayError> {
    crate::disclosure::requester(&caller, &state.disclosure)?;
    let resolution: Resolution = serde_json::from_slice(&body)
        .map_err(|e| invalid("body", "", format!("The body is a resolution: {e}")))?;
    let reason = resolution.reason.trim().to_owned();
    let id = path.into_inner();
    let unknown = || GatewayError::Refused(ApiError::not_found(format!("Flag/{id}")));
    let stored = state.store.flag(&id).await?.ok_or_else(unknown)?;
    let gathered = match crate::pipeline::gather(
        &state,
        &caller,
        &request,
        &stored.person,
        false,
        "Flag/$resolve",
    )
    .await
    {
        Ok(gathered) => gathered,
        Err(GatewayError::NoRelationship | GatewayError::UnknownPerson) => return Err(unknown()),
        Err(other) => return Err(other),
    };
    let person = gathered.parts[0].id.clone();
    let mut flag: Value = serde_json::from_str(&stored.body).map_err(|_| corrupt())?;
    let kind = FlagKind::parse(&stored.kind).ok_or_else(corrupt)?;
    let raiser = Practitioner {
        subject: flag["author"]["identifier"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        organisation: String::new(),
        role: String::new(),
        senior_safeguarding: false,
    };
    let by = practitioner(&gathered.requester);
    let now = Utc::now();
    if let Err(refusal) = flags::may_resolve(kind, stored.status == "active", &raiser, &by, &reason)
    {
        return Err(refused(
            &state, &caller, &request, &stored, &person, kind, by, refusal,
        )
        .await?);
    }
    flag["status"] = json!("inactive");
    flag["period"]["end"] = json!(now_text(now));
    flag["meta"]["lastUpdated"] = json!(now_text(now));
    if let Some(extensions) = flag["extension"].as_array_mut() {
        extensions.push(json!({"url": format!("{EXTENSION}-resolved-by"), "valueReference": {"identifier": {"system": PRACTITIONER_SYSTEM, "value": by.subject}, "display": described(&gathered.requester)}}));
        extensions.push(json!({"url": format!("{EXTENSION}-resolution"), "valueString": reason}));
    }
    let receipt = state
        .record_access(
            Entry::by_caller(&caller, &request, Interaction::Update, "flag-resolved")
                .about(person.clone())
                .entities(vec![audit::disclosed(&format!("Flag/{id}"), "Flag", None)])
                .rule(gathered.relationship.rule)
                .justification(reason.clone())
                .done(),
        )
        .await?;
    let kept = StoredFlag {
        status: "inactive".into(),
        body: flag.to_string(),
        ..stored
    };
    let what = action(&id, kind, &person, Action::Resolved, now, by, Some(reason))?;
    state
        .store
        .flag_put(&kept, "resolved", now.timestamp_millis(), &what)
        .await?;
    Ok(Disclosed::fhir(receipt, &flag))
}

/// A refused resolution: one oversight exists to stop is recorded in the ledger and kept for
/// the report (up to [`MAX_REFUSALS_KEPT`] a flag; the ledger has every one), then refused.
#[allow(clippy::too_many_arguments)]
async fn refused(
    state: &GatewayState,
    caller: &Caller,
    request: &HttpRequest,
    stored: &StoredFlag,
    person: &str,
    kind: FlagKind,
    by: Practitioner,
    refusal: Refusal,
) -> Result<GatewayError, GatewayError> {
    if !refusal.is_oversight() {
        let at = if refusal == Refusal::NoReason {
            "reason"
        } else {
            "Flag.status"
        };
        return Ok(invalid(refusal.code(), at, refusal.message()));
    }
    state
        .record_access(
            Entry::by_caller(caller, request, Interaction::Update, "flag-resolve")
                .about(person.to_owned())
                .entities(vec![audit::disclosed(
                    &format!("Flag/{}", stored.id),
                    "Flag",
                    None,
                )])
                .refused(refusal.code())
                .done(),
        )
        .await?;
    let now = Utc::now();
    let what = action(
        &stored.id,
        kind,
        person,
        Action::Refused,
        now,
        by,
        Some(refusal.code().to_owned()),
    )?;
    state
        .store
        .flag_action_add(
            &stored.id,
            person,
            "refused",
            now.timestamp_millis(),
            &what,
            MAX_REFUSALS_KEPT,
        )
        .await?;
    Ok(GatewayError::Refused(ApiError::refused(
        StatusCode::FORBIDDEN,
        IssueType::Forbidden,
        refusal.code(),
        refusal.message(),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
}

/// Who may read the oversight report: a safeguarding professional or a privacy officer, with
/// an organisation.
pub(crate) fn overseer(caller: &Caller) -> Result<String, GatewayError> {
    let role = caller.role.as_deref().and_then(|r| r.parse::<Role>().ok());
    match (&caller.organisation, role) {
        (Some(org), Some(Role::SafeguardingProfessional | Role::PrivacyOfficer)) => {
            Ok(org.to_string())
        }
        _ => Err(GatewayError::Refused(ApiError::refused(
            StatusCode::FORBIDDEN,
            IssueType::Forbidden,
            "role-not-permitted",
            "This route is for safeguarding professionals (role safeguarding-professional) and privacy officers (role privacy-officer) of an organisation; the token's role and organisation (ODS code) say who you are.",
        ))),
    }
}

/// The oversight report: flags raised and resolved, by whom, and refused attempts.
#[utoipa::path(get, path = "/Flag/$oversight-report", tag = "Flag",
    params(("from" = Option<String>, Query, description = "From this day (YYYY-MM-DD; default a year ago)"),
           ("to" = Option<String>, Query, description = "To this day, inclusive (YYYY-MM-DD; default today)")),
    responses(
        (status = 200, description = "`raised`, `resolved`, `refusedAttempts` (of them `refusedByRaiser`), `resolvedWithOversight`, and every `action` (flag, kind, person, raised / resolved / refused, when, by whom, the reason or the refusal's code), of the people the caller's organisation is concerned with (the area's: everyone). `complete` is false when the period holds more actions than one report shows (`total`, `shown`): ask for a shorter period", content_type = "application/json", body = serde_json::Value),
        (status = 400, description = "A day that cannot be read, or from after to", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn oversight(
    caller: Caller,
    state: State,
    request: HttpRequest,
    query: web::Query<ReportQuery>,
) -> Result<Disclosed, GatewayError> {
    let organisation = overseer(&caller)?;
    let today = Utc::now().date_naive();
    let to = day_parameter("to", query.to.as_deref())?.unwrap_or(today);
    let from =
        day_parameter("from", query.from.as_deref())?.unwrap_or(to - chrono::Duration::days(365));
    if from > to {
        return Err(bad_parameter("from", "is after to"));
    }
    let millis = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp_millis())
    };
    let (bodies, total) = state
        .store
        .flag_actions(millis(from), millis(to + chrono::Duration::days(1)))
        .await?;
    let read: Vec<FlagAction> = bodies
        .iter()
        .map(|b| serde_json::from_str::<FlagAction>(b).map_err(|_| corrupt()))
        .collect::<Result<_, _>>()?;
    // Only the people this organisation is concerned with.
    let mut people: Vec<String> = read.iter().map(|a| a.person.clone()).collect();
    people.sort_unstable();
    people.dedup();
    let mut concerned = Vec::new();
    for person in &people {
        let id: Vec<kinfold_identity::PersonId> = person.parse().into_iter().collect();
        if state.is_concerned(&organisation, &id).await? {
            concerned.push(person.clone());
        }
    }
    let shown_actions: Vec<FlagAction> = read
        .into_iter()
        .filter(|a| concerned.contains(&a.person))
        .collect();
    let shown = shown_actions.len();
    let report = flags::oversight_report(shown_actions);
    let query_words = "Flag/$oversight-report";
    let mut records: Vec<kinfold_ledger::AuditRecord> = concerned
        .iter()
        .map(|person| {
            let mut flags: Vec<String> = report
                .actions
                .iter()
                .filter(|a| a.person == *person)
                .map(|a| format!("Flag/{}", a.flag))
                .collect();
            flags.dedup();
            Entry::by_caller(&caller, &request, Interaction::Search, query_words)
                .about(person.clone())
                .entities(
                    flags
                        .iter()
                        .map(|f| audit::disclosed(f, "Flag", None))
                        .collect(),
                )
                .rule("flag.oversight")
                .done()
        })
        .collect();
    if records.is_empty() {
        records.push(
            Entry::by_caller(&caller, &request, Interaction::Search, query_words)
                .rule("flag.oversight")
                .done(),
        );
    }
    let receipt = state.record_all(records).await?;
    let complete = usize::try_from(total).unwrap_or(usize::MAX) <= bodies.len();
    Ok(Disclosed::json(
        receipt,
        &json!({
            "from": from.to_string(),
            "to": to.to_string(),
            "organisation": organisation,
            "complete": complete,
            "total": total,
            "shown": shown,
            "report": report,
        }),
    ))
}
