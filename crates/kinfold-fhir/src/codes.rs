//! Codes Kinfold reads and writes: LOINC for measurements, and Kinfold's own code system for
//! the kinds of contact (reviews, visits, attendances) that agencies record as Encounters.

/// LOINC.
pub const LOINC: &str = "http://loinc.org";
/// Body weight.
pub const LOINC_WEIGHT: &str = "29463-7";
/// Birth weight, measured.
pub const LOINC_BIRTH_WEIGHT: &str = "8339-4";
/// Body height (standing).
pub const LOINC_HEIGHT: &str = "8302-2";
/// Body height, lying (length).
pub const LOINC_LENGTH: &str = "8306-3";
/// Head occipito-frontal circumference.
pub const LOINC_HEAD: &str = "9843-4";
/// Head occipito-frontal circumference, by tape measure.
pub const LOINC_HEAD_TAPE: &str = "8287-5";
/// Body mass index.
pub const LOINC_BMI: &str = "39156-5";
/// Gestational age at birth (`wk` or `d` quantity, or a "39+6" string).
pub const LOINC_GESTATION_AT_BIRTH: &str = "76516-4";

/// Kinfold's code system of event codes: what a record means (`injury`,
/// `domestic-abuse-notification`, …), as `meta.tag` on the records the feeds make
/// (`docs/feeds/events.md`).
pub const EVENT_SYSTEM: &str = "https://kinfold.example/fhir/CodeSystem/event";

/// Kinfold's code system for kinds of contact (`Encounter.type`).
pub const CONTACT_TYPE_SYSTEM: &str = "https://kinfold.example/fhir/CodeSystem/contact-type";

/// The contacts at which a child is expected to be weighed: the Healthy Child Programme's
/// mandated health-visiting reviews, the school-entry review and the National Child
/// Measurement Programme. A contact of one of these kinds with no weight that day is a gap.
pub const CONTACTS_EXPECTING_WEIGHT: [(&str, &str); 7] = [
    ("new-birth-visit", "new birth visit"),
    ("6-8-week-review", "6–8 week review"),
    ("1-year-review", "1 year review"),
    ("2-year-review", "2–2½ year review"),
    ("school-entry-review", "school entry health review"),
    ("ncmp-reception", "NCMP reception measurement"),
    ("ncmp-year-6", "NCMP year 6 measurement"),
];
