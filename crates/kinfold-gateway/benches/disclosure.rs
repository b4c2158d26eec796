//! What the consent decisions add to one `$everything`: the facts read from the child's
//! records, the relationship, and every record decided, for the benchmark child's 63 records.
//!
//!   cargo bench -p kinfold-gateway --bench disclosure
//!
//! With `EVERYTHING_MEDIAN_MS` set (the `$everything` median from the same machine's load
//! test; `bash bench/consent.sh` reads it from BENCHMARKS.md), the row also gives the share of
//! that median. Prints Markdown rows for BENCHMARKS.md.

use std::hint::black_box;
use std::time::Instant;

use kinfold_consent::{Purpose, Requester, Role, Whose};
use kinfold_fhir::Agency;
use kinfold_gateway::disclosure::{DisclosureConfig, facts, screen};
use kinfold_gateway::fanout::{AgencyAnswer, AgencyRecord};
use serde_json::{Value, json};

fn record(agency: Agency, kind: &str, n: usize, tags: &[&str]) -> AgencyRecord {
    let tags: Vec<Value> = tags
        .iter()
        .map(|t| json!({"system": kinfold_fhir::codes::EVENT_SYSTEM, "code": t}))
        .collect();
    AgencyRecord {
        full_url: format!("http://127.0.0.1:8084/{kind}/{}-{n}", agency.as_str()),
        resource: json!({
            "resourceType": kind, "id": format!("{}-{n}", agency.as_str()),
            "meta": {"tag": tags, "source": agency.source_uri()},
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "subject": {"reference": "Patient/p"},
            "effectiveDateTime": "2026-03-01T10:00:00Z",
            "class": {"code": if agency == Agency::Ae { "EMER" } else { "AMB" }},
            "period": {"start": "2026-11-01T10:00:00Z"}
        }),
    }
}

/// About the benchmark child's answer: a Patient at each agency, 20 weights and their
/// contacts at health visiting, an A&E attendance, GP records and provenance.
fn answers() -> Vec<AgencyAnswer> {
    Agency::ALL
        .into_iter()
        .map(|agency| {
            let mut records = vec![record(agency, "Patient", 0, &["patient"])];
            let (kind, tags, count): (&str, &[&str], usize) = match agency {
                Agency::HealthVisiting => ("Observation", &["observation", "growth-measurement"], 40),
                Agency::Ae => ("Encounter", &["ed-attendance", "injury"], 4),
                Agency::Gp => ("Encounter", &["encounter"], 6),
                Agency::Midwifery => ("EpisodeOfCare", &["pregnancy-booked"], 2),
                Agency::SchoolNursing => ("Observation", &["ncmp"], 2),
            };
            records.extend((1..=count).map(|n| record(agency, kind, n, tags)));
            records.push(AgencyRecord {
                full_url: format!("http://127.0.0.1:8084/Provenance/{}-p", agency.as_str()),
                resource: json!({"resourceType": "Provenance", "target": [{"reference": format!("{kind}/{}-1", agency.as_str())}]}),
            });
            AgencyAnswer { agency, result: Ok(records), truncated: false }
        })
        .collect()
}

fn median_micros(rounds: usize, mut work: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let config = DisclosureConfig::default();
    let policy = config.policy();
    let base = answers();
    let entries: usize = base
        .iter()
        .map(|a| a.result.as_ref().map_or(0, Vec::len))
        .sum();
    let everything_ms: Option<f64> = std::env::var("EVERYTHING_MEDIAN_MS")
        .ok()
        .and_then(|m| m.parse().ok());
    let today = chrono::Utc::now().date_naive();
    for (label, role, org, whose) in [
        (
            "the area's safeguarding lead, the child's own records",
            Role::SafeguardingProfessional,
            "Q99",
            Whose::Child,
        ),
        (
            "a health visitor, a family member's records",
            Role::HealthVisitor,
            "RX1",
            Whose::Family,
        ),
    ] {
        let requester = Requester {
            practitioner: "bench".into(),
            name: None,
            role,
            organisation: org.into(),
            purpose: Purpose::DirectCare,
        };
        let micros = median_micros(5000, || {
            let answers = base.clone();
            let facts = facts(&config, &answers);
            let relationship = kinfold_consent::relationship(&requester, &facts, today, &policy)
                .unwrap_or(kinfold_consent::Relationship {
                    rule: "relationship.area-pool",
                    basis: String::new(),
                });
            black_box(screen(
                &policy,
                &requester,
                &relationship,
                whose,
                &[],
                answers,
            ));
        });
        // The copy of the answers the loop makes is not part of the decisions: take it away.
        let copy = median_micros(5000, || {
            black_box(base.clone());
        });
        let cost = (micros - copy).max(0.0);
        let share = everything_ms
            .map(|ms| {
                format!(
                    " ({:.2}% of the `$everything` median, {ms} ms)",
                    cost / (ms * 1000.0) * 100.0
                )
            })
            .unwrap_or_default();
        println!(
            "| deciding one `$everything` answer ({entries} records, 5 agencies) for {label}: facts, relationship, every record (median of 5,000) | {cost:.0} µs{share} | under 10% of `$everything` |"
        );
    }
}
