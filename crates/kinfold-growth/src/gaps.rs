//! Missing measurements: a review where a weight was expected and none was recorded (the review
//! this project learns from had a health visitor with no scales).

use chrono::NaiveDate;
use serde::Serialize;

/// A review at which the Healthy Child Programme (or the school-entry review) expects a weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// The record that says the review happened (e.g. `Encounter/hv-enc12-1-year-review`).
    pub reference: String,
    /// What it was, for people ("1 year review").
    pub label: String,
    /// When.
    pub date: NaiveDate,
    /// Which agency held it.
    pub agency: String,
}

/// A review with no weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// The review's record.
    pub review: String,
    /// What it was.
    pub label: String,
    /// When.
    pub date: NaiveDate,
    /// Which agency held it.
    pub agency: String,
    /// A plain sentence.
    pub summary: String,
}

/// The reviews with no weight recorded on the same day, by any agency.
pub fn missing_weights(reviews: &[Review], weight_dates: &[NaiveDate]) -> Vec<Gap> {
    let mut gaps: Vec<Gap> = reviews
        .iter()
        .filter(|review| !weight_dates.contains(&review.date))
        .map(|review| Gap {
            review: review.reference.clone(),
            label: review.label.clone(),
            date: review.date,
            agency: review.agency.clone(),
            summary: format!(
                "No weight was recorded at the {} on {} ({}).",
                review.label, review.date, review.agency
            ),
        })
        .collect();
    gaps.sort_by_key(|gap| gap.date);
    gaps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_without_a_weight_that_day_is_a_gap() {
        let day = |d: &str| d.parse::<NaiveDate>().expect("date");
        let review = |r: &str, d: &str| Review {
            reference: r.into(),
            label: "1 year review".into(),
            date: day(d),
            agency: "health-visiting".into(),
        };
        let reviews = [
            review("Encounter/a", "2024-01-10"),
            review("Encounter/b", "2025-01-10"),
        ];
        let gaps = missing_weights(&reviews, &[day("2024-01-10"), day("2025-01-11")]);
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].review, "Encounter/b");
        assert!(
            gaps[0]
                .summary
                .starts_with("No weight was recorded at the 1 year review")
        );
    }
}
