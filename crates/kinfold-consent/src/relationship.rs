//! Legitimate relationships, derived from the data: who may see a child's records at all.

use chrono::NaiveDate;
use kinfold_fhir::Agency;

use crate::{Policy, Requester, Role};

/// What the records say about the professionals around one child.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildFacts {
    /// The GP practices the child is registered with (ODS codes).
    pub registered_practices: Vec<String>,
    /// Caseload allocations: health visiting or school nursing, a named practitioner or the
    /// area's central pool, and the team's organisation.
    pub allocations: Vec<Allocation>,
    /// A&E attendances: the day and the hospital (ODS), when known.
    pub ed_attendances: Vec<(NaiveDate, Option<String>)>,
    /// Maternity bookings of the child's mother (or of the child, before birth): the
    /// organisation, when known.
    pub maternity_bookings: Vec<Option<String>>,
    /// Every organisation holding a record of the child, and the child's area.
    pub organisations: Vec<String>,
}

/// One caseload allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// Health visiting or school nursing.
    pub agency: Agency,
    /// The named practitioner (their id or name as the record gives it), if one is allocated.
    pub practitioner: Option<String>,
    /// The team's organisation (ODS), including a central pool's.
    pub organisation: Option<String>,
}

/// A legitimate relationship, and the rule that found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relationship {
    /// The rule (`relationship.registered-gp`).
    pub rule: &'static str,
    /// What in the data it rests on, in words.
    pub basis: String,
}

/// The caller's legitimate relationship with the child, if the data gives one.
pub fn relationship(
    requester: &Requester,
    facts: &ChildFacts,
    today: NaiveDate,
    policy: &Policy,
) -> Option<Relationship> {
    let org = requester.organisation.as_str();
    let found = |rule: &'static str, basis: String| Some(Relationship { rule, basis });
    match requester.role {
        Role::Gp => facts
            .registered_practices
            .iter()
            .any(|p| p == org)
            .then(|| {
                found(
                    "relationship.registered-gp",
                    format!("registered at practice {org}"),
                )
            })?,
        Role::HealthVisitor | Role::SchoolNurse => {
            let agency = if requester.role == Role::HealthVisitor {
                Agency::HealthVisiting
            } else {
                Agency::SchoolNursing
            };
            let mine = facts.allocations.iter().filter(|a| a.agency == agency);
            let me = |p: &str| p == requester.practitioner || requester.name.as_deref() == Some(p);
            let mut named = mine
                .clone()
                .filter(|a| a.practitioner.as_deref().is_some_and(me));
            if named.next().is_some() {
                return found(
                    "relationship.allocated",
                    "allocated to this practitioner".into(),
                );
            }
            // G8: a child allocated to the area's central pool may be visited by anyone in it.
            mine.clone()
                .any(|a| a.practitioner.is_none() && a.organisation.as_deref() == Some(org))
                .then(|| {
                    found(
                        "relationship.area-pool",
                        format!("allocated to the central pool of {org}"),
                    )
                })?
        }
        Role::EmergencyDepartmentClinician => facts
            .ed_attendances
            .iter()
            .any(|(day, hospital)| {
                (today - *day).num_days() <= policy.ed_window_days
                    && *day <= today
                    && hospital.as_deref().is_none_or(|h| h == org)
            })
            .then(|| {
                found(
                    "relationship.ed-attendance",
                    format!(
                        "attended this emergency department in the last {} days",
                        policy.ed_window_days
                    ),
                )
            })?,
        Role::Midwife => facts
            .maternity_bookings
            .iter()
            .any(|o| o.as_deref().is_none_or(|o| o == org))
            .then(|| {
                found(
                    "relationship.maternity-booking",
                    "a maternity booking".into(),
                )
            })?,
        Role::PaediatricLiaisonNurse | Role::SafeguardingProfessional | Role::SocialWorker => {
            let rule = if requester.role == Role::PaediatricLiaisonNurse {
                "relationship.hospital-wide"
            } else {
                "relationship.organisation-wide"
            };
            facts
                .organisations
                .iter()
                .any(|o| o == org)
                .then(|| found(rule, format!("{org} holds records of this child")))?
        }
        Role::PrivacyOfficer | Role::IdentitySteward => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Purpose;

    fn who(role: Role, org: &str) -> Requester {
        Requester {
            practitioner: "p-1".into(),
            name: Some("S. Brennan".into()),
            role,
            organisation: org.into(),
            purpose: Purpose::DirectCare,
        }
    }

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    fn facts() -> ChildFacts {
        ChildFacts {
            registered_practices: vec!["A81001".into()],
            allocations: vec![
                Allocation {
                    agency: Agency::HealthVisiting,
                    practitioner: None,
                    organisation: Some("RX1HV".into()),
                },
                Allocation {
                    agency: Agency::SchoolNursing,
                    practitioner: Some("p-1".into()),
                    organisation: Some("RX1SN".into()),
                },
            ],
            ed_attendances: vec![(day("2026-11-20"), Some("RXX01".into()))],
            maternity_bookings: vec![Some("RXX02".into())],
            organisations: vec!["RXX01".into(), "LA123".into()],
        }
    }

    #[test]
    fn each_role_has_its_own_relationship_in_the_data() {
        let today = day("2026-11-30");
        let policy = Policy::default();
        let rule = |role: Role, org: &str| {
            relationship(&who(role, org), &facts(), today, &policy).map(|r| r.rule)
        };
        assert_eq!(rule(Role::Gp, "A81001"), Some("relationship.registered-gp"));
        assert_eq!(rule(Role::Gp, "B99999"), None, "another practice");
        assert_eq!(
            rule(Role::HealthVisitor, "RX1HV"),
            Some("relationship.area-pool")
        );
        assert_eq!(rule(Role::HealthVisitor, "RX9HV"), None);
        assert_eq!(
            rule(Role::SchoolNurse, "anything"),
            Some("relationship.allocated")
        );
        assert_eq!(
            rule(Role::EmergencyDepartmentClinician, "RXX01"),
            Some("relationship.ed-attendance")
        );
        assert_eq!(
            rule(Role::EmergencyDepartmentClinician, "RXX09"),
            None,
            "another hospital"
        );
        assert_eq!(
            rule(Role::Midwife, "RXX02"),
            Some("relationship.maternity-booking")
        );
        assert_eq!(rule(Role::Midwife, "RXX01"), None);
        assert_eq!(
            rule(Role::PaediatricLiaisonNurse, "RXX01"),
            Some("relationship.hospital-wide")
        );
        assert_eq!(
            rule(Role::SafeguardingProfessional, "LA123"),
            Some("relationship.organisation-wide")
        );
        assert_eq!(rule(Role::SocialWorker, "LA999"), None);
        assert_eq!(
            rule(Role::PrivacyOfficer, "RXX01"),
            None,
            "a privacy officer sees no care data"
        );
    }

    #[test]
    fn an_ed_attendance_counts_only_within_the_window() {
        let policy = Policy {
            ed_window_days: 7,
            ..Policy::default()
        };
        let ed = who(Role::EmergencyDepartmentClinician, "RXX01");
        assert!(relationship(&ed, &facts(), day("2026-11-27"), &policy).is_some());
        assert!(relationship(&ed, &facts(), day("2026-11-28"), &policy).is_none());
        assert!(
            relationship(&ed, &facts(), day("2026-11-19"), &policy).is_none(),
            "not before it happened"
        );
    }
}
