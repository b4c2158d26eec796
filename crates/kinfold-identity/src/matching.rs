//! Comparing two identities and scoring the comparison (Fellegi–Sunter).
//!
//! Each field agrees at one of three levels (exact, close, differs) or is missing on one side.
//! A level's weight is `log2(m / u)`: `m` is how often the level is seen when two records are
//! the same person, `u` how often when they are not. A missing field weighs nothing. The
//! score is the sum; [`Thresholds`] turn it into link, review or a new person.
//!
//! The weights start from published-style priors ([`Weights::default`]) and are estimated
//! from the index's own records once it holds enough of them ([`Weights::estimate`]): `u` from
//! how often two random records share each value (the sum of squared value frequencies), `m`
//! from the records that share a valid NHS number, which are known to be one person.

use std::collections::HashMap;

use kinfold_fhir::NhsNumber;
use serde::Serialize;

use crate::normalise::{self, BirthDate, Postcode, Sex};

/// One agency's view of a person, as its record gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The NHS number, only if it passes its check digit.
    pub nhs_number: Option<NhsNumber>,
    /// Family name as written.
    pub family: Option<String>,
    /// Given names as written.
    pub given: Vec<String>,
    /// Date of birth, `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    /// FHIR administrative gender.
    pub gender: Option<String>,
    /// Postcode as written.
    pub postcode: Option<String>,
}

/// An identity folded once for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub(crate) nhs: Option<NhsNumber>,
    pub(crate) family: Option<String>,
    pub(crate) family_parts: Vec<String>,
    /// The first given name as the name it stands for (nicknames mapped).
    pub(crate) given: Option<String>,
    pub(crate) dob: Option<BirthDate>,
    pub(crate) sex: Option<Sex>,
    pub(crate) postcode: Option<Postcode>,
}

impl Prepared {
    /// Folds an identity.
    pub fn new(identity: &Identity) -> Self {
        let family = identity
            .family
            .as_deref()
            .map(normalise::fold)
            .filter(|f| !f.is_empty());
        let given = (!normalise::is_placeholder(&identity.given))
            .then(|| identity.given.first().map(|g| normalise::fold(g)))
            .flatten()
            .filter(|g| !g.is_empty())
            .map(|g| normalise::given_key(&g).to_owned());
        Self {
            nhs: identity.nhs_number.clone(),
            family_parts: identity
                .family
                .as_deref()
                .map(normalise::parts)
                .unwrap_or_default(),
            family,
            given,
            dob: identity.birth_date.as_deref().and_then(BirthDate::parse),
            sex: identity.gender.as_deref().and_then(Sex::parse),
            postcode: identity.postcode.as_deref().and_then(Postcode::parse),
        }
    }

    /// The valid NHS number, if any.
    pub fn nhs_number(&self) -> Option<&NhsNumber> {
        self.nhs.as_ref()
    }
}

/// A compared field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Field {
    /// Family name.
    FamilyName,
    /// First given name.
    GivenName,
    /// Date of birth.
    BirthDate,
    /// Administrative sex.
    Sex,
    /// Postcode.
    Postcode,
}

impl Field {
    /// Every scored field, in the order comparisons list them.
    pub const ALL: [Field; 5] = [
        Field::FamilyName,
        Field::GivenName,
        Field::BirthDate,
        Field::Sex,
        Field::Postcode,
    ];

    fn slot(self) -> usize {
        self as usize
    }
}

/// How far two values of a field agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// The same once folded (a nickname and its name are the same given name).
    Exact,
    /// Nearly: a typo (Jaro–Winkler ≥ 0.9, or one letter wrong in a name of five letters or
    /// more), one part of a double-barrelled name, a day/month
    /// transposition or one-digit slip in a date, the same postal district.
    Close,
    /// Different.
    Differs,
    /// Absent on one side or both (a baby's placeholder name counts as absent).
    Missing,
}

impl Level {
    fn slot(self) -> Option<usize> {
        match self {
            Level::Exact => Some(0),
            Level::Close => Some(1),
            Level::Differs => Some(2),
            Level::Missing => None,
        }
    }
}

/// `m` and `u` for each field at each level (exact, close, differs).
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    m: [[f64; 3]; 5],
    u: [[f64; 3]; 5],
}

impl Default for Weights {
    /// Priors for an English child-health population of some hundreds of thousands: a date of
    /// birth shared by chance about once in 6,500 pairs, a full postcode once in 2,000, a
    /// family or given name once in 100; among true matches surnames change (4%) and families
    /// move (12%) more often than dates of birth are mistyped (5%).
    fn default() -> Self {
        Self {
            m: [
                [0.90, 0.06, 0.04],
                [0.92, 0.06, 0.02],
                [0.95, 0.04, 0.01],
                [0.98, 0.0, 0.02],
                [0.80, 0.08, 0.12],
            ],
            u: [
                [0.01, 0.01, 0.98],
                [0.01, 0.02, 0.97],
                [0.00015, 0.001, 0.99885],
                [0.5, 0.0, 0.5],
                [0.0005, 0.01, 0.9895],
            ],
        }
    }
}

/// Below this many records the priors are kept: a small index says more about its size than
/// about how names and dates are shared in the population.
pub const MIN_RECORDS_TO_ESTIMATE: usize = 1000;
/// How many pairs' worth of weight the priors keep when `m` is estimated.
const PRIOR_PAIRS: f64 = 20.0;

impl Weights {
    /// The weight of a field at a level: `log2(m / u)`, 0 when missing.
    pub fn weight(&self, field: Field, level: Level) -> f64 {
        match level.slot() {
            None => 0.0,
            Some(l) => {
                let (m, u) = (self.m[field.slot()][l], self.u[field.slot()][l]);
                if m <= 0.0 || u <= 0.0 {
                    0.0
                } else {
                    (m / u).log2()
                }
            }
        }
    }

    /// Weights estimated from a set of records (see the module documentation); the priors
    /// when there are fewer than [`MIN_RECORDS_TO_ESTIMATE`].
    pub fn estimate(records: &[Prepared]) -> Self {
        let mut weights = Self::default();
        if records.len() < MIN_RECORDS_TO_ESTIMATE {
            return weights;
        }
        // u: the chance that two random records agree exactly is the sum of squared value
        // frequencies; closeness keeps its prior.
        let exact = [
            agreement(records.iter().map(|r| r.family.clone())),
            agreement(records.iter().map(|r| r.given.clone())),
            agreement(records.iter().map(|r| r.dob.map(|d| d.0))),
            agreement(records.iter().map(|r| r.sex)),
            agreement(
                records
                    .iter()
                    .map(|r| r.postcode.as_ref().map(|p| p.full.clone())),
            ),
        ];
        for (slot, share) in exact.into_iter().enumerate() {
            if let Some(share) = share {
                let close = weights.u[slot][1];
                weights.u[slot][0] = share.max(1e-7);
                weights.u[slot][2] = (1.0 - share - close).max(1e-7);
            }
        }
        // m: records sharing a valid NHS number are one person.
        let mut by_nhs: HashMap<&str, Vec<&Prepared>> = HashMap::new();
        for record in records {
            if let Some(nhs) = &record.nhs {
                by_nhs.entry(nhs.as_str()).or_default().push(record);
            }
        }
        let mut counts = [[0.0f64; 3]; 5];
        for group in by_nhs.values().filter(|g| g.len() > 1) {
            for (n, a) in group.iter().enumerate() {
                for b in &group[n + 1..] {
                    for (field, level) in compare_fields(a, b) {
                        if let Some(l) = level.slot() {
                            counts[field.slot()][l] += 1.0;
                        }
                    }
                }
            }
        }
        for (slot, count) in counts.iter().enumerate() {
            let seen: f64 = count.iter().sum();
            for (m, seen_at_level) in weights.m[slot].iter_mut().zip(count) {
                *m = (seen_at_level + PRIOR_PAIRS * *m) / (seen + PRIOR_PAIRS);
            }
        }
        weights
    }
}

/// The chance that two records drawn at random share a value, among records that have one.
fn agreement<T: std::hash::Hash + Eq>(values: impl Iterator<Item = Option<T>>) -> Option<f64> {
    let mut counts: HashMap<T, u64> = HashMap::new();
    let mut total = 0u64;
    for value in values.flatten() {
        *counts.entry(value).or_default() += 1;
        total += 1;
    }
    if total < 2 {
        return None;
    }
    let total = total as f64;
    Some(counts.values().map(|&c| (c as f64 / total).powi(2)).sum())
}

/// The two thresholds, in the same units as the score (bits).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    /// At or above: one person, linked automatically.
    pub link: f64,
    /// At or above (and below `link`): a pair for a person to review.
    pub review: f64,
}

impl Default for Thresholds {
    /// With the prior weights, every field agreeing scores about 37. A name and date of birth
    /// with the postcode and sex scores well above 18; a surname changed after a move, or a
    /// date and name both slipped, falls between 10 and 18 and is reviewed; siblings and
    /// parents sharing an address score about 5.
    fn default() -> Self {
        Self {
            link: 18.0,
            review: 10.0,
        }
    }
}

/// One field of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FieldComparison {
    /// Which field.
    pub field: Field,
    /// How far the values agree.
    pub level: Level,
    /// What that added to the score.
    pub weight: f64,
}

/// Two identities compared: each field, the score, and whether a person must decide.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Each scored field.
    pub fields: Vec<FieldComparison>,
    /// The sum of the weights.
    pub score: f64,
    /// Both hold a valid NHS number and the numbers differ: never one person by score.
    pub nhs_numbers_differ: bool,
}

/// Why a comparison above the link threshold still may not link by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hold {
    /// Both have given names and they differ: twins share everything else.
    GivenNamesDiffer,
    /// Both hold valid NHS numbers and they differ.
    NhsNumbersDiffer,
    /// A child's dates of birth differ by more than a keying error (a transposed day and
    /// month, or one digit): another child, however alike the names.
    ChildBirthDatesDiffer,
    /// The person already holds another record of the same agency, whose own index has
    /// already told them apart.
    SameAgency,
    /// Another person scores as high.
    Ambiguous,
}

impl Comparison {
    /// Compares two folded identities.
    pub fn of(weights: &Weights, a: &Prepared, b: &Prepared) -> Self {
        let fields: Vec<FieldComparison> = compare_fields(a, b)
            .into_iter()
            .map(|(field, level)| FieldComparison {
                field,
                level,
                weight: weights.weight(field, level),
            })
            .collect();
        Self {
            score: fields.iter().map(|f| f.weight).sum(),
            fields,
            nhs_numbers_differ: matches!((&a.nhs, &b.nhs), (Some(x), Some(y)) if x != y),
        }
    }

    /// Only the score of two folded identities (no allocation): for sifting candidates.
    pub fn score(weights: &Weights, a: &Prepared, b: &Prepared) -> f64 {
        compare_fields(a, b)
            .into_iter()
            .map(|(field, level)| weights.weight(field, level))
            .sum()
    }

    /// The level a field agreed at.
    pub fn level(&self, field: Field) -> Level {
        self.fields
            .iter()
            .find(|f| f.field == field)
            .map_or(Level::Missing, |f| f.level)
    }

    /// What keeps this comparison from linking by itself, whatever its score.
    pub fn hold(&self) -> Option<Hold> {
        if self.nhs_numbers_differ {
            Some(Hold::NhsNumbersDiffer)
        } else if self.level(Field::GivenName) == Level::Differs {
            Some(Hold::GivenNamesDiffer)
        } else {
            None
        }
    }
}

fn compare_fields(a: &Prepared, b: &Prepared) -> [(Field, Level); 5] {
    let (family_level, given_level) =
        match (family(a, b), given(a.given.as_deref(), b.given.as_deref())) {
            // Given and family name written the other way round ("Kowalski Jan"): each name is
            // there, in the wrong box; both count as close.
            (Level::Differs, Level::Differs) if swapped(a, b) => (Level::Close, Level::Close),
            levels => levels,
        };
    [
        (Field::FamilyName, family_level),
        (Field::GivenName, given_level),
        (Field::BirthDate, birth_date(a.dob, b.dob)),
        (
            Field::Sex,
            both(a.sex, b.sex, |x, y| {
                if x == y { Level::Exact } else { Level::Differs }
            }),
        ),
        (
            Field::Postcode,
            postcode(a.postcode.as_ref(), b.postcode.as_ref()),
        ),
    ]
}

fn both<T>(a: Option<T>, b: Option<T>, compare: impl FnOnce(T, T) -> Level) -> Level {
    match (a, b) {
        (Some(a), Some(b)) => compare(a, b),
        _ => Level::Missing,
    }
}

/// Nearly the same name: Jaro–Winkler at least 0.9, or (for names of four letters or more)
/// one letter typed wrong, left out, added or swapped with its neighbour ("Mary", "Mory").
fn similar(a: &str, b: &str) -> bool {
    strsim::jaro_winkler(a, b) >= 0.9
        || (a.len().min(b.len()) >= 4
            && a.len().abs_diff(b.len()) <= 1
            && strsim::osa_distance(a, b) <= 1)
}

/// Whether one record's family name is the other's given name and the other way round (each
/// the same or close).
fn swapped(a: &Prepared, b: &Prepared) -> bool {
    let close = |x: Option<&str>, y: Option<&str>| match (x, y) {
        (Some(x), Some(y)) => x == y || similar(x, y),
        _ => false,
    };
    // The given name is kept as the name a nickname stands for; compare the folded family
    // name with it as it is.
    close(a.family.as_deref(), b.given.as_deref()) && close(a.given.as_deref(), b.family.as_deref())
}

fn family(a: &Prepared, b: &Prepared) -> Level {
    both(a.family.as_deref(), b.family.as_deref(), |x, y| {
        if x == y {
            Level::Exact
        } else if similar(x, y) || a.family_parts.iter().any(|p| b.family_parts.contains(p)) {
            Level::Close
        } else {
            Level::Differs
        }
    })
}

fn given(a: Option<&str>, b: Option<&str>) -> Level {
    both(a, b, |x, y| {
        if x == y {
            Level::Exact
        } else if similar(x, y) {
            Level::Close
        } else {
            Level::Differs
        }
    })
}

fn birth_date(a: Option<BirthDate>, b: Option<BirthDate>) -> Level {
    both(a, b, |x, y| {
        if x == y {
            Level::Exact
        } else if x.transposed(y) || x.one_digit_apart(y) {
            Level::Close
        } else {
            Level::Differs
        }
    })
}

fn postcode(a: Option<&Postcode>, b: Option<&Postcode>) -> Level {
    both(a, b, |x, y| {
        if x.full == y.full {
            Level::Exact
        } else if x.outward == y.outward {
            Level::Close
        } else {
            Level::Differs
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn identity(
        family: &str,
        given: &str,
        dob: &str,
        sex: &str,
        postcode: &str,
    ) -> Identity {
        Identity {
            nhs_number: None,
            family: (!family.is_empty()).then(|| family.into()),
            given: if given.is_empty() {
                vec![]
            } else {
                vec![given.into()]
            },
            birth_date: (!dob.is_empty()).then(|| dob.into()),
            gender: (!sex.is_empty()).then(|| sex.into()),
            postcode: (!postcode.is_empty()).then(|| postcode.into()),
        }
    }

    fn compare(a: &Identity, b: &Identity) -> Comparison {
        Comparison::of(&Weights::default(), &Prepared::new(a), &Prepared::new(b))
    }

    #[test]
    fn the_same_child_written_two_ways_links() {
        let school = identity("WOJCIK", "Ola", "2019-05-02", "female", "ls6 2ab");
        let gp = identity("Wójcik", "Ola", "2019-05-02", "female", "LS6 2AB");
        let c = compare(&school, &gp);
        assert!(c.fields.iter().all(|f| f.level == Level::Exact), "{c:?}");
        assert!(c.score >= Thresholds::default().link, "{}", c.score);
        assert_eq!(c.hold(), None);
    }

    #[test]
    fn nicknames_typos_and_transposed_dates_still_link() {
        let a = identity("Okafor", "Elizabeth", "2020-03-11", "female", "M14 5TQ");
        let b = identity("Okafor", "Liz", "2020-11-03", "female", "M14 5TQ");
        let c = compare(&a, &b);
        assert_eq!(c.level(Field::GivenName), Level::Exact);
        assert_eq!(c.level(Field::BirthDate), Level::Close);
        assert!(c.score >= Thresholds::default().link, "{}", c.score);
        let typo = identity("Okafr", "Elizabeth", "2020-03-11", "female", "M14 5TQ");
        assert_eq!(compare(&a, &typo).level(Field::FamilyName), Level::Close);
    }

    #[test]
    fn swapped_names_and_a_four_letter_typo_are_close() {
        let w = Weights::default();
        let a = Prepared::new(&identity(
            "Kowalski",
            "Jan",
            "2019-05-02",
            "male",
            "LS6 2AB",
        ));
        let swapped = Prepared::new(&identity(
            "Jan",
            "Kowalski",
            "2019-05-02",
            "male",
            "LS6 2AB",
        ));
        let c = Comparison::of(&w, &a, &swapped);
        assert_eq!(c.level(Field::FamilyName), Level::Close);
        assert_eq!(c.level(Field::GivenName), Level::Close);
        assert!(c.score >= Thresholds::default().link, "{}", c.score);
        assert_eq!(c.hold(), None);
        // Only one of the two names in the other box is not a swap.
        let half = Prepared::new(&identity("Jan", "Piotr", "2019-05-02", "male", "LS6 2AB"));
        assert_eq!(
            Comparison::of(&w, &a, &half).level(Field::FamilyName),
            Level::Differs
        );
        // Four letters with one wrong: close; three letters are too few to tell.
        let mary = Prepared::new(&identity("Moss", "Mary", "", "", ""));
        let mory = Prepared::new(&identity("Moss", "Mory", "", "", ""));
        assert_eq!(
            Comparison::of(&w, &mary, &mory).level(Field::GivenName),
            Level::Close
        );
        let leo = Prepared::new(&identity("Moss", "Leo", "", "", ""));
        let lea = Prepared::new(&identity("Moss", "Lea", "", "", ""));
        assert_eq!(
            Comparison::of(&w, &leo, &lea).level(Field::GivenName),
            Level::Differs
        );
    }

    #[test]
    fn twins_share_everything_but_their_given_names_and_are_held() {
        let a = identity("Novak", "Filip", "2021-06-01", "male", "B12 9QA");
        let b = identity("Novak", "Eva", "2021-06-01", "female", "B12 9QA");
        let c = compare(&a, &b);
        assert_eq!(c.hold(), Some(Hold::GivenNamesDiffer));
        let same_sex = identity("Novak", "Jan", "2021-06-01", "male", "B12 9QA");
        assert_eq!(compare(&a, &same_sex).hold(), Some(Hold::GivenNamesDiffer));
    }

    #[test]
    fn siblings_and_parents_score_far_below_review() {
        let child = identity("Haddad", "Leo", "2022-01-15", "male", "NE4 5PL");
        let sibling = identity("Haddad", "Mia", "2019-08-30", "female", "NE4 5PL");
        let mother = identity("Haddad", "Rana", "1994-02-07", "female", "NE4 5PL");
        let t = Thresholds::default();
        assert!(compare(&child, &sibling).score < t.review);
        assert!(compare(&child, &mother).score < t.review);
    }

    #[test]
    fn a_changed_surname_after_a_move_is_for_review() {
        let before = identity("Haddad", "Leo", "2022-01-15", "male", "NE4 5PL");
        let after = identity("Brennan", "Leo", "2022-01-15", "male", "DH1 3LE");
        let s = compare(&before, &after).score;
        let t = Thresholds::default();
        assert!(s >= t.review && s < t.link, "{s}");
    }

    #[test]
    fn missing_fields_and_placeholders_weigh_nothing() {
        let baby = identity("Haddad", "Baby Boy", "2026-10-18", "male", "NE4 5PL");
        let named = identity("Haddad", "Noah", "2026-10-18", "male", "NE4 5PL");
        let c = compare(&baby, &named);
        assert_eq!(c.level(Field::GivenName), Level::Missing);
        assert_eq!(c.hold(), None);
        let empty = compare(&Identity::default(), &named);
        assert_eq!(empty.score, 0.0);
    }

    #[test]
    fn different_nhs_numbers_are_never_one_person_by_score() {
        let mut a = identity("Haddad", "Leo", "2022-01-15", "male", "NE4 5PL");
        let mut b = a.clone();
        a.nhs_number = "9990000026".parse().ok();
        b.nhs_number = "9990000018".parse().ok();
        assert_eq!(compare(&a, &b).hold(), Some(Hold::NhsNumbersDiffer));
    }

    #[test]
    fn weights_are_estimated_from_the_records_once_there_are_enough() {
        // 1,200 records: 600 people, each held twice under one NHS number; every tenth second
        // copy has moved house.
        let mut records = Vec::new();
        let numbers = valid_nhs_numbers(600);
        for (n, nhs) in numbers.into_iter().enumerate() {
            let mut a = identity(
                &format!("family{}", n % 300),
                &format!("given{}", n % 50),
                &format!("20{:02}-0{}-1{}", n % 20, 1 + n % 9, n % 10),
                "female",
                "NE4 5PL",
            );
            a.nhs_number = Some(nhs);
            let mut b = a.clone();
            if n % 10 == 0 {
                b.postcode = Some("DH1 3LE".into());
            }
            records.push(Prepared::new(&a));
            records.push(Prepared::new(&b));
        }
        let estimated = Weights::estimate(&records);
        let prior = Weights::default();
        // Everyone here shares one of two postcodes: agreeing on it says little.
        assert!(estimated.weight(Field::Postcode, Level::Exact) < 1.0);
        assert!(prior.weight(Field::Postcode, Level::Exact) > 10.0);
        // Among the known matches a tenth moved: the estimate lies between that and the
        // prior's 12%, which keeps the weight of twenty pairs.
        let m_moved = estimated.m[Field::Postcode.slot()][2];
        assert!((0.09..0.12).contains(&m_moved), "{m_moved}");
        assert_eq!(Weights::estimate(&records[..10]), prior);
    }

    /// NHS numbers with valid check digits (modulus 11, as the NHS publishes it).
    pub(crate) fn valid_nhs_numbers(count: usize) -> Vec<NhsNumber> {
        let mut out = Vec::new();
        let mut stem = 400_000_000u64;
        while out.len() < count {
            stem += 1;
            let digits: Vec<u64> = stem
                .to_string()
                .bytes()
                .map(|b| u64::from(b - b'0'))
                .collect();
            let sum: u64 = digits.iter().zip((2..=10).rev()).map(|(d, w)| d * w).sum();
            let check = 11 - sum % 11;
            let check = if check == 11 { 0 } else { check };
            if check == 10 {
                continue;
            }
            out.push(
                format!("{stem}{check}")
                    .parse()
                    .expect("valid by construction"),
            );
        }
        out
    }
}
