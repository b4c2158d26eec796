//! An agency adapter end to end: ingest, read, search and paging over real HTTP.

mod common;

use common::{TestDemo, assert_valid_fhir, conformance_dir, resources};
use serde_json::{Value, json};

async fn post(t: &TestDemo, agency: &str, body: String) -> (u16, Value) {
    common::post_json(&t.http, &t.adapter(agency, "/"), body).await
}

fn transaction(entries: Vec<Value>) -> String {
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}).to_string()
}

fn put(resource: Value) -> Value {
    let url = format!(
        "{}/{}",
        resource["resourceType"].as_str().unwrap_or(""),
        resource["id"].as_str().unwrap_or("")
    );
    json!({"resource": resource, "request": {"method": "PUT", "url": url}})
}

/// Every official R4 example of a type Kinfold stores goes in through ingest and comes back
/// out with nothing dropped (only `meta.versionId` and `meta.lastUpdated` are ours).
#[tokio::test]
async fn official_examples_survive_ingest_and_read_unchanged() {
    let t = TestDemo::start(1).await;
    let dir = conformance_dir().join("fhir-r4-core");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("conformance folder") {
        let path = entry.expect("entry").path();
        let original: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        let kind = original["resourceType"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if matches!(kind.as_str(), "Bundle" | "OperationOutcome") || original["id"].is_null() {
            continue;
        }
        let (status, response) = post(&t, "gp", transaction(vec![put(original.clone())])).await;
        assert_eq!(status, 200, "{}: {response}", path.display());
        let (status, stored) = t
            .get(&t.adapter(
                "gp",
                &format!("/{kind}/{}", original["id"].as_str().unwrap_or_default()),
            ))
            .await;
        assert_eq!(status, 200);
        let mut without_ours = stored.clone();
        let mut expected = original.clone();
        for value in [&mut without_ours, &mut expected] {
            if let Some(meta) = value.get_mut("meta").and_then(Value::as_object_mut) {
                meta.remove("versionId");
                meta.remove("lastUpdated");
                if meta.is_empty() {
                    value.as_object_mut().map(|o| o.remove("meta"));
                }
            }
        }
        assert_eq!(
            without_ours,
            expected,
            "{} changed on its way through the adapter",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} examples checked");
    t.demo.shutdown().await;
}

#[tokio::test]
async fn a_transaction_is_all_or_nothing() {
    let t = TestDemo::start(1).await;
    let good = json!({"resourceType": "Patient", "id": "txn-good", "birthDate": "2020-01-01"});
    let bad = json!({"resourceType": "Patient", "id": "txn-bad", "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765918"}]});
    let (status, outcome) = post(&t, "gp", transaction(vec![put(good), put(bad)])).await;
    assert_eq!(status, 422, "{outcome}");
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(
        outcome["issue"][0]["expression"][0],
        "Bundle.entry[1].resource.identifier[0].value"
    );
    let (status, _) = t.get(&t.adapter("gp", "/Patient/txn-good")).await;
    assert_eq!(status, 404, "the good entry was not stored either");
    t.demo.shutdown().await;
}

#[tokio::test]
async fn malformed_and_unsupported_input_gets_a_located_operation_outcome() {
    let t = TestDemo::start(1).await;
    let official_transaction =
        std::fs::read_to_string(conformance_dir().join("fhir-r4-core/bundle-transaction.json"))
            .expect("example");
    let cases: Vec<(&str, String, u16)> = vec![
        ("not JSON", "{\"resourceType\": \"Bundle\",".into(), 400),
        ("a Patient, not a Bundle", json!({"resourceType": "Patient"}).to_string(), 400),
        ("a searchset", json!({"resourceType": "Bundle", "type": "searchset"}).to_string(), 400),
        ("a wrongly typed element", json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {"resourceType": "Observation", "status": 5}, "request": {"method": "POST", "url": "Observation"}}]}).to_string(), 400),
        ("the official transaction example (DELETE and conditional entries)", official_transaction, 400),
    ];
    for (what, body, expected) in cases {
        let (status, outcome) = post(&t, "ae", body).await;
        assert_eq!(status, expected, "{what}: {outcome}");
        assert_eq!(outcome["resourceType"], "OperationOutcome", "{what}");
        assert!(
            outcome["issue"][0]["diagnostics"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{what}"
        );
        assert_valid_fhir(what, &outcome);
    }
    let (_, located) = post(&t, "ae", json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {"resourceType": "Observation", "status": 5}, "request": {"method": "POST", "url": "Observation"}}]}).to_string()).await;
    assert_eq!(
        located["issue"][0]["expression"][0],
        "Bundle.entry[0].resource.status"
    );
    t.demo.shutdown().await;
}

#[tokio::test]
async fn a_batch_stores_good_entries_and_answers_each_bad_one() {
    let t = TestDemo::start(1).await;
    let body = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        put(json!({"resourceType": "Patient", "id": "batch-ok"})),
        {"resource": {"resourceType": "Patient"}, "request": {"method": "DELETE", "url": "Patient/x"}},
    ]});
    let (status, response) = post(&t, "midwifery", body.to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(response["type"], "batch-response");
    assert_eq!(response["entry"][0]["response"]["status"], "201 Created");
    assert!(
        response["entry"][1]["response"]["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("400"))
    );
    assert_eq!(
        response["entry"][1]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    assert_valid_fhir("batch-response", &response);
    let (status, _) = t.get(&t.adapter("midwifery", "/Patient/batch-ok")).await;
    assert_eq!(status, 200);
    t.demo.shutdown().await;
}

#[tokio::test]
async fn search_pages_follow_next_links_to_every_match() {
    let t = TestDemo::start(1).await;
    let weights: Vec<Value> = (0..7)
        .map(|n| {
            put(json!({
                "resourceType": "Observation", "id": format!("pg-{n}"), "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                "subject": {"reference": "Patient/paging-child"},
                "effectiveDateTime": format!("2024-0{}-01", n + 1),
                "valueQuantity": {"value": 10 + n, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}
            }))
        })
        .collect();
    let (status, _) = post(&t, "health-visiting", transaction(weights)).await;
    assert_eq!(status, 200);

    let mut url = t.adapter(
        "health-visiting",
        "/Observation?patient=Patient/paging-child&code=http://loinc.org|29463-7&_count=3",
    );
    let mut seen = Vec::new();
    loop {
        let (status, page) = t.get(&url).await;
        assert_eq!(status, 200);
        assert_eq!(page["total"], 7);
        assert_valid_fhir("searchset page", &page);
        seen.extend(
            resources(&page)
                .iter()
                .map(|r| r["id"].as_str().unwrap_or_default().to_owned()),
        );
        match page["link"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["relation"] == "next"))
        {
            Some(next) => url = next["url"].as_str().unwrap_or_default().to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, (0..7).map(|n| format!("pg-{n}")).collect::<Vec<_>>());

    let (status, dated) = t
        .get(&t.adapter(
            "health-visiting",
            "/Observation?patient=paging-child&date=ge2024-05-01",
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(dated["total"], 3);

    let (status, outcome) = t
        .get(&t.adapter("health-visiting", "/Observation?colour=blue"))
        .await;
    assert_eq!(status, 400);
    assert_eq!(outcome["issue"][0]["expression"][0], "colour");
    let (status, _) = t
        .get(&t.adapter("health-visiting", "/Spaceship?patient=x"))
        .await;
    assert_eq!(status, 404);
    t.demo.shutdown().await;
}

#[tokio::test]
async fn an_update_is_a_new_version_and_the_old_one_is_kept() {
    let t = TestDemo::start(1).await;
    let first = json!({"resourceType": "Flag", "id": "f1", "status": "active", "subject": {"reference": "Patient/c"}});
    let second = json!({"resourceType": "Flag", "id": "f1", "status": "inactive", "subject": {"reference": "Patient/c"}});
    post(&t, "school-nursing", transaction(vec![put(first)])).await;
    let (_, response) = post(&t, "school-nursing", transaction(vec![put(second)])).await;
    assert_eq!(response["entry"][0]["response"]["status"], "200 OK");
    assert_eq!(
        response["entry"][0]["response"]["location"],
        "Flag/f1/_history/2"
    );
    let (_, current) = t.get(&t.adapter("school-nursing", "/Flag/f1")).await;
    assert_eq!(current["status"], "inactive");
    let (_, old) = t
        .get(&t.adapter("school-nursing", "/Flag/f1/_history/1"))
        .await;
    assert_eq!(old["status"], "active");
    let (_, metadata) = t.get(&t.adapter("school-nursing", "/metadata")).await;
    assert_valid_fhir("adapter CapabilityStatement", &metadata);
    t.demo.shutdown().await;
}

/// G20, G12: every ingest is in the adapter's own ledger, naming each record stored, in the
/// same transaction as what it stores: if the ledger cannot write, nothing is stored.
#[tokio::test]
async fn every_ingest_is_recorded_in_the_adapters_own_ledger_with_what_it_stores() {
    let t = TestDemo::start(1).await;
    let body = transaction(vec![put(
        json!({"resourceType": "Flag", "id": "audited-flag", "status": "active"}),
    )]);
    let (status, _) = post(&t, "gp", body).await;
    assert_eq!(status, 200);
    let store = kinfold_store::Store::open_sqlite(&t.dir.path().join("gp.db"))
        .await
        .expect("gp store");
    let latest = store
        .ledger_search(&kinfold_store::LedgerQuery {
            agent: Some("gp-feed".into()),
            limit: 1,
            ..Default::default()
        })
        .await
        .expect("ledger");
    let record: Value = serde_json::from_str(&latest[0].record).expect("record");
    assert_eq!(record["subtype"], "transaction");
    assert_eq!(record["entities"][0]["reference"], "Flag/audited-flag");
    let key = std::fs::read_to_string(t.dir.path().join("ledger-signing-key-gp")).expect("key");
    let config = kinfold_gateway::LedgerConfig {
        signing_key: Some(kinfold_gateway::Secret::new(key)),
        ..Default::default()
    };
    let public = kinfold_audit::ledger_key(&config)
        .expect("key")
        .public_key();
    let report = kinfold_audit::verify_store(&store, &public, None)
        .await
        .expect("verify");
    assert!(
        report.problems.is_empty() && report.entries > 1,
        "{:?}",
        report.problems
    );
    let (status, sth) = t.get(&t.adapter("gp", "/ledger/v1/get-sth")).await;
    assert_eq!(status, 200);
    assert!(sth["tree_size"].as_u64().is_some());

    // With the ledger unable to write, the adapter stores nothing.
    store
        .execute_admin("CREATE TRIGGER ledger_refuses BEFORE INSERT ON ledger_entries BEGIN SELECT RAISE(ABORT, 'no'); END")
        .await
        .expect("trigger");
    let body = transaction(vec![put(
        json!({"resourceType": "Flag", "id": "unaudited-flag", "status": "active"}),
    )]);
    let (status, outcome) = post(&t, "gp", body).await;
    assert_eq!(status, 503, "{outcome}");
    assert_eq!(
        outcome["issue"][0]["details"]["coding"][0]["code"],
        "ledger-unavailable"
    );
    let (status, _) = t.get(&t.adapter("gp", "/Flag/unaudited-flag")).await;
    assert_eq!(status, 404, "nothing stored without its audit entry");
    store.close().await;
    t.demo.shutdown().await;
}

/// `$everything?_type=` answers the Patient and only the records of the types named (the
/// chronology asks for the records it is made of, not their provenance); an unknown type is
/// refused.
#[tokio::test]
async fn everything_can_be_asked_for_some_types_only() {
    let t = TestDemo::start(1).await;
    let (status, _) = post(
        &t,
        "health-visiting",
        transaction(vec![
            put(json!({"resourceType": "Patient", "id": "typed-child", "name": [{"family": "Typed"}]})),
            put(json!({"resourceType": "Encounter", "id": "typed-visit", "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HH"},
                "subject": {"reference": "Patient/typed-child"}, "period": {"start": "2026-01-05"}})),
            put(json!({"resourceType": "Observation", "id": "typed-weight", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                "subject": {"reference": "Patient/typed-child"}, "effectiveDateTime": "2026-01-05",
                "valueQuantity": {"value": 11.2, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}})),
        ]),
    )
    .await;
    assert_eq!(status, 200);
    let kinds = |bundle: &Value| {
        let mut kinds: Vec<String> = resources(bundle)
            .iter()
            .filter_map(|r| r["resourceType"].as_str().map(str::to_owned))
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    };
    let (status, all) = t
        .get(&t.adapter("health-visiting", "/Patient/typed-child/$everything"))
        .await;
    assert_eq!(status, 200, "{all}");
    assert!(kinds(&all).contains(&"Provenance".to_owned()), "{all}");
    let (status, some) = t
        .get(&t.adapter(
            "health-visiting",
            "/Patient/typed-child/$everything?_type=Observation",
        ))
        .await;
    assert_eq!(status, 200, "{some}");
    assert_eq!(kinds(&some), ["Observation", "Patient"], "{some}");
    assert_eq!(some["total"], 2, "{some}");
    let (status, _) = t
        .get(&t.adapter(
            "health-visiting",
            "/Patient/typed-child/$everything?_type=Nonsense",
        ))
        .await;
    assert_eq!(status, 400);
}
