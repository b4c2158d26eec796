//! The gateway end to end: real adapters, real HTTP, real SQLite, real JWTs.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{TestDemo, assert_valid_fhir, get_json, outcomes, resources};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kinfold_fhir::Agency;
use serde_json::{Value, json};

fn agencies_in(bundle: &Value) -> BTreeSet<String> {
    resources(bundle)
        .iter()
        .filter_map(|r| r["meta"]["source"].as_str())
        .filter_map(|s| s.strip_prefix("urn:kinfold:agency:"))
        .map(str::to_owned)
        .collect()
}

/// G4, G12: one query reaches every agency live, and each record says where it came from.
#[tokio::test]
async fn everything_joins_every_agencys_records_and_marks_their_source() {
    let t = TestDemo::start(3).await;
    let id = t.demo.info.example_patient.id.clone();
    let (status, bundle) = t
        .get(&t.gateway(&format!("/Patient/{id}/$everything")))
        .await;
    assert_eq!(status, 200, "{bundle}");
    assert_eq!(bundle["type"], "searchset");
    assert_valid_fhir("$everything Bundle", &bundle);

    let agencies = agencies_in(&bundle);
    assert_eq!(agencies.len(), 5, "records from every agency: {agencies:?}");
    assert!(outcomes(&bundle).is_empty(), "no agency missing");

    let patient = resources(&bundle)[0];
    assert_eq!(patient["resourceType"], "Patient");
    assert_eq!(patient["id"], id.as_str());
    assert_eq!(
        patient["identifier"][0]["value"],
        t.demo.info.example_patient.nhs_number.as_str()
    );
    assert_eq!(
        patient["link"].as_array().map(Vec::len),
        Some(5),
        "a link to each agency's record"
    );
    // Each link names a record a client can find (in this Bundle, by its meta.source and id),
    // never an adapter's address, which clients cannot reach.
    for link in patient["link"].as_array().expect("links") {
        let other = &link["other"];
        assert!(other.get("reference").is_none(), "{link}");
        let found = resources(&bundle).into_iter().any(|r| {
            r["resourceType"] == "Patient"
                && r["meta"]["source"] == other["identifier"]["system"]
                && r["id"] == other["identifier"]["value"]
        });
        assert!(found, "the linked record is in the Bundle: {link}");
    }

    // The gateway's own Provenance says where it fetched each agency's part from; each
    // agency's say where its records came from (the ingest that stored them, G12).
    let (fetched, ingested): (Vec<_>, Vec<_>) = resources(&bundle)
        .into_iter()
        .filter(|r| r["resourceType"] == "Provenance")
        .partition(|r| r["meta"]["source"].is_null());
    assert_eq!(
        fetched.len(),
        5,
        "one Provenance per agency from the gateway"
    );
    let sources: std::collections::BTreeSet<_> = ingested
        .iter()
        .filter_map(|p| p["meta"]["source"].as_str())
        .collect();
    assert_eq!(
        sources.len(),
        5,
        "every agency's ingest provenance: {sources:?}"
    );
    for provenance in &ingested {
        assert!(provenance["recorded"].is_string(), "{provenance}");
        assert!(
            provenance["entity"][0]["what"]["reference"]
                .as_str()
                .is_some_and(|r| r.starts_with("Binary/")),
            "the original is kept: {provenance}"
        );
    }
    let matches = bundle["entry"]
        .as_array()
        .map(|e| e.iter().filter(|e| e["search"]["mode"] == "match").count());
    assert_eq!(bundle["total"].as_u64(), matches.map(|m| m as u64));
    for record in resources(&bundle).iter().filter(|r| {
        !matches!(
            r["resourceType"].as_str(),
            Some("Provenance" | "OperationOutcome")
        )
    }) {
        assert!(
            record["meta"]["source"].is_string(),
            "every record names its source: {record}"
        );
    }
    t.demo.shutdown().await;
}

/// G4: with an agency down, the answer still comes and names the missing agency.
#[tokio::test]
async fn a_stopped_adapter_is_named_in_the_answer_not_silently_left_out() {
    let mut t = TestDemo::start(2).await;
    t.demo.stop_adapter(Agency::Ae).await;
    let id = t.demo.info.example_patient.id.clone();
    let (status, bundle) = t
        .get(&t.gateway(&format!("/Patient/{id}/$everything")))
        .await;
    assert_eq!(status, 200);
    assert_valid_fhir("partial $everything Bundle", &bundle);
    let agencies = agencies_in(&bundle);
    assert!(!agencies.contains("ae"));
    assert_eq!(agencies.len(), 4);
    let missing = outcomes(&bundle);
    assert_eq!(missing.len(), 1);
    let issue = &missing[0]["issue"][0];
    assert_eq!(issue["details"]["coding"][0]["code"], "ae");
    assert!(
        issue["diagnostics"]
            .as_str()
            .is_some_and(|d| d.contains("A&E")),
        "{issue}"
    );
    t.demo.shutdown().await;
}

/// G4: an adapter that accepts the connection and never answers costs only its deadline.
#[tokio::test]
async fn a_hung_adapter_costs_only_its_deadline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = common::start_in(dir.path().to_path_buf(), 2, Duration::from_secs(2)).await;
    // A listener that is never accepted from: connections open, requests are never answered.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    // (An https address: the TLS handshake never completes either.)
    let hung_url = format!("https://{}", hung.local_addr().expect("addr"));

    let secret = "hung-adapter-test-secret-0123456789";
    let mut adapters: Vec<kinfold_gateway::AdapterEndpoint> = demo
        .info
        .adapters
        .iter()
        .map(|(agency, url)| kinfold_gateway::AdapterEndpoint {
            agency: agency.parse().expect("agency"),
            url: url.clone(),
        })
        .collect();
    for endpoint in &mut adapters {
        if endpoint.agency == Agency::Gp {
            endpoint.url = hung_url.clone();
        }
    }
    let auth = kinfold_gateway::AuthConfig {
        keys: vec![kinfold_gateway::KeyConfig {
            kid: "t".into(),
            secret: kinfold_gateway::Secret::new(secret.into()),
        }],
        ..Default::default()
    };
    let config = kinfold_gateway::GatewayConfig {
        bind: "127.0.0.1:0".into(),
        adapter_timeout_ms: 300,
        adapters,
        // The demo's gateway certificate: the adapters read only to it.
        adapter_tls: Some(
            kinfold::pki::DemoPki::create(&dir.path().join("pki"))
                .expect("the demo's pki")
                .gateway,
        ),
        auth: auth.clone(),
        workers: 1,
        // Every configured adapter needs a key for its events (this gateway receives none).
        event_keys: Agency::ALL
            .into_iter()
            .map(|agency| kinfold_gateway::events::EventKey {
                agency,
                kid: format!("unused-{agency}"),
                secret: kinfold_gateway::Secret::new(
                    "an-event-key-no-adapter-here-uses-0123".into(),
                ),
            })
            .collect(),
        ..Default::default()
    };
    // Its own database: two ledgers must never write to one.
    let store = kinfold_store::Store::open_sqlite(&dir.path().join("hung-gateway.db"))
        .await
        .expect("store");
    let nhs: kinfold_fhir::NhsNumber = demo.info.example_patient.nhs_number.parse().expect("nhs");
    let person = store.person_id_for(&nhs).await.expect("person id");
    let ledger_config = kinfold_gateway::LedgerConfig {
        signing_key: Some(kinfold_gateway::Secret::new(
            std::fs::read_to_string(dir.path().join("ledger-signing-key"))
                .expect("demo ledger key"),
        )),
        ..Default::default()
    };
    let ledger = kinfold_gateway::Ledger::open(store.clone(), &ledger_config)
        .await
        .expect("ledger opens");
    let gateway = kinfold_gateway::build(&config, store, ledger).expect("gateway builds");
    let url = format!("http://127.0.0.1:{}", gateway.port());
    let handle = gateway.handle();
    tokio::spawn(gateway.run_until_stopped());
    let token = kinfold_gateway::issue_token_for(
        &auth,
        &kinfold_gateway::TokenFor {
            subject: "tester",
            org: Some("Q99"),
            role: Some("safeguarding-professional"),
            purpose: Some("safeguarding"),
            ..kinfold_gateway::TokenFor::default()
        },
        60,
    )
    .expect("token");

    let started = Instant::now();
    let (status, bundle) = get_json(
        &reqwest::Client::new(),
        &format!("{url}/Patient/{person}/$everything"),
        Some(&token),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(status, 200);
    let missing = outcomes(&bundle);
    assert_eq!(missing.len(), 1, "{bundle}");
    assert_eq!(missing[0]["issue"][0]["code"], "timeout");
    assert!(
        missing[0]["issue"][0]["diagnostics"]
            .as_str()
            .is_some_and(|d| d.contains("300 ms"))
    );
    assert_eq!(
        agencies_in(&bundle).len(),
        4,
        "the other agencies still answered"
    );
    // Generous bound: the point is that the gateway does not wait for the hung adapter.
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    handle.stop(true).await;
    demo.shutdown().await;
    drop(hung);
}

#[tokio::test]
async fn patients_are_found_by_nhs_number_under_an_opaque_id() {
    let t = TestDemo::start(2).await;
    let nhs = t.demo.info.example_patient.nhs_number.clone();
    let (status, bundle) = t
        .get(&t.gateway(&format!(
            "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}"
        )))
        .await;
    assert_eq!(status, 200);
    assert_valid_fhir("Patient searchset", &bundle);
    assert_eq!(bundle["total"], 1);
    let patient = resources(&bundle)[0];
    assert_eq!(patient["id"], t.demo.info.example_patient.id.as_str());
    assert!(
        !patient["id"].as_str().unwrap_or_default().contains(&nhs),
        "the id does not reveal the NHS number"
    );

    let (status, read) = t
        .get(&t.gateway(&format!("/Patient/{}", t.demo.info.example_patient.id)))
        .await;
    assert_eq!(status, 200);
    assert_eq!(read["id"], patient["id"]);
    assert_valid_fhir("Patient read", &read);

    // A valid NHS number outside the demo's 999 test range: nobody has it.
    let (status, none) = t
        .get(&t.gateway("/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(none["total"], 0);
    t.demo.shutdown().await;
}

#[tokio::test]
async fn bad_queries_get_an_operation_outcome_saying_what_and_where() {
    let t = TestDemo::start(1).await;
    let cases = [
        (
            "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434765918",
            400,
            "bad-nhs-number",
        ),
        (
            "/Patient?identifier=https://example.org/mrn|123",
            400,
            "bad-search",
        ),
        ("/Patient?name=Smith", 400, "bad-search"),
        ("/Patient", 400, "bad-search"),
        ("/Patient/no-such-person", 404, "not-found"),
        ("/Patient/no-such-person/$everything", 404, "not-found"),
        ("/Observation", 404, "no-such-route"),
    ];
    for (path, expected, code) in cases {
        let (status, body) = t.get(&t.gateway(path)).await;
        assert_eq!(status, expected, "{path}: {body}");
        assert_eq!(body["resourceType"], "OperationOutcome", "{path}");
        assert_eq!(
            body["issue"][0]["details"]["coding"][0]["code"], code,
            "{path}"
        );
        assert_valid_fhir(path, &body);
    }
    t.demo.shutdown().await;
}

fn token_with(secret: &str, alg: Algorithm, claims: Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some("demo".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode")
}

#[tokio::test]
async fn data_routes_refuse_missing_expired_forged_and_unsigned_tokens() {
    let t = TestDemo::start(1).await;
    let url = t.gateway(&format!("/Patient/{}", t.demo.info.example_patient.id));
    let secret =
        std::fs::read_to_string(t.dir.path().join("demo-token-secret")).expect("demo secret");
    let now = jsonwebtoken::get_current_timestamp();
    let claims = |exp: u64, aud: &str| json!({"iss": "kinfold", "aud": aud, "sub": "x", "iat": now, "exp": exp});

    let expired = token_with(
        &secret,
        Algorithm::HS256,
        claims(now - 3600, "kinfold-gateway"),
    );
    let forged = token_with(
        "some-other-secret-of-thirty-two-bytes",
        Algorithm::HS256,
        claims(now + 3600, "kinfold-gateway"),
    );
    let wrong_audience = token_with(
        &secret,
        Algorithm::HS256,
        claims(now + 3600, "another-service"),
    );
    let wrong_algorithm = token_with(
        &secret,
        Algorithm::HS512,
        claims(now + 3600, "kinfold-gateway"),
    );
    let unsigned = {
        use base64_like::encode;
        format!(
            "{}.{}.",
            encode(r#"{"alg":"none","typ":"JWT","kid":"demo"}"#),
            encode(&claims(now + 3600, "kinfold-gateway").to_string())
        )
    };
    let cases: [(&str, Option<&str>, &str); 6] = [
        ("no token", None, "token-missing"),
        ("expired", Some(&expired), "token-expired"),
        ("forged", Some(&forged), "token-signature"),
        ("wrong audience", Some(&wrong_audience), "token-audience"),
        ("wrong algorithm", Some(&wrong_algorithm), "token-algorithm"),
        ("unsigned", Some(&unsigned), "token-malformed"),
    ];
    for (what, token, code) in cases {
        let response = {
            let mut request = t.http.get(&url);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send().await.expect("answered")
        };
        assert_eq!(response.status().as_u16(), 401, "{what}");
        assert!(
            response.headers().contains_key("www-authenticate"),
            "{what}"
        );
        let body: Value = response.json().await.expect("json");
        assert_eq!(
            body["issue"][0]["details"]["coding"][0]["code"], code,
            "{what}: {body}"
        );
    }
    // The capability statement is open, as FHIR clients expect.
    let (status, metadata) = get_json(&t.http, &t.gateway("/metadata"), None).await;
    assert_eq!(status, 200);
    assert_valid_fhir("gateway CapabilityStatement", &metadata);
    t.demo.shutdown().await;
}

/// Base64url without padding, for hand-made tokens.
mod base64_like {
    pub fn encode(text: &str) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = text.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            }
        }
        out
    }
}

#[tokio::test]
async fn a_second_demo_run_reuses_the_data_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = common::start_in(dir.path().to_path_buf(), 2, Duration::from_secs(2)).await;
    assert!(first.seeded > 0);
    let example = first.info.example_patient.clone();
    first.shutdown().await;

    let second = common::start_in(dir.path().to_path_buf(), 2, Duration::from_secs(2)).await;
    assert_eq!(second.seeded, 0, "nothing loaded twice");
    assert_eq!(
        second.info.example_patient.id, example.id,
        "the same person id"
    );
    let written: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("demo.json")).expect("demo.json"),
    )
    .expect("json");
    assert_eq!(written["example_patient"]["id"], example.id.as_str());
    assert_eq!(written["gateway"], second.info.gateway.as_str());
    assert!(
        written["token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
    assert_eq!(written["adapters"].as_object().map(|a| a.len()), Some(5));
    second.shutdown().await;
}
