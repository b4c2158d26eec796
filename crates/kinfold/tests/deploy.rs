//! `docs/deploy.md`, followed as written: every block marked `<!-- step: NAME -->` is run by
//! `sh` in a fresh directory, with the built `kinfold` on the `PATH`, PostgreSQL, OpenSSL, curl
//! and jq: six separate processes over mutual TLS on their own databases, the first records
//! through the real feeds, the auditor's check as a role that may only read the ledger, an
//! adapter stopped, an upgrade and restart. The scripts the document shows in full must be
//! the files the steps run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kinfold_store::testing::postgres_admin_url;

/// The repository (this crate is `crates/kinfold`).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The document's runnable blocks, by step name, in order.
fn steps(doc: &str) -> Vec<(String, String)> {
    let mut steps = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .strip_prefix("<!-- step: ")
            .and_then(|rest| rest.strip_suffix(" -->"))
        else {
            continue;
        };
        assert_eq!(
            lines.next(),
            Some("```sh"),
            "step {name}: a ```sh block must follow its marker"
        );
        let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        steps.push((name.to_owned(), body.join("\n")));
    }
    steps
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The walkthrough's directory and the settings its scripts read.
struct Walkthrough {
    dir: tempfile::TempDir,
    env: HashMap<String, String>,
    steps: HashMap<String, String>,
}

impl Walkthrough {
    /// Runs one step of the document; panics with its output (and the services' logs) if it
    /// fails.
    fn step(&self, name: &str) -> String {
        let script = self
            .steps
            .get(name)
            .unwrap_or_else(|| panic!("docs/deploy.md has no step {name}"));
        let output = self.sh(script);
        assert!(
            output.status.success(),
            "step {name} failed:\n{}\n{}",
            text(&output),
            self.logs()
        );
        text(&output)
    }

    fn sh(&self, script: &str) -> Output {
        Command::new("sh")
            .args(["-c", script])
            .current_dir(self.dir.path())
            .env_clear()
            .envs(&self.env)
            .output()
            .expect("sh runs")
    }

    /// The services' logs, for a failure message.
    fn logs(&self) -> String {
        let mut all = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path().join("log")) {
            for entry in entries.flatten() {
                let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                all.push_str(&format!("--- {}\n", entry.path().display()));
                for line in tail.into_iter().rev() {
                    all.push_str(line);
                    all.push('\n');
                }
            }
        }
        all
    }

    /// `$everything` for the walkthrough's child, as the area's safeguarding lead.
    fn everything(&self) -> serde_json::Value {
        let output = self.sh(
            r#"set -eu
TOKEN=$(kinfold token --config gateway.toml --operator deploy-test --subject lead-1 --org Q99 --role safeguarding-professional --purpose safeguarding --ttl 300)
GATEWAY=$(sed -n 's/^public_base_url = "\(.*\)"$/\1/p' gateway.toml)
ask() { curl -sS --fail-with-body --cacert pki/ca.pem -H "Authorization: Bearer $TOKEN" "$GATEWAY/$1"; }
ID=$(ask "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number%7C9990000026" | jq -r '.entry[0].resource.id')
ask "Patient/$ID/\$everything""#,
        );
        assert!(
            output.status.success(),
            "{}\n{}",
            text(&output),
            self.logs()
        );
        serde_json::from_slice(&output.stdout).expect("$everything is JSON")
    }
}

impl Drop for Walkthrough {
    fn drop(&mut self) {
        if self.steps.contains_key("stop") {
            let _ = self.sh("sh \"$REPO/docs/deploy/stop.sh\"");
        }
        drop_everything(&self.env);
    }
}

const PREFIX: &str = "kinfold_deploy_test_";
const ROLE: &str = "kinfold_deploy_test";
const AUDITOR: &str = "kinfold_deploy_auditor";

/// Leaves the server as it was: the walkthrough's databases and roles dropped (also those of
/// an earlier run that did not finish).
fn drop_everything(env: &HashMap<String, String>) {
    let mut sql = String::new();
    for db in [
        "gateway",
        "midwifery",
        "ae",
        "gp",
        "health_visiting",
        "school_nursing",
    ] {
        sql.push_str(&format!(
            "DROP DATABASE IF EXISTS {PREFIX}{db} WITH (FORCE);\n"
        ));
    }
    sql.push_str(&format!(
        "DROP ROLE IF EXISTS {ROLE};\nDROP ROLE IF EXISTS {AUDITOR};\n"
    ));
    let output = Command::new("psql")
        .args(["-q", "-d", "postgres", "-f", "-"])
        .env_clear()
        .envs(env)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(sql.as_bytes())?;
            child.wait_with_output()
        });
    if let Ok(output) = output
        && !output.status.success()
    {
        eprintln!(
            "could not drop the walkthrough's databases: {}",
            text(&output)
        );
    }
}

/// Seven ports free now (the gateway's, five adapters' in a row, the MLLP listener's).
fn free_ports() -> (u16, u16, u16) {
    let taken = |port: u16| std::net::TcpListener::bind(("0.0.0.0", port)).is_err();
    let start = 20_000 + (std::process::id() % 20_000) as u16;
    let base = (start..60_000)
        .step_by(7)
        .find(|base| !(0..7).any(|n| taken(base + n)))
        .expect("seven free ports");
    (base, base + 1, base + 6)
}

#[test]
fn the_production_walkthrough_runs_as_written() {
    let repo = repo().canonicalize().expect("the repository");
    let doc = std::fs::read_to_string(repo.join("docs/deploy.md")).expect("docs/deploy.md");

    // What the document shows of each script is the script.
    for entry in std::fs::read_dir(repo.join("docs/deploy")).expect("docs/deploy") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "sh") {
            let script = std::fs::read_to_string(&path).expect("script");
            assert!(
                doc.contains(&format!("```sh\n{script}```")),
                "docs/deploy.md does not show {} as it is",
                path.display()
            );
        }
    }

    let binary = PathBuf::from(env!("CARGO_BIN_EXE_kinfold"));
    let path = format!(
        "{}:{}",
        binary.parent().expect("bin dir").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for tool in ["openssl", "psql", "createuser", "createdb", "curl", "jq"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .env("PATH", &path)
            .output()
            .expect("sh runs");
        assert!(
            found.status.success(),
            "the walkthrough needs {tool} (.ci/run installs it)"
        );
    }

    // The administrator's connection, as psql reads it.
    let admin: sqlx::postgres::PgConnectOptions =
        postgres_admin_url().parse().expect("the PostgreSQL URL");
    let host = admin.get_host().to_owned();
    let port = admin.get_port();
    let server = format!("{host}:{port}");
    let (gateway_port, adapter_port, mllp_port) = free_ports();
    let dir = tempfile::tempdir().expect("a directory");
    let env: HashMap<String, String> = [
        ("PATH", path),
        ("HOME", dir.path().display().to_string()),
        ("REPO", repo.display().to_string()),
        ("PGHOST", host.clone()),
        ("PGPORT", port.to_string()),
        ("PGUSER", admin.get_username().to_owned()),
        ("DEPLOY_PG", format!("postgres://{ROLE}@{server}")),
        (
            "DEPLOY_PG_AUDITOR",
            format!("postgres://{AUDITOR}@{server}"),
        ),
        ("DEPLOY_ROLE", ROLE.to_owned()),
        ("DEPLOY_AUDITOR", AUDITOR.to_owned()),
        ("DEPLOY_DB_PREFIX", PREFIX.to_owned()),
        ("DEPLOY_GATEWAY_PORT", gateway_port.to_string()),
        ("DEPLOY_ADAPTER_PORT", adapter_port.to_string()),
        ("DEPLOY_MLLP_PORT", mllp_port.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    drop_everything(&env);
    let walk = Walkthrough {
        dir,
        env,
        steps: steps(&doc).into_iter().collect(),
    };
    for name in [
        "pki",
        "databases",
        "migrate",
        "configure",
        "start",
        "first-records",
        "audit",
        "stop",
        "upgrade",
    ] {
        assert!(
            walk.steps.contains_key(name),
            "docs/deploy.md has no step {name}"
        );
    }

    walk.step("pki");
    walk.step("databases");
    walk.step("migrate");
    walk.step("configure");
    walk.step("start");
    let first = walk.step("first-records");
    // Three feeds, one child: the school nursing and health visiting rows and the A&E
    // attendance are all in his record.
    assert!(first.contains("The child is Patient/"), "{first}");
    assert!(first.contains("Encounter"), "{first}");
    let everything = walk.everything();
    let sources: std::collections::BTreeSet<&str> = everything["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["resource"]["meta"]["source"].as_str())
        .collect();
    for agency in ["ae", "health-visiting", "school-nursing"] {
        assert!(
            sources.contains(format!("urn:kinfold:agency:{agency}").as_str()),
            "{agency}'s records in $everything: {sources:?}"
        );
    }

    // The auditor verifies every service's ledger, as a role that may read only the ledgers,
    // and saves checkpoints.
    let audit = walk.step("audit");
    assert_eq!(audit.matches("The ledger verifies").count(), 6, "{audit}");
    let person_index = walk.sh(&format!(
        "psql -q -d \"$DEPLOY_PG_AUDITOR/{PREFIX}gateway\" -c 'SELECT count(*) FROM person_index'"
    ));
    assert!(
        !person_index.status.success(),
        "the auditor must not read the person index: {}",
        text(&person_index)
    );

    // The A&E adapter stops: $everything answers with the others and names it.
    let stopped = walk.sh("sh \"$REPO/docs/deploy/stop.sh\" ae");
    assert!(stopped.status.success(), "{}", text(&stopped));
    // SIGTERM stops it cleanly: it logs its stop.
    let log = std::fs::read_to_string(walk.dir.path().join("log/ae.log")).expect("ae.log");
    assert!(log.contains("adapter stopped"), "{log}");
    let partial = walk.everything().to_string();
    assert!(
        partial.contains("A&E (ae) could not be reached"),
        "the stopped adapter is named: {partial}"
    );

    // Started again on its own, the others left running.
    let started = walk.sh("sh \"$REPO/docs/deploy/start.sh\" ae");
    assert!(
        started.status.success(),
        "{}\n{}",
        text(&started),
        walk.logs()
    );
    assert!(
        walk.everything()
            .to_string()
            .contains("urn:kinfold:agency:ae")
    );

    // An upgrade: stop everything, migrate, start (each configuration checked); the ledger
    // still extends the auditor's checkpoint, and the child's records are all there.
    walk.step("upgrade");
    let audit = walk.step("audit");
    assert_eq!(
        audit.matches("consistent with the checkpoint").count(),
        6,
        "{audit}"
    );
    let after = walk.everything();
    assert_eq!(
        after["entry"].as_array().map(Vec::len),
        everything["entry"].as_array().map(Vec::len),
        "the same record after the restart"
    );
    walk.step("stop");
}
