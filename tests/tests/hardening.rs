//! What a hostile tester found, kept mended: audit views that tell the whole truth, refusals
//! that cannot grow the ledger without bound, bounded ingest, strict search, valid data only,
//! strict tokens, honest partial answers, and a careful HTTP edge (G4, G12, G20).
//!
//! Storage is touched on both backends: the strict-search and malformed-input checks run
//! against an adapter on SQLite and again on PostgreSQL.

mod common;

use std::time::Duration;

use common::{TestDemo, assert_valid_fhir, get_json, post_json as post, resources};
use kinfold_fhir::{Agency, NHS_NUMBER_SYSTEM};
use kinfold_store::Store;
use kinfold_store::testing::TestPostgres;
use serde_json::{Value, json};

fn demo_auth(t: &TestDemo) -> kinfold_gateway::AuthConfig {
    let secret =
        std::fs::read_to_string(t.dir.path().join("demo-token-secret")).expect("demo secret");
    kinfold_gateway::AuthConfig {
        keys: vec![kinfold_gateway::KeyConfig {
            kid: "demo".into(),
            secret: kinfold_gateway::Secret::new(secret.trim().to_owned()),
        }],
        ..kinfold_gateway::AuthConfig::default()
    }
}

fn issue(t: &TestDemo, subject: &str, org: &str, role: &str) -> String {
    kinfold_gateway::issue_token(&demo_auth(t), subject, Some(org), Some(role), 600).expect("token")
}

async fn get_with(t: &TestDemo, url: &str, token: &str) -> (u16, Value) {
    get_json(&t.http, url, Some(token)).await
}

/// Follows `next` links from `first` to the end; returns the first page's total (pages after
/// it count the entries their own reading adds) and every entry's resource.
async fn all_pages(t: &TestDemo, first: &str) -> (u64, Vec<Value>) {
    let mut url = Some(first.to_owned());
    let mut total = None;
    let mut all = Vec::new();
    while let Some(next) = url.take() {
        let (status, bundle) = t.officer_get(&next).await;
        assert_eq!(status, 200, "{bundle}");
        total.get_or_insert(bundle["total"].as_u64().expect("a total"));
        all.extend(resources(&bundle).into_iter().cloned());
        url = bundle["link"]
            .as_array()
            .and_then(|links| links.iter().find(|l| l["relation"] == "next"))
            .and_then(|l| l["url"].as_str())
            .map(str::to_owned);
    }
    (total.unwrap_or(0), all)
}

/// Defect 1 (G20): one access followed by a thousand routine reads no longer drops out of the
/// child's access report or their AuditEvents: both count and reach every entry.
#[tokio::test]
async fn an_access_cannot_be_hidden_behind_a_thousand_later_ones() {
    let t = TestDemo::start(1).await;
    let id = t.demo.info.example_patient.id.clone();
    // Someone with a relationship (the area's safeguarding team) who looks once.
    let snooper = issue(&t, "dr-snoop", "Q99", "safeguarding-professional");
    let (status, _) = get_with(&t, &t.gateway(&format!("/Patient/{id}")), &snooper).await;
    assert_eq!(status, 200);
    for _ in 0..1000 {
        let (status, _) = t.get(&t.gateway(&format!("/Patient/{id}"))).await;
        assert_eq!(status, 200);
    }

    let (status, report) = t
        .get(&t.gateway(&format!("/Patient/{id}/$access-report?_count=50")))
        .await;
    assert_eq!(status, 200, "{report}");
    assert!(
        report["total"].as_u64().unwrap() >= 1001,
        "{}",
        report["total"]
    );
    let snoop = report["by_who"]
        .as_array()
        .expect("by_who")
        .iter()
        .find(|g| g["who"] == "dr-snoop")
        .unwrap_or_else(|| panic!("the snooper is in the summary: {}", report["by_who"]));
    assert_eq!(snoop["accesses"], 1);
    assert_eq!(snoop["organisation"], "Q99");
    assert_eq!(report["accesses"].as_array().map(Vec::len), Some(50));
    assert!(report["next"].is_string(), "the report says there is more");

    let (total, events) = all_pages(
        &t,
        &t.gateway(&format!("/AuditEvent?patient={id}&_count=400")),
    )
    .await;
    assert!(total >= 1001, "true total: {total}");
    assert_eq!(events.len() as u64, total, "next links reach every entry");
    assert!(
        events
            .iter()
            .any(|e| e["agent"][0]["who"]["display"] == "dr-snoop"),
        "the snooper's access is reachable"
    );
    t.demo.shutdown().await;
}

/// Defect 2 (G20): refusals are recorded in aggregate, with the source address, and a source
/// that keeps failing is answered 429.
#[tokio::test]
async fn anonymous_requests_cannot_grow_the_ledger() {
    let t = TestDemo::start_with(1, |o| {
        o.refusals = kinfold_audit::RefusalConfig {
            interval_ms: 500,
            max_per_source: 20,
            ..kinfold_audit::RefusalConfig::default()
        };
    })
    .await;
    let (dir, demo, http) = (&t.dir, &t.demo, &t.http);
    let store = Store::open(&format!(
        "sqlite://{}",
        dir.path().join("gateway.db").display()
    ))
    .await
    .expect("gateway store");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before = store
        .ledger_count(&kinfold_store::LedgerQuery::default())
        .await
        .expect("count");

    let url = format!(
        "{}/Patient/{}/$everything",
        demo.info.gateway, demo.info.example_patient.id
    );
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..2000 {
        let response = http.get(&url).send().await.expect("answered");
        let status = response.status().as_u16();
        if status == 429 {
            assert!(response.headers().contains_key("retry-after"));
            let outcome: Value = response.json().await.expect("json");
            assert_eq!(outcome["issue"][0]["code"], "throttled");
        }
        *statuses.entry(status).or_insert(0u32) += 1;
    }
    assert!(
        statuses.get(&401).copied().unwrap_or(0) >= 20,
        "{statuses:?}"
    );
    assert!(
        statuses.get(&429).copied().unwrap_or(0) > 0,
        "throttled: {statuses:?}"
    );
    assert_eq!(statuses.values().sum::<u32>(), 2000);

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let after = store
        .ledger_count(&kinfold_store::LedgerQuery::default())
        .await
        .expect("count");
    let growth = after - before;
    assert!(growth >= 1, "refusals are accounted for");
    assert!(
        growth <= 20,
        "2,000 refused requests added {growth} entries"
    );

    let (status, events) = get_json(
        http,
        &format!(
            "{}/AuditEvent?agent=anonymous&_count=100",
            demo.info.gateway
        ),
        Some(&demo.info.consent_example.tokens["privacy-officer"]),
    )
    .await;
    assert_eq!(status, 200, "{events}");
    let counted: u64 = resources(&events)
        .iter()
        .filter(|e| e["agent"][0]["network"]["address"] == "127.0.0.1")
        .filter_map(|e| {
            e["outcomeDesc"]
                .as_str()?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert_eq!(
        counted, 2000,
        "every refusal is counted, by source: {events}"
    );
    store.close().await;
    t.demo.shutdown().await;
}

/// Defect 6: tokens not yet valid or living too long are refused; an oversized token gets a
/// 431 (with an OperationOutcome up to the HTTP layer's own buffer, empty-bodied beyond it).
#[tokio::test]
async fn tokens_not_yet_valid_too_long_lived_or_oversized_are_refused() {
    let t = TestDemo::start(1).await;
    let url = t.gateway(&format!("/Patient/{}", t.demo.info.example_patient.id));
    let secret = std::fs::read_to_string(t.dir.path().join("demo-token-secret")).expect("secret");
    let now = jsonwebtoken::get_current_timestamp();
    let sign = |claims: Value| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("demo".into());
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.trim().as_bytes()),
        )
        .expect("token")
    };
    let base = |exp: u64| json!({"iss": "kinfold", "aud": "kinfold-gateway", "sub": "x", "iat": now, "exp": exp});
    let mut not_yet = base(now + 7200);
    not_yet["nbf"] = json!(now + 3600);
    for (what, token, code) in [
        ("nbf an hour ahead", sign(not_yet), "token-not-yet-valid"),
        ("exp in 9999", sign(base(253_402_300_799)), "token-lifetime"),
    ] {
        let (status, outcome) = get_with(&t, &url, &token).await;
        assert_eq!(status, 401, "{what}: {outcome}");
        assert_eq!(
            outcome["issue"][0]["details"]["coding"][0]["code"], code,
            "{what}"
        );
    }
    // 40 KB is refused by Kinfold's own limit, with an OperationOutcome that says why. 133 KB
    // overflows the HTTP layer's 128 KiB head buffer before Kinfold sees the request: actix-http
    // answers that 431 itself, with an empty body (README, "The API").
    let oversized = |size: usize| format!("{}.{}.x", "a".repeat(size), "b".repeat(size));
    let response = t
        .http
        .get(&url)
        .bearer_auth(oversized(20_000))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 431);
    let outcome: Value = response.json().await.expect("an OperationOutcome body");
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_valid_fhir("431 outcome", &outcome);
    let response = t
        .http
        .get(&url)
        .bearer_auth(oversized(66_500))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 431, "refused by the HTTP layer");
    t.demo.shutdown().await;
}

/// Defect 7 (G4): a read of the gateway's Patient view names the agencies that did not answer.
#[tokio::test]
async fn a_patient_read_names_the_agencies_that_did_not_answer() {
    let mut t = TestDemo::start(1).await;
    let id = t.demo.info.example_patient.id.clone();
    let (status, whole) = t.get(&t.gateway(&format!("/Patient/{id}"))).await;
    assert_eq!(status, 200);
    assert!(whole.get("extension").is_none(), "nothing missing: {whole}");
    t.demo.stop_adapter(Agency::Ae).await;
    let (status, partial) = t.get(&t.gateway(&format!("/Patient/{id}"))).await;
    assert_eq!(status, 200, "{partial}");
    let missing = partial["extension"]
        .as_array()
        .expect("missing agencies named");
    assert_eq!(missing.len(), 1, "{partial}");
    assert_eq!(missing[0]["extension"][0]["valueCode"], "ae");
    assert!(
        missing[0]["extension"][1]["valueString"]
            .as_str()
            .is_some_and(|s| s.contains("could not be reached")),
        "{partial}"
    );
    assert_valid_fhir("partial Patient view", &partial);
    t.demo.shutdown().await;
}

/// Defect 4 at the gateway: every unsupported or repeated parameter is refused with 400.
#[tokio::test]
async fn the_gateway_refuses_parameters_it_does_not_support() {
    let t = TestDemo::start(1).await;
    let id = t.demo.info.example_patient.id.clone();
    let nhs = t.demo.info.example_patient.nhs_number.clone();
    for path in [
        format!("/Patient/{id}/$everything?_type=Observation"),
        format!("/Patient/{id}?foo=bar"),
        format!("/Patient/{id}/$growth?foo=bar"),
        format!("/Patient/{id}/$growth-chart?measure=weight&measure=height"),
        format!("/Patient/{id}/$access-report?foo=bar"),
        "/AuditEvent?foo=bar".to_owned(),
        "/AuditEvent?patient=a&patient=b".to_owned(),
        format!(
            "/Patient?identifier={NHS_NUMBER_SYSTEM}|{nhs}&identifier={NHS_NUMBER_SYSTEM}|9434765919"
        ),
        "/Patient?identifier=".to_owned(),
        "/metadata?foo=bar".to_owned(),
        "/ledger/v1/get-sth?foo=bar".to_owned(),
        "/ledger/v1/get-entries?start=0&end=1&foo=bar".to_owned(),
    ] {
        let (status, outcome) = if path.starts_with("/AuditEvent") {
            t.officer_get(&t.gateway(&path)).await
        } else {
            t.get(&t.gateway(&path)).await
        };
        assert_eq!(status, 400, "{path}: {outcome}");
        assert_eq!(outcome["resourceType"], "OperationOutcome", "{path}");
    }
    t.demo.shutdown().await;
}

/// Defect 8: no-store and nosniff on answers; links never from `Host`; a hostile request id
/// is replaced, and the id echoed is the id recorded.
#[tokio::test]
async fn the_http_edge_is_careful() {
    let t = TestDemo::start(1).await;
    let id = t.demo.info.example_patient.id.clone();
    let response = t
        .http
        .get(t.gateway(&format!("/Patient/{id}/$everything")))
        .bearer_auth(&t.demo.info.token)
        .header("host", "evil.example")
        .header("x-forwarded-host", "evil.example")
        .header("x-request-id", format!("\"{}\"", "q".repeat(4000)))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let echoed = response.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(echoed.len() <= 64 && !echoed.contains('"'), "{echoed}");
    let body = response.text().await.expect("body");
    assert!(
        !body.contains("evil.example"),
        "links use the server's own address"
    );

    let store = Store::open(&format!(
        "sqlite://{}",
        t.dir.path().join("gateway.db").display()
    ))
    .await
    .expect("store");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let rows = store
        .ledger_search(&kinfold_store::LedgerQuery {
            patient: Some(id.clone()),
            limit: 1,
            ..kinfold_store::LedgerQuery::default()
        })
        .await
        .expect("rows");
    let record: Value = serde_json::from_str(&rows[0].record).expect("record");
    assert_eq!(
        record["request_id"],
        echoed.as_str(),
        "one id for echo and audit"
    );
    store.close().await;

    let response = t
        .http
        .post(t.adapter("gp", "/"))
        .header("content-type", "application/fhir+json")
        .header("x-request-id", "feed-batch-0042")
        .body(json!({"resourceType": "Bundle", "type": "batch", "entry": [{"resource": {"resourceType": "Flag", "status": "active"}, "request": {"method": "POST", "url": "Flag"}}]}).to_string())
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "feed-batch-0042");
    t.demo.shutdown().await;
}

/// Defect 3: an ingest over the entry or byte limit is refused early, says which limit, and
/// stores nothing.
#[tokio::test]
async fn oversized_ingests_are_refused_with_the_limit_and_nothing_stored() {
    let t = TestDemo::start(1).await;
    let entries: Vec<Value> = (0..5001)
        .map(|_| json!({"resource": {"resourceType": "Flag", "status": "active"}, "request": {"method": "POST", "url": "Flag"}}))
        .collect();
    let (_, before) = t.get(&t.adapter("ae", "/Flag?_count=0")).await;
    let (status, outcome) = post(
        &t.http,
        &t.adapter("ae", "/"),
        json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}).to_string(),
    )
    .await;
    assert_eq!(status, 413, "{outcome}");
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("5000")
    );
    let big = format!(
        "{{\"resourceType\": \"Bundle\", \"type\": \"batch\", \"entry\": [], \"padding\": \"{}\"}}",
        "x".repeat(9 * 1024 * 1024)
    );
    let (status, outcome) = post(&t.http, &t.adapter("ae", "/"), big).await;
    assert_eq!(status, 413, "{outcome}");
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("8388608")
    );
    let (_, after) = t.get(&t.adapter("ae", "/Flag?_count=0")).await;
    assert_eq!(before["total"], after["total"]);
    t.demo.shutdown().await;
}

fn transaction(entries: Vec<Value>) -> String {
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}).to_string()
}

fn observation(patient: &str, code: &str, date: &str) -> Value {
    json!({"resource": {"resourceType": "Observation", "status": "final",
        "subject": {"reference": format!("Patient/{patient}")},
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "effectiveDateTime": date},
        "request": {"method": "POST", "url": "Observation"}})
}

fn patient(id: &str, nhs: &str, family: &str) -> Value {
    json!({"resource": {"resourceType": "Patient", "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs}], "name": [{"family": family}]},
        "request": {"method": "PUT", "url": format!("Patient/{id}")}})
}

async fn total(http: &reqwest::Client, url: &str) -> u64 {
    let (status, bundle) = get_json(http, url, None).await;
    assert_eq!(status, 200, "{url}: {bundle}");
    bundle["total"].as_u64().expect("total")
}

/// Defects 4 and 5 at an adapter: repeated parameters are ANDed, searches too large for the
/// database are a 400 with the limit, invalid data is refused where it is wrong and nothing
/// of a failed transaction is stored, and one Patient per NHS number.
async fn strict_search_and_valid_data_only(store: Store) {
    let (url, handle, http) = common::adapter_on(Agency::Gp, store).await;
    let (status, answer) = post(
        &http,
        &format!("{url}/"),
        transaction(vec![
            patient("a", "9434765919", "Nowak"),
            patient("b", "9434765870", "Kowalska"),
            observation("a", "29463-7", "2024-01-01"),
            observation("b", "29463-7", "2024-01-02"),
            observation("a", "8302-2", "2024-01-03"),
        ]),
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    // A read takes no parameters: one given is refused, not ignored.
    let (status, _) = get_json(&http, &format!("{url}/Patient/a?_elements=name"), None).await;
    assert_eq!(status, 400);
    let (status, _) = get_json(&http, &format!("{url}/metadata?foo=bar"), None).await;
    assert_eq!(status, 400);

    // Repeated parameters are ANDed, lists ORed.
    let search = |q: &str| format!("{url}/Observation?{q}");
    assert_eq!(total(&http, &search("patient=a")).await, 2);
    assert_eq!(total(&http, &search("patient=a&patient=b")).await, 0);
    assert_eq!(total(&http, &search("patient=a,b")).await, 3);
    assert_eq!(
        total(
            &http,
            &search("code=http://loinc.org|29463-7,http://loinc.org|8302-2")
        )
        .await,
        3
    );
    assert_eq!(
        total(
            &http,
            &search("code=http://loinc.org|29463-7&code=http://loinc.org|8302-2")
        )
        .await,
        0
    );
    let (status, _) = get_json(&http, &format!("{url}/Patient?identifier={NHS_NUMBER_SYSTEM}|9434765919&identifier={NHS_NUMBER_SYSTEM}|9434765870"), None).await;
    assert_eq!(status, 200);
    assert_eq!(total(&http, &format!("{url}/Patient?identifier={NHS_NUMBER_SYSTEM}|9434765919&identifier={NHS_NUMBER_SYSTEM}|9434765870")).await, 0);

    // Too large for the database: refused with the limit, never a 503.
    let dates = vec!["date=ge2020"; 999].join("&");
    let (status, outcome) = get_json(&http, &search(&dates), None).await;
    assert_eq!(status, 400, "{outcome}");
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("at most 32")
    );
    let codes = vec!["http://loinc.org|1"; 500].join(",");
    let (status, outcome) = get_json(&http, &search(&format!("code={codes}")), None).await;
    assert_eq!(status, 400, "{outcome}");
    let at_limit = vec!["date=ge2020"; 31].join("&");
    assert_eq!(
        total(&http, &search(&format!("{at_limit}&patient=a"))).await,
        2
    );

    // Invalid primitive values are refused, located, and nothing of the Bundle is stored.
    let before = total(&http, &search("_count=0")).await;
    for (date, bad) in [
        ("2020-02-30", "effectiveDateTime"),
        ("yesterday", "effectiveDateTime"),
        ("2024-13-45T99:99:00Z", "effectiveDateTime"),
    ] {
        let (status, outcome) = post(
            &http,
            &format!("{url}/"),
            transaction(vec![
                observation("a", "29463-7", "2024-02-01"),
                observation("a", "29463-7", "2024-02-02"),
                observation("a", "29463-7", date),
            ]),
        )
        .await;
        assert_eq!(status, 400, "{date}: {outcome}");
        assert_eq!(
            outcome["issue"][0]["expression"][0],
            format!("Bundle.entry[2].resource.{bad}"),
            "{date}"
        );
    }
    let (status, outcome) = post(
        &http,
        &format!("{url}/"),
        transaction(vec![patient("c", "9434765862", "Nul\u{0}Name")]),
    )
    .await;
    assert_eq!(status, 400, "{outcome}");
    assert_eq!(
        outcome["issue"][0]["expression"][0],
        "Bundle.entry[0].resource.name[0].family"
    );
    assert_eq!(
        total(&http, &search("_count=0")).await,
        before,
        "nothing stored"
    );

    // One Patient per NHS number: a second claimant is refused, in the same Bundle or later.
    let (status, outcome) = post(
        &http,
        &format!("{url}/"),
        transaction(vec![patient("d", "9434765919", "Nowak")]),
    )
    .await;
    assert_eq!(status, 409, "{outcome}");
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("Patient/a")
    );
    let (status, outcome) = post(
        &http,
        &format!("{url}/"),
        transaction(vec![
            patient("e", "9434765862", "X"),
            patient("f", "9434765862", "Y"),
        ]),
    )
    .await;
    assert_eq!(status, 409, "{outcome}");
    assert_eq!(total(&http, &format!("{url}/Patient?_count=0")).await, 2);
    // Updating the record that holds the number is fine.
    let (status, _) = post(
        &http,
        &format!("{url}/"),
        transaction(vec![patient("a", "9434765919", "Nowak-Wójcik")]),
    )
    .await;
    assert_eq!(status, 200);
    handle.stop(true).await;
}

#[tokio::test]
async fn strict_search_and_valid_data_only_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open_sqlite(&dir.path().join("gp.db"))
        .await
        .expect("sqlite");
    strict_search_and_valid_data_only(store).await;
}

#[tokio::test]
async fn strict_search_and_valid_data_only_on_postgres() {
    let database = TestPostgres::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open_postgres(&database.url).await.expect("postgres");
    strict_search_and_valid_data_only(store.clone()).await;
    store.close().await;
    database.drop_database().await.expect("dropped");
}

/// Issue 21, finding: a caller with a valid token probing ids was refused by relationship each
/// time, one ledger entry a probe, unthrottled. Now its "not found" answers about people are
/// counted, unknown ids and refusals alike, and past the limit it is answered 429 for anyone,
/// real or not; other callers are not held.
#[tokio::test]
async fn a_valid_token_probing_ids_is_held_whatever_it_asks() {
    let t = TestDemo::start_with(1, |o| {
        o.refusals = kinfold_audit::RefusalConfig {
            max_misses_per_caller: 5,
            ..kinfold_audit::RefusalConfig::default()
        };
    })
    .await;
    let (demo, http) = (&t.demo, &t.http);
    let gp = demo.info.consent_example.tokens["unrelated-gp"].clone();
    let child = demo.info.example_patient.id.clone();
    let everything = |id: &str| format!("{}/Patient/{id}/$everything", demo.info.gateway);
    // Five misses: unknown ids and the real child it has no relationship with, alike.
    for n in 0..5 {
        let id = if n % 2 == 0 {
            uuid::Uuid::new_v4().to_string()
        } else {
            child.clone()
        };
        let response = http
            .get(everything(&id))
            .bearer_auth(&gp)
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status().as_u16(), 404, "miss {n}");
    }
    // Then held, whether the id is real or not.
    for id in [uuid::Uuid::new_v4().to_string(), child.clone()] {
        let response = http
            .get(everything(&id))
            .bearer_auth(&gp)
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status().as_u16(), 429);
        assert!(response.headers().contains_key("retry-after"));
        let outcome: Value = response.json().await.expect("json");
        assert_eq!(outcome["issue"][0]["code"], "throttled");
    }
    // Another caller is answered as before.
    let response = http
        .get(everything(&child))
        .bearer_auth(&demo.info.token)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 200);
    t.demo.shutdown().await;
}
