//! Helpers shared by the end-to-end tests: a demo on free ports in a temporary directory, an
//! HTTP client, and the official FHIR R4 JSON Schema.

#![allow(dead_code)]

pub mod agencies;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use kinfold::demo::{DemoOptions, RunningDemo};
use serde_json::Value;

/// A running demo and the directory it lives in (removed when dropped).
pub struct TestDemo {
    pub demo: RunningDemo,
    pub dir: tempfile::TempDir,
    /// A client for the gateway, and for the adapters with a test certificate that both sends
    /// (as the demo's feeds) and reads (as the gateway).
    pub http: reqwest::Client,
    /// The demo's certificates.
    pub pki: kinfold::pki::DemoPki,
}

/// The name on the test certificates that may both send and read.
pub const TEST_CLIENT: [&str; 2] = [kinfold::pki::GATEWAY_NAME, kinfold::pki::FEED_NAME];

/// An HTTP client with the given credentials.
pub fn client_with(tls: &kinfold_http::tls::ClientTls) -> reqwest::Client {
    kinfold_http::tls::client(tls, reqwest::Client::builder())
        .expect("the credentials load")
        .build()
        .expect("client")
}

/// One authority and its certificates for a whole test binary (in a folder kept until the
/// process ends), with a test client that both sends and reads.
pub fn test_pki() -> &'static (kinfold::pki::DemoPki, kinfold_http::tls::ClientTls) {
    static PKI: OnceLock<(kinfold::pki::DemoPki, kinfold_http::tls::ClientTls)> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir").keep();
        let pki = kinfold::pki::DemoPki::create(&dir).expect("certificates");
        let both = pki
            .client(&TEST_CLIENT, "test-client")
            .expect("test client");
        (pki, both)
    })
}

/// The adapters' TLS for tests, from [`test_pki`].
pub fn adapter_tls() -> kinfold_adapter::AdapterTls {
    let (pki, _) = test_pki();
    kinfold_adapter::AdapterTls {
        cert: pki.adapter_cert.clone(),
        key: pki.adapter_key.clone(),
        client_ca: pki.ca.clone(),
        gateway_names: vec![kinfold::pki::GATEWAY_NAME.to_owned()],
        feed_names: vec![kinfold::pki::FEED_NAME.to_owned()],
    }
}

impl TestDemo {
    /// Starts the gateway and five adapters on free ports with a small population.
    pub async fn start(families: usize) -> Self {
        Self::start_with(families, |_| {}).await
    }

    /// As [`TestDemo::start`], with the options changed first.
    pub async fn start_with(families: usize, change: impl FnOnce(&mut DemoOptions)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut options = DemoOptions::new(dir.path().to_path_buf(), 0);
        options.population.families = families;
        options.adapter_timeout = Duration::from_secs(2);
        options.workers = 1;
        change(&mut options);
        let demo = kinfold::demo::start(options)
            .await
            .expect("the demo starts");
        let pki = kinfold::pki::DemoPki::create(&dir.path().join("pki")).expect("the demo's pki");
        let both = pki
            .client(&TEST_CLIENT, "test-client")
            .expect("test client");
        Self {
            demo,
            dir,
            http: client_with(&both),
            pki,
        }
    }

    pub fn gateway(&self, path: &str) -> String {
        format!("{}{}", self.demo.info.gateway, path)
    }

    pub fn adapter(&self, agency: &str, path: &str) -> String {
        format!("{}{}", self.demo.info.adapters[agency], path)
    }

    /// GET with the demo's token; returns status and JSON body.
    pub async fn get(&self, url: &str) -> (u16, Value) {
        get_json(&self.http, url, Some(&self.demo.info.token)).await
    }

    /// GET as the area's privacy officer (the audit views are theirs).
    pub async fn officer_get(&self, url: &str) -> (u16, Value) {
        get_json(&self.http, url, Some(&self.officer_token())).await
    }

    /// The area's privacy officer's token, from `demo.json`.
    pub fn officer_token(&self) -> String {
        self.demo.info.consent_example.tokens["privacy-officer"].clone()
    }
}

pub async fn start_in(dir: PathBuf, families: usize, timeout: Duration) -> RunningDemo {
    let mut options = DemoOptions::new(dir, 0);
    options.population.families = families;
    options.adapter_timeout = timeout;
    options.workers = 1;
    kinfold::demo::start(options)
        .await
        .expect("the demo starts")
}

pub async fn get_json(http: &reqwest::Client, url: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = http.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request is answered");
    let status = response.status().as_u16();
    let body = response.text().await.expect("body");
    let json = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{url} answered non-JSON ({e}): {body}"));
    (status, json)
}

/// The repository's copy of the third-party examples (`tests/conformance/SOURCES.md`), or
/// another copy named by `KINFOLD_CONFORMANCE_DIR`.
pub fn conformance_dir() -> PathBuf {
    std::env::var_os("KINFOLD_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conformance"))
}

/// POST a FHIR JSON body; returns status and JSON answer.
pub async fn post_json(http: &reqwest::Client, url: &str, body: String) -> (u16, Value) {
    let response = http
        .post(url)
        .header("content-type", "application/fhir+json")
        .body(body)
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}")),
    )
}

/// Fails the test if `value` does not validate against the official FHIR R4 JSON Schema.
pub fn assert_valid_fhir(what: &str, value: &Value) {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        let path = conformance_dir().join("schema/fhir.schema.json");
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let schema: Value = serde_json::from_slice(&text).expect("schema is JSON");
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft6)
            .build(&schema)
            .expect("schema compiles")
    });
    let errors: Vec<String> = validator
        .iter_errors(value)
        .take(5)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not validate against the FHIR R4 schema: {errors:#?}"
    );
}

/// The resources of a Bundle's entries.
pub fn resources(bundle: &Value) -> Vec<&Value> {
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|e| &e["resource"]).collect())
        .unwrap_or_default()
}

/// The OperationOutcome entries of a searchset.
pub fn outcomes(bundle: &Value) -> Vec<&Value> {
    resources(bundle)
        .into_iter()
        .filter(|r| r["resourceType"] == "OperationOutcome")
        .collect()
}

/// One agency's adapter on its own, on the given store, serving real HTTPS on a free port, and
/// a client that may both send to it and read it.
pub async fn adapter_on(
    agency: kinfold_fhir::Agency,
    store: kinfold_store::Store,
) -> (String, actix_web::dev::ServerHandle, reqwest::Client) {
    let ledger_config = kinfold_audit::LedgerConfig {
        signing_key: Some(kinfold_audit::Secret::new(kinfold_ledger::b64(&[7u8; 32]))),
        ..kinfold_audit::LedgerConfig::default()
    };
    let ledger = kinfold_audit::Ledger::open(store.clone(), &ledger_config)
        .await
        .expect("ledger");
    let config = kinfold_adapter::AdapterConfig {
        agency: Some(agency),
        workers: 1,
        tls: Some(adapter_tls()),
        ..kinfold_adapter::AdapterConfig::default()
    };
    let app = kinfold_adapter::build(agency, store, ledger, &config).expect("adapter");
    let url = format!("https://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    (url, handle, client_with(&test_pki().1))
}

/// The GP's records of the sample feeds' family (`docs/feeds/samples/`): Leo registered at
/// practice A81001, his mother Amira as a RelatedPerson and a Patient, and her consultation, which
/// is not safeguarding-relevant to his professionals. `identifier` names the Bundle (each test
/// its own, so that it is not taken for a resend).
pub fn gp_family_bundle(identifier: &str) -> Value {
    const CHILD_NHS: &str = "9990000026";
    const MOTHER_NHS: &str = "9990000018";
    serde_json::json!({
        "resourceType": "Bundle", "type": "transaction", "identifier": {"value": identifier},
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "gp-leo", "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": CHILD_NHS}],
                "generalPractitioner": [{"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "A81001"}}]},
             "request": {"method": "PUT", "url": "Patient/gp-leo"}},
            {"resource": {"resourceType": "RelatedPerson", "id": "gp-leo-mother", "patient": {"reference": "Patient/gp-leo"},
                "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": MOTHER_NHS}],
                "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH"}]}]},
             "request": {"method": "PUT", "url": "RelatedPerson/gp-leo-mother"}},
            {"resource": {"resourceType": "Patient", "id": "gp-amira", "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": MOTHER_NHS}]},
             "request": {"method": "PUT", "url": "Patient/gp-amira"}},
            {"resource": {"resourceType": "Encounter", "id": "gp-amira-consult", "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                "subject": {"reference": "Patient/gp-amira"}, "period": {"start": "2026-03-02T10:00:00Z"}},
             "request": {"method": "PUT", "url": "Encounter/gp-amira-consult"}}
        ]
    })
}
