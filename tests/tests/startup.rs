//! The gateway refuses to start on a configuration that could never work, and says what to
//! change (issue 28, defect 7): an adapter configured without a key for its events (its
//! outbox would be refused and retry for ever), and a SMART client's key that can never verify
//! (found out before, only at the first token request, as "the signature does not match").

mod common;

use kinfold_fhir::Agency;
use kinfold_gateway::smart::{SmartClient, SmartConfig};
use kinfold_gateway::{AdapterEndpoint, GatewayConfig};
use serde_json::json;

async fn start(config: &GatewayConfig) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = kinfold_store::Store::open_sqlite(&dir.path().join("gateway.db"))
        .await
        .expect("store");
    let ledger = kinfold_gateway::Ledger::open(store.clone(), &config.ledger)
        .await
        .expect("ledger");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    kinfold_gateway::build_on(listener, config, store, ledger)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn base() -> GatewayConfig {
    let mut config = GatewayConfig {
        workers: 1,
        adapter_tls: Some(common::test_pki().0.gateway.clone()),
        ..GatewayConfig::default()
    };
    config.auth.keys = vec![kinfold_gateway::KeyConfig {
        kid: "k1".into(),
        secret: kinfold_gateway::Secret::new("a-token-secret-of-at-least-32-bytes-0123".into()),
    }];
    config.ledger.signing_key = Some(kinfold_gateway::Secret::new(kinfold_ledger::b64(
        &[4u8; 32],
    )));
    config
}

#[tokio::test]
async fn an_adapter_without_an_event_key_is_refused_at_start_with_what_to_add() {
    let mut config = base();
    config.adapters = vec![AdapterEndpoint {
        agency: Agency::Gp,
        url: "https://127.0.0.1:9/".into(),
    }];
    let error = start(&config).await.expect_err("refused");
    assert!(error.contains("[[event_keys]]"), "{error}");
    assert!(error.contains("agency = \"gp\""), "{error}");
    // With its key, it starts.
    config.event_keys = vec![common::agencies::event_key(Agency::Gp)];
    start(&config).await.expect("starts");
}

#[tokio::test]
async fn a_smart_clients_key_that_can_never_verify_is_refused_at_start() {
    let client = |jwk: serde_json::Value| -> SmartClient {
        serde_json::from_value(json!({
            "client_id": "epr-rxx",
            "jwks": {"keys": [jwk]},
            "scopes": ["system/Patient.rs"],
            "organisations": ["RXX"],
        }))
        .expect("a client")
    };
    let (_, good) = common::test_pki()
        .0
        .smart_client()
        .expect("the demo client's key");
    let good_key = good["keys"][0].clone();
    for (jwk, says) in [
        (
            json!({"kty": "EC", "crv": "P-384", "kid": "k-bad", "x": "AAAA", "y": good_key["y"]}),
            "48 bytes",
        ),
        (
            json!({"kty": "EC", "crv": "P-256", "kid": "k-256", "x": good_key["x"], "y": good_key["y"]}),
            "P-384",
        ),
        (
            json!({"kty": "oct", "kid": "k-oct", "k": "c2VjcmV0"}),
            "only P-384",
        ),
        (
            json!({"kty": "EC", "crv": "P-384", "x": good_key["x"], "y": good_key["y"]}),
            "no kid",
        ),
    ] {
        let mut config = base();
        config.smart = SmartConfig {
            clients: vec![client(jwk.clone())],
            ..SmartConfig::default()
        };
        let error = start(&config).await.expect_err("refused");
        assert!(error.contains("epr-rxx"), "{error}");
        assert!(error.contains(says), "{jwk}: {error}");
    }
    let mut config = base();
    config.smart = SmartConfig {
        clients: vec![client(good_key)],
        ..SmartConfig::default()
    };
    start(&config).await.expect("a good key starts");
}

/// Messages that name what failed (issue 28, defect 8): a listen address already taken, and a
/// certificate with another certificate's key, each named.
#[tokio::test]
async fn a_taken_address_and_a_key_of_another_certificate_are_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
    let address = taken.local_addr().expect("address").to_string();
    let mut config = base();
    config.bind = address.clone();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = kinfold_store::Store::open_sqlite(&dir.path().join("gateway.db"))
        .await
        .expect("store");
    let ledger = kinfold_gateway::Ledger::open(store.clone(), &config.ledger)
        .await
        .expect("ledger");
    let error = kinfold_gateway::build(&config, store, ledger)
        .map(|_| ())
        .expect_err("the address is taken")
        .to_string();
    assert!(error.contains(&address), "{error}");

    let pki = &common::test_pki().0;
    let mismatched = kinfold_http::tls::ServerTls {
        cert: pki.adapter_cert.clone(),
        key: pki.gateway.key.clone(),
        client_ca: pki.ca.clone(),
    };
    let error = kinfold_http::tls::server_config(
        &mismatched,
        kinfold_http::tls::ClientCertificates::Required,
    )
    .map(|_| ())
    .expect_err("the key is another certificate's")
    .to_string();
    assert!(
        error.contains("is not the key of the certificate"),
        "{error}"
    );
    assert!(
        error.contains(&pki.adapter_cert.display().to_string()),
        "{error}"
    );
    assert!(
        error.contains(&pki.gateway.key.display().to_string()),
        "{error}"
    );
}
