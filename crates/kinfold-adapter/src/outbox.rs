//! Delivering the outbox: the events written with each ingest go to the gateway's
//! `POST /events`, oldest first, in batches, at least once.
//!
//! The task wakes when an ingest commits (so an item is at the gateway within milliseconds,
//! G4) and otherwise when the next retry is due. A batch the gateway does not take (down,
//! refusing, slow) waits with exponential backoff and jitter, up to `max_backoff_ms`; the
//! events stay in the database meanwhile, so a restart loses none. The gateway keeps each
//! event once by its id, so a batch delivered twice (the answer lost) does no harm.
//!
//! Each request carries a short-lived JWT the adapter signs with its own event key (`kid`),
//! which the gateway accepts only for this agency's events.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kinfold_audit::Secret;
use kinfold_fhir::Agency;
use kinfold_store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// Where and how an adapter delivers its events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// The gateway's base URL: `https://…` (over mutual TLS, with `tls`), or `http://` on a
    /// loopback address only (the demo's).
    pub gateway_url: String,
    /// The adapter's side of the mutual TLS with the gateway: the gateway's authority, and the
    /// adapter's client certificate and key. Required for an `https://` gateway.
    #[serde(default)]
    pub tls: Option<kinfold_http::tls::ClientTls>,
    /// The id of this adapter's event key, as the gateway knows it.
    pub kid: String,
    /// The event key: at least 32 bytes.
    pub secret: Secret,
    /// `iss` of the tokens (the gateway's `auth.issuer`).
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// `aud` of the tokens (the gateway's `auth.audience`).
    #[serde(default = "default_audience")]
    pub audience: String,
    /// Most events in one delivery (default 200).
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// The longest wait between attempts, in milliseconds (default 60 s).
    #[serde(default = "default_max_backoff")]
    pub max_backoff_ms: u64,
}

fn default_issuer() -> String {
    "kinfold".into()
}
fn default_audience() -> String {
    "kinfold-gateway".into()
}
fn default_batch() -> usize {
    200
}
fn default_max_backoff() -> u64 {
    60_000
}

/// The claims of an adapter's event token.
#[derive(Serialize)]
struct EventClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: String,
    iat: u64,
    exp: u64,
    role: &'static str,
}

/// The role an adapter's event token carries.
pub const ADAPTER_ROLE: &str = "kinfold-adapter";

/// How long an event token lives.
const TOKEN_LIFETIME: u64 = 300;
/// The first wait after a failure.
const FIRST_BACKOFF_MS: u64 = 250;
/// How long the task sleeps with nothing due, at most (a safety net: commits wake it).
const IDLE_WAKE: Duration = Duration::from_secs(5);

impl OutboxConfig {
    /// Refuses a gateway address events would travel to in the clear: plain HTTP is taken only
    /// to a loopback address, and HTTPS only with the adapter's client certificate.
    pub fn check(&self) -> Result<(), String> {
        let url = url::Url::parse(&self.gateway_url)
            .map_err(|e| format!("outbox.gateway_url {:?}: {e}", self.gateway_url))?;
        match (url.scheme(), &self.tls) {
            ("https", Some(_)) => Ok(()),
            ("https", None) => Err(
                "an https gateway is reached over mutual TLS: set outbox.tls (ca, cert, key)"
                    .into(),
            ),
            ("http", _) if is_loopback(&url) => Ok(()),
            ("http", _) => Err(format!(
                "events carry person data: the outbox sends them over plain HTTP only to a loopback address, not to {}; use https with outbox.tls",
                url.host_str().unwrap_or_default()
            )),
            (other, _) => Err(format!("outbox.gateway_url: unsupported scheme {other}")),
        }
    }

    /// The HTTP client that delivers: presenting the adapter's certificate over TLS.
    fn client(&self) -> Result<reqwest::Client, String> {
        let builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
        let builder = match &self.tls {
            Some(tls) => kinfold_http::tls::client(tls, builder).map_err(|e| e.to_string())?,
            None => builder,
        };
        builder.build().map_err(|e| e.to_string())
    }
}

/// Whether a URL's host is this machine.
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Runs the delivery loop until the task is aborted.
pub(crate) async fn deliver(agency: Agency, store: Store, config: OutboxConfig, wake: Arc<Notify>) {
    let http = match config.client() {
        Ok(http) => http,
        Err(err) => {
            tracing::error!(%err, "the outbox cannot build its HTTP client; events wait");
            return;
        }
    };
    let url = format!("{}/events", config.gateway_url.trim_end_matches('/'));
    let key = EncodingKey::from_secret(config.secret.expose().as_bytes());
    loop {
        let now = chrono::Utc::now().timestamp_millis();
        let due = match store
            .outbox_due(now, i64::try_from(config.batch.max(1)).unwrap_or(200))
            .await
        {
            Ok(due) => due,
            Err(err) => {
                tracing::warn!(%err, "the outbox cannot read its events; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if due.is_empty() {
            let wait = match store.outbox_status().await {
                Ok((_, Some(at))) => {
                    Duration::from_millis(u64::try_from(at - now).unwrap_or(0)).min(IDLE_WAKE)
                }
                _ => IDLE_WAKE,
            };
            let _ = tokio::time::timeout(wait, wake.notified()).await;
            continue;
        }
        let seqs: Vec<i64> = due.iter().map(|e| e.seq).collect();
        let delivered = send(&http, &url, agency, &config, &key, &due).await;
        let outcome = match delivered {
            Ok(()) => store.outbox_delivered(&seqs).await,
            Err(why) => {
                let attempts = due.iter().map(|e| e.attempts).max().unwrap_or(0);
                let wait = backoff(attempts, config.max_backoff_ms);
                tracing::warn!(
                    events = due.len(),
                    %why,
                    retry_in_ms = wait,
                    "the gateway did not take the events; they wait in the outbox"
                );
                let next = now + i64::try_from(wait).unwrap_or(i64::MAX / 2);
                store.outbox_retry(&seqs, next).await
            }
        };
        if let Err(err) = outcome {
            tracing::warn!(%err, "the outbox could not record a delivery; trying again");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// The wait before attempt `attempts + 1`: doubling from 250 ms, with up to a quarter more at
/// random so that adapters do not retry in step, never over the maximum.
fn backoff(attempts: i64, max_ms: u64) -> u64 {
    let doubled = FIRST_BACKOFF_MS.saturating_mul(1 << attempts.clamp(0, 20));
    let base = doubled.min(max_ms.max(FIRST_BACKOFF_MS));
    (base + fastrand::u64(0..=base / 4)).min(max_ms.max(FIRST_BACKOFF_MS))
}

async fn send(
    http: &reqwest::Client,
    url: &str,
    agency: Agency,
    config: &OutboxConfig,
    key: &EncodingKey,
    due: &[kinfold_store::PendingEvent],
) -> Result<(), String> {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = EventClaims {
        iss: &config.issuer,
        aud: &config.audience,
        sub: format!("{}-adapter", agency.as_str()),
        iat: now,
        exp: now + TOKEN_LIFETIME,
        role: ADAPTER_ROLE,
    };
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(config.kid.clone());
    let token = jsonwebtoken::encode(&header, &claims, key).map_err(|e| e.to_string())?;
    // Each payload is JSON the adapter wrote itself; they are joined, not parsed again.
    let mut body = format!("{{\"agency\":\"{}\",\"events\":[", agency.as_str()).into_bytes();
    for (n, event) in due.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(event.payload.as_bytes());
    }
    body.extend_from_slice(b"]}");
    let response = http
        .post(url)
        .bearer_auth(token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("could not reach the gateway ({e})"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("the gateway answered {}", response.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_the_maximum() {
        for attempts in 0..6 {
            let wait = backoff(attempts, 60_000);
            let base = 250 << attempts;
            assert!(
                wait >= base && wait <= base + base / 4,
                "{attempts}: {wait}"
            );
        }
        assert!(backoff(30, 60_000) <= 60_000);
        assert!(backoff(30, 60_000) >= 60_000 * 4 / 5);
        assert!(backoff(-1, 60_000) >= 250);
    }
}
