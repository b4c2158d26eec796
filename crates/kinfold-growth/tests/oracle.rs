//! Agreement with the RCPCH reference implementation (`rcpchgrowth` on PyPI), over the cases in
//! `tests/data/oracle-cases.csv` made by `scripts/growth/oracle_cases.py`: term and preterm
//! children, every measure and sex, the ages either side of each boundary of the UK-WHO
//! reference, and ages where there is no reference.
//!
//! Each case is checked twice: at chronological age, and at age corrected for gestation (the
//! oracle corrects every gestation; Kinfold's chart age applies the UK-WHO rule on top, which
//! the unit tests check).

use chrono::NaiveDate;
use kinfold_growth::{Ages, Gestation, Measure, Sex, sds};

/// The largest difference allowed, in SDS (the issue's requirement).
const TOLERANCE: f64 = 0.01;
/// Kinfold uses the same method as the oracle, so the worst case must be far closer than that:
/// interpolating linearly instead of by the cubic still lands within 0.01 (worst 7.6e-3 on these
/// cases), and only this bound catches it.
const SAME_METHOD: f64 = 1e-6;

struct Case {
    line: usize,
    sex: Sex,
    birth: NaiveDate,
    observed: NaiveDate,
    gestation: Gestation,
    measure: Measure,
    value: f64,
    chronological: Option<f64>,
    corrected: Option<f64>,
}

fn cases() -> Vec<Case> {
    let text = include_str!("data/oracle-cases.csv");
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#'));
    let (_, header) = lines.next().expect("header");
    assert_eq!(
        header,
        "sex,birth_date,observation_date,gestation_weeks,gestation_days,measurement_method,observation_value,chronological_sds,corrected_sds"
    );
    lines
        .map(|(index, line)| {
            let f: Vec<&str> = line.split(',').collect();
            let optional = |s: &str| (!s.is_empty()).then(|| s.parse::<f64>().expect("SDS"));
            Case {
                line: index + 1,
                sex: Sex::parse(f[0]).expect("sex"),
                birth: f[1].parse().expect("birth date"),
                observed: f[2].parse().expect("observation date"),
                gestation: Gestation::new(
                    f[3].parse().expect("weeks"),
                    f[4].parse().expect("days"),
                )
                .expect("gestation"),
                measure: Measure::parse(f[5]).expect("measure"),
                value: f[6].parse().expect("value"),
                chronological: optional(f[7]),
                corrected: optional(f[8]),
            }
        })
        .collect()
}

#[test]
fn sds_agrees_with_the_rcpch_oracle() {
    let cases = cases();
    assert!(cases.len() >= 400, "only {} cases", cases.len());
    let mut worst = (0.0_f64, 0);
    let mut failures = Vec::new();
    let mut compared = 0;
    let mut no_reference = 0;
    for case in &cases {
        let ages = Ages::new(case.birth, case.observed, case.gestation).expect("ages");
        for (age, expected, kind) in [
            (ages.chronological, case.chronological, "chronological"),
            (ages.corrected, case.corrected, "corrected"),
        ] {
            let ours = sds(case.measure, case.sex, age, case.value).ok();
            match (ours, expected) {
                (Some(ours), Some(expected)) => {
                    compared += 1;
                    let difference = (ours - expected).abs();
                    if difference > worst.0 {
                        worst = (difference, case.line);
                    }
                    if difference > TOLERANCE {
                        failures.push(format!(
                            "line {} ({kind}, {:?} {:?} at {age:.4} y = {}): ours {ours:.4}, oracle {expected:.4}",
                            case.line, case.measure, case.sex, case.value
                        ));
                    }
                }
                (None, None) => no_reference += 1,
                (ours, expected) => failures.push(format!(
                    "line {} ({kind}, {:?} at {age:.4} y): ours {ours:?}, oracle {expected:?}",
                    case.line, case.measure
                )),
            }
        }
    }
    println!(
        "{compared} SDS compared, {no_reference} agreed there is no reference; worst |ΔSDS| {:.2e} (line {})",
        worst.0, worst.1
    );
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        worst.0 < SAME_METHOD,
        "worst |ΔSDS| {} on line {}",
        worst.0,
        worst.1
    );
}

#[test]
fn the_cases_cover_what_the_issue_asks() {
    let cases = cases();
    let preterm = cases.iter().filter(|c| c.gestation.weeks < 37).count();
    assert!(preterm >= 100, "{preterm} preterm cases");
    for measure in Measure::ALL {
        assert!(
            cases.iter().filter(|c| c.measure == measure).count() >= 60,
            "{measure:?}"
        );
    }
    // Both sides of 2 weeks, 2 years and 4 years for a term baby.
    for day in [13, 14, 730, 731, 1460, 1461] {
        assert!(
            cases.iter().any(|c| (c.observed - c.birth).num_days() == day && c.gestation == Gestation::TERM),
            "no case on day {day}"
        );
    }
    assert!(
        cases.iter().any(|c| c.chronological.is_none()),
        "no case without a reference"
    );
}
