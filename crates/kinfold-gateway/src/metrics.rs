//! `/metrics`: the gateway's measurements in the Prometheus (OpenMetrics) text format, by the
//! `prometheus-client` crate. No person data: counts and times by route, agency, rule and team.
//!
//! * `kinfold_request_seconds{route,method}`: every request, by the route's pattern.
//! * `kinfold_fanout_seconds{agency}`: each agency's part of a fan-out.
//! * `kinfold_ledger_append_seconds`: a disclosure's wait for its durable ledger entry.
//! * `kinfold_event_to_notification_seconds`: from an event's arrival at the gateway to its
//!   notifications being kept (what an inbox shows).
//! * `kinfold_notification_to_acknowledgement_seconds`: from a notification to its
//!   acknowledgement, on the gateway's clock.
//! * `kinfold_notifications_open{rule,organisation,role}` and `…_overdue`: read from the
//!   database at each scrape.
//! * `kinfold_events_waiting` (received, not yet read into notifications) and
//!   `kinfold_subscription_events_waiting` (numbered, not yet delivered): the outboxes' depth.

use std::time::Duration;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

fn quick() -> Histogram {
    // 1 ms to about 16 s.
    Histogram::new([
        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 16.0,
    ])
}

fn slow() -> Histogram {
    // A minute to a week.
    Histogram::new([
        60.0, 300.0, 900.0, 3600.0, 14_400.0, 28_800.0, 86_400.0, 172_800.0, 604_800.0,
    ])
}

/// The gateway's measurements.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) registry: Registry,
    pub(crate) requests: Family<Labels, Histogram, fn() -> Histogram>,
    pub(crate) fanout: Family<Labels, Histogram, fn() -> Histogram>,
    ledger_append: Histogram,
    event_to_notification: Histogram,
    notification_to_ack: Histogram,
    pub(crate) open: Family<Labels, Gauge>,
    pub(crate) overdue: Family<Labels, Gauge>,
    pub(crate) events_waiting: Gauge,
    pub(crate) subscription_waiting: Gauge,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("kinfold");
        let requests = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(quick);
        let fanout = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(quick);
        let ledger_append = quick();
        let event_to_notification = quick();
        let notification_to_ack = slow();
        let open = Family::<Labels, Gauge>::default();
        let overdue = Family::<Labels, Gauge>::default();
        let events_waiting = Gauge::default();
        let subscription_waiting = Gauge::default();
        registry.register(
            "request_seconds",
            "Requests by route and method",
            requests.clone(),
        );
        registry.register(
            "fanout_seconds",
            "Each agency's part of a fan-out",
            fanout.clone(),
        );
        registry.register(
            "ledger_append_seconds",
            "A disclosure's wait for its durable ledger entry",
            ledger_append.clone(),
        );
        registry.register(
            "event_to_notification_seconds",
            "From an event's arrival at the gateway to its notifications kept",
            event_to_notification.clone(),
        );
        registry.register(
            "notification_to_acknowledgement_seconds",
            "From a notification to its acknowledgement (the gateway's clock)",
            notification_to_ack.clone(),
        );
        registry.register(
            "notifications_open",
            "Notifications not yet acknowledged, by rule and team",
            open.clone(),
        );
        registry.register(
            "notifications_overdue",
            "Notifications not acknowledged by their deadline, by rule and team",
            overdue.clone(),
        );
        registry.register(
            "events_waiting",
            "Events received and not yet read into notifications",
            events_waiting.clone(),
        );
        registry.register(
            "subscription_events_waiting",
            "Subscription events numbered and not yet delivered",
            subscription_waiting.clone(),
        );
        Self {
            registry,
            requests,
            fanout,
            ledger_append,
            event_to_notification,
            notification_to_ack,
            open,
            overdue,
            events_waiting,
            subscription_waiting,
        }
    }

    pub(crate) fn ledger_append(&self, took: Duration) {
        self.ledger_append.observe(took.as_secs_f64());
    }

    pub(crate) fn event_to_notification(&self, seconds: f64) {
        self.event_to_notification.observe(seconds.max(0.0));
    }

    pub(crate) fn notification_to_ack(&self, seconds: f64) {
        self.notification_to_ack.observe(seconds.max(0.0));
    }
}
