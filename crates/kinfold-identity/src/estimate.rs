//! Estimating the weights from the index's own records.
//!
//! * Name frequencies: each family and given name's share of the records, for term-frequency
//!   weights (an exact rare name weighs more than an exact common one).
//! * `u`, how often two different people agree at each level: from random pairs of records
//!   (almost all of them two different people), with the priors as a light hand.
//! * `m`, how often one person's two records agree at each level: by expectation–maximisation
//!   over the pairs blocking brings together (which hold most true matches), starting from
//!   the priors. Pairs sharing a valid NHS number are known matches and pairs with two
//!   different valid NHS numbers known non-matches; the rest are weighed by how likely each is
//!   a match under the current `m`, until `m` settles.

use std::collections::{HashMap, HashSet};

use crate::blocking::keyed_blocks;
use crate::matching::{Field, LEVELS, MIN_RECORDS_TO_ESTIMATE, Prepared, Weights, compare_fields};

/// How many random pairs estimate `u`.
const RANDOM_PAIRS: usize = 300_000;
/// How many pairs' worth of weight the priors keep in `u`.
const U_PRIOR_PAIRS: f64 = 200.0;
/// How many pairs' worth of weight the priors keep in `m`.
const M_PRIOR_PAIRS: f64 = 200.0;
/// Blocks larger than this are left out of the estimate (their pairs are mostly strangers).
const MAX_ESTIMATE_BLOCK: usize = 100;
/// At most this many blocked pairs are read.
const MAX_PAIRS: usize = 1_000_000;
/// Rounds of expectation–maximisation.
const ROUNDS: usize = 40;
/// Fewer expected matches among the blocked pairs than this, and `m` keeps its priors: the
/// records are mostly one agency's, whose own index has already told its people apart, and
/// there is nothing to learn `m` from.
const MIN_MATCHES: f64 = 100.0;

/// A pair's agreement, field by field: the level's slot, or 4 for missing.
type Pattern = [u8; 5];

fn pattern(a: &Prepared, b: &Prepared) -> Pattern {
    let mut out = [4u8; 5];
    for (field, level) in compare_fields(a, b) {
        out[field.slot()] = level.slot().map_or(4, |s| s as u8);
    }
    out
}

/// What is known about a pair before estimating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Known {
    Match,
    NonMatch,
    Unknown,
}

/// Whether the weights are due to be estimated again: the index holds at least
/// [`MIN_RECORDS_TO_ESTIMATE`] records and has grown by a quarter (and at least 500 records)
/// since the last estimate, from `estimated_from` records. A first load of one agency's
/// records teaches nothing about matches; the estimate after the next agency's records have
/// started to arrive does.
pub fn estimate_due(records: usize, estimated_from: usize) -> bool {
    records >= MIN_RECORDS_TO_ESTIMATE && records >= estimated_from + (estimated_from / 4).max(500)
}

impl Weights {
    /// Weights estimated from a set of records (see the module documentation); the priors
    /// when there are fewer than [`MIN_RECORDS_TO_ESTIMATE`].
    pub fn estimate(records: &[Prepared]) -> Self {
        let prior = Self::default();
        if records.len() < MIN_RECORDS_TO_ESTIMATE {
            return prior;
        }
        let mut weights = prior.clone();
        weights.family_frequency = shares(records.iter().filter_map(|r| r.family.as_deref()));
        weights.given_frequency = shares(records.iter().filter_map(|r| r.given.as_deref()));
        weights.least_frequency = 1.0 / records.len() as f64;
        weights.u = estimate_u(records, &prior);
        weights.m = estimate_m(records, &prior, &weights.u);
        weights
    }
}

/// Each value's share of all values.
fn shares<'a>(values: impl Iterator<Item = &'a str>) -> HashMap<String, f64> {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    let mut total = 0u64;
    for value in values {
        *counts.entry(value).or_default() += 1;
        total += 1;
    }
    counts
        .into_iter()
        .map(|(value, count)| (value.to_owned(), count as f64 / total.max(1) as f64))
        .collect()
}

/// A small deterministic generator (SplitMix64): the same records give the same weights.
struct SplitMix(u64);

impl SplitMix {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z % n as u64) as usize
    }
}

fn estimate_u(records: &[Prepared], prior: &Weights) -> [[f64; 4]; 5] {
    let mut counts = [[0.0f64; 4]; 5];
    let mut rng = SplitMix(0x004b_696e_666f_6c64);
    let n = records.len();
    let samples = RANDOM_PAIRS.min(n * (n - 1) / 2);
    for _ in 0..samples {
        let (i, j) = (rng.below(n), rng.below(n));
        if i == j {
            continue;
        }
        for (field, slot) in pattern(&records[i], &records[j]).iter().enumerate() {
            if let Some(count) = counts[field].get_mut(usize::from(*slot)) {
                *count += 1.0;
            }
        }
    }
    blend(&counts, &prior.u, U_PRIOR_PAIRS)
}

/// Counts at each level, blended with the prior's shares as `weight` pairs' worth.
fn blend(counts: &[[f64; 4]; 5], prior: &[[f64; 4]; 5], weight: f64) -> [[f64; 4]; 5] {
    let mut out = *prior;
    for (field, row) in counts.iter().enumerate() {
        let seen: f64 = row.iter().sum();
        for level in 0..LEVELS.len() {
            out[field][level] = (row[level] + weight * prior[field][level]) / (seen + weight);
        }
    }
    out
}

/// Pairs folded into how many share each pattern, with what is known of them.
type Patterns = HashMap<(Pattern, Known), f64>;

/// One session's pairs: those already read, and their patterns.
type Session = (HashSet<(usize, usize)>, Patterns);

fn known(a: &Prepared, b: &Prepared) -> Known {
    match (&a.nhs, &b.nhs) {
        (Some(x), Some(y)) if x == y => Known::Match,
        (Some(_), Some(_)) => Known::NonMatch,
        _ => Known::Unknown,
    }
}

/// `m` by expectation–maximisation, one session per kind of blocking key: a session's pairs
/// agree on the fields its key holds fixed by construction, so those fields are left out of
/// it, and each field's `m` comes from the sessions that did not fix it (weighted by how many
/// matches each found). Records sharing an NHS number count as matches in a session of their
/// own.
fn estimate_m(records: &[Prepared], prior: &Weights, u: &[[f64; 4]; 5]) -> [[f64; 4]; 5] {
    let mut blocks: HashMap<(&'static [Field], u64), Vec<usize>> = HashMap::new();
    for (n, record) in records.iter().enumerate() {
        for key in keyed_blocks(record) {
            blocks.entry(key).or_default().push(n);
        }
    }
    let mut sessions: HashMap<&'static [Field], Session> = HashMap::new();
    for ((fixed, _), members) in blocks.iter().filter(|(_, m)| m.len() <= MAX_ESTIMATE_BLOCK) {
        let (seen, patterns) = sessions.entry(fixed).or_default();
        for (n, &i) in members.iter().enumerate() {
            for &j in &members[n + 1..] {
                if seen.len() >= MAX_PAIRS || !seen.insert((i.min(j), i.max(j))) {
                    continue;
                }
                let (a, b) = (&records[i], &records[j]);
                *patterns.entry((pattern(a, b), known(a, b))).or_default() += 1.0;
            }
        }
    }
    // The records sharing an NHS number: known matches, nothing fixed.
    let mut by_nhs: HashMap<&str, Vec<usize>> = HashMap::new();
    for (n, record) in records.iter().enumerate() {
        if let Some(nhs) = &record.nhs {
            by_nhs.entry(nhs.as_str()).or_default().push(n);
        }
    }
    let mut shared: Patterns = HashMap::new();
    for group in by_nhs.values().filter(|g| g.len() > 1) {
        for (n, &i) in group.iter().enumerate() {
            for &j in &group[n + 1..] {
                *shared
                    .entry((pattern(&records[i], &records[j]), Known::Match))
                    .or_default() += 1.0;
            }
        }
    }

    // Each field's counts at each level, summed over the sessions that may speak for it.
    let mut counts = [[0.0f64; 4]; 5];
    let mut runs: Vec<(&[Field], Patterns)> = sessions
        .into_iter()
        .map(|(fixed, (_, patterns))| (fixed, patterns))
        .collect();
    runs.push((&[], shared));
    for (fixed, patterns) in &runs {
        let Some(session) = em_session(patterns, fixed, prior, u) else {
            continue;
        };
        for field in Field::ALL.into_iter().filter(|f| !fixed.contains(f)) {
            for (total, found) in counts[field.slot()].iter_mut().zip(session[field.slot()]) {
                *total += found;
            }
        }
    }
    let mut m = blend(&counts, &prior.m, M_PRIOR_PAIRS);
    // A field that cannot take a level (sex is never "close") keeps m = 0 there.
    for (row, prior_row) in m.iter_mut().zip(&prior.m) {
        for (cell, prior_cell) in row.iter_mut().zip(prior_row) {
            if *prior_cell == 0.0 {
                *cell = 0.0;
            }
        }
    }
    m
}

/// One session of expectation–maximisation: the expected number of matching pairs at each
/// level of each field (the fixed fields left out), or `None` when the session found too few
/// matches to say anything.
fn em_session(
    patterns: &Patterns,
    fixed: &[Field],
    prior: &Weights,
    u: &[[f64; 4]; 5],
) -> Option<[[f64; 4]; 5]> {
    let free: Vec<usize> = Field::ALL
        .into_iter()
        .filter(|f| !fixed.contains(f))
        .map(Field::slot)
        .collect();
    let mut m = prior.m;
    let mut lambda = 0.1f64;
    let mut counts = [[0.0f64; 4]; 5];
    let mut matches = 0.0;
    for _ in 0..ROUNDS {
        counts = [[0.0f64; 4]; 5];
        matches = 0.0;
        let (mut unknown, mut unknown_matches) = (0.0, 0.0);
        for ((pattern, known), &count) in patterns {
            let p = match known {
                Known::Match => 1.0,
                Known::NonMatch => 0.0,
                Known::Unknown => {
                    let (mut pm, mut pu) = (lambda, 1.0 - lambda);
                    for &field in &free {
                        let slot = usize::from(pattern[field]);
                        if slot < LEVELS.len() {
                            pm *= m[field][slot].max(1e-9);
                            pu *= u[field][slot].max(1e-9);
                        }
                    }
                    let p = pm / (pm + pu);
                    unknown += count;
                    unknown_matches += count * p;
                    p
                }
            };
            matches += count * p;
            for &field in &free {
                if let Some(cell) = counts[field].get_mut(usize::from(pattern[field])) {
                    *cell += count * p;
                }
            }
        }
        if unknown > 0.0 {
            lambda = (unknown_matches / unknown).clamp(1e-6, 0.999);
        }
        let next = blend(&counts, &prior.m, M_PRIOR_PAIRS);
        for &field in &free {
            m[field] = next[field];
        }
    }
    (matches >= MIN_MATCHES).then_some(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::{Identity, Level};

    fn identity(family: &str, given: &str, dob: &str, postcode: &str) -> Identity {
        Identity {
            family: Some(family.into()),
            given: vec![given.into()],
            birth_date: Some(dob.into()),
            postcode: Some(postcode.into()),
            ..Identity::default()
        }
    }

    #[test]
    fn estimates_are_due_as_the_index_grows_by_a_quarter() {
        assert!(!estimate_due(999, 0));
        assert!(estimate_due(1000, 0));
        assert!(!estimate_due(1400, 1000));
        assert!(estimate_due(1500, 1000));
        assert!(!estimate_due(12_000, 10_000));
        assert!(estimate_due(12_500, 10_000));
    }

    #[test]
    fn m_is_learned_without_nhs_numbers_from_the_pairs_blocking_finds() {
        // 800 people, each held by two agencies, no NHS numbers: every fifth second record
        // has moved house, every tenth has a date of birth one digit off. Names are made of
        // two syllable tables, so strangers share family names, given names and districts.
        let syllables = ["ka", "lo", "mi", "ra", "te", "zu", "no", "be"];
        let mut records = Vec::new();
        for n in 0..800usize {
            let family = format!(
                "{}{}{}",
                syllables[n % 8],
                syllables[(n / 8) % 8],
                syllables[(n / 64) % 8]
            );
            let given = format!("{}{}", syllables[(n * 7) % 8], syllables[(n * 3 / 8) % 8]);
            let dob = format!(
                "20{:02}-{:02}-{:02}",
                10 + n % 15,
                1 + n % 12,
                1 + (n * 13) % 28
            );
            let postcode = format!("LS{} {}AB", 1 + n % 20, n % 10);
            let a = identity(&family, &given, &dob, &postcode);
            let mut b = a.clone();
            if n % 5 == 0 {
                b.postcode = Some(format!("M{} 1QT", 1 + n % 30));
            }
            if n % 10 == 1 {
                let day = 1 + (n * 13) % 28;
                b.birth_date = Some(format!(
                    "20{:02}-{:02}-{:02}",
                    10 + n % 15,
                    1 + n % 12,
                    if day == 1 { 2 } else { day - 1 }
                ));
            }
            records.push(Prepared::new(&a));
            records.push(Prepared::new(&b));
        }
        let estimated = Weights::estimate(&records);
        let m = |field: Field, level: Level| estimated.m[field.slot()][level.slot().expect("slot")];
        // A fifth moved: the true m of a differing address is 0.2 (the prior says 0.12).
        let moved = m(Field::Address, Level::Differs);
        assert!((0.15..0.26).contains(&moved), "{moved}");
        // Nine in ten dates of birth agree exactly (the prior says 0.94; a stranger's almost
        // never does).
        let same_day = m(Field::BirthDate, Level::Exact);
        assert!((0.82..0.95).contains(&same_day), "{same_day}");
        assert!(estimated.weight(Field::BirthDate, Level::Exact) > 8.0);
    }
}
