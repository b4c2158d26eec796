//! Identifiers that must be right before anything else happens.

use std::fmt;
use std::str::FromStr;

use crate::ParseError;

/// The FHIR identifier system of NHS numbers in England and Wales.
pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";

/// The FHIR identifier system of ODS organisation codes.
pub const ODS_CODE_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

/// A ten-digit NHS number whose last digit is a correct Modulus 11 check digit.
///
/// The check, as the NHS Data Dictionary defines it: multiply the first nine digits by the
/// weights 10 down to 2, add the products, take the remainder on division by 11 and subtract
/// it from 11. A result of 11 means a check digit of 0; a result of 10 means the number is
/// not valid at all.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NhsNumber(String);

impl NhsNumber {
    /// The ten digits, without spaces.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The check digit the first nine digits call for, or `None` when no digit can make them
    /// a valid NHS number (the remainder calls for 10).
    pub fn check_digit(first_nine: &[u8; 9]) -> Option<u8> {
        let sum: u32 = first_nine
            .iter()
            .zip((2..=10).rev())
            .map(|(digit, weight)| u32::from(*digit) * weight)
            .sum();
        match 11 - (sum % 11) {
            11 => Some(0),
            10 => None,
            check => u8::try_from(check).ok(),
        }
    }

    /// Builds the NHS number that starts with these nine digits, if one exists.
    pub fn from_first_nine(first_nine: [u8; 9]) -> Option<Self> {
        if first_nine.iter().any(|d| *d > 9) {
            return None;
        }
        let check = Self::check_digit(&first_nine)?;
        let digits: String = first_nine
            .iter()
            .chain(std::iter::once(&check))
            .map(|d| char::from(b'0' + d))
            .collect();
        Some(Self(digits))
    }
}

impl FromStr for NhsNumber {
    type Err = ParseError;

    /// Accepts ten digits, optionally written in the usual 3-3-4 groups with spaces.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits: String = s.chars().filter(|c| *c != ' ').collect();
        if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::NhsNumber("it must be exactly ten digits"));
        }
        let bytes = digits.as_bytes();
        let mut first_nine = [0u8; 9];
        for (slot, byte) in first_nine.iter_mut().zip(bytes) {
            *slot = byte - b'0';
        }
        match Self::check_digit(&first_nine) {
            Some(check) if check == bytes[9] - b'0' => Ok(Self(digits)),
            _ => Err(ParseError::NhsNumber("the check digit is wrong")),
        }
    }
}

impl fmt::Display for NhsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Never prints the digits: an NHS number is patient data and must not reach a log.
impl fmt::Debug for NhsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NhsNumber(***)")
    }
}

/// An Organisation Data Service code: 3 to 10 capital letters and digits (`RR8`, `A81001`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OdsCode(String);

impl OdsCode {
    /// The code as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for OdsCode {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = (3..=10).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError::OdsCode)
        }
    }
}

impl fmt::Display for OdsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Published examples: 943 476 5919 is the worked example in NHS Digital's guidance on the
    // Modulus 11 check; 9000000009 is the PDS sandbox patient in the NHS PDS FHIR API examples.
    #[test]
    fn published_nhs_numbers_are_accepted() {
        for valid in [
            "9434765919",
            "943 476 5919",
            "9000000009",
            "9000000025",
            "9000000033",
        ] {
            assert!(
                valid.parse::<NhsNumber>().is_ok(),
                "{valid} should be valid"
            );
        }
    }

    #[test]
    fn a_wrong_check_digit_is_rejected() {
        let err = "9434765918".parse::<NhsNumber>().unwrap_err();
        assert_eq!(err, ParseError::NhsNumber("the check digit is wrong"));
    }

    #[test]
    fn numbers_whose_check_would_be_ten_are_never_valid() {
        // 1000000001..: the first nine digits 100000000 weigh 10, remainder 10, check 1.
        // 123456789 weighs 10+18+24+28+30+30+28+24+18 = 210, 210 % 11 = 1, check 10: invalid.
        assert_eq!(NhsNumber::check_digit(&[1, 2, 3, 4, 5, 6, 7, 8, 9]), None);
        for last in 0..=9 {
            assert!(format!("123456789{last}").parse::<NhsNumber>().is_err());
        }
    }

    #[test]
    fn wrong_lengths_and_letters_are_rejected() {
        for bad in ["", "943476591", "94347659190", "94347659I9", "9434-765919"] {
            assert!(
                bad.parse::<NhsNumber>().is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn debug_never_shows_the_digits() {
        let nhs: NhsNumber = "9434765919".parse().unwrap();
        assert!(!format!("{nhs:?}").contains("9434765919"));
    }

    #[test]
    fn from_first_nine_agrees_with_parsing() {
        let built = NhsNumber::from_first_nine([9, 4, 3, 4, 7, 6, 5, 9, 1]).unwrap();
        assert_eq!(built.as_str(), "9434765919");
    }

    #[test]
    fn ods_codes_are_capitals_and_digits() {
        assert!("RR8".parse::<OdsCode>().is_ok());
        assert!("A81001".parse::<OdsCode>().is_ok());
        assert!("rr8".parse::<OdsCode>().is_err());
        assert!("R8".parse::<OdsCode>().is_err());
        assert!("RR8 ".parse::<OdsCode>().is_err());
    }
}
