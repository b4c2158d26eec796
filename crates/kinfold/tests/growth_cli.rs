//! `kinfold growth` as a user runs it: CSV on standard input, scored CSV on standard output,
//! bad rows on standard error with their line numbers.

use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn kinfold_growth_scores_stdin_and_names_bad_lines() {
    let input = "sex,birth_date,observation_date,gestation_weeks,gestation_days,measurement_method,observation_value\n\
        male,2019-09-01,2024-09-10,40,0,height,110.0\n\
        female,2019-09-01,2024-09-10,40,0,weight,\n\
        female,2013-03-01,2024-06-01,39,2,bmi,17.4\n";
    let mut child = Command::new(env!("CARGO_BIN_EXE_kinfold"))
        .arg("growth")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kinfold starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("written");
    let output = child.wait_with_output().expect("kinfold finishes");
    let stdout = String::from_utf8(output.stdout).expect("utf8");
    let stderr = String::from_utf8(output.stderr).expect("utf8");
    assert_eq!(
        output.status.code(),
        Some(1),
        "a bad row makes the exit status 1"
    );
    let rows: Vec<&str> = stdout.lines().collect();
    assert_eq!(rows.len(), 3, "header and the two good rows: {stdout}");
    assert!(rows[0].ends_with(",sds,centile,flag"));
    assert!(rows[1].starts_with("male,2019-09-01,2024-09-10,40,0,height,110.0,"));
    assert!(rows[2].starts_with("female,2013-03-01,2024-06-01,39,2,bmi,17.4,"));
    assert!(
        stderr.contains("line 3: observation_value \"\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("2 rows scored, 1 rows could not be read"),
        "{stderr}"
    );
}
