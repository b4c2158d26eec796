//! The agencies Kinfold joins up. Each runs one adapter.

use std::fmt;
use std::str::FromStr;

use crate::ParseError;

/// One of the five agencies whose records Kinfold joins.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Agency {
    /// Community and hospital midwifery (maternity system).
    Midwifery,
    /// The hospital emergency department (A&E).
    Ae,
    /// The family's general practice.
    Gp,
    /// The health-visiting service (children under five).
    HealthVisiting,
    /// The school-nursing service.
    SchoolNursing,
}

impl Agency {
    /// Every agency, in the order the demo starts their adapters.
    pub const ALL: [Agency; 5] = [
        Agency::Midwifery,
        Agency::Ae,
        Agency::Gp,
        Agency::HealthVisiting,
        Agency::SchoolNursing,
    ];

    /// The short name used in URLs, configuration and `--agency`.
    pub fn as_str(self) -> &'static str {
        match self {
            Agency::Midwifery => "midwifery",
            Agency::Ae => "ae",
            Agency::Gp => "gp",
            Agency::HealthVisiting => "health-visiting",
            Agency::SchoolNursing => "school-nursing",
        }
    }

    /// The name a person reads.
    pub fn display_name(self) -> &'static str {
        match self {
            Agency::Midwifery => "Midwifery",
            Agency::Ae => "A&E",
            Agency::Gp => "GP practice",
            Agency::HealthVisiting => "Health visiting",
            Agency::SchoolNursing => "School nursing",
        }
    }

    /// The URI Kinfold writes in `meta.source` for records that came from this agency.
    pub fn source_uri(self) -> String {
        format!("urn:kinfold:agency:{}", self.as_str())
    }
}

impl FromStr for Agency {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Agency::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| ParseError::Element {
                path: "agency".into(),
                message: format!(
                    "'{s}' is not an agency (expected one of midwifery, ae, gp, health-visiting, school-nursing)"
                ),
            })
    }
}

impl fmt::Display for Agency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agency_names_round_trip() {
        for agency in Agency::ALL {
            assert_eq!(agency.as_str().parse::<Agency>().ok(), Some(agency));
        }
        assert!("social-care".parse::<Agency>().is_err());
    }
}
