//! The notification work's own state: the rules, the working calendar, the clock every
//! deadline and escalation runs on, and the wake-up a delivery of events gives. What it does
//! is in `crate::notifications` (the event stream) and `crate::notice` (making one).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use kinfold_notify::Rules;
use kinfold_time::{Clock, WorkingCalendar};

/// The notification work of one gateway: the rules, the working calendar, the clock, and the
/// wake-up a delivery of events gives.
#[derive(Debug)]
pub(crate) struct Notifier {
    pub(crate) rules: Rules,
    pub(crate) calendar: WorkingCalendar,
    pub(crate) clock: Arc<dyn Clock>,
    /// One pass at a time in this gateway.
    pub(crate) pass: tokio::sync::Mutex<()>,
    pub(crate) wake: tokio::sync::Notify,
}

impl Notifier {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Result<Self, kinfold_notify::RulesError> {
        Ok(Self {
            rules: Rules::kinfold()?,
            calendar: WorkingCalendar::default(),
            clock,
            pass: tokio::sync::Mutex::new(()),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// Tells the notification task that events have arrived.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Waits for a wake-up, or `most` at the longest.
    pub(crate) async fn woken(&self, most: std::time::Duration) {
        let _ = tokio::time::timeout(most, self.wake.notified()).await;
    }

    /// Now, by the gateway's clock.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}
