//! Ledger benchmarks: durable appends per second with group commit (SQLite and PostgreSQL),
//! inclusion-proof time, full verification of 1,000,000 entries, and one commit's latency.
//!
//!   cargo bench -p kinfold-gateway --bench ledger
//!
//! Prints Markdown rows for BENCHMARKS.md. `LEDGER_BENCH=sqlite,postgres,proof,verify` (the
//! default: all four) runs only the parts named. PostgreSQL: KINFOLD_TEST_POSTGRES_URL (default
//! postgres://postgres@127.0.0.1:5432/postgres); a fresh database is made and dropped.

use std::time::{Duration, Instant};

use kinfold_gateway::ledger::verify_store;
use kinfold_gateway::{Ledger, LedgerConfig, Secret};
use kinfold_ledger::{AuditAgent, AuditEntity, AuditRecord, MerkleLog, b64, leaf_hash};
use kinfold_store::Store;

const SEED: [u8; 32] = [42; 32];

fn config() -> LedgerConfig {
    LedgerConfig {
        signing_key: Some(Secret::new(b64(&SEED))),
        ..LedgerConfig::default()
    }
}

/// A disclosure of ten records, about the size of a small `$everything`.
fn record(n: u64) -> AuditRecord {
    AuditRecord {
        recorded: String::new(),
        event_type: "rest".into(),
        subtype: "operation".into(),
        action: "E".into(),
        outcome: "0".into(),
        query: "Patient/$everything".into(),
        agent: AuditAgent {
            who: "bench-nurse".into(),
            organisation: Some("RXX01".into()),
            role: Some("health-visitor".into()),
        },
        purpose: Some("direct-care".into()),
        patient: Some(format!("person-{}", n % 1000)),
        entities: (0..10)
            .map(|i| AuditEntity {
                reference: format!("http://127.0.0.1:8084/Observation/hv-obs{n}-{i}"),
                resource_type: "Observation".into(),
                agency: Some("health-visiting".into()),
                disclosure: "disclosed".into(),
            })
            .collect(),
        rule: Some("kinfold.authenticated-caller".into()),
        justification: None,
        request_id: None,
        source: None,
        count: None,
        until: None,
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// `writers` tasks each record `per_writer` disclosures one at a time, as request handlers do.
async fn appends_per_second(store: Store, writers: u64, per_writer: u64) -> (f64, Duration) {
    let ledger = Ledger::open(store, &config()).await.expect("ledger opens");
    let single: Vec<Duration> = {
        let mut samples = Vec::new();
        for n in 0..200 {
            let started = Instant::now();
            ledger.record(vec![record(n)]).await.expect("append");
            samples.push(started.elapsed());
        }
        samples
    };
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                for n in 0..per_writer {
                    ledger
                        .record(vec![record(w * per_writer + n)])
                        .await
                        .expect("append");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer");
    }
    let rate = (writers * per_writer) as f64 / started.elapsed().as_secs_f64();
    (rate, median(single))
}

#[tokio::main]
async fn main() {
    let parts =
        std::env::var("LEDGER_BENCH").unwrap_or_else(|_| "sqlite,postgres,proof,verify".into());
    let run = |part: &str| parts.split(',').any(|p| p.trim() == part);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rows = Vec::new();
    if run("sqlite") {
        sqlite_appends(dir.path(), &mut rows).await;
    }
    if run("postgres") {
        postgres_appends(&mut rows).await;
    }
    if run("proof") {
        rows.push(inclusion_proofs());
    }
    if run("verify") {
        rows.extend(full_verification(dir.path()).await);
    }
    for row in rows {
        println!("{row}");
    }
}

/// Appends per second on SQLite, with 256 and 1,024 writers.
async fn sqlite_appends(dir: &std::path::Path, rows: &mut Vec<String>) {
    for writers in [256u64, 1024] {
        let per_writer = 102_400 / writers;
        let sqlite = Store::open_sqlite(&dir.join(format!("ledger-{writers}.db")))
            .await
            .expect("sqlite");
        let (rate, commit) = appends_per_second(sqlite, writers, per_writer).await;
        rows.push(format!("| durable appends/s, SQLite, group commit ({writers} concurrent writers, one record per call) | {rate:.0} /s | ≥ 20,000 /s |"));
        if writers == 256 {
            rows.push(format!("| one disclosure's durable commit, no other load (median of 200), SQLite | {:.2} ms | added to every disclosure |", commit.as_secs_f64() * 1000.0));
        }
    }
}

/// Appends per second on PostgreSQL, over TLS and plain loopback, with 256 and 1,024 writers.
async fn postgres_appends(rows: &mut Vec<String>) {
    let admin = std::env::var("KINFOLD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    // PostgreSQL as the URL says (TLS when the server offers it, as Debian's does), and again
    // over plain loopback, to show what TLS costs.
    for (transport, options) in [("TLS", ""), ("plain loopback", "?sslmode=disable")] {
        for writers in [256u64, 1024] {
            let per_writer = 102_400 / writers;
            let name = format!("kinfold_bench_{}_{writers}", std::process::id());
            kinfold_store::create_postgres_database(&admin, &name)
                .await
                .expect("PostgreSQL reachable");
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            let postgres = Store::open_postgres(&format!("{base}/{name}{options}"))
                .await
                .expect("postgres");
            let (rate, commit) = appends_per_second(postgres.clone(), writers, per_writer).await;
            postgres.close().await;
            kinfold_store::drop_postgres_database(&admin, &name)
                .await
                .expect("drop");
            rows.push(format!("| durable appends/s, PostgreSQL ({transport}), group commit ({writers} concurrent writers, one record per call) | {rate:.0} /s | ≥ 20,000 /s |"));
            if writers == 256 {
                rows.push(format!("| one disclosure's durable commit, no other load (median of 200), PostgreSQL ({transport}) | {:.2} ms | added to every disclosure |", commit.as_secs_f64() * 1000.0));
            }
        }
    }
}

/// Inclusion proofs in a tree of a million entries.
fn inclusion_proofs() -> String {
    let mut log = MerkleLog::new();
    for n in 0u64..1_000_000 {
        log.push(leaf_hash(&n.to_be_bytes()));
    }
    let mut proof_samples = Vec::new();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..2000 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let index = rng % 1_000_000;
        let started = Instant::now();
        let proof = log.inclusion_proof(index, 1_000_000).expect("proof");
        proof_samples.push(started.elapsed());
        std::hint::black_box(proof);
    }
    format!(
        "| inclusion proof in a 1,000,000-entry tree (median of 2,000) | {:.1} µs | ≤ 1 ms |",
        median(proof_samples).as_secs_f64() * 1e6
    )
}

/// Full verification of a million stored entries, from the records up.
async fn full_verification(dir: &std::path::Path) -> Vec<String> {
    let big = Store::open_sqlite(&dir.join("million.db"))
        .await
        .expect("sqlite");
    let ledger = Ledger::open(big.clone(), &config()).await.expect("ledger");
    let fill_started = Instant::now();
    let tasks: Vec<_> = (0..200u64)
        .map(|w| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                for chunk in 0..50u64 {
                    let records = (0..100)
                        .map(|i| record(w * 5000 + chunk * 100 + i))
                        .collect();
                    ledger.record(records).await.expect("append");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer");
    }
    let fill = fill_started.elapsed();
    ledger.sign_head(&big).await.expect("sign");
    let public_key = ledger.public_key();
    let verify_started = Instant::now();
    let report = verify_store(&big, &public_key, None).await.expect("verify");
    let verify = verify_started.elapsed();
    assert_eq!(report.entries, 1_000_000);
    assert!(report.problems.is_empty(), "{:?}", report.problems);

    vec![
        format!(
            "| full verification of 1,000,000 stored entries (SQLite; recompute every leaf from its record, the tree, every signed head) | {:.2} s | ≤ 10 s |",
            verify.as_secs_f64()
        ),
        format!(
            "| (writing those 1,000,000 entries: 200 writers × 100 records per call) | {:.1} s ({:.0} /s) | |",
            fill.as_secs_f64(),
            1e6 / fill.as_secs_f64()
        ),
    ]
}
