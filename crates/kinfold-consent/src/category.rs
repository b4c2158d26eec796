//! What a record is about, for the rules: its categories, read from the record's type, the
//! feeds' event tags (`meta.tag`, `docs/feeds/events.md`) and a few coded values.

use kinfold_fhir::Agency;
use serde::{Deserialize, Serialize};

/// A category of record the rules name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// An A&E attendance for overdose, self-harm, alcohol or assault (G5).
    EdAttendanceRisk,
    /// A domestic-abuse notification, or domestic abuse disclosed in pregnancy.
    DomesticAbuse,
    /// A booked pregnancy or antenatal contact.
    Pregnancy,
    /// A safeguarding concern raised in pregnancy.
    AntenatalSafeguardingConcern,
    /// An injury.
    Injury,
    /// A safeguarding flag.
    SafeguardingFlag,
    /// Child-protection status (a plan, a strategy meeting).
    ChildProtection,
    /// A hospital letter's safeguarding section.
    LetterSafeguarding,
    /// A welfare concern (school nursing).
    WelfareConcern,
    /// A growth measurement (NCMP, health visiting, birth).
    Growth,
    /// A missed appointment ("was not brought").
    WasNotBrought,
    /// Sexual health.
    SexualHealth,
    /// Termination of pregnancy.
    TerminationOfPregnancy,
    /// Gender identity.
    GenderIdentity,
    /// Assisted conception.
    AssistedConception,
    /// Mental-health detail.
    MentalHealth,
}

impl Category {
    /// Every category.
    pub const ALL: [Category; 16] = [
        Category::EdAttendanceRisk,
        Category::DomesticAbuse,
        Category::Pregnancy,
        Category::AntenatalSafeguardingConcern,
        Category::Injury,
        Category::SafeguardingFlag,
        Category::ChildProtection,
        Category::LetterSafeguarding,
        Category::WelfareConcern,
        Category::Growth,
        Category::WasNotBrought,
        Category::SexualHealth,
        Category::TerminationOfPregnancy,
        Category::GenderIdentity,
        Category::AssistedConception,
        Category::MentalHealth,
    ];

    /// A category by its name.
    pub fn parse(text: &str) -> Option<Self> {
        Category::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// Its name (`ed-attendance-risk`), as rule ids and configuration use it.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::EdAttendanceRisk => "ed-attendance-risk",
            Category::DomesticAbuse => "domestic-abuse",
            Category::Pregnancy => "pregnancy",
            Category::AntenatalSafeguardingConcern => "antenatal-safeguarding-concern",
            Category::Injury => "injury",
            Category::SafeguardingFlag => "safeguarding-flag",
            Category::ChildProtection => "child-protection",
            Category::LetterSafeguarding => "letter-safeguarding",
            Category::WelfareConcern => "welfare-concern",
            Category::Growth => "growth",
            Category::WasNotBrought => "was-not-brought",
            Category::SexualHealth => "sexual-health",
            Category::TerminationOfPregnancy => "termination-of-pregnancy",
            Category::GenderIdentity => "gender-identity",
            Category::AssistedConception => "assisted-conception",
            Category::MentalHealth => "mental-health",
        }
    }
}

/// What the rules need to know about one record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceView {
    /// `resourceType`.
    pub resource_type: String,
    /// The agency that holds it.
    pub agency: Option<Agency>,
    /// Its event tags (codes in Kinfold's event system).
    pub tags: Vec<String>,
    /// Its coded values (`system|code`), from code, category and type.
    pub codes: Vec<String>,
}

const SNOMED: &str = "http://snomed.info/sct";

/// SNOMED CT concepts that mark a sensitive category when a record is coded with them.
const SENSITIVE_CODES: &[(&str, Category)] = &[
    ("386639001", Category::TerminationOfPregnancy), // termination of pregnancy
    ("57797005", Category::TerminationOfPregnancy),  // induced termination of pregnancy
    ("105629000", Category::SexualHealth),           // chlamydial infection
    ("15628003", Category::SexualHealth),            // gonorrhoea
    ("93461009", Category::GenderIdentity),          // gender dysphoria
    ("63487001", Category::AssistedConception),      // in vitro fertilisation
    ("35489007", Category::MentalHealth),            // depressive disorder
    ("197480006", Category::MentalHealth),           // anxiety disorder
];

/// The categories a record belongs to (none for an ordinary record).
pub fn classify(view: &ResourceView) -> Vec<Category> {
    let mut categories = Vec::new();
    let mut add = |c: Category| {
        if !categories.contains(&c) {
            categories.push(c);
        }
    };
    for tag in &view.tags {
        match tag.as_str() {
            t if t.starts_with("ed-risk-") => add(Category::EdAttendanceRisk),
            "domestic-abuse-notification"
            | "named-in-domestic-abuse-notification"
            | "antenatal-concern-domestic-abuse" => add(Category::DomesticAbuse),
            "pregnancy-booked" | "antenatal-contact" => add(Category::Pregnancy),
            "injury" => add(Category::Injury),
            "letter-safeguarding-section" => add(Category::LetterSafeguarding),
            "welfare-concern" => add(Category::WelfareConcern),
            "growth-measurement" | "ncmp" | "birth-measurement" => add(Category::Growth),
            "was-not-brought" => add(Category::WasNotBrought),
            "child-protection" | "child-protection-plan" | "strategy-meeting" => {
                add(Category::ChildProtection)
            }
            "antenatal-concern-mental-health" => add(Category::MentalHealth),
            _ => {}
        }
        if tag.starts_with("antenatal-concern") {
            add(Category::AntenatalSafeguardingConcern);
        }
        if let Some(sensitive) = tag.strip_prefix("sensitive-") {
            for category in [
                Category::SexualHealth,
                Category::TerminationOfPregnancy,
                Category::GenderIdentity,
                Category::AssistedConception,
                Category::MentalHealth,
            ] {
                if category.as_str() == sensitive {
                    add(category);
                }
            }
        }
    }
    if view.resource_type == "Flag" {
        add(Category::SafeguardingFlag);
    }
    for code in &view.codes {
        if let Some((system, value)) = code.split_once('|') {
            if system == SNOMED
                && let Some((_, category)) = SENSITIVE_CODES.iter().find(|(c, _)| *c == value)
            {
                add(*category);
            }
            if value.contains("child-protection") {
                add(Category::ChildProtection);
            }
        }
    }
    categories
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(resource_type: &str, tags: &[&str], codes: &[&str]) -> ResourceView {
        ResourceView {
            resource_type: resource_type.into(),
            agency: None,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            codes: codes.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn feed_tags_name_the_safeguarding_categories() {
        assert_eq!(
            classify(&view(
                "Encounter",
                &["ed-attendance", "ed-risk-overdose"],
                &[]
            )),
            [Category::EdAttendanceRisk]
        );
        assert_eq!(
            classify(&view(
                "Communication",
                &["domestic-abuse-notification"],
                &[]
            )),
            [Category::DomesticAbuse]
        );
        assert_eq!(
            classify(&view(
                "Flag",
                &["antenatal-concern", "antenatal-concern-domestic-abuse"],
                &[]
            )),
            [
                Category::AntenatalSafeguardingConcern,
                Category::DomesticAbuse,
                Category::SafeguardingFlag
            ]
        );
        assert_eq!(
            classify(&view("EpisodeOfCare", &["pregnancy-booked"], &[])),
            [Category::Pregnancy]
        );
        assert_eq!(
            classify(&view("Condition", &["injury"], &[])),
            [Category::Injury]
        );
        assert_eq!(
            classify(&view("Observation", &["ncmp"], &[])),
            [Category::Growth]
        );
        assert!(classify(&view("Encounter", &["encounter"], &[])).is_empty());
    }

    #[test]
    fn categories_read_by_their_names() {
        for category in Category::ALL {
            assert_eq!(Category::parse(category.as_str()), Some(category));
        }
        assert_eq!(Category::parse("gossip"), None);
    }

    #[test]
    fn sensitive_categories_come_from_tags_and_codes() {
        assert_eq!(
            classify(&view(
                "Condition",
                &[],
                &["http://snomed.info/sct|386639001"]
            )),
            [Category::TerminationOfPregnancy]
        );
        assert_eq!(
            classify(&view("Condition", &["sensitive-sexual-health"], &[])),
            [Category::SexualHealth]
        );
        // The same number in another system means nothing here.
        assert!(classify(&view("Condition", &[], &["http://example.org|386639001"])).is_empty());
        assert_eq!(
            classify(&view(
                "Flag",
                &["antenatal-concern", "antenatal-concern-mental-health"],
                &[]
            )),
            [
                Category::AntenatalSafeguardingConcern,
                Category::MentalHealth,
                Category::SafeguardingFlag
            ]
        );
    }
}
