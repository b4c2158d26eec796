//! Consent-checked disclosure end to end (real tokens, real HTTP, SQLite and PostgreSQL): who
//! is asking and why decides what each record does. A health visitor from the area's pool
//! sees the child's records and the family's safeguarding items but not the mother's
//! unrelated GP consultation; an override reveals it and is recorded as one; a school nurse
//! sees school nursing but not midwifery notes; a GP with no relationship is refused and the
//! refusal recorded; a token without role, organisation and purpose gets no patient data
//! (G1, G5, G8, G20).

mod common;

use common::agencies::{Backend, Kinfold};
use kinfold_fhir::Agency;
use serde_json::{Value, json};

const MIDWIFERY: &str = include_str!("../../docs/feeds/samples/midwifery.ndjson");
const HEALTH_VISITING: &str = include_str!("../../docs/feeds/samples/health-visiting.ndjson");
const SCHOOL_NURSING: &str = include_str!("../../docs/feeds/samples/school-nursing.ndjson");
const CHILD_NHS: &str = "9990000026";
const MOTHER_NHS: &str = "9990000018";

fn token(
    k: &Kinfold,
    subject: &str,
    org: &str,
    role: &str,
    purpose: &str,
    justification: Option<&str>,
) -> String {
    kinfold_gateway::issue_token_for(
        &k.auth,
        &kinfold_gateway::TokenFor {
            subject,
            name: None,
            org: Some(org),
            role: Some(role),
            purpose: Some(purpose),
            justification,
        },
        600,
    )
    .expect("token")
}

async fn get_as(k: &Kinfold, token: &str, path: &str) -> (u16, Value) {
    common::get_json(&k.http, &format!("{}{path}", k.gateway_url), Some(token)).await
}

fn ids(bundle: &Value) -> Vec<String> {
    common::resources(bundle)
        .into_iter()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect()
}

fn suppressed(bundle: &Value) -> Vec<String> {
    common::resources(bundle)
        .into_iter()
        .filter(|r| r["issue"][0]["code"] == "suppressed")
        .filter_map(|r| r["issue"][0]["diagnostics"].as_str().map(str::to_owned))
        .collect()
}

async fn the_decisions_follow_who_is_asking_and_why(backend: Backend) {
    let mut k = Kinfold::adapters(backend).await;
    k.start_gateway().await;
    for (agency, rows) in [
        (Agency::Midwifery, MIDWIFERY),
        (Agency::HealthVisiting, HEALTH_VISITING),
        (Agency::SchoolNursing, SCHOOL_NURSING),
    ] {
        assert!(k.import(agency, rows).await["stored"].as_u64() > Some(0));
    }
    let gp = common::gp_family_bundle("GP-CONSENT-1");
    let (status, answer) = common::post_json(
        &k.http,
        &format!("{}/", k.urls[&Agency::Gp]),
        gp.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    // The child's person, once the events have joined the family.
    let (_, found) = k
        .get(&format!(
            "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{CHILD_NHS}"
        ))
        .await;
    let leo = found["entry"][0]["resource"]["id"]
        .as_str()
        .expect("a person")
        .to_owned();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, family) = k.get(&format!("/Patient/{leo}/$family")).await;
        if family.to_string().contains("MTH") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the family is joined: {family}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let family = format!("/Patient/{leo}/$everything?family=true");

    // The health visitor of the area's pool (Leo is allocated to it): Leo's records and the
    // family's safeguarding items, not the mother's unrelated consultation.
    let hv = token(&k, "hv-1", "RX1", "health-visitor", "direct-care", None);
    let (status, seen) = get_as(&k, &hv, &family).await;
    assert_eq!(status, 200, "{seen}");
    let seen_ids = ids(&seen);
    assert!(
        seen_ids.iter().any(|id| id.starts_with("dan")),
        "the domestic-abuse notification: {seen_ids:?}"
    );
    assert!(
        !seen_ids.contains(&"gp-amira-consult".to_owned()),
        "withheld"
    );
    let why = suppressed(&seen);
    assert!(
        why.iter().any(|d| d.contains("GP practice")
            && d.contains("family.not-safeguarding-relevant")
            && d.contains("override")),
        "{why:?}"
    );
    // The mother's booked pregnancy is safeguarding-relevant: seen.
    assert!(
        seen.to_string().contains("pregnancy-booked"),
        "the booking is seen"
    );
    let total = seen["total"].as_u64().expect("total");
    let matches = seen["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["search"]["mode"] == "match")
        .count();
    assert_eq!(total, matches as u64, "total counts only what is shown");

    // An override with a justification reveals it, and says so in the mother's report.
    let override_token = token(
        &k,
        "hv-1",
        "RX1",
        "health-visitor",
        "override",
        Some("Bruising seen on the baby at today's visit; checking the household"),
    );
    let (status, revealed) = get_as(&k, &override_token, &family).await;
    assert_eq!(status, 200);
    assert!(
        ids(&revealed).contains(&"gp-amira-consult".to_owned()),
        "revealed by the override"
    );
    let (_, mother) = k
        .get(&format!(
            "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{MOTHER_NHS}"
        ))
        .await;
    let mother = mother["entry"][0]["resource"]["id"]
        .as_str()
        .expect("the mother")
        .to_owned();
    let (_, report) = k.get(&format!("/Patient/{mother}/$access-report")).await;
    let override_entry = report["accesses"]
        .as_array()
        .expect("accesses")
        .iter()
        .find(|a| a["override"] == true)
        .unwrap_or_else(|| panic!("the override is in the mother's report: {report}"));
    assert!(
        override_entry["text"]
            .as_str()
            .is_some_and(|t| t.contains("Bruising seen"))
    );
    // The override is on the privacy officers' queue of the organisation whose record it
    // revealed (the GP's, reviewed by the area here), and a privacy officer completes it.
    let officer = token(&k, "po-1", "Q99", "privacy-officer", "direct-care", None);
    let (status, queue) = get_as(&k, &officer, "/Task?code=override-review&status=requested").await;
    assert_eq!(status, 200, "{queue}");
    let task = common::resources(&queue)
        .into_iter()
        .find(|t| t.to_string().contains("gp-amira-consult"))
        .cloned()
        .unwrap_or_else(|| panic!("the review task: {queue}"));
    assert_eq!(task["status"], "requested");
    assert!(
        task["reasonCode"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("Bruising"))
    );
    assert_eq!(
        get_as(&k, &hv, "/Task?code=override-review").await.0,
        403,
        "privacy officers only"
    );
    let done = k
        .http
        .post(format!("{}/Task/{}/$complete", k.gateway_url, task["id"].as_str().expect("id")))
        .bearer_auth(&officer)
        .body(r#"{"outcome": "Justified: bruising recorded at the visit the same day", "justified": true}"#)
        .send()
        .await
        .expect("answers");
    assert_eq!(done.status(), 200);
    let done: Value = done.json().await.expect("the Task");
    assert_eq!(done["status"], "completed");
    let (_, report) = k.get(&format!("/Patient/{mother}/$access-report")).await;
    assert!(
        report.to_string().contains("reviewed an override"),
        "{report}"
    );
    // The privacy officer asks why the mother's consultation was withheld from the health
    // visitor's first request, and gets the rule.
    let (_, events) = get_as(
        &k,
        &officer,
        &format!("/AuditEvent?patient={mother}&agent=hv-1"),
    )
    .await;
    let first = common::resources(&events)
        .into_iter()
        .rev()
        .find(|e| e["purposeOfEvent"][0]["text"] == "direct-care")
        .cloned()
        .unwrap_or_else(|| panic!("the health visitor's first request: {events}"));
    let consult = first["entity"]
        .as_array()
        .expect("entities")
        .iter()
        .filter_map(|e| e["what"]["reference"].as_str())
        .find(|r| r.ends_with("Encounter/gp-amira-consult"))
        .unwrap_or_else(|| panic!("the withheld record is named in the ledger: {first}"))
        .to_owned();
    let (status, why) = get_as(
        &k,
        &officer,
        &format!(
            "/AuditEvent/{}/$why?resource={consult}",
            first["id"].as_str().expect("id")
        ),
    )
    .await;
    assert_eq!(status, 200, "{why}");
    assert_eq!(why["decision"], "withheld");
    assert_eq!(why["rule"], "family.not-safeguarding-relevant");
    assert_eq!(
        get_as(
            &k,
            &hv,
            &format!(
                "/AuditEvent/{}/$why?resource={consult}",
                first["id"].as_str().expect("id")
            )
        )
        .await
        .0,
        403,
        "privacy officers only"
    );
    // A privacy officer sees no care records: no relationship, answered as not found.
    assert_eq!(get_as(&k, &officer, &family).await.0, 404);

    // A justification too short is no override: refused, naming the rule, never read as an
    // ordinary request.
    // (`kinfold token` would not issue it: signed here with the gateway's key directly.)
    let weak = {
        let now = jsonwebtoken::get_current_timestamp();
        let key = &k.auth.keys[0];
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(
            &header,
            &json!({"iss": k.auth.issuer, "aud": k.auth.audience, "sub": "hv-1", "iat": now,
                "exp": now + 600, "org": "RX1", "role": "health-visitor", "purpose": "override",
                "justification": "just checking"}),
            &jsonwebtoken::EncodingKey::from_secret(key.secret.expose().as_bytes()),
        )
        .expect("signed")
    };
    let (status, still) = get_as(&k, &weak, &family).await;
    assert_eq!(status, 403, "{still}");
    assert_eq!(
        still["issue"][0]["details"]["coding"][0]["code"],
        "override.justification-too-short"
    );

    // The school nurse (Leo is enrolled with school nursing) sees school nursing, not the
    // mother's midwifery notes.
    let sn = token(&k, "sn-1", "RX1", "school-nurse", "direct-care", None);
    let (status, school) = get_as(&k, &sn, &family).await;
    assert_eq!(status, 200, "{school}");
    assert!(
        school.to_string().contains("ncmp"),
        "NCMP measurements are seen"
    );
    assert!(
        !school.to_string().contains("pregnancy-booked"),
        "midwifery notes are not"
    );
    assert!(
        suppressed(&school)
            .iter()
            .any(|d| d.contains("scope.role") && d.contains("Midwifery"))
    );

    // A GP with no relationship to the family is refused exactly as if Leo did not exist, and
    // the refusal is recorded.
    let unrelated = token(&k, "dr-elsewhere", "B99999", "gp", "direct-care", None);
    let (status, refused) = get_as(&k, &unrelated, &format!("/Patient/{leo}/$everything")).await;
    assert_eq!(status, 404, "{refused}");
    let (_, unknown) = get_as(
        &k,
        &unrelated,
        "/Patient/00000000-0000-4000-8000-00000000abcd/$everything",
    )
    .await;
    assert_eq!(refused, unknown, "a refusal reads exactly as not found");
    // Not an access (nothing was disclosed), but on record for the privacy officer.
    let (_, events) = get_as(&k, &officer, &format!("/AuditEvent?patient={leo}")).await;
    let refusal = common::resources(&events)
        .into_iter()
        .find(|e| e["outcome"] == "4")
        .unwrap_or_else(|| panic!("the refusal is recorded: {events}"));
    assert!(
        refusal["outcomeDesc"]
            .as_str()
            .is_some_and(|d| d.contains("relationship.none"))
    );
    assert_eq!(refusal["agent"][0]["who"]["display"], "dr-elsewhere");
    // Nor may they learn who the child is, where the records are, or who the family is: a
    // search finds nobody, exactly as for a number no agency knows.
    let (status, search) = get_as(
        &k,
        &unrelated,
        &format!("/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{CHILD_NHS}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(search["total"], 0, "{search}");
    let (_, unknown) = get_as(
        &k,
        &unrelated,
        "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000093",
    )
    .await;
    assert_eq!(unknown["total"], 0);
    let (_, by_name) = get_as(
        &k,
        &unrelated,
        "/Patient?name=Leo%20Haddad&birthdate=2022-01-15",
    )
    .await;
    assert_eq!(by_name["total"], 0, "{by_name}");
    for path in [
        format!("/Patient/{leo}"),
        format!("/Person/{leo}"),
        format!("/Patient/{leo}/$family"),
    ] {
        assert_eq!(get_as(&k, &unrelated, &path).await.0, 404, "{path}");
    }
    // The registered GP is not refused.
    let registered = token(&k, "dr-own", "A81001", "gp", "direct-care", None);
    assert_eq!(
        get_as(&k, &registered, &format!("/Patient/{leo}/$everything"))
            .await
            .0,
        200
    );

    // The mother records her dissent to sharing her midwifery records: from then on they are
    // withheld, and the answer says so.
    let lead = k.token.clone();
    let (status, before) = get_as(&k, &lead, &format!("/Patient/{mother}/$everything")).await;
    assert_eq!(status, 200);
    assert!(before.to_string().contains("pregnancy-booked"));
    let dissent = |patient: &str| {
        json!({
            "resourceType": "Consent", "status": "active",
            "patient": {"reference": format!("Patient/{patient}")},
            "performer": [{"reference": format!("Patient/{patient}")}],
            "provision": {"type": "deny", "actor": [{"reference": {"identifier": {"system": "urn:kinfold:agency", "value": "midwifery"}}}]}
        })
    };
    let post = |body: Value| {
        k.http
            .post(format!("{}/Consent", k.gateway_url))
            .bearer_auth(&lead)
            .header("content-type", "application/fhir+json")
            .body(body.to_string())
            .send()
    };
    let recorded = post(dissent(&mother)).await.expect("answers");
    assert_eq!(recorded.status(), 201);
    let recorded: Value = recorded.json().await.expect("the Consent");
    let id = recorded["id"].as_str().expect("an id").to_owned();
    let (_, after) = get_as(&k, &lead, &format!("/Patient/{mother}/$everything")).await;
    assert!(
        !after.to_string().contains("pregnancy-booked"),
        "withheld by her dissent"
    );
    assert!(
        suppressed(&after)
            .iter()
            .any(|d| d.contains(&format!("consent.dissent.{id}")) && d.contains("Midwifery")),
        "{:?}",
        suppressed(&after)
    );
    // The booking's original goes with the booking: withheld too.
    let booking_original = common::resources(&before)
        .into_iter()
        .filter(|r| r["resourceType"] == "Provenance")
        .filter(|p| p["target"].to_string().contains("EpisodeOfCare"))
        .filter_map(|p| p["entity"][0]["what"]["reference"].as_str())
        .find(|b| b.starts_with("Binary/midwifery."))
        .expect("the booking's original")
        .to_owned();
    let (status, outcome) = get_as(&k, &lead, &format!("/{booking_original}")).await;
    assert_eq!(status, 404, "{outcome}");
    assert_eq!(
        outcome["issue"][0]["details"]["coding"][0]["code"],
        "not-found"
    );
    // And a GP with no relationship reads no original at all.
    let leo_original = common::resources(&after)
        .into_iter()
        .filter(|r| r["resourceType"] == "Provenance")
        .filter_map(|p| p["entity"][0]["what"]["reference"].as_str())
        .next()
        .map(str::to_owned);
    if let Some(original) = leo_original {
        assert_eq!(get_as(&k, &unrelated, &format!("/{original}")).await.0, 404);
    }
    // A four-year-old is not asked: a dissent for Leo needs an assessment of competence.
    let too_young = post(dissent(&leo)).await.expect("answers");
    assert_eq!(too_young.status(), 422);
    let outcome: Value = too_young.json().await.expect("an outcome");
    assert_eq!(
        outcome["issue"][0]["details"]["coding"][0]["code"],
        "not-of-age"
    );
    // Something that is not a dissent Kinfold keeps is refused with where.
    let mut permit = dissent(&mother);
    permit["provision"]["type"] = json!("permit");
    let refused = post(permit).await.expect("answers");
    assert_eq!(refused.status(), 422);
    let outcome: Value = refused.json().await.expect("an outcome");
    assert_eq!(
        outcome["issue"][0]["expression"][0],
        "Consent.provision.type"
    );
    let (status, listed) = get_as(&k, &lead, &format!("/Consent?patient={mother}")).await;
    assert_eq!(status, 200);
    assert_eq!(listed["total"], 1);
    // She changes her mind: the dissent is withdrawn (kept, inactive), and the booking is
    // shared again.
    let withdrawn = k
        .http
        .post(format!("{}/Consent/{id}/$withdraw", k.gateway_url))
        .bearer_auth(&lead)
        .body(r#"{"reason": "She asked for her midwife's notes to be shared again"}"#)
        .send()
        .await
        .expect("answers");
    assert_eq!(withdrawn.status(), 200);
    let withdrawn: Value = withdrawn.json().await.expect("the Consent");
    assert_eq!(withdrawn["status"], "inactive");
    let (_, again) = get_as(&k, &lead, &format!("/Patient/{mother}/$everything")).await;
    assert!(
        again.to_string().contains("pregnancy-booked"),
        "shared again"
    );
    let (_, report) = k.get(&format!("/Patient/{mother}/$access-report")).await;
    assert!(
        report
            .to_string()
            .contains("withdrew this person's decision"),
        "{report}"
    );

    // No role or purpose: no patient data.
    let bare = kinfold_gateway::issue_token(&k.auth, "someone", None, None, 600).expect("token");
    let (status, outcome) = get_as(&k, &bare, &format!("/Patient/{leo}/$everything")).await;
    assert_eq!(status, 403);
    assert_eq!(
        outcome["issue"][0]["details"]["coding"][0]["code"],
        "who-and-why"
    );
    k.finish().await;
}

#[tokio::test]
async fn sqlite_the_decisions_follow_who_is_asking_and_why() {
    the_decisions_follow_who_is_asking_and_why(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_the_decisions_follow_who_is_asking_and_why() {
    the_decisions_follow_who_is_asking_and_why(Backend::Postgres).await;
}
