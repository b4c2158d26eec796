//! The audit ledger end to end (G20): every disclosure is in a tamper-evident log whose proofs
//! any auditor can check, tampering is named, and nothing is disclosed if the log cannot write.

mod common;

use std::time::Duration;

use common::{TestDemo, get_json};
use kinfold_gateway::SignedTreeHead;
use kinfold_gateway::ledger::{hex, verify_store};
use kinfold_ledger::{b64, from_b64, leaf_hash};
use kinfold_store::Store;
use serde_json::Value;

fn public_key(t: &TestDemo) -> [u8; 32] {
    from_b64(&t.demo.info.ledger_public_key)
        .and_then(|k| k.try_into().ok())
        .expect("public key")
}

/// Waits until a signed tree head covers at least `size` entries.
async fn head_covering(t: &TestDemo, size: u64) -> SignedTreeHead {
    for _ in 0..100 {
        let (status, body) = get_json(&t.http, &t.gateway("/ledger/v1/get-sth"), None).await;
        assert_eq!(status, 200);
        let head: SignedTreeHead = serde_json::from_value(body).expect("sth");
        if head.tree_size >= size {
            return head;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no signed tree head covered {size} entries within 10 s");
}

/// The first problem `ledger verify` names is the one the test caused.
fn assert_first_problem(problems: &[String], words: &str) {
    assert!(
        problems.first().is_some_and(|p| p.contains(words)),
        "expected the first problem to say {words:?}: {problems:?}"
    );
}

async fn log_size(t: &TestDemo) -> u64 {
    let store = Store::open_sqlite(&t.dir.path().join("gateway.db"))
        .await
        .expect("store");
    let mut n = 0;
    let mut after = None;
    loop {
        let batch = store.ledger_after(after, 1000).await.expect("scan");
        let Some(last) = batch.last() else { break };
        after = Some(last.seq);
        n += batch.len() as u64;
    }
    store.close().await;
    n
}

#[tokio::test]
async fn everything_is_recorded_and_its_inclusion_proof_verifies_against_a_signed_head() {
    let t = TestDemo::start(1).await;
    let id = t.demo.info.example_patient.id.clone();
    let (status, bundle) = t
        .get(&t.gateway(&format!("/Patient/{id}/$everything")))
        .await;
    assert_eq!(status, 200);
    let disclosed = bundle["entry"]
        .as_array()
        .map(|e| e.iter().filter(|e| e["search"]["mode"] == "match").count())
        .unwrap_or(0);

    let size = log_size(&t).await;
    let head = head_covering(&t, size).await;
    assert!(
        head.verify(&public_key(&t)),
        "the tree head is signed by the published key"
    );

    // An auditor with no access to patient data: fetch the entries, find the disclosure's leaf,
    // ask for its proof, check it with an independent verifier.
    let (_, entries) = get_json(
        &t.http,
        &t.gateway(&format!(
            "/ledger/v1/get-entries?start=0&end={}",
            head.tree_size - 1
        )),
        None,
    )
    .await;
    let entries = entries["entries"].as_array().expect("entries").clone();
    assert_eq!(entries.len() as u64, head.tree_size);
    let last = from_b64(
        entries
            .last()
            .and_then(|e| e["leaf_input"].as_str())
            .expect("leaf_input"),
    )
    .expect("base64");
    assert_eq!(
        last.len(),
        49,
        "a leaf input is 49 bytes: no room for patient data"
    );
    let leaf = leaf_hash(&last);
    let (status, proof) = get_json(
        &t.http,
        &t.gateway(&format!(
            "/ledger/v1/get-proof-by-hash?hash={}&tree_size={}",
            urlencode(&b64(&leaf)),
            head.tree_size
        )),
        None,
    )
    .await;
    assert_eq!(status, 200, "{proof}");
    let index = proof["leaf_index"].as_u64().expect("index");
    let path: Vec<[u8; 32]> = proof["audit_path"]
        .as_array()
        .expect("path")
        .iter()
        .map(|h| {
            from_b64(h.as_str().unwrap_or(""))
                .and_then(|b| b.try_into().ok())
                .expect("hash")
        })
        .collect();
    let root: [u8; 32] = from_b64(&head.sha256_root_hash)
        .and_then(|r| r.try_into().ok())
        .expect("root");
    assert!(kinfold_ledger::verify::inclusion(
        &last,
        index,
        head.tree_size,
        &root,
        &path
    ));
    let mut altered = last.clone();
    altered[48] ^= 1;
    assert!(
        !kinfold_ledger::verify::inclusion(&altered, index, head.tree_size, &root, &path),
        "one altered byte fails"
    );

    // A privacy officer sees the disclosure as an AuditEvent naming every record.
    let (status, events) = t
        .officer_get(&t.gateway(&format!("/AuditEvent?patient={id}")))
        .await;
    assert_eq!(status, 200);
    common::assert_valid_fhir("AuditEvent searchset", &events);
    let everything = common::resources(&events)
        .into_iter()
        .find(|e| {
            e["outcomeDesc"]
                .as_str()
                .is_some_and(|d| d.starts_with("Patient/$everything"))
        })
        .expect("the $everything disclosure is listed")
        .clone();
    let records = everything["entity"]
        .as_array()
        .map(|e| e.len())
        .unwrap_or(0);
    assert_eq!(
        records,
        disclosed + 1,
        "every disclosed record, plus the patient"
    );

    // The family's access report says it in words.
    let (status, report) = t
        .get(&t.gateway(&format!("/Patient/{id}/$access-report")))
        .await;
    assert_eq!(status, 200);
    let text = report["accesses"][0]["text"].as_str().expect("a sentence");
    assert!(
        text.contains("demo-safeguarding-lead")
            && text.contains("Q99")
            && text.contains("safeguarding"),
        "{text}"
    );
    assert!(
        text.contains("A&E") && text.contains("GP practice"),
        "names the agencies: {text}"
    );
    t.demo.shutdown().await;
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

#[tokio::test]
async fn consistency_proofs_link_successive_signed_heads() {
    let t = TestDemo::start(1).await;
    let id = t.demo.info.example_patient.id.clone();
    t.get(&t.gateway(&format!("/Patient/{id}"))).await;
    let first = head_covering(&t, log_size(&t).await).await;
    for _ in 0..3 {
        t.get(&t.gateway(&format!("/Patient/{id}/$everything")))
            .await;
    }
    let second = head_covering(&t, log_size(&t).await).await;
    assert!(second.tree_size > first.tree_size);
    let (_, proof) = get_json(
        &t.http,
        &t.gateway(&format!(
            "/ledger/v1/get-sth-consistency?first={}&second={}",
            first.tree_size, second.tree_size
        )),
        None,
    )
    .await;
    let proof: Vec<[u8; 32]> = proof["consistency"]
        .as_array()
        .expect("proof")
        .iter()
        .map(|h| {
            from_b64(h.as_str().unwrap_or(""))
                .and_then(|b| b.try_into().ok())
                .expect("hash")
        })
        .collect();
    let root = |h: &SignedTreeHead| -> [u8; 32] {
        from_b64(&h.sha256_root_hash)
            .and_then(|r| r.try_into().ok())
            .expect("root")
    };
    assert!(kinfold_ledger::verify::consistency(
        first.tree_size,
        &root(&first),
        second.tree_size,
        &root(&second),
        &proof
    ));
    assert!(!kinfold_ledger::verify::consistency(
        first.tree_size,
        &root(&second),
        second.tree_size,
        &root(&first),
        &proof
    ));
    t.demo.shutdown().await;
}

/// Makes a few disclosures and waits for a signed head over them; returns the checkpoint.
async fn some_history(t: &TestDemo) -> SignedTreeHead {
    let id = t.demo.info.example_patient.id.clone();
    for _ in 0..4 {
        t.get(&t.gateway(&format!("/Patient/{id}/$everything")))
            .await;
    }
    head_covering(t, log_size(t).await).await
}

async fn tamper_and_verify(statement: &str) -> Vec<String> {
    let t = TestDemo::start(1).await;
    let checkpoint = some_history(&t).await;
    let store = Store::open_sqlite(&t.dir.path().join("gateway.db"))
        .await
        .expect("store");
    let clean = verify_store(&store, &public_key(&t), Some(&checkpoint))
        .await
        .expect("verify");
    assert!(
        clean.problems.is_empty(),
        "an untouched ledger verifies: {:?}",
        clean.problems
    );
    store.execute_admin(statement).await.expect("tamper");
    let report = verify_store(&store, &public_key(&t), Some(&checkpoint))
        .await
        .expect("verify");
    store.close().await;
    t.demo.shutdown().await;
    report.problems
}

#[tokio::test]
async fn an_edited_record_is_named() {
    // Entry 2 is one of the identity links made while the demo seeds (by the person index or
    // the demo): rewrite whose link it was.
    let problems = tamper_and_verify(
        "UPDATE ledger_entries SET record = replace(record, 'kinfold-', 'someone-') WHERE seq = 2",
    )
    .await;
    assert_first_problem(&problems, "entry 2 has been altered");
}

/// Searches and access reports select entries by the patient column: moving an entry to
/// another child (to hide an access from a family's report) is caught as well.
#[tokio::test]
async fn an_edited_patient_column_is_named() {
    let problems = tamper_and_verify(
        "UPDATE ledger_entries SET patient = 'someone-else' WHERE seq = (SELECT min(seq) FROM ledger_entries WHERE patient IS NOT NULL)",
    )
    .await;
    assert_first_problem(&problems, "patient or agent column no longer matches");
}

/// A careful forger rewrites a record, its agent column and its stored leaf hash to match:
/// every row then looks right on its own, and only the signed tree heads (and the agency's
/// checkpoint) catch it.
#[tokio::test]
async fn a_consistent_forgery_is_caught_by_the_signed_heads_and_the_checkpoint() {
    let t = TestDemo::start(1).await;
    let checkpoint = some_history(&t).await;
    let store = Store::open_sqlite(&t.dir.path().join("gateway.db"))
        .await
        .expect("store");
    let row = store.ledger_range(1, 2).await.expect("row").remove(0);
    let forged = row.record.replace("kinfold-", "someone-");
    assert_ne!(forged, row.record);
    let leaf = kinfold_ledger::LeafInput {
        seq: 1,
        timestamp_ms: u64::try_from(row.recorded).expect("time"),
        record_hash: kinfold_ledger::AuditRecord::commitment(&forged),
    }
    .leaf_hash();
    let forged_hex = hex(&leaf);
    store
        .execute_admin(&format!(
            "UPDATE ledger_entries SET record = '{}', leaf_hash = '{forged_hex}', agent = replace(agent, 'kinfold-', 'someone-') WHERE seq = 1",
            forged.replace('\'', "''")
        ))
        .await
        .expect("forge");
    let report = verify_store(&store, &public_key(&t), Some(&checkpoint))
        .await
        .expect("verify");
    assert!(
        !report
            .problems
            .iter()
            .any(|p| p.contains("has been altered")),
        "each row looks right alone"
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("do not match their signed tree head")),
        "{:?}",
        report.problems
    );
    assert!(
        report.problems.iter().any(|p| p.contains("rewritten")),
        "{:?}",
        report.problems
    );
    store.close().await;
    t.demo.shutdown().await;
}

#[tokio::test]
async fn a_deleted_record_is_named() {
    let problems = tamper_and_verify("DELETE FROM ledger_entries WHERE seq = 1").await;
    assert_first_problem(&problems, "entry 1 is missing");
}

#[tokio::test]
async fn reordered_records_are_named() {
    let problems = tamper_and_verify(
        "UPDATE ledger_entries SET seq = CASE seq WHEN 1 THEN 1000001 WHEN 2 THEN 1 END WHERE seq IN (1, 2); UPDATE ledger_entries SET seq = 2 WHERE seq = 1000001",
    )
    .await;
    assert_first_problem(&problems, "entry 1 has been altered");
}

#[tokio::test]
async fn truncation_with_the_signed_heads_removed_is_caught_by_a_saved_checkpoint() {
    let problems = tamper_and_verify(
        "DELETE FROM ledger_entries WHERE seq >= 2; DELETE FROM ledger_tree_heads WHERE tree_size > 2",
    )
    .await;
    assert!(
        problems.iter().any(|p| p.contains("truncated")),
        "{problems:?}"
    );
}

#[tokio::test]
async fn when_the_ledger_cannot_write_nothing_is_disclosed() {
    let t = TestDemo::start(1).await;
    let id = t.demo.info.example_patient.id.clone();
    let store = Store::open_sqlite(&t.dir.path().join("gateway.db"))
        .await
        .expect("store");
    store
        .execute_admin("CREATE TRIGGER ledger_refuses BEFORE INSERT ON ledger_entries BEGIN SELECT RAISE(ABORT, 'storage refuses writes'); END")
        .await
        .expect("make the ledger's storage refuse writes");

    for path in [
        format!("/Patient/{id}/$everything"),
        format!("/Patient/{id}"),
        format!("/AuditEvent?patient={id}"),
    ] {
        let token = if path.starts_with("/AuditEvent") {
            t.officer_token()
        } else {
            t.demo.info.token.clone()
        };
        let response = t
            .http
            .get(t.gateway(&path))
            .bearer_auth(&token)
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status().as_u16(), 503, "{path}");
        let body = response.text().await.expect("body");
        let outcome: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        assert_eq!(
            outcome["issue"][0]["details"]["coding"][0]["code"],
            "ledger-unavailable"
        );
        assert!(
            !body.contains(&t.demo.info.example_patient.nhs_number),
            "no patient data in a refusal"
        );
    }

    store
        .execute_admin("DROP TRIGGER ledger_refuses")
        .await
        .expect("storage recovers");
    let (status, _) = t
        .get(&t.gateway(&format!("/Patient/{id}/$everything")))
        .await;
    assert_eq!(
        status, 200,
        "disclosure resumes once the ledger can record again"
    );
    let report = verify_store(&store, &public_key(&t), None)
        .await
        .expect("verify");
    assert!(
        report.problems.is_empty(),
        "a failed group commit leaves no gap: {:?}",
        report.problems
    );
    store.close().await;
    t.demo.shutdown().await;
}

#[tokio::test]
async fn refused_requests_are_recorded_too() {
    let t = TestDemo::start_with(1, |o| o.refusals.interval_ms = 200).await;
    let id = t.demo.info.example_patient.id.clone();
    let response = t
        .http
        .get(t.gateway(&format!("/Patient/{id}")))
        .bearer_auth("not-a-token")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 401);
    let mut found = false;
    for _ in 0..50 {
        let (_, events) = t
            .officer_get(&t.gateway("/AuditEvent?agent=anonymous"))
            .await;
        if common::resources(&events).iter().any(|e| {
            e["type"]["code"] == "110113"
                && e["outcome"] == "4"
                && e["agent"][0]["network"]["address"] == "127.0.0.1"
                && e["outcomeDesc"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("1 refused request"))
        }) {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(found, "the refusal is in the ledger");
    t.demo.shutdown().await;
}

#[tokio::test]
async fn the_gateway_refuses_to_start_on_a_ledger_that_does_not_verify() {
    let t = TestDemo::start(1).await;
    some_history(&t).await;
    let store = Store::open_sqlite(&t.dir.path().join("gateway.db"))
        .await
        .expect("store");
    store
        .execute_admin("DELETE FROM ledger_entries WHERE seq = 0")
        .await
        .expect("tamper");
    let key = std::fs::read_to_string(t.dir.path().join("ledger-signing-key")).expect("key");
    let config = kinfold_gateway::LedgerConfig {
        signing_key: Some(kinfold_gateway::Secret::new(key)),
        ..Default::default()
    };
    let opened = kinfold_gateway::Ledger::open(store.clone(), &config).await;
    match opened {
        Err(kinfold_gateway::LedgerError::Tampered(why)) => {
            assert!(why.contains("entry 0 is missing"), "{why}")
        }
        other => panic!("a tampered ledger must not open: {other:?}"),
    }
    store.close().await;
    t.demo.shutdown().await;
}

/// Identity-link changes and issued tokens are in the ledger too (G20).
#[tokio::test]
async fn identity_links_and_issued_tokens_are_recorded() {
    let t = TestDemo::start(1).await;
    // The person index links what the adapters' events name; the demo links the rest.
    let mut events = Vec::new();
    for agent in ["kinfold-identity", "kinfold-demo"] {
        let (status, found) = t
            .officer_get(&t.gateway(&format!("/AuditEvent?agent={agent}")))
            .await;
        assert_eq!(status, 200);
        events.extend(common::resources(&found).into_iter().cloned());
    }
    assert!(
        t.demo.seeded > 0,
        "a first start, which registers the demo's people"
    );
    assert!(
        events.iter().any(|e| e["outcomeDesc"]
            .as_str()
            .is_some_and(|d| d.starts_with("identity-link"))
            && e["entity"][0]["what"]["reference"]
                == format!("Patient/{}", t.demo.info.example_patient.id).as_str()),
        "the example child's identity link is recorded"
    );
    assert!(
        events.iter().any(|e| e["type"]["code"] == "110114"),
        "the demo token's issue is recorded"
    );
    let text = serde_json::to_string(&events).expect("json");
    assert!(!text.contains(&t.demo.info.token), "never the token itself");
    t.demo.shutdown().await;
}

/// An ingest's audit entries are written in the adapter's own transaction, beside its records
/// (`Ledger::record_within`): entries that committed count; entries of a write that failed do
/// not; entries that committed although the writer then said it failed are read back, so no
/// position in the log is given twice and the log still verifies.
#[tokio::test]
async fn entries_written_in_a_callers_transaction_count_only_once_committed() {
    use kinfold_gateway::ledger::{Ledger, LedgerConfig, LedgerError, Secret};
    use kinfold_ledger::AuditRecord;
    use kinfold_store::StoreError;

    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open_sqlite(&dir.path().join("adapter.db"))
        .await
        .expect("store");
    let config = LedgerConfig {
        signing_key: Some(Secret::new(b64(&[9u8; 32]))),
        ..LedgerConfig::default()
    };
    let ledger = Ledger::open(store.clone(), &config).await.expect("ledger");
    // Any record will do; only its subtype tells the entries apart below.
    let record = |what: &str| AuditRecord {
        subtype: what.into(),
        ..kinfold_gateway::audit::identity_link("ae-feed", "person-1", None)
    };

    // Committed with the caller's write: two entries.
    let writer = store.clone();
    ledger
        .record_within(vec![record("first"), record("second")], |rows| async move {
            writer
                .write_units_audited(Vec::new(), &rows)
                .await
                .map_err(LedgerError::from)
        })
        .await
        .expect("committed");
    ledger
        .record(vec![record("third")])
        .await
        .expect("appended");
    assert_eq!(ledger.size(), 3, "both entries count, then the next one");

    // The write failed before committing: its entry is not in the log.
    let refused: Result<((), kinfold_audit::Receipt), LedgerError> = ledger
        .record_within(vec![record("refused")], |_rows| async move {
            Err(StoreError::Conflict("the write was refused".into()).into())
        })
        .await;
    assert!(refused.is_err());
    ledger
        .record(vec![record("fourth")])
        .await
        .expect("appended");
    assert_eq!(ledger.size(), 4, "the refused write's entry does not count");

    // Committed, then the writer said it failed: the ledger reads back what was committed,
    // and the next entry takes the position after it.
    let writer = store.clone();
    let said_failed: Result<((), kinfold_audit::Receipt), LedgerError> = ledger
        .record_within(vec![record("committed anyway")], |rows| async move {
            writer.write_units_audited(Vec::new(), &rows).await?;
            Err(StoreError::Corrupt("gave up after committing".into()).into())
        })
        .await;
    assert!(said_failed.is_err());
    ledger
        .record(vec![record("fifth")])
        .await
        .expect("no position is given twice");
    assert_eq!(ledger.size(), 6);

    ledger.sign_head(&store).await.expect("signed");
    let report = verify_store(&store, &ledger.public_key(), None)
        .await
        .expect("verified");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.entries, 6);
    let subtypes: Vec<String> = store
        .ledger_after(None, 100)
        .await
        .expect("entries")
        .iter()
        .map(|row| {
            serde_json::from_str::<Value>(&row.record).expect("record")["subtype"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        subtypes,
        [
            "first",
            "second",
            "third",
            "fourth",
            "committed anyway",
            "fifth"
        ]
    );
}
