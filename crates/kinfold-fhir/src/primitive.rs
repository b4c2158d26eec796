//! FHIR primitive types checked at ingest: what a sender may put in a `date`, `dateTime`,
//! `instant`, `code`, `id`, `uri` or `string`, as the FHIR R4 datatypes page defines them.
//!
//! Kinfold stores only valid data. A date that does not exist (`2020-02-30`), a dateTime
//! without its time zone, or a name with a NUL character would be stored, then vanish from
//! date searches or fail on another database. [`check_resource`] walks a resource's JSON and
//! names the first element whose value breaks its type, with its location.
//!
//! The element types come from the FHIR R4 definitions of the elements Kinfold models, and,
//! for elements it does not model, from the choice-type suffix (`valueDateTime`,
//! `occurrenceInstant`): a suffix names its type exactly.

use chrono::NaiveDate;
use serde_json::Value;

use crate::ParseError;

/// A FHIR primitive type with rules beyond "a JSON string".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Primitive {
    /// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, a real calendar date.
    Date,
    /// A date, or a date and time with seconds and a zone.
    DateTime,
    /// A date and time with seconds and a zone.
    Instant,
    /// A token: no leading or trailing white space, single spaces inside.
    Code,
    /// A logical id: 1 to 64 letters, digits, `-` and `.`.
    Id,
    /// A URI: no white space.
    Uri,
}

impl Primitive {
    /// The FHIR name of the type, for error messages.
    pub fn name(self) -> &'static str {
        match self {
            Primitive::Date => "date",
            Primitive::DateTime => "dateTime",
            Primitive::Instant => "instant",
            Primitive::Code => "code",
            Primitive::Id => "id",
            Primitive::Uri => "uri",
        }
    }

    /// Whether `value` is a valid value of this type.
    pub fn accepts(self, value: &str) -> bool {
        match self {
            Primitive::Date => is_date(value),
            Primitive::DateTime => is_date(value) || is_time_with_zone(value),
            Primitive::Instant => is_time_with_zone(value),
            Primitive::Code => is_code(value),
            Primitive::Id => is_id(value),
            Primitive::Uri => !value.is_empty() && !value.chars().any(char::is_whitespace),
        }
    }
}

/// Whether a FHIR `string` is acceptable: not empty, and no control characters other than
/// tab, carriage return and line feed (FHIR R4, datatypes: string).
pub fn is_fhir_string(value: &str) -> bool {
    !value.is_empty()
        && !value
            .chars()
            .any(|c| (c < ' ' && !matches!(c, '\t' | '\r' | '\n')) || c == '\u{7f}')
}

fn is_date(value: &str) -> bool {
    let bytes = value.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|b| b.iter().all(u8::is_ascii_digit))
    };
    match bytes.len() {
        4 => digits(0..4) && value != "0000",
        7 => digits(0..4) && bytes[4] == b'-' && digits(5..7) && calendar(&format!("{value}-01")),
        10 => {
            digits(0..4)
                && bytes[4] == b'-'
                && digits(5..7)
                && bytes[7] == b'-'
                && digits(8..10)
                && calendar(value)
        }
        _ => false,
    }
}

/// A real day of the calendar; FHIR has no year 0000.
fn calendar(value: &str) -> bool {
    !value.starts_with("0000") && NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok()
}

/// `YYYY-MM-DDThh:mm:ss[.fraction](Z|+hh:mm|-hh:mm)`, every part a real value.
fn is_time_with_zone(value: &str) -> bool {
    let bytes = value.as_bytes();
    if bytes.len() < 20 || bytes[10] != b'T' || !is_date(&value[..10]) {
        return false;
    }
    let two = |at: usize| -> Option<u32> {
        let pair = bytes.get(at..at + 2)?;
        pair.iter()
            .all(u8::is_ascii_digit)
            .then(|| u32::from(pair[0] - b'0') * 10 + u32::from(pair[1] - b'0'))
    };
    let (Some(hour), Some(minute), Some(second)) = (two(11), two(14), two(17)) else {
        return false;
    };
    if bytes[13] != b':' || bytes[16] != b':' || hour > 23 || minute > 59 || second > 60 {
        return false;
    }
    let mut rest = &value[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return false;
        }
        rest = &fraction[digits..];
    }
    match rest.as_bytes() {
        [b'Z'] => true,
        [sign, h1, h2, b':', m1, m2]
            if (*sign == b'+' || *sign == b'-')
                && [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()) =>
        {
            let hours = u32::from(h1 - b'0') * 10 + u32::from(h2 - b'0');
            let minutes = u32::from(m1 - b'0') * 10 + u32::from(m2 - b'0');
            minutes <= 59 && (hours < 14 || (hours == 14 && minutes == 0))
        }
        _ => false,
    }
}

fn is_code(value: &str) -> bool {
    !value.is_empty()
        && !value.starts_with(char::is_whitespace)
        && !value.ends_with(char::is_whitespace)
        && !value.contains("  ")
        && !value.chars().any(|c| c.is_whitespace() && c != ' ')
}

/// A FHIR logical id: 1 to 64 of `A-Z a-z 0-9 - .`.
pub fn is_id(value: &str) -> bool {
    (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The primitive type of an element, from its name, the element that holds it and the
/// resource type; `None` for a plain string or an element that is not a primitive.
fn type_of(
    resource_type: &str,
    parent: Option<&str>,
    name: &str,
    depth: usize,
) -> Option<Primitive> {
    if name.ends_with("DateTime") {
        return Some(Primitive::DateTime);
    }
    if name.ends_with("Instant") {
        return Some(Primitive::Instant);
    }
    let at_root = depth == 0;
    match name {
        "id" if at_root => Some(Primitive::Id),
        "birthDate" | "valueDate" => Some(Primitive::Date),
        "lastUpdated" if parent == Some("meta") => Some(Primitive::Instant),
        "source" | "profile" if parent == Some("meta") => Some(Primitive::Uri),
        "versionId" if parent == Some("meta") => Some(Primitive::Id),
        "start" | "end" if parent.is_some_and(|p| p == "period" || p.ends_with("Period")) => {
            Some(Primitive::DateTime)
        }
        "issued" | "recorded" if at_root => Some(Primitive::Instant),
        "date" if at_root && resource_type == "DocumentReference" => Some(Primitive::Instant),
        "date" | "sent" | "received" | "authoredOn" | "lastModified" | "recordedDate"
        | "dateTime"
            if at_root =>
        {
            Some(Primitive::DateTime)
        }
        "status" | "gender" | "intent" | "use" | "comparator" | "language" => Some(Primitive::Code),
        "code" if parent != Some("identifier") => Some(Primitive::Code),
        "system" | "url" => Some(Primitive::Uri),
        _ => None,
    }
}

/// Checks every primitive value in a resource. `at` is the location of the resource itself
/// (e.g. `Bundle.entry[2].resource`); the error names the element (`….birthDate`).
pub fn check_resource(resource: &Value, at: &str) -> Result<(), ParseError> {
    let resource_type = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("");
    check_object(resource, resource_type, None, 0, at)
}

fn check_object(
    value: &Value,
    resource_type: &str,
    parent: Option<&str>,
    depth: usize,
    at: &str,
) -> Result<(), ParseError> {
    let Value::Object(map) = value else {
        return Ok(());
    };
    for (name, child) in map {
        let path = format!("{at}.{name}");
        if name == "contained" {
            if let Value::Array(items) = child {
                for (i, item) in items.iter().enumerate() {
                    check_resource(item, &format!("{path}[{i}]"))?;
                }
            }
            continue;
        }
        if name == "resource" && child.get("resourceType").is_some() {
            check_resource(child, &path)?;
            continue;
        }
        let kind = if name == "resourceType" && depth == 0 {
            None
        } else {
            type_of(resource_type, parent, name, depth)
        };
        check_value(child, kind, resource_type, name, depth, &path)?;
    }
    Ok(())
}

fn check_value(
    value: &Value,
    kind: Option<Primitive>,
    resource_type: &str,
    name: &str,
    depth: usize,
    path: &str,
) -> Result<(), ParseError> {
    match value {
        Value::String(text) => {
            if !is_fhir_string(text) {
                return Err(invalid(
                    path,
                    if text.is_empty() {
                        "is an empty string, which FHIR does not allow (leave the element out)"
                            .to_owned()
                    } else {
                        "contains a control character, which FHIR strings may not".to_owned()
                    },
                ));
            }
            if let Some(kind) = kind
                && !kind.accepts(text)
            {
                return Err(invalid(
                    path,
                    format!("'{}' is not a valid FHIR {}", shorten(text), kind.name()),
                ));
            }
            Ok(())
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_value(
                    item,
                    kind,
                    resource_type,
                    name,
                    depth,
                    &format!("{path}[{i}]"),
                )?;
            }
            Ok(())
        }
        Value::Object(_) => check_object(value, resource_type, Some(name), depth + 1, path),
        _ => Ok(()),
    }
}

fn invalid(path: &str, message: String) -> ParseError {
    ParseError::Element {
        path: path.to_owned(),
        message,
    }
}

/// At most 40 characters of a bad value, for the error message.
fn shorten(text: &str) -> String {
    let mut short: String = text.chars().take(40).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Valid and invalid values from the FHIR R4 datatypes page (2.24.0.1) and its regexes.
    #[test]
    fn dates_are_real_calendar_dates_at_year_month_or_day_precision() {
        for good in ["2018", "1973-06", "1905-08-23", "2020-02-29", "2024-12-31"] {
            assert!(Primitive::Date.accepts(good), "{good}");
        }
        for bad in [
            "2020-02-30",
            "2021-02-29",
            "2020-13",
            "2020-00",
            "2020-13-45",
            "yesterday",
            "20200101",
            "2020-1-5",
            "",
            "2020-01-01T00:00:00Z",
            "0000",
        ] {
            assert!(!Primitive::Date.accepts(bad), "{bad}");
        }
    }

    #[test]
    fn date_times_with_a_time_need_seconds_and_a_zone() {
        for good in [
            "2018",
            "1973-06",
            "1905-08-23",
            "2015-02-07T13:28:17-05:00",
            "2017-01-01T00:00:00.000Z",
            "2017-01-01T00:00:00Z",
            "2016-12-31T23:59:60Z",
            "2020-06-01T10:00:00+14:00",
        ] {
            assert!(Primitive::DateTime.accepts(good), "{good}");
        }
        for bad in [
            "2024-13-45T99:99:00Z",
            "2020-01-01T10:00",
            "2020-01-01T10:00:00",
            "2020-01-01 10:00:00Z",
            "2020-01-01T24:00:00Z",
            "2020-01-01T10:00:00+15:00",
            "2020-01-01T10:00:00.Z",
            "2020-02-30T10:00:00Z",
            "yesterday",
        ] {
            assert!(!Primitive::DateTime.accepts(bad), "{bad}");
        }
    }

    #[test]
    fn instants_are_always_full() {
        assert!(Primitive::Instant.accepts("2015-02-07T13:28:17.239+02:00"));
        assert!(!Primitive::Instant.accepts("2015-02-07"));
        assert!(!Primitive::Instant.accepts("2015-02-07T13:28Z"));
    }

    #[test]
    fn codes_ids_and_uris() {
        assert!(Primitive::Code.accepts("final"));
        assert!(Primitive::Code.accepts("two words"));
        for bad in [" final", "final ", "two  spaces", "tab\there", ""] {
            assert!(!Primitive::Code.accepts(bad), "{bad:?}");
        }
        assert!(Primitive::Id.accepts("a-1.B"));
        assert!(!Primitive::Id.accepts("has space"));
        assert!(!Primitive::Id.accepts(&"x".repeat(65)));
        assert!(Primitive::Uri.accepts("https://fhir.nhs.uk/Id/nhs-number"));
        assert!(!Primitive::Uri.accepts("http://a b"));
    }

    #[test]
    fn strings_refuse_control_characters_and_emptiness() {
        assert!(is_fhir_string("Zoë Wójcik\nline two\tand a tab"));
        assert!(!is_fhir_string("NUL\u{0}inside"));
        assert!(!is_fhir_string("bell\u{7}"));
        assert!(!is_fhir_string(""));
    }

    #[test]
    fn a_resource_check_names_the_element_at_fault() {
        let check = |v: Value| check_resource(&v, "Bundle.entry[2].resource").unwrap_err();
        let err = check(
            json!({"resourceType": "Observation", "status": "final", "effectiveDateTime": "2020-02-30"}),
        );
        assert_eq!(
            err.location(),
            Some("Bundle.entry[2].resource.effectiveDateTime")
        );
        let err = check(json!({"resourceType": "Patient", "name": [{"family": "A\u{0}B"}]}));
        assert_eq!(
            err.location(),
            Some("Bundle.entry[2].resource.name[0].family")
        );
        let err = check(json!({"resourceType": "Encounter", "period": {"start": "yesterday"}}));
        assert_eq!(
            err.location(),
            Some("Bundle.entry[2].resource.period.start")
        );
        let err = check(json!({"resourceType": "Patient", "birthDate": "2020-13-01"}));
        assert_eq!(err.location(), Some("Bundle.entry[2].resource.birthDate"));
        let err = check(
            json!({"resourceType": "Observation", "extension": [{"url": "http://x", "valueDateTime": "2020-01-01T10:00"}]}),
        );
        assert_eq!(
            err.location(),
            Some("Bundle.entry[2].resource.extension[0].valueDateTime")
        );
    }

    #[test]
    fn a_valid_resource_passes() {
        let ok = json!({
            "resourceType": "Observation", "id": "w1", "status": "final",
            "meta": {"lastUpdated": "2024-01-01T00:00:00Z", "source": "urn:kinfold:agency:gp"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]},
            "effectiveDateTime": "2024-01-01", "valueQuantity": {"value": 12.5, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
            "identifier": [{"system": "urn:x", "value": "has spaces in it"}]
        });
        assert_eq!(check_resource(&ok, "Observation"), Ok(()));
    }
}
