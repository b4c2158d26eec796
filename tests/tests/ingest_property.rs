//! A property of ingest, on SQLite and PostgreSQL, over real HTTP: a transaction is stored
//! whole or not at all. Random transactions of up to eight entries, some with one fault (an
//! impossible date, a NUL in a name, a bad NHS number check digit, an unknown type, a PUT
//! whose body names another id, a second Patient with an NHS number already held); after
//! each, the adapter holds exactly what the good transactions sent.
//!
//! `PROPTEST_CASES` sets how many transactions each backend is sent (default 48; the
//! robustness script sends many more).

mod common;

use kinfold_fhir::{Agency, NHS_NUMBER_SYSTEM};
use kinfold_store::Store;
use kinfold_store::testing::TestPostgres;
use proptest::prelude::*;
use serde_json::{Value, json};

/// NHS numbers with valid check digits, one per generated Patient.
const NHS: [&str; 8] = [
    "9434765919",
    "9434765870",
    "9434765862",
    "9434765854",
    "9434765846",
    "9434765838",
    "9434765811",
    "9434765803",
];

#[derive(Debug, Clone, Copy)]
enum Fault {
    ImpossibleDate,
    NulInName,
    BadCheckDigit,
    UnknownType,
    IdMismatch,
    NhsNumberHeldElsewhere,
}

#[derive(Debug, Clone)]
enum Entry {
    Observation(u8),
    Flag,
    Broken(Fault),
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        4 => (0u8..28).prop_map(Entry::Observation),
        2 => Just(Entry::Flag),
        1 => prop_oneof![
            Just(Fault::ImpossibleDate),
            Just(Fault::NulInName),
            Just(Fault::BadCheckDigit),
            Just(Fault::UnknownType),
            Just(Fault::IdMismatch),
            Just(Fault::NhsNumberHeldElsewhere),
        ]
        .prop_map(Entry::Broken),
    ]
}

fn to_json(entry: &Entry) -> Value {
    let post = |resource: Value| {
        let url = resource["resourceType"]
            .as_str()
            .unwrap_or("Basic")
            .to_owned();
        json!({"resource": resource, "request": {"method": "POST", "url": url}})
    };
    match entry {
        Entry::Observation(day) => post(json!({"resourceType": "Observation", "status": "final",
            "subject": {"reference": "Patient/held"}, "effectiveDateTime": format!("2024-02-{:02}", day + 1)})),
        Entry::Flag => post(json!({"resourceType": "Flag", "status": "active"})),
        Entry::Broken(Fault::ImpossibleDate) => post(
            json!({"resourceType": "Observation", "status": "final", "effectiveDateTime": "2024-02-30"}),
        ),
        Entry::Broken(Fault::NulInName) => {
            post(json!({"resourceType": "Flag", "status": "active", "code": {"text": "a\u{0}b"}}))
        }
        Entry::Broken(Fault::BadCheckDigit) => post(json!({"resourceType": "Patient",
            "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": "9434765918"}]})),
        Entry::Broken(Fault::UnknownType) => post(json!({"resourceType": "NoSuchThing"})),
        Entry::Broken(Fault::IdMismatch) => {
            json!({"resource": {"resourceType": "Flag", "id": "one", "status": "active"},
            "request": {"method": "PUT", "url": "Flag/another"}})
        }
        Entry::Broken(Fault::NhsNumberHeldElsewhere) => post(json!({"resourceType": "Patient",
            "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": NHS[0]}]})),
    }
}

fn check(runtime: &tokio::runtime::Runtime, store: Store) {
    let (url, handle, http) = runtime.block_on(common::adapter_on(Agency::Ae, store));
    let count = |kind: &str| -> u64 {
        runtime.block_on(async {
            let bundle: Value = http
                .get(format!("{url}/{kind}?_count=0"))
                .send()
                .await
                .expect("answered")
                .json()
                .await
                .expect("json");
            bundle["total"].as_u64().expect("total")
        })
    };
    let post = |body: String| -> u16 {
        runtime.block_on(async {
            http.post(format!("{url}/"))
                .header("content-type", "application/fhir+json")
                .body(body)
                .send()
                .await
                .expect("answered")
                .status()
                .as_u16()
        })
    };
    // The Patient whose NHS number a faulty entry claims again.
    let held = json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {"resourceType": "Patient",
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": NHS[0]}]}, "request": {"method": "PUT", "url": "Patient/held"}}]});
    assert_eq!(post(held.to_string()), 200);

    let config = ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(48),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(entries in prop::collection::vec(entry(), 1..8))| {
        let before = (count("Observation"), count("Flag"), count("Patient"));
        let body = json!({"resourceType": "Bundle", "type": "transaction",
            "entry": entries.iter().map(to_json).collect::<Vec<_>>()}).to_string();
        let status = post(body);
        let after = (count("Observation"), count("Flag"), count("Patient"));
        let faulty = entries.iter().any(|e| matches!(e, Entry::Broken(_)));
        if faulty {
            prop_assert!((400..500).contains(&status), "refused: {status} for {entries:?}");
            prop_assert_eq!(after, before, "nothing of a refused transaction is stored");
        } else {
            prop_assert_eq!(status, 200);
            let observations = entries.iter().filter(|e| matches!(e, Entry::Observation(_))).count() as u64;
            let flags = entries.iter().filter(|e| matches!(e, Entry::Flag)).count() as u64;
            prop_assert_eq!(after, (before.0 + observations, before.1 + flags, before.2));
        }
    });
    runtime.block_on(handle.stop(true));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_transaction_is_stored_whole_or_not_at_all_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = runtime();
    let store = runtime
        .block_on(Store::open_sqlite(&dir.path().join("ae.db")))
        .expect("sqlite");
    check(&runtime, store);
}

#[test]
fn a_transaction_is_stored_whole_or_not_at_all_on_postgres() {
    let runtime = runtime();
    let database = runtime
        .block_on(TestPostgres::create())
        .unwrap_or_else(|e| panic!("{e}"));
    let store = runtime
        .block_on(Store::open_postgres(&database.url))
        .expect("postgres");
    check(&runtime, store.clone());
    runtime.block_on(store.close());
    runtime.block_on(database.drop_database()).expect("dropped");
}
