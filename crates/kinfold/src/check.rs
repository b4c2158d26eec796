//! `kinfold check`: a preflight, in the spirit of `nginx -t`. It reads a service's
//! configuration and tries what the service will need at run time, without starting it or
//! changing anything: the database (there, and migrated), every certificate and key (readable,
//! and each key its certificate's), the token and SMART keys, an event key for every adapter,
//! and whether each adapter and the gateway answer over the configured TLS. One line per
//! finding, naming the setting or file and what to do.

use std::time::Duration;

use kinfold_adapter::AdapterConfig;
use kinfold_fhir::Agency;
use kinfold_gateway::GatewayConfig;
use kinfold_store::Store;

/// One thing checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Whether it would work.
    pub ok: bool,
    /// What was checked and, when it fails, what to do.
    pub what: String,
}

impl Finding {
    fn ok(what: impl Into<String>) -> Self {
        Self {
            ok: true,
            what: what.into(),
        }
    }

    fn fail(what: impl Into<String>) -> Self {
        Self {
            ok: false,
            what: what.into(),
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = if self.ok { "ok  " } else { "FAIL" };
        write!(f, "{mark} {}", self.what)
    }
}

/// How long a URL may take to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// The database a service would open: there, readable, and migrated to this release.
async fn database(url: Option<&str>, default_name: &str) -> Finding {
    let url = url.map_or_else(
        || format!("sqlite://kinfold-data/{default_name}.db"),
        str::to_owned,
    );
    if let Some(path) = url.strip_prefix("sqlite://")
        && !std::path::Path::new(path.split('?').next().unwrap_or(path)).exists()
    {
        return Finding::fail(format!(
            "database_url: {path} does not exist: run `kinfold migrate --db {url}` to create it"
        ));
    }
    let store = match Store::open_read_only(&url).await {
        Ok(store) => store,
        Err(kinfold_store::StoreError::Database(e))
            if e.as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "3D000") =>
        {
            return Finding::fail(format!(
                "database_url: the database does not exist: create it (`createdb` as a role that may) or run `kinfold migrate --db URL` as one, then check again ({e})"
            ));
        }
        Err(e) => return Finding::fail(format!("database_url: cannot connect: {e}")),
    };
    let pending = store.migrations_pending().await;
    store.close().await;
    match pending {
        Ok(0) => Finding::ok("database_url: reachable and migrated to this release"),
        Ok(n) => Finding::fail(format!(
            "database_url: {n} migration(s) of this release not applied: run `kinfold migrate --db URL` (then restart)"
        )),
        Err(e) => Finding::fail(format!("database_url: cannot read its migrations: {e}")),
    }
}

/// Whether a URL answers `GET {base}/metadata` over the given TLS.
async fn answers(setting: &str, base: &str, tls: Option<&kinfold_http::tls::ClientTls>) -> Finding {
    let builder = reqwest::Client::builder().timeout(ANSWER_WITHIN);
    let builder = match tls {
        Some(tls) => match kinfold_http::tls::client(tls, builder) {
            Ok(builder) => builder,
            Err(e) => return Finding::fail(format!("{setting}: {base}: not tried: {e}")),
        },
        None => builder,
    };
    let client = match builder.build() {
        Ok(client) => client,
        Err(e) => {
            return Finding::fail(format!(
                "{setting}: {base}: not tried: the client's TLS settings cannot be used ({e})"
            ));
        }
    };
    let url = format!("{}/metadata", base.trim_end_matches('/'));
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => {
            Finding::ok(format!("{setting}: {base} answers"))
        }
        Ok(response) => Finding::fail(format!(
            "{setting}: {base} answered {} to GET /metadata",
            response.status()
        )),
        Err(e) => match kinfold_http::tls::describe_failure(&e) {
            Some(tls) => Finding::fail(format!("{setting}: {base}: {tls}")),
            None if e.is_timeout() => Finding::fail(format!(
                "{setting}: {base} did not answer within {} s",
                ANSWER_WITHIN.as_secs()
            )),
            None => Finding::fail(format!(
                "{setting}: {base} could not be reached (is it running, and is the address right?)"
            )),
        },
    }
}

/// Every check of a gateway's configuration.
pub async fn gateway(config: &GatewayConfig) -> Vec<Finding> {
    let mut findings = vec![database(config.database_url.as_deref(), "gateway").await];
    findings.push(match kinfold_gateway::Authenticator::new(&config.auth) {
        Ok(_) => Finding::ok("auth.keys: usable"),
        Err(e) => Finding::fail(format!("auth.keys: {e}")),
    });
    findings.push(match config.smart.check() {
        Ok(()) => Finding::ok(format!(
            "smart.clients: {} registered, every key usable",
            config.smart.clients.len()
        )),
        Err(e) => Finding::fail(e),
    });
    if let Some(tls) = &config.tls {
        let server = kinfold_http::tls::ServerTls {
            cert: tls.cert.clone(),
            key: tls.key.clone(),
            client_ca: tls.client_ca.clone(),
        };
        findings.push(
            match kinfold_http::tls::server_config(
                &server,
                kinfold_http::tls::ClientCertificates::Optional,
            ) {
                Ok(_) => Finding::ok("tls: the certificate, its key and client_ca load and pair"),
                Err(e) => Finding::fail(format!("tls: {e}")),
            },
        );
    }
    if !config.adapters.is_empty() {
        match &config.adapter_tls {
            None => findings.push(Finding::fail(
                "adapter_tls: the adapters are reached only over mutual TLS: set ca, cert and key",
            )),
            Some(tls) => findings.push(match kinfold_http::tls::client_config(tls) {
                Ok(_) => Finding::ok("adapter_tls: the certificate, its key and ca load and pair"),
                Err(e) => Finding::fail(format!("adapter_tls: {e}")),
            }),
        }
    }
    for adapter in &config.adapters {
        let agency = adapter.agency;
        if !config.event_keys.iter().any(|k| k.agency == agency) {
            findings.push(Finding::fail(format!(
                "event_keys: no key for agency \"{agency}\": add [[event_keys]] with agency = \"{agency}\" and the kid and secret its outbox signs with"
            )));
        }
        findings.push(
            answers(
                &format!("adapters ({agency})"),
                &adapter.url,
                config.adapter_tls.as_ref(),
            )
            .await,
        );
    }
    findings
}

/// Every check of an adapter's configuration.
pub async fn adapter(agency: Agency, config: &AdapterConfig) -> Vec<Finding> {
    let mut findings = vec![database(config.database_url.as_deref(), agency.as_str()).await];
    match &config.tls {
        None => findings.push(Finding::fail(
            "tls: an adapter serves only over mutual TLS: set cert, key, client_ca, gateway_names and feed_names",
        )),
        Some(tls) => {
            let server = kinfold_http::tls::ServerTls {
                cert: tls.cert.clone(),
                key: tls.key.clone(),
                client_ca: tls.client_ca.clone(),
            };
            findings.push(
                match kinfold_http::tls::server_config(
                    &server,
                    kinfold_http::tls::ClientCertificates::Required,
                ) {
                    Ok(_) => {
                        Finding::ok("tls: the certificate, its key and client_ca load and pair")
                    }
                    Err(e) => Finding::fail(format!("tls: {e}")),
                },
            );
        }
    }
    findings.push(match config.hl7_time_zone.parse::<chrono_tz::Tz>() {
        Ok(_) => Finding::ok(format!("hl7_time_zone: {}", config.hl7_time_zone)),
        Err(_) => Finding::fail(format!(
            "hl7_time_zone: '{}' is not a tz database name (such as Europe/London)",
            config.hl7_time_zone
        )),
    });
    match &config.outbox {
        None => findings.push(Finding::fail(
            "outbox: not configured: events wait in the outbox and never reach the gateway",
        )),
        Some(outbox) => match outbox.check() {
            Err(e) => findings.push(Finding::fail(e)),
            Ok(()) => findings.push(
                answers(
                    "outbox.gateway_url",
                    &outbox.gateway_url,
                    outbox.tls.as_ref(),
                )
                .await,
            ),
        },
    }
    findings
}
