//! `kinfold demo`: the gateway and five adapters on one machine, real HTTP on 127.0.0.1,
//! SQLite under one data directory, seeded with synthetic families through each agency's
//! native feed (HL7 v2 over MLLP, extracts, FHIR Bundles).

use std::path::{Path, PathBuf};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use futures::stream::{self, StreamExt};
use kinfold_adapter::AdapterConfig;
use kinfold_fhir::{Agency, Resource};
use kinfold_gateway::{AdapterEndpoint, AuthConfig, GatewayConfig, KeyConfig, Secret};
use kinfold_store::Store;
use kinfold_synth::{Feed, Options, Population};
use serde::Serialize;

/// What to start.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the databases, the token secret and `demo.json` live.
    pub data_dir: PathBuf,
    /// The gateway's port; the adapters take the next five. 0 picks free ports.
    pub port: u16,
    /// The synthetic population.
    pub population: Options,
    /// How long the gateway waits for each agency.
    pub adapter_timeout: Duration,
    /// HTTP worker threads per server.
    pub workers: usize,
    /// How refused requests are counted at the gateway (tests shorten the interval).
    pub refusals: kinfold_audit::RefusalConfig,
    /// How long one MLLP frame may take to arrive at the A&E adapter.
    pub mllp_frame_timeout: Duration,
    /// System clients registered beside the demo's own (tests add one with an RSA key).
    pub smart_clients: Vec<kinfold_gateway::smart::SmartClient>,
    /// The clock notification deadlines and escalations run on (tests move one).
    pub clock: std::sync::Arc<dyn kinfold_time::Clock>,
    /// The gateway's database, when not `gateway.db` in the data directory (a scenario's on
    /// PostgreSQL).
    pub gateway_database: Option<String>,
}

impl DemoOptions {
    /// The defaults of `kinfold demo`.
    pub fn new(data_dir: PathBuf, port: u16) -> Self {
        Self {
            data_dir,
            port,
            population: Options::default(),
            adapter_timeout: Duration::from_secs(2),
            workers: 2,
            refusals: kinfold_audit::RefusalConfig::default(),
            mllp_frame_timeout: Duration::from_secs(30),
            smart_clients: Vec::new(),
            clock: std::sync::Arc::new(kinfold_time::SystemClock),
            gateway_database: None,
        }
    }
}

/// What `demo.json` holds, for scripts.
#[derive(Debug, Clone, Serialize)]
pub struct DemoInfo {
    /// The gateway's base URL.
    pub gateway: String,
    /// Each adapter's base URL, by agency.
    pub adapters: std::collections::BTreeMap<String, String>,
    /// A bearer token for the gateway.
    pub token: String,
    /// A child with records at every agency.
    pub example_patient: ExamplePatient,
    /// The child whose weight falters (see `$growth-chart`), and her brothers, who grow
    /// normally.
    pub growth_example: Option<GrowthExample>,
    /// The identity story's child and her family (see `kinfold_synth::story`).
    pub family_example: FamilyExample,
    /// The same family seen by different callers (`docs/consent.md`).
    pub consent_example: ConsentExample,
    /// The audit ledger's Ed25519 public key (base64), for `kinfold ledger verify`.
    pub ledger_public_key: String,
    /// Where each adapter that takes HL7 v2 listens for MLLP: the A&E adapter, in plain MLLP
    /// on loopback (`host:port`; a listener that wants TLS is written `tls://host:port`).
    pub mllp: std::collections::BTreeMap<String, String>,
    /// A feed's credentials (PEM files): the authority the adapters' certificates chain to,
    /// and a client certificate that may send to every demo adapter and may not read.
    pub client_tls: kinfold_http::tls::ClientTls,
    /// A registered system client for SMART Backend Services (`docs/smart.md`).
    pub smart_client: crate::smart_client::ClientFile,
    /// The liaison dashboard: its address and who can sign in to it.
    pub dashboard: DashboardInfo,
}

/// The liaison dashboard of the demo.
#[derive(Debug, Clone, Serialize)]
pub struct DashboardInfo {
    /// Its sign-in page.
    pub url: String,
    /// The demo's users (chosen on the sign-in page, no password).
    pub users: Vec<kinfold_dashboard::User>,
}

/// The area's code (the demo's safeguarding lead and privacy officer work for it).
fn area_of_demo() -> String {
    kinfold_gateway::disclosure::DisclosureConfig::default().area
}

/// The demo's dashboard users: one of each kind of professional the dashboard is for, and a GP
/// of a practice the story family is not registered with.
pub fn demo_users(area: &str) -> Vec<kinfold_dashboard::User> {
    let organisation_of = |agency: Agency, fallback: &str| {
        kinfold_gateway::disclosure::DisclosureConfig::default()
            .organisations
            .into_iter()
            .find(|o| o.agency == agency)
            .map(|o| o.organisation)
            .unwrap_or_else(|| fallback.to_owned())
    };
    let hospital = organisation_of(Agency::Ae, "RXX01");
    let community = organisation_of(Agency::HealthVisiting, "RX1");
    let user = |key: &str, subject: &str, name: &str, org: &str, org_name: &str, role: &str| {
        kinfold_dashboard::User {
            key: key.to_owned(),
            subject: subject.to_owned(),
            name: name.to_owned(),
            organisation: org.to_owned(),
            organisation_name: org_name.to_owned(),
            role: role.to_owned(),
        }
    };
    vec![
        user(
            "liaison-nurse",
            "demo-liaison-nurse",
            "Sam Adeyemi",
            &hospital,
            "Northfield Hospital",
            "paediatric-liaison-nurse",
        ),
        user(
            "health-visitor",
            "demo-health-visitor",
            "Kerry Walsh",
            &community,
            "Northfield Community Health",
            "health-visitor",
        ),
        user(
            "school-nurse",
            "demo-school-nurse",
            "Priya Shah",
            &community,
            "Northfield Community Health",
            "school-nurse",
        ),
        user(
            "gp",
            "demo-gp",
            "Dr Tom Hughes",
            kinfold_synth::story::PRACTICE,
            "Riverside Surgery (the story family's practice)",
            "gp",
        ),
        user(
            "unrelated-gp",
            "demo-unrelated-gp",
            "Dr Ann Lee",
            "B99999",
            "Hilltop Practice (no family of the story registered)",
            "gp",
        ),
        user(
            "safeguarding-lead",
            DEMO_CALLER,
            "Ruth Bell",
            area,
            "Northfield area safeguarding",
            "safeguarding-professional",
        ),
        user(
            "privacy-officer",
            "demo-privacy-officer",
            "Mark Ellis",
            area,
            "Northfield area information governance",
            "privacy-officer",
        ),
    ]
}

/// The demo system client's id.
pub const SMART_CLIENT: &str = "demo-ehr";

/// The demo's example child.
#[derive(Debug, Clone, Serialize)]
pub struct ExamplePatient {
    /// Kinfold's person id (use it in `/Patient/{id}`).
    pub id: String,
    /// The child's NHS number (test range).
    pub nhs_number: String,
}

/// The demo's growth story.
#[derive(Debug, Clone, Serialize)]
pub struct GrowthExample {
    /// The child whose weight falls from the 50th–75th centiles to below the 2nd.
    pub child: ExamplePatient,
    /// Her brothers, growing along their centiles.
    pub siblings: Vec<ExamplePatient>,
}

/// The demo's identity story: a child registered differently by each agency (with and
/// without an NHS number, spelt with and without diacritics), her brother registered before
/// he was named, her mother's booked pregnancy, and the mother's partner named only in a
/// domestic-abuse notification.
#[derive(Debug, Clone, Serialize)]
pub struct FamilyExample {
    /// The child.
    pub child: ExamplePatient,
    /// Her family as the gateway's `$family` lists it: each member's person id and
    /// relationship code.
    pub members: Vec<FamilyMember>,
}

/// One member of the family example.
#[derive(Debug, Clone, Serialize)]
pub struct FamilyMember {
    /// Kinfold's person id.
    pub id: String,
    /// The relationship to the child (HL7 v3 RoleCode, or Kinfold's family-relationship code).
    pub relationship: String,
}

/// The subject of the demo's token.
pub const DEMO_CALLER: &str = "demo-safeguarding-lead";

/// The consent story: the family example's child, a sibling and their mother, and a token for
/// each kind of caller, each with something to see and something not to.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentExample {
    /// The child (the family example's).
    pub child: String,
    /// Her brother.
    pub sibling: Option<String>,
    /// Their mother.
    pub mother: Option<String>,
    /// Bearer tokens: `health-visitor` (the area's pool, which the child is allocated to),
    /// `health-visitor-override` (the same, purpose override with a justification),
    /// `unrelated-gp` (a practice the family is not registered with),
    /// `paediatric-liaison-nurse` (the hospital's: its notifications inbox), `privacy-officer` (the
    /// area's: every audit view) and `identity-steward` (of the community trust that holds the
    /// health-visiting and school-nursing records: the review queue, links and family edges
    /// of the people whose records it holds).
    pub tokens: std::collections::BTreeMap<String, String>,
}

/// The callers of the consent story, each token's issue recorded.
fn consent_example(
    auth: &AuthConfig,
    family: &FamilyExample,
    records: &mut Vec<kinfold_ledger::AuditRecord>,
) -> Result<ConsentExample, DemoError> {
    let member = |code: &str| {
        family
            .members
            .iter()
            .find(|m| m.relationship == code)
            .map(|m| m.id.clone())
    };
    let health_visiting = kinfold_gateway::disclosure::DisclosureConfig::default()
        .organisations
        .into_iter()
        .find(|o| o.agency == Agency::HealthVisiting)
        .map(|o| o.organisation)
        .unwrap_or_else(|| "RX1".into());
    let hospital = kinfold_gateway::disclosure::DisclosureConfig::default()
        .organisations
        .into_iter()
        .find(|o| o.agency == Agency::Ae)
        .map(|o| o.organisation)
        .unwrap_or_else(|| "RXX01".into());
    let caller = |subject, org, role, purpose, justification| kinfold_gateway::TokenFor {
        subject,
        name: None,
        org: Some(org),
        role: Some(role),
        purpose: Some(purpose),
        justification,
    };
    let callers = [
        (
            "health-visitor",
            caller(
                "demo-health-visitor",
                &health_visiting,
                "health-visitor",
                "direct-care",
                None,
            ),
        ),
        (
            "health-visitor-override",
            caller(
                "demo-health-visitor",
                &health_visiting,
                "health-visitor",
                "override",
                Some("Bruising seen on the baby at today's visit; checking the whole household"),
            ),
        ),
        (
            "unrelated-gp",
            caller("demo-unrelated-gp", "B99999", "gp", "direct-care", None),
        ),
        (
            "paediatric-liaison-nurse",
            caller(
                "demo-liaison-nurse",
                &hospital,
                "paediatric-liaison-nurse",
                "direct-care",
                None,
            ),
        ),
        (
            "privacy-officer",
            caller(
                "demo-privacy-officer",
                "Q99",
                "privacy-officer",
                "direct-care",
                None,
            ),
        ),
        (
            "identity-steward",
            caller(
                "demo-identity-steward",
                &health_visiting,
                "identity-steward",
                "direct-care",
                None,
            ),
        ),
    ];
    let mut tokens = std::collections::BTreeMap::new();
    for (label, who) in callers {
        let token = kinfold_gateway::issue_token_for(auth, &who, 12 * 3600)
            .map_err(|e| DemoError::Seed(e.to_string()))?;
        records.push(kinfold_gateway::audit::token_issued(
            "kinfold-demo",
            None,
            who.subject,
            who.org,
            who.role,
        ));
        tokens.insert(label.to_owned(), token);
    }
    Ok(ConsentExample {
        child: family.child.id.clone(),
        sibling: member("SIB"),
        mother: member("MTH"),
        tokens,
    })
}

/// How long the demo waits for the adapters' events to reach the person index.
const FAMILY_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Asks the gateway (as any client would) for the story child and her family, waiting until
/// the adapters' events have joined them: the mother, her brother, the unborn child and the
/// adult named in the notification.
async fn family_example(gateway: &str, token: &str) -> Result<FamilyExample, DemoError> {
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        async move {
            let response = http
                .get(format!("{gateway}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .map_err(|e| DemoError::Seed(format!("the gateway did not answer: {e}")))?;
            let ok = response.status().is_success();
            let body: serde_json::Value = response
                .json()
                .await
                .map_err(|e| DemoError::Seed(e.to_string()))?;
            Ok::<_, DemoError>(ok.then_some(body))
        }
    };
    let deadline = tokio::time::Instant::now() + FAMILY_WAIT;
    loop {
        let found = get(format!(
            "/Patient?identifier={}|{}",
            kinfold_fhir::NHS_NUMBER_SYSTEM,
            kinfold_synth::story::CHILD_NHS
        ))
        .await?;
        let id = found
            .as_ref()
            .and_then(|b| b["entry"][0]["resource"]["id"].as_str())
            .map(str::to_owned);
        if let Some(id) = id
            && let Some(group) = get(format!("/Patient/{id}/$family")).await?
        {
            let members: Vec<FamilyMember> = group["member"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    FamilyMember {
                    id: m["entity"]["reference"]
                        .as_str()
                        .unwrap_or_default()
                        .trim_start_matches("Patient/")
                        .to_owned(),
                    relationship: m["extension"][0]["extension"][0]["valueCodeableConcept"]
                        ["coding"][0]["code"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                }
                })
                .collect();
            let has = |code: &str| members.iter().any(|m| m.relationship == code);
            if has("MTH") && has("SIB") && has("unborn-sibling") && has("named-adult") {
                return Ok(FamilyExample {
                    child: ExamplePatient {
                        id,
                        nhs_number: kinfold_synth::story::CHILD_NHS.to_owned(),
                    },
                    members,
                });
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(DemoError::Seed(
                "the identity story's family was not joined up within 30 s".into(),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Flags the story child's wrist fracture as "cause of injury inconclusive", as the area's
/// safeguarding lead would (through the gateway's API, like any client): the flag that only
/// another senior safeguarding professional may resolve. Raised once per data directory.
async fn story_flag(gateway: &str, token: &str, child: &str) -> Result<(), DemoError> {
    let flag = serde_json::json!({
        "resourceType": "Flag",
        "subject": {"reference": format!("Patient/{child}")},
        "code": {
            "coding": [{"system": "https://kinfold.example/fhir/CodeSystem/safeguarding-flag", "code": "cause-of-injury-inconclusive"}],
            "text": "Wrist fracture at A&E: the fall described does not fully explain it"
        }
    });
    let response = reqwest::Client::new()
        .post(format!("{gateway}/Flag"))
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .body(flag.to_string())
        .send()
        .await
        .map_err(|e| DemoError::Seed(format!("the gateway did not answer: {e}")))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    // A second run on the same data directory finds the flag already raised.
    if status.is_success() || body.contains("flag.already-active") {
        Ok(())
    } else {
        Err(DemoError::Seed(format!(
            "the story child's flag was refused: {status}"
        )))
    }
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// File or socket trouble.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A database would not open.
    #[error("database: {0}")]
    Store(#[from] kinfold_store::StoreError),
    /// The gateway would not start.
    #[error("gateway: {0}")]
    Gateway(#[from] kinfold_gateway::StartError),
    /// Seeding failed.
    #[error("seeding: {0}")]
    Seed(String),
    /// The audit ledger would not open.
    #[error("ledger: {0}")]
    Ledger(#[from] kinfold_gateway::LedgerError),
}

/// A running demo.
#[derive(Debug)]
pub struct RunningDemo {
    /// URLs, token and example patient.
    pub info: DemoInfo,
    /// How many inputs (HL7 messages, extract rows, Bundle entries) were loaded this time (0
    /// when the data directory was reused).
    pub seeded: usize,
    gateway: ServerHandle,
    adapters: Vec<(Agency, ServerHandle)>,
}

impl RunningDemo {
    /// Stops one agency's adapter (to see how the gateway answers without it).
    pub async fn stop_adapter(&mut self, agency: Agency) {
        if let Some(position) = self.adapters.iter().position(|(a, _)| *a == agency) {
            let (_, handle) = self.adapters.remove(position);
            handle.stop(true).await;
        }
    }

    /// Stops everything, letting requests in flight finish.
    pub async fn shutdown(self) {
        self.gateway.stop(true).await;
        for (_, handle) in self.adapters {
            handle.stop(true).await;
        }
    }
}

/// The demo's servers, running, before any data is loaded: what `kinfold demo` seeds, and what a
/// scenario (`kinfold scenario run`) plays its timeline into.
#[derive(Debug)]
pub struct Stack {
    /// The gateway's base URL.
    pub gateway_url: String,
    /// Each adapter's base URL.
    pub endpoints: Vec<AdapterEndpoint>,
    /// Where each adapter that takes HL7 v2 listens for MLLP (`host:port`).
    pub mllp: std::collections::BTreeMap<String, String>,
    /// The token rules and the key tokens are signed with.
    pub auth: AuthConfig,
    /// The gateway's database.
    pub gateway_store: Store,
    /// The gateway's ledger.
    pub gateway_ledger: kinfold_gateway::Ledger,
    /// The certificates.
    pub pki: crate::pki::DemoPki,
    gateway_config: GatewayConfig,
    smart_info: crate::smart_client::ClientFile,
    ledger_public_key: String,
    adapter_stores: Vec<Store>,
    gateway: ServerHandle,
    adapters: Vec<(Agency, ServerHandle)>,
}

impl Stack {
    /// The adapters' databases (a scenario waits for their outboxes to empty).
    pub fn adapter_stores(&self) -> &[Store] {
        &self.adapter_stores
    }

    /// Stops everything, letting requests in flight finish.
    pub async fn shutdown(self) {
        self.gateway.stop(true).await;
        for (_, handle) in self.adapters {
            handle.stop(true).await;
        }
    }
}

/// Starts the adapters and the gateway on `options`, with no data loaded.
pub async fn start_stack(options: &DemoOptions) -> Result<Stack, DemoError> {
    std::fs::create_dir_all(&options.data_dir)?;
    let bind = |offset: u16| {
        if options.port == 0 {
            "127.0.0.1:0".to_owned()
        } else {
            format!("127.0.0.1:{}", options.port + offset)
        }
    };

    // The local authority and the certificates of the gateway, the adapters and a feed.
    let pki = crate::pki::DemoPki::create(&options.data_dir.join("pki"))
        .map_err(|e| DemoError::Seed(e.to_string()))?;
    let adapter_tls = kinfold_adapter::AdapterTls {
        cert: pki.adapter_cert.clone(),
        key: pki.adapter_key.clone(),
        client_ca: pki.ca.clone(),
        gateway_names: vec![crate::pki::GATEWAY_NAME.to_owned()],
        feed_names: vec![crate::pki::FEED_NAME.to_owned()],
    };

    // The gateway's address first: each adapter delivers its events there.
    let gateway_listener = std::net::TcpListener::bind(bind(0))?;
    let gateway_url = format!("http://127.0.0.1:{}", gateway_listener.local_addr()?.port());
    let mut event_keys = Vec::new();

    let mut adapters = Vec::new();
    let mut endpoints = Vec::new();
    let mut mllp = std::collections::BTreeMap::new();
    let mut adapter_stores = Vec::new();
    for (n, agency) in Agency::ALL.into_iter().enumerate() {
        let store = Store::open_sqlite(&options.data_dir.join(format!("{agency}.db"))).await?;
        let event_key = demo_secret(&options.data_dir, &format!("event-key-{agency}"))?;
        event_keys.push(kinfold_gateway::events::EventKey {
            agency,
            kid: format!("events-{agency}"),
            secret: event_key.clone(),
        });
        let config = AdapterConfig {
            agency: Some(agency),
            bind: bind(1 + u16::try_from(n).unwrap_or(0)),
            workers: options.workers,
            // The A&E adapter also takes HL7 v2 over MLLP, on the port after the adapters'.
            mllp_bind: (agency == Agency::Ae)
                .then(|| bind(1 + u16::try_from(Agency::ALL.len()).unwrap_or(5))),
            mllp_frame_timeout_ms: u64::try_from(options.mllp_frame_timeout.as_millis())
                .unwrap_or(30_000),
            // On loopback only: plain MLLP, as a hospital's interface engine on the same
            // host would send it.
            mllp_plain: true,
            tls: Some(adapter_tls.clone()),
            refusals: options.refusals.clone(),
            outbox: Some(kinfold_adapter::outbox::OutboxConfig {
                gateway_url: gateway_url.clone(),
                tls: None,
                kid: format!("events-{agency}"),
                secret: event_key.clone(),
                issuer: AuthConfig::default().issuer,
                audience: AuthConfig::default().audience,
                batch: 200,
                max_backoff_ms: 10_000,
            }),
            ..AdapterConfig::default()
        };
        let ledger = kinfold_gateway::Ledger::open(
            store.clone(),
            &kinfold_gateway::LedgerConfig {
                signing_key: Some(ledger_seed(
                    &options.data_dir,
                    &format!("ledger-signing-key-{agency}"),
                )?),
                ..kinfold_gateway::LedgerConfig::default()
            },
        )
        .await?;
        let app = kinfold_adapter::build(agency, store.clone(), ledger, &config)?;
        let url = format!("https://127.0.0.1:{}", app.port());
        if let Some(port) = app.mllp_port() {
            mllp.insert(agency.to_string(), format!("127.0.0.1:{port}"));
        }
        adapters.push((agency, app.handle()));
        endpoints.push(AdapterEndpoint { agency, url });
        adapter_stores.push(store);
        tokio::spawn(app.run_until_stopped());
    }

    let auth = AuthConfig {
        keys: vec![KeyConfig {
            kid: "demo".into(),
            secret: demo_secret(&options.data_dir, "demo-token-secret")?,
        }],
        ..AuthConfig::default()
    };
    let gateway_store = match &options.gateway_database {
        Some(url) => Store::open(url).await?,
        None => Store::open_sqlite(&options.data_dir.join("gateway.db")).await?,
    };
    let ledger_config = kinfold_gateway::LedgerConfig {
        signing_key: Some(ledger_seed(&options.data_dir, "ledger-signing-key")?),
        ..kinfold_gateway::LedgerConfig::default()
    };
    let ledger = kinfold_gateway::Ledger::open(gateway_store.clone(), &ledger_config).await?;
    let ledger_public_key = kinfold_ledger::b64(&ledger.public_key());
    // A system client (an EPR integration) registered for SMART Backend Services, speaking
    // for the area's safeguarding team and the story family's practice.
    let (smart_key, jwks) = pki
        .smart_client()
        .map_err(|e| DemoError::Seed(e.to_string()))?;
    let smart_info = crate::smart_client::ClientFile {
        client_id: SMART_CLIENT.into(),
        token_endpoint: format!("{gateway_url}/auth/token"),
        private_key: smart_key,
        alg: "ES384".into(),
        kid: crate::pki::SMART_KID.into(),
        organisations: vec![
            kinfold_gateway::disclosure::DisclosureConfig::default().area,
            kinfold_synth::story::PRACTICE.into(),
        ],
        audience: AuthConfig::default().audience,
    };
    let smart = kinfold_gateway::smart::SmartConfig {
        token_url: Some(smart_info.token_endpoint.clone()),
        clients: std::iter::once(kinfold_gateway::smart::SmartClient {
            client_id: SMART_CLIENT.into(),
            jwks: serde_json::from_value(jwks).map_err(|e| DemoError::Seed(e.to_string()))?,
            scopes: vec!["system/Patient.rs".into()],
            organisations: smart_info.organisations.clone(),
            endpoints: Vec::new(),
            endpoint_tls: None,
        })
        .chain(options.smart_clients.iter().cloned())
        .collect(),
        ..kinfold_gateway::smart::SmartConfig::default()
    };
    let gateway_config = GatewayConfig {
        bind: bind(0),
        smart,
        workers: options.workers,
        adapter_timeout_ms: u64::try_from(options.adapter_timeout.as_millis()).unwrap_or(2000),
        adapters: endpoints.clone(),
        adapter_tls: Some(pki.gateway.clone()),
        auth: auth.clone(),
        ledger: ledger_config,
        refusals: options.refusals.clone(),
        event_keys,
        dashboard: kinfold_dashboard::DashboardConfig {
            demo_users: demo_users(&area_of_demo()),
            ..kinfold_dashboard::DashboardConfig::default()
        },
        ..GatewayConfig::default()
    };
    let gateway_ledger = ledger.clone();
    let gateway = kinfold_gateway::build_with_clock(
        gateway_listener,
        &gateway_config,
        gateway_store.clone(),
        ledger,
        options.clock.clone(),
    )?;
    let gateway_handle = gateway.handle();
    tokio::spawn(gateway.run_until_stopped());
    Ok(Stack {
        gateway_url,
        endpoints,
        mllp,
        auth,
        gateway_store,
        gateway_ledger,
        pki,
        gateway_config,
        smart_info,
        ledger_public_key,
        adapter_stores,
        gateway: gateway_handle,
        adapters,
    })
}

/// Starts the adapters and the gateway, seeds the data if the directory is new, and writes
/// `demo.json`.
pub async fn start(options: DemoOptions) -> Result<RunningDemo, DemoError> {
    let Stack {
        gateway_url,
        endpoints,
        mllp,
        auth,
        gateway_store,
        gateway_ledger,
        pki,
        gateway_config,
        smart_info,
        ledger_public_key,
        adapter_stores,
        gateway: gateway_handle,
        adapters,
    } = start_stack(&options).await?;

    let population = Population::generate(options.population.clone());
    let mut already = 0;
    for store in &adapter_stores {
        already += store.count().await?;
    }
    let seeded = if already == 0 {
        seed(
            &population,
            &endpoints,
            mllp.get("ae").map(String::as_str),
            &pki.feed,
        )
        .await?
    } else {
        0
    };
    // Register every person in the gateway's index (idempotent); each new link is an
    // identity-link change and goes in the ledger.
    let mut links = Vec::new();
    for person in population.people() {
        let (id, created) = gateway_store.link_person(&person.nhs_number).await?;
        if created {
            links.push(kinfold_gateway::audit::identity_link(
                "kinfold-demo",
                &id,
                None,
            ));
        }
    }

    let example = population
        .example_child()
        .ok_or_else(|| DemoError::Seed("the population has no children".into()))?;
    // The demo's caller: the area's designated safeguarding professional, asking for
    // safeguarding, who has a legitimate relationship with every child in the area.
    let area = gateway_config.disclosure.area.clone();
    let token = kinfold_gateway::issue_token_for(
        &auth,
        &kinfold_gateway::TokenFor {
            subject: DEMO_CALLER,
            name: Some("Demo Safeguarding Lead"),
            org: Some(&area),
            role: Some("safeguarding-professional"),
            purpose: Some("safeguarding"),
            justification: None,
        },
        12 * 3600,
    )
    .map_err(|e| DemoError::Seed(e.to_string()))?;
    // Issuing a token is audited too (who it is for, not the token itself).
    links.push(kinfold_gateway::audit::token_issued(
        "kinfold-demo",
        None,
        DEMO_CALLER,
        Some(&area),
        Some("safeguarding-professional"),
    ));
    gateway_ledger.record(links).await?;
    let mut growth_example = None;
    if let Some(family) = population.families.iter().find(|f| f.faltering) {
        let mut child = None;
        let mut siblings = Vec::new();
        for person in &family.children {
            let patient = ExamplePatient {
                id: gateway_store.person_id_for(&person.nhs_number).await?,
                nhs_number: person.nhs_number.to_string(),
            };
            if person.falters {
                child = Some(patient);
            } else {
                siblings.push(patient);
            }
        }
        growth_example = child.map(|child| GrowthExample { child, siblings });
    }
    let family_example = family_example(&gateway_url, &token).await?;
    story_flag(&gateway_url, &token, &family_example.child.id).await?;
    let mut token_records = Vec::new();
    let consent_example = consent_example(&auth, &family_example, &mut token_records)?;
    gateway_ledger.record(token_records).await?;
    let gateway_url_for_info = gateway_url.clone();
    let info = DemoInfo {
        gateway: gateway_url,
        adapters: endpoints
            .iter()
            .map(|e| (e.agency.to_string(), e.url.clone()))
            .collect(),
        token,
        example_patient: ExamplePatient {
            id: gateway_store.person_id_for(&example.nhs_number).await?,
            nhs_number: example.nhs_number.to_string(),
        },
        growth_example,
        family_example,
        consent_example,
        ledger_public_key,
        mllp,
        client_tls: pki.feed.clone(),
        smart_client: smart_info,
        dashboard: DashboardInfo {
            url: format!("{}/app/", gateway_url_for_info),
            users: gateway_config.dashboard.demo_users.clone(),
        },
    };
    let json = serde_json::to_string_pretty(&info).map_err(|e| DemoError::Seed(e.to_string()))?;
    std::fs::write(options.data_dir.join("demo.json"), json)?;
    Ok(RunningDemo {
        info,
        seeded,
        gateway: gateway_handle,
        adapters,
    })
}

/// A demo secret (the token key, each adapter's event key): made once per data directory from
/// the operating system's random source, then reused so that tokens survive a restart.
fn demo_secret(data_dir: &Path, file: &str) -> Result<Secret, std::io::Error> {
    let path = data_dir.join(file);
    if let Ok(existing) = std::fs::read_to_string(&path)
        && existing.trim().len() >= 32
    {
        return Ok(Secret::new(existing.trim().to_owned()));
    }
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    std::fs::write(&path, &secret)?;
    restrict(&path)?;
    Ok(Secret::new(secret))
}

/// A demo ledger signing key (the gateway's and each adapter's): a 32-byte seed from the operating system's random source,
/// made once per data directory.
fn ledger_seed(data_dir: &Path, file: &str) -> Result<Secret, std::io::Error> {
    let path = data_dir.join(file);
    if let Ok(existing) = std::fs::read_to_string(&path)
        && kinfold_ledger::from_b64(existing.trim()).is_some_and(|b| b.len() == 32)
    {
        return Ok(Secret::new(existing.trim().to_owned()));
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| std::io::Error::other(e.to_string()))?;
    let encoded = kinfold_ledger::b64(&seed);
    std::fs::write(&path, &encoded)?;
    restrict(&path)?;
    Ok(Secret::new(encoded))
}

#[cfg(unix)]
fn restrict(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict(_: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Sends every family's records to the agencies' adapters through their native feeds: A&E's
/// attendances as HL7 v2 over MLLP (and its letters and flags as FHIR), the extracts of
/// midwifery, health visiting and school nursing to `POST /$import`, the GP's Bundles to
/// `POST /`. Returns how many inputs (messages, rows, Bundle entries) were stored.
async fn seed(
    population: &Population,
    endpoints: &[AdapterEndpoint],
    mllp: Option<&str>,
    feed: &kinfold_http::tls::ClientTls,
) -> Result<usize, DemoError> {
    let http = kinfold_http::tls::client(feed, reqwest::Client::builder())
        .map_err(|e| DemoError::Seed(e.to_string()))?
        .build()
        .map_err(|e| DemoError::Seed(e.to_string()))?;
    let url_of = |agency: Agency| {
        endpoints
            .iter()
            .find(|e| e.agency == agency)
            .map(|e| e.url.clone())
            .ok_or_else(|| DemoError::Seed(format!("no {agency} adapter")))
    };
    let mut rows: std::collections::BTreeMap<Agency, Vec<String>> = Default::default();
    let mut messages = Vec::new();
    let mut bundles = Vec::new();
    let story = kinfold_synth::story::identity_family(population.options.as_of);
    for (agency, feed) in population.native_feeds().into_iter().chain(story) {
        match feed {
            Feed::Rows(more) => rows.entry(agency).or_default().extend(more),
            Feed::Hl7v2(more) => messages.extend(more),
            Feed::Fhir(bundle) => {
                let count = bundle.entry.len();
                bundles.push((url_of(agency)?, Resource::from(*bundle).to_json(), count));
            }
        }
    }
    let mut seeded = 0;
    // The extracts, 500 rows a request, as `kinfold import` sends them.
    for (agency, rows) in rows {
        let target = crate::import::Target {
            adapter: url_of(agency)?,
            mllp: None,
            tls: Some(feed.clone()),
            mllp_connections: crate::import::MLLP_CONNECTIONS,
        };
        let mut summary = kinfold_adapter::ingest::extract::ImportSummary::default();
        for (n, chunk) in rows.chunks(crate::import::CHUNK_ROWS).enumerate() {
            let mut text = chunk.join("\n");
            crate::import::send_rows(
                &http,
                &target,
                &mut text,
                n * crate::import::CHUNK_ROWS + 1,
                &mut summary,
            )
            .await
            .map_err(DemoError::Seed)?;
        }
        if let Some(row) = summary.rejected.first() {
            return Err(DemoError::Seed(format!(
                "the {agency} extract was refused at line {}, {}: {}",
                row.line, row.field, row.message
            )));
        }
        seeded += summary.stored + summary.unchanged;
    }
    // A&E over MLLP: four connections at once, each waiting for its ACKs, each patient's
    // messages in order over one of them.
    if !messages.is_empty() {
        let address =
            mllp.ok_or_else(|| DemoError::Seed("the A&E adapter takes no MLLP".into()))?;
        let summary = crate::import::send_hl7v2_pipelined(
            address,
            Some(feed),
            &messages,
            4,
            &indicatif::ProgressBar::hidden(),
        )
        .await
        .map_err(DemoError::Seed)?;
        if let Some(row) = summary.rejected.first() {
            return Err(DemoError::Seed(format!(
                "an A&E message was refused ({}): {}",
                row.field, row.message
            )));
        }
        seeded += summary.stored;
    }
    let results: Vec<Result<usize, String>> = stream::iter(bundles)
        .map(|(url, body, count)| {
            let http = http.clone();
            async move {
                // An adapter that is busy says so with 503 and Retry-After: wait and resend,
                // as a feed should.
                let mut tries = 0;
                let response = loop {
                    let response = http
                        .post(format!("{url}/"))
                        .header("content-type", kinfold_fhir::FHIR_JSON)
                        .body(body.clone())
                        .send()
                        .await
                        .map_err(|e| format!("{url}: {e}"))?;
                    tries += 1;
                    if response.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE || tries == 20
                    {
                        break response;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100 * tries)).await;
                };
                if response.status().is_success() {
                    Ok(count)
                } else {
                    Err(format!(
                        "{url} answered {}: {}",
                        response.status(),
                        response.text().await.unwrap_or_default()
                    ))
                }
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    seeded += results
        .into_iter()
        .sum::<Result<usize, String>>()
        .map_err(DemoError::Seed)?;
    Ok(seeded)
}
