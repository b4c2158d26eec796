//! Kinfold's person id.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A Kinfold person: opaque, stable, and a valid FHIR id. It never carries an NHS number or
/// anything else about the person.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PersonId(String);

/// A string that cannot be a person id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonIdError;

impl fmt::Display for PersonIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a person id is 1 to 64 letters, digits, '-' or '.'")
    }
}

impl std::error::Error for PersonIdError {}

impl PersonId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PersonId {
    type Error = PersonIdError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let valid = (1..=64).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if valid {
            Ok(Self(value))
        } else {
            Err(PersonIdError)
        }
    }
}

impl std::str::FromStr for PersonId {
    type Err = PersonIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::try_from(s.to_owned())
    }
}

impl From<PersonId> for String {
    fn from(id: PersonId) -> Self {
        id.0
    }
}

impl fmt::Display for PersonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fhir_id_shapes_are_person_ids() {
        assert!("p-1f2e.3".parse::<PersonId>().is_ok());
        for bad in ["", "a/b", "a b", "9434765919|x", &"x".repeat(65)] {
            assert!(bad.parse::<PersonId>().is_err(), "{bad:?}");
        }
    }
}
