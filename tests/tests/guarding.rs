//! The routes around the data, guarded (issue: every route guarded and audited by
//! construction). Each test is one defect a hostile tester found in the demo, replayed against
//! a fresh demo: the audit trail and the identity review queue open to any token, the story
//! child's access report answering 404, a too-short override quietly read as an ordinary
//! request, a token naming nobody, and identity changes without their request id. The route
//! table itself is held against every route in `routes.rs`.

mod common;

use common::TestDemo;
use kinfold_store::{LedgerQuery, Store};
use serde_json::{Value, json};

fn token(t: &TestDemo, label: &str) -> String {
    t.demo.info.consent_example.tokens[label].clone()
}

async fn as_caller(t: &TestDemo, token: &str, path: &str) -> (u16, Value) {
    common::get_json(&t.http, &t.gateway(path), Some(token)).await
}

fn code(outcome: &Value) -> &str {
    outcome["issue"][0]["details"]["coding"][0]["code"]
        .as_str()
        .unwrap_or_default()
}

/// The gateway's own ledger, read directly.
async fn gateway_ledger(t: &TestDemo, query: LedgerQuery) -> Vec<kinfold_ledger::AuditRecord> {
    let store = Store::open(&format!(
        "sqlite://{}",
        t.dir.path().join("gateway.db").display()
    ))
    .await
    .expect("the gateway's store");
    let rows = store.ledger_search(&query).await.expect("ledger");
    store.close().await;
    rows.iter()
        .map(|r| serde_json::from_str(&r.record).expect("an audit record"))
        .collect()
}

#[tokio::test]
async fn the_audit_trail_is_for_privacy_officers_and_the_access_report_for_those_involved() {
    let t = TestDemo::start(2).await;
    let child = t.demo.info.family_example.child.id.clone();
    let gp = token(&t, "unrelated-gp");
    let hv = token(&t, "health-visitor");
    let officer = token(&t, "privacy-officer");

    // Defect 1: any valid token read the whole trail, NHS numbers and all.
    let (status, outcome) =
        as_caller(&t, &gp, "/AuditEvent?agent=kinfold-identity&_count=1000").await;
    assert_eq!(
        (status, code(&outcome)),
        (403, "role-not-permitted"),
        "{outcome}"
    );
    let (status, outcome) = as_caller(&t, &hv, &format!("/AuditEvent?patient={child}")).await;
    assert_eq!(status, 403, "{outcome}");
    let (status, trail) =
        as_caller(&t, &officer, "/AuditEvent?agent=kinfold-identity&_count=5").await;
    assert_eq!(status, 200, "{trail}");
    assert!(trail["total"].as_u64() > Some(0));

    // Defect 3: the story child's access report answered 404 to everyone (looked up by NHS
    // number). A professional with a relationship now reads it; an unrelated GP is answered
    // exactly as for a person who does not exist.
    let (status, report) = as_caller(&t, &hv, &format!("/Patient/{child}/$access-report")).await;
    assert_eq!(status, 200, "{report}");
    assert!(report["total"].as_u64() > Some(0), "{report}");
    let (refused_status, refused) =
        as_caller(&t, &gp, &format!("/Patient/{child}/$access-report")).await;
    let (unknown_status, unknown) = as_caller(
        &t,
        &gp,
        "/Patient/00000000-0000-4000-8000-00000000abcd/$access-report",
    )
    .await;
    assert_eq!((refused_status, unknown_status), (404, 404));
    assert_eq!(refused, unknown, "a refusal reads exactly as not found");
    // The unborn sibling's report too: a person the index knows without an NHS number.
    let unborn = t
        .demo
        .info
        .family_example
        .members
        .iter()
        .find(|m| m.relationship == "unborn-sibling")
        .expect("the unborn sibling")
        .id
        .clone();
    let lead = t.demo.info.token.clone();
    let (status, report) = as_caller(&t, &lead, &format!("/Patient/{unborn}/$access-report")).await;
    assert_eq!(status, 200, "{report}");

    // The health visitor's override reveals the mother's consultation; in the mother's report
    // the privacy officer sees what was withheld from whom, a professional only who looked.
    let mother = t
        .demo
        .info
        .consent_example
        .mother
        .clone()
        .expect("the mother");
    let override_token = token(&t, "health-visitor-override");
    let (status, _) = as_caller(
        &t,
        &override_token,
        &format!("/Patient/{child}/$everything?family=true"),
    )
    .await;
    assert_eq!(status, 200);
    let (_, seen) = as_caller(
        &t,
        &hv,
        &format!("/Patient/{child}/$everything?family=true"),
    )
    .await;
    assert_eq!(seen["resourceType"], "Bundle");
    let (status, full) =
        as_caller(&t, &officer, &format!("/Patient/{mother}/$access-report")).await;
    assert_eq!(status, 200, "{full}");
    let (status, partial) =
        as_caller(&t, &lead, &format!("/Patient/{mother}/$access-report")).await;
    assert_eq!(status, 200, "{partial}");
    let withheld_lines = |report: &Value| {
        report["accesses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a.get("withheld_rules").is_some())
            .count()
    };
    assert!(
        withheld_lines(&full) > 0,
        "the officer sees what was withheld: {full}"
    );
    assert_eq!(
        withheld_lines(&partial),
        0,
        "a professional does not: {partial}"
    );
    assert!(
        !partial.to_string().contains("not-safeguarding-relevant"),
        "{partial}"
    );

    // Each view of the trail is itself in the ledger, as the caller's.
    let views = gateway_ledger(
        &t,
        LedgerQuery {
            agent: Some("demo-privacy-officer".into()),
            limit: 100,
            ..LedgerQuery::default()
        },
    )
    .await;
    assert!(
        views
            .iter()
            .any(|r| r.query == "AuditEvent" && r.outcome == "0")
    );
    assert!(
        views
            .iter()
            .any(|r| r.query == "Patient/$access-report" && r.patient.as_deref() == Some(&mother))
    );
    t.demo.shutdown().await;
}

#[tokio::test]
async fn identity_and_family_writes_are_for_stewards_concerned_and_carry_their_request_id() {
    let t = TestDemo::start(2).await;
    let child = t.demo.info.family_example.child.id.clone();
    let stranger = t.demo.info.example_patient.id.clone();
    let gp = token(&t, "unrelated-gp");
    let steward = token(&t, "identity-steward");
    let post = |token: String, path: String, body: Value, request_id: &'static str| {
        let request = t
            .http
            .post(t.gateway(&path))
            .bearer_auth(token)
            .header("x-request-id", request_id)
            .json(&body);
        async move {
            let response = request.send().await.expect("answered");
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let edge = json!({"from": stranger, "to": child, "relation": "carer", "reason": "Seen living at the address at today's visit"});

    // Defect 2: the unrelated GP asserted a carer edge (201) and read the review queue.
    let (status, outcome) = post(gp.clone(), "/family-edges".into(), edge.clone(), "gp-edge").await;
    assert_eq!(
        (status, code(&outcome)),
        (403, "role-not-permitted"),
        "{outcome}"
    );
    let (status, outcome) = as_caller(&t, &gp, "/identity/reviews").await;
    assert_eq!(status, 403, "{outcome}");

    // The steward of the trust holding the child's health-visiting records may; the change
    // is in the access report of both people, with the reason and the request's id.
    let (status, made) = post(
        steward.clone(),
        "/family-edges".into(),
        edge,
        "steward-edge-1",
    )
    .await;
    assert_eq!(status, 201, "{made}");
    for person in [&child, &stranger] {
        let entries = gateway_ledger(
            &t,
            LedgerQuery {
                patient: Some(person.clone()),
                limit: 1000,
                ..LedgerQuery::default()
            },
        )
        .await;
        let entry = entries
            .iter()
            .find(|r| r.query == "family-edge")
            .unwrap_or_else(|| panic!("the edge is in {person}'s trail"));
        assert_eq!(entry.request_id.as_deref(), Some("steward-edge-1"));
        assert_eq!(entry.agent.who, "demo-identity-steward");
        assert!(
            entry
                .justification
                .as_deref()
                .is_some_and(|j| j.contains("today's visit"))
        );
    }
    let (status, _) = as_caller(&t, &steward, "/identity/reviews").await;
    assert_eq!(status, 200);
    // GET /identity/reviews wrote no audit entry at all; now every listing is recorded.
    let listings = gateway_ledger(
        &t,
        LedgerQuery {
            agent: Some("demo-identity-steward".into()),
            limit: 100,
            ..LedgerQuery::default()
        },
    )
    .await;
    assert!(
        listings.iter().any(|r| r.query == "identity-reviews"),
        "{listings:?}"
    );
    t.demo.shutdown().await;
}

#[tokio::test]
async fn a_short_override_is_refused_and_a_token_naming_nobody_reads_nothing() {
    let t = TestDemo::start(1).await;
    let child = t.demo.info.family_example.child.id.clone();
    let secret = std::fs::read_to_string(t.dir.path().join("demo-token-secret"))
        .expect("the demo's token secret");
    let auth = kinfold_gateway::AuthConfig {
        keys: vec![kinfold_gateway::KeyConfig {
            kid: "demo".into(),
            secret: kinfold_gateway::Secret::new(secret.trim().to_owned()),
        }],
        ..kinfold_gateway::AuthConfig::default()
    };
    // Signed by the gateway's own key, so only the claims can be refused.
    let signed = |claims: Value| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("demo".into());
        let now = jsonwebtoken::get_current_timestamp();
        let mut all = json!({"iss": auth.issuer, "aud": auth.audience, "iat": now, "exp": now + 600,
            "org": "RX1", "role": "health-visitor"});
        for (k, v) in claims.as_object().expect("claims") {
            all[k] = v.clone();
        }
        jsonwebtoken::encode(
            &header,
            &all,
            &jsonwebtoken::EncodingKey::from_secret(secret.trim().as_bytes()),
        )
        .expect("signed")
    };
    let family = format!("/Patient/{child}/$everything?family=true");

    // Defect 6: 25 zero-width spaces, or 20 dots, counted as a justification and revealed the
    // consultation; a short one was quietly read as an ordinary request.
    for justification in ["\u{200b}".repeat(25), ".".repeat(20), "checking".to_owned()] {
        let token =
            signed(json!({"sub": "hv-1", "purpose": "override", "justification": justification}));
        let (status, outcome) = as_caller(&t, &token, &family).await;
        assert_eq!(
            (status, code(&outcome)),
            (403, "override.justification-too-short"),
            "{justification:?}: {outcome}"
        );
    }
    let token = signed(
        json!({"sub": "hv-1", "purpose": "override", "justification": "Bruising seen on the baby at today's visit"}),
    );
    let (status, _) = as_caller(&t, &token, &family).await;
    assert_eq!(status, 200, "a real justification is taken");

    // A signed token naming nobody, or a role or purpose Kinfold does not know, reads nothing.
    for claims in [
        json!({"sub": "", "purpose": "direct-care"}),
        json!({"sub": "x", "role": "superuser", "purpose": "direct-care"}),
        json!({"sub": "x", "purpose": "break-glass"}),
    ] {
        let (status, outcome) = as_caller(&t, &signed(claims.clone()), &family).await;
        assert_eq!(
            (status, code(&outcome)),
            (401, "token-claims"),
            "{claims}: {outcome}"
        );
    }
    // `kinfold token` will not issue them either: it signs through `issue_token_for`, whose
    // refusals are tested in `kinfold-gateway` (auth.rs).
    t.demo.shutdown().await;
}
