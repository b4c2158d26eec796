//! How well and how fast the person index links: precision and recall against a synthetic
//! population's truth, and matching against an index of a million people.
//!
//!   cargo bench -p kinfold-identity --bench identity            # all
//!   cargo bench -p kinfold-identity --bench identity -- quality # precision and recall only
//!
//! Prints Markdown rows for BENCHMARKS.md (`bash bench/identity.sh` writes them there).
//!
//! The population: people with names drawn from generated pools with a long-tailed frequency
//! (so some surnames are common), dates of birth over 18 years, postcodes in 400 districts;
//! 3% are twins (same date of birth, surname and postcode, different given names). Each person
//! has one to three records at different agencies, and the records carry injected errors:
//! 40% have no NHS number; 8% a one-letter typo in a name; 10% of names with diacritics are
//! written without them (and the other way about); 4% a day/month transposition and 3% a
//! one-digit slip in the date of birth; 4% a changed surname; 10% a changed postcode; 3% a
//! nickname. Records are filed in a random order, as the gateway files events: an exact NHS
//! number or a score over the link threshold joins a person; a score between the thresholds
//! makes a new person and a review pair; otherwise a new person.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use kinfold_fhir::{Agency, NhsNumber};
use kinfold_identity::matching::Prepared;
use kinfold_identity::{
    Identity, PersonId, PersonIndex, RecordKey, Resolution, Thresholds, Weights,
};

const SYLLABLES: [&str; 48] = [
    "ab", "al", "an", "ar", "ba", "be", "bo", "ca", "da", "de", "di", "el", "en", "er", "fa", "ga",
    "ha", "he", "in", "is", "ja", "ka", "ki", "la", "le", "li", "lo", "ma", "me", "mi", "mo", "na",
    "ne", "ni", "no", "or", "pa", "ra", "re", "ri", "ro", "sa", "se", "ta", "te", "to", "va", "za",
];
/// Names written with diacritics, and as they are often written without.
const DIACRITIC: [(&str, &str); 12] = [
    ("Łucja", "Lucja"),
    ("Zoë", "Zoe"),
    ("Šimon", "Simon"),
    ("Jürgen", "Jurgen"),
    ("Renée", "Renee"),
    ("Ólafur", "Olafur"),
    ("Wiśniewska", "Wisniewska"),
    ("Nuñez", "Nunez"),
    ("Çelik", "Celik"),
    ("Øster", "Oster"),
    ("Wójcik", "Wojcik"),
    ("Dvořák", "Dvorak"),
];
const NICKNAMES: [(&str, &str); 6] = [
    ("Elizabeth", "Liz"),
    ("William", "Bill"),
    ("Thomas", "Tom"),
    ("Katherine", "Kate"),
    ("Alexander", "Alex"),
    ("Samuel", "Sam"),
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // SplitMix64: small, fast, and the same sequence on every machine.
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() as f64 / u64::MAX as f64) < p
    }
    /// A rank from 0..n with a long tail (Zipf, exponent 0.7).
    fn zipf(&mut self, cdf: &[f64]) -> usize {
        let x = self.next() as f64 / u64::MAX as f64;
        cdf.partition_point(|&c| c < x).min(cdf.len() - 1)
    }
}

fn zipf_cdf(n: usize) -> Vec<f64> {
    let weights: Vec<f64> = (1..=n).map(|k| (k as f64).powf(-0.7)).collect();
    let total: f64 = weights.iter().sum();
    let mut running = 0.0;
    weights
        .iter()
        .map(|w| {
            running += w / total;
            running
        })
        .collect()
}

fn syllable_name(rank: usize, parts: usize) -> String {
    let mut name = String::new();
    let mut r = rank;
    for _ in 0..parts {
        name.push_str(SYLLABLES[r % SYLLABLES.len()]);
        r /= SYLLABLES.len();
    }
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// NHS numbers with valid check digits (modulus 11), from 600 000 000 on.
fn nhs_number(n: u64) -> NhsNumber {
    let mut stem = 600_000_000 + n * 2;
    loop {
        let digits: Vec<u64> = stem
            .to_string()
            .bytes()
            .map(|b| u64::from(b - b'0'))
            .collect();
        let sum: u64 = digits.iter().zip((2..=10).rev()).map(|(d, w)| d * w).sum();
        let check = match 11 - sum % 11 {
            11 => 0,
            c => c,
        };
        if check != 10 {
            return format!("{stem}{check}")
                .parse()
                .expect("valid by construction");
        }
        stem += 1;
    }
}

#[derive(Clone)]
struct Truth {
    nhs: NhsNumber,
    family: String,
    given: String,
    dob: chrono::NaiveDate,
    sex: &'static str,
    postcode: String,
}

struct Names {
    family: Vec<f64>,
    given: Vec<f64>,
}

fn person(rng: &mut Rng, names: &Names, n: u64) -> Truth {
    let family = if rng.chance(0.02) {
        DIACRITIC[rng.below(DIACRITIC.len())].0.to_owned()
    } else {
        syllable_name(rng.zipf(&names.family), 3)
    };
    let given = if rng.chance(0.03) {
        NICKNAMES[rng.below(NICKNAMES.len())].0.to_owned()
    } else if rng.chance(0.02) {
        DIACRITIC[rng.below(DIACRITIC.len())].0.to_owned()
    } else {
        syllable_name(rng.zipf(&names.given), 2 + rng.below(2))
    };
    let start = chrono::NaiveDate::from_ymd_opt(2008, 1, 1).expect("date");
    Truth {
        nhs: nhs_number(n),
        family,
        given,
        dob: start + chrono::Duration::days(rng.below(18 * 365) as i64),
        sex: if rng.chance(0.5) { "female" } else { "male" },
        postcode: format!(
            "{}{} {}{}",
            ["LS", "NE", "M", "B", "S", "L", "BD", "HU"][rng.below(8)],
            1 + rng.below(50),
            rng.below(10),
            ["AB", "QT", "ZX", "PL", "DE", "RW"][rng.below(6)]
        ),
    }
}

fn typo(rng: &mut Rng, name: &str) -> String {
    let mut chars: Vec<char> = name.chars().collect();
    if chars.len() < 3 {
        return name.to_owned();
    }
    let at = 1 + rng.below(chars.len() - 1);
    chars[at] = (b'a' + rng.below(26) as u8) as char;
    chars.into_iter().collect()
}

fn swap_diacritics(name: &str) -> String {
    DIACRITIC
        .iter()
        .find_map(|(with, without)| {
            if name == *with {
                Some((*without).to_owned())
            } else if name == *without {
                Some((*with).to_owned())
            } else {
                None
            }
        })
        .unwrap_or_else(|| name.to_owned())
}

/// One agency's record of a person, with errors.
fn record(rng: &mut Rng, truth: &Truth) -> Identity {
    let mut family = truth.family.clone();
    let mut given = truth.given.clone();
    let mut dob = truth.dob;
    let mut postcode = truth.postcode.clone();
    if rng.chance(0.04) {
        family = syllable_name(rng.below(5000), 3);
    }
    if rng.chance(0.1) {
        family = swap_diacritics(&family);
        given = swap_diacritics(&given);
    }
    if rng.chance(0.08) {
        if rng.chance(0.5) {
            family = typo(rng, &family)
        } else {
            given = typo(rng, &given)
        }
    }
    if rng.chance(0.03)
        && let Some((_, short)) = NICKNAMES.iter().find(|(full, _)| *full == given)
    {
        given = (*short).to_owned();
    }
    use chrono::Datelike;
    if rng.chance(0.04) && dob.day() <= 12 && dob.day() != dob.month() {
        dob = chrono::NaiveDate::from_ymd_opt(dob.year(), dob.day(), dob.month()).unwrap_or(dob);
    } else if rng.chance(0.03) {
        dob = dob.with_day(((dob.day() + 1) % 28).max(1)).unwrap_or(dob);
    }
    if rng.chance(0.1) {
        postcode = format!("LS{} {}QT", 51 + rng.below(40), rng.below(10));
    }
    Identity {
        nhs_number: (!rng.chance(0.4)).then(|| truth.nhs.clone()),
        family: Some(family),
        given: vec![given],
        birth_date: Some(dob.to_string()),
        gender: Some(truth.sex.to_owned()),
        postcode: Some(postcode),
        ..Identity::default()
    }
}

struct Population {
    records: Vec<(usize, Identity)>,
    twins: Vec<(usize, usize)>,
}

fn population(people: usize, seed: u64) -> Population {
    let mut rng = Rng(seed);
    let names = Names {
        family: zipf_cdf(3000),
        given: zipf_cdf(1500),
    };
    let mut truths: Vec<Truth> = Vec::with_capacity(people);
    let mut twins = Vec::new();
    while truths.len() < people {
        let n = truths.len();
        let truth = person(&mut rng, &names, n as u64);
        if rng.chance(0.03) && truths.len() + 1 < people {
            let mut twin = person(&mut rng, &names, n as u64 + 1);
            twin.family = truth.family.clone();
            twin.dob = truth.dob;
            twin.postcode = truth.postcode.clone();
            if twin.given == truth.given {
                twin.given = format!("{}a", twin.given);
            }
            twins.push((n, n + 1));
            truths.push(truth);
            truths.push(twin);
        } else {
            truths.push(truth);
        }
    }
    let mut records = Vec::new();
    for (n, truth) in truths.iter().enumerate() {
        for _ in 0..1 + rng.below(3) {
            records.push((n, record(&mut rng, truth)));
        }
    }
    // Filed in a random order.
    for i in (1..records.len()).rev() {
        let j = rng.below(i + 1);
        records.swap(i, j);
    }
    Population { records, twins }
}

struct Filed {
    /// For each record, the person it was filed under.
    person: Vec<u64>,
    reviewed: usize,
}

/// Files every record as the gateway files events.
fn file_all(records: &[(usize, Identity)], weights: Weights) -> Filed {
    // Each of a person's records is at a different agency, as in life.
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let agency: Vec<usize> = records
        .iter()
        .map(|(truth, _)| {
            let k = seen.entry(*truth).or_default();
            *k += 1;
            *k - 1
        })
        .collect();
    let debug = std::env::var_os("KINFOLD_BENCH_DEBUG").is_some();
    let mut index = PersonIndex::new(weights, Thresholds::default());
    let mut people = 0u64;
    let mut reviewed = 0;
    let mut person = Vec::with_capacity(records.len());
    for (n, (_, identity)) in records.iter().enumerate() {
        let key = RecordKey {
            agency: Agency::ALL[agency[n]],
            reference: format!("Patient/{n}"),
        };
        let who = match index.resolve(&key, identity) {
            Resolution::Known(p) | Resolution::Exact { person: p, .. } => p,
            Resolution::Linked(c) => c.person,
            Resolution::Review(candidates) => {
                if debug && reviewed < 40 {
                    let c = &candidates[0];
                    eprintln!(
                        "review {:?} vs {:?}: {:.1} {:?} {:?}",
                        identity,
                        c.record,
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
        person.push(who.as_str()[1..].parse().expect("number"));
        index.insert(key, who, identity);
    }
    Filed { person, reviewed }
}

fn pairs(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

fn quality(people: usize) {
    let population = population(people, 0x4b69_6e66);
    for (label, weights) in [
        ("prior weights", Weights::default()),
        (
            "weights estimated from the records",
            Weights::estimate(
                &population
                    .records
                    .iter()
                    .map(|(_, i)| Prepared::new(i))
                    .collect::<Vec<_>>(),
            ),
        ),
    ] {
        let started = Instant::now();
        let filed = file_all(&population.records, weights.clone());
        let took = started.elapsed();
        let mut cells: HashMap<(u64, usize), u64> = HashMap::new();
        let mut predicted: HashMap<u64, u64> = HashMap::new();
        let mut truth: HashMap<usize, u64> = HashMap::new();
        for ((true_person, _), filed_as) in population.records.iter().zip(&filed.person) {
            *cells.entry((*filed_as, *true_person)).or_default() += 1;
            *predicted.entry(*filed_as).or_default() += 1;
            *truth.entry(*true_person).or_default() += 1;
        }
        let together: u64 = cells.values().map(|&n| pairs(n)).sum();
        let linked: u64 = predicted.values().map(|&n| pairs(n)).sum();
        let should: u64 = truth.values().map(|&n| pairs(n)).sum();
        let precision = together as f64 / linked.max(1) as f64;
        let recall = together as f64 / should.max(1) as f64;
        // Twins merged: a person holding records of both twins.
        let mut holders: HashMap<usize, Vec<u64>> = HashMap::new();
        for ((true_person, _), filed_as) in population.records.iter().zip(&filed.person) {
            holders.entry(*true_person).or_default().push(*filed_as);
        }
        if std::env::var_os("KINFOLD_BENCH_MISSED").is_some() {
            let mut shown = 0;
            let mut by_truth: HashMap<usize, Vec<usize>> = HashMap::new();
            for (n, (truth, _)) in population.records.iter().enumerate() {
                by_truth.entry(*truth).or_default().push(n);
            }
            for records in by_truth.values().filter(|r| r.len() == 2) {
                let (a, b) = (records[0], records[1]);
                if filed.person[a] != filed.person[b] && shown < 40 {
                    shown += 1;
                    let c = kinfold_identity::Comparison::of(
                        &weights,
                        &Prepared::new(&population.records[a].1),
                        &Prepared::new(&population.records[b].1),
                    );
                    eprintln!(
                        "missed {:.1} {:?} {:?}\n  {:?}\n  {:?}",
                        c.score,
                        c.hold(),
                        c.fields
                            .iter()
                            .map(|f| format!("{:?}={:?}", f.field, f.level))
                            .collect::<Vec<_>>(),
                        population.records[a].1,
                        population.records[b].1
                    );
                }
            }
        }
        let merged = population
            .twins
            .iter()
            .filter(|(a, b)| holders[a].iter().any(|p| holders[b].contains(p)))
            .count();
        println!(
            "| automatic links, {label}: {} people, {} records, {} twin pairs | precision {precision:.4}, recall {recall:.4}; {:.1}% of records to review; twins merged: {merged}; {:.1} s | precision ≥ 0.995, recall ≥ 0.95, twins never merged |",
            people,
            population.records.len(),
            population.twins.len(),
            100.0 * filed.reviewed as f64 / population.records.len() as f64,
            took.as_secs_f64(),
        );
    }
}

fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn scale(people: usize) {
    let mut rng = Rng(0x1d);
    let names = Names {
        family: zipf_cdf(3000),
        given: zipf_cdf(1500),
    };
    let truths: Vec<Truth> = (0..people)
        .map(|n| person(&mut rng, &names, n as u64))
        .collect();
    let mut index = PersonIndex::default();
    let started = Instant::now();
    let mut reviewed = 0;
    for (n, truth) in truths.iter().enumerate() {
        let identity = record(&mut rng, truth);
        let key = RecordKey {
            agency: Agency::Gp,
            reference: format!("Patient/{n}"),
        };
        let who = match index.resolve(&key, &identity) {
            Resolution::Exact { person, .. } | Resolution::Known(person) => person,
            Resolution::Linked(c) => c.person,
            Resolution::Review(_) => {
                reviewed += 1;
                PersonId::try_from(format!("p{n}")).expect("id")
            }
            Resolution::New => PersonId::try_from(format!("p{n}")).expect("id"),
        };
        index.insert(key, who, &identity);
    }
    let bulk = started.elapsed();
    // Queries: another agency's record of 1,000 of those people, without NHS numbers.
    let mut times = Vec::new();
    for q in 0..1000 {
        let truth = &truths[rng.below(truths.len())];
        let mut identity = record(&mut rng, truth);
        identity.nhs_number = None;
        let key = RecordKey {
            agency: Agency::SchoolNursing,
            reference: format!("Patient/q{q}"),
        };
        let started = Instant::now();
        black_box(index.resolve(&key, &identity));
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "| one identity (no NHS number) matched against an index of {people} people (1,000 queries) | median {:.3} ms, p99 {:.3} ms | ≤ 5 ms median |",
        times[times.len() / 2],
        times[times.len() * 99 / 100],
    );
    println!(
        "| bulk linking of {people} records into an empty index (resolve then file each, one thread; {reviewed} to review) | {:.0} s ({:.2} million records a minute); resident memory {:.0} MiB | report (Splink: about a million a minute) |",
        bulk.as_secs_f64(),
        people as f64 / bulk.as_secs_f64() * 60.0 / 1e6,
        resident_mib(),
    );
}

fn main() {
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if only.as_deref().is_none_or(|o| o == "quality") {
        quality(20_000);
    }
    if only.as_deref().is_none_or(|o| o == "scale") {
        // KINFOLD_BENCH_PEOPLE sets a smaller index for a quick look.
        let people = std::env::var("KINFOLD_BENCH_PEOPLE")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1_000_000);
        scale(people);
    }
}
