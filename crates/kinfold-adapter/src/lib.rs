//! One agency's adapter. The same code runs once per agency (midwifery, A&E, GP, health
//! visiting, school nursing), each with its own database.
//!
//! It stores the agency's records as FHIR R4 resources and serves read, search and
//! `Patient/$everything` to the gateway, and accepts FHIR `transaction` and `batch` Bundles at
//! `POST /` for ingest.
//!
//! Architecture invariant: adapters never talk to each other, and only the gateway (and the
//! agency's own feed) talks to an adapter.

mod access;
mod error;
pub mod ingest;
mod mllp;
pub mod outbox;
mod routes;

use std::net::TcpListener;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use kinfold_fhir::Agency;
use kinfold_store::Store;
use serde::Deserialize;

pub use access::AdapterTls;
pub use error::AdapterError;
pub use routes::ApiDoc;

/// An adapter's configuration: defaults, then the TOML file, then environment
/// variables (see `kinfold::config`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdapterConfig {
    /// Which agency this adapter serves.
    pub agency: Option<Agency>,
    /// Address to listen on, e.g. `127.0.0.1:8082`; port 0 picks a free one.
    pub bind: String,
    /// `sqlite://PATH` or `postgres://…`. Default: `sqlite://kinfold-data/{agency}.db`.
    pub database_url: Option<String>,
    /// The base URL this adapter is reached at, for `fullUrl` and paging links. Default: taken
    /// from each request's `Host`.
    pub public_base_url: Option<String>,
    /// HTTP worker threads.
    pub workers: usize,
    /// Largest accepted ingest body, in bytes (default 8 MiB).
    pub max_body_bytes: usize,
    /// Most entries in one ingest Bundle (default 5,000).
    pub max_entries: usize,
    /// Most JSON values (object members and array items) in one ingest (default 200,000).
    pub max_json_values: usize,
    /// Most ingests read and parsed at once; more get `503` with `Retry-After` (default 2).
    pub max_concurrent_ingests: usize,
    /// The adapter's own audit ledger (every ingest is recorded in it, in the same transaction
    /// as what it stores).
    pub ledger: kinfold_audit::LedgerConfig,
    /// Mutual TLS: the adapter's certificate, its callers' authority, and the names of the
    /// gateway's and the feeds' certificates. Required: an adapter serves only over TLS.
    pub tls: Option<AdapterTls>,
    /// How refused callers are counted into the adapter's ledger.
    pub refusals: kinfold_audit::RefusalConfig,
    /// Where to take HL7 v2 over MLLP (the A&E feed), e.g. `0.0.0.0:2575`. Default: none.
    /// MLLP runs over TLS, with a feed's client certificate required at the handshake.
    pub mllp_bind: Option<String>,
    /// Take plain MLLP, without TLS: allowed only on a loopback address (the demo's).
    /// Default: false.
    pub mllp_plain: bool,
    /// The longest one MLLP frame may take to arrive, in milliseconds (default 30 s).
    pub mllp_frame_timeout_ms: u64,
    /// How long an MLLP connection may stay silent before it is closed (default 5 minutes).
    pub mllp_idle_timeout_ms: u64,
    /// Most MLLP connections open at once (default 32).
    pub mllp_max_connections: usize,
    /// The time zone of HL7 v2 times sent without an offset, by its tz database name
    /// (default `Europe/London`: GMT in winter, BST in summer).
    pub hl7_time_zone: String,
    /// Where to deliver this adapter's events (the gateway). Default: nowhere, and events
    /// wait in the outbox until one is configured.
    pub outbox: Option<outbox::OutboxConfig>,
}

impl Default for AdapterConfig {
    fn default() -> Self {
        Self {
            agency: None,
            bind: "127.0.0.1:0".into(),
            database_url: None,
            public_base_url: None,
            workers: 2,
            max_body_bytes: 8 * 1024 * 1024,
            max_entries: ingest::DEFAULT_MAX_ENTRIES,
            max_json_values: ingest::DEFAULT_MAX_JSON_VALUES,
            max_concurrent_ingests: 2,
            ledger: kinfold_audit::LedgerConfig::default(),
            tls: None,
            refusals: kinfold_audit::RefusalConfig::default(),
            mllp_bind: None,
            mllp_plain: false,
            mllp_frame_timeout_ms: 30_000,
            mllp_idle_timeout_ms: 300_000,
            mllp_max_connections: 32,
            hl7_time_zone: "Europe/London".into(),
            outbox: None,
        }
    }
}

/// Shared state of one adapter's handlers.
#[derive(Debug)]
pub(crate) struct AdapterState {
    pub(crate) agency: Agency,
    pub(crate) store: Store,
    pub(crate) ledger: kinfold_audit::Ledger,
    pub(crate) public_base_url: Option<String>,
    /// The CapabilityStatement, serialised once at start.
    pub(crate) capability: String,
    /// Ingest limits.
    pub(crate) limits: IngestLimits,
    /// One permit per ingest that may run at once.
    pub(crate) ingest_slots: tokio::sync::Semaphore,
    /// Wakes the outbox's delivery task when an ingest has committed events.
    pub(crate) outbox_wake: std::sync::Arc<tokio::sync::Notify>,
    /// One-message feeds (MLLP) share commits through this queue.
    pub(crate) queue: ingest::queue::Queue,
    /// The time zone of HL7 v2 times sent without an offset.
    pub(crate) hl7_zone: chrono_tz::Tz,
}

/// What one ingest may use, from [`AdapterConfig`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct IngestLimits {
    pub(crate) max_body_bytes: usize,
    pub(crate) bundle: ingest::BundleLimits,
    pub(crate) max_concurrent_ingests: usize,
}

/// A running adapter: its HTTP server and, when configured, its MLLP listener.
pub struct Application {
    http: kinfold_http::Running,
    mllp: Option<Mllp>,
    outbox: Option<Outbox>,
    writer: Writer,
}

/// The group-commit writer, waiting to be started with the server.
struct Writer {
    state: web::Data<AdapterState>,
    jobs: tokio::sync::mpsc::Receiver<ingest::queue::Job>,
}

struct Outbox {
    agency: Agency,
    store: Store,
    config: outbox::OutboxConfig,
    wake: std::sync::Arc<tokio::sync::Notify>,
}

struct Mllp {
    port: u16,
    listener: TcpListener,
    state: web::Data<AdapterState>,
    limits: mllp::MllpLimits,
    /// The TLS side, unless the listener takes plain MLLP.
    tls: Option<mllp::MllpTls>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.http.port())
            .field("mllp_port", &self.mllp_port())
            .finish()
    }
}

impl Application {
    /// The HTTP port.
    pub fn port(&self) -> u16 {
        self.http.port()
    }

    /// The MLLP port, when the adapter takes HL7 v2.
    pub fn mllp_port(&self) -> Option<u16> {
        self.mllp.as_ref().map(|m| m.port)
    }

    /// A handle to stop the adapter (the MLLP listener stops with it).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.http.handle()
    }

    /// Serves until stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let mllp = match self.mllp {
            Some(m) => {
                m.listener.set_nonblocking(true)?;
                let listener = tokio::net::TcpListener::from_std(m.listener)?;
                Some(tokio::spawn(mllp::serve(
                    listener, m.state, m.limits, m.tls,
                )))
            }
            None => None,
        };
        let outbox = self
            .outbox
            .map(|o| tokio::spawn(outbox::deliver(o.agency, o.store, o.config, o.wake)));
        let writer = tokio::spawn(ingest::queue::writer(
            self.writer.state.into_inner(),
            self.writer.jobs,
        ));
        let served = self.http.run_until_stopped().await;
        for task in [mllp, outbox, Some(writer)].into_iter().flatten() {
            task.abort();
        }
        served
    }
}

/// Binds the listener and builds the server (not yet polled: call
/// `run_until_stopped` or spawn it). The ledger must be open on `store` itself: each ingest's
/// entries commit in the records' transaction.
pub fn build(
    agency: Agency,
    store: Store,
    ledger: kinfold_audit::Ledger,
    config: &AdapterConfig,
) -> std::io::Result<Application> {
    let tls = config.tls.as_ref().ok_or_else(|| {
        std::io::Error::other(
            "an adapter serves only over mutual TLS: set its tls (cert, key, client_ca, \
             gateway_names, feed_names)",
        )
    })?;
    if let Some(outbox) = &config.outbox {
        outbox.check().map_err(std::io::Error::other)?;
    }
    let tls_failed = |e: kinfold_http::tls::TlsError| std::io::Error::other(e.to_string());
    let server_tls = kinfold_http::tls::server_config(
        &tls.server(),
        kinfold_http::tls::ClientCertificates::Optional,
    )
    .map_err(tls_failed)?;
    let doors = web::Data::new(access::Doors {
        gateway: tls.gateway_names.clone(),
        feeds: tls.feed_names.clone(),
    });
    let refusals = web::Data::from(kinfold_audit::Refusals::start(
        ledger.clone(),
        config.refusals.clone(),
    ));
    let listener = TcpListener::bind(&config.bind).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {} (bind): {e}", config.bind),
        )
    })?;
    let port = listener.local_addr()?.port();
    let ledger_api = web::Data::new(kinfold_audit::http::LedgerApi {
        ledger: ledger.clone(),
        store: store.clone(),
    });
    let outbox_wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let outbox = config.outbox.clone().map(|config| Outbox {
        agency,
        store: store.clone(),
        config,
        wake: outbox_wake.clone(),
    });
    let hl7_zone: chrono_tz::Tz = config.hl7_time_zone.parse().map_err(|_| {
        std::io::Error::other(format!(
            "hl7_time_zone '{}' is not a time zone of the tz database (such as Europe/London)",
            config.hl7_time_zone
        ))
    })?;
    let (queue, jobs) = ingest::queue::queue();
    let state = web::Data::new(AdapterState {
        hl7_zone,
        agency,
        store,
        ledger,
        public_base_url: config.public_base_url.clone(),
        capability: routes::capability(
            agency,
            &chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
        limits: IngestLimits {
            max_body_bytes: config.max_body_bytes,
            bundle: ingest::BundleLimits {
                max_entries: config.max_entries.max(1),
                max_json_values: config.max_json_values.max(1),
            },
            max_concurrent_ingests: config.max_concurrent_ingests.max(1),
        },
        ingest_slots: tokio::sync::Semaphore::new(config.max_concurrent_ingests.max(1)),
        outbox_wake,
        queue,
    });
    let writer = Writer {
        state: state.clone(),
        jobs,
    };
    let mllp = match &config.mllp_bind {
        Some(bind) => {
            let listener = TcpListener::bind(bind).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot take MLLP on {bind} (mllp_bind): {e}"),
                )
            })?;
            if config.mllp_plain && !listener.local_addr()?.ip().is_loopback() {
                return Err(std::io::Error::other(
                    "plain MLLP (mllp_plain) is taken only on a loopback address; elsewhere the \
                     listener takes MLLP over TLS",
                ));
            }
            Some(Mllp {
                port: listener.local_addr()?.port(),
                listener,
                state: state.clone(),
                limits: mllp::MllpLimits {
                    frame_timeout: std::time::Duration::from_millis(
                        config.mllp_frame_timeout_ms.max(1),
                    ),
                    idle_timeout: std::time::Duration::from_millis(
                        config.mllp_idle_timeout_ms.max(1),
                    ),
                    max_connections: config.mllp_max_connections,
                },
                tls: if config.mllp_plain {
                    None
                } else {
                    Some(mllp::MllpTls {
                        config: std::sync::Arc::new(
                            kinfold_http::tls::server_config(
                                &tls.server(),
                                kinfold_http::tls::ClientCertificates::Required,
                            )
                            .map_err(tls_failed)?,
                        ),
                        feeds: tls.feed_names.clone(),
                        refusals: refusals.clone().into_inner(),
                    })
                },
            })
        }
        None => None,
    };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(doors.clone())
            .app_data(refusals.clone())
            .app_data(kinfold_http::query_config())
            .app_data(kinfold_http::path_config())
            .wrap(from_fn(access::admit))
            .wrap(from_fn(kinfold_audit::refusals::count_refusals))
            .wrap(from_fn(kinfold_http::request_log))
            .app_data(ledger_api.clone())
            .configure(kinfold_audit::http::configure)
            .configure(routes::configure)
            .default_service(web::to(kinfold_http::no_such_route))
    })
    .workers(config.workers.max(1))
    .disable_signals()
    // Each TLS handshake flight and answer goes out at once: with Nagle's algorithm, a new
    // connection's first request waited 40 ms for a delayed ACK (BENCHMARKS.md, mutual TLS).
    .tcp_nodelay(true)
    .on_connect(kinfold_http::tls::on_connect)
    .listen_rustls_0_23(listener, server_tls)?
    .run();
    Ok(Application {
        http: kinfold_http::Running::new(port, server),
        mllp,
        outbox,
        writer,
    })
}
