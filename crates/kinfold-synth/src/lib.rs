//! Deterministic synthetic families for `kinfold demo`, the tests and the benchmarks.
//!
//! The same options always give the same people, NHS numbers (from the 999 test range, never
//! issued to real patients), names and records, spread across the five agencies the way real
//! records are: the GP knows everyone; midwifery knows mothers, pregnancies and births; health
//! visiting knows the under-fives; school nursing knows children from school entry; A&E knows
//! whoever attended. Every name is invented; none comes from the serious case review.

mod names;
mod native;
pub mod story;

pub use native::Feed;

use chrono::{Datelike, Months, NaiveDate};
use kinfold_fhir::{
    Agency, Bundle, BundleEntry, BundleEntryRequest, BundleType, NHS_NUMBER_SYSTEM, NhsNumber,
    Resource,
};
use kinfold_growth::{Ages, Gestation, Measure, Sex, value_for_sds};
use serde_json::{Value, json};

pub use kinfold_fhir::codes::{
    CONTACT_TYPE_SYSTEM, LOINC_BIRTH_WEIGHT, LOINC_GESTATION_AT_BIRTH, LOINC_HEAD, LOINC_HEIGHT,
    LOINC_LENGTH, LOINC_WEIGHT,
};
/// Local code system for safeguarding flags.
pub const FLAG_SYSTEM: &str = "https://kinfold.example/fhir/CodeSystem/safeguarding-flag";

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    /// How many families.
    pub families: usize,
    /// Stop adding children once this many exist (families may then be cut short).
    pub max_children: Option<usize>,
    /// If set, every child gets exactly this many weight measurements, all recorded by health
    /// visiting (the benchmark data set); otherwise growth follows the Healthy Child Programme.
    pub weights_per_child: Option<usize>,
    /// The day the data set is "as of": ages and dates are counted back from it.
    pub as_of: NaiveDate,
    /// Random seed.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            families: 200,
            max_children: None,
            weights_per_child: None,
            as_of: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap_or_default(),
            seed: 0x004b_696e_666f_6c64,
        }
    }
}

/// What a person is in their family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The mother (or birthing parent).
    Mother,
    /// Her partner in the household.
    Partner,
    /// A child.
    Child,
}

/// One synthetic person.
#[derive(Debug, Clone)]
pub struct Person {
    /// Unique number in the population; the basis of every record id.
    pub key: u32,
    /// Role in the family.
    pub role: Role,
    /// A valid NHS number from the 999 test range.
    pub nhs_number: NhsNumber,
    /// Given name.
    pub given: String,
    /// Family name.
    pub family: String,
    /// `female` or `male`.
    pub gender: &'static str,
    /// Date of birth.
    pub birth_date: NaiveDate,
    /// Preferred language (BCP 47) when not English.
    pub language: Option<&'static str>,
    /// How this child grows relative to the median, in standard deviations (children only).
    pub growth_z: f64,
    /// Gestation at birth (children only; most are born at term, about one in twelve early).
    pub gestation: Gestation,
    /// Whether this child's weight falters (the demo's story; see `faltering_family`).
    pub falters: bool,
}

/// One household.
#[derive(Debug, Clone)]
pub struct Family {
    /// Index in the population.
    pub index: usize,
    /// The mother.
    pub mother: Person,
    /// Her partner, if one lives with the family.
    pub partner: Option<Person>,
    /// The children, eldest first.
    pub children: Vec<Person>,
    /// Estimated due date of a current pregnancy.
    pub due_date: Option<NaiveDate>,
    /// Whether this is the family whose eldest child's growth falters.
    pub faltering: bool,
}

/// The whole synthetic population.
#[derive(Debug, Clone)]
pub struct Population {
    /// The options it was made with.
    pub options: Options,
    /// Its families.
    pub families: Vec<Family>,
}

impl Population {
    /// Generates the population. Same options, same population.
    pub fn generate(options: Options) -> Self {
        let mut rng = fastrand::Rng::with_seed(options.seed);
        let mut numbers = NhsNumbers::default();
        let mut families = Vec::with_capacity(options.families);
        let mut children_so_far = 0;
        for index in 0..options.families {
            if options
                .max_children
                .is_some_and(|max| children_so_far >= max)
            {
                break;
            }
            let mut family = make_family(index, &options, &mut rng, &mut numbers);
            if let Some(max) = options.max_children {
                family.children.truncate(max - children_so_far);
            }
            children_so_far += family.children.len();
            families.push(family);
        }
        if options.weights_per_child.is_none() && options.max_children.is_none() {
            families.push(faltering_family(
                options.families,
                options.as_of,
                &mut numbers,
            ));
        }
        Self { options, families }
    }

    /// The child whose growth falters (in every population but the benchmark's).
    pub fn faltering_child(&self) -> Option<&Person> {
        self.families
            .iter()
            .find(|f| f.faltering)
            .and_then(|f| f.children.iter().find(|c| c.falters))
    }

    /// Every person.
    pub fn people(&self) -> impl Iterator<Item = &Person> {
        self.families.iter().flat_map(|f| {
            std::iter::once(&f.mother)
                .chain(&f.partner)
                .chain(&f.children)
        })
    }

    /// Every child.
    pub fn children(&self) -> impl Iterator<Item = &Person> {
        self.families.iter().flat_map(|f| &f.children)
    }

    /// The child the demo's examples use: the first family's eldest, who has records at all
    /// five agencies.
    pub fn example_child(&self) -> Option<&Person> {
        self.families.first().and_then(|f| f.children.first())
    }

    /// One FHIR `transaction` Bundle per family per agency, ready to POST to that agency's
    /// adapter. Entries are `PUT`s with stable ids, so sending them twice changes nothing but
    /// version numbers.
    pub fn bundles(&self) -> Vec<(Agency, Bundle)> {
        self.records()
            .map(|(agency, resources)| (agency, transaction(resources)))
            .collect()
    }

    /// Each family's records at each agency that holds any, family by family.
    fn records(&self) -> impl Iterator<Item = (Agency, Vec<Resource>)> + '_ {
        self.families.iter().flat_map(|family| {
            let mut records = Records::new(self.options.as_of);
            records.family(family, &self.options);
            Agency::ALL
                .into_iter()
                .map(move |agency| (agency, records.take(agency)))
                .filter(|(_, resources)| !resources.is_empty())
                .collect::<Vec<_>>()
        })
    }
}

impl Population {
    /// The same records as [`Population::bundles`], as each agency's system would send them:
    /// A&E as HL7 v2 messages (and FHIR for letters and flags), midwifery, health visiting and
    /// school nursing as extract rows, the GP as FHIR Bundles (`docs/feeds/`).
    pub fn native_feeds(&self) -> Vec<(Agency, Feed)> {
        self.records()
            .flat_map(|(agency, resources)| {
                native::render(agency, resources)
                    .into_iter()
                    .map(move |feed| (agency, feed))
            })
            .collect()
    }
}

/// Allocates NHS numbers 999 000 001 onwards, skipping any whose check digit would be 10.
#[derive(Default)]
struct NhsNumbers {
    next: u32,
}

impl NhsNumbers {
    fn take(&mut self) -> NhsNumber {
        loop {
            self.next += 1;
            let n = self.next;
            let digits = [
                9,
                9,
                9,
                digit(n, 5),
                digit(n, 4),
                digit(n, 3),
                digit(n, 2),
                digit(n, 1),
                digit(n, 0),
            ];
            if let Some(number) = NhsNumber::from_first_nine(digits) {
                return number;
            }
        }
    }
}

fn digit(n: u32, place: u32) -> u8 {
    u8::try_from((n / 10u32.pow(place)) % 10).unwrap_or(0)
}

fn make_family(
    index: usize,
    options: &Options,
    rng: &mut fastrand::Rng,
    numbers: &mut NhsNumbers,
) -> Family {
    let culture = names::culture(rng);
    let mut key = u32::try_from(index).unwrap_or(u32::MAX).saturating_mul(8);
    let mut person =
        |role: Role, gender: &'static str, birth_date: NaiveDate, rng: &mut fastrand::Rng| {
            key += 1;
            Person {
                key,
                role,
                nhs_number: numbers.take(),
                given: names::given(culture, gender, rng).to_owned(),
                family: String::new(),
                gender,
                birth_date,
                language: culture.language(),
                growth_z: (rng.f64() + rng.f64() + rng.f64() - 1.5) * 1.4,
                gestation: gestation_for(key, options.seed),
                falters: false,
            }
        };
    let as_of = options.as_of;
    let mother_age_years = 22 + rng.u32(0..16);
    let mother_birth = years_before(as_of, mother_age_years, rng);
    let (family_male, family_female) = names::family(culture, rng);
    let mut mother = person(Role::Mother, "female", mother_birth, rng);
    mother.family = family_female.to_owned();
    let partner = (rng.u8(0..10) < 7).then(|| {
        let mut partner = person(
            Role::Partner,
            "male",
            years_before(as_of, mother_age_years + rng.u32(0..6), rng),
            rng,
        );
        partner.family = family_male.to_owned();
        partner
    });
    // The example family (index 0) has a child of five, so that all five agencies hold records.
    let child_count = if index == 0 { 2 } else { 1 + rng.usize(0..4) };
    let mut children: Vec<Person> = (0..child_count)
        .map(|n| {
            let age_months = if index == 0 && n == 0 {
                62
            } else {
                rng.u32(1..(12 * (mother_age_years - 17).min(16)))
            };
            let gender = if rng.bool() { "female" } else { "male" };
            let birth = as_of
                .checked_sub_months(Months::new(age_months))
                .unwrap_or(as_of)
                - chrono::Days::new(u64::from(rng.u32(0..28)));
            let mut child = person(Role::Child, gender, birth, rng);
            child.family = (if gender == "female" {
                family_female
            } else {
                family_male
            })
            .to_owned();
            child
        })
        .collect();
    children.sort_by_key(|c| c.birth_date);
    let due_date =
        (rng.u8(0..10) < 2).then(|| as_of + chrono::Days::new(u64::from(rng.u32(14..250))));
    Family {
        index,
        mother,
        partner,
        children,
        due_date,
        faltering: false,
    }
}

/// Gestation at birth, drawn from the person's key (not the population's random stream, so
/// that adding it changed no one else): 1 in 12 born between 28 and 36 weeks, the rest at 37
/// to 41.
fn gestation_for(key: u32, seed: u64) -> Gestation {
    let mut rng =
        fastrand::Rng::with_seed(seed ^ u64::from(key).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let weeks = if rng.u8(0..12) == 0 {
        rng.u8(28..37)
    } else {
        rng.u8(37..42)
    };
    Gestation {
        weeks,
        days: rng.u8(0..7),
    }
}

/// The family whose story the growth chart is for: the eldest, a girl of four years and eight
/// months, grew between the 50th and 75th centiles until she was three, then fell below the
/// 2nd centile by four and a half, weighed along the way by the GP, A&E, health visiting and
/// school nursing, and never once plotted on one chart. Her brothers grow normally.
fn faltering_family(index: usize, as_of: NaiveDate, numbers: &mut NhsNumbers) -> Family {
    let base = u32::try_from(index).unwrap_or(u32::MAX).saturating_mul(8);
    let person =
        |offset: u32, role, given: &str, gender, birth_date, growth_z, numbers: &mut NhsNumbers| {
            Person {
                key: base + offset,
                role,
                nhs_number: numbers.take(),
                given: given.to_owned(),
                family: "Wróblewska".to_owned(),
                gender,
                birth_date,
                language: None,
                growth_z,
                gestation: Gestation::TERM,
                falters: false,
            }
        };
    let before = |months: u32, days: u64| {
        as_of
            .checked_sub_months(Months::new(months))
            .unwrap_or(as_of)
            - chrono::Days::new(days)
    };
    let mother = person(
        1,
        Role::Mother,
        "Halina",
        "female",
        before(12 * 31, 40),
        0.0,
        numbers,
    );
    let mut boys = [
        person(
            2,
            Role::Child,
            "Kacper",
            "male",
            before(7 * 12 + 3, 11),
            -0.3,
            numbers,
        ),
        person(
            4,
            Role::Child,
            "Tymon",
            "male",
            before(2 * 12 + 2, 5),
            0.8,
            numbers,
        ),
    ];
    for boy in &mut boys {
        boy.family = "Wróblewski".to_owned();
    }
    let mut girl = person(
        3,
        Role::Child,
        "Zosia",
        "female",
        before(4 * 12 + 8, 3),
        FALTERING_TRACK,
        numbers,
    );
    girl.falters = true;
    let [elder, younger] = boys;
    Family {
        index,
        mother,
        partner: None,
        children: vec![elder, girl, younger],
        due_date: None,
        faltering: true,
    }
}

/// The SDS the faltering child grows along before she falters (between the 50th and 75th).
const FALTERING_TRACK: f64 = 0.35;

/// Her weight SDS at an age: on her track until 3 years, then falling steadily to −2.3 (below
/// the 2nd centile) at 4½, and staying there.
fn faltering_weight_sds(age: f64) -> f64 {
    let t = ((age - 3.0) / 1.5).clamp(0.0, 1.0);
    FALTERING_TRACK + t * (-2.3 - FALTERING_TRACK)
}

fn years_before(day: NaiveDate, years: u32, rng: &mut fastrand::Rng) -> NaiveDate {
    let start = day
        .with_year(day.year() - i32::try_from(years).unwrap_or(30))
        .unwrap_or(day);
    start - chrono::Days::new(u64::from(rng.u32(0..365)))
}

/// Age in decimal years on a day.
fn age_years(birth: NaiveDate, on: NaiveDate) -> f64 {
    f64::from(i32::try_from((on - birth).num_days()).unwrap_or(0)) / 365.25
}

/// The resources for one family, sorted by agency.
struct Records {
    as_of: NaiveDate,
    by_agency: Vec<(Agency, Vec<Value>)>,
}

impl Records {
    fn new(as_of: NaiveDate) -> Self {
        Self {
            as_of,
            by_agency: Agency::ALL.iter().map(|a| (*a, Vec::new())).collect(),
        }
    }

    fn add(&mut self, agency: Agency, resource: Value) {
        if let Some((_, list)) = self.by_agency.iter_mut().find(|(a, _)| *a == agency) {
            list.push(resource);
        }
    }

    fn take(&mut self, agency: Agency) -> Vec<Resource> {
        self.by_agency
            .iter_mut()
            .find(|(a, _)| *a == agency)
            .map(|(_, list)| std::mem::take(list))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|value| Resource::from_value(value).ok())
            .collect()
    }

    fn family(&mut self, family: &Family, options: &Options) {
        let mut rng = fastrand::Rng::with_seed(
            options.seed ^ (family.index as u64).wrapping_mul(0x9e37_79b9),
        );
        // The GP knows everyone in the household.
        for person in std::iter::once(&family.mother)
            .chain(&family.partner)
            .chain(&family.children)
        {
            self.add(Agency::Gp, patient(Agency::Gp, person));
            self.add(
                Agency::Gp,
                encounter(
                    Agency::Gp,
                    person,
                    "gp-consultation",
                    "GP consultation",
                    person_day(person, self.as_of, &mut rng),
                ),
            );
        }
        // Midwifery: the mother, each birth in the last six years, and any current pregnancy.
        self.add(
            Agency::Midwifery,
            patient(Agency::Midwifery, &family.mother),
        );
        for child in &family.children {
            if age_years(child.birth_date, self.as_of) < 6.0 {
                self.add(Agency::Midwifery, patient(Agency::Midwifery, child));
                self.add(
                    Agency::Midwifery,
                    related_mother(Agency::Midwifery, child, &family.mother),
                );
                self.add(
                    Agency::Midwifery,
                    encounter(Agency::Midwifery, child, "birth", "Birth", child.birth_date),
                );
                self.add(
                    Agency::Midwifery,
                    measurement(
                        Agency::Midwifery,
                        child,
                        "birth-weight",
                        LOINC_BIRTH_WEIGHT,
                        "Birth weight Measured",
                        "kg",
                        round_to(birth_weight(child), 3),
                        child.birth_date,
                    ),
                );
                self.add(Agency::Midwifery, gestation_at_birth(child));
            }
        }
        if let Some(due) = family.due_date {
            self.add(Agency::Midwifery, pregnancy(&family.mother, due));
        }
        for child in &family.children {
            self.child(family, child, options, &mut rng);
        }
        // A&E: now and then a parent attends too.
        if rng.u8(0..10) == 0 {
            let day = person_day(&family.mother, self.as_of, &mut rng);
            self.add(Agency::Ae, patient(Agency::Ae, &family.mother));
            self.add(
                Agency::Ae,
                encounter(
                    Agency::Ae,
                    &family.mother,
                    "ae-attendance",
                    "A&E attendance",
                    day,
                ),
            );
        }
    }

    fn child(
        &mut self,
        family: &Family,
        child: &Person,
        options: &Options,
        rng: &mut fastrand::Rng,
    ) {
        let age = age_years(child.birth_date, self.as_of);
        let example =
            family.index == 0 && family.children.first().is_some_and(|c| c.key == child.key);
        let faltering = child.falters;
        // Health visiting: the Healthy Child Programme reviews up to age five.
        let reviews: [(&str, &str, u64); 4] = [
            ("new-birth-visit", "New birth visit", 12),
            ("6-8-week-review", "6-8 week review", 49),
            ("1-year-review", "1 year review", 365),
            ("2-year-review", "2-2½ year review", 800),
        ];
        let mut hv = false;
        for (code, display, day) in reviews {
            let when = child.birth_date + chrono::Days::new(day);
            if when <= self.as_of && options.weights_per_child.is_none() {
                hv = true;
                self.add(
                    Agency::HealthVisiting,
                    encounter(Agency::HealthVisiting, child, code, display, when),
                );
                // The faltering child's 2-year review was a home visit without scales.
                if !(faltering && code == "2-year-review") {
                    self.growth(Agency::HealthVisiting, child, when, code);
                }
            }
        }
        if let Some(count) = options.weights_per_child {
            hv = true;
            let span = (self.as_of - child.birth_date).num_days().max(1);
            for n in 0..count {
                let offset = span * i64::try_from(n + 1).unwrap_or(1)
                    / i64::try_from(count + 1).unwrap_or(1);
                let when = child.birth_date + chrono::Days::new(u64::try_from(offset).unwrap_or(0));
                let kg = child_value(child, Measure::Weight, offset, child.growth_z);
                let tag = format!("w{n}");
                self.add(
                    Agency::HealthVisiting,
                    measurement(
                        Agency::HealthVisiting,
                        child,
                        &tag,
                        LOINC_WEIGHT,
                        "Body weight",
                        "kg",
                        round_to(kg, 2),
                        when,
                    ),
                );
            }
        }
        if hv {
            self.add(
                Agency::HealthVisiting,
                patient(Agency::HealthVisiting, child),
            );
            self.add(Agency::HealthVisiting, episode(child, self.as_of));
        }
        // School nursing: school-entry review and the NCMP measurements in reception and year 6.
        if age >= 4.5 {
            self.add(Agency::SchoolNursing, patient(Agency::SchoolNursing, child));
            let entry = child.birth_date + chrono::Days::new(1690);
            self.add(
                Agency::SchoolNursing,
                encounter(
                    Agency::SchoolNursing,
                    child,
                    "school-entry-review",
                    "School entry health review",
                    entry,
                ),
            );
            if options.weights_per_child.is_none() {
                self.growth(Agency::SchoolNursing, child, entry, "ncmp-reception");
            }
            if age >= 11.0 && options.weights_per_child.is_none() {
                let year6 = child.birth_date + chrono::Days::new(3900);
                self.add(
                    Agency::SchoolNursing,
                    encounter(
                        Agency::SchoolNursing,
                        child,
                        "ncmp-year-6",
                        "NCMP year 6 measurement",
                        year6,
                    ),
                );
                self.growth(Agency::SchoolNursing, child, year6, "ncmp-year-6");
            }
        }
        if faltering {
            self.faltering_weights(child);
            return;
        }
        // A&E: about one child in five has attended; the example child always has.
        if example || rng.u8(0..5) == 0 {
            let day = if example {
                child.birth_date + chrono::Days::new(1400)
            } else {
                person_day(child, self.as_of, rng)
            };
            self.add(Agency::Ae, patient(Agency::Ae, child));
            self.add(
                Agency::Ae,
                encounter(Agency::Ae, child, "ae-attendance", "A&E attendance", day),
            );
            let (code, display) = if example || rng.bool() {
                ("125605004", "Fracture of bone")
            } else {
                ("125667009", "Contusion")
            };
            self.add(Agency::Ae, injury(child, code, display, day));
            self.add(Agency::Ae, letter(child, day));
            if example || rng.u8(0..4) == 0 {
                self.add(Agency::Ae, flag(child, day));
            }
        }
    }

    /// Weight, length or height, and (under 2) head circumference at a review, on the child's
    /// own centiles with a little measurement noise.
    fn growth(&mut self, agency: Agency, child: &Person, when: NaiveDate, tag: &str) {
        let days = (when - child.birth_date).num_days();
        let age = age_years(child.birth_date, when);
        let wobble = noise(child.key, tag);
        let weight_z = if child.falters {
            faltering_weight_sds(age)
        } else {
            child.growth_z + wobble
        };
        self.add(
            agency,
            measurement(
                agency,
                child,
                &format!("{tag}-wt"),
                LOINC_WEIGHT,
                "Body weight",
                "kg",
                round_to(child_value(child, Measure::Weight, days, weight_z), 2),
                when,
            ),
        );
        let (code, display) = if age < 2.0 {
            (LOINC_LENGTH, "Body height --lying")
        } else {
            (LOINC_HEIGHT, "Body height")
        };
        self.add(
            agency,
            measurement(
                agency,
                child,
                &format!("{tag}-ht"),
                code,
                display,
                "cm",
                round_to(
                    child_value(child, Measure::Height, days, child.growth_z - wobble),
                    1,
                ),
                when,
            ),
        );
        if age < 2.0 {
            self.add(
                agency,
                measurement(
                    agency,
                    child,
                    &format!("{tag}-hc"),
                    LOINC_HEAD,
                    "Head Occipital-frontal circumference",
                    "cm",
                    round_to(
                        child_value(child, Measure::Ofc, days, child.growth_z + wobble / 2.0),
                        1,
                    ),
                    when,
                ),
            );
        }
    }

    /// The faltering child's weights outside the health-visiting reviews: the GP at 9 months,
    /// 3 years and 4½, A&E at 3 years 9 months.
    fn faltering_weights(&mut self, child: &Person) {
        let visits: [(Agency, u64, &str, &str); 4] = [
            (Agency::Gp, 270, "gp-consultation-9m", "GP consultation"),
            (Agency::Gp, 1100, "gp-consultation-3y", "GP consultation"),
            (Agency::Ae, 1375, "ae-attendance", "A&E attendance"),
            (Agency::Gp, 1640, "gp-consultation-4y", "GP consultation"),
        ];
        for (agency, day, code, display) in visits {
            let when = child.birth_date + chrono::Days::new(day);
            self.add(agency, encounter(agency, child, code, display, when));
            let days = i64::try_from(day).unwrap_or(0);
            let z = faltering_weight_sds(age_years(child.birth_date, when));
            self.add(
                agency,
                measurement(
                    agency,
                    child,
                    &format!("{code}-wt"),
                    LOINC_WEIGHT,
                    "Body weight",
                    "kg",
                    round_to(child_value(child, Measure::Weight, days, z), 2),
                    when,
                ),
            );
        }
        self.add(Agency::Ae, patient(Agency::Ae, child));
    }
}

/// A child's sex as the growth references split it.
fn sex_of(person: &Person) -> Sex {
    if person.gender == "male" {
        Sex::Male
    } else {
        Sex::Female
    }
}

/// The value of a measurement `days` after birth at an SDS, at the age the UK-WHO chart uses.
fn child_value(child: &Person, measure: Measure, days: i64, sds: f64) -> f64 {
    let ages = Ages::from_days(days, child.gestation);
    value_for_sds(measure, sex_of(child), ages.chart, sds)
        .or_else(|| value_for_sds(measure, sex_of(child), ages.chronological, sds))
        .unwrap_or(1.0)
}

/// Birth weight on the child's own centile, for its gestation.
fn birth_weight(child: &Person) -> f64 {
    child_value(child, Measure::Weight, 0, child.growth_z)
}

/// A small, repeatable measurement error (±0.15 SD) for one child's measurement.
fn noise(key: u32, tag: &str) -> f64 {
    let seed = tag.bytes().fold(u64::from(key), |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    });
    (fastrand::Rng::with_seed(seed).f64() - 0.5) * 0.3
}

fn round_to(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

fn person_day(person: &Person, as_of: NaiveDate, rng: &mut fastrand::Rng) -> NaiveDate {
    let lived = (as_of - person.birth_date).num_days().max(1);
    person.birth_date + chrono::Days::new(u64::try_from(rng.i64(0..lived)).unwrap_or(0))
}

fn prefix(agency: Agency) -> &'static str {
    match agency {
        Agency::Midwifery => "mw",
        Agency::Ae => "ae",
        Agency::Gp => "gp",
        Agency::HealthVisiting => "hv",
        Agency::SchoolNursing => "sn",
    }
}

/// This agency's id for a person's Patient record.
pub fn patient_id(agency: Agency, person: &Person) -> String {
    format!("{}-p{}", prefix(agency), person.key)
}

fn subject(agency: Agency, person: &Person) -> Value {
    json!({"reference": format!("Patient/{}", patient_id(agency, person))})
}

fn patient(agency: Agency, person: &Person) -> Value {
    let mut patient = json!({
        "resourceType": "Patient",
        "id": patient_id(agency, person),
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": person.nhs_number.as_str()}],
        "name": [{"use": "official", "family": person.family, "given": [person.given]}],
        "gender": person.gender,
        "birthDate": person.birth_date.to_string(),
    });
    if let Some(language) = person.language {
        patient["communication"] = json!([{
            "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": language}]},
            "preferred": true
        }]);
    }
    patient
}

fn related_mother(agency: Agency, child: &Person, mother: &Person) -> Value {
    json!({
        "resourceType": "RelatedPerson",
        "id": format!("{}-rp{}-{}", prefix(agency), child.key, mother.key),
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": mother.nhs_number.as_str()}],
        "patient": subject(agency, child),
        "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH", "display": "mother"}]}],
        "name": [{"family": mother.family, "given": [mother.given]}],
        "gender": "female",
        "birthDate": mother.birth_date.to_string()
    })
}

fn encounter(agency: Agency, person: &Person, code: &str, display: &str, day: NaiveDate) -> Value {
    let class = match agency {
        Agency::Ae => ("EMER", "emergency"),
        Agency::HealthVisiting => ("HH", "home health"),
        Agency::Midwifery if code == "birth" => ("IMP", "inpatient encounter"),
        _ => ("AMB", "ambulatory"),
    };
    json!({
        "resourceType": "Encounter",
        "id": format!("{}-enc{}-{}", prefix(agency), person.key, code),
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": class.0, "display": class.1},
        "type": [{"coding": [{"system": CONTACT_TYPE_SYSTEM, "code": code, "display": display}]}],
        "subject": subject(agency, person),
        "period": {"start": format!("{day}T10:00:00Z"), "end": format!("{day}T10:40:00Z")}
    })
}

#[allow(clippy::too_many_arguments)]
fn measurement(
    agency: Agency,
    child: &Person,
    tag: &str,
    loinc: &str,
    display: &str,
    unit: &str,
    value: f64,
    day: NaiveDate,
) -> Value {
    json!({
        "resourceType": "Observation",
        "id": format!("{}-obs{}-{}", prefix(agency), child.key, tag),
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs", "display": "Vital Signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc, "display": display}]},
        "subject": subject(agency, child),
        "effectiveDateTime": format!("{day}T10:15:00Z"),
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    })
}

/// Gestation at birth as midwifery records it (LOINC 76516-4, in weeks).
fn gestation_at_birth(child: &Person) -> Value {
    let weeks = f64::from(child.gestation.weeks) + f64::from(child.gestation.days) / 7.0;
    json!({
        "resourceType": "Observation",
        "id": format!("mw-obs{}-gestation", child.key),
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": LOINC_GESTATION_AT_BIRTH, "display": "Gestational age--at birth"}],
                 "text": format!("Gestation at birth {}+{} weeks", child.gestation.weeks, child.gestation.days)},
        "subject": subject(Agency::Midwifery, child),
        "effectiveDateTime": format!("{}T10:15:00Z", child.birth_date),
        "valueQuantity": {"value": round_to(weeks, 3), "unit": "wk", "system": "http://unitsofmeasure.org", "code": "wk"}
    })
}

fn episode(child: &Person, as_of: NaiveDate) -> Value {
    let five = child
        .birth_date
        .with_year(child.birth_date.year() + 5)
        .unwrap_or(child.birth_date);
    let mut period = json!({"start": (child.birth_date + chrono::Days::new(10)).to_string()});
    let status = if five <= as_of {
        period["end"] = json!(five.to_string());
        "finished"
    } else {
        "active"
    };
    json!({
        "resourceType": "EpisodeOfCare",
        "id": format!("hv-eoc{}", child.key),
        "status": status,
        "type": [{"coding": [{"system": CONTACT_TYPE_SYSTEM, "code": "health-visiting", "display": "Health visiting caseload"}]}],
        "patient": subject(Agency::HealthVisiting, child),
        "period": period
    })
}

fn pregnancy(mother: &Person, due: NaiveDate) -> Value {
    json!({
        "resourceType": "EpisodeOfCare",
        "id": format!("mw-eoc{}-{}", mother.key, due),
        "status": "active",
        "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "77386006", "display": "Pregnancy"}]}],
        "patient": subject(Agency::Midwifery, mother),
        "period": {"start": (due - chrono::Days::new(280)).to_string()}
    })
}

fn injury(child: &Person, code: &str, display: &str, day: NaiveDate) -> Value {
    json!({
        "resourceType": "Condition",
        "id": format!("ae-cond{}-{}", child.key, day),
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved"}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "encounter-diagnosis"}]}],
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}]},
        "subject": subject(Agency::Ae, child),
        "onsetDateTime": format!("{day}T09:30:00Z"),
        "recordedDate": format!("{day}T11:00:00Z")
    })
}

fn letter(child: &Person, day: NaiveDate) -> Value {
    json!({
        "resourceType": "DocumentReference",
        "id": format!("ae-doc{}-{}", child.key, day),
        "status": "current",
        "type": {"coding": [{"system": CONTACT_TYPE_SYSTEM, "code": "ae-discharge-letter", "display": "A&E discharge letter"}]},
        "subject": subject(Agency::Ae, child),
        "date": format!("{day}T16:00:00Z"),
        "description": "Discharge summary sent to the GP",
        "content": [{"attachment": {"contentType": "text/plain", "title": "Discharge summary"}}]
    })
}

fn flag(child: &Person, day: NaiveDate) -> Value {
    json!({
        "resourceType": "Flag",
        "id": format!("ae-flag{}-{}", child.key, day),
        "status": "active",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/flag-category", "code": "safety", "display": "Safety"}]}],
        "code": {"coding": [{"system": FLAG_SYSTEM, "code": "injury-cause-inconclusive", "display": "Cause of injury inconclusive"}]},
        "subject": subject(Agency::Ae, child),
        "period": {"start": day.to_string()}
    })
}

fn transaction(resources: Vec<Resource>) -> Bundle {
    let mut bundle = Bundle::new(BundleType::Transaction);
    for resource in resources {
        let url = format!(
            "{}/{}",
            resource.type_name(),
            resource.id().unwrap_or_default()
        );
        bundle.entry.push(BundleEntry {
            resource: Some(resource),
            request: Some(BundleEntryRequest {
                method: Some("PUT".into()),
                url: Some(url),
                ..BundleEntryRequest::default()
            }),
            ..BundleEntry::default()
        });
    }
    bundle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_options_give_the_same_population() {
        let a = Population::generate(Options {
            families: 20,
            ..Options::default()
        });
        let b = Population::generate(Options {
            families: 20,
            ..Options::default()
        });
        let names = |p: &Population| {
            p.people()
                .map(|x| format!("{} {} {}", x.given, x.family, x.nhs_number))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&a), names(&b));
    }

    #[test]
    fn every_nhs_number_is_valid_unique_and_in_the_test_range() {
        let population = Population::generate(Options::default());
        let mut seen = std::collections::HashSet::new();
        for person in population.people() {
            let n = person.nhs_number.as_str();
            assert!(n.starts_with("999"), "{n} is outside the test range");
            assert!(n.parse::<NhsNumber>().is_ok());
            assert!(seen.insert(n.to_owned()), "{n} issued twice");
        }
        assert!(population.families.len() >= 200);
    }

    #[test]
    fn names_include_polish_diacritics() {
        let population = Population::generate(Options::default());
        assert!(population.people().any(|p| {
            p.family
                .chars()
                .chain(p.given.chars())
                .any(|c| "ąćęłńóśźżĄĆĘŁŃÓŚŹŻ".contains(c))
        }));
    }

    #[test]
    fn the_example_child_has_records_at_every_agency() {
        let population = Population::generate(Options {
            families: 1,
            ..Options::default()
        });
        let child = population.example_child().expect("an example child");
        let bundles = population.bundles();
        for agency in Agency::ALL {
            let id = patient_id(agency, child);
            let found = bundles
                .iter()
                .filter(|(a, _)| *a == agency)
                .flat_map(|(_, b)| &b.entry)
                .any(|e| e.resource.as_ref().and_then(Resource::id) == Some(id.as_str()));
            assert!(found, "{agency} has no record of the example child");
        }
    }

    #[test]
    fn every_generated_record_is_a_modelled_resource() {
        let population = Population::generate(Options {
            families: 30,
            ..Options::default()
        });
        let values: usize = {
            let mut records = Records::new(population.options.as_of);
            for family in &population.families {
                records.family(family, &population.options);
            }
            records.by_agency.iter().map(|(_, v)| v.len()).sum()
        };
        let parsed: usize = population
            .bundles()
            .iter()
            .map(|(_, b)| b.entry.len())
            .sum();
        assert_eq!(values, parsed, "a generated record failed to parse");
    }

    #[test]
    fn the_benchmark_set_has_exact_counts() {
        let population = Population::generate(Options {
            families: 10_000,
            max_children: Some(50),
            weights_per_child: Some(20),
            ..Options::default()
        });
        assert_eq!(population.children().count(), 50);
        let weights = population
            .bundles()
            .iter()
            .filter(|(a, _)| *a == Agency::HealthVisiting)
            .flat_map(|(_, b)| &b.entry)
            .filter(|e| matches!(&e.resource, Some(Resource::Observation(o)) if o.code.as_ref().is_some_and(|c| c.has_code("http://loinc.org", LOINC_WEIGHT))))
            .count();
        assert_eq!(weights, 50 * 20);
    }
}
