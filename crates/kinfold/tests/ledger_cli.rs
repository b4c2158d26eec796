//! `kinfold ledger` as an information-governance auditor runs it: on PostgreSQL, as a role
//! that may only `SELECT`, it verifies the ledger and prints a checkpoint, and it never
//! migrates (a newer CLI must not alter a production schema). `kinfold migrate` is the step
//! that does.

use std::process::{Command, Output};

use kinfold_gateway::ledger::{Ledger, LedgerConfig, Secret};
use kinfold_store::Store;
use kinfold_store::testing::{TestPostgres, with_database};
use sqlx::Connection;

fn kinfold(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kinfold"))
        .args(args)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("kinfold runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn an_auditor_verifies_the_ledger_as_a_role_that_may_only_select() {
    let database = TestPostgres::create().await.expect("a test database");
    // `kinfold migrate` creates the tables; run again, it changes nothing.
    for _ in 0..2 {
        let migrated = kinfold(&["migrate", "--db", &database.url]);
        assert!(migrated.status.success(), "{}", text(&migrated));
        // The server's notices (the migrations table "already exists, skipping") are not
        // printed at every start.
        assert!(
            !text(&migrated).contains("already exists"),
            "{}",
            text(&migrated)
        );
    }
    let store = Store::open(&database.url).await.expect("store");
    let config = LedgerConfig {
        signing_key: Some(Secret::new(kinfold_ledger::b64(&[7u8; 32]))),
        ..LedgerConfig::default()
    };
    let ledger = Ledger::open(store.clone(), &config).await.expect("ledger");
    for n in 0..5 {
        ledger
            .record(vec![kinfold_gateway::audit::identity_link(
                "ledger-cli-test",
                &format!("person-{n}"),
                None,
            )])
            .await
            .expect("recorded");
    }
    ledger.sign_head(&store).await.expect("signed");
    let public_key = kinfold_ledger::b64(&ledger.public_key());
    store.close().await;

    // The auditor's role: it may connect and read, nothing else.
    let name = database.url.rsplit('/').next().expect("a name").to_owned();
    let role = format!(
        "auditor_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut admin = sqlx::PgConnection::connect(&database.url)
        .await
        .expect("admin");
    for statement in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT CONNECT ON DATABASE \"{name}\" TO {role}"),
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"),
    ] {
        // DDL takes no parameters; the role is a name this test made from hex digits.
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut admin)
            .await
            .expect("grant");
    }
    // The same server and database, as the auditor (the test server trusts local roles).
    let (scheme, rest) = database.url.split_once("://").expect("a URL");
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let auditor_url = with_database(&format!("{scheme}://{role}@{host}"), &name);
    assert!(auditor_url.contains(&role), "{auditor_url}");

    let verified = kinfold(&[
        "ledger",
        "verify",
        "--db",
        &auditor_url,
        "--public-key",
        &public_key,
    ]);
    assert!(verified.status.success(), "{}", text(&verified));
    assert!(
        text(&verified).contains("The ledger verifies"),
        "{}",
        text(&verified)
    );
    let checkpoint = kinfold(&["ledger", "checkpoint", "--db", &auditor_url]);
    assert!(checkpoint.status.success(), "{}", text(&checkpoint));
    let head: serde_json::Value =
        serde_json::from_slice(&checkpoint.stdout).expect("a tree head as JSON");
    assert_eq!(head["tree_size"], 5);

    // Without a key, the message says where the gateway serves it.
    let no_key = kinfold(&["ledger", "verify", "--db", &auditor_url]);
    assert!(!no_key.status.success());
    assert!(
        text(&no_key).contains("/ledger/v1/public-key"),
        "{}",
        text(&no_key)
    );

    // The auditor cannot change anything, and verifying did not try to.
    let write = sqlx::query("DELETE FROM ledger_entries")
        .execute(
            &mut sqlx::PgConnection::connect(&auditor_url)
                .await
                .expect("auditor"),
        )
        .await;
    assert!(write.is_err(), "a SELECT-only role");
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP OWNED BY {role}")))
        .execute(&mut admin)
        .await
        .expect("drop owned");
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE {role}")))
        .execute(&mut admin)
        .await
        .expect("drop role");
    admin.close().await.expect("closed");
    database.drop_database().await.expect("dropped");
}

/// On SQLite too: the gateway's database file, closed, verified through a read-only
/// connection, and left exactly as it was.
#[tokio::test]
async fn the_ledger_of_a_sqlite_gateway_verifies_read_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gateway.db");
    let store = Store::open_sqlite(&path).await.expect("store");
    let config = LedgerConfig {
        signing_key: Some(Secret::new(kinfold_ledger::b64(&[8u8; 32]))),
        ..LedgerConfig::default()
    };
    let ledger = Ledger::open(store.clone(), &config).await.expect("ledger");
    ledger
        .record(vec![kinfold_gateway::audit::identity_link(
            "ledger-cli-test",
            "person-1",
            None,
        )])
        .await
        .expect("recorded");
    ledger.sign_head(&store).await.expect("signed");
    let public_key = kinfold_ledger::b64(&ledger.public_key());
    store.close().await;
    drop(ledger);
    let before = std::fs::read(&path).expect("the database file");
    let url = format!("sqlite://{}", path.display());
    let verified = kinfold(&[
        "ledger",
        "verify",
        "--db",
        &url,
        "--public-key",
        &public_key,
    ]);
    assert!(verified.status.success(), "{}", text(&verified));
    assert_eq!(
        std::fs::read(&path).expect("the file"),
        before,
        "not changed"
    );
}
