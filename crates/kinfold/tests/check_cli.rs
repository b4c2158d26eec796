//! `kinfold check` (issue 28): each finding a hospital team would otherwise meet at run time,
//! named with what to do, and a non-zero exit; a good configuration passes.

use std::path::Path;
use std::process::{Command, Output};

fn check(config: &Path, agency: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kinfold"));
    command.arg("check").arg("--config").arg(config);
    if let Some(agency) = agency {
        command.args(["--agency", agency]);
    }
    command
        .current_dir(config.parent().expect("a directory"))
        .output()
        .expect("kinfold runs")
}

fn said(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn fail_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.starts_with("FAIL"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_finding_is_named_with_what_to_do_and_a_good_configuration_passes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = kinfold::pki::DemoPki::create(&dir.path().join("pki")).expect("pki");
    let (_, jwks) = pki.smart_client().expect("a client key");
    let y = jwks["keys"][0]["y"].as_str().expect("y").to_owned();
    let p = |path: &Path| path.display().to_string();
    let missing_db = dir.path().join("missing.db");

    // The gateway: no database yet, a certificate with another certificate's key, an adapter
    // without an event key and not running, a SMART key that is no P-384 point.
    let bad = dir.path().join("bad-gateway.toml");
    std::fs::write(
        &bad,
        format!(
            r#"bind = "127.0.0.1:0"
database_url = "sqlite://{db}"

[[auth.keys]]
kid = "k1"
secret = "a-token-secret-of-at-least-32-bytes-0123"

[adapter_tls]
ca = "{ca}"
cert = "{cert}"
key = "{wrong_key}"

[[adapters]]
agency = "gp"
url = "https://127.0.0.1:9"

[[smart.clients]]
client_id = "epr-rxx"
scopes = ["system/Patient.rs"]
organisations = ["RXX"]
jwks = {{ keys = [{{ kty = "EC", crv = "P-384", kid = "k-bad", x = "AAAA", y = "{y}" }}] }}
"#,
            db = p(&missing_db),
            ca = p(&pki.ca),
            cert = p(&pki.gateway.cert),
            wrong_key = p(&pki.adapter_key),
        ),
    )
    .expect("written");
    let output = check(&bad, None);
    assert!(!output.status.success(), "{}", said(&output));
    let fails = fail_lines(&output).join("\n");
    for expected in [
        "kinfold migrate --db",
        "is not the key of the certificate",
        "no key for agency \"gp\"",
        "48 bytes",
        "https://127.0.0.1:9",
    ] {
        assert!(
            fails.contains(expected),
            "{expected} in:\n{}",
            said(&output)
        );
    }
    assert!(!missing_db.exists(), "checking created nothing");

    // Fixed: migrated, the certificate's own key, no adapters and no SMART client.
    let db = dir.path().join("gateway.db");
    let migrate = Command::new(env!("CARGO_BIN_EXE_kinfold"))
        .args(["migrate", "--db", &format!("sqlite://{}", p(&db))])
        .output()
        .expect("kinfold runs");
    assert!(migrate.status.success(), "{}", said(&migrate));
    let good = dir.path().join("good-gateway.toml");
    std::fs::write(
        &good,
        format!(
            r#"bind = "127.0.0.1:0"
database_url = "sqlite://{db}"

[[auth.keys]]
kid = "k1"
secret = "a-token-secret-of-at-least-32-bytes-0123"

[adapter_tls]
ca = "{ca}"
cert = "{cert}"
key = "{key}"
"#,
            db = p(&db),
            ca = p(&pki.ca),
            cert = p(&pki.gateway.cert),
            key = p(&pki.gateway.key),
        ),
    )
    .expect("written");
    let output = check(&good, None);
    assert!(output.status.success(), "{}", said(&output));
    assert!(fail_lines(&output).is_empty(), "{}", said(&output));

    // An adapter: a time zone that is not one, and a gateway that does not answer.
    let adapter = dir.path().join("ae.toml");
    std::fs::write(
        &adapter,
        format!(
            r#"database_url = "sqlite://{db}"
hl7_time_zone = "Mars/Olympus_Mons"

[tls]
cert = "{cert}"
key = "{key}"
client_ca = "{ca}"
gateway_names = ["gateway.kinfold.internal"]
feed_names = ["feed.kinfold.internal"]

[outbox]
gateway_url = "https://127.0.0.1:9"
kid = "events-ae"
secret = "an-event-key-of-at-least-32-bytes-0123"

[outbox.tls]
ca = "{ca}"
cert = "{gateway_cert}"
key = "{gateway_key}"
"#,
            db = p(&db),
            cert = p(&pki.adapter_cert),
            key = p(&pki.adapter_key),
            ca = p(&pki.ca),
            gateway_cert = p(&pki.gateway.cert),
            gateway_key = p(&pki.gateway.key),
        ),
    )
    .expect("written");
    let output = check(&adapter, Some("ae"));
    assert!(!output.status.success(), "{}", said(&output));
    let fails = fail_lines(&output).join("\n");
    assert!(fails.contains("hl7_time_zone"), "{}", said(&output));
    assert!(fails.contains("outbox.gateway_url"), "{}", said(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("ok   tls: the certificate"),
        "{}",
        said(&output)
    );
}

#[test]
fn an_adapter_started_with_another_agencys_file_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("gp.toml");
    std::fs::write(&config, "agency = \"gp\"\nbind = \"127.0.0.1:0\"\n").expect("written");
    for command in ["check", "adapter"] {
        let output = Command::new(env!("CARGO_BIN_EXE_kinfold"))
            .args([command, "--agency", "ae", "--config"])
            .arg(&config)
            .current_dir(dir.path())
            .output()
            .expect("kinfold runs");
        assert!(!output.status.success(), "{command}: {}", said(&output));
        assert!(
            said(&output).contains("the file says agency = \"gp\" but --agency ae was given"),
            "{command}: {}",
            said(&output)
        );
    }
    // Nothing was created: the refusal comes before the database is opened.
    assert!(!dir.path().join("kinfold-data").exists());
}
