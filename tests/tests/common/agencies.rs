//! The gateway and every agency's adapter on one backend, each on its own database, talking
//! real HTTP (and MLLP for A&E), with the adapters' outboxes delivering to the gateway.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use kinfold_adapter::AdapterConfig;
use kinfold_adapter::outbox::OutboxConfig;
use kinfold_fhir::Agency;
use kinfold_gateway::events::EventKey;
use kinfold_gateway::{AdapterEndpoint, AuthConfig, GatewayConfig, KeyConfig, Secret};
use kinfold_store::Store;
use kinfold_store::testing::TestPostgres;
use serde_json::Value;

use super::resources;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The gateway and the agencies' adapters, each on its own database of one backend.
pub struct Kinfold {
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    pub databases: Vec<TestPostgres>,
    pub urls: BTreeMap<Agency, String>,
    pub handles: BTreeMap<Agency, ServerHandle>,
    pub mllp: Option<String>,
    pub gateway_listener: Option<std::net::TcpListener>,
    pub gateway_url: String,
    pub gateway: Option<(ServerHandle, Store)>,
    pub token: String,
    pub auth: AuthConfig,
    pub http: reqwest::Client,
    /// The first gateway's database, for a second gateway on it.
    pub gateway_database: Option<String>,
    /// Gateways started beside the first, on its database.
    pub others: Vec<ServerHandle>,
    /// The adapters' client certificate for delivering events, when the gateway serves TLS.
    pub outbox_tls: Option<kinfold_http::tls::ClientTls>,
}

/// The name on the adapters' client certificate for delivering events over mutual TLS.
pub const ADAPTER_CLIENT_NAME: &str = "adapter.kinfold.internal";

/// The adapters' client certificate, from the test authority (made once per test binary).
pub fn adapter_client() -> &'static kinfold_http::tls::ClientTls {
    static CLIENT: std::sync::OnceLock<kinfold_http::tls::ClientTls> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        super::test_pki()
            .0
            .client(&[ADAPTER_CLIENT_NAME], "adapter-client")
            .expect("the adapters' client certificate")
    })
}

pub fn event_key(agency: Agency) -> EventKey {
    EventKey {
        agency,
        kid: format!("events-{agency}"),
        secret: Secret::new(format!("event-key-of-{agency}-0123456789abcdef0123")),
    }
}

impl Kinfold {
    /// Adapters for every agency, and a gateway address (the gateway itself starts with
    /// [`Kinfold::start_gateway`]).
    pub async fn adapters(backend: Backend) -> Self {
        Self::adapters_with(backend, false).await
    }

    /// Every adapter, delivering its events to a gateway that serves HTTPS, over mutual TLS
    /// with the adapters' client certificate ([`ADAPTER_CLIENT_NAME`]); start the gateway with
    /// [`Kinfold::start_gateway_over_tls`].
    pub async fn adapters_over_tls(backend: Backend) -> Self {
        Self::adapters_with(backend, true).await
    }

    async fn adapters_with(backend: Backend, tls: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let scheme = if tls { "https" } else { "http" };
        let gateway_url = format!(
            "{scheme}://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let auth = AuthConfig {
            keys: vec![KeyConfig {
                kid: "test".into(),
                secret: Secret::new("feeds-test-token-secret-0123456789abcdef".into()),
            }],
            ..AuthConfig::default()
        };
        // The area's safeguarding lead: a relationship with every child in the area.
        let token = kinfold_gateway::issue_token_for(
            &auth,
            &kinfold_gateway::TokenFor {
                subject: "feeds-test",
                org: Some("Q99"),
                role: Some("safeguarding-professional"),
                purpose: Some("safeguarding"),
                ..kinfold_gateway::TokenFor::default()
            },
            3600,
        )
        .expect("token");
        let mut kinfold = Self {
            backend,
            dir,
            databases: Vec::new(),
            urls: BTreeMap::new(),
            handles: BTreeMap::new(),
            mllp: None,
            gateway_listener: Some(listener),
            gateway_url,
            gateway: None,
            token,
            auth,
            http: super::client_with(&super::test_pki().1),
            outbox_tls: None,
            gateway_database: None,
            others: Vec::new(),
        };
        if tls {
            kinfold.outbox_tls = Some(adapter_client().clone());
        }
        for agency in Agency::ALL {
            let url = kinfold.database_url(agency.as_str()).await;
            kinfold.start_adapter(agency, &url).await;
        }
        kinfold
    }

    pub async fn database_url(&mut self, name: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!(
                "sqlite://{}",
                self.dir.path().join(format!("{name}.db")).display()
            ),
            Backend::Postgres => {
                let database = TestPostgres::create()
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let url = database.url.clone();
                self.databases.push(database);
                url
            }
        }
    }

    /// Starts (or restarts) an agency's adapter on its database.
    pub async fn start_adapter(&mut self, agency: Agency, database_url: &str) {
        let store = Store::open(database_url).await.expect("adapter store");
        let ledger = kinfold_audit::Ledger::open(
            store.clone(),
            &kinfold_audit::LedgerConfig {
                signing_key: Some(Secret::new(kinfold_ledger::b64(&[9u8; 32]))),
                ..kinfold_audit::LedgerConfig::default()
            },
        )
        .await
        .expect("ledger");
        let key = event_key(agency);
        let config = AdapterConfig {
            agency: Some(agency),
            workers: 1,
            mllp_bind: (agency == Agency::Ae).then(|| "127.0.0.1:0".to_owned()),
            tls: Some(super::adapter_tls()),
            outbox: Some(OutboxConfig {
                gateway_url: self.gateway_url.clone(),
                tls: self.outbox_tls.clone(),
                kid: key.kid,
                secret: key.secret,
                issuer: self.auth.issuer.clone(),
                audience: self.auth.audience.clone(),
                batch: 50,
                max_backoff_ms: 300,
            }),
            ..AdapterConfig::default()
        };
        let app = kinfold_adapter::build(agency, store, ledger, &config).expect("adapter");
        self.urls
            .insert(agency, format!("https://127.0.0.1:{}", app.port()));
        if let Some(port) = app.mllp_port() {
            // MLLP over TLS, with a feed's certificate.
            self.mllp = Some(format!("tls://127.0.0.1:{port}"));
        }
        self.handles.insert(agency, app.handle());
        tokio::spawn(app.run_until_stopped());
    }

    pub async fn start_gateway(&mut self) {
        self.start_gateway_with(|_| {}).await;
    }

    /// The gateway over HTTPS (the test authority's server certificate), taking events only
    /// from a connection with the adapters' client certificate.
    pub async fn start_gateway_over_tls(&mut self) {
        let (pki, _) = super::test_pki();
        let tls = kinfold_gateway::GatewayTls {
            cert: pki.adapter_cert.clone(),
            key: pki.adapter_key.clone(),
            client_ca: pki.ca.clone(),
            adapter_names: vec![ADAPTER_CLIENT_NAME.to_owned()],
        };
        self.start_gateway_with(|config| config.tls = Some(tls))
            .await;
    }

    /// As [`Kinfold::start_gateway`], with the configuration changed first.
    pub async fn start_gateway_with(&mut self, change: impl FnOnce(&mut GatewayConfig)) {
        self.start_gateway_on(change, std::sync::Arc::new(kinfold_time::SystemClock))
            .await;
    }

    /// The gateway, its notification deadlines and escalations on `clock`.
    pub async fn start_gateway_with_clock(&mut self, clock: kinfold_time::ManualClock) {
        self.start_gateway_on(|_| {}, std::sync::Arc::new(clock))
            .await;
    }

    async fn start_gateway_on(
        &mut self,
        change: impl FnOnce(&mut GatewayConfig),
        clock: std::sync::Arc<dyn kinfold_time::Clock>,
    ) {
        let url = self.database_url("gateway").await;
        self.gateway_database = Some(url.clone());
        let (store, ledger, mut config) = self.gateway_on(&url).await;
        change(&mut config);
        let listener = self
            .gateway_listener
            .take()
            .expect("the gateway starts once");
        let app =
            kinfold_gateway::build_with_clock(listener, &config, store.clone(), ledger, clock)
                .expect("gateway");
        self.gateway = Some((app.handle(), store));
        tokio::spawn(app.run_until_stopped());
    }

    /// A gateway's store, ledger and configuration on `url`, for these adapters and keys.
    async fn gateway_on(&self, url: &str) -> (Store, kinfold_gateway::Ledger, GatewayConfig) {
        let store = Store::open(url).await.expect("gateway store");
        let ledger_config = kinfold_gateway::LedgerConfig {
            signing_key: Some(Secret::new(kinfold_ledger::b64(&[3u8; 32]))),
            // A second gateway may be started on the same database.
            shared: true,
            ..kinfold_gateway::LedgerConfig::default()
        };
        let ledger = kinfold_gateway::Ledger::open(store.clone(), &ledger_config)
            .await
            .expect("ledger");
        let config = GatewayConfig {
            workers: 1,
            adapters: self
                .urls
                .iter()
                .map(|(agency, url)| AdapterEndpoint {
                    agency: *agency,
                    url: url.clone(),
                })
                .collect(),
            adapter_tls: Some(super::test_pki().0.gateway.clone()),
            auth: self.auth.clone(),
            ledger: ledger_config,
            event_keys: Agency::ALL.into_iter().map(event_key).collect(),
            ..GatewayConfig::default()
        };
        (store, ledger, config)
    }

    /// Another gateway on the first one's database, with the same keys and adapters (two
    /// gateways behind one load balancer): its base URL.
    pub async fn start_another_gateway(&mut self) -> String {
        let url = self
            .gateway_database
            .clone()
            .expect("the first gateway runs");
        let (store, ledger, mut config) = self.gateway_on(&url).await;
        config.bind = "127.0.0.1:0".into();
        let app = kinfold_gateway::build(&config, store, ledger).expect("gateway");
        let base = format!("http://127.0.0.1:{}", app.port());
        self.others.push(app.handle());
        tokio::spawn(app.run_until_stopped());
        base
    }

    /// Stops the gateway at once (as a crash would, mid-request), leaving the adapters to
    /// retry their deliveries.
    pub async fn kill_gateway(&mut self) {
        let (handle, _) = self.gateway.take().expect("the gateway runs");
        handle.stop(false).await;
    }

    /// Starts the gateway again on its database and address, on the system clock.
    pub async fn restart_gateway(&mut self) {
        let url = self
            .gateway_database
            .clone()
            .expect("the gateway ran before");
        let port: u16 = self
            .gateway_url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the gateway's port");
        let (store, ledger, config) = self.gateway_on(&url).await;
        let mut tries = 0;
        let listener = loop {
            match std::net::TcpListener::bind(("127.0.0.1", port)) {
                Ok(listener) => break listener,
                Err(error) => {
                    tries += 1;
                    assert!(tries < 50, "the gateway's port stays taken: {error}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        };
        let app = kinfold_gateway::build_with_clock(
            listener,
            &config,
            store.clone(),
            ledger,
            std::sync::Arc::new(kinfold_time::SystemClock),
        )
        .expect("gateway");
        self.gateway = Some((app.handle(), store));
        tokio::spawn(app.run_until_stopped());
    }

    /// A connection to the A&E adapter's MLLP listener, over TLS with the feed's certificate.
    pub async fn mllp_stream(&self) -> Box<dyn kinfold_http::tls::Duplex> {
        kinfold_http::tls::connect(
            self.mllp.as_deref().expect("MLLP"),
            Some(&super::test_pki().0.feed),
        )
        .await
        .expect("the MLLP listener takes the feed's certificate")
    }

    pub fn gateway_store(&self) -> &Store {
        &self.gateway.as_ref().expect("the gateway runs").1
    }

    pub async fn import(&self, agency: Agency, rows: &str) -> Value {
        let response = self
            .http
            .post(format!("{}/$import", self.urls[&agency]))
            .header("content-type", "application/x-ndjson")
            .body(rows.to_owned())
            .send()
            .await
            .expect("the adapter answers");
        assert_eq!(response.status(), 200);
        response.json().await.expect("a summary")
    }

    /// Sends one HL7 v2 message to the A&E adapter over MLLP and checks it is accepted.
    pub async fn send_hl7(&self, message: &str) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = self.mllp_stream().await;
        let mut frame = vec![0x0b];
        frame.extend_from_slice(message.as_bytes());
        frame.extend_from_slice(&[0x1c, 0x0d]);
        stream.write_all(&frame).await.expect("sent");
        let mut ack = Vec::new();
        while !ack.ends_with(&[0x1c, 0x0d]) {
            ack.push(stream.read_u8().await.expect("an ACK"));
        }
        let ack = String::from_utf8_lossy(&ack);
        assert!(ack.contains("MSA|AA"), "{ack}");
    }

    /// Posts a FHIR transaction Bundle to the GP adapter and checks it is stored.
    pub async fn gp_bundle(&self, bundle: &Value) {
        let (status, answer) = super::post_json(
            &self.http,
            &format!("{}/", self.urls[&Agency::Gp]),
            bundle.to_string(),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
    }

    /// A direct-care token for `subject` of `org` in `role`, from the gateway's key.
    pub fn token_as(&self, subject: &str, org: &str, role: &str) -> String {
        kinfold_gateway::issue_token_for(
            &self.auth,
            &kinfold_gateway::TokenFor {
                subject,
                org: Some(org),
                role: Some(role),
                purpose: Some("direct-care"),
                ..kinfold_gateway::TokenFor::default()
            },
            3600,
        )
        .expect("token")
    }

    /// The area's identity steward (concerned with every person in the area).
    pub fn steward_token(&self) -> String {
        self.token_as("steward-1", "Q99", "identity-steward")
    }

    /// GET with another caller's token.
    pub async fn get_as(&self, token: &str, path: &str) -> (u16, Value) {
        super::get_json(
            &self.http,
            &format!("{}{path}", self.gateway_url),
            Some(token),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        super::get_json(
            &self.http,
            &format!("{}{path}", self.gateway_url),
            Some(&self.token),
        )
        .await
    }

    pub async fn everything_of(&self, nhs: &str) -> Value {
        let (status, found) = self
            .get(&format!(
                "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}"
            ))
            .await;
        assert_eq!(status, 200, "{found}");
        let id = found["entry"][0]["resource"]["id"]
            .as_str()
            .expect("a person")
            .to_owned();
        let (status, everything) = self.get(&format!("/Patient/{id}/$everything")).await;
        assert_eq!(status, 200, "{everything}");
        everything
    }

    /// Waits until the gateway holds `count` events from `agency` (the outbox delivers).
    pub async fn events_from(&self, agency: Agency, count: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let events: Vec<Value> = self
                .gateway_store()
                .events_after(0, 10_000)
                .await
                .expect("events")
                .into_iter()
                .filter(|e| e.agency == agency.as_str())
                .map(|e| serde_json::from_str(&e.payload).expect("an event is JSON"))
                .collect();
            if events.len() >= count || tokio::time::Instant::now() > deadline {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn finish(self) {
        for handle in &self.others {
            handle.stop(true).await;
        }
        if let Some((handle, store)) = &self.gateway {
            handle.stop(true).await;
            store.close().await;
        }
        for handle in self.handles.values() {
            handle.stop(true).await;
        }
        for database in self.databases {
            database.drop_database().await.expect("drop test database");
        }
    }
}

pub fn of_type<'a>(bundle: &'a Value, name: &str) -> Vec<&'a Value> {
    resources(bundle)
        .into_iter()
        .filter(|r| r["resourceType"] == name)
        .collect()
}

pub fn coded<'a>(bundle: &'a Value, name: &str, code: &str) -> Vec<&'a Value> {
    of_type(bundle, name)
        .into_iter()
        .filter(|r| r.to_string().contains(&format!("\"code\":\"{code}\"")))
        .collect()
}
