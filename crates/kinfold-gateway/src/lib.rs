//! The Kinfold gateway: the only door for clients.
//!
//! It authenticates the caller (bearer JWT), resolves the person (NHS number to Kinfold's
//! opaque person id), asks every agency's adapter in parallel with a deadline each, and
//! answers with one FHIR Bundle that says where each record came from and which agencies
//! are missing.
//!
//! Architecture invariants:
//! * Every route is registered from one table, [`policy::ROUTES`], which declares who may call
//!   it; every route that may disclose answers with a [`Disclosed`], which only the ledger's
//!   receipt for its audit entry builds.
//! * Every data route takes a [`Caller`]: no handler runs without an authenticated caller.
//! * A missing agency is always named in the answer (an `OperationOutcome` entry), never
//!   silently left out (G4).
//! * NHS numbers never appear in URLs the gateway mints, nor in its logs.

mod answer;
mod app;
pub mod audit;
mod audit_routes;
pub mod auth;
mod caller;
mod chronology;
mod chronology_page;
mod consents;
pub mod disclosure;
mod error;
pub mod events;
pub mod fanout;
mod flags;
pub mod growth;
mod guard;
mod hooks;
mod identity;
mod identity_routes;
mod inbox;
/// The audit ledger (re-exported from `kinfold-audit`).
pub mod ledger {
    pub use kinfold_audit::*;
}
mod merge;
mod metrics;
mod metrics_routes;
mod notice;
mod notifications;
mod notifier;
mod pace;
mod pipeline;
pub mod policy;
pub mod reviews;
mod routes;
pub mod smart;
mod state;
mod subscriptions;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use kinfold_store::Store;
use serde::Deserialize;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

pub use answer::Disclosed;
pub use auth::{
    AuthConfig, Authenticator, Caller, KeyConfig, Secret, TokenFor, issue_token, issue_token_for,
};
pub use error::{GatewayError, StartError};
pub use fanout::AdapterEndpoint;
pub use identity::{match_weights, record_links};
pub use ledger::{Ledger, LedgerConfig, LedgerError, SignedTreeHead};
pub use policy::ApiDoc;

use crate::fanout::Agencies;
use crate::state::GatewayState;

/// The gateway's configuration: defaults, then the TOML file, then environment
/// variables (see `kinfold::config`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address to listen on; port 0 picks a free one. Without `tls`, only a loopback address.
    pub bind: String,
    /// HTTPS for clients and adapters alike (rustls). Required on any address but loopback:
    /// the gateway does not start serving patient data in the clear.
    pub tls: Option<GatewayTls>,
    /// `sqlite://PATH` or `postgres://…`. Default: `sqlite://kinfold-data/gateway.db`.
    pub database_url: Option<String>,
    /// The base URL clients reach the gateway at, for links. Default: from each request.
    pub public_base_url: Option<String>,
    /// HTTP worker threads.
    pub workers: usize,
    /// How long the gateway waits for each agency, in milliseconds.
    pub adapter_timeout_ms: u64,
    /// The agencies' adapters.
    pub adapters: Vec<AdapterEndpoint>,
    /// The gateway's side of the mutual TLS with the adapters: the adapters' authority, and
    /// the gateway's client certificate and key. Required when adapters are configured.
    pub adapter_tls: Option<kinfold_http::tls::ClientTls>,
    /// Token rules and keys.
    pub auth: AuthConfig,
    /// The audit ledger's signing key and rhythm.
    pub ledger: LedgerConfig,
    /// How refused requests are counted, recorded and slowed.
    pub refusals: kinfold_audit::RefusalConfig,
    /// Proxies whose `X-Forwarded-For` names the real client (for refusal counts). Default:
    /// none, so the peer address is the client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The adapters' event keys: each adapter delivers its events (`POST /events`) with
    /// tokens signed by its own key. Default: none, and no events are taken.
    pub event_keys: Vec<events::EventKey>,
    /// Who holds which agency's records, and the disclosure policy's settings.
    pub disclosure: disclosure::DisclosureConfig,
    /// SMART Backend Services: the registered system clients.
    pub smart: smart::SmartConfig,
    /// The liaison dashboard under `/app/`.
    pub dashboard: kinfold_dashboard::DashboardConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            tls: None,
            database_url: None,
            public_base_url: None,
            workers: 2,
            adapter_timeout_ms: 2000,
            adapters: Vec::new(),
            adapter_tls: None,
            auth: AuthConfig::default(),
            ledger: LedgerConfig::default(),
            refusals: kinfold_audit::RefusalConfig::default(),
            trusted_proxies: Vec::new(),
            event_keys: Vec::new(),
            disclosure: disclosure::DisclosureConfig::default(),
            smart: smart::SmartConfig::default(),
            dashboard: kinfold_dashboard::DashboardConfig::default(),
        }
    }
}

/// The gateway's TLS: its certificate, and the authority and names of the adapters' client
/// certificates (their outbox delivers events over mutual TLS).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayTls {
    /// The gateway's certificate chain (PEM), naming the host clients reach it at.
    pub cert: std::path::PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: std::path::PathBuf,
    /// The authority that signs the adapters' client certificates (PEM). A client certificate
    /// is optional at the handshake (SMART clients and people sign in with tokens), but one it
    /// did not sign fails the handshake.
    pub client_ca: std::path::PathBuf,
    /// DNS names (subjectAltName, matched exactly) of the adapters' client certificates: with
    /// TLS on, `POST /events` is taken only over a connection presenting one of them.
    pub adapter_names: Vec<String>,
}

/// A running server: its port and the server to poll.
pub type Application = kinfold_http::Running;

/// Binds the listener and builds the server (poll it with `run_until_stopped`).
/// The ledger must be open first ([`Ledger::open`]), on `store` itself (identity changes
/// commit in one transaction with their ledger entries): no ledger, no gateway.
pub fn build(
    config: &GatewayConfig,
    store: Store,
    ledger: Ledger,
) -> Result<Application, StartError> {
    let listener = TcpListener::bind(&config.bind).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {} (bind): {e}", config.bind),
        )
    })?;
    build_on(listener, config, store, ledger)
}

/// Like [`build`], on a listener already bound (so that its address can be handed to the
/// adapters before the gateway starts). `config.bind` is not used.
pub fn build_on(
    listener: TcpListener,
    config: &GatewayConfig,
    store: Store,
    ledger: Ledger,
) -> Result<Application, StartError> {
    build_with_clock(
        listener,
        config,
        store,
        ledger,
        std::sync::Arc::new(kinfold_time::SystemClock),
    )
}

/// Like [`build_on`], with the clock that notification deadlines and escalations run on (a
/// test's or a scenario's [`kinfold_time::ManualClock`]).
pub fn build_with_clock(
    listener: TcpListener,
    config: &GatewayConfig,
    store: Store,
    ledger: Ledger,
    clock: std::sync::Arc<dyn kinfold_time::Clock>,
) -> Result<Application, StartError> {
    let notifier = notifier::Notifier::new(clock).map_err(StartError::Rules)?;
    let authenticator = web::Data::new(Authenticator::new(&config.auth)?);
    if let Some(adapter) = config
        .adapters
        .iter()
        .find(|a| !config.event_keys.iter().any(|k| k.agency == a.agency))
    {
        return Err(StartError::NoEventKey(adapter.agency));
    }
    config.smart.check().map_err(StartError::SmartKey)?;
    let auth_config = web::Data::new(config.auth.clone());
    let smart_clients = web::Data::new(smart::Clients::new(
        config.smart.clone(),
        config.auth.leeway_seconds,
    ));
    let event_senders =
        web::Data::new(events::EventSenders::new(&config.event_keys, &config.auth)?);
    let measurements = std::sync::Arc::new(metrics::Metrics::new());
    let agencies = Agencies::new(
        config.adapters.clone(),
        Duration::from_millis(config.adapter_timeout_ms),
        config.adapter_tls.as_ref(),
    )?
    .timed(measurements.fanout.clone());
    let refusals = web::Data::from(kinfold_audit::Refusals::start(
        ledger.clone(),
        config.refusals.clone(),
    ));
    let proxies = web::Data::new(kinfold_http::TrustedProxies(config.trusted_proxies.clone()));
    let ledger_api = web::Data::new(kinfold_audit::http::LedgerApi {
        ledger: ledger.clone(),
        store: store.clone(),
    });
    let state = web::Data::new(GatewayState {
        store,
        ledger,
        agencies,
        public_base_url: config.public_base_url.clone(),
        capability: routes::capability(
            &chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
        identities: identity::Identities::new(config.ledger.shared),
        disclosure: config.disclosure.clone(),
        pace: pace::NotFoundPace::default(),
        misses: pace::Misses::new(&config.refusals),
        notifier,
        hooks: hooks::Hooks::new(
            config
                .smart
                .clients
                .iter()
                .filter_map(|c| Some((c.client_id.as_str(), c.endpoint_tls.as_ref()?))),
        )?,
        metrics: measurements,
    });
    // Each delivery reads its events into the person index; this task catches up after a pass
    // that failed (a ledger back from an outage) without waiting for the next delivery, and
    // loads the state at start. It ends with the gateway.
    let weak = std::sync::Arc::downgrade(&state.clone().into_inner());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Some(state) = weak.upgrade() else {
                return;
            };
            if let Err(error) = state
                .identities
                .retry_catch_up(&state.store, &state.ledger)
                .await
            {
                tracing::warn!(
                    ?error,
                    "identity: received events not yet read into the index; trying again in a second"
                );
            }
        }
    });
    // The notifications: made after each delivery, escalated on the clock.
    tokio::spawn(notifications::run(std::sync::Arc::downgrade(
        &state.clone().into_inner(),
    )));
    // The subscriptions' deliveries.
    tokio::spawn(subscriptions::run(std::sync::Arc::downgrade(
        &state.clone().into_inner(),
    )));
    let local = listener.local_addr()?;
    let port = local.port();
    let server_tls = match &config.tls {
        Some(tls) => Some(kinfold_http::tls::server_config(
            &kinfold_http::tls::ServerTls {
                cert: tls.cert.clone(),
                key: tls.key.clone(),
                client_ca: tls.client_ca.clone(),
            },
            kinfold_http::tls::ClientCertificates::Optional,
        )?),
        None if local.ip().is_loopback() => None,
        None => return Err(StartError::PlainOnNetwork(local)),
    };
    if !config.dashboard.demo_users.is_empty() && !local.ip().is_loopback() {
        return Err(StartError::DemoSignInOnNetwork(local));
    }
    let api_url = match (
        &config.dashboard.api_url,
        &config.tls,
        &config.public_base_url,
    ) {
        (Some(url), _, _) => url.clone(),
        (None, None, _) => format!("http://{local}"),
        (None, Some(_), Some(public)) => public.clone(),
        (None, Some(_), None) => format!("https://{local}"),
    };
    // The dashboard's calls to the API name the browser they are made for, with this key.
    let internal_key = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let internal_callers = web::Data::new(kinfold_http::InternalCallers::new(internal_key.clone()));
    let dashboard = web::Data::new(
        app::dashboard(
            &config.dashboard,
            &config.auth,
            &state.ledger,
            api_url,
            config.tls.is_some(),
            internal_key,
        )
        .map_err(|e| StartError::Dashboard(e.0))?,
    );
    let event_doors = web::Data::new(events::EventDoors(
        config.tls.as_ref().map(|tls| tls.adapter_names.clone()),
    ));
    let openapi = ApiDoc::openapi();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(authenticator.clone())
            .app_data(auth_config.clone())
            .app_data(smart_clients.clone())
            .app_data(event_senders.clone())
            .app_data(event_doors.clone())
            .app_data(refusals.clone())
            .app_data(proxies.clone())
            .app_data(dashboard.clone())
            .app_data(internal_callers.clone())
            .app_data(kinfold_http::query_config())
            .app_data(kinfold_http::path_config())
            .wrap(from_fn(kinfold_audit::refusals::count_refusals))
            .wrap(from_fn(metrics_routes::time_requests))
            .wrap(from_fn(kinfold_http::request_log))
            .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi.clone()))
            .app_data(ledger_api.clone())
            .configure(policy::configure)
            .default_service(web::to(kinfold_http::no_such_route))
    })
    .workers(config.workers.max(1))
    .disable_signals()
    // Each TLS handshake flight and answer goes out at once: with Nagle's algorithm, a new
    // connection's first request waited 40 ms for a delayed ACK (BENCHMARKS.md, mutual TLS).
    .tcp_nodelay(true)
    .on_connect(kinfold_http::tls::on_connect);
    let server = match server_tls {
        Some(tls) => server.listen_rustls_0_23(listener, tls)?,
        None => server.listen(listener)?,
    }
    .run();
    Ok(kinfold_http::Running::new(port, server))
}
