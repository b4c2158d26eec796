//! A property of search, on SQLite and on PostgreSQL: for any combination of the supported
//! parameters, the store returns exactly the resources that match, no more and no fewer.
//! "Match" is [`SearchQuery::matches`], the in-memory meaning of a search (repeated
//! parameters ANDed, comma-separated values ORed, FHIR's date prefixes).
//!
//! `PROPTEST_CASES` sets how many searches each backend is given (default 128; the
//! robustness script runs many more).

use std::collections::BTreeSet;

use kinfold_fhir::search::SearchQuery;
use kinfold_fhir::{Resource, ResourceType};
use kinfold_store::Store;
use kinfold_store::testing::TestPostgres;
use proptest::prelude::*;
use serde_json::json;

const SYSTEMS: [&str; 3] = ["http://loinc.org", "http://snomed.info/sct", ""];
const CODES: [&str; 3] = ["a", "b", "c"];
const DATES: [&str; 7] = [
    "2020",
    "2020-06",
    "2020-06-15",
    "2021-01-01",
    "2021-03",
    "2022",
    "2020-06-15T10:30:00Z",
];

/// A fixed, varied population: 90 Observations over three patients (and none), with zero to
/// two codes, an identifier or not, and a date, a period or nothing.
fn population() -> Vec<Resource> {
    (0..90)
        .map(|n: usize| {
            let mut o =
                json!({"resourceType": "Observation", "id": format!("o{n}"), "status": "final"});
            if n % 4 != 3 {
                o["subject"] = json!({"reference": format!("Patient/p{}", n % 4)});
            }
            let codings: Vec<_> = (0..n % 3)
                .map(|k| {
                    let system = SYSTEMS[(n + k) % 3];
                    let mut coding = json!({"code": CODES[(n / 3 + k) % 3]});
                    if !system.is_empty() {
                        coding["system"] = json!(system);
                    }
                    coding
                })
                .collect();
            if !codings.is_empty() {
                o["code"] = json!({"coding": codings});
            }
            if n.is_multiple_of(5) {
                o["identifier"] = json!([{"system": "urn:x", "value": format!("{}", n % 2)}]);
            }
            match n % 6 {
                0 => {}
                1 => o["effectivePeriod"] = json!({"start": "2020-06-01", "end": "2021-02-01"}),
                2 => o["effectivePeriod"] = json!({"start": "2021-01-01T00:00:00Z"}),
                _ => o["effectiveDateTime"] = json!(DATES[n % DATES.len()]),
            }
            Resource::from_value(o).expect("test resource")
        })
        .collect()
}

fn token() -> impl Strategy<Value = String> {
    (0..3usize, 0..3usize, 0..4usize).prop_map(|(s, c, form)| match form {
        0 => format!("{}|{}", SYSTEMS[s], CODES[c]),
        1 => CODES[c].to_owned(),
        2 => format!("|{}", CODES[c]),
        _ if SYSTEMS[s].is_empty() => CODES[c].to_owned(),
        _ => format!("{}|", SYSTEMS[s]),
    })
}

fn parameter() -> impl Strategy<Value = (String, String)> {
    let list = |s: BoxedStrategy<String>| prop::collection::vec(s, 1..4).prop_map(|v| v.join(","));
    prop_oneof![
        list((0..100usize).prop_map(|n| format!("o{n}")).boxed()).prop_map(|v| ("_id".into(), v)),
        list((0..5usize).prop_map(|n| format!("Patient/p{n}")).boxed())
            .prop_map(|v| ("patient".into(), v)),
        list(token().boxed()).prop_map(|v| ("code".into(), v)),
        list((0..3usize).prop_map(|n| format!("urn:x|{n}")).boxed())
            .prop_map(|v| ("identifier".into(), v)),
        (
            prop::sample::select(vec!["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"]),
            prop::sample::select(DATES.to_vec())
        )
            .prop_map(|(p, d)| ("date".into(), format!("{p}{d}"))),
        prop::sample::select(vec!["ge2000", "lt2000", "gt2100"])
            .prop_map(|v| ("_lastUpdated".into(), v.to_owned())),
    ]
}

fn check_backend(runtime: &tokio::runtime::Runtime, store: Store) {
    let resources = population();
    let written = runtime
        .block_on(store.write_all(resources.clone()))
        .expect("population written");
    let indexed: Vec<_> = resources
        .iter()
        .zip(&written)
        .map(|(r, w)| (w.id.clone(), r.search_index(), w.last_updated))
        .collect();
    let config = ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(128),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(params in prop::collection::vec(parameter(), 0..5))| {
        let mut pairs: Vec<(&str, &str)> = params.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        pairs.push(("_count", "1000"));
        let query = SearchQuery::parse(pairs).expect("generated searches parse");
        let page = runtime.block_on(store.search(ResourceType::Observation, &query)).expect("search runs");
        let found: BTreeSet<&str> = page.items.iter().map(|i| i.id.as_str()).collect();
        let expected: BTreeSet<&str> = indexed
            .iter()
            .filter(|(id, index, updated)| query.matches(id, index, *updated))
            .map(|(id, _, _)| id.as_str())
            .collect();
        prop_assert_eq!(&found, &expected, "search {:?}", params);
        prop_assert_eq!(page.total, expected.len() as u64);
    });
    runtime.block_on(store.close());
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn sqlite_returns_exactly_what_matches() {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = runtime();
    let store = runtime
        .block_on(Store::open_sqlite(&dir.path().join("p.db")))
        .expect("sqlite");
    check_backend(&runtime, store);
}

#[test]
fn postgres_returns_exactly_what_matches() {
    let runtime = runtime();
    let database = runtime
        .block_on(TestPostgres::create())
        .unwrap_or_else(|e| panic!("{e}"));
    let store = runtime
        .block_on(Store::open_postgres(&database.url))
        .expect("postgres");
    check_backend(&runtime, store);
    runtime.block_on(database.drop_database()).expect("dropped");
}
