//! The README's first command, `kinfold demo`, as a new user runs it: the real binary starts
//! the gateway and five adapters, seeds them, writes `demo.json`, and the gateway answers
//! with the token it printed. Run from a lone copy of the repository by `.ci/run`, this also
//! shows the demo needs nothing outside the repository.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the demo when the test ends, however it ends.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn kinfold_demo_starts_seeds_and_answers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("kinfold-data");
    let mut demo = Demo(
        Command::new(env!("CARGO_BIN_EXE_kinfold"))
            .current_dir(dir.path())
            .args(["demo", "--port", "0", "--families", "2"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("stderr.log")).expect("log file"),
            ))
            .spawn()
            .expect("kinfold runs"),
    );

    let demo_json = data_dir.join("demo.json");
    let started = Instant::now();
    let info: serde_json::Value = loop {
        if let Some(status) = demo.0.try_wait().expect("wait") {
            let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
            panic!("kinfold demo exited early: {status}\n{log}");
        }
        if let Ok(text) = std::fs::read_to_string(&demo_json)
            && let Ok(info) = serde_json::from_str(&text)
        {
            break info;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "kinfold demo wrote no demo.json in two minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let gateway = info["gateway"].as_str().expect("gateway URL");
    let token = info["token"].as_str().expect("token");
    let id = info["example_patient"]["id"].as_str().expect("example id");
    let response = reqwest::Client::new()
        .get(format!("{gateway}/Patient/{id}/$everything"))
        .bearer_auth(token)
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(response.status(), 200);
    let bundle: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(bundle["resourceType"], "Bundle");
    assert!(
        bundle["total"].as_u64().unwrap_or(0) > 0,
        "the example patient has records: {bundle}"
    );
    assert_eq!(info["adapters"].as_object().map(|a| a.len()), Some(5));

    // `kinfold import` of an HL7 file needs only the MLLP address (no demo.json, no adapter
    // URL, no certificate for a plain loopback listener), and a resent file is counted as
    // unchanged, not stored again (issue 28, defect 5).
    let mllp = info["mllp"]["ae"].as_str().expect("the A&E MLLP address");
    let elsewhere = tempfile::tempdir().expect("another directory");
    let file = elsewhere.path().join("adt.hl7");
    std::fs::write(
        &file,
        "MSH|^~\\&|EPR|RXX|KINFOLD|AE|20260301100000+0000||ADT^A04^ADT_A01|CLI-IMPORT-1|P|2.4\rEVN|A04|20260301100000+0000\rPID|1||9990001081^^^NHS^NH||Import^Test||20200110|M\rPV1|1|E|AE^^^RXX||||||||||||||||V-CLI-1|||||||||||||||||01||||||||20260301093000+0000\r",
    )
    .expect("written");
    let import = || {
        Command::new(env!("CARGO_BIN_EXE_kinfold"))
            .current_dir(elsewhere.path())
            .args(["import", "--agency", "ae"])
            .arg(&file)
            .args(["--mllp", mllp])
            .output()
            .expect("kinfold runs")
    };
    let said = |output: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    let first = import();
    assert!(first.status.success(), "{}", said(&first));
    assert!(said(&first).contains("1 stored"), "{}", said(&first));
    let again = import();
    assert!(again.status.success(), "{}", said(&again));
    assert!(said(&again).contains("0 stored"), "{}", said(&again));
    assert!(
        said(&again).contains("1 already stored") || said(&again).contains("1 unchanged"),
        "{}",
        said(&again)
    );
}

#[test]
fn logs_written_to_a_file_carry_no_colour_codes() {
    // `kinfold growth` logs nothing on success; a bad ledger command logs an error line.
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_kinfold"))
        .current_dir(dir.path())
        .args([
            "ledger",
            "verify",
            "--db",
            "sqlite://nowhere/at/all.db",
            "--public-key",
            "AAAA",
        ])
        .env("KINFOLD_LOG", "debug")
        .output()
        .expect("kinfold runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.is_empty(), "something was logged");
    assert!(!stderr.contains('\u{1b}'), "no ANSI escape in: {stderr}");
}
