//! The decision for one record: permit, withhold or deny, and the rule that made it.

use chrono::NaiveDate;
use kinfold_fhir::Agency;
use serde::Serialize;

use crate::{Category, Purpose, Relationship, Requester, ResourceView, Role, classify};

/// The policy's settings: all data, all documented, all tested rule by rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// How many days an A&E attendance makes a relationship for ED clinicians.
    pub ed_window_days: i64,
    /// The shortest justification an override takes, in letters and digits
    /// ([`crate::letters`]).
    pub min_justification: usize,
    /// What a professional may see of a family member's records (G1): categories.
    pub safeguarding_relevant: Vec<Category>,
    /// Withheld unless explicitly permitted.
    pub sensitive: Vec<Category>,
    /// Rules whose withholding an override never lifts.
    pub never_overridable: Vec<String>,
    /// Agencies whose records a role never sees (least data for the purpose).
    pub role_excludes: Vec<(Role, Agency)>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            ed_window_days: 30,
            min_justification: 20,
            safeguarding_relevant: vec![
                Category::EdAttendanceRisk,
                Category::DomesticAbuse,
                Category::Pregnancy,
                Category::AntenatalSafeguardingConcern,
                Category::Injury,
                Category::SafeguardingFlag,
                Category::ChildProtection,
                Category::LetterSafeguarding,
            ],
            sensitive: vec![
                Category::SexualHealth,
                Category::TerminationOfPregnancy,
                Category::GenderIdentity,
                Category::AssistedConception,
                Category::MentalHealth,
            ],
            never_overridable: vec![
                "sensitive.assisted-conception".into(),
                "sensitive.gender-identity".into(),
            ],
            role_excludes: vec![(Role::SchoolNurse, Agency::Midwifery)],
        }
    }
}

/// What a decision does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    /// The caller sees it.
    Permit,
    /// It exists, but not for this caller: counted, never shown.
    Withhold,
    /// The caller has no relationship with the child: nothing is shown.
    Deny,
}

/// One decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// What it does.
    pub effect: Effect,
    /// The rule that decided (`family.not-safeguarding-relevant`).
    pub rule: String,
    /// For a permit by override, the rule that would have withheld it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overridden: Option<String>,
    /// Whether an override could reveal it (for a withhold).
    pub overridable: bool,
}

/// Whose record it is, from the child's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    /// The child asked about.
    Child,
    /// A member of their family.
    Family,
}

/// One record a query would return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<'a> {
    /// What it is.
    pub view: &'a ResourceView,
    /// Whose it is.
    pub whose: Whose,
    /// When it happened, if it says.
    pub date: Option<NaiveDate>,
}

/// A recorded dissent (a FHIR Consent with `provision.type = deny`): these agencies' records,
/// these categories, in this period, are not to be shared. Empty lists mean "all".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dissent {
    /// The Consent's id.
    pub id: String,
    /// Agencies it covers (empty: every agency).
    pub agencies: Vec<Agency>,
    /// Categories it covers (empty: every record).
    pub categories: Vec<Category>,
    /// From (open when not given).
    pub from: Option<NaiveDate>,
    /// Until (open when not given).
    pub until: Option<NaiveDate>,
}

impl Dissent {
    fn covers(&self, item: &Item<'_>, categories: &[Category]) -> bool {
        let agency = self.agencies.is_empty()
            || item.view.agency.is_some_and(|a| self.agencies.contains(&a));
        let category =
            self.categories.is_empty() || categories.iter().any(|c| self.categories.contains(c));
        let period = match item.date {
            Some(date) => {
                self.from.is_none_or(|from| date >= from) && self.until.is_none_or(|to| date <= to)
            }
            None => self.from.is_none() && self.until.is_none(),
        };
        agency && category && period
    }
}

/// Decides one record for one caller (see the crate documentation for the rules' order).
pub fn decide(
    policy: &Policy,
    requester: &Requester,
    relationship: Option<&Relationship>,
    dissents: &[Dissent],
    item: &Item<'_>,
) -> Decision {
    let Some(relationship) = relationship else {
        return Decision {
            effect: Effect::Deny,
            rule: "relationship.none".into(),
            overridden: None,
            overridable: false,
        };
    };
    let categories = classify(item.view);
    let relevant = categories
        .iter()
        .any(|c| policy.safeguarding_relevant.contains(c));
    let withheld_by: Option<String> = if item
        .view
        .agency
        .is_some_and(|a| policy.role_excludes.contains(&(requester.role, a)))
    {
        Some("scope.role".into())
    } else if item.whose == Whose::Family && !relevant {
        Some("family.not-safeguarding-relevant".into())
    } else if let Some(dissent) = dissents.iter().find(|d| d.covers(item, &categories)) {
        Some(format!("consent.dissent.{}", dissent.id))
    } else {
        categories
            .iter()
            .filter(|c| policy.sensitive.contains(c))
            // An adult's mental-health detail is withheld; a safeguarding-relevant summary of
            // it (an antenatal concern) is not.
            .find(|c| !(**c == Category::MentalHealth && relevant))
            .map(|c| format!("sensitive.{}", c.as_str()))
    };
    let Some(rule) = withheld_by else {
        return Decision {
            effect: Effect::Permit,
            rule: relationship.rule.into(),
            overridden: None,
            overridable: false,
        };
    };
    let overridable = !policy
        .never_overridable
        .iter()
        .any(|never| rule == *never || rule.starts_with(&format!("{never}.")));
    let overriding = matches!(
        &requester.purpose,
        Purpose::Override { justification } if crate::letters(justification) >= policy.min_justification
    );
    if overridable && overriding {
        Decision {
            effect: Effect::Permit,
            rule: "override".into(),
            overridden: Some(rule),
            overridable: true,
        }
    } else {
        Decision {
            effect: Effect::Withhold,
            rule,
            overridden: None,
            overridable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(role: Role, purpose: Purpose) -> Requester {
        Requester {
            practitioner: "p-1".into(),
            name: Some("S. Brennan".into()),
            role,
            organisation: "RXX01".into(),
            purpose,
        }
    }

    fn view(resource_type: &str, agency: Agency, tags: &[&str]) -> ResourceView {
        ResourceView {
            resource_type: resource_type.into(),
            agency: Some(agency),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            codes: Vec::new(),
        }
    }

    fn related() -> Relationship {
        Relationship {
            rule: "relationship.area-pool",
            basis: "allocated to the pool".into(),
        }
    }

    fn decide_one(
        requester: &Requester,
        view: &ResourceView,
        whose: Whose,
        dissents: &[Dissent],
    ) -> Decision {
        decide(
            &Policy::default(),
            requester,
            Some(&related()),
            dissents,
            &Item {
                view,
                whose,
                date: None,
            },
        )
    }

    const OVERRIDE: &str = "Bruising seen on the baby's face at today's visit";

    #[test]
    fn no_relationship_is_denied_whatever_the_purpose() {
        let gp = who(
            Role::Gp,
            Purpose::Override {
                justification: OVERRIDE.into(),
            },
        );
        let record = view("Encounter", Agency::Gp, &[]);
        let d = decide(
            &Policy::default(),
            &gp,
            None,
            &[],
            &Item {
                view: &record,
                whose: Whose::Child,
                date: None,
            },
        );
        assert_eq!(
            (d.effect, d.rule.as_str()),
            (Effect::Deny, "relationship.none")
        );
    }

    #[test]
    fn the_childs_own_records_are_permitted_under_the_relationship() {
        let hv = who(Role::HealthVisitor, Purpose::DirectCare);
        let d = decide_one(&hv, &view("Encounter", Agency::Gp, &[]), Whose::Child, &[]);
        assert_eq!(
            (d.effect, d.rule.as_str()),
            (Effect::Permit, "relationship.area-pool")
        );
    }

    #[test]
    fn a_family_members_safeguarding_items_are_permitted_and_the_rest_withheld() {
        let hv = who(Role::HealthVisitor, Purpose::DirectCare);
        // Each safeguarding-relevant category of a family member's record, one by one.
        for (resource_type, agency, tag) in [
            ("Encounter", Agency::Ae, "ed-risk-overdose"),
            ("Encounter", Agency::Ae, "ed-risk-self-harm"),
            ("Encounter", Agency::Ae, "ed-risk-alcohol"),
            ("Encounter", Agency::Ae, "ed-risk-assault"),
            (
                "Communication",
                Agency::HealthVisiting,
                "domestic-abuse-notification",
            ),
            ("EpisodeOfCare", Agency::Midwifery, "pregnancy-booked"),
            ("Flag", Agency::Midwifery, "antenatal-concern"),
            ("Condition", Agency::Ae, "injury"),
            ("Observation", Agency::Gp, "letter-safeguarding-section"),
            ("Flag", Agency::Gp, "child-protection-plan"),
        ] {
            let d = decide_one(
                &hv,
                &view(resource_type, agency, &[tag]),
                Whose::Family,
                &[],
            );
            assert_eq!(d.effect, Effect::Permit, "{tag}");
        }
        for (resource_type, agency, tag) in [
            ("Encounter", Agency::Gp, "encounter"),
            ("Observation", Agency::SchoolNursing, "ncmp"),
            ("Encounter", Agency::Ae, "ed-attendance"),
        ] {
            let d = decide_one(
                &hv,
                &view(resource_type, agency, &[tag]),
                Whose::Family,
                &[],
            );
            assert_eq!(
                (d.effect, d.rule.as_str()),
                (Effect::Withhold, "family.not-safeguarding-relevant"),
                "{tag}"
            );
            assert!(d.overridable);
        }
    }

    #[test]
    fn a_school_nurse_never_sees_midwifery_notes() {
        let sn = who(Role::SchoolNurse, Purpose::DirectCare);
        let d = decide_one(
            &sn,
            &view("Encounter", Agency::Midwifery, &["antenatal-contact"]),
            Whose::Child,
            &[],
        );
        assert_eq!(
            (d.effect, d.rule.as_str()),
            (Effect::Withhold, "scope.role")
        );
        let ncmp = decide_one(
            &sn,
            &view("Observation", Agency::SchoolNursing, &["ncmp"]),
            Whose::Child,
            &[],
        );
        assert_eq!(ncmp.effect, Effect::Permit);
    }

    #[test]
    fn a_dissent_withholds_what_it_covers_by_agency_category_and_period() {
        let gp = who(Role::Gp, Purpose::DirectCare);
        let dissent = Dissent {
            id: "c1".into(),
            agencies: vec![Agency::SchoolNursing],
            categories: vec![],
            from: NaiveDate::from_ymd_opt(2026, 1, 1),
            until: None,
        };
        let record = view("Observation", Agency::SchoolNursing, &["welfare-concern"]);
        let policy = Policy::default();
        let at = |date| {
            decide(
                &policy,
                &gp,
                Some(&related()),
                std::slice::from_ref(&dissent),
                &Item {
                    view: &record,
                    whose: Whose::Child,
                    date: NaiveDate::from_ymd_opt(2026, 3, date),
                },
            )
        };
        assert_eq!(
            (at(1).effect, at(1).rule.as_str()),
            (Effect::Withhold, "consent.dissent.c1")
        );
        let before = decide(
            &policy,
            &gp,
            Some(&related()),
            std::slice::from_ref(&dissent),
            &Item {
                view: &record,
                whose: Whose::Child,
                date: NaiveDate::from_ymd_opt(2025, 12, 31),
            },
        );
        assert_eq!(before.effect, Effect::Permit, "before the dissent");
        let other_agency = decide_one(
            &gp,
            &view("Observation", Agency::Gp, &[]),
            Whose::Child,
            &[dissent],
        );
        assert_eq!(other_agency.effect, Effect::Permit);
    }

    #[test]
    fn sensitive_categories_are_withheld_and_some_never_overridden() {
        let gp = who(Role::Gp, Purpose::DirectCare);
        for (tag, rule) in [
            ("sensitive-sexual-health", "sensitive.sexual-health"),
            (
                "sensitive-termination-of-pregnancy",
                "sensitive.termination-of-pregnancy",
            ),
            ("sensitive-gender-identity", "sensitive.gender-identity"),
            (
                "sensitive-assisted-conception",
                "sensitive.assisted-conception",
            ),
            ("sensitive-mental-health", "sensitive.mental-health"),
        ] {
            let d = decide_one(
                &gp,
                &view("Condition", Agency::Gp, &[tag]),
                Whose::Child,
                &[],
            );
            assert_eq!((d.effect, d.rule.as_str()), (Effect::Withhold, rule));
        }
        // The mother's antenatal mental-health concern is a safeguarding-relevant summary.
        let concern = view(
            "Flag",
            Agency::Midwifery,
            &["antenatal-concern", "antenatal-concern-mental-health"],
        );
        assert_eq!(
            decide_one(&gp, &concern, Whose::Family, &[]).effect,
            Effect::Permit
        );
        let overriding = who(
            Role::Gp,
            Purpose::Override {
                justification: OVERRIDE.into(),
            },
        );
        let ivf = decide_one(
            &overriding,
            &view("Condition", Agency::Gp, &["sensitive-assisted-conception"]),
            Whose::Child,
            &[],
        );
        assert_eq!(
            (ivf.effect, ivf.overridable),
            (Effect::Withhold, false),
            "never overridable"
        );
    }

    #[test]
    fn an_override_with_a_justification_reveals_what_was_withheld_and_says_so() {
        let record = view("Encounter", Agency::Gp, &["encounter"]);
        let overriding = who(
            Role::HealthVisitor,
            Purpose::Override {
                justification: OVERRIDE.into(),
            },
        );
        let d = decide_one(&overriding, &record, Whose::Family, &[]);
        assert_eq!(
            (d.effect, d.rule.as_str(), d.overridden.as_deref()),
            (
                Effect::Permit,
                "override",
                Some("family.not-safeguarding-relevant")
            )
        );
        let short = who(
            Role::HealthVisitor,
            Purpose::Override {
                justification: "worried".into(),
            },
        );
        assert_eq!(
            decide_one(&short, &record, Whose::Family, &[]).effect,
            Effect::Withhold,
            "too short"
        );
        // What is permitted anyway is not marked as an override.
        let own = decide_one(&overriding, &record, Whose::Child, &[]);
        assert_eq!((own.effect, own.overridden), (Effect::Permit, None));
    }
}
