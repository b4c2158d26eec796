//! Folding what people write differently into what can be compared.
//!
//! Names are transliterated to ASCII (`deunicode`: "ł" is "l", "ß" is "ss", Cyrillic and Greek
//! by their usual romanisation), lower-cased, and stripped of everything but letters, so case,
//! spacing, hyphens, apostrophes and diacritics never make two names differ. Given names are
//! then mapped through a short table of common English nicknames.

use chrono::{Datelike, NaiveDate};

/// A name folded for comparison: ASCII lower-case letters only.
pub fn fold(name: &str) -> String {
    deunicode::deunicode(name)
        .chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// An address line folded for comparison: ASCII lower-case letters and digits, words split by
/// single spaces ("12, Tyne  St." → "12 tyne st").
pub fn fold_line(line: &str) -> String {
    deunicode::deunicode(line)
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The folded parts of a name split at spaces and hyphens ("Smith-Jones" → smith, jones).
pub fn parts(name: &str) -> Vec<String> {
    name.split(|c: char| c.is_whitespace() || c == '-')
        .map(fold)
        .filter(|p| !p.is_empty())
        .collect()
}

/// Common English nicknames and short forms, with the name each stands for. Both sides are
/// folded; a name not listed stands for itself.
const NICKNAMES: &[(&str, &str)] = &[
    ("abbie", "abigail"),
    ("abby", "abigail"),
    ("alex", "alexander"),
    ("alfie", "alfred"),
    ("andy", "andrew"),
    ("becky", "rebecca"),
    ("beth", "elizabeth"),
    ("bill", "william"),
    ("billy", "william"),
    ("bob", "robert"),
    ("bobby", "robert"),
    ("charlie", "charles"),
    ("chris", "christopher"),
    ("dave", "david"),
    ("ed", "edward"),
    ("eddie", "edward"),
    ("ellie", "eleanor"),
    ("freddie", "frederick"),
    ("harry", "henry"),
    ("jack", "john"),
    ("jake", "jacob"),
    ("jim", "james"),
    ("jimmy", "james"),
    ("joe", "joseph"),
    ("johnny", "john"),
    ("kate", "katherine"),
    ("katie", "katherine"),
    ("kathryn", "katherine"),
    ("catherine", "katherine"),
    ("liz", "elizabeth"),
    ("lizzie", "elizabeth"),
    ("maddie", "madison"),
    ("matt", "matthew"),
    ("meg", "margaret"),
    ("mike", "michael"),
    ("millie", "amelia"),
    ("nick", "nicholas"),
    ("olly", "oliver"),
    ("ollie", "oliver"),
    ("pat", "patricia"),
    ("peggy", "margaret"),
    ("rob", "robert"),
    ("sam", "samuel"),
    ("sasha", "alexandra"),
    ("steve", "stephen"),
    ("sue", "susan"),
    ("tom", "thomas"),
    ("tommy", "thomas"),
    ("tony", "anthony"),
    ("will", "william"),
    ("zac", "zachary"),
];

/// A folded given name as the name it stands for ("liz" → "elizabeth").
pub fn given_key(folded: &str) -> &str {
    NICKNAMES
        .iter()
        .find(|(short, _)| *short == folded)
        .map_or(folded, |(_, full)| full)
}

/// Whether a name is what a maternity system calls a baby before naming ("Baby", "Baby Boy",
/// "Baby of Ines Nowak", "Infant", "Twin 1"): such a name says nothing about who the child is.
pub fn is_placeholder(given: &[String]) -> bool {
    let Some(first) = given.first() else {
        return true;
    };
    let folded = fold(first);
    const PLACEHOLDERS: &[&str] = &[
        "baby", "babyboy", "babygirl", "babyof", "infant", "boy", "girl", "twin", "unknown",
        "unnamed",
    ];
    folded.is_empty()
        || PLACEHOLDERS.contains(&folded.as_str())
        || folded.starts_with("babyof")
        || folded.starts_with("twin")
}

/// A date of birth, parsed from `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BirthDate(pub NaiveDate);

impl BirthDate {
    /// Parses `YYYY-MM-DD`; anything else is no date.
    pub fn parse(text: &str) -> Option<Self> {
        NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .ok()
            .map(Self)
    }

    /// The year.
    pub fn year(self) -> i32 {
        self.0.year()
    }

    /// Day and month in ascending order: a day/month transposition keeps the same pair.
    pub fn day_month_pair(self) -> (u32, u32) {
        let (d, m) = (self.0.day(), self.0.month());
        (d.min(m), d.max(m))
    }

    /// Whether the other date is this one with day and month swapped.
    pub fn transposed(self, other: Self) -> bool {
        self.0 != other.0
            && self.0.year() == other.0.year()
            && self.0.day() == other.0.month()
            && self.0.month() == other.0.day()
    }

    /// Whether the two dates differ in exactly one digit of `YYYYMMDD`.
    pub fn one_digit_apart(self, other: Self) -> bool {
        self.digits_apart(other) == 1
    }

    /// In how many of the eight digits of `YYYYMMDD` the two dates differ.
    pub fn digits_apart(self, other: Self) -> usize {
        let digits = |d: NaiveDate| {
            let n = (d.year().rem_euclid(10_000) as u32) * 10_000 + d.month() * 100 + d.day();
            let mut out = [0u8; 8];
            let mut n = n;
            for slot in out.iter_mut().rev() {
                *slot = (n % 10) as u8;
                n /= 10;
            }
            out
        };
        digits(self.0)
            .iter()
            .zip(digits(other.0))
            .filter(|(x, y)| **x != *y)
            .count()
    }
}

/// A UK postcode, folded: upper case without spaces, split into its outward part (the
/// district, "NE4") and the whole ("NE45PL").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Postcode {
    /// The whole postcode, no spaces.
    pub full: String,
    /// The outward code (district).
    pub outward: String,
}

impl Postcode {
    /// Folds a postcode; `None` unless it has the shape of a UK postcode (an outward code of 2
    /// to 4 characters starting with a letter, then a digit and two letters).
    pub fn parse(text: &str) -> Option<Self> {
        let full: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let bytes = full.as_bytes();
        if !(5..=7).contains(&bytes.len()) || !bytes.iter().all(u8::is_ascii_alphanumeric) {
            return None;
        }
        let (outward, inward) = full.split_at(full.len() - 3);
        let inward = inward.as_bytes();
        let shaped = outward.as_bytes()[0].is_ascii_alphabetic()
            && inward[0].is_ascii_digit()
            && inward[1..].iter().all(u8::is_ascii_alphabetic);
        shaped.then(|| Self {
            outward: outward.to_owned(),
            full: full.clone(),
        })
    }
}

/// Administrative sex as recorded: only `male` and `female` carry information.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sex {
    /// Recorded male.
    Male,
    /// Recorded female.
    Female,
}

impl Sex {
    /// From a FHIR administrative gender (`other` and `unknown` say nothing).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "male" | "m" => Some(Self::Male),
            "female" | "f" => Some(Self::Female),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_spacing_hyphens_diacritics_and_transliteration_fold_away() {
        for same in ["Wójcik", "Wojcik", "WOJCIK", " woj-cik ", "Wöjčik"] {
            assert_eq!(fold(same), "wojcik", "{same}");
        }
        assert_eq!(fold("Wójcik"), "wojcik");
        assert_eq!(fold("O'Brien"), "obrien");
        assert_eq!(fold("Müller"), fold("Muller"));
        assert_eq!(fold("Łukasz"), "lukasz");
        assert_eq!(fold("Straße"), "strasse");
        // Cyrillic and Greek by their usual romanisation.
        assert_eq!(fold("Иван"), "ivan");
        assert_eq!(parts("Smith-Jones  Ada"), ["smith", "jones", "ada"]);
        assert_eq!(fold_line("12, Tyne  St."), "12 tyne st");
    }

    #[test]
    fn nicknames_stand_for_their_names() {
        assert_eq!(given_key("liz"), "elizabeth");
        assert_eq!(given_key("bill"), "william");
        assert_eq!(given_key("oskar"), "oskar");
    }

    #[test]
    fn babies_before_naming_have_placeholder_names() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(is_placeholder(&names(&["Baby"])));
        assert!(is_placeholder(&names(&["Baby Boy"])));
        assert!(is_placeholder(&names(&["Baby of Ines"])));
        assert!(is_placeholder(&names(&["Twin 2"])));
        assert!(is_placeholder(&[]));
        assert!(!is_placeholder(&names(&["Leo"])));
        assert!(!is_placeholder(&names(&["Babette"])));
    }

    #[test]
    fn dates_know_transpositions_and_one_digit_slips() {
        let d = |s| BirthDate::parse(s).expect("date");
        assert!(d("2021-03-04").transposed(d("2021-04-03")));
        assert!(!d("2021-03-04").transposed(d("2021-03-04")));
        assert!(!d("2021-03-04").transposed(d("2022-04-03")));
        assert!(d("2021-03-04").one_digit_apart(d("2021-03-07")));
        assert!(d("2021-03-04").one_digit_apart(d("2020-03-04")));
        assert!(!d("2021-03-04").one_digit_apart(d("2021-04-03")));
        assert_eq!(d("2021-03-04").digits_apart(d("2021-04-03")), 2);
        assert_eq!(d("1915-11-11").digits_apart(d("1951-11-11")), 2);
        assert_eq!(
            d("2021-11-04").day_month_pair(),
            d("2021-04-11").day_month_pair()
        );
        assert!(BirthDate::parse("04/03/2021").is_none());
    }

    #[test]
    fn postcodes_fold_to_their_district() {
        let p = Postcode::parse("ne4 5pl").expect("postcode");
        assert_eq!(p.full, "NE45PL");
        assert_eq!(p.outward, "NE4");
        assert_eq!(
            Postcode::parse("SW1A 1AA").expect("postcode").outward,
            "SW1A"
        );
        for bad in ["", "12345", "NE4 5P", "NE4-5PL", "TOOLONG1AA"] {
            assert!(Postcode::parse(bad).is_none(), "{bad}");
        }
    }
}
