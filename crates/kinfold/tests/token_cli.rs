//! `kinfold token` as an operator runs it beside a running gateway: the token's issue reaches
//! the gateway's ledger, and no token is printed when its issue cannot be recorded.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use kinfold::demo::DemoOptions;

/// A gateway configuration for `kinfold token`: a token key and `database_url`.
fn write_config(dir: &Path, database_url: &str, secret: &str) -> std::path::PathBuf {
    let path = dir.join("token.toml");
    std::fs::write(
        &path,
        format!(
            "database_url = \"{database_url}\"\n\n[[auth.keys]]\nkid = \"demo\"\nsecret = \"{}\"\n",
            secret.trim()
        ),
    )
    .expect("config written");
    path
}

fn kinfold_token(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kinfold"))
        .args(["token", "--config"])
        .arg(config)
        .args([
            "--subject",
            "dr-token-test",
            "--org",
            "Q99",
            "--role",
            "privacy-officer",
        ])
        .env("USER", "test-operator")
        .output()
        .expect("kinfold runs")
}

#[tokio::test]
async fn an_issued_token_works_and_its_issue_reaches_the_running_ledger() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = DemoOptions::new(dir.path().to_path_buf(), 0);
    options.population.families = 1;
    options.workers = 1;
    let demo = kinfold::demo::start(options)
        .await
        .expect("the demo starts");
    let database_url = format!("sqlite://{}", dir.path().join("gateway.db").display());
    let secret = std::fs::read_to_string(dir.path().join("demo-token-secret")).expect("secret");
    let config = write_config(dir.path(), &database_url, &secret);

    // Something that is not an audit record, left in the inbox by hand, is discarded and
    // does not hold up what follows it.
    let store = kinfold_store::Store::open(&database_url)
        .await
        .expect("store");
    store
        .ledger_inbox_put("not an audit record")
        .await
        .expect("put");

    let output = kinfold_token(&config);
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).expect("utf8");
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    let http = reqwest::Client::new();
    let audit_url = format!(
        "{}/AuditEvent?agent=kinfold-token:test-operator",
        demo.info.gateway
    );
    let mut found = None;
    for _ in 0..100 {
        let response = http
            .get(&audit_url)
            .bearer_auth(token)
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status().as_u16(), 200, "the new token is accepted");
        let bundle: serde_json::Value = response.json().await.expect("json");
        if let Some(event) = bundle["entry"].as_array().and_then(|e| e.first()) {
            found = Some(event["resource"].clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let event = found.expect("the token's issue is in the ledger within 10 s");
    let text = event.to_string();
    assert!(text.contains("dr-token-test"), "{text}");
    assert!(text.contains("Q99"), "{text}");
    assert!(!text.contains(token), "the token itself is never recorded");

    // The ledger still verifies with the entry the gateway took from the inbox.
    let store = kinfold_store::Store::open(&database_url)
        .await
        .expect("store");
    let public_key: [u8; 32] = kinfold_ledger::from_b64(&demo.info.ledger_public_key)
        .and_then(|k| k.try_into().ok())
        .expect("public key");
    let report = kinfold_gateway::ledger::verify_store(&store, &public_key, None)
        .await
        .expect("verify");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(
        store.ledger_inbox(10).await.expect("inbox").is_empty(),
        "nothing left waiting"
    );
}

#[test]
fn no_token_is_printed_when_its_issue_cannot_be_recorded() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A database that cannot be opened for writing: a path under a regular file.
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, "").expect("file");
    let config = write_config(
        dir.path(),
        &format!("sqlite://{}", blocker.join("gateway.db").display()),
        "a-token-key-of-at-least-thirty-two-bytes",
    );
    let output = kinfold_token(&config);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no token: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("could not be recorded"), "{stderr}");
}

#[test]
fn no_token_is_issued_when_nobody_can_be_named_as_its_issuer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", dir.path().join("gateway.db").display());
    let config = write_config(
        dir.path(),
        &database_url,
        "0123456789abcdef0123456789abcdef",
    );
    let output = Command::new(env!("CARGO_BIN_EXE_kinfold"))
        .args(["token", "--config"])
        .arg(&config)
        .args(["--subject", "dr-x", "--role", "gp"])
        .env_remove("USER")
        .env_remove("LOGNAME")
        .output()
        .expect("kinfold runs");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no token printed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--operator"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_kinfold"))
        .args(["token", "--config"])
        .arg(&config)
        .args(["--subject", "dr-x", "--ttl", "999999"])
        .env("USER", "test-operator")
        .output()
        .expect("kinfold runs");
    assert!(
        !output.status.success(),
        "a token longer than the maximum lifetime is refused"
    );
    assert!(output.stdout.is_empty());
}

/// `kinfold token` issues nothing the gateway would refuse: a token naming nobody, a role
/// Kinfold does not know (`superuser`), a purpose it does not know (`break-glass`), or an
/// override whose justification is dots.
#[test]
fn no_token_is_issued_for_nobody_or_an_unknown_role_or_purpose() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", dir.path().join("gateway.db").display());
    let config = write_config(
        dir.path(),
        &database_url,
        "0123456789abcdef0123456789abcdef",
    );
    let dots = ".".repeat(25);
    for args in [
        vec!["--subject", "", "--role", "gp"],
        vec!["--subject", "  ", "--role", "gp"],
        vec!["--subject", "x", "--role", "superuser"],
        vec!["--subject", "x", "--role", "gp", "--purpose", "break-glass"],
        vec![
            "--subject",
            "x",
            "--role",
            "gp",
            "--purpose",
            "override",
            "--justification",
            &dots,
        ],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_kinfold"))
            .args(["token", "--config"])
            .arg(&config)
            .args(&args)
            .env("USER", "test-operator")
            .output()
            .expect("kinfold runs");
        assert!(!output.status.success(), "{args:?} was issued");
        assert!(output.stdout.is_empty(), "no token printed for {args:?}");
    }
}
