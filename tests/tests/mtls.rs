//! No back door: the adapters answer only over mutual TLS, read only to the gateway's
//! certificate, take ingest only from their feeds' certificates, and record every refusal in
//! their own ledgers. Real certificates (the demo's authority), real TLS, real HTTP and MLLP.

mod common;

use std::time::Duration;

use common::TestDemo;
use common::agencies::{Backend, Kinfold};
use kinfold_store::{LedgerQuery, Store};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn answer(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
) -> Result<(u16, Value), reqwest::Error> {
    let response = http
        .request(method, url)
        .header("content-type", "application/fhir+json")
        .body(r#"{"resourceType": "Bundle", "type": "transaction", "entry": []}"#)
        .send()
        .await?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

fn code(outcome: &Value) -> &str {
    outcome["issue"][0]["details"]["coding"][0]["code"]
        .as_str()
        .unwrap_or_default()
}

/// A client that trusts the demo's authority and presents no certificate.
fn anonymous(t: &TestDemo) -> reqwest::Client {
    let ca = std::fs::read(&t.pki.ca).expect("ca");
    reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).expect("ca pem"))
        .build()
        .expect("client")
}

#[tokio::test]
async fn an_adapter_reads_only_to_the_gateway_and_takes_only_its_feeds() {
    let t = TestDemo::start_with(1, |o| {
        o.refusals = kinfold_audit::RefusalConfig {
            interval_ms: 200,
            ..kinfold_audit::RefusalConfig::default()
        };
    })
    .await;
    let read = t.adapter("gp", "/Patient?_count=1");
    let ingest = t.adapter("gp", "/");
    let (get, post) = (reqwest::Method::GET, reqwest::Method::POST);

    // No certificate: refused on both doors, with an OperationOutcome.
    let nobody = anonymous(&t);
    let (status, outcome) = answer(&nobody, get.clone(), &read).await.expect("answered");
    assert_eq!(
        (status, code(&outcome)),
        (401, "client-certificate-missing")
    );
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    let (status, outcome) = answer(&nobody, post.clone(), &ingest)
        .await
        .expect("answered");
    assert_eq!(
        (status, code(&outcome)),
        (401, "client-certificate-missing")
    );

    // The ledger and the metadata stay open to auditors without a certificate.
    let (status, sth) = answer(&nobody, get.clone(), &t.adapter("gp", "/ledger/v1/get-sth"))
        .await
        .expect("answered");
    assert_eq!(status, 200, "{sth}");
    assert!(sth["tree_size"].as_u64().is_some());
    let (status, _) = answer(&nobody, get.clone(), &t.adapter("gp", "/metadata"))
        .await
        .expect("answered");
    assert_eq!(status, 200);

    // The feed's certificate sends and may not read; the gateway's reads and may not send.
    let feed = common::client_with(&t.pki.feed);
    let (status, outcome) = answer(&feed, get.clone(), &read).await.expect("answered");
    assert_eq!((status, code(&outcome)), (403, "client-not-allowed"));
    let (status, answered) = answer(&feed, post.clone(), &ingest)
        .await
        .expect("answered");
    assert_eq!(status, 200, "{answered}");
    let gateway = common::client_with(&t.pki.gateway);
    let (status, bundle) = answer(&gateway, get.clone(), &read)
        .await
        .expect("answered");
    assert_eq!(status, 200, "{bundle}");
    assert_eq!(bundle["resourceType"], "Bundle");
    let (status, outcome) = answer(&gateway, post.clone(), &ingest)
        .await
        .expect("answered");
    assert_eq!((status, code(&outcome)), (403, "client-not-allowed"));

    // A feed of another agency, from the same authority, is not this adapter's feed.
    let other = t
        .pki
        .client(&["feed.midwifery.example.nhs.uk"], "other-feed")
        .expect("another feed's certificate");
    let (status, outcome) = answer(&common::client_with(&other), post.clone(), &ingest)
        .await
        .expect("answered");
    assert_eq!((status, code(&outcome)), (403, "client-not-allowed"));

    // A wildcard certificate from the same authority names no client: names are matched
    // exactly, so `*.kinfold.internal` neither reads nor sends (hardening, defect 5), and
    // nor does one that carries the exact name beside a wildcard.
    for (names, stem) in [
        (&["*.kinfold.internal"][..], "wildcard"),
        (
            &[kinfold::pki::GATEWAY_NAME, "*.kinfold.internal"][..],
            "wildcard-and-gateway",
        ),
        (
            &[kinfold::pki::FEED_NAME, "*.kinfold.internal"][..],
            "wildcard-and-feed",
        ),
    ] {
        let wildcard =
            common::client_with(&t.pki.client(names, stem).expect("a wildcard certificate"));
        let (status, outcome) = answer(&wildcard, get.clone(), &read)
            .await
            .expect("answered");
        assert_eq!(
            (status, code(&outcome)),
            (403, "client-not-allowed"),
            "{names:?} read"
        );
        let (status, outcome) = answer(&wildcard, post.clone(), &ingest)
            .await
            .expect("answered");
        assert_eq!(
            (status, code(&outcome)),
            (403, "client-not-allowed"),
            "{names:?} sent"
        );
    }
    // The exact names, in another case, are the same names.
    let upper = t
        .pki
        .client(&["GATEWAY.Kinfold.Internal"], "gateway-upper")
        .expect("certificate");
    let (status, _) = answer(&common::client_with(&upper), get.clone(), &read)
        .await
        .expect("answered");
    assert_eq!(status, 200);

    // A certificate from another authority fails the handshake: no answer at all.
    let stranger_dir = tempfile::tempdir().expect("temp dir");
    let stranger = kinfold::pki::DemoPki::create(stranger_dir.path()).expect("another authority");
    let mut stranger_gateway = stranger.gateway.clone();
    stranger_gateway.ca = t.pki.ca.clone(); // trusts the adapter, but is signed by a stranger
    let refused = answer(&common::client_with(&stranger_gateway), get.clone(), &read).await;
    assert!(refused.is_err(), "a stranger's certificate was answered");

    // Plain HTTP to the TLS port gets nothing either.
    let plain = read.replacen("https://", "http://", 1);
    let served = reqwest::Client::new()
        .get(&plain)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    assert!(!served, "plain HTTP was served");

    // Every refusal is in the adapter's own ledger, by reason.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let store = Store::open(&format!(
        "sqlite://{}",
        t.dir.path().join("gp.db").display()
    ))
    .await
    .expect("the GP adapter's store");
    let recorded = store
        .ledger_search(&LedgerQuery {
            agent: Some("anonymous".into()),
            limit: 100,
            ..LedgerQuery::default()
        })
        .await
        .expect("ledger");
    let text: String = recorded.iter().map(|r| r.record.as_str()).collect();
    assert!(text.contains("client-certificate-missing"), "{text}");
    assert!(text.contains("client-not-allowed"), "{text}");
    store.close().await;
    t.demo.shutdown().await;
}

async fn mllp_reply(
    stream: &mut Box<dyn kinfold_http::tls::Duplex>,
    message: &str,
) -> Option<String> {
    let mut frame = vec![0x0b];
    frame.extend_from_slice(message.as_bytes());
    frame.extend_from_slice(&[0x1c, 0x0d]);
    stream.write_all(&frame).await.ok()?;
    let mut reply = Vec::new();
    let read = async {
        while !reply.ends_with(&[0x1c, 0x0d]) {
            reply.push(stream.read_u8().await.ok()?);
        }
        Some(())
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .ok()??;
    Some(String::from_utf8_lossy(&reply).into_owned())
}

const ADT: &str = "MSH|^~\\&|EPR|RXX|KINFOLD|AE|20261101100000+0000||ADT^A04^ADT_A01|TLS-1|P|2.5\rPID|1||9990000026^^^NHS^NH||Haddad^Leo||20220115|1\rPV1|1|E|AE^^^RXX||||||||||||||||V88|||||||||||||||||||||||||20261101093000+0000";

#[tokio::test]
async fn mllp_over_tls_takes_only_a_feeds_certificate() {
    let k = Kinfold::adapters(Backend::Sqlite).await;
    let address = k.mllp.clone().expect("MLLP");
    assert!(address.starts_with("tls://"), "{address}");
    let (pki, _) = common::test_pki();

    // The feed's certificate: the message is taken and ACKed.
    let mut stream = k.mllp_stream().await;
    let ack = mllp_reply(&mut stream, ADT).await.expect("an ACK");
    assert!(ack.contains("MSA|AA"), "{ack}");

    // The gateway's certificate is not a feed's: the connection is closed unanswered.
    let mut stream = kinfold_http::tls::connect(&address, Some(&pki.gateway))
        .await
        .expect("the handshake itself completes");
    assert_eq!(mllp_reply(&mut stream, ADT).await, None);

    // A wildcard certificate from the same authority is no feed's, even beside the feed's
    // exact name: the connection is closed unanswered.
    let wildcard = pki
        .client(
            &[kinfold::pki::FEED_NAME, "*.kinfold.internal"],
            "mllp-wildcard",
        )
        .expect("certificate");
    let mut stream = kinfold_http::tls::connect(&address, Some(&wildcard))
        .await
        .expect("the handshake itself completes");
    assert_eq!(mllp_reply(&mut stream, ADT).await, None);

    // Plain MLLP to the TLS listener: no ACK.
    let plain = address.trim_start_matches("tls://");
    let mut stream: Box<dyn kinfold_http::tls::Duplex> = Box::new(
        tokio::net::TcpStream::connect(plain)
            .await
            .expect("connects"),
    );
    assert_eq!(mllp_reply(&mut stream, ADT).await, None);

    // And the listener still serves the feed afterwards.
    let mut stream = k.mllp_stream().await;
    let ack = mllp_reply(&mut stream, &ADT.replace("TLS-1", "TLS-2"))
        .await
        .expect("an ACK");
    assert!(ack.contains("MSA|AA"), "{ack}");
}

#[tokio::test]
async fn plain_mllp_is_taken_only_on_loopback() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open_sqlite(&dir.path().join("ae.db"))
        .await
        .expect("store");
    let ledger = kinfold_audit::Ledger::open(
        store.clone(),
        &kinfold_audit::LedgerConfig {
            signing_key: Some(kinfold_audit::Secret::new(kinfold_ledger::b64(&[5u8; 32]))),
            ..kinfold_audit::LedgerConfig::default()
        },
    )
    .await
    .expect("ledger");
    let config = |bind: &str| kinfold_adapter::AdapterConfig {
        agency: Some(kinfold_fhir::Agency::Ae),
        tls: Some(common::adapter_tls()),
        mllp_bind: Some(bind.to_owned()),
        mllp_plain: true,
        ..kinfold_adapter::AdapterConfig::default()
    };
    let everywhere = kinfold_adapter::build(
        kinfold_fhir::Agency::Ae,
        store.clone(),
        ledger.clone(),
        &config("0.0.0.0:0"),
    );
    let refused = everywhere.expect_err("plain MLLP on every address was allowed");
    assert!(refused.to_string().contains("loopback"), "{refused}");
    let loopback = kinfold_adapter::build(
        kinfold_fhir::Agency::Ae,
        store,
        ledger,
        &config("127.0.0.1:0"),
    )
    .expect("plain MLLP on loopback is allowed");
    assert!(loopback.mllp_port().is_some());

    // And no adapter starts without TLS at all.
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open_sqlite(&dir.path().join("gp.db"))
        .await
        .expect("store");
    let ledger = kinfold_audit::Ledger::open(
        store.clone(),
        &kinfold_audit::LedgerConfig {
            signing_key: Some(kinfold_audit::Secret::new(kinfold_ledger::b64(&[6u8; 32]))),
            ..kinfold_audit::LedgerConfig::default()
        },
    )
    .await
    .expect("ledger");
    let open = kinfold_adapter::build(
        kinfold_fhir::Agency::Gp,
        store,
        ledger,
        &kinfold_adapter::AdapterConfig {
            agency: Some(kinfold_fhir::Agency::Gp),
            ..kinfold_adapter::AdapterConfig::default()
        },
    );
    assert!(open.is_err(), "an adapter started without TLS");
}

/// The gateway serves HTTPS when configured, refuses to serve plain HTTP anywhere but on
/// loopback, and takes the adapters' events only over mutual TLS with their client
/// certificate; the adapters send events in the clear to nothing but a loopback address.
#[tokio::test]
async fn the_gateway_serves_tls_and_takes_events_only_over_mutual_tls() {
    let mut k = Kinfold::adapters_over_tls(Backend::Sqlite).await;
    assert!(k.gateway_url.starts_with("https://"), "{}", k.gateway_url);
    k.start_gateway_over_tls().await;

    // The adapters' events reach the gateway over mutual TLS: a person is found by name
    // through the index, which only the events fill.
    const ROWS: &str = include_str!("../../docs/feeds/samples/health-visiting.ndjson");
    assert!(
        k.import(kinfold_fhir::Agency::HealthVisiting, ROWS).await["stored"].as_u64() > Some(0)
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, found) = k
            .get("/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000026")
            .await;
        if status == 200 && found["entry"][0]["resource"]["id"].is_string() {
            let (_, person) = k
                .get(&format!(
                    "/Person/{}",
                    found["entry"][0]["resource"]["id"]
                        .as_str()
                        .unwrap_or_default()
                ))
                .await;
            if person["link"].as_array().is_some_and(|l| !l.is_empty()) {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the events arrive: {found}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Plain HTTP to the gateway's port is not served.
    let plain = k.gateway_url.replacen("https://", "http://", 1);
    let served = reqwest::Client::new()
        .get(format!("{plain}/metadata"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    assert!(!served, "plain HTTP was served");

    // A valid event token is not enough: the connection must carry an adapter's certificate.
    let key = common::agencies::event_key(kinfold_fhir::Agency::Gp);
    let now = jsonwebtoken::get_current_timestamp();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(key.kid.clone());
    let event_token = jsonwebtoken::encode(
        &header,
        &serde_json::json!({"iss": k.auth.issuer, "aud": k.auth.audience, "sub": "gp-adapter",
            "iat": now, "exp": now + 60, "role": "kinfold-adapter"}),
        &jsonwebtoken::EncodingKey::from_secret(key.secret.expose().as_bytes()),
    )
    .expect("signed");
    let delivery = r#"{"agency": "gp", "events": []}"#;
    let (pki, _) = common::test_pki();
    let ca = std::fs::read(&pki.ca).expect("ca");
    let no_certificate = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).expect("ca pem"))
        .build()
        .expect("client");
    let deliver = |client: &reqwest::Client| {
        client
            .post(format!("{}/events", k.gateway_url))
            .bearer_auth(&event_token)
            .header("content-type", "application/json")
            .body(delivery)
            .send()
    };
    for (client, want) in [(&no_certificate, 401), (&k.http, 403)] {
        let response = deliver(client).await.expect("answered");
        assert_eq!(response.status().as_u16(), want);
    }
    let adapter = common::client_with(common::agencies::adapter_client());
    let response = deliver(&adapter).await.expect("answered");
    assert!(response.status().is_success(), "{}", response.status());
    k.finish().await;

    // Without TLS, the gateway starts only on loopback.
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&format!("sqlite://{}", dir.path().join("g.db").display()))
        .await
        .expect("store");
    let ledger_config = kinfold_gateway::LedgerConfig {
        signing_key: Some(kinfold_gateway::Secret::new(kinfold_ledger::b64(
            &[3u8; 32],
        ))),
        ..kinfold_gateway::LedgerConfig::default()
    };
    let ledger = kinfold_gateway::Ledger::open(store.clone(), &ledger_config)
        .await
        .expect("ledger");
    let config = kinfold_gateway::GatewayConfig {
        bind: "0.0.0.0:0".into(),
        auth: kinfold_gateway::AuthConfig {
            keys: vec![kinfold_gateway::KeyConfig {
                kid: "k".into(),
                secret: kinfold_gateway::Secret::new("0123456789abcdef0123456789abcdef".into()),
            }],
            ..kinfold_gateway::AuthConfig::default()
        },
        ledger: ledger_config,
        ..kinfold_gateway::GatewayConfig::default()
    };
    assert!(matches!(
        kinfold_gateway::build(&config, store.clone(), ledger),
        Err(kinfold_gateway::StartError::PlainOnNetwork(_))
    ));
    store.close().await;

    // And an adapter sends its events in the clear only to a loopback gateway.
    let outbox = kinfold_adapter::outbox::OutboxConfig {
        gateway_url: "http://gateway.example.nhs.uk:8080".into(),
        tls: None,
        kid: "k".into(),
        secret: kinfold_gateway::Secret::new("0123456789abcdef0123456789abcdef".into()),
        issuer: "kinfold".into(),
        audience: "kinfold-gateway".into(),
        batch: 10,
        max_backoff_ms: 100,
    };
    assert!(outbox.check().is_err());
    let https_without_certificate = kinfold_adapter::outbox::OutboxConfig {
        gateway_url: "https://gateway.example.nhs.uk".into(),
        ..outbox.clone()
    };
    assert!(https_without_certificate.check().is_err());
    let loopback = kinfold_adapter::outbox::OutboxConfig {
        gateway_url: "http://127.0.0.1:8080".into(),
        ..outbox
    };
    assert!(loopback.check().is_ok());
}

/// A TLS failure between the gateway and an adapter is named as one in the answer (issue 28,
/// defect 3): a gateway that trusts another authority than the one that signed the adapters'
/// certificates says, for each agency, that the certificate is not signed by the authority it
/// trusts, not only "could not be reached".
#[tokio::test]
async fn a_tls_failure_to_an_adapter_is_named_in_the_answer() {
    let mut k = Kinfold::adapters(Backend::Sqlite).await;
    let other = tempfile::tempdir().expect("temp dir");
    let other_authority = kinfold::pki::DemoPki::create(other.path()).expect("another authority");
    k.start_gateway_with(|config| {
        if let Some(tls) = config.adapter_tls.as_mut() {
            tls.ca = other_authority.ca.clone();
        }
    })
    .await;
    let (status, answer) = k
        .get("/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000026")
        .await;
    assert_eq!(status, 200, "{answer}");
    let said = answer.to_string();
    assert!(
        said.contains("TLS: its certificate is not signed by the authority this side trusts"),
        "{said}"
    );
    k.finish().await;
}
