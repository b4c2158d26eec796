//! The route table, held against the running gateway: every path and method in
//! `openapi/gateway.json` has a declared policy in `kinfold_gateway::policy::ROUTES` (and
//! every declared route is documented), and each is called as every kind of caller, on SQLite
//! and on PostgreSQL, with each answer compared with what its policy says that caller gets:
//! no token or a forged one, a token without role or purpose, an unrelated GP, a health
//! visitor with a relationship, the area's safeguarding lead, privacy officers and identity
//! stewards of an organisation concerned and of one that is not.

mod common;

use std::collections::BTreeSet;

use common::agencies::{Backend, Kinfold};
use kinfold_fhir::Agency;
use kinfold_gateway::policy::{Access, ROUTES, RoutePolicy};
use serde_json::{Value, json};

const HEALTH_VISITING: &str = include_str!("../../docs/feeds/samples/health-visiting.ndjson");
const SCHOOL_NURSING: &str = include_str!("../../docs/feeds/samples/school-nursing.ndjson");
const MIDWIFERY: &str = include_str!("../../docs/feeds/samples/midwifery.ndjson");
const CHILD_NHS: &str = "9990000026";
const MOTHER_NHS: &str = "9990000018";

/// The kinds of caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    NoToken,
    Forged,
    NoRole,
    UnrelatedGp,
    HealthVisitor,
    SafeguardingLead,
    Officer,
    OtherOfficer,
    OtherSteward,
    Steward,
}

const EVERYONE: [Who; 10] = [
    Who::NoToken,
    Who::Forged,
    Who::NoRole,
    Who::UnrelatedGp,
    Who::HealthVisitor,
    Who::SafeguardingLead,
    Who::Officer,
    Who::OtherOfficer,
    Who::OtherSteward,
    // Last: the steward's changes must not change what the others are answered.
    Who::Steward,
];

/// What a caller is answered, in the policy's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// `401`: no caller.
    Unauthenticated,
    /// `403`: refused by who the caller is (role, or no role or purpose).
    ByRole,
    /// Refused by what the records say: exactly "not found" (`404`, or a search that finds
    /// no one).
    ByRecords,
    /// Served (whatever the route then says of the request itself).
    Served,
}

/// What the route table says `who` gets from `route`.
fn expected(route: &RoutePolicy, who: Who) -> Answer {
    use Answer::*;
    match (route.method, route.path, who) {
        // An officer's queue, and a steward's review queue, list their own organisation's.
        ("GET", "/Task", Who::OtherOfficer) | ("GET", "/identity/reviews", Who::OtherSteward) => {
            return Served;
        }
        _ => {}
    }
    match (who, route.access) {
        (_, Access::Open) => Served,
        (Who::NoToken | Who::Forged, _) => Unauthenticated,
        // A person's token is not an adapter's event key nor a client assertion.
        (_, Access::EventSender | Access::Client) => Unauthenticated,
        (Who::NoRole, Access::Relationship | Access::Search | Access::AccessReport) => ByRole,
        (
            Who::HealthVisitor | Who::SafeguardingLead,
            Access::Relationship | Access::Search | Access::AccessReport,
        ) => Served,
        (_, Access::Relationship | Access::Search) => ByRecords,
        (Who::Officer, Access::PrivacyOfficer | Access::AccessReport) => Served,
        (Who::OtherOfficer, Access::PrivacyOfficer | Access::AccessReport) => ByRecords,
        (_, Access::AccessReport) => ByRecords,
        (_, Access::PrivacyOfficer) => ByRole,
        (Who::SafeguardingLead | Who::Officer | Who::OtherOfficer, Access::Oversight) => Served,
        (_, Access::Oversight) => ByRole,
        // The Task samples are an override review: its queue and `$complete` are its
        // organisation's privacy officers'; as a notification it is addressed to nobody, so
        // reading or acknowledging it is "not found" for everyone who says who and why.
        (Who::NoRole, Access::TaskOwner) => ByRole,
        (_, Access::TaskOwner)
            if route.path == "/Task/{id}" || route.path.ends_with("$acknowledge") =>
        {
            ByRecords
        }
        (Who::Officer, Access::TaskOwner) => Served,
        (Who::OtherOfficer, Access::TaskOwner) => ByRecords,
        (_, Access::TaskOwner) => ByRole,
        // A person's token is no system client's: subscriptions are for systems.
        (_, Access::Subscriber) => ByRole,
        (Who::Steward, Access::IdentitySteward) => Served,
        (Who::OtherSteward, Access::IdentitySteward) => ByRecords,
        (_, Access::IdentitySteward) => ByRole,
        // The dashboard's pages take a session cookie, never a bearer token: without a
        // session they send the browser to the sign-in page (`tests/tests/dashboard.rs`). Its
        // rows are left out of this test.
        (_, Access::Session) => Unauthenticated,
    }
}

fn token(k: &Kinfold, subject: &str, org: &str, role: Option<&str>, purpose: &str) -> String {
    kinfold_gateway::issue_token_for(
        &k.auth,
        &kinfold_gateway::TokenFor {
            subject,
            org: Some(org),
            role,
            purpose: Some(purpose),
            ..kinfold_gateway::TokenFor::default()
        },
        600,
    )
    .expect("token")
}

fn tokens(k: &Kinfold, who: Who) -> Option<String> {
    match who {
        Who::NoToken => None,
        Who::Forged => {
            let other = kinfold_gateway::AuthConfig {
                keys: vec![kinfold_gateway::KeyConfig {
                    kid: "test".into(),
                    secret: kinfold_gateway::Secret::new(
                        "a-key-the-gateway-has-never-seen-0123456789".into(),
                    ),
                }],
                ..k.auth.clone()
            };
            kinfold_gateway::issue_token(&other, "forger", Some("Q99"), Some("gp"), 600).ok()
        }
        Who::NoRole => Some(token(k, "no-role", "RX1", None, "direct-care")),
        Who::UnrelatedGp => Some(token(k, "gp-far", "B99999", Some("gp"), "direct-care")),
        Who::HealthVisitor => Some(token(
            k,
            "hv-1",
            "RX1",
            Some("health-visitor"),
            "direct-care",
        )),
        Who::SafeguardingLead => Some(k.token.clone()),
        Who::Officer => Some(token(
            k,
            "po-area",
            "Q99",
            Some("privacy-officer"),
            "direct-care",
        )),
        Who::OtherOfficer => Some(token(
            k,
            "po-far",
            "B88888",
            Some("privacy-officer"),
            "direct-care",
        )),
        Who::OtherSteward => Some(token(
            k,
            "steward-far",
            "B88888",
            Some("identity-steward"),
            "direct-care",
        )),
        Who::Steward => Some(token(
            k,
            "steward-rx1",
            "RX1",
            Some("identity-steward"),
            "direct-care",
        )),
    }
}

/// The samples each route is called with: real ids where the data has them.
struct Samples {
    child: String,
    mother: String,
    binary: String,
    edge: String,
    task: String,
    audit_event: String,
    audit_resource: String,
    mothers_record: (String, String),
    childs_record: (String, String),
}

/// A request: path with its parameters filled and query, and the body of a POST.
fn request_for(method: &str, path: &str, s: &Samples) -> (String, Option<Value>) {
    let child = &s.child;
    let reason = "Checked against the birth register with the family today";
    if (method, path) == ("POST", "/Consent") {
        // A dissent Kinfold could keep: a served caller is then told the child is under 16
        // and not assessed as competent (422).
        return (
            "/Consent".into(),
            Some(json!({"resourceType": "Consent", "status": "active",
                "patient": {"reference": format!("Patient/{child}")},
                "performer": [{"reference": format!("Patient/{child}")}],
                "provision": {"type": "deny"}})),
        );
    }
    if (method, path) == ("POST", "/Flag") {
        // A flag a served caller raises (201), or is told is already active (422).
        return (
            "/Flag".into(),
            Some(
                json!({"resourceType": "Flag", "subject": {"reference": format!("Patient/{child}")},
                "code": {"coding": [{"system": "https://kinfold.example/fhir/CodeSystem/safeguarding-flag", "code": "domestic-abuse"}]}}),
            ),
        );
    }
    match path {
        "/Flag" => (format!("/Flag?patient={child}"), None),
        "/Flag/{id}/$resolve" => (
            // No such flag: served callers are answered 404 too.
            "/Flag/00000000-0000-4000-8000-000000000000/$resolve".into(),
            Some(json!({"reason": reason})),
        ),
        "/Patient" => (
            format!("/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{CHILD_NHS}"),
            None,
        ),
        "/AuditEvent" => (format!("/AuditEvent?patient={child}"), None),
        "/AuditEvent/{id}/$why" => (
            format!(
                "/AuditEvent/{}/$why?resource={}",
                s.audit_event,
                url_encode(&s.audit_resource)
            ),
            None,
        ),
        "/Binary/{id}" => (format!("/Binary/{}", s.binary), None),
        "/Consent" => (format!("/Consent?patient={child}"), None),
        "/Task" => ("/Task?code=override-review".into(), None),
        "/Task/{id}" => (format!("/Task/{}", s.task), None),
        "/Subscription/{id}/$status" | "/Subscription/{id}/$events" => (
            path.replace("{id}", "00000000-0000-4000-8000-000000000000"),
            None,
        ),
        "/Task/{id}/$acknowledge" => (
            format!("/Task/{}/$acknowledge", s.task),
            Some(json!({"note": "Seen."})),
        ),
        "/Task/{id}/$complete" => (
            format!("/Task/{}/$complete", s.task),
            Some(
                json!({"outcome": "Reviewed with the practitioner: justified.", "justified": true}),
            ),
        ),
        "/Consent/{id}/$withdraw" => (
            // No such Consent: served callers are answered 404 too.
            "/Consent/00000000-0000-4000-8000-000000000000/$withdraw".into(),
            Some(json!({"reason": reason})),
        ),
        "/identity/reviews/{id}/$accept" | "/identity/reviews/{id}/$reject" => (
            // No such pair in this data: served callers are answered 404 too.
            path.replace("{id}", "no-such-review"),
            Some(json!({"reason": reason})),
        ),
        "/Person/{id}/$link" => (
            format!("/Person/{child}/$link"),
            Some(
                json!({"agency": s.childs_record.0, "reference": s.childs_record.1, "reason": reason}),
            ),
        ),
        "/Person/{id}/$unlink" => (
            // The mother's record is not the child's: a served steward is told so (400).
            format!("/Person/{child}/$unlink"),
            Some(
                json!({"agency": s.mothers_record.0, "reference": s.mothers_record.1, "reason": reason}),
            ),
        ),
        "/family-edges" => (
            "/family-edges".into(),
            Some(json!({"from": s.mother, "to": child, "relation": "carer", "reason": reason})),
        ),
        "/family-edges/{id}/$retract" => (
            format!("/family-edges/{}/$retract", s.edge),
            Some(json!({"reason": reason})),
        ),
        "/ledger/v1/get-sth-consistency" => (
            "/ledger/v1/get-sth-consistency?first=1&second=2".into(),
            None,
        ),
        "/ledger/v1/get-proof-by-hash" => (
            "/ledger/v1/get-proof-by-hash?hash=AAAA&tree_size=1".into(),
            None,
        ),
        "/ledger/v1/get-entries" => ("/ledger/v1/get-entries?start=0&end=0".into(), None),
        other if other.contains("{id}") => (other.replace("{id}", child), None),
        other => (other.to_owned(), None),
    }
}

fn url_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Classifies an answer: a search answered with no one is "not found".
fn classify(path: &str, status: u16, body: &Value) -> Answer {
    match status {
        401 => Answer::Unauthenticated,
        403 => Answer::ByRole,
        404 => Answer::ByRecords,
        200 if matches!(path, "/Patient" | "/AuditEvent")
            && body["resourceType"] == "Bundle"
            && body["total"].as_u64().unwrap_or(0) == 0
            && common::resources(body)
                .iter()
                .all(|r| r["resourceType"] != "Patient") =>
        {
            Answer::ByRecords
        }
        _ => Answer::Served,
    }
}

/// Routes whose sample names nothing that exists: a served caller is answered 404 there too,
/// so only the refusals by role and token are told apart.
fn sample_missing(path: &str) -> bool {
    matches!(
        path,
        "/Consent/{id}/$withdraw"
            | "/Flag/{id}/$resolve"
            | "/Task/{id}"
            | "/Task/{id}/$acknowledge"
            | "/identity/reviews/{id}/$accept"
            | "/identity/reviews/{id}/$reject"
    )
}

async fn call(
    k: &Kinfold,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let url = format!("{}{path}", k.gateway_url);
    let mut request = match method {
        "GET" => k.http.get(&url),
        _ => k.http.post(&url),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    } else if method == "POST" {
        request = request
            .header("content-type", "application/json")
            .body("{}");
    }
    let response = request.send().await.expect("answered");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn person_of(k: &Kinfold, nhs: &str) -> String {
    let (_, found) = k
        .get(&format!(
            "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}"
        ))
        .await;
    found["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a person for {nhs}: {found}"))
        .to_owned()
}

/// An agency record of a person, from the Person view: (agency, reference).
async fn record_of(k: &Kinfold, person: &str, agency: Agency) -> (String, String) {
    let (status, view) = k.get(&format!("/Person/{person}")).await;
    assert_eq!(status, 200, "{view}");
    view["link"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["target"]["extension"][0]["valueCode"] == agency.as_str())
        .map(|l| {
            (
                agency.as_str().to_owned(),
                l["target"]["reference"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .unwrap_or_else(|| panic!("a {agency} record of {person}: {view}"))
}

async fn samples(k: &Kinfold) -> Samples {
    for (agency, rows) in [
        (Agency::Midwifery, MIDWIFERY),
        (Agency::HealthVisiting, HEALTH_VISITING),
        (Agency::SchoolNursing, SCHOOL_NURSING),
    ] {
        assert!(k.import(agency, rows).await["stored"].as_u64() > Some(0));
    }
    // The GP's records: the mother's consultation is withheld from the health visitor, so her
    // override reveals it and puts a review on the area's privacy officers' queue.
    let gp = common::gp_family_bundle("GP-ROUTES-1");
    let (status, answer) = common::post_json(
        &k.http,
        &format!("{}/", k.urls[&Agency::Gp]),
        gp.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let child = person_of(k, CHILD_NHS).await;
    let mother = person_of(k, MOTHER_NHS).await;
    // Wait for the events to join the family and file the records.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, family) = k.get(&format!("/Patient/{child}/$family")).await;
        if family.to_string().contains("MTH") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the family joins: {family}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let hv = tokens(k, Who::HealthVisitor).expect("token");
    let steward = tokens(k, Who::Steward).expect("token");
    let officer = tokens(k, Who::Officer).expect("token");

    // An original the health visitor may see, from a Provenance in the child's records.
    let (_, everything) = call(
        k,
        "GET",
        &format!("/Patient/{child}/$everything"),
        Some(&hv),
        None,
    )
    .await;
    // (An extract row is about one person; the GP's Bundle, about several, is shown to no one.)
    let binary = common::resources(&everything)
        .into_iter()
        .filter(|r| r["resourceType"] == "Provenance")
        .filter_map(|p| p["entity"][0]["what"]["reference"].as_str())
        .find(|r| r.starts_with("Binary/health-visiting."))
        .and_then(|r| r.strip_prefix("Binary/"))
        .unwrap_or_else(|| panic!("an original: {everything}"))
        .to_owned();

    // A family edge to take back, asserted by the steward.
    let (status, edge) = call(
        k,
        "POST",
        "/family-edges",
        Some(&steward),
        Some(&json!({"from": mother, "to": child, "relation": "household-member", "reason": "Seen living at the address at today's visit"})),
    )
    .await;
    assert_eq!(status, 201, "{edge}");
    let edge = edge["edge"]["id"].as_str().expect("an edge id").to_owned();

    // An override review task, from a health visitor's override that reveals something.
    let override_token = kinfold_gateway::issue_token_for(
        &k.auth,
        &kinfold_gateway::TokenFor {
            subject: "hv-1",
            org: Some("RX1"),
            role: Some("health-visitor"),
            purpose: Some("override"),
            justification: Some(
                "Bruising seen on the baby at today's visit; checking the household",
            ),
            ..kinfold_gateway::TokenFor::default()
        },
        600,
    )
    .expect("token");
    call(
        k,
        "GET",
        &format!("/Patient/{child}/$everything?family=true"),
        Some(&override_token),
        None,
    )
    .await;
    let (_, queue) = call(k, "GET", "/Task?code=override-review", Some(&officer), None).await;
    let task = common::resources(&queue)
        .first()
        .and_then(|t| t["id"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("an override review for the area: {queue}"));

    // An audit entry naming one of the child's records, for `$why`.
    let (_, events) = call(
        k,
        "GET",
        &format!("/AuditEvent?patient={child}&_count=200"),
        Some(&officer),
        None,
    )
    .await;
    let (audit_event, audit_resource) = common::resources(&events)
        .into_iter()
        .find_map(|e| {
            let entity = e["entity"].as_array()?.iter().find(|x| {
                x["what"]["reference"]
                    .as_str()
                    .is_some_and(|r| r.contains("://"))
            })?;
            Some((
                e["id"].as_str()?.to_owned(),
                entity["what"]["reference"].as_str()?.to_owned(),
            ))
        })
        .unwrap_or_else(|| panic!("an AuditEvent naming a record: {events}"));

    Samples {
        childs_record: record_of(k, &child, Agency::HealthVisiting).await,
        mothers_record: record_of(k, &mother, Agency::Midwifery).await,
        child,
        mother,
        binary,
        edge,
        task,
        audit_event,
        audit_resource,
    }
}

async fn every_route_answers_as_its_policy_says(backend: Backend) {
    let mut k = Kinfold::adapters(backend).await;
    // Every refusal here is deliberate: none may be answered as a throttled source instead.
    k.start_gateway_with(|config| config.refusals.max_per_source = 100_000)
        .await;

    // The table and the documentation name the same routes.
    let document: Value = serde_json::from_str(include_str!("../../openapi/gateway.json"))
        .expect("the OpenAPI document");
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, methods)| {
            methods
                .as_object()
                .into_iter()
                .flatten()
                .map(move |(m, _)| (m.to_uppercase(), path.clone()))
        })
        .collect();
    // The dashboard's pages (`/app/`) are HTML for people, not API: not in the OpenAPI document,
    // and tested as pages (`tests/tests/dashboard.rs`).
    let api_routes = || ROUTES.iter().filter(|r| !r.path.starts_with("/app"));
    let declared: BTreeSet<(String, String)> = api_routes()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(
        documented.difference(&declared).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented routes without a declared policy"
    );
    assert_eq!(
        declared.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "declared routes missing from openapi/gateway.json"
    );

    let samples = samples(&k).await;
    let mut wrong = Vec::new();
    let mut calls = 0;
    for route in api_routes() {
        for who in EVERYONE {
            let (path, body) = request_for(route.method, route.path, &samples);
            let token = tokens(&k, who);
            let (status, answer) =
                call(&k, route.method, &path, token.as_deref(), body.as_ref()).await;
            calls += 1;
            let mut want = expected(route, who);
            if want == Answer::Served && sample_missing(route.path) {
                want = Answer::ByRecords;
            }
            let got = classify(route.path, status, &answer);
            let agrees = match route.access {
                // Open routes refuse no one (a bad parameter is the request's own fault).
                Access::Open => !matches!(got, Answer::Unauthenticated | Answer::ByRole),
                // A bearer token is no client assertion: no token is issued.
                Access::Client => status != 200,
                _ => got == want,
            };
            if !agrees {
                wrong.push(format!(
                    "{} {} as {who:?}: {status} ({got:?}), policy {:?} says {want:?}: {}",
                    route.method,
                    path,
                    route.access,
                    answer.to_string().chars().take(200).collect::<String>()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {calls} answers differ from the route table:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    k.finish().await;
}

#[tokio::test]
async fn sqlite_every_route_answers_as_its_policy_says() {
    every_route_answers_as_its_policy_says(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_every_route_answers_as_its_policy_says() {
    every_route_answers_as_its_policy_says(Backend::Postgres).await;
}
