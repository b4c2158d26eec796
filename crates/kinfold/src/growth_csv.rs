//! `kinfold growth`: scores a CSV of measurements against UK-WHO, for clinicians and analysts
//! (for instance checking a school's NCMP measurements).
//!
//! Input columns, as the RCPCH growth API names them: `sex` (male/female), `birth_date`,
//! `observation_date` (YYYY-MM-DD), `gestation_weeks` and `gestation_days` (blank or 0: term),
//! `measurement_method` (weight kg, height cm, bmi kg/m², ofc cm), `observation_value`. Any
//! other columns are passed through. Output: the same rows with `sds`, `centile` and `flag`
//! added; `sds` and `centile` are empty where there is no reference, and `flag` says why
//! (`no-reference: …`) or marks an `implausible` value. Ages are corrected for prematurity as
//! the UK-WHO charts do. A row that cannot be read is reported on the error stream with its
//! line number and left out; every other row still comes out.

use std::io::{Read, Write};

use chrono::NaiveDate;
use kinfold_growth::{Ages, Gestation, Measure, Sex, assess};

const REQUIRED: [&str; 7] = [
    "sex",
    "birth_date",
    "observation_date",
    "gestation_weeks",
    "gestation_days",
    "measurement_method",
    "observation_value",
];

/// How a run went.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Rows written.
    pub written: usize,
    /// Rows reported as bad and left out.
    pub rejected: usize,
}

/// Reads CSV from `input`, writes scored CSV to `output`, reports bad rows to `errors`. An
/// `Err` means the file as a whole could not be processed (no header, a missing column, or
/// an I/O failure).
pub fn run(
    input: impl Read,
    output: impl Write,
    mut errors: impl Write,
) -> Result<Summary, String> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| format!("cannot read the header: {e}"))?
        .clone();
    let mut columns = [0usize; 7];
    for (slot, name) in columns.iter_mut().zip(REQUIRED) {
        *slot = headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| {
                format!(
                    "the header has no `{name}` column (expected: {})",
                    REQUIRED.join(", ")
                )
            })?;
    }
    let mut writer = csv::Writer::from_writer(output);
    let mut out_headers = headers.clone();
    for extra in ["sds", "centile", "flag"] {
        out_headers.push_field(extra);
    }
    writer
        .write_record(&out_headers)
        .map_err(|e| e.to_string())?;
    let mut summary = Summary::default();
    for (index, row) in reader.records().enumerate() {
        // The header is line 1.
        let line = row
            .as_ref()
            .ok()
            .and_then(|r| r.position())
            .map_or(index + 2, |p| p.line() as usize);
        let scored = row
            .map_err(|e| e.to_string())
            .and_then(|row| score(&row, &columns).map(|fields| (row, fields)));
        match scored {
            Ok((mut row, fields)) => {
                for field in fields {
                    row.push_field(&field);
                }
                writer.write_record(&row).map_err(|e| e.to_string())?;
                summary.written += 1;
            }
            Err(why) => {
                summary.rejected += 1;
                writeln!(errors, "line {line}: {why}").map_err(|e| e.to_string())?;
            }
        }
    }
    writer.flush().map_err(|e| e.to_string())?;
    Ok(summary)
}

/// The `sds`, `centile` and `flag` fields for one row.
fn score(row: &csv::StringRecord, columns: &[usize; 7]) -> Result<[String; 3], String> {
    let field = |i: usize| row.get(columns[i]).unwrap_or("").trim();
    let sex =
        Sex::parse(field(0)).ok_or_else(|| format!("sex {:?} is not male or female", field(0)))?;
    let date = |i: usize| {
        field(i)
            .parse::<NaiveDate>()
            .map_err(|_| format!("{} {:?} is not a date (YYYY-MM-DD)", REQUIRED[i], field(i)))
    };
    let birth = date(1)?;
    let observed = date(2)?;
    let whole = |i: usize| -> Result<u8, String> {
        match field(i) {
            "" => Ok(0),
            text => text
                .parse::<u8>()
                .map_err(|_| format!("{} {text:?} is not a whole number", REQUIRED[i])),
        }
    };
    let gestation = match (whole(3)?, whole(4)?) {
        (0, _) => Gestation::TERM,
        (weeks, days) => Gestation::new(weeks, days).map_err(|e| e.to_string())?,
    };
    let measure = Measure::parse(field(5)).ok_or_else(|| {
        format!(
            "measurement_method {:?} is not weight, height, bmi or ofc",
            field(5)
        )
    })?;
    let value = field(6)
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
        .ok_or_else(|| format!("observation_value {:?} is not a positive number", field(6)))?;
    let ages = Ages::new(birth, observed, gestation).map_err(|e| e.to_string())?;
    Ok(match assess(measure, sex, ages.chart, value) {
        Ok(a) => [
            format!("{:.3}", a.sds),
            format!("{:.2}", a.centile),
            if a.implausible {
                "implausible".into()
            } else {
                String::new()
            },
        ],
        Err(why) => [String::new(), String::new(), format!("no-reference: {why}")],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_str(input: &str) -> (String, String, Summary) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let summary = run(input.as_bytes(), &mut out, &mut err).expect("runs");
        (
            String::from_utf8(out).expect("utf8"),
            String::from_utf8(err).expect("utf8"),
            summary,
        )
    }

    #[test]
    fn good_rows_are_scored_and_bad_rows_named_by_line() {
        let input = "pupil,sex,birth_date,observation_date,gestation_weeks,gestation_days,measurement_method,observation_value\n\
            A1,female,2020-01-01,2021-01-01,40,0,weight,8.9\n\
            A2,male,2020-01-01,2021-01-01,,,height,notanumber\n\
            A3,male,2020-01-01,2020-01-05,40,0,bmi,13\n\
            A4,female,2020-01-01,2021-01-01,40,0,weight,40\n\
            A5,unknown,2020-01-01,2021-01-01,40,0,weight,9\n";
        let (out, err, summary) = run_str(input);
        assert_eq!(
            summary,
            Summary {
                written: 3,
                rejected: 2
            }
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "pupil,sex,birth_date,observation_date,gestation_weeks,gestation_days,measurement_method,observation_value,sds,centile,flag"
        );
        // WHO 2006 median weight for girls at 12 months is 8.9 kg: SDS about 0.
        let a1: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(a1[0], "A1");
        assert!(
            a1[8].parse::<f64>().expect("sds").abs() < 0.05,
            "{}",
            lines[1]
        );
        assert!(
            lines[2].starts_with("A3,")
                && lines[2].contains(",,,no-reference: there is no UK-WHO BMI reference"),
            "{}",
            lines[2]
        );
        assert!(
            lines[3].starts_with("A4,") && lines[3].ends_with(",implausible"),
            "{}",
            lines[3]
        );
        assert!(
            err.contains("line 3: observation_value \"notanumber\""),
            "{err}"
        );
        assert!(err.contains("line 6: sex \"unknown\""), "{err}");
    }

    #[test]
    fn a_missing_column_is_an_error_for_the_whole_file() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let fault = run(
            "sex,birth_date\nmale,2020-01-01\n".as_bytes(),
            &mut out,
            &mut err,
        )
        .expect_err("refused");
        assert!(fault.contains("observation_date"), "{fault}");
    }

    #[test]
    fn a_preterm_baby_is_scored_at_corrected_age() {
        // Born at 30+0 weeks, weighed at 10 weeks: corrected age is 0 (term).
        let input = "sex,birth_date,observation_date,gestation_weeks,gestation_days,measurement_method,observation_value\n\
            female,2024-01-01,2024-03-11,30,0,weight,3.3\n\
            female,2024-01-01,2024-03-11,0,0,weight,3.3\n";
        let (out, _, _) = run_str(input);
        let sds: Vec<f64> = out
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(7).expect("sds").parse().expect("number"))
            .collect();
        assert!(sds[0].abs() < 1.0, "corrected: {}", sds[0]);
        assert!(sds[1] < -2.5, "uncorrected: {}", sds[1]);
    }
}
