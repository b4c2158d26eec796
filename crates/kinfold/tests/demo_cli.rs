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

    // The record locator, as an identity steward exports it: CSV of ids only, the example
    // child's records under the example child's person.
    let links = Command::new(env!("CARGO_BIN_EXE_kinfold"))
        .args(["identity", "links", "--db"])
        .arg(format!(
            "sqlite://{}",
            data_dir.join("gateway.db").display()
        ))
        .output()
        .expect("kinfold runs");
    assert!(
        links.status.success(),
        "{}",
        String::from_utf8_lossy(&links.stderr)
    );
    let links = String::from_utf8_lossy(&links.stdout).into_owned();
    assert!(links.starts_with("agency,reference,person\n"), "{links}");
    let childs = links
        .lines()
        .filter(|l| l.ends_with(&format!(",{id}")))
        .count();
    assert!(
        childs >= 2,
        "the example child's records at several agencies: {links}"
    );
    assert!(
        !links.contains("nhs_number") && !links.contains("birth"),
        "ids only"
    );

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

    // Several connections at once, each patient's messages in the file's order (issue 22):
    // 30 patients, each registered (A04) and renamed (A08) in the next message; every one
    // ends with the A08's name.
    let numbers = valid_nhs_numbers(30);
    let mut text = String::new();
    for (n, nhs) in numbers.iter().enumerate() {
        for (pass, event) in [(0, "A04"), (1, "A08")] {
            let family = if pass == 0 {
                "Before".to_owned()
            } else {
                format!("After{n}")
            };
            text.push_str(&format!(
                "MSH|^~\\&|EPR|RXX|KINFOLD|AE|20260302100000+0000||ADT^{event}^ADT_A01|ORDER-{pass}-{n}|P|2.4\rEVN|{event}|20260302100000+0000\rPID|1||{nhs}^^^NHS^NH||{family}^Sam||20200110|M\rPV1|1|E|AE^^^RXX||||||||||||||||V-ORDER-{n}|||||||||||||||||01||||||||20260302093000+0000\r\n"
            ));
        }
    }
    std::fs::write(&file, text).expect("written");
    let ordered = import();
    assert!(ordered.status.success(), "{}", said(&ordered));
    assert!(said(&ordered).contains("60 messages"), "{}", said(&ordered));
    assert!(said(&ordered).contains("60 stored"), "{}", said(&ordered));
    let http = reqwest::Client::new();
    for (n, nhs) in numbers.iter().enumerate() {
        let found: serde_json::Value = http
            .get(format!(
                "{gateway}/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}"
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("the gateway answers")
            .json()
            .await
            .expect("JSON");
        let patient = &found["entry"][0]["resource"];
        assert_eq!(
            patient["name"][0]["family"],
            format!("After{n}"),
            "patient {n}'s A08 must be applied after its A04: {found}"
        );
    }
}

/// NHS numbers with valid check digits, made by Kinfold's own `NhsNumber` (the check digit is
/// tested against the NHS's published algorithm in `kinfold-fhir`).
fn valid_nhs_numbers(count: usize) -> Vec<String> {
    (412_000_001u32..)
        .filter_map(|stem| {
            let digits: Vec<u8> = stem.to_string().bytes().map(|b| b - b'0').collect();
            let first_nine: [u8; 9] = digits.try_into().ok()?;
            kinfold_fhir::NhsNumber::from_first_nine(first_nine)
        })
        .map(|n| n.as_str().to_owned())
        .take(count)
        .collect()
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
