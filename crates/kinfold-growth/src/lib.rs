//! Growth for Kinfold: every measurement from every agency scored against the UK-WHO growth
//! reference, NICE NG75 faltering-growth rules over the series, the gaps where a review took
//! no weight, and the chart that puts it all on one page.
//!
//! Pure: no I/O. The reference tables are compiled in from `data/` (see `data/README.md` for
//! their provenance and notices).

mod age;
pub mod chart;
mod gaps;
pub mod ng75;
mod reference;

pub use age::{AgeError, Ages, Gestation};
pub use gaps::{Gap, Review, missing_weights};
pub use reference::{
    DAYS_PER_YEAR, FOUR_YEARS, Lms, Measure, NoReference, OLDEST, Sex, TWO_WEEKS, TWO_YEARS,
    YOUNGEST, boundaries, centile, coverage, lms, sds, value_for_sds,
};

use serde::Serialize;

/// A measurement scored against the reference.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Assessment {
    /// Standard deviation score.
    pub sds: f64,
    /// Centile, 0–100.
    pub centile: f64,
    /// Beyond the plausible range for the measure: most likely a recording error, so it is
    /// shown to the clinician but not charted.
    pub implausible: bool,
}

/// Scores a measurement at a decimal age (normally [`Ages::chart`]).
pub fn assess(measure: Measure, sex: Sex, age: f64, value: f64) -> Result<Assessment, NoReference> {
    let sds = sds(measure, sex, age, value)?;
    Ok(Assessment {
        sds,
        centile: centile(sds),
        implausible: sds.abs() > measure.implausible_beyond(),
    })
}

/// The nine centile lines of the UK-WHO charts, as (label, SDS): two-thirds of an SD apart,
/// so that the space between two neighbouring lines is one "centile space".
pub const CENTILE_LINES: [(&str, f64); 9] = [
    ("0.4th", -8.0 / 3.0),
    ("2nd", -2.0),
    ("9th", -4.0 / 3.0),
    ("25th", -2.0 / 3.0),
    ("50th", 0.0),
    ("75th", 2.0 / 3.0),
    ("91st", 4.0 / 3.0),
    ("98th", 2.0),
    ("99.6th", 8.0 / 3.0),
];

/// One centile space in SDS.
pub const CENTILE_SPACE: f64 = 2.0 / 3.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centile_lines_are_the_published_centiles() {
        // The UK-WHO chart labels round Φ(z): 0.4, 2, 9, 25, 50, 75, 91, 98, 99.6.
        let published = [0.4, 2.0, 9.0, 25.0, 50.0, 75.0, 91.0, 98.0, 99.6];
        for ((label, z), expected) in CENTILE_LINES.iter().zip(published) {
            let c = centile(*z);
            let rounded = if !(1.0..=99.0).contains(&c) {
                (c * 10.0).round() / 10.0
            } else {
                c.round()
            };
            assert!((rounded - expected).abs() < 1e-9, "{label}: {c}");
        }
    }

    #[test]
    fn implausible_values_are_flagged_not_hidden() {
        // A 20 kg baby at 2 months is some 14 SD above the median: scored, and flagged.
        let a = assess(Measure::Weight, Sex::Male, 60.0 / 365.25, 20.0).expect("reference");
        assert!(a.implausible && a.sds > 8.0);
        // BMI has its own, wider limit.
        let b = assess(Measure::Bmi, Sex::Female, 10.0, 35.0).expect("reference");
        assert!(b.sds > 3.0 && !b.implausible);
    }

    #[test]
    fn ages_without_a_reference_are_answers() {
        let weeks = |w: f64| (w * 7.0 - 280.0) / 365.25;
        assert_eq!(
            sds(Measure::Weight, Sex::Male, weeks(22.5), 0.5),
            Err(NoReference::BelowTwentyThreeWeeks)
        );
        assert!(sds(Measure::Weight, Sex::Male, weeks(23.0), 0.6).is_ok());
        assert_eq!(
            sds(Measure::Height, Sex::Male, weeks(24.0), 30.0),
            Err(NoReference::LengthBelowTwentyFiveWeeks)
        );
        assert_eq!(
            sds(Measure::Bmi, Sex::Female, 10.0 / 365.25, 13.0),
            Err(NoReference::BmiBelowTwoWeeks)
        );
        assert!(sds(Measure::Ofc, Sex::Female, 17.0, 55.0).is_ok());
        assert_eq!(
            sds(Measure::Ofc, Sex::Female, 17.1, 55.0),
            Err(NoReference::OfcBeyondTable)
        );
        assert!(sds(Measure::Ofc, Sex::Male, 17.5, 57.0).is_ok());
        assert_eq!(
            sds(Measure::Weight, Sex::Male, 20.01, 70.0),
            Err(NoReference::AboveTwentyYears)
        );
        assert_eq!(
            sds(Measure::Weight, Sex::Male, 1.0, -3.0),
            Err(NoReference::NotANumber)
        );
        assert_eq!(
            sds(Measure::Weight, Sex::Male, f64::NAN, 3.0),
            Err(NoReference::NotANumber)
        );
    }

    #[test]
    fn published_who_medians_give_zero_sds() {
        // WHO 2006 weight-for-age medians (WHO Child Growth Standards, 2006, table
        // "Weight-for-age BOYS birth to 5 years (z-scores)"): 12 months 9.6 kg; girls 8.9 kg.
        let boy = sds(Measure::Weight, Sex::Male, 365.0 / 365.25, 9.6).expect("reference");
        let girl = sds(Measure::Weight, Sex::Female, 365.0 / 365.25, 8.9).expect("reference");
        assert!(boy.abs() < 0.05 && girl.abs() < 0.05, "{boy} {girl}");
    }
}
