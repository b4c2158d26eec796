//! `kinfold client` for a production client, not the demo's (issue 28, defect 4): `keygen`
//! makes a key and prints the JWK Set to register; `assertion` and `requester` sign with that
//! key given by `--key`, `--client-id`, `--kid` and `--token-url`; the gateway, with the JWK
//! registered, grants a token and answers a request.

use std::process::{Command, Output};

use kinfold_gateway::smart::{SmartClient, SmartConfig};
use kinfold_gateway::{GatewayConfig, KeyConfig, Secret};

fn kinfold(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kinfold"))
        .args(args)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("kinfold runs")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test]
async fn a_production_client_makes_its_key_registers_it_and_reads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("epr-key.pem");
    let key_arg = key.display().to_string();
    let jwks: serde_json::Value = serde_json::from_str(&stdout(&kinfold(&[
        "client", "keygen", "--kid", "epr-2026", "--out", &key_arg,
    ])))
    .expect("a JWK Set");
    assert_eq!(jwks["keys"][0]["kid"], "epr-2026");
    assert_eq!(jwks["keys"][0]["crv"], "P-384");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key)
            .expect("the key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the private key is its owner's only");
    }
    // A key is never overwritten.
    let again = kinfold(&["client", "keygen", "--kid", "epr-2026", "--out", &key_arg]);
    assert!(!again.status.success());

    // A gateway with the client registered.
    let store = kinfold_store::Store::open_sqlite(&dir.path().join("gateway.db"))
        .await
        .expect("store");
    let mut config = GatewayConfig {
        bind: "127.0.0.1:0".into(),
        workers: 1,
        smart: SmartConfig {
            clients: vec![
                serde_json::from_value::<SmartClient>(serde_json::json!({
                    "client_id": "epr-rxx", "jwks": jwks,
                    "scopes": ["system/Patient.rs"], "organisations": ["RXX"],
                }))
                .expect("a client"),
            ],
            ..SmartConfig::default()
        },
        ..GatewayConfig::default()
    };
    config.auth.keys = vec![KeyConfig {
        kid: "k1".into(),
        secret: Secret::new("a-token-secret-of-at-least-32-bytes-0123".into()),
    }];
    config.ledger.signing_key = Some(Secret::new(kinfold_ledger::b64(&[5u8; 32])));
    let ledger = kinfold_gateway::Ledger::open(store.clone(), &config.ledger)
        .await
        .expect("ledger");
    let app = kinfold_gateway::build(&config, store, ledger).expect("gateway");
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());

    let token_url = format!("{base}/auth/token");
    let client = [
        "--key",
        key_arg.as_str(),
        "--client-id",
        "epr-rxx",
        "--kid",
        "epr-2026",
        "--token-url",
        token_url.as_str(),
    ];
    let assertion = stdout(&kinfold(&[&["client", "assertion"], &client[..]].concat()));
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(&token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&scope=system%2FPatient.rs&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
        ))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    let access = token["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{token}"));
    let requester = stdout(&kinfold(
        &[
            &[
                "client",
                "requester",
                "--subject",
                "dr-rxx-1",
                "--role",
                "safeguarding-professional",
                "--org",
                "RXX",
                "--purpose",
                "safeguarding",
            ],
            &client[..],
        ]
        .concat(),
    ));
    let answer = http
        .get(format!(
            "{base}/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000026"
        ))
        .bearer_auth(access)
        .header("Kinfold-Requester", &requester)
        .send()
        .await
        .expect("answered");
    assert_eq!(
        answer.status(),
        200,
        "{}",
        answer.text().await.unwrap_or_default()
    );
    handle.stop(true).await;
}
