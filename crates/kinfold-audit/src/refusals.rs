//! Refused requests, accounted for without letting a stranger grow the ledger.
//!
//! Every refusal (a missing, bad or expired token; later, a missing client certificate) is
//! counted by source address, reason and route. Once an interval (default a minute) the
//! counts go into the ledger as one summary record per source, reason and route: who tried
//! what, how often, from when until when. However many requests a caller sends, the ledger
//! grows by at most one entry per (source, reason, route) per interval, and the memory the
//! counts take is capped ([`RefusalConfig::max_sources`]; beyond it, refusals are counted
//! under one "other sources" line).
//!
//! A source that keeps failing is answered `429 Too Many Requests` with `Retry-After` until
//! the interval ends, instead of having each of its requests checked again.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use chrono::{DateTime, SecondsFormat, Utc};
use kinfold_fhir::IssueType;
use kinfold_http::ApiError;
use kinfold_ledger::{AuditAgent, AuditRecord};
use serde::Deserialize;

use crate::Ledger;

/// How refusals are counted and when a source is slowed.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RefusalConfig {
    /// The length of one counting interval, in milliseconds; its summary is written to the
    /// ledger when it ends.
    pub interval_ms: u64,
    /// Refusals one source may have in an interval before it is answered `429`.
    pub max_per_source: u64,
    /// Sources counted one by one in an interval; more are counted together.
    pub max_sources: usize,
    /// At the gateway: "not found" answers about a person one caller may have in an interval
    /// (unknown ids and refusals by relationship alike) before it is answered `429`.
    pub max_misses_per_caller: u64,
}

impl Default for RefusalConfig {
    fn default() -> Self {
        Self {
            interval_ms: 60_000,
            max_per_source: 30,
            max_sources: 10_000,
            max_misses_per_caller: 30,
        }
    }
}

/// What to do with a refused request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer with the refusal itself (`401`, `403`).
    Refuse,
    /// The source has failed too often: answer `429` and say when to try again.
    Throttle {
        /// Seconds until the interval ends.
        retry_after: u64,
    },
}

/// The key of one summary line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    source: Option<IpAddr>,
    reason: String,
    route: String,
}

#[derive(Debug)]
struct Window {
    opened: Instant,
    opened_at: DateTime<Utc>,
    counts: HashMap<Key, u64>,
    per_source: HashMap<IpAddr, u64>,
}

impl Window {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            opened_at: Utc::now(),
            counts: HashMap::new(),
            per_source: HashMap::new(),
        }
    }
}

/// The running count of refusals, and its writer.
#[derive(Debug)]
pub struct Refusals {
    config: RefusalConfig,
    window: Mutex<Window>,
}

impl Refusals {
    /// Starts counting; a task writes each interval's summary to `ledger`.
    pub fn start(ledger: Ledger, config: RefusalConfig) -> Arc<Self> {
        let refusals = Arc::new(Self {
            config,
            window: Mutex::new(Window::new()),
        });
        let writer = Arc::downgrade(&refusals);
        let interval = refusals.interval();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(refusals) = writer.upgrade() else {
                    break;
                };
                let records = refusals.close_interval();
                if !records.is_empty()
                    && let Err(err) = ledger.record(records).await
                {
                    tracing::error!(error = ?err, "refusal summaries could not be recorded");
                }
            }
        });
        refusals
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.config.interval_ms.max(100))
    }

    /// Counts one refused request and says how to answer it.
    pub fn note(&self, source: Option<IpAddr>, reason: &str, route: &str) -> Verdict {
        let Ok(mut window) = self.window.lock() else {
            return Verdict::Refuse;
        };
        let tracked = source.filter(|s| {
            window.per_source.contains_key(s) || window.per_source.len() < self.config.max_sources
        });
        let key = Key {
            source: tracked,
            reason: reason.to_owned(),
            route: route.to_owned(),
        };
        *window.counts.entry(key).or_insert(0) += 1;
        let Some(source) = tracked else {
            return Verdict::Refuse;
        };
        let failures = window.per_source.entry(source).or_insert(0);
        *failures += 1;
        if *failures > self.config.max_per_source {
            let left = self.interval().saturating_sub(window.opened.elapsed());
            Verdict::Throttle {
                retry_after: left.as_secs().max(1),
            }
        } else {
            Verdict::Refuse
        }
    }

    /// Ends the current interval and returns its summary records (for the ledger).
    pub fn close_interval(&self) -> Vec<AuditRecord> {
        let Ok(mut window) = self.window.lock() else {
            return Vec::new();
        };
        let closed = std::mem::replace(&mut *window, Window::new());
        drop(window);
        let from = closed
            .opened_at
            .to_rfc3339_opts(SecondsFormat::Millis, true);
        let until = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut lines: Vec<(Key, u64)> = closed.counts.into_iter().collect();
        lines.sort_by(|a, b| {
            (a.0.source, &a.0.reason, &a.0.route).cmp(&(b.0.source, &b.0.reason, &b.0.route))
        });
        lines
            .into_iter()
            .map(|(key, count)| AuditRecord {
                recorded: from.clone(),
                event_type: "security".into(),
                subtype: "access-refused".into(),
                action: "E".into(),
                outcome: "4".into(),
                query: key.route,
                agent: AuditAgent {
                    who: "anonymous".into(),
                    ..AuditAgent::default()
                },
                purpose: None,
                patient: None,
                entities: Vec::new(),
                rule: Some(key.reason),
                justification: None,
                request_id: None,
                source: Some(
                    key.source
                        .map_or_else(|| "(other sources)".to_owned(), |s| s.to_string()),
                ),
                count: Some(count),
                until: Some(until.clone()),
            })
            .collect()
    }
}

/// Middleware: counts every answer that refuses its caller (one carrying a
/// [`kinfold_http::Refusal`]: a missing, bad or expired token, a client certificate not allowed
/// here) by source, reason and route, and answers `429` instead once the source has failed too
/// often. Who refuses does not count; this is the one place that does. The app must hold a
/// `web::Data<Refusals>`.
pub async fn count_refusals(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let response = next.call(request).await?;
    let code = response
        .response()
        .extensions()
        .get::<kinfold_http::Refusal>()
        .map(|r| r.code.clone());
    let refusals = response
        .request()
        .app_data::<web::Data<Refusals>>()
        .cloned();
    let (Some(code), Some(refusals)) = (code, refusals) else {
        return Ok(response.map_into_left_body());
    };
    let request = response.request();
    let route = request
        .match_pattern()
        .unwrap_or_else(|| "(unmatched)".into());
    let source = kinfold_http::client_address(request);
    match refusals.note(source, &code, &route) {
        Verdict::Throttle { retry_after } => {
            let throttled = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                IssueType::Throttled,
                "too-many-refusals",
                "Too many refused requests from this address; try again later with a valid credential.",
            )
            .retry_after(retry_after)
            .error_response();
            Ok(response.into_response(throttled).map_into_right_body())
        }
        Verdict::Refuse => Ok(response.map_into_left_body()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusals(max_per_source: u64, max_sources: usize) -> Refusals {
        Refusals {
            config: RefusalConfig {
                interval_ms: 60_000,
                max_per_source,
                max_sources,
                ..RefusalConfig::default()
            },
            window: Mutex::new(Window::new()),
        }
    }

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, last]))
    }

    #[test]
    fn ten_thousand_refusals_from_one_source_are_one_record() {
        let r = refusals(u64::MAX, 10);
        for _ in 0..10_000 {
            r.note(ip(1), "token-missing", "/Patient/{id}/$everything");
        }
        let records = r.close_interval();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].count, Some(10_000));
        assert_eq!(records[0].source.as_deref(), Some("192.0.2.1"));
        assert_eq!(records[0].rule.as_deref(), Some("token-missing"));
        assert!(r.close_interval().is_empty(), "a new interval starts empty");
    }

    #[test]
    fn each_source_reason_and_route_is_its_own_line() {
        let r = refusals(u64::MAX, 10);
        r.note(ip(1), "token-missing", "/a");
        r.note(ip(1), "token-expired", "/a");
        r.note(ip(2), "token-missing", "/a");
        r.note(ip(2), "token-missing", "/b");
        r.note(ip(2), "token-missing", "/b");
        let records = r.close_interval();
        assert_eq!(records.len(), 4);
        assert_eq!(records.iter().filter_map(|r| r.count).sum::<u64>(), 5);
    }

    #[test]
    fn a_source_that_keeps_failing_is_throttled_and_others_are_not() {
        let r = refusals(3, 10);
        for _ in 0..3 {
            assert_eq!(r.note(ip(1), "token-missing", "/a"), Verdict::Refuse);
        }
        assert!(
            matches!(r.note(ip(1), "token-missing", "/a"), Verdict::Throttle { retry_after } if retry_after >= 1)
        );
        assert_eq!(r.note(ip(2), "token-missing", "/a"), Verdict::Refuse);
    }

    #[test]
    fn memory_is_capped_by_counting_extra_sources_together() {
        let r = refusals(u64::MAX, 2);
        for last in 1..=200 {
            r.note(ip(last), "token-missing", "/a");
        }
        let records = r.close_interval();
        assert_eq!(records.len(), 3, "two sources, then everyone else together");
        let other = records
            .iter()
            .find(|r| r.source.as_deref() == Some("(other sources)"))
            .expect("the others' line");
        assert_eq!(other.count, Some(198));
    }
}
