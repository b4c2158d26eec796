//! The store's behaviour, run once on SQLite and once on PostgreSQL.
//!
//! PostgreSQL tests use `KINFOLD_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and create a fresh database per test. If the
//! server is not reachable they fail, loudly: they never skip.

use kinfold_fhir::search::SearchQuery;
use kinfold_fhir::{NhsNumber, Resource, ResourceType};
use kinfold_store::testing::TestPostgres;
use kinfold_store::{BackendKind, Store, WriteUnit};
use serde_json::{Value, json};

/// A store on a fresh database, removed again when the test finishes cleanly.
struct TestStore {
    store: Store,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<TestPostgres>,
    /// The database's URL, for a second store on it (a second gateway).
    url: String,
}

impl TestStore {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open_sqlite(&dir.path().join("test.db"))
            .await
            .expect("sqlite opens");
        Self {
            store,
            url: format!("sqlite://{}", dir.path().join("test.db").display()),
            _dir: Some(dir),
            postgres: None,
        }
    }

    async fn postgres() -> Self {
        let database = TestPostgres::create()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open_postgres(&database.url)
            .await
            .expect("test database opens");
        Self {
            store,
            _dir: None,
            url: database.url.clone(),
            postgres: Some(database),
        }
    }

    async fn finish(self) {
        self.store.close().await;
        if let Some(database) = self.postgres {
            database.drop_database().await.expect("drop test database");
        }
    }
}

fn resource(value: Value) -> Resource {
    Resource::from_value(value).expect("test resource parses")
}

fn weight(id: &str, patient: &str, date: &str, kg: f64) -> Resource {
    resource(json!({
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": date,
        "valueQuantity": {"value": kg, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}
    }))
}

fn height(id: &str, patient: &str, date: &str) -> Resource {
    resource(json!({
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": date
    }))
}

fn patient(id: &str, nhs: &str) -> Resource {
    resource(json!({
        "resourceType": "Patient",
        "id": id,
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
        "name": [{"family": "Wójcik", "given": ["Łucja"]}],
        "birthDate": "2019-02-03"
    }))
}

fn query(pairs: &[(&str, &str)]) -> SearchQuery {
    SearchQuery::parse(pairs.iter().copied()).expect("test query parses")
}

fn ids(page: &kinfold_store::SearchPage) -> Vec<&str> {
    page.items.iter().map(|i| i.id.as_str()).collect()
}

async fn a_written_resource_reads_back_with_version_and_last_updated(t: &TestStore) {
    let outcome = t
        .store
        .write_all(vec![patient("p1", "9434765919")])
        .await
        .expect("write");
    assert!(outcome[0].created);
    assert_eq!(outcome[0].version_id, 1);

    let stored = t
        .store
        .read(ResourceType::Patient, "p1")
        .await
        .expect("read")
        .expect("found");
    let json: Value = serde_json::from_str(&stored.json).expect("stored JSON");
    assert_eq!(json["meta"]["versionId"], "1");
    assert!(
        json["meta"]["lastUpdated"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z'))
    );
    assert_eq!(json["name"][0]["given"][0], "Łucja", "diacritics survive");
    assert!(
        t.store
            .read(ResourceType::Patient, "nobody")
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        t.store
            .read(ResourceType::Observation, "p1")
            .await
            .expect("read")
            .is_none(),
        "type is part of identity"
    );
}

async fn the_same_content_again_is_no_new_version(t: &TestStore) {
    let first = t
        .store
        .write_all(vec![patient("p1", "9434765919")])
        .await
        .expect("write");
    let again = t
        .store
        .write_all(vec![patient("p1", "9434765919")])
        .await
        .expect("write again");
    assert_eq!(
        again[0].version_id, first[0].version_id,
        "a resend is stored once"
    );
    assert!(!again[0].created);
    let changed = resource(
        json!({"resourceType": "Patient", "id": "p1", "gender": "female",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}]}),
    );
    let third = t
        .store
        .write_all(vec![changed])
        .await
        .expect("write changed");
    assert_eq!(third[0].version_id, first[0].version_id + 1);
}

async fn an_update_makes_a_new_version_and_keeps_the_old_one(t: &TestStore) {
    t.store
        .write_all(vec![weight("w1", "c1", "2020-01-01", 10.0)])
        .await
        .expect("v1");
    let second = t
        .store
        .write_all(vec![weight("w1", "c1", "2020-01-01", 10.5)])
        .await
        .expect("v2");
    assert!(!second[0].created);
    assert_eq!(second[0].version_id, 2);

    let current = t
        .store
        .read(ResourceType::Observation, "w1")
        .await
        .expect("read")
        .expect("found");
    assert!(current.json.contains("10.5"));
    let old = t
        .store
        .read_version(ResourceType::Observation, "w1", 1)
        .await
        .expect("read")
        .expect("v1 kept");
    assert!(old.json.contains("10.0"));
    assert_eq!(t.store.count().await.expect("count"), 1);
}

async fn a_failed_write_leaves_nothing_behind(t: &TestStore) {
    let mut bad = weight("x", "c1", "2020-01-01", 9.0);
    if let Resource::Observation(o) = &mut bad {
        o.id = None;
    }
    let result = t
        .store
        .write_all(vec![weight("first", "c1", "2020-01-01", 9.0), bad])
        .await;
    assert!(result.is_err());
    assert!(
        t.store
            .read(ResourceType::Observation, "first")
            .await
            .expect("read")
            .is_none(),
        "rolled back"
    );
}

async fn search_by_patient_and_code_finds_only_those(t: &TestStore) {
    t.store
        .write_all(vec![
            weight("w1", "c1", "2020-01-01", 10.0),
            weight("w2", "c1", "2021-01-01", 12.0),
            height("h1", "c1", "2021-01-01"),
            weight("w3", "c2", "2021-01-01", 11.0),
        ])
        .await
        .expect("write");
    let page = t
        .store
        .search(
            ResourceType::Observation,
            &query(&[
                ("patient", "Patient/c1"),
                ("code", "http://loinc.org|29463-7"),
            ]),
        )
        .await
        .expect("search");
    assert_eq!(page.total, 2);
    assert_eq!(ids(&page), vec!["w1", "w2"], "ordered by date");

    let any_system = t
        .store
        .search(ResourceType::Observation, &query(&[("code", "8302-2")]))
        .await
        .expect("search");
    assert_eq!(ids(&any_system), vec!["h1"]);
    let wrong_system = t
        .store
        .search(
            ResourceType::Observation,
            &query(&[("code", "http://snomed.info/sct|8302-2")]),
        )
        .await
        .expect("search");
    assert_eq!(wrong_system.total, 0);
    let either = t
        .store
        .search(
            ResourceType::Observation,
            &query(&[
                ("code", "http://loinc.org|8302-2,http://loinc.org|29463-7"),
                ("patient", "c2"),
            ]),
        )
        .await
        .expect("search");
    assert_eq!(ids(&either), vec!["w3"]);
}

async fn date_prefixes_filter_as_fhir_says(t: &TestStore) {
    t.store
        .write_all(vec![
            weight("a", "c1", "2019-06-01", 8.0),
            weight("b", "c1", "2020-06-01T10:30:00Z", 9.0),
            weight("c", "c1", "2021-06-01", 10.0),
        ])
        .await
        .expect("write");
    let search = |date: &'static str| {
        let store = t.store.clone();
        async move {
            store
                .search(ResourceType::Observation, &query(&[("date", date)]))
                .await
                .expect("search")
        }
    };
    assert_eq!(ids(&search("ge2020-01-01").await), vec!["b", "c"]);
    assert_eq!(ids(&search("lt2020-06-01").await), vec!["a"]);
    assert_eq!(ids(&search("2020").await), vec!["b"]);
    assert_eq!(
        ids(&search("2020-06-01").await),
        vec!["b"],
        "a day contains its times"
    );
    assert_eq!(ids(&search("ne2020").await), vec!["a", "c"]);
    let both = t
        .store
        .search(
            ResourceType::Observation,
            &query(&[("date", "ge2019-12-01"), ("date", "le2020-12-31")]),
        )
        .await
        .expect("search");
    assert_eq!(ids(&both), vec!["b"], "repeated date parameters are ANDed");
}

async fn identifiers_find_patients(t: &TestStore) {
    t.store
        .write_all(vec![
            patient("p1", "9434765919"),
            patient("p2", "9000000009"),
        ])
        .await
        .expect("write");
    let page = t
        .store
        .search(
            ResourceType::Patient,
            &query(&[("identifier", "https://fhir.nhs.uk/Id/nhs-number|9000000009")]),
        )
        .await
        .expect("search");
    assert_eq!(ids(&page), vec!["p2"]);
    let none = t
        .store
        .search(
            ResourceType::Patient,
            &query(&[("identifier", "https://example.org/other|9000000009")]),
        )
        .await
        .expect("search");
    assert_eq!(none.total, 0);
}

/// An update replaces the record's search tokens (the old identifier no longer finds it), and
/// every version reads back: the current one from the record, earlier ones from the history.
/// The ids of the Patients a search by this NHS number finds.
async fn holding_nhs_number(t: &TestStore, number: &str) -> Vec<String> {
    let system = "https://fhir.nhs.uk/Id/nhs-number";
    let page = t
        .store
        .search(
            ResourceType::Patient,
            &query(&[("identifier", &format!("{system}|{number}"))]),
        )
        .await
        .expect("search");
    ids(&page).into_iter().map(|id| id.to_string()).collect()
}

async fn an_update_moves_its_identifiers_and_every_version_reads_back(t: &TestStore) {
    let find = |number: &'static str| holding_nhs_number(t, number);
    t.store
        .write_all(vec![patient("p1", "9434765919")])
        .await
        .expect("v1");
    t.store
        .write_all(vec![patient("p1", "9000000009")])
        .await
        .expect("v2");
    assert_eq!(find("9000000009").await, vec!["p1"]);
    assert!(
        find("9434765919").await.is_empty(),
        "the old number is gone"
    );
    t.store
        .write_all(vec![patient("p1", "9434765870")])
        .await
        .expect("v3");
    for (version, number) in [(1, "9434765919"), (2, "9000000009"), (3, "9434765870")] {
        let stored = t
            .store
            .read_version(ResourceType::Patient, "p1", version)
            .await
            .expect("read")
            .unwrap_or_else(|| panic!("version {version} kept"));
        assert_eq!(stored.version_id, version);
        assert!(
            stored.json.contains(number),
            "version {version}: {}",
            stored.json
        );
    }
    assert!(
        t.store
            .read_version(ResourceType::Patient, "p1", 4)
            .await
            .expect("read")
            .is_none()
    );
}

/// Ledger rows given with a write commit with it: present when the write stored, absent when
/// the whole write failed.
async fn replaced_tokens_go_even_in_one_group_or_from_unreadable_content(t: &TestStore) {
    let find = |number: &'static str| holding_nhs_number(t, number);
    let unit = |record: Resource| WriteUnit {
        records: vec![record],
        ..WriteUnit::default()
    };
    t.store
        .write_all(vec![patient("p1", "9434765919")])
        .await
        .expect("v1");
    // Two updates of one record in one group: only the last one's number finds it.
    t.store
        .write_units(vec![
            unit(patient("p1", "9000000009")),
            unit(patient("p1", "9434765870")),
        ])
        .await
        .expect("v2 and v3");
    assert!(find("9434765919").await.is_empty());
    assert!(find("9000000009").await.is_empty());
    assert_eq!(find("9434765870").await, vec!["p1"]);
    // Stored content that no longer reads as a resource still loses its tokens when replaced.
    t.store
        .execute_admin("UPDATE resources SET content = 'not a resource' WHERE id = 'p1'")
        .await
        .expect("spoiled");
    t.store
        .write_all(vec![patient("p1", "9434765919")])
        .await
        .expect("v4");
    assert!(
        find("9434765870").await.is_empty(),
        "the old number is gone"
    );
    assert_eq!(find("9434765919").await, vec!["p1"]);
}

/// The positions of the ledger rows stored, in order.
async fn ledger_seqs(t: &TestStore) -> Vec<i64> {
    t.store
        .ledger_after(None, 10)
        .await
        .expect("entries")
        .iter()
        .map(|row| row.seq)
        .collect()
}

async fn audited_units_commit_their_ledger_rows_with_them(t: &TestStore) {
    let entry = |seq: i64| ledger_row(seq, None);
    let unit = |record: Resource| WriteUnit {
        records: vec![record],
        ..WriteUnit::default()
    };
    t.store
        .write_units_audited(
            vec![unit(weight("w1", "c1", "2020-01-01", 10.0))],
            &[entry(0), entry(1)],
        )
        .await
        .expect("stored");
    // A row at a position already taken fails the whole write: neither the record nor the
    // other entry is stored.
    assert!(
        t.store
            .write_units_audited(
                vec![unit(weight("w2", "c1", "2020-01-02", 11.0))],
                &[entry(2), entry(1)],
            )
            .await
            .is_err()
    );
    let seqs = ledger_seqs(t).await;
    assert_eq!(seqs, [0, 1]);
    assert!(
        t.store
            .read(ResourceType::Observation, "w1")
            .await
            .expect("read")
            .is_some()
    );
    assert!(
        t.store
            .read(ResourceType::Observation, "w2")
            .await
            .expect("read")
            .is_none()
    );
}

async fn identity_changes_commit_their_ledger_rows_with_them(t: &TestStore) {
    let entry = |seq: i64| ledger_row(seq, Some("person-1"));
    let row = |key: &str| kinfold_store::IdentityRow {
        kind: "person".into(),
        key: key.into(),
        body: "{}".into(),
    };
    t.store
        .identity_save_audited(&[row("p1")], Some(3), &[entry(0)])
        .await
        .expect("saved");
    // A row at a position already taken fails the whole save, as the ledger's failure:
    // neither the piece, the cursor nor the other entry is kept.
    let refused = t
        .store
        .identity_save_audited(&[row("p2")], Some(9), &[entry(1), entry(0)])
        .await;
    assert!(
        matches!(refused, Err(kinfold_store::StoreError::Ledger(_))),
        "{refused:?}"
    );
    let seqs = ledger_seqs(t).await;
    assert_eq!(seqs, [0]);
    assert_eq!(
        t.store.identity_load().await.expect("load"),
        (vec![row("p1")], 3)
    );
}

async fn paging_reports_the_full_total(t: &TestStore) {
    let weights: Vec<_> = (0..7)
        .map(|n| weight(&format!("w{n}"), "c1", &format!("2020-01-0{}", n + 1), 9.0))
        .collect();
    t.store.write_all(weights).await.expect("write");
    let first = t
        .store
        .search(ResourceType::Observation, &query(&[("_count", "3")]))
        .await
        .expect("page 1");
    assert_eq!((first.total, first.items.len()), (7, 3));
    let last = t
        .store
        .search(
            ResourceType::Observation,
            &query(&[("_count", "3"), ("_offset", "6")]),
        )
        .await
        .expect("page 3");
    assert_eq!(ids(&last), vec!["w6"]);
    let beyond = t
        .store
        .search(
            ResourceType::Observation,
            &query(&[("_count", "3"), ("_offset", "30")]),
        )
        .await
        .expect("past the end");
    assert_eq!((beyond.total, beyond.items.len()), (7, 0));
}

async fn last_updated_filters_on_store_time(t: &TestStore) {
    t.store
        .write_all(vec![weight("w1", "c1", "2020-01-01", 9.0)])
        .await
        .expect("write");
    let past = t
        .store
        .search(
            ResourceType::Observation,
            &query(&[("_lastUpdated", "ge2000-01-01")]),
        )
        .await
        .expect("search");
    assert_eq!(past.total, 1);
    let future = t
        .store
        .search(
            ResourceType::Observation,
            &query(&[("_lastUpdated", "gt2999-01-01")]),
        )
        .await
        .expect("search");
    assert_eq!(future.total, 0);
}

async fn everything_returns_the_patient_first_then_their_records(t: &TestStore) {
    t.store
        .write_all(vec![
            weight("w1", "p1", "2020-01-01", 9.0),
            patient("p1", "9434765919"),
            weight("other", "p2", "2020-01-01", 9.0),
        ])
        .await
        .expect("write");
    let page = t
        .store
        .everything("p1", &[], 100, 0)
        .await
        .expect("everything");
    assert_eq!(ids(&page), vec!["p1", "w1"]);
    assert_eq!(page.total, 2);
}

async fn sql_metacharacters_in_values_are_just_values(t: &TestStore) {
    t.store
        .write_all(vec![weight("w1", "c1", "2020-01-01", 9.0)])
        .await
        .expect("write");
    let hostile = t
        .store
        .search(
            ResourceType::Observation,
            &query(&[("patient", "c1' OR '1'='1")]),
        )
        .await
        .expect("search");
    assert_eq!(hostile.total, 0);
    assert_eq!(t.store.count().await.expect("count"), 1);
}

async fn the_person_index_gives_one_stable_id_per_nhs_number(t: &TestStore) {
    let nhs: NhsNumber = "9434765919".parse().expect("valid");
    let (first, created) = t.store.link_person(&nhs).await.expect("id");
    assert!(created, "the first sight creates the link");
    let (again, created_again) = t.store.link_person(&nhs).await.expect("id");
    assert!(!created_again);
    assert_eq!(first, again);
    assert!(
        !first.contains("9434765919"),
        "the id does not reveal the NHS number"
    );
    assert_eq!(
        t.store.nhs_number_of(&first).await.expect("lookup"),
        Some(nhs.clone())
    );
    assert_eq!(
        t.store.nhs_number_of("unknown").await.expect("lookup"),
        None
    );
    // Many at once, as a pass of the person index links them: the id already given is kept,
    // the others are created, and each is the one `link_person` then answers.
    let second: NhsNumber = "9990000018".parse().expect("valid");
    let third: NhsNumber = "9990000026".parse().expect("valid");
    let ids = t
        .store
        .link_persons(&[nhs.clone(), second.clone(), third.clone()])
        .await
        .expect("ids");
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[nhs.as_str()], first, "an id once given is kept");
    assert_ne!(ids[second.as_str()], ids[third.as_str()]);
    for number in [&second, &third] {
        let (id, created) = t.store.link_person(number).await.expect("id");
        assert!(!created, "linked already");
        assert_eq!(id, ids[number.as_str()]);
    }
    assert!(t.store.link_persons(&[]).await.expect("none").is_empty());
}

fn ledger_row(seq: i64, patient: Option<&str>) -> kinfold_store::LedgerRow {
    kinfold_store::LedgerRow {
        seq,
        recorded: 1_700_000_000_000 + seq,
        patient: patient.map(str::to_owned),
        agent: if seq % 2 == 0 {
            "nurse".into()
        } else {
            "gp".into()
        },
        leaf_hash: format!("{seq:064x}"),
        // Spaces, digits and characters of more than one byte: what the batch reader's
        // framing must carry through unchanged.
        record: format!("{{\"n\":{seq},\"note\":\"12 34 Zoë’s {seq} \"}}"),
    }
}

async fn the_inbox_empties_only_with_the_append_that_takes_it(t: &TestStore) {
    t.store
        .ledger_inbox_put("{\"first\":1}")
        .await
        .expect("put");
    t.store
        .ledger_inbox_put("{\"second\":2}")
        .await
        .expect("put");
    let waiting = t.store.ledger_inbox(10).await.expect("inbox");
    let texts: Vec<&str> = waiting.iter().map(|(_, text)| text.as_str()).collect();
    assert_eq!(texts, ["{\"first\":1}", "{\"second\":2}"], "oldest first");
    let (first, second) = (waiting[0].0, waiting[1].0);

    t.store
        .ledger_append(&[ledger_row(0, None)], &[first])
        .await
        .expect("append");
    let waiting = t.store.ledger_inbox(10).await.expect("inbox");
    assert_eq!(
        waiting.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [second]
    );

    // A failed append (sequence 0 again) takes nothing out of the inbox.
    let failed = t
        .store
        .ledger_append(&[ledger_row(0, None)], &[second])
        .await;
    assert!(failed.is_err());
    assert_eq!(t.store.ledger_inbox(10).await.expect("inbox").len(), 1);
}

async fn ledger_entries_append_read_back_and_filter(t: &TestStore) {
    let rows: Vec<_> = (0..250)
        .map(|n| ledger_row(n, if n % 5 == 0 { Some("child") } else { None }))
        .collect();
    t.store
        .ledger_append(&rows[..200], &[])
        .await
        .expect("group 1");
    t.store
        .ledger_append(&rows[200..], &[])
        .await
        .expect("group 2");
    let mut read = Vec::new();
    let mut after = None;
    loop {
        let batch = t.store.ledger_after(after, 64).await.expect("batch");
        let Some(last) = batch.last() else { break };
        assert!(batch.len() <= 64);
        after = Some(last.seq);
        read.extend(batch);
    }
    assert_eq!(read, rows, "every entry back, in order, exactly as written");
    let range = t.store.ledger_range(10, 13).await.expect("range");
    assert_eq!(range, rows[10..13].to_vec());
    let about_child = t
        .store
        .ledger_search(&kinfold_store::LedgerQuery {
            patient: Some("child".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("search");
    assert_eq!(about_child.len(), 50);
    assert_eq!(about_child[0].seq, 245, "newest first");
    let by_gp = t
        .store
        .ledger_search(&kinfold_store::LedgerQuery {
            patient: Some("child".into()),
            agent: Some("gp".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("search");
    assert!(by_gp.iter().all(|r| r.seq % 2 == 1));
    let duplicate = t.store.ledger_append(&rows[5..6], &[]).await;
    assert!(
        duplicate.is_err(),
        "a sequence number cannot be written twice"
    );
}

async fn tree_heads_are_kept_in_size_order(t: &TestStore) {
    for size in [3i64, 1, 2] {
        let head = kinfold_store::TreeHeadRow {
            tree_size: size,
            recorded: size,
            root_hash: format!("root{size}"),
            signature: "sig".into(),
        };
        t.store.ledger_put_head(&head).await.expect("put");
        t.store.ledger_put_head(&head).await.expect("idempotent");
    }
    let heads = t.store.ledger_heads().await.expect("heads");
    assert_eq!(
        heads.iter().map(|h| h.tree_size).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(
        t.store
            .ledger_latest_head()
            .await
            .expect("latest")
            .map(|h| h.tree_size),
        Some(3)
    );
}

fn provenance(id: &str, patient: &str, target: &str) -> Resource {
    resource(json!({
        "resourceType": "Provenance",
        "id": id,
        "target": [{"reference": format!("Patient/{patient}")}, {"reference": target}],
        "recorded": "2026-11-30T10:00:00Z"
    }))
}

fn event(id: &str) -> kinfold_store::OutboxEvent {
    kinfold_store::OutboxEvent {
        id: id.into(),
        payload: format!("{{\"id\":\"{id}\"}}"),
    }
}

async fn units_stand_or_fall_alone_in_one_commit(t: &TestStore) {
    let store = &t.store;
    store
        .write_all(vec![patient("held", "9434765919")])
        .await
        .expect("first patient");
    let good = kinfold_store::WriteUnit {
        records: vec![
            patient("p1", "9434765870"),
            weight("w1", "p1", "2026-01-01", 4.2),
        ],
        first_copy: vec![provenance("prov-1", "p1", "Observation/w1")],
        events: vec![event("e1")],
    };
    // Claims an NHS number another Patient holds: refused by the unique index.
    let clashing = kinfold_store::WriteUnit {
        records: vec![
            weight("w2", "p2", "2026-01-01", 3.9),
            patient("p2", "9434765919"),
        ],
        first_copy: vec![provenance("prov-2", "p2", "Observation/w2")],
        events: vec![event("e2")],
    };
    let results = store
        .write_units(vec![good, clashing])
        .await
        .expect("the commit succeeds");
    assert_eq!(results.len(), 2);
    let first = results[0].as_ref().expect("the good unit is stored");
    assert!(first.changed);
    assert_eq!(first.records.len(), 2);
    assert!(matches!(
        results[1],
        Err(kinfold_store::StoreError::Conflict(_))
    ));
    // The good unit is whole: records, provenance, event. The bad one left nothing.
    assert!(
        store
            .read(ResourceType::Observation, "w1")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .read(ResourceType::Provenance, "prov-1")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .read(ResourceType::Observation, "w2")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .read(ResourceType::Provenance, "prov-2")
            .await
            .unwrap()
            .is_none()
    );
    let due = store.outbox_due(i64::MAX, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["e1"]
    );
    // The Provenance is the patient's: it comes with their `$everything`.
    let everything = store.everything("p1", &[], 100, 0).await.unwrap();
    assert!(everything.items.iter().any(|r| r.id == "prov-1"));
}

async fn a_resent_unit_writes_nothing_and_queues_nothing(t: &TestStore) {
    let store = &t.store;
    let unit = || kinfold_store::WriteUnit {
        records: vec![patient("p1", "9434765870")],
        first_copy: vec![provenance("prov-1", "p1", "Patient/p1")],
        events: vec![event("e1")],
    };
    let first = store.write_units(vec![unit()]).await.unwrap();
    assert!(first[0].as_ref().unwrap().changed);
    let due = store.outbox_due(i64::MAX, 10).await.unwrap();
    store
        .outbox_delivered(&due.iter().map(|e| e.seq).collect::<Vec<_>>())
        .await
        .unwrap();
    let again = store.write_units(vec![unit()]).await.unwrap();
    assert!(!again[0].as_ref().unwrap().changed);
    assert_eq!(store.outbox_status().await.unwrap().0, 0);
    // A first copy is never overwritten, even by different content.
    let mut changed = unit();
    changed.records = vec![weight("w1", "p1", "2026-01-01", 4.0)];
    changed.first_copy = vec![provenance("prov-1", "p1", "Observation/w1")];
    store.write_units(vec![changed]).await.unwrap();
    let kept = store
        .read(ResourceType::Provenance, "prov-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.version_id, 1);
    assert!(kept.json.contains("Patient/p1") && !kept.json.contains("Observation/w1"));
}

async fn identity_state_keeps_the_last_of_each_piece_and_its_cursor(t: &TestStore) {
    let store = &t.store;
    let row = |kind: &str, key: &str, body: &str| kinfold_store::IdentityRow {
        kind: kind.into(),
        key: key.into(),
        body: body.into(),
    };
    assert_eq!(store.identity_load().await.expect("load"), (Vec::new(), 0));
    // The same piece twice in one save (PostgreSQL refuses an upsert touching a row twice).
    store
        .identity_save(
            &[
                row("person", "p1", "{\"v\":1}"),
                row("record", "gp|Patient/1", "{}"),
                row("person", "p1", "{\"v\":2}"),
            ],
            Some(7),
        )
        .await
        .expect("save");
    store
        .identity_save(&[row("edge", "e1", "{}")], None)
        .await
        .expect("save without moving the cursor");
    let (rows, cursor) = store.identity_load().await.expect("load");
    assert_eq!(cursor, 7);
    assert_eq!(
        rows,
        [
            row("edge", "e1", "{}"),
            row("person", "p1", "{\"v\":2}"),
            row("record", "gp|Patient/1", "{}"),
        ]
    );
}

async fn the_outbox_retries_then_forgets_what_was_delivered(t: &TestStore) {
    let store = &t.store;
    for n in 0..3 {
        let unit = kinfold_store::WriteUnit {
            records: vec![weight(
                &format!("w{n}"),
                "p1",
                "2026-01-01",
                4.0 + f64::from(n),
            )],
            events: vec![event(&format!("e{n}"))],
            ..kinfold_store::WriteUnit::default()
        };
        store.write_units(vec![unit]).await.unwrap();
    }
    let due = store.outbox_due(i64::MAX, 2).await.unwrap();
    assert_eq!(
        due.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["e0", "e1"]
    );
    // e0 fails and waits; e1 is delivered.
    store
        .outbox_retry(&[due[0].seq], 5_000_000_000_000)
        .await
        .unwrap();
    store.outbox_delivered(&[due[1].seq]).await.unwrap();
    let now_due = store.outbox_due(4_000_000_000_000, 10).await.unwrap();
    assert_eq!(
        now_due.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["e2"]
    );
    let later = store.outbox_due(5_000_000_000_000, 10).await.unwrap();
    assert_eq!(later[0].id, "e0");
    assert_eq!(later[0].attempts, 1);
    let (waiting, due) = store.outbox_status().await.unwrap();
    assert_eq!(waiting, 2);
    // e2 is due now, long before e0's retry.
    assert!(due.is_some_and(|due| due < 5_000_000_000_000));
}

async fn one_record_changed_twice_in_one_commit_keeps_both_versions(t: &TestStore) {
    let store = &t.store;
    let unit = |kg: f64, id: &str| kinfold_store::WriteUnit {
        records: vec![
            patient("p1", "9434765870"),
            weight("w1", "p1", "2026-01-01", kg),
        ],
        first_copy: vec![provenance(&format!("prov-{id}"), "p1", "Observation/w1")],
        events: vec![event(id)],
    };
    // Three units in one commit: new, changed, and the same again (a resend).
    let results = store
        .write_units(vec![unit(4.0, "e1"), unit(4.5, "e2"), unit(4.5, "e3")])
        .await
        .expect("committed");
    let changed: Vec<bool> = results
        .iter()
        .map(|r| r.as_ref().unwrap().changed)
        .collect();
    assert_eq!(changed, [true, true, false]);
    let second = &results[1].as_ref().unwrap().records[1];
    assert_eq!((second.version_id, second.created), (2, false));
    let current = store
        .read(ResourceType::Observation, "w1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.version_id, 2);
    assert!(current.json.contains("4.5"));
    let first = store
        .read_version(ResourceType::Observation, "w1", 1)
        .await
        .unwrap()
        .unwrap();
    assert!(first.json.contains("4.0") || first.json.contains(":4"));
    // The Patient was written once; the resend queued no event and kept no provenance.
    assert_eq!(
        store
            .read(ResourceType::Patient, "p1")
            .await
            .unwrap()
            .unwrap()
            .version_id,
        1
    );
    let ids: Vec<String> = store
        .outbox_due(i64::MAX, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["e1", "e2"]);
    assert!(
        store
            .read(ResourceType::Provenance, "prov-e3")
            .await
            .unwrap()
            .is_none()
    );
    // The search columns follow the last version.
    let found = store
        .search(
            ResourceType::Observation,
            &query(&[("patient", "Patient/p1")]),
        )
        .await
        .unwrap();
    assert_eq!(found.total, 1);
}

async fn received_events_are_kept_once_in_order(t: &TestStore) {
    let store = &t.store;
    let batch = vec![
        ("e1".to_owned(), "{}".to_owned()),
        ("e2".to_owned(), "{}".to_owned()),
    ];
    assert_eq!(store.events_receive("ae", &batch, 1).await.unwrap(), 2);
    // Delivered again (at least once): nothing new. The same id from another agency is new.
    assert_eq!(store.events_receive("ae", &batch, 2).await.unwrap(), 0);
    assert_eq!(store.events_receive("gp", &batch[..1], 3).await.unwrap(), 1);
    let all = store.events_after(0, 10).await.unwrap();
    let seen: Vec<_> = all
        .iter()
        .map(|e| (e.agency.as_str(), e.id.as_str()))
        .collect();
    assert_eq!(seen, [("ae", "e1"), ("ae", "e2"), ("gp", "e1")]);
    let rest = store.events_after(all[1].seq, 10).await.unwrap();
    assert_eq!(rest.len(), 1);
}

/// Two gateways on one database keep one memory: a client assertion's id used through one is
/// a replay through the other, and neither can keep identity state the other has moved past.
async fn two_stores_on_one_database_share_assertions_and_identity_state(t: &TestStore) {
    use kinfold_store::AssertionUse;
    let other = Store::open(&t.url)
        .await
        .expect("a second store on the database");
    let now = 1_800_000_000;
    assert_eq!(
        t.store
            .assertion_first_use("ehr", "jti-1", now + 300, now, 10)
            .await
            .expect("first"),
        AssertionUse::First
    );
    assert_eq!(
        other
            .assertion_first_use("ehr", "jti-1", now + 300, now, 10)
            .await
            .expect("replay"),
        AssertionUse::Replayed,
        "a replay through the other gateway"
    );
    assert_eq!(
        other
            .assertion_first_use("other-ehr", "jti-1", now + 300, now, 10)
            .await
            .expect("another client"),
        AssertionUse::First,
        "ids are per client"
    );
    // Expired ids go; the table holds at most the bound.
    assert_eq!(
        t.store
            .assertion_first_use("ehr", "jti-1", now + 1000, now + 400, 10)
            .await
            .expect("expired"),
        AssertionUse::First,
        "an expired id is forgotten"
    );
    for n in 0..9 {
        t.store
            .assertion_first_use("ehr", &format!("bulk-{n}"), now + 300, now, 10)
            .await
            .expect("bulk");
    }
    assert_eq!(
        other
            .assertion_first_use("ehr", "one-too-many", now + 300, now, 10)
            .await
            .expect("full"),
        AssertionUse::Full
    );

    // Identity state: both read generation 0; the first save wins, the second is refused.
    let row = |key: &str| kinfold_store::IdentityRow {
        kind: "person".into(),
        key: key.into(),
        body: "{}".into(),
    };
    assert_eq!(t.store.identity_generation().await.expect("generation"), 0);
    assert_eq!(
        t.store
            .identity_save_if(&[row("p1")], Some(1), &[], 0)
            .await
            .expect("first save"),
        1
    );
    assert!(matches!(
        other.identity_save_if(&[row("p2")], Some(2), &[], 0).await,
        Err(kinfold_store::StoreError::Conflict(_))
    ));
    assert_eq!(other.identity_generation().await.expect("generation"), 1);
    let (rows, cursor) = other.identity_load().await.expect("load");
    assert_eq!(
        (rows, cursor),
        (vec![row("p1")], 1),
        "the refused save wrote nothing"
    );
    assert_eq!(
        other
            .identity_save_if(&[row("p2")], Some(2), &[], 1)
            .await
            .expect("after reading again"),
        2
    );
    other.close().await;
}

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let t = super::TestStore::sqlite().await;
                    assert_eq!(t.store.kind(), super::BackendKind::Sqlite);
                    super::$case(&t).await;
                    t.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let t = super::TestStore::postgres().await;
                    assert_eq!(t.store.kind(), super::BackendKind::Postgres);
                    super::$case(&t).await;
                    t.finish().await;
                }
            )*
        }
    };
}

on_both_backends!(
    a_written_resource_reads_back_with_version_and_last_updated,
    an_update_makes_a_new_version_and_keeps_the_old_one,
    the_same_content_again_is_no_new_version,
    a_failed_write_leaves_nothing_behind,
    search_by_patient_and_code_finds_only_those,
    date_prefixes_filter_as_fhir_says,
    identifiers_find_patients,
    an_update_moves_its_identifiers_and_every_version_reads_back,
    audited_units_commit_their_ledger_rows_with_them,
    replaced_tokens_go_even_in_one_group_or_from_unreadable_content,
    identity_changes_commit_their_ledger_rows_with_them,
    paging_reports_the_full_total,
    last_updated_filters_on_store_time,
    everything_returns_the_patient_first_then_their_records,
    sql_metacharacters_in_values_are_just_values,
    the_person_index_gives_one_stable_id_per_nhs_number,
    ledger_entries_append_read_back_and_filter,
    the_inbox_empties_only_with_the_append_that_takes_it,
    tree_heads_are_kept_in_size_order,
    units_stand_or_fall_alone_in_one_commit,
    a_resent_unit_writes_nothing_and_queues_nothing,
    the_outbox_retries_then_forgets_what_was_delivered,
    identity_state_keeps_the_last_of_each_piece_and_its_cursor,
    received_events_are_kept_once_in_order,
    one_record_changed_twice_in_one_commit_keeps_both_versions,
    two_stores_on_one_database_share_assertions_and_identity_state,
);

/// A PostgreSQL database that does not exist yet is created when the configured role may
/// create databases; when it may not, the error names the database, the server, the role and
/// the `createdb` command, instead of a bare "database error".
#[tokio::test]
async fn a_missing_postgres_database_is_created_or_named_with_the_command_that_creates_it() {
    use kinfold_store::testing::{postgres_admin_url, with_database};
    use sqlx::Connection;
    let admin_url = postgres_admin_url();
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();

    // The test server's administrative role may create it: it is created and migrated.
    let name = format!("kinfold_missing_{suffix}");
    let store = Store::open(&with_database(&admin_url, &name))
        .await
        .expect("created and opened");
    assert_eq!(store.kind(), BackendKind::Postgres);
    store.close().await;
    kinfold_store::drop_postgres_database(&admin_url, &name)
        .await
        .expect("dropped");

    // A role that may not create databases: told what to do.
    let role = format!("nocreate_{suffix}");
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("admin");
    // DDL takes no parameters; the role is a name this test made from hex digits.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE {role} LOGIN NOCREATEDB"
    )))
    .execute(&mut admin)
    .await
    .expect("role");
    let (scheme, rest) = admin_url.split_once("://").expect("a URL");
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let url = with_database(&format!("{scheme}://{role}@{host}"), &name);
    let error = Store::open(&url)
        .await
        .expect_err("may not create it")
        .to_string();
    for part in [
        name.as_str(),
        role.as_str(),
        "does not exist",
        "createdb -h",
    ] {
        assert!(error.contains(part), "{part} in: {error}");
    }
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE {role}")))
        .execute(&mut admin)
        .await
        .expect("role dropped");
    admin.close().await.expect("closed");
}
