//! FHIR search parameters as Kinfold reads them from a query string.
//!
//! Kinfold is strict: a parameter it does not support is an error, never silently ignored,
//! because ignoring a filter would disclose more than was asked for.

use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveDateTime, Utc};

use crate::{DateRange, ParseError, SearchIndex};

/// Results per page when the client does not say.
pub const DEFAULT_COUNT: usize = 50;
/// The most results per page Kinfold will return.
pub const MAX_COUNT: usize = 1000;

/// The comparison prefix of a date search value (`ge2020-01-01`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// Equal: the resource's range lies within the parameter's range.
    Eq,
    /// Not equal.
    Ne,
    /// Greater than.
    Gt,
    /// Less than.
    Lt,
    /// Greater than or equal.
    Ge,
    /// Less than or equal.
    Le,
    /// Starts after.
    Sa,
    /// Ends before.
    Eb,
}

/// A date search value: a prefix and the range its precision implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateParam {
    /// How to compare.
    pub prefix: Prefix,
    /// The range the value stands for (`2020` is all of 2020).
    pub range: DateRange,
}

/// Conditions on a stored range `[start, end)` that a [`DateParam`] imposes. Each `Some` is one
/// condition; all must hold, and then `negate` turns the answer round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DateConstraint {
    /// `start >= x`
    pub start_ge: Option<i64>,
    /// `start < x`
    pub start_lt: Option<i64>,
    /// `end > x`
    pub end_gt: Option<i64>,
    /// `end <= x`
    pub end_le: Option<i64>,
    /// The whole condition is negated (`ne`).
    pub negate: bool,
}

impl DateParam {
    /// Parses `[prefix]value`, e.g. `ge2020-01`, `2021-03-04T10:00:00Z`.
    pub fn parse(name: &str, raw: &str) -> Result<Self, ParseError> {
        let (prefix, value) = match raw.get(..2) {
            Some("eq") => (Prefix::Eq, &raw[2..]),
            Some("ne") => (Prefix::Ne, &raw[2..]),
            Some("gt") => (Prefix::Gt, &raw[2..]),
            Some("lt") => (Prefix::Lt, &raw[2..]),
            Some("ge") => (Prefix::Ge, &raw[2..]),
            Some("le") => (Prefix::Le, &raw[2..]),
            Some("sa") => (Prefix::Sa, &raw[2..]),
            Some("eb") => (Prefix::Eb, &raw[2..]),
            _ => (Prefix::Eq, raw),
        };
        let range = DateRange::parse(value).ok_or_else(|| ParseError::SearchParameter {
            name: name.to_owned(),
            message: format!("'{value}' is not a FHIR date or dateTime"),
        })?;
        Ok(Self { prefix, range })
    }

    /// The conditions on a stored range, following the FHIR R4 rules for date prefixes.
    pub fn constraint(&self) -> DateConstraint {
        let DateRange { start, end } = self.range;
        let none = DateConstraint::default();
        match self.prefix {
            Prefix::Eq => DateConstraint {
                start_ge: Some(start),
                end_le: Some(end),
                ..none
            },
            Prefix::Ne => DateConstraint {
                start_ge: Some(start),
                end_le: Some(end),
                negate: true,
                ..none
            },
            Prefix::Gt => DateConstraint {
                end_gt: Some(end),
                ..none
            },
            Prefix::Lt => DateConstraint {
                start_lt: Some(start),
                ..none
            },
            Prefix::Ge => DateConstraint {
                end_gt: Some(start),
                ..none
            },
            Prefix::Le => DateConstraint {
                start_lt: Some(end),
                ..none
            },
            Prefix::Sa => DateConstraint {
                start_ge: Some(end),
                ..none
            },
            Prefix::Eb => DateConstraint {
                end_le: Some(start),
                ..none
            },
        }
    }

    /// Whether a stored range matches, for filtering in memory.
    pub fn matches(&self, stored: DateRange) -> bool {
        let c = self.constraint();
        let all = c.start_ge.is_none_or(|x| stored.start >= x)
            && c.start_lt.is_none_or(|x| stored.start < x)
            && c.end_gt.is_none_or(|x| stored.end > x)
            && c.end_le.is_none_or(|x| stored.end <= x);
        all != c.negate
    }
}

impl DateRange {
    /// The range a FHIR `date`, `dateTime` or `instant` stands for, in milliseconds since the
    /// Unix epoch, end exclusive: `2020` is all of 2020, `2020-05-06T10:00:00Z` is one second.
    /// A time without a zone is read as UTC.
    pub fn parse(value: &str) -> Option<Self> {
        let date_part = value.get(..10).unwrap_or(value);
        let (start, end) = match value.len() {
            4 => {
                let year: i32 = value.parse().ok()?;
                let start = NaiveDate::from_ymd_opt(year, 1, 1)?;
                (start, start.with_year(year + 1)?)
            }
            7 => {
                let start = NaiveDate::parse_from_str(&format!("{value}-01"), "%Y-%m-%d").ok()?;
                (start, start.checked_add_months(Months::new(1))?)
            }
            10 => {
                let start = NaiveDate::parse_from_str(date_part, "%Y-%m-%d").ok()?;
                (start, start.succ_opt()?)
            }
            _ => return Self::parse_date_time(value),
        };
        Some(Self {
            start: millis(start.and_hms_opt(0, 0, 0)?),
            end: millis(end.and_hms_opt(0, 0, 0)?),
        })
    }

    fn parse_date_time(value: &str) -> Option<Self> {
        if let Ok(instant) = DateTime::parse_from_rfc3339(value) {
            let start = instant.with_timezone(&Utc).timestamp_millis();
            return Some(Self {
                start,
                end: start + precision_of(value),
            });
        }
        // No zone: read as UTC. Minutes or seconds precision, with optional fraction.
        let naive = NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M"))
            .ok()?;
        let start = millis(naive);
        Some(Self {
            start,
            end: start + precision_of(value),
        })
    }

    /// A `Period`'s range: an open start or end reaches to the beginning or end of time.
    pub fn of_period(start: Option<&str>, end: Option<&str>) -> Option<Self> {
        let start = start.and_then(Self::parse);
        let end = end.and_then(Self::parse);
        if start.is_none() && end.is_none() {
            return None;
        }
        Some(Self {
            start: start.map_or(Self::BEGINNING, |r| r.start),
            end: end.map_or(Self::END, |r| r.end),
        })
    }

    /// The earliest time Kinfold stores (year 1).
    pub const BEGINNING: i64 = -62_135_596_800_000;
    /// The latest time Kinfold stores (year 10000).
    pub const END: i64 = 253_402_300_800_000;
}

/// The width of the instant a dateTime with time names: a minute, a second, or a millisecond.
fn precision_of(value: &str) -> i64 {
    let time = value.get(11..).unwrap_or("");
    let colons = time
        .chars()
        .take_while(|c| *c != 'Z' && *c != '+' && *c != '-')
        .filter(|c| *c == ':')
        .count();
    if time.contains('.') {
        1
    } else if colons >= 2 {
        1000
    } else {
        60_000
    }
}

fn millis(naive: NaiveDateTime) -> i64 {
    naive.and_utc().timestamp_millis()
}

/// A token search value: `system|code`, `|code` (no system), `code` (any system) or `system|`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenParam {
    /// `None`: any system; `Some("")`: no system; otherwise this system.
    pub system: Option<String>,
    /// `None`: any code in the system.
    pub code: Option<String>,
}

impl TokenParam {
    /// Parses one token value.
    pub fn parse(name: &str, raw: &str) -> Result<Self, ParseError> {
        let (system, code) = match raw.split_once('|') {
            Some((system, code)) => (Some(system.to_owned()), code),
            None => (None, raw),
        };
        if code.contains('|') || (code.is_empty() && system.as_deref().is_none_or(str::is_empty)) {
            return Err(ParseError::SearchParameter {
                name: name.to_owned(),
                message: format!("'{raw}' is not a token (system|code)"),
            });
        }
        Ok(Self {
            system,
            code: (!code.is_empty()).then(|| code.to_owned()),
        })
    }
}

/// The most parameters one search may have: a search longer than this is refused with a
/// `400` that states the limit, rather than sent to the database.
pub const MAX_PARAMETERS: usize = 32;
/// The most comma-separated values one parameter may have.
pub const MAX_VALUES: usize = 32;

/// A parsed search: the filters Kinfold supports on every resource type.
///
/// As FHIR says, repeated parameters are ANDed and the comma-separated values of one
/// parameter are ORed: `code=a,b&code=c` means (a or b) and c. Each `Vec<Vec<…>>` below is
/// a list of such OR-groups that must all hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchQuery {
    /// `_id`: the resource's logical id.
    pub id: Vec<Vec<String>>,
    /// `patient` or `subject` (`Patient/x` or `x`): the patient's logical id.
    pub patient: Vec<Vec<String>>,
    /// `identifier`.
    pub identifier: Vec<Vec<TokenParam>>,
    /// `code`.
    pub code: Vec<Vec<TokenParam>>,
    /// `date`: all of these.
    pub date: Vec<DateParam>,
    /// `_lastUpdated`: all of these.
    pub last_updated: Vec<DateParam>,
    /// `_count`
    pub count: usize,
    /// `_offset`: where this page starts.
    pub offset: usize,
}

/// The parameters [`SearchQuery::parse`] accepts, for the CapabilityStatement.
pub const SUPPORTED_PARAMETERS: &[(&str, &str, &str)] = &[
    ("_id", "token", "The resource's logical id"),
    (
        "patient",
        "reference",
        "The patient the resource is about (Patient/id)",
    ),
    ("subject", "reference", "Same as patient"),
    ("identifier", "token", "A business identifier, system|value"),
    ("code", "token", "The resource's main code, system|code"),
    ("date", "date", "The resource's clinically relevant date"),
    ("_lastUpdated", "date", "When this copy was last stored"),
    ("_count", "number", "Results per page (at most 1000)"),
    ("_offset", "number", "Where the page starts"),
];

impl SearchQuery {
    /// Parses query-string pairs. Unknown parameters, unreadable or empty values, a repeated
    /// `_count` or `_offset`, and searches over the limits are errors.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ParseError> {
        let mut query = SearchQuery {
            count: DEFAULT_COUNT,
            ..SearchQuery::default()
        };
        let (mut seen_count, mut seen_offset) = (false, false);
        for (n, (name, value)) in pairs.into_iter().enumerate() {
            let bad = |message: String| ParseError::SearchParameter {
                name: name.to_owned(),
                message,
            };
            if n == MAX_PARAMETERS {
                return Err(bad(format!(
                    "a search may have at most {MAX_PARAMETERS} parameters"
                )));
            }
            if value.is_empty() {
                return Err(bad("has no value".into()));
            }
            let values = || -> Result<Vec<&str>, ParseError> {
                let values: Vec<&str> = value.split(',').collect();
                if values.len() > MAX_VALUES {
                    return Err(bad(format!(
                        "may have at most {MAX_VALUES} comma-separated values"
                    )));
                }
                if values.iter().any(|v| v.is_empty()) {
                    return Err(bad(format!("'{value}' has an empty value in its list")));
                }
                Ok(values)
            };
            match name {
                "_id" => query
                    .id
                    .push(values()?.into_iter().map(str::to_owned).collect()),
                "patient" | "subject" => {
                    let mut any_of = Vec::new();
                    for one in values()? {
                        let id = one.strip_prefix("Patient/").unwrap_or(one);
                        if id.is_empty() || id.contains('/') {
                            return Err(bad(format!("'{one}' is not a Patient reference")));
                        }
                        any_of.push(id.to_owned());
                    }
                    query.patient.push(any_of);
                }
                "identifier" => query.identifier.push(
                    values()?
                        .into_iter()
                        .map(|one| TokenParam::parse(name, one))
                        .collect::<Result<_, _>>()?,
                ),
                "code" => query.code.push(
                    values()?
                        .into_iter()
                        .map(|one| TokenParam::parse(name, one))
                        .collect::<Result<_, _>>()?,
                ),
                "date" => query.date.push(DateParam::parse(name, value)?),
                "_lastUpdated" => query.last_updated.push(DateParam::parse(name, value)?),
                "_count" | "_offset" => {
                    let seen = if name == "_count" {
                        &mut seen_count
                    } else {
                        &mut seen_offset
                    };
                    if std::mem::replace(seen, true) {
                        return Err(bad("may be given only once".into()));
                    }
                    let number: usize = value
                        .parse()
                        .map_err(|_| bad(format!("'{value}' is not a whole number")))?;
                    if name == "_count" {
                        query.count = number.min(MAX_COUNT);
                    } else {
                        query.offset = number;
                    }
                }
                _ => return Err(bad("is not supported by Kinfold".into())),
            }
        }
        Ok(query)
    }

    /// Whether a resource with this id, search index and store time matches every filter:
    /// the meaning of a search, in memory. The store's SQL must agree with it (a property
    /// test checks that it does).
    pub fn matches(&self, id: &str, index: &SearchIndex, last_updated: i64) -> bool {
        let tokens_match = |groups: &[Vec<TokenParam>], values: &[crate::TokenValue]| {
            groups.iter().all(|any_of| {
                any_of.iter().any(|t| {
                    values.iter().any(|v| {
                        t.code.as_deref().is_none_or(|c| c == v.code)
                            && t.system.as_deref().is_none_or(|s| s == v.system)
                    })
                })
            })
        };
        self.id.iter().all(|any_of| any_of.iter().any(|x| x == id))
            && self.patient.iter().all(|any_of| {
                index
                    .patient
                    .as_deref()
                    .is_some_and(|p| any_of.iter().any(|x| x == p))
            })
            && tokens_match(&self.identifier, &index.identifiers)
            && tokens_match(&self.code, &index.codes)
            && self
                .date
                .iter()
                .all(|d| index.date.is_some_and(|range| d.matches(range)))
            && self.last_updated.iter().all(|d| {
                d.matches(DateRange {
                    start: last_updated,
                    end: last_updated + 1,
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str) -> DateRange {
        DateRange::parse(value).unwrap()
    }

    #[test]
    fn partial_dates_stand_for_their_whole_period() {
        let year = range("2020");
        assert_eq!(year.start, range("2020-01-01").start);
        assert_eq!(year.end, range("2021-01-01").start);
        let month = range("2020-02");
        assert_eq!(
            month.end - month.start,
            29 * 86_400_000,
            "2020 is a leap year"
        );
        let second = range("2020-02-03T04:05:06Z");
        assert_eq!(second.end - second.start, 1000);
        let minute = range("2020-02-03T04:05");
        assert_eq!(minute.end - minute.start, 60_000);
    }

    #[test]
    fn time_zones_are_honoured() {
        assert_eq!(
            range("2020-06-01T10:00:00+01:00").start,
            range("2020-06-01T09:00:00Z").start
        );
    }

    #[test]
    fn nonsense_dates_are_rejected() {
        for bad in ["2020-13", "2020-02-30", "yesterday", "20200101", ""] {
            assert!(DateRange::parse(bad).is_none(), "{bad:?}");
        }
    }

    // The examples are those of the FHIR R4 search page (3.1.1.4.2, "date").
    #[test]
    fn prefixes_follow_the_fhir_rules() {
        let day = range("2013-01-14");
        let check = |param: &str| DateParam::parse("date", param).unwrap().matches(day);
        assert!(check("2013-01-14"));
        assert!(check("2013-01"));
        assert!(!check("2013-01-14T10:00"));
        assert!(check("ge2013-01-14"));
        assert!(check("le2013-01-14"));
        assert!(!check("gt2013-01-14"));
        assert!(!check("lt2013-01-14"));
        assert!(check("ne2013-01-15"));
        assert!(check("sa2013-01-13"));
        assert!(!check("sa2013-01-14"));
        assert!(check("eb2013-01-15"));
    }

    #[test]
    fn tokens_distinguish_any_system_from_no_system() {
        let any = TokenParam::parse("code", "29463-7").unwrap();
        assert_eq!(any.system, None);
        let none = TokenParam::parse("code", "|29463-7").unwrap();
        assert_eq!(none.system.as_deref(), Some(""));
        let full = TokenParam::parse("code", "http://loinc.org|29463-7").unwrap();
        assert_eq!(full.system.as_deref(), Some("http://loinc.org"));
        assert_eq!(full.code.as_deref(), Some("29463-7"));
        assert!(TokenParam::parse("code", "|").is_err());
    }

    #[test]
    fn unknown_parameters_are_refused_not_ignored() {
        let err = SearchQuery::parse([("name", "Smith")]).unwrap_err();
        assert_eq!(err.location(), Some("name"));
    }

    #[test]
    fn a_full_query_parses() {
        let q = SearchQuery::parse([
            ("patient", "Patient/abc"),
            ("code", "http://loinc.org|29463-7,http://loinc.org|8302-2"),
            ("date", "ge2020-01-01"),
            ("_count", "5000"),
        ])
        .unwrap();
        assert_eq!(q.patient, vec![vec!["abc".to_owned()]]);
        assert_eq!(q.code.len(), 1);
        assert_eq!(q.code[0].len(), 2);
        assert_eq!(q.count, MAX_COUNT);
    }

    #[test]
    fn repeated_parameters_are_anded_and_lists_are_ored() {
        let q = SearchQuery::parse([
            ("patient", "a"),
            ("patient", "b"),
            ("code", "x,y"),
            ("code", "z"),
            ("_id", "1"),
            ("_id", "2"),
        ])
        .unwrap();
        assert_eq!(q.patient.len(), 2, "both patients kept, not the last");
        assert_eq!(
            q.code,
            vec![
                vec![
                    TokenParam::parse("code", "x").unwrap(),
                    TokenParam::parse("code", "y").unwrap()
                ],
                vec![TokenParam::parse("code", "z").unwrap()],
            ]
        );
        assert_eq!(q.id.len(), 2);
    }

    #[test]
    fn searches_over_the_limits_are_refused_with_the_limit_stated() {
        let dates: Vec<(&str, &str)> = vec![("date", "ge2020"); 999];
        let err = SearchQuery::parse(dates).unwrap_err();
        assert!(err.to_string().contains("at most 32 parameters"), "{err}");
        let codes = vec!["http://loinc.org|1"; 500].join(",");
        let err = SearchQuery::parse([("code", codes.as_str())]).unwrap_err();
        assert!(
            err.to_string()
                .contains("at most 32 comma-separated values"),
            "{err}"
        );
        let at_limit: Vec<(&str, &str)> = vec![("date", "ge2020"); MAX_PARAMETERS];
        assert!(SearchQuery::parse(at_limit).is_ok());
    }

    #[test]
    fn empty_values_and_repeated_paging_are_refused() {
        for pairs in [
            vec![("identifier", "")],
            vec![("code", "a,,b")],
            vec![("_count", "5"), ("_count", "6")],
            vec![("_offset", "5"), ("_offset", "6")],
        ] {
            assert!(SearchQuery::parse(pairs.clone()).is_err(), "{pairs:?}");
        }
    }

    #[test]
    fn the_in_memory_meaning_follows_and_and_or() {
        let index = SearchIndex {
            patient: Some("p1".into()),
            codes: vec![crate::TokenValue {
                system: "s".into(),
                code: "a".into(),
            }],
            ..SearchIndex::default()
        };
        let matches = |pairs: &[(&str, &str)]| {
            SearchQuery::parse(pairs.iter().copied())
                .unwrap()
                .matches("r1", &index, 0)
        };
        assert!(matches(&[("patient", "p1"), ("code", "s|a,s|b")]));
        assert!(!matches(&[("patient", "p1"), ("patient", "p2")]));
        assert!(!matches(&[("code", "s|a"), ("code", "s|b")]));
        assert!(matches(&[("_id", "r1,r2")]));
        assert!(!matches(&[("_id", "r1"), ("_id", "r2")]));
    }
}
