//! The UK-WHO growth reference: which table answers for an age, the LMS values there, and the
//! standard deviation score (SDS) of a measurement.
//!
//! UK-WHO joins three sources (see `data/` for each table's provenance and notice):
//!
//! * below 2 weeks after term (corrected): UK90 preterm and birth data, from 23 weeks' gestation
//!   (length from 25 weeks; no BMI);
//! * 2 weeks to 2 years: WHO 2006, length lying; 2 to 4 years: WHO 2006, height standing;
//! * 4 to 20 years: UK90 (head circumference to 18 years in boys, 17 in girls).
//!
//! Between table ages the L, M and S values are interpolated as the LMSgrowth program does:
//! a cubic through the two table ages either side, or a straight line in the first and last
//! interval of a table, where there are not two points on each side.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// Days in the decimal year that ages are counted in.
pub const DAYS_PER_YEAR: f64 = 365.25;

/// A decimal age, in years from the expected date of delivery (40 weeks), for a gestation.
const fn weeks_gestation(weeks: u32) -> f64 {
    ((weeks * 7) as f64 - 280.0) / DAYS_PER_YEAR
}

/// 23 weeks' gestation: the youngest age with any reference.
pub const YOUNGEST: f64 = weeks_gestation(23);
/// 25 weeks' gestation: the youngest age with a length reference.
pub const YOUNGEST_LENGTH: f64 = weeks_gestation(25);
/// 2 weeks after term (42 weeks' gestation): UK90 birth data below, WHO 2006 from here.
pub const TWO_WEEKS: f64 = weeks_gestation(42);
/// WHO 2006 changes from length lying to height standing at 2 years.
pub const TWO_YEARS: f64 = 2.0;
/// UK-WHO changes from WHO 2006 to UK90 at 4 years.
pub const FOUR_YEARS: f64 = 4.0;
/// The oldest age with any reference.
pub const OLDEST: f64 = 20.0;

/// Sex, as the references are split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    /// Boys.
    Male,
    /// Girls.
    Female,
}

impl Sex {
    /// Reads `male`/`female` (as FHIR `Patient.gender` and the RCPCH API spell them).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "male" | "m" => Some(Self::Male),
            "female" | "f" => Some(Self::Female),
            _ => None,
        }
    }

    /// `male` or `female`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Male => "male",
            Self::Female => "female",
        }
    }
}

/// What was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Measure {
    /// Weight in kilograms.
    Weight,
    /// Length (lying, below 2 years) or height (standing), in centimetres.
    Height,
    /// Body mass index in kg/m².
    Bmi,
    /// Head (occipito-frontal) circumference in centimetres.
    Ofc,
}

impl Measure {
    /// Every measure, in display order.
    pub const ALL: [Self; 4] = [Self::Weight, Self::Height, Self::Bmi, Self::Ofc];

    /// The name the RCPCH growth API uses: `weight`, `height`, `bmi`, `ofc`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Weight => "weight",
            Self::Height => "height",
            Self::Bmi => "bmi",
            Self::Ofc => "ofc",
        }
    }

    /// Reads the RCPCH API name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == text.trim())
    }

    /// The unit values are given in (UCUM).
    pub fn unit(self) -> &'static str {
        match self {
            Self::Weight => "kg",
            Self::Height | Self::Ofc => "cm",
            Self::Bmi => "kg/m2",
        }
    }

    /// A label for people.
    pub fn label(self) -> &'static str {
        match self {
            Self::Weight => "Weight",
            Self::Height => "Length/height",
            Self::Bmi => "Body mass index",
            Self::Ofc => "Head circumference",
        }
    }

    /// Above this |SDS| a value is taken to be a recording error, not charted: 15 for BMI,
    /// whose distribution is very skewed, and 8 otherwise.
    pub fn implausible_beyond(self) -> f64 {
        match self {
            Self::Bmi => 15.0,
            _ => 8.0,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why there is no reference for a measurement: an answer in its own right, never a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "kebab-case")]
pub enum NoReference {
    /// Below 23 weeks' gestation.
    #[error("there is no UK-WHO reference below 23 weeks' gestation")]
    BelowTwentyThreeWeeks,
    /// Length below 25 weeks' gestation.
    #[error("there is no UK-WHO length reference below 25 weeks' gestation")]
    LengthBelowTwentyFiveWeeks,
    /// BMI below 2 weeks after term.
    #[error("there is no UK-WHO BMI reference below 2 weeks of age")]
    BmiBelowTwoWeeks,
    /// Head circumference beyond the table (18 years in boys, 17 in girls).
    #[error(
        "there is no UK-WHO head circumference reference beyond 18 years in boys or 17 in girls"
    )]
    OfcBeyondTable,
    /// Above 20 years.
    #[error("there is no UK-WHO reference above 20 years")]
    AboveTwentyYears,
    /// The age or value is not a finite number, or the value is not positive.
    #[error("the age or the value is not a usable number")]
    NotANumber,
}

/// The three parameters of the LMS method at one age: Box-Cox power, median and coefficient of
/// variation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lms {
    /// L: the Box-Cox power.
    pub l: f64,
    /// M: the median.
    pub m: f64,
    /// S: the coefficient of variation.
    pub s: f64,
}

impl Lms {
    /// The SDS of a value: `((x/M)^L − 1)/(L·S)`, or `ln(x/M)/S` when L is 0. Written with
    /// `exp_m1` so that L near 0 loses no precision.
    pub fn sds(&self, value: f64) -> f64 {
        let log_ratio = (value / self.m).ln();
        if self.l == 0.0 {
            log_ratio / self.s
        } else {
            (self.l * log_ratio).exp_m1() / (self.l * self.s)
        }
    }

    /// The value at an SDS: `M·(1 + L·S·z)^(1/L)`, or `M·e^(S·z)` when L is 0; `None` where the
    /// distribution has no such value (`1 + L·S·z ≤ 0`).
    pub fn value(&self, sds: f64) -> Option<f64> {
        if self.l == 0.0 {
            return Some(self.m * (self.s * sds).exp());
        }
        let base = 1.0 + self.l * self.s * sds;
        (base > 0.0).then(|| self.m * base.powf(1.0 / self.l))
    }
}

/// The four source tables, in age order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Uk90Preterm,
    Who2006Infant,
    Who2006Child,
    Uk90Child,
}

impl Source {
    const ALL: [Self; 4] = [
        Self::Uk90Preterm,
        Self::Who2006Infant,
        Self::Who2006Child,
        Self::Uk90Child,
    ];

    fn text(self) -> &'static str {
        match self {
            Self::Uk90Preterm => include_str!("../data/uk90-preterm.csv"),
            Self::Who2006Infant => include_str!("../data/who2006-infant.csv"),
            Self::Who2006Child => include_str!("../data/who2006-child.csv"),
            Self::Uk90Child => include_str!("../data/uk90-child.csv"),
        }
    }

    fn for_age(age: f64) -> Self {
        if age < TWO_WEEKS {
            Self::Uk90Preterm
        } else if age < TWO_YEARS {
            Self::Who2006Infant
        } else if age < FOUR_YEARS {
            Self::Who2006Child
        } else {
            Self::Uk90Child
        }
    }
}

/// One measure and sex in one source table: ages ascending, with their LMS values.
#[derive(Debug, Default)]
struct Table {
    ages: Vec<f64>,
    lms: Vec<Lms>,
}

impl Table {
    /// The LMS values at an age, interpolated as LMSgrowth does. Ages outside the table are
    /// held at its ends (only an age a fraction of a day off a table's edge can be).
    fn at(&self, age: f64) -> Lms {
        let n = self.ages.len();
        let above = self.ages.partition_point(|a| *a < age);
        // An age within 0.00005 years (under an hour) of a table age takes that row as it is.
        for i in [above.wrapping_sub(1), above] {
            if i < n && same_age(self.ages[i], age) {
                return self.lms[i];
            }
        }
        if above == 0 {
            return self.lms[0];
        }
        if above == n {
            return self.lms[n - 1];
        }
        let below = above - 1;
        if below >= 1 && above + 1 < n {
            let xs = [
                self.ages[below - 1],
                self.ages[below],
                self.ages[above],
                self.ages[above + 1],
            ];
            let pick = |f: fn(&Lms) -> f64| {
                cubic(
                    age,
                    xs,
                    [
                        f(&self.lms[below - 1]),
                        f(&self.lms[below]),
                        f(&self.lms[above]),
                        f(&self.lms[above + 1]),
                    ],
                )
            };
            Lms {
                l: pick(|p| p.l),
                m: pick(|p| p.m),
                s: pick(|p| p.s),
            }
        } else {
            let (a, b) = (self.ages[below], self.ages[above]);
            let t = (age - a) / (b - a);
            let (p, q) = (self.lms[below], self.lms[above]);
            Lms {
                l: p.l + t * (q.l - p.l),
                m: p.m + t * (q.m - p.m),
                s: p.s + t * (q.s - p.s),
            }
        }
    }
}

fn same_age(a: f64, b: f64) -> bool {
    (a * 1e4).round() == (b * 1e4).round()
}

/// The cubic through four points (Lagrange form), evaluated at `x`.
fn cubic(x: f64, xs: [f64; 4], ys: [f64; 4]) -> f64 {
    let mut total = 0.0;
    for i in 0..4 {
        let mut term = ys[i];
        for j in 0..4 {
            if i != j {
                term *= (x - xs[j]) / (xs[i] - xs[j]);
            }
        }
        total += term;
    }
    total
}

/// Every table, parsed once from the files compiled into the crate.
struct References {
    /// `[source][measure][sex]`.
    tables: Vec<[[Table; 2]; 4]>,
}

fn references() -> &'static References {
    static REFERENCES: OnceLock<References> = OnceLock::new();
    REFERENCES.get_or_init(|| {
        let tables = Source::ALL
            .iter()
            .map(|source| {
                // The tables are part of the source code, and a test parses every row, so a
                // failure here is a build defect.
                parse_table(source.text()).unwrap_or_else(|fault| panic!("{fault}"))
            })
            .collect();
        References { tables }
    })
}

/// Parses one table file: `#` comment lines, a header, then `measure,sex,decimal_age,l,m,s`.
fn parse_table(text: &str) -> Result<[[Table; 2]; 4], String> {
    let mut tables: [[Table; 2]; 4] = Default::default();
    let rows = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.starts_with('#') && !line.trim().is_empty())
        .skip(1);
    for (number, line) in rows {
        let fault = || format!("growth table line {}: {line:?}", number + 1);
        let fields: Vec<&str> = line.split(',').collect();
        let [measure, sex, age, l, m, s] = fields[..] else {
            return Err(fault());
        };
        let measure = Measure::parse(measure).ok_or_else(fault)?;
        let sex = Sex::parse(sex).ok_or_else(fault)?;
        let number = |text: &str| text.parse::<f64>().map_err(|_| fault());
        let table = &mut tables[measure.index()][sex as usize];
        let age = number(age)?;
        if table.ages.last().is_some_and(|last| *last >= age) {
            return Err(fault());
        }
        table.ages.push(age);
        table.lms.push(Lms {
            l: number(l)?,
            m: number(m)?,
            s: number(s)?,
        });
    }
    Ok(tables)
}

/// Whether the UK-WHO reference covers this measure at this decimal age (years from the
/// expected date of delivery for a corrected age, from birth for a chronological one).
pub fn coverage(measure: Measure, sex: Sex, age: f64) -> Result<(), NoReference> {
    if !age.is_finite() {
        return Err(NoReference::NotANumber);
    }
    if age < YOUNGEST {
        return Err(NoReference::BelowTwentyThreeWeeks);
    }
    if age > OLDEST {
        return Err(NoReference::AboveTwentyYears);
    }
    match measure {
        Measure::Height if age < YOUNGEST_LENGTH => Err(NoReference::LengthBelowTwentyFiveWeeks),
        Measure::Bmi if age < TWO_WEEKS => Err(NoReference::BmiBelowTwoWeeks),
        Measure::Ofc => {
            let last = match sex {
                Sex::Male => 18.0,
                Sex::Female => 17.0,
            };
            if age > last {
                Err(NoReference::OfcBeyondTable)
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// The LMS values for a measure and sex at a decimal age.
pub fn lms(measure: Measure, sex: Sex, age: f64) -> Result<Lms, NoReference> {
    coverage(measure, sex, age)?;
    let source = Source::for_age(age);
    let table = &references().tables[source as usize][measure.index()][sex as usize];
    Ok(table.at(age))
}

/// The SDS of a measurement at a decimal age.
pub fn sds(measure: Measure, sex: Sex, age: f64, value: f64) -> Result<f64, NoReference> {
    if !(value.is_finite() && value > 0.0) {
        return Err(NoReference::NotANumber);
    }
    Ok(lms(measure, sex, age)?.sds(value))
}

/// The centile (0–100) of an SDS: `Φ(z)·100`.
pub fn centile(sds: f64) -> f64 {
    50.0 * libm::erfc(-sds / std::f64::consts::SQRT_2)
}

/// The measurement at an SDS and age (for drawing centile lines, and for synthetic data).
pub fn value_for_sds(measure: Measure, sex: Sex, age: f64, sds: f64) -> Option<f64> {
    lms(measure, sex, age).ok()?.value(sds)
}

/// The ages at which the reference changes source, within a range: a chart draws its centile
/// lines in separate pieces either side of each (the UK-WHO charts show the step at 2 years
/// where length lying gives way to height standing).
pub fn boundaries() -> [f64; 3] {
    [TWO_WEEKS, TWO_YEARS, FOUR_YEARS]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_parses_with_every_measure_and_sex() {
        for source in Source::ALL {
            let tables = parse_table(source.text()).expect("parses");
            for measure in Measure::ALL {
                for sex in [Sex::Male, Sex::Female] {
                    let table = &tables[measure.index()][sex as usize];
                    // UK90 has no BMI below 2 weeks: every other table has rows.
                    let expect_rows = !(source == Source::Uk90Preterm && measure == Measure::Bmi);
                    assert_eq!(
                        !table.ages.is_empty(),
                        expect_rows,
                        "{source:?} {measure:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_bad_table_row_is_named() {
        let fault = parse_table("measure,sex,decimal_age,l,m,s\nweight,male,0.1,1,x,0.1\n")
            .expect_err("fails");
        assert!(fault.contains("line 2"), "{fault}");
    }

    #[test]
    fn the_cubic_passes_through_its_points_and_is_exact_for_a_cubic() {
        let xs = [0.0, 1.0, 2.5, 4.0];
        let f = |x: f64| 2.0 * x * x * x - x + 3.0;
        let ys = xs.map(f);
        for x in [0.0, 0.3, 1.7, 3.2, 4.0] {
            assert!((cubic(x, xs, ys) - f(x)).abs() < 1e-9);
        }
    }

    #[test]
    fn sds_and_value_are_inverses_including_l_zero() {
        for lms in [
            Lms {
                l: 0.0,
                m: 10.0,
                s: 0.1,
            },
            Lms {
                l: -1.5,
                m: 17.0,
                s: 0.12,
            },
            Lms {
                l: 1.0,
                m: 50.0,
                s: 0.04,
            },
        ] {
            for z in [-3.0, -0.5, 0.0, 1.0, 2.67] {
                let x = lms.value(z).expect("in range");
                assert!((lms.sds(x) - z).abs() < 1e-12, "{lms:?} {z}");
            }
        }
    }

    #[test]
    fn centiles_of_known_sds() {
        // Φ(−2) = 0.02275, Φ(0) = 0.5, Φ(1.96) = 0.975 (standard normal tables).
        assert!((centile(-2.0) - 2.275).abs() < 1e-3);
        assert!((centile(0.0) - 50.0).abs() < 1e-12);
        assert!((centile(1.959_964) - 97.5).abs() < 1e-4);
    }
}
