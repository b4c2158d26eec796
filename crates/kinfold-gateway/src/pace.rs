//! Refusals that take as long as "not found". A caller with no relationship to a child is
//! answered exactly as if the child did not exist, but finding that out costs the fan-out that
//! reads the child's records, while an id Kinfold does not know costs nothing: without care,
//! the time of the answer would say whether the child is known. So the gateway keeps the times
//! its recent refusals took (from the moment the request arrived), and holds every "not found"
//! about a person, and every refusal quicker than that, until their median has passed: both
//! answers then take at least the median, and half the refusals take exactly it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Refusal times kept (the median of these is the floor).
const KEPT: usize = 256;
/// The floor before any refusal has been timed.
const FIRST_FLOOR: Duration = Duration::from_millis(2);
/// The longest a "not found" is ever held.
const LONGEST_FLOOR: Duration = Duration::from_millis(250);

/// The times of recent refusals, kept per kind of request (`Patient/$everything`,
/// `Patient?name&birthdate`, …: each does different work before it can refuse), and the floor
/// they set. The kinds are the gateway's own fixed names, so the map stays small.
#[derive(Debug, Default)]
pub(crate) struct NotFoundPace {
    recent: Mutex<HashMap<String, VecDeque<Duration>>>,
}

impl NotFoundPace {
    /// Notes how long a refusal took from the start of its request.
    pub(crate) fn observe(&self, kind: &str, took: Duration) {
        if let Ok(mut all) = self.recent.lock() {
            let recent = all.entry(kind.to_owned()).or_default();
            if recent.len() == KEPT {
                recent.pop_front();
            }
            recent.push_back(took.min(LONGEST_FLOOR));
        }
    }

    /// The median of the recent refusals' times (a default until one is timed).
    pub(crate) fn floor(&self, kind: &str) -> Duration {
        let Ok(all) = self.recent.lock() else {
            return FIRST_FLOOR;
        };
        let Some(recent) = all.get(kind).filter(|r| !r.is_empty()) else {
            return FIRST_FLOOR;
        };
        let mut sorted: Vec<Duration> = recent.iter().copied().collect();
        sorted.sort_unstable();
        sorted[sorted.len() / 2]
    }

    /// Waits until a "not found" that began at `started` has taken as long as a refusal
    /// does. The wait runs on a blocking thread, whose sleep keeps to a few tens of
    /// microseconds (the async timer rounds up to whole milliseconds).
    pub(crate) async fn hold(&self, kind: &str, started: Instant) {
        let until = started + self.floor(kind);
        let now = Instant::now();
        if until > now {
            let _ = tokio::task::spawn_blocking(move || {
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
            })
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_the_median_of_recent_refusals() {
        let pace = NotFoundPace::default();
        assert_eq!(pace.floor("a"), FIRST_FLOOR);
        for ms in [5, 1, 3, 2, 4] {
            pace.observe("a", Duration::from_millis(ms));
        }
        assert_eq!(pace.floor("a"), Duration::from_millis(3));
        assert_eq!(pace.floor("b"), FIRST_FLOOR, "each kind has its own");
        // Only the most recent are kept, and none counts for more than the longest floor.
        for _ in 0..KEPT {
            pace.observe("a", Duration::from_secs(60));
        }
        assert_eq!(pace.floor("a"), LONGEST_FLOOR);
    }

    #[tokio::test]
    async fn a_not_found_is_held_until_the_floor() {
        let pace = NotFoundPace::default();
        pace.observe("a", Duration::from_millis(30));
        let started = Instant::now();
        pace.hold("a", started).await;
        assert!(started.elapsed() >= Duration::from_millis(30));
    }
}
