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
