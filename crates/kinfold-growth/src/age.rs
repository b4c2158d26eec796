//! Ages as the UK-WHO charts count them: decimal years (days / 365.25), corrected for
//! prematurity where the charts say so.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::reference::DAYS_PER_YEAR;

/// Term is 40 weeks.
const TERM_DAYS: i64 = 280;

/// Gestation at birth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gestation {
    /// Completed weeks.
    pub weeks: u8,
    /// Days beyond the completed weeks (0–6).
    pub days: u8,
}

/// A gestation that cannot be right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgeError {
    /// Outside 22+0 to 44+6 weeks, or days beyond 6.
    #[error("a gestation of {weeks}+{days} weeks is not plausible (expected 22+0 to 44+6)")]
    ImplausibleGestation {
        /// The weeks given.
        weeks: u8,
        /// The days given.
        days: u8,
    },
    /// The measurement is dated before the birth.
    #[error("the observation date is before the birth date")]
    BeforeBirth,
}

impl Gestation {
    /// A gestation, checked for plausibility.
    pub fn new(weeks: u8, days: u8) -> Result<Self, AgeError> {
        if !(22..=44).contains(&weeks) || days > 6 {
            return Err(AgeError::ImplausibleGestation { weeks, days });
        }
        Ok(Self { weeks, days })
    }

    /// Term (40+0), assumed when the gestation is not recorded.
    pub const TERM: Self = Self { weeks: 40, days: 0 };

    /// Days of gestation.
    pub fn in_days(self) -> i64 {
        i64::from(self.weeks) * 7 + i64::from(self.days)
    }

    /// Until what chronological age (years) the UK-WHO charts correct for this gestation:
    /// born before 32 weeks, until 2 years; before 37 weeks, until 1 year; otherwise never.
    pub fn corrected_until(self) -> Option<f64> {
        match self.weeks {
            0..32 => Some(2.0),
            32..37 => Some(1.0),
            _ => None,
        }
    }
}

/// The ages of one measurement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ages {
    /// Days since birth.
    pub days: i64,
    /// Decimal years since birth.
    pub chronological: f64,
    /// Decimal years since the expected date of delivery (40 weeks); negative before it.
    pub corrected: f64,
    /// The age the measurement is charted and scored at: corrected while the charts correct
    /// for this gestation, chronological otherwise.
    pub chart: f64,
    /// Whether `chart` is the corrected age.
    pub is_corrected: bool,
}

impl Ages {
    /// The ages of a measurement taken on `observed` of a child born on `birth`.
    pub fn new(
        birth: NaiveDate,
        observed: NaiveDate,
        gestation: Gestation,
    ) -> Result<Self, AgeError> {
        let days = (observed - birth).num_days();
        if days < 0 {
            return Err(AgeError::BeforeBirth);
        }
        Ok(Self::from_days(days, gestation))
    }

    /// The ages `days` after birth.
    pub fn from_days(days: i64, gestation: Gestation) -> Self {
        let chronological = years(days);
        let corrected = years(days - (TERM_DAYS - gestation.in_days()));
        let is_corrected = gestation
            .corrected_until()
            .is_some_and(|until| chronological < until);
        Self {
            days,
            chronological,
            corrected,
            chart: if is_corrected {
                corrected
            } else {
                chronological
            },
            is_corrected,
        }
    }
}

#[allow(clippy::cast_precision_loss)] // ages in days are far below 2^52
fn years(days: i64) -> f64 {
    days as f64 / DAYS_PER_YEAR
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().expect("date")
    }

    #[test]
    fn a_term_baby_is_never_corrected() {
        let ages = Ages::new(
            day("2024-01-01"),
            day("2024-03-01"),
            Gestation::new(38, 2).expect("ok"),
        )
        .expect("ages");
        assert_eq!(ages.days, 60);
        assert!(!ages.is_corrected);
        assert!((ages.chart - 60.0 / 365.25).abs() < 1e-12);
    }

    #[test]
    fn before_37_weeks_corrects_until_one_year() {
        let gestation = Gestation::new(34, 0).expect("ok");
        let young = Ages::from_days(300, gestation);
        assert!(young.is_corrected);
        assert!((young.chart - (300.0 - 42.0) / 365.25).abs() < 1e-12);
        let older = Ages::from_days(366, gestation);
        assert!(!older.is_corrected);
        assert!((older.chart - 366.0 / 365.25).abs() < 1e-12);
    }

    #[test]
    fn before_32_weeks_corrects_until_two_years() {
        let gestation = Gestation::new(27, 3).expect("ok");
        assert!(Ages::from_days(600, gestation).is_corrected);
        assert!(Ages::from_days(730, gestation).is_corrected);
        assert!(!Ages::from_days(731, gestation).is_corrected);
        // At birth a 27+3 baby is 12+4 weeks before term.
        assert!((Ages::from_days(0, gestation).corrected - (-88.0 / 365.25)).abs() < 1e-12);
    }

    #[test]
    fn implausible_gestations_and_dates_are_refused() {
        assert!(Gestation::new(21, 6).is_err());
        assert!(Gestation::new(45, 0).is_err());
        assert!(Gestation::new(30, 7).is_err());
        assert_eq!(
            Ages::new(day("2024-01-02"), day("2024-01-01"), Gestation::TERM),
            Err(AgeError::BeforeBirth)
        );
    }
}
