//! Two gateways on one PostgreSQL database behave as one (behind a load balancer, say): what
//! one records, the other's ledger takes in; a family edge asserted through one is in the
//! family the other answers; and the ledger both wrote verifies as one log.

mod common;

use std::time::Duration;

use common::agencies::{Backend, Kinfold};
use kinfold_fhir::Agency;
use serde_json::{Value, json};

const HEALTH_VISITING: &str = include_str!("../../docs/feeds/samples/health-visiting.ndjson");
const MIDWIFERY: &str = include_str!("../../docs/feeds/samples/midwifery.ndjson");

async fn get(k: &Kinfold, base: &str, token: &str, path: &str) -> (u16, Value) {
    common::get_json(&k.http, &format!("{base}{path}"), Some(token)).await
}

#[tokio::test]
async fn two_gateways_on_one_postgresql_database_keep_one_state() {
    let mut k = Kinfold::adapters(Backend::Postgres).await;
    k.start_gateway().await;
    let first = k.gateway_url.clone();
    let second = k.start_another_gateway().await;
    for (agency, rows) in [
        (Agency::Midwifery, MIDWIFERY),
        (Agency::HealthVisiting, HEALTH_VISITING),
    ] {
        assert!(k.import(agency, rows).await["stored"].as_u64() > Some(0));
    }
    let lead = k.token.clone();
    let steward = k.steward_token();

    // The events went to the first gateway; the second answers from the same state.
    let find = |nhs: &str| format!("/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (child, mother) = loop {
        let (_, child) = get(&k, &second, &lead, &find("9990000026")).await;
        let (_, mother) = get(&k, &second, &lead, &find("9990000018")).await;
        if let (Some(c), Some(m)) = (
            child["entry"][0]["resource"]["id"].as_str(),
            mother["entry"][0]["resource"]["id"].as_str(),
        ) {
            let (_, family) = get(&k, &second, &lead, &format!("/Patient/{c}/$family")).await;
            if family.to_string().contains("named-adult") {
                break (c.to_owned(), m.to_owned());
            }
        }
        if tokio::time::Instant::now() > deadline {
            let id = child["entry"][0]["resource"]["id"]
                .as_str()
                .unwrap_or_default();
            let (_, family) = get(&k, &first, &lead, &format!("/Patient/{id}/$family")).await;
            let (_, there) = get(&k, &second, &lead, &format!("/Patient/{id}/$family")).await;
            panic!(
                "the second gateway sees the family: {child} {mother}; the first's: {family}; the second's: {there}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Both gateways have answered (and recorded); a change through the first...
    for base in [&first, &second] {
        let (status, _) = get(&k, base, &lead, &format!("/Patient/{child}/$everything")).await;
        assert_eq!(status, 200);
    }
    let response = k
        .http
        .post(format!("{first}/family-edges"))
        .bearer_auth(&steward)
        .json(&json!({"from": mother, "to": child, "relation": "carer", "detail": "through the first gateway", "reason": "Confirmed with the family at today's visit"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 201);

    // ...is in the family the second answers, without a restart.
    let (status, family) = get(&k, &second, &lead, &format!("/Patient/{child}/$family")).await;
    assert_eq!(status, 200);
    // (The mother is already her mother: the asserted carer edge is one more source of her
    // membership, named by its edge id.)
    assert_eq!(
        family
            .to_string()
            .matches("\"valueString\":\"manual-")
            .count(),
        1,
        "the edge made through the first gateway: {family}"
    );
    // And a change through the second, after the first's, is kept too (it read the state
    // again rather than writing over it).
    let response = k
        .http
        .post(format!("{second}/family-edges"))
        .bearer_auth(&steward)
        .json(&json!({"from": mother, "to": child, "relation": "household-member", "detail": "through the second gateway", "reason": "Seen living at the address at today's visit"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 201);
    let (_, family) = get(&k, &first, &lead, &format!("/Patient/{child}/$family")).await;
    let manual_edges = family
        .to_string()
        .matches("\"valueString\":\"manual-")
        .count();
    assert_eq!(
        manual_edges, 2,
        "both edges, whichever gateway made them: {family}"
    );

    // Accesses through both, interleaved, land in one ledger that verifies.
    for n in 0..20 {
        let base = if n % 2 == 0 { &first } else { &second };
        let (status, _) = get(&k, base, &lead, &format!("/Patient/{child}")).await;
        assert_eq!(status, 200, "access {n}");
    }
    let store = kinfold_store::Store::open(k.gateway_database.as_deref().expect("database"))
        .await
        .expect("store");
    let key = kinfold_audit::ledger_key(&kinfold_audit::LedgerConfig {
        signing_key: Some(kinfold_audit::Secret::new(kinfold_ledger::b64(&[3u8; 32]))),
        ..kinfold_audit::LedgerConfig::default()
    })
    .expect("key");
    let report = kinfold_audit::verify_store(&store, &key.public_key(), None)
        .await
        .expect("verify");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.entries > 20, "{}", report.entries);
    store.close().await;
    k.finish().await;
}
