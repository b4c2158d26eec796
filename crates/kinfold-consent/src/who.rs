//! Who is asking, and why.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A professional role, as the signed claims name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A midwife.
    Midwife,
    /// An emergency-department clinician.
    EmergencyDepartmentClinician,
    /// A general practitioner.
    Gp,
    /// A health visitor.
    HealthVisitor,
    /// A school nurse.
    SchoolNurse,
    /// A paediatric liaison nurse (hospital-wide).
    PaediatricLiaisonNurse,
    /// A named or designated safeguarding professional (organisation-wide).
    SafeguardingProfessional,
    /// A social worker.
    SocialWorker,
    /// A privacy officer: reviews overrides and asks why; sees no patient data for care.
    PrivacyOfficer,
    /// An identity steward: decides the identity review queue, links and unlinks records, and
    /// asserts or takes back family edges; sees no patient data for care.
    IdentitySteward,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 10] = [
        Role::Midwife,
        Role::EmergencyDepartmentClinician,
        Role::Gp,
        Role::HealthVisitor,
        Role::SchoolNurse,
        Role::PaediatricLiaisonNurse,
        Role::SafeguardingProfessional,
        Role::SocialWorker,
        Role::PrivacyOfficer,
        Role::IdentitySteward,
    ];

    /// The role's name in claims (`health-visitor`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Midwife => "midwife",
            Role::EmergencyDepartmentClinician => "emergency-department-clinician",
            Role::Gp => "gp",
            Role::HealthVisitor => "health-visitor",
            Role::SchoolNurse => "school-nurse",
            Role::PaediatricLiaisonNurse => "paediatric-liaison-nurse",
            Role::SafeguardingProfessional => "safeguarding-professional",
            Role::SocialWorker => "social-worker",
            Role::PrivacyOfficer => "privacy-officer",
            Role::IdentitySteward => "identity-steward",
        }
    }
}

/// A role, purpose or justification the claims do not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoError(pub String);

impl fmt::Display for WhoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WhoError {}

impl FromStr for Role {
    type Err = WhoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| WhoError(format!("unknown role {s:?}")))
    }
}

/// Why they are asking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "purpose")]
pub enum Purpose {
    /// Care of this child.
    DirectCare,
    /// Safeguarding this child.
    Safeguarding,
    /// A safeguarding override, with its justification.
    Override {
        /// Why, in the professional's words.
        justification: String,
    },
}

impl Purpose {
    /// Reads a purpose of use and its justification (required, and only allowed, for
    /// `override`).
    pub fn parse(purpose: &str, justification: Option<&str>) -> Result<Self, WhoError> {
        match (purpose, justification.map(str::trim)) {
            ("direct-care", None) => Ok(Purpose::DirectCare),
            ("safeguarding", None) => Ok(Purpose::Safeguarding),
            ("override", Some(text)) if !text.is_empty() => Ok(Purpose::Override {
                justification: text.to_owned(),
            }),
            ("override", _) => Err(WhoError("an override needs a justification".into())),
            ("direct-care" | "safeguarding", Some(_)) => Err(WhoError(
                "a justification is given only with purpose override".into(),
            )),
            (other, _) => Err(WhoError(format!("unknown purpose of use {other:?}"))),
        }
    }

    /// Checks an override's justification against the policy's shortest: letters and digits
    /// are counted, so whitespace, punctuation and invisible characters (25 zero-width spaces,
    /// 20 dots) say nothing and do not count.
    pub fn check_justification(&self, min_letters: usize) -> Result<(), WhoError> {
        match self {
            Purpose::Override { justification } if letters(justification) < min_letters => {
                Err(WhoError(format!(
                    "an override's justification says why in at least {min_letters} letters or digits ({} given)",
                    letters(justification)
                )))
            }
            _ => Ok(()),
        }
    }

    /// Its name (`direct-care`, `safeguarding`, `override`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Purpose::DirectCare => "direct-care",
            Purpose::Safeguarding => "safeguarding",
            Purpose::Override { .. } => "override",
        }
    }
}

/// The letters and digits of a text: what a justification is measured by.
pub fn letters(text: &str) -> usize {
    text.chars().filter(|c| c.is_alphanumeric()).count()
}

/// Who is asking and why: the claims every data request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    /// The practitioner's id.
    pub practitioner: String,
    /// Their name, when the claims give it.
    pub name: Option<String>,
    /// Their role.
    pub role: Role,
    /// Their organisation's ODS code.
    pub organisation: String,
    /// Why they ask.
    pub purpose: Purpose,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_read_by_their_claim_names() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("nurse".parse::<Role>().is_err());
    }

    #[test]
    fn an_override_needs_a_justification_and_only_an_override_has_one() {
        assert_eq!(Purpose::parse("direct-care", None), Ok(Purpose::DirectCare));
        assert_eq!(
            Purpose::parse("safeguarding", None),
            Ok(Purpose::Safeguarding)
        );
        assert_eq!(
            Purpose::parse("override", Some(" bruising seen today ")),
            Ok(Purpose::Override {
                justification: "bruising seen today".into()
            })
        );
        assert!(Purpose::parse("override", None).is_err());
        assert!(Purpose::parse("override", Some("  ")).is_err());
        assert!(Purpose::parse("direct-care", Some("why not")).is_err());
        assert!(Purpose::parse("curiosity", None).is_err());
    }

    #[test]
    fn a_justification_is_measured_in_letters_not_characters() {
        let check = |text: &str| {
            Purpose::parse("override", Some(text))
                .and_then(|p| p.check_justification(20))
                .is_ok()
        };
        assert!(check("Bruising seen on the baby at today's visit"));
        assert!(!check(&"\u{200b}".repeat(25)), "zero-width spaces");
        assert!(!check(&".".repeat(20)), "dots");
        assert!(
            !check("a . b . c . d . e . f . g"),
            "seven letters padded out"
        );
        assert!(
            check("Fracture x-ray 2026 query NAI"),
            "letters and digits count"
        );
        assert_eq!(letters("Łódź, 12!"), 6);
        // Only an override is measured.
        assert!(Purpose::DirectCare.check_justification(20).is_ok());
    }
}
