//! Comparing two identities and scoring the comparison (Fellegi–Sunter).
//!
//! Each field agrees at one of four levels (exact, close, partial, differs) or is missing on
//! one side. A level's weight is `log2(m / u)`: `m` is how often the level is seen when two
//! records are the same person, `u` how often when they are not. A missing field weighs
//! nothing. An exact family or given name weighs by how common the name is (term frequency):
//! two records agreeing on a rare name say more than two agreeing on a common one. The score
//! is the sum; [`Thresholds`] turn it into link, review or a new person.
//!
//! The address is one field, not three: postcode, first line and town are not independent (a
//! household shares all three), so counting each would make a mother and her child "agree"
//! three times over.
//!
//! The weights start from published-style priors ([`Weights::default`]) and are estimated
//! from the index's own records once it holds enough of them ([`Weights::estimate`], in
//! `estimate.rs`): `u` from random pairs, `m` by expectation–maximisation over the pairs that
//! blocking brings together, with records sharing a valid NHS number as known matches.

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
    /// Postcode as written (a UK postcode, or another country's as it is written).
    pub postcode: Option<String>,
    /// The address's first line as written ("12 Tyne Street").
    pub address_line: Option<String>,
    /// The town or locality.
    pub city: Option<String>,
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
    /// A postcode that is not shaped like a UK one, upper case without spaces.
    pub(crate) postcode_text: Option<String>,
    /// The first address line: lower-case letters and digits, single spaces.
    pub(crate) line: Option<String>,
    /// The house number at the start of the first line.
    pub(crate) house: Option<String>,
    /// The town, folded like a name.
    pub(crate) city: Option<String>,
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
        let postcode = identity.postcode.as_deref().and_then(Postcode::parse);
        let postcode_text = identity
            .postcode
            .as_deref()
            .filter(|_| postcode.is_none())
            .map(|p| {
                p.chars()
                    .filter(char::is_ascii_alphanumeric)
                    .map(|c| c.to_ascii_uppercase())
                    .collect::<String>()
            })
            .filter(|p| !p.is_empty());
        let line = identity
            .address_line
            .as_deref()
            .map(normalise::fold_line)
            .filter(|l| !l.is_empty());
        let house = line.as_deref().and_then(|l| {
            let number: String = l.chars().take_while(char::is_ascii_digit).collect();
            (!number.is_empty()).then_some(number)
        });
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
            postcode,
            postcode_text,
            line,
            house,
            city: identity
                .city
                .as_deref()
                .map(normalise::fold)
                .filter(|c| !c.is_empty()),
        }
    }

    /// The valid NHS number, if any.
    pub fn nhs_number(&self) -> Option<&NhsNumber> {
        self.nhs.as_ref()
    }

    /// The postcode as compared: a UK postcode's full form, or another as written.
    pub(crate) fn postcode_key(&self) -> Option<&str> {
        self.postcode
            .as_ref()
            .map(|p| p.full.as_str())
            .or(self.postcode_text.as_deref())
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
    /// Where they live: postcode, first line and town, as one field.
    Address,
}

impl Field {
    /// Every scored field, in the order comparisons list them.
    pub const ALL: [Field; 5] = [
        Field::FamilyName,
        Field::GivenName,
        Field::BirthDate,
        Field::Sex,
        Field::Address,
    ];

    pub(crate) fn slot(self) -> usize {
        self as usize
    }
}

/// How far two values of a field agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// The same once folded (a nickname and its name are the same given name; the same
    /// postcode and first line).
    Exact,
    /// Nearly: a typo (Jaro–Winkler ≥ 0.9, or one letter wrong in a name of four letters or
    /// more), one part of a double-barrelled name, a day/month transposition or one-digit
    /// slip in a date; the same postcode with a first line nearly the same, or the same first
    /// line in the same town.
    Close,
    /// Alike but more than a typo apart: names with Jaro–Winkler ≥ 0.8, dates of birth two
    /// digits or at most a month apart, the same postal district, street or town.
    Partial,
    /// Different.
    Differs,
    /// Absent on one side or both (a baby's placeholder name counts as absent).
    Missing,
}

/// The levels with weights, in the order the weight tables hold them.
pub(crate) const LEVELS: [Level; 4] = [Level::Exact, Level::Close, Level::Partial, Level::Differs];

impl Level {
    pub(crate) fn slot(self) -> Option<usize> {
        match self {
            Level::Exact => Some(0),
            Level::Close => Some(1),
            Level::Partial => Some(2),
            Level::Differs => Some(3),
            Level::Missing => None,
        }
    }
}

/// `m` and `u` for each field at each level (exact, close, partial, differs), and how often
/// each family and given name is seen (for term-frequency weights).
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    pub(crate) m: [[f64; 4]; 5],
    pub(crate) u: [[f64; 4]; 5],
    /// Each folded family name's share of the records that have one.
    pub(crate) family_frequency: HashMap<String, f64>,
    /// Each given name's share (as the name it stands for).
    pub(crate) given_frequency: HashMap<String, f64>,
    /// The smallest share a name can have (one record's worth).
    pub(crate) least_frequency: f64,
}

impl Default for Weights {
    /// Priors for an English child-health population of some hundreds of thousands: a date of
    /// birth shared by chance about once in 6,500 pairs, a household's address once in
    /// 10,000, a family or given name once in 100; among true matches surnames change (4%)
    /// and families move (12%) more often than dates of birth are mistyped (5%).
    fn default() -> Self {
        Self {
            m: [
                [0.88, 0.06, 0.02, 0.04],
                [0.90, 0.06, 0.02, 0.02],
                [0.94, 0.04, 0.01, 0.01],
                [0.98, 0.0, 0.0, 0.02],
                [0.76, 0.06, 0.06, 0.12],
            ],
            u: [
                [0.01, 0.01, 0.03, 0.95],
                [0.01, 0.02, 0.04, 0.93],
                [0.00015, 0.001, 0.003, 0.99585],
                [0.5, 0.0, 0.0, 0.5],
                [0.0001, 0.0004, 0.01, 0.9895],
            ],
            family_frequency: HashMap::new(),
            given_frequency: HashMap::new(),
            least_frequency: 0.0,
        }
    }
}

/// Below this many records the priors are kept: a small index says more about its size than
/// about how names and dates are shared in the population.
pub const MIN_RECORDS_TO_ESTIMATE: usize = 1000;

impl Weights {
    /// The weight of a field at a level: `log2(m / u)`, 0 when missing.
    pub fn weight(&self, field: Field, level: Level) -> f64 {
        match level.slot() {
            None => 0.0,
            Some(l) => log_ratio(self.m[field.slot()][l], self.u[field.slot()][l]),
        }
    }

    /// The weight of a field at a level for this pair: an exact family or given name weighs
    /// by how often that name is seen (`u` is the name's share), when the shares are known.
    fn weight_for(&self, field: Field, level: Level, a: &Prepared) -> f64 {
        let frequency = match (field, level) {
            (Field::FamilyName, Level::Exact) => a
                .family
                .as_deref()
                .and_then(|f| self.family_frequency.get(f)),
            (Field::GivenName, Level::Exact) => {
                a.given.as_deref().and_then(|g| self.given_frequency.get(g))
            }
            _ => None,
        };
        match frequency {
            Some(&share) => log_ratio(
                self.m[field.slot()][0],
                share.max(self.least_frequency).max(1e-7),
            ),
            // A name the estimate never saw is as rare as a name can be.
            None if level == Level::Exact
                && matches!(field, Field::FamilyName | Field::GivenName)
                && self.least_frequency > 0.0 =>
            {
                log_ratio(self.m[field.slot()][0], self.least_frequency)
            }
            None => self.weight(field, level),
        }
    }

    /// The learned `m` and `u` and their weights, field by field (for `kinfold identity
    /// weights` and the identity steward's view).
    pub fn table(&self) -> Vec<WeightRow> {
        Field::ALL
            .into_iter()
            .flat_map(|field| {
                LEVELS.into_iter().map(move |level| {
                    let l = level.slot().unwrap_or_default();
                    WeightRow {
                        field,
                        level,
                        m: self.m[field.slot()][l],
                        u: self.u[field.slot()][l],
                        weight: self.weight(field, level),
                    }
                })
            })
            .collect()
    }
}

/// One row of [`Weights::table`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WeightRow {
    /// The field.
    pub field: Field,
    /// The level.
    pub level: Level,
    /// How often a true match agrees at this level.
    pub m: f64,
    /// How often two different people do.
    pub u: f64,
    /// `log2(m / u)` (for names at the exact level, before the name's own frequency).
    pub weight: f64,
}

fn log_ratio(m: f64, u: f64) -> f64 {
    if m <= 0.0 || u <= 0.0 {
        0.0
    } else {
        (m / u).log2()
    }
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
    /// With the prior weights, every field agreeing scores about 40. A name and date of birth
    /// with the address and sex scores well above 16; a surname changed after a move, or a
    /// date and name both slipped, falls between 10 and 16 and is reviewed; siblings and
    /// parents sharing an address score about 5. On FEBRL4 and on the project's generator,
    /// automatic links stay without a false one down to a link threshold of 14
    /// (`BENCHMARKS.md`); 16 keeps a margin.
    fn default() -> Self {
        Self {
            link: 16.0,
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
    /// Both have given names and they differ (for children, also when they are only alike):
    /// twins share everything else.
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
                weight: weights.weight_for(field, level, a),
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
            .map(|(field, level)| weights.weight_for(field, level, a))
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

/// Each field's level of agreement.
pub(crate) fn compare_fields(a: &Prepared, b: &Prepared) -> [(Field, Level); 5] {
    let (family_level, given_level) =
        match (family(a, b), given(a.given.as_deref(), b.given.as_deref())) {
            // Given and family name written the other way round ("Kowalski Jan"): each name is
            // there, in the wrong box; both count as close.
            (Level::Differs | Level::Partial, Level::Differs | Level::Partial) if swapped(a, b) => {
                (Level::Close, Level::Close)
            }
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
        (Field::Address, address(a, b)),
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

/// Alike, beyond a typo: Jaro–Winkler at least 0.8.
fn alike(a: &str, b: &str) -> bool {
    strsim::jaro_winkler(a, b) >= 0.8
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
        } else if alike(x, y) {
            Level::Partial
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
        } else if alike(x, y) {
            Level::Partial
        } else {
            Level::Differs
        }
    })
}

fn birth_date(a: Option<BirthDate>, b: Option<BirthDate>) -> Level {
    both(a, b, |x, y| {
        if x == y {
            Level::Exact
        } else if x.transposed(y) || x.digits_apart(y) == 1 {
            Level::Close
        } else if x.digits_apart(y) == 2 || (x.0 - y.0).num_days().abs() <= 31 {
            Level::Partial
        } else {
            Level::Differs
        }
    })
}

/// Postcode, first line and town as one field. Exact: the same postcode and first line (or
/// one of the two agreeing where the other is not given on both sides). Close: the same
/// postcode with a first line nearly the same, or the same (or nearly the same) first line
/// with a postcode one character off or the same town. Partial: the same postal district,
/// the same street, or the same town. Missing when neither a postcode nor a first line is on
/// both sides.
fn address(a: &Prepared, b: &Prepared) -> Level {
    let postcode = match (a.postcode_key(), b.postcode_key()) {
        (Some(x), Some(y)) if x == y => Some(Level::Exact),
        (Some(x), Some(y)) => {
            let district =
                matches!((&a.postcode, &b.postcode), (Some(p), Some(q)) if p.outward == q.outward);
            // Another country's postcode one character (or one swap of neighbours) off.
            let typo = a.postcode_text.is_some()
                && b.postcode_text.is_some()
                && strsim::osa_distance(x, y) <= 1;
            Some(if district || typo {
                Level::Partial
            } else {
                Level::Differs
            })
        }
        _ => None,
    };
    let line = match (a.line.as_deref(), b.line.as_deref()) {
        (Some(x), Some(y)) if x == y => Some(Level::Exact),
        (Some(x), Some(y)) => {
            // Two house numbers that differ are two houses, however alike the rest.
            let same_house = a.house.is_some() && a.house == b.house;
            let other_house = a.house.is_some() && b.house.is_some() && !same_house;
            // With a house number on one side only, compare the streets.
            let similarity = if a.house.is_some() == b.house.is_some() {
                strsim::jaro_winkler(x, y)
            } else {
                strsim::jaro_winkler(street(x), street(y))
            };
            let near = !other_house && (similarity >= 0.9 || (same_house && similarity >= 0.8));
            Some(if near {
                Level::Close
            } else if street(x) == street(y) {
                Level::Partial
            } else {
                Level::Differs
            })
        }
        _ => None,
    };
    let town = match (a.city.as_deref(), b.city.as_deref()) {
        (Some(x), Some(y)) => x == y || similar(x, y),
        _ => false,
    };
    match (postcode, line) {
        (None, None) => Level::Missing,
        (Some(Level::Exact), Some(Level::Exact) | None) | (None, Some(Level::Exact)) => {
            if postcode.is_none() && !town {
                Level::Close
            } else {
                Level::Exact
            }
        }
        (Some(Level::Exact), Some(Level::Close)) => Level::Close,
        (Some(Level::Partial), Some(Level::Exact | Level::Close)) => Level::Close,
        (_, Some(Level::Exact | Level::Close)) if town => Level::Close,
        (Some(Level::Exact | Level::Partial), _) => Level::Partial,
        (_, Some(Level::Exact | Level::Close | Level::Partial)) => Level::Partial,
        _ if town => Level::Partial,
        _ => Level::Differs,
    }
}

/// A first line without its house number: the street.
pub(crate) fn street(line: &str) -> &str {
    line.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ')
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
            address_line: None,
            city: None,
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
        // Four letters with one wrong: close; three letters are too few to call it a typo:
        // only alike.
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
            Level::Partial
        );
    }

    #[test]
    fn an_address_is_one_field_from_postcode_first_line_and_town() {
        let w = Weights::default();
        let at = |postcode: &str, line: Option<&str>, city: Option<&str>| {
            let mut who = identity("Haddad", "Leo", "2022-01-15", "male", postcode);
            who.address_line = line.map(str::to_owned);
            who.city = city.map(str::to_owned);
            Prepared::new(&who)
        };
        let level = |a: &Prepared, b: &Prepared| Comparison::of(&w, a, b).level(Field::Address);
        let home = at("NE4 5PL", Some("12, Tyne Street"), Some("Newcastle"));
        // The same home written differently.
        assert_eq!(
            level(&home, &at("ne45pl", Some("12 tyne street"), None)),
            Level::Exact
        );
        assert_eq!(level(&home, &at("NE4 5PL", None, None)), Level::Exact);
        // A typo in the first line; a postcode from another country, as written.
        assert_eq!(
            level(&home, &at("NE4 5PL", Some("12 Tyne Stret"), None)),
            Level::Close
        );
        let abroad = at("4223", Some("8 stanley street"), Some("winston hills"));
        assert_eq!(
            level(&abroad, &at("4223", Some("8 stanley street"), None)),
            Level::Exact
        );
        assert_eq!(
            level(&abroad, &at("4232", Some("8 stanley street"), None)),
            Level::Close
        );
        // A neighbour: the same postcode or street, another house.
        assert_eq!(
            level(&home, &at("NE4 5PL", Some("14 Tyne Street"), None)),
            Level::Partial
        );
        assert_eq!(level(&home, &at("NE4 6AA", None, None)), Level::Partial);
        assert_eq!(
            level(
                &home,
                &at("DH1 3LE", Some("3 Elvet Bridge"), Some("Durham"))
            ),
            Level::Differs
        );
        assert_eq!(
            level(&home, &at("", None, Some("Newcastle"))),
            Level::Missing
        );
        // Household members share the address once, not three times: a mother and her son at
        // home together score far below review.
        let mut mother = identity("Haddad", "Rana", "1994-02-07", "female", "NE4 5PL");
        mother.address_line = Some("12 Tyne Street".into());
        mother.city = Some("Newcastle".into());
        let s = Comparison::of(&w, &home, &Prepared::new(&mother)).score;
        assert!(s < Thresholds::default().review, "{s}");
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
        assert!(estimated.weight(Field::Address, Level::Exact) < 1.0);
        assert!(prior.weight(Field::Address, Level::Exact) > 10.0);
        // Among the known matches a tenth moved: the estimate lies between that and the
        // prior's 12%, which keeps the weight of twenty pairs.
        let m_moved = estimated.m[Field::Address.slot()][3];
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
