//! Faltering growth, by the thresholds of NICE guideline NG75, "Faltering growth: recognition
//! and management of faltering growth in children" (2017).
//!
//! The rules are data ([`FALL_RULES`], [`EARLY_LOSS_LIMIT`], [`REGAIN_BY_DAYS`],
//! [`LOW_WEIGHT_SDS`]) with the guideline's wording beside them, so a clinician can check each
//! against the text. Centiles are the UK-WHO chart lines: one centile space is 2/3 SD, the
//! 9th and 91st centile lines are at ∓4/3 SD and the 2nd at −2 SD.
//!
//! Every SDS here is at the chart age ([`crate::Ages::chart`]), so a preterm baby is judged at
//! its corrected age while the charts correct, and raises no alarm from its chronological age.

use chrono::NaiveDate;
use serde::Serialize;

use crate::{Ages, CENTILE_SPACE, Measure, Sex, TWO_WEEKS};

/// One weight in the series.
#[derive(Debug, Clone, PartialEq)]
pub struct Weight {
    /// The record it came from (e.g. `Observation/gp-obs12-w3`).
    pub reference: String,
    /// When it was taken.
    pub date: NaiveDate,
    /// The child's ages then.
    pub ages: Ages,
    /// Kilograms.
    pub kg: f64,
    /// SDS at the chart age, where there is a reference and the value is plausible.
    pub sds: Option<f64>,
    /// The agency that took it.
    pub agency: String,
    /// Recorded as the birth weight.
    pub is_birth_weight: bool,
}

impl Weight {
    /// A weight, scored at the chart age (implausible values get no SDS, so no rule uses them).
    pub fn new(
        reference: impl Into<String>,
        date: NaiveDate,
        ages: Ages,
        kg: f64,
        sex: Sex,
        agency: impl Into<String>,
    ) -> Self {
        let sds = crate::assess(Measure::Weight, sex, ages.chart, kg)
            .ok()
            .filter(|a| !a.implausible)
            .map(|a| a.sds);
        Self {
            reference: reference.into(),
            date,
            ages,
            kg,
            sds,
            agency: agency.into(),
            is_birth_weight: false,
        }
    }
}

/// Which rule a finding comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// A fall across centile spaces, the threshold set by the birth-weight centile.
    FallAcrossCentiles,
    /// Current weight below the 2nd centile.
    BelowSecondCentile,
    /// Weight loss of more than 10% of birth weight in the early days of life.
    EarlyWeightLoss,
    /// Birth weight not regained by 3 weeks.
    BirthWeightNotRegained,
}

/// Birth-weight bands of the fall rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BirthBand {
    /// Birth weight below the 9th centile.
    #[serde(rename = "below-9th")]
    Below9th,
    /// Between the 9th and 91st centiles.
    #[serde(rename = "9th-to-91st")]
    Between9thAnd91st,
    /// Above the 91st centile.
    #[serde(rename = "above-91st")]
    Above91st,
}

/// The fall-across-centiles rule for one birth-weight band.
#[derive(Debug, Clone, Copy)]
pub struct FallRule {
    /// The band.
    pub band: BirthBand,
    /// Birth-weight SDS range `[from, to)`.
    pub birth_sds: (f64, f64),
    /// A fall of this many centile spaces or more is a concern.
    pub spaces: f64,
    /// The guideline's words.
    pub wording: &'static str,
}

/// NG75, thresholds for concern about faltering growth after the early days of life.
pub const FALL_RULES: [FallRule; 3] = [
    FallRule {
        band: BirthBand::Below9th,
        birth_sds: (f64::NEG_INFINITY, -4.0 / 3.0),
        spaces: 1.0,
        wording: "a fall across 1 or more weight centile spaces, if birthweight was below the 9th centile",
    },
    FallRule {
        band: BirthBand::Between9thAnd91st,
        birth_sds: (-4.0 / 3.0, 4.0 / 3.0),
        spaces: 2.0,
        wording: "a fall across 2 or more weight centile spaces, if birthweight was between the 9th and 91st centiles",
    },
    FallRule {
        band: BirthBand::Above91st,
        birth_sds: (4.0 / 3.0, f64::INFINITY),
        spaces: 3.0,
        wording: "a fall across 3 or more weight centile spaces, if birthweight was above the 91st centile",
    },
];

/// NG75: "when current weight is below the 2nd centile for age, whatever the birthweight".
pub const LOW_WEIGHT_SDS: f64 = -2.0;
/// The wording of the low-weight threshold.
pub const LOW_WEIGHT_WORDING: &str =
    "current weight below the 2nd centile for age, whatever the birthweight";
/// NG75 recommendation 1.1.2: infants who "in the early days of life lose more than 10% of
/// their birth weight". Early days are taken as the first 14 days.
pub const EARLY_LOSS_LIMIT: f64 = 0.10;
/// The wording of the early-loss threshold.
pub const EARLY_LOSS_WORDING: &str =
    "in the early days of life, a loss of more than 10% of birth weight";
/// The first days of life, for the early-loss rule.
pub const EARLY_DAYS: i64 = 14;
/// NG75 recommendation 1.1.1: "most infants have returned to their birth weight by 3 weeks of
/// age"; NG75 asks for assessment when one has not.
pub const REGAIN_BY_DAYS: i64 = 21;
/// The wording of the regain threshold.
pub const REGAIN_WORDING: &str = "birth weight not regained by 3 weeks of age";

/// One concern raised.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The rule.
    pub rule: Rule,
    /// The guideline's words for it.
    pub guideline: &'static str,
    /// What was found, in a sentence.
    pub summary: String,
    /// The measurements that triggered it, earliest first.
    pub measurements: Vec<String>,
    /// The agencies that took them, in order of first appearance.
    pub agencies: Vec<String>,
    /// For a fall: how many centile spaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub centile_spaces: Option<f64>,
    /// For a fall: the birth-weight band that set the threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_band: Option<BirthBand>,
    /// For a fall: the last measurement still within half a centile space of the highest
    /// centile reached, where the fall began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fall_began: Option<String>,
}

impl Finding {
    fn new(rule: Rule, guideline: &'static str, summary: String, triggers: &[&Weight]) -> Self {
        let mut agencies: Vec<String> = Vec::new();
        for weight in triggers {
            if !agencies.contains(&weight.agency) {
                agencies.push(weight.agency.clone());
            }
        }
        Self {
            rule,
            guideline,
            summary,
            measurements: triggers.iter().map(|w| w.reference.clone()).collect(),
            agencies,
            centile_spaces: None,
            birth_band: None,
            fall_began: None,
        }
    }
}

/// The weight recorded as the birth weight, else one taken on the day of birth.
fn birth_weight(weights: &[&Weight]) -> Option<usize> {
    weights
        .iter()
        .position(|w| w.is_birth_weight)
        .or_else(|| weights.iter().position(|w| w.ages.days == 0))
}

/// Applies every rule to a child's weights (any order) and returns what it finds.
pub fn assess(weights: &[Weight]) -> Vec<Finding> {
    let mut series: Vec<&Weight> = weights.iter().collect();
    series.sort_by_key(|w| (w.date, !w.is_birth_weight));
    let mut findings = Vec::new();
    let birth = birth_weight(&series).map(|i| series[i]);

    if let Some(birth) = birth {
        if let Some(low) = series.iter().find(|w| {
            (1..=EARLY_DAYS).contains(&w.ages.days) && w.kg < birth.kg * (1.0 - EARLY_LOSS_LIMIT)
        }) {
            let loss = 100.0 * (birth.kg - low.kg) / birth.kg;
            findings.push(Finding::new(
                Rule::EarlyWeightLoss,
                EARLY_LOSS_WORDING,
                format!(
                    "On day {} the weight was {:.3} kg, {loss:.1}% below the birth weight of {:.3} kg.",
                    low.ages.days, low.kg, birth.kg
                ),
                &[birth, low],
            ));
        }
        if let Some(first) = series.iter().find(|w| w.ages.days >= REGAIN_BY_DAYS)
            && first.kg < birth.kg
        {
            findings.push(Finding::new(
                Rule::BirthWeightNotRegained,
                REGAIN_WORDING,
                format!(
                    "The first weight after 3 weeks (day {}, {:.3} kg) was still below the birth weight of {:.3} kg.",
                    first.ages.days, first.kg, birth.kg
                ),
                &[birth, first],
            ));
        }
    }

    // The fall and low-weight rules are about the child now: the latest weight with a score,
    // taken after the early days (from 2 weeks after term on the chart).
    let scored: Vec<&Weight> = series.iter().copied().filter(|w| w.sds.is_some()).collect();
    let Some((current, earlier)) = scored.split_last() else {
        return findings;
    };
    let current_sds = current.sds.unwrap_or_default();
    if current.ages.chart < TWO_WEEKS {
        return findings;
    }
    if current_sds < LOW_WEIGHT_SDS {
        findings.push(Finding::new(
            Rule::BelowSecondCentile,
            LOW_WEIGHT_WORDING,
            format!(
                "The latest weight ({:.1} kg on {}) is at the {} centile, below the 2nd.",
                current.kg,
                current.date,
                ordinal_centile(current_sds)
            ),
            &[current],
        ));
    }
    // The fall is measured from the highest centile reached before now: the birth weight, or
    // any weight after the early days (weights in the first two weeks swing with feeding and
    // fluid, and NG75 treats that period by its own rules above).
    let peak = earlier
        .iter()
        .copied()
        .filter(|w| w.is_birth_weight || w.ages.days > EARLY_DAYS)
        .max_by(|a, b| {
            a.sds
                .unwrap_or_default()
                .total_cmp(&b.sds.unwrap_or_default())
        });
    if let Some(peak) = peak {
        let birth_sds = birth.and_then(|b| b.sds);
        let rule = FALL_RULES
            .iter()
            .find(|rule| {
                let sds = birth_sds.unwrap_or(0.0);
                sds >= rule.birth_sds.0 && sds < rule.birth_sds.1
            })
            .unwrap_or(&FALL_RULES[1]);
        let spaces = (peak.sds.unwrap_or_default() - current_sds) / CENTILE_SPACE;
        if spaces >= rule.spaces {
            let band = match birth_sds {
                Some(_) => format!("the birth weight was {}", band_words(rule.band)),
                None => "no birth weight is recorded, so the middle band is assumed".to_owned(),
            };
            // Where the fall began: the last weight still within half a centile space of the
            // peak. The finding names the birth weight (which set the threshold) and every
            // weight from there to now: the whole fall, and every agency that saw part of it.
            let peak_sds = peak.sds.unwrap_or_default();
            let after_early_days = |w: &&Weight| w.is_birth_weight || w.ages.days > EARLY_DAYS;
            let began = earlier
                .iter()
                .copied()
                .filter(after_early_days)
                .filter(|w| w.date >= peak.date)
                .rfind(|w| w.sds.unwrap_or_default() >= peak_sds - CENTILE_SPACE / 2.0)
                .unwrap_or(peak);
            let mut triggers: Vec<&Weight> = birth.into_iter().collect();
            for weight in scored.iter().copied().filter(|w| w.date >= began.date) {
                if !triggers.iter().any(|t| t.reference == weight.reference) {
                    triggers.push(weight);
                }
            }
            let mut finding = Finding::new(
                Rule::FallAcrossCentiles,
                rule.wording,
                format!(
                    "Weight fell {spaces:.1} centile spaces, from the {} centile on {} ({}) to the {} centile on {}; the highest centile reached was first reached on {}. {}, so a fall of {} or more is a concern.",
                    ordinal_centile(began.sds.unwrap_or(peak_sds)),
                    began.date,
                    began.agency,
                    ordinal_centile(current_sds),
                    current.date,
                    peak.date,
                    capitalise(&band),
                    rule.spaces,
                ),
                &triggers,
            );
            finding.fall_began = Some(began.reference.clone());
            finding.centile_spaces = Some((spaces * 100.0).round() / 100.0);
            finding.birth_band = Some(rule.band);
            findings.push(finding);
        }
    }
    findings
}

/// A finding as it stood on a day: met then, whether or not it holds now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatedFinding {
    /// The day the threshold was first met (the date of the weight that met it).
    pub date: NaiveDate,
    /// The finding as it was then.
    #[serde(flatten)]
    pub finding: Finding,
}

/// Every episode in which a rule was met, dated by the weight that first met it: the rules
/// applied to the weights as they stood after each one, in order. A fall of two centile spaces
/// met at nine months stays on record, dated, after the child has recovered by twelve, which
/// [`assess`] (about the child now) no longer reports. A rule met again after it stopped being
/// met is a new episode.
pub fn history(weights: &[Weight]) -> Vec<DatedFinding> {
    let mut series: Vec<&Weight> = weights.iter().collect();
    series.sort_by_key(|w| (w.date, !w.is_birth_weight));
    let mut episodes = Vec::new();
    let mut open: Vec<Rule> = Vec::new();
    for end in 0..series.len() {
        let so_far: Vec<Weight> = series[..=end].iter().map(|w| (*w).clone()).collect();
        let found = assess(&so_far);
        let now: Vec<Rule> = found.iter().map(|f| f.rule).collect();
        for finding in found {
            if !open.contains(&finding.rule) {
                episodes.push(DatedFinding {
                    date: series[end].date,
                    finding,
                });
            }
        }
        open = now;
    }
    episodes
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn band_words(band: BirthBand) -> &'static str {
    match band {
        BirthBand::Below9th => "below the 9th centile",
        BirthBand::Between9thAnd91st => "between the 9th and 91st centiles",
        BirthBand::Above91st => "above the 91st centile",
    }
}

/// A centile for people: "0.3rd", "2nd", "41st", "99.7th".
pub fn ordinal_centile(sds: f64) -> String {
    let c = crate::centile(sds);
    // Whole centiles in the middle; tenths near the ends, as the chart labels them.
    let (text, n) = if (1.0..=99.0).contains(&c) {
        let n = c.round() as i64;
        (n.to_string(), n)
    } else {
        let tenths = (c * 10.0).round() as i64;
        (format!("{}.{}", tenths / 10, tenths % 10), tenths)
    };
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{text}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Gestation, value_for_sds};

    const SEX: Sex = Sex::Female;

    /// A weight `days` after birth on the given SDS (at the chart age), from one agency.
    fn at(days: i64, sds: f64, agency: &str, gestation: Gestation) -> Weight {
        let ages = Ages::from_days(days, gestation);
        let kg = value_for_sds(Measure::Weight, SEX, ages.chart, sds).expect("reference");
        let date =
            NaiveDate::from_ymd_opt(2020, 1, 1).expect("date") + chrono::Days::new(days as u64);
        let mut w = Weight::new(
            format!("Observation/{agency}-{days}"),
            date,
            ages,
            kg,
            SEX,
            agency,
        );
        w.is_birth_weight = days == 0;
        w
    }

    fn term(days: i64, sds: f64, agency: &str) -> Weight {
        at(days, sds, agency, Gestation::TERM)
    }

    fn rules(findings: &[Finding]) -> Vec<Rule> {
        findings.iter().map(|f| f.rule).collect()
    }

    #[test]
    fn steady_growth_raises_nothing() {
        let series: Vec<Weight> = [0, 10, 30, 60, 180, 365, 730, 1100, 1600]
            .into_iter()
            .map(|d| term(d, 0.4, "gp"))
            .collect();
        assert_eq!(assess(&series), vec![]);
    }

    #[test]
    fn a_fall_met_at_nine_months_stays_on_record_after_recovery_by_twelve() {
        // The example: born on the 50th, a fall of 2.1 centile spaces by nine months
        // (day 274), back on the 50th by twelve (day 365).
        let series = [
            term(0, 0.0, "midwifery"),
            term(60, 0.0, "health-visiting"),
            term(274, -2.1 * CENTILE_SPACE, "gp"),
            term(365, 0.0, "health-visiting"),
        ];
        // About the child now: nothing.
        assert!(!rules(&assess(&series)).contains(&Rule::FallAcrossCentiles));
        // Over time: the fall, dated the day the nine-month weight met it.
        let past = history(&series);
        let falls: Vec<&DatedFinding> = past
            .iter()
            .filter(|d| d.finding.rule == Rule::FallAcrossCentiles)
            .collect();
        assert_eq!(falls.len(), 1, "{past:?}");
        assert_eq!(
            falls[0].date,
            NaiveDate::from_ymd_opt(2020, 10, 1).expect("date")
        );
        assert_eq!(
            falls[0].finding.measurements.last().map(String::as_str),
            Some("Observation/gp-274")
        );
        // Steady growth has no history either.
        let steady: Vec<Weight> = [0, 30, 180, 365]
            .into_iter()
            .map(|d| term(d, 0.4, "gp"))
            .collect();
        assert!(history(&steady).is_empty());
    }

    #[test]
    fn middle_band_needs_two_spaces() {
        // Birth weight on the 50th (middle band): 1.9 spaces is not enough, 2.1 is.
        let small = [
            term(0, 0.0, "midwifery"),
            term(100, 0.0, "gp"),
            term(400, -1.9 * CENTILE_SPACE, "ae"),
        ];
        assert!(!rules(&assess(&small)).contains(&Rule::FallAcrossCentiles));
        let big = [
            term(0, 0.0, "midwifery"),
            term(100, 0.0, "gp"),
            term(400, -2.1 * CENTILE_SPACE, "ae"),
        ];
        let findings = assess(&big);
        let fall = findings
            .iter()
            .find(|f| f.rule == Rule::FallAcrossCentiles)
            .expect("fall");
        assert_eq!(fall.birth_band, Some(BirthBand::Between9thAnd91st));
        assert_eq!(fall.agencies, vec!["midwifery", "gp", "ae"]);
        // The words say the fall began where the chart draws it from: the GP's weight on day
        // 100 (2020-04-10), the last still on the 50th centile.
        assert_eq!(fall.fall_began.as_deref(), Some("Observation/gp-100"));
        assert!(
            fall.summary.starts_with(
                "Weight fell 2.1 centile spaces, from the 50th centile on 2020-04-10 (gp) to "
            ),
            "{}",
            fall.summary
        );
    }

    #[test]
    fn low_birth_weight_needs_one_space() {
        // Birth weight on the 5th centile (below the 9th): a 1.1-space fall is a concern.
        let series = [
            term(0, -1.6, "midwifery"),
            term(60, -1.6, "health-visiting"),
            term(300, -1.6 - 1.1 * CENTILE_SPACE, "gp"),
        ];
        let findings = assess(&series);
        let fall = findings
            .iter()
            .find(|f| f.rule == Rule::FallAcrossCentiles)
            .expect("fall");
        assert_eq!(fall.birth_band, Some(BirthBand::Below9th));
        let mild = [
            term(0, -1.6, "midwifery"),
            term(300, -1.6 - 0.9 * CENTILE_SPACE, "gp"),
        ];
        assert!(!rules(&assess(&mild)).contains(&Rule::FallAcrossCentiles));
    }

    #[test]
    fn high_birth_weight_needs_three_spaces() {
        let two_and_a_half = [
            term(0, 1.6, "midwifery"),
            term(300, 1.6 - 2.5 * CENTILE_SPACE, "gp"),
        ];
        assert!(!rules(&assess(&two_and_a_half)).contains(&Rule::FallAcrossCentiles));
        let three = [
            term(0, 1.6, "midwifery"),
            term(300, 1.6 - 3.1 * CENTILE_SPACE, "gp"),
        ];
        let findings = assess(&three);
        let fall = findings
            .iter()
            .find(|f| f.rule == Rule::FallAcrossCentiles)
            .expect("fall");
        assert_eq!(fall.birth_band, Some(BirthBand::Above91st));
    }

    #[test]
    fn below_the_second_centile_whatever_the_birth_weight() {
        let series = [term(0, -1.8, "midwifery"), term(200, -2.1, "gp")];
        let findings = assess(&series);
        let low = findings
            .iter()
            .find(|f| f.rule == Rule::BelowSecondCentile)
            .expect("low");
        assert_eq!(low.measurements, vec!["Observation/gp-200"]);
        assert!(low.summary.contains("below the 2nd"), "{}", low.summary);
        let fine = [term(0, -1.8, "midwifery"), term(200, -1.9, "gp")];
        assert!(!rules(&assess(&fine)).contains(&Rule::BelowSecondCentile));
    }

    #[test]
    fn early_loss_over_ten_percent() {
        let mut birth = term(0, 0.0, "midwifery");
        birth.kg = 3.5;
        let mut day4 = term(4, 0.0, "midwifery");
        day4.kg = 3.1; // 11.4% down
        let findings = assess(&[birth.clone(), day4]);
        assert!(rules(&findings).contains(&Rule::EarlyWeightLoss));
        let mut day4 = term(4, 0.0, "midwifery");
        day4.kg = 3.2; // 8.6% down
        assert!(!rules(&assess(&[birth, day4])).contains(&Rule::EarlyWeightLoss));
    }

    #[test]
    fn birth_weight_not_regained_by_three_weeks() {
        let mut birth = term(0, 0.0, "midwifery");
        birth.kg = 3.5;
        let mut day24 = term(24, 0.0, "health-visiting");
        day24.kg = 3.4;
        let findings = assess(&[birth.clone(), day24]);
        let not_back = findings
            .iter()
            .find(|f| f.rule == Rule::BirthWeightNotRegained)
            .expect("finding");
        assert_eq!(not_back.agencies, vec!["midwifery", "health-visiting"]);
        let mut day24 = term(24, 0.0, "health-visiting");
        day24.kg = 3.6;
        assert!(!rules(&assess(&[birth, day24])).contains(&Rule::BirthWeightNotRegained));
    }

    #[test]
    fn a_preterm_baby_on_its_centile_raises_no_alarm() {
        // Born at 28 weeks, growing along the 25th centile for corrected age.
        let gestation = Gestation::new(28, 0).expect("gestation");
        let series: Vec<Weight> = [0, 30, 90, 200]
            .into_iter()
            .map(|d| at(d, -0.67, "gp", gestation))
            .collect();
        assert_eq!(assess(&series), vec![]);
        // Scored at chronological age, the same weights would fall below the 2nd centile.
        let chronological: Vec<Weight> = series
            .iter()
            .map(|w| {
                let ages = Ages::from_days(w.ages.days, Gestation::TERM);
                Weight::new(w.reference.clone(), w.date, ages, w.kg, SEX, "gp")
            })
            .collect();
        assert!(rules(&assess(&chronological)).contains(&Rule::BelowSecondCentile));
    }

    #[test]
    fn ordinal_centiles_read_naturally() {
        assert_eq!(ordinal_centile(0.0), "50th");
        assert_eq!(ordinal_centile(-2.0), "2nd");
        assert_eq!(ordinal_centile(1.35), "91st");
        assert_eq!(ordinal_centile(-2.8), "0.3rd");
        assert_eq!(ordinal_centile(-8.0 / 3.0), "0.4th");
        assert_eq!(ordinal_centile(2.7), "99.7th");
    }
}
