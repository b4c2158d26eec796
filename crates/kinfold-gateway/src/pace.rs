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

/// How many "not found" answers about a person each caller has had in the current interval.
/// A caller with a valid token that keeps asking about people it is not answered about (ids it
/// guessed, children it has no relationship with) is answered `429` until the interval ends:
/// both kinds of "not found" count the same, so the `429` says nothing about which ids were
/// real, and each refusal is no longer recorded in the ledger one by one once the caller is
/// throttled. A system client's requests count together, whoever its requesters name.
#[derive(Debug)]
pub(crate) struct Misses {
    interval: Duration,
    most: u64,
    callers: usize,
    window: Mutex<(Instant, HashMap<String, u64>)>,
}

impl Misses {
    pub(crate) fn new(config: &kinfold_audit::RefusalConfig) -> Self {
        Self {
            interval: Duration::from_millis(config.interval_ms.max(100)),
            most: config.max_misses_per_caller,
            callers: config.max_sources,
            window: Mutex::new((Instant::now(), HashMap::new())),
        }
    }

    /// The key a caller is counted under: beyond the callers counted one by one, all others
    /// share one count (so many callers cannot grow memory, and are slowed together).
    fn key(&self, counts: &HashMap<String, u64>, who: &str) -> String {
        if counts.contains_key(who) || counts.len() < self.callers {
            who.to_owned()
        } else {
            String::new()
        }
    }

    fn current(&self) -> Option<std::sync::MutexGuard<'_, (Instant, HashMap<String, u64>)>> {
        let mut window = self.window.lock().ok()?;
        if window.0.elapsed() >= self.interval {
            *window = (Instant::now(), HashMap::new());
        }
        Some(window)
    }

    /// Whether this caller may be answered about a person now; else the seconds until the
    /// interval ends.
    pub(crate) fn check(&self, who: &str) -> Result<(), u64> {
        let Some(window) = self.current() else {
            return Ok(());
        };
        let key = self.key(&window.1, who);
        match window.1.get(&key) {
            Some(count) if *count >= self.most => Err(self
                .interval
                .saturating_sub(window.0.elapsed())
                .as_secs()
                .max(1)),
            _ => Ok(()),
        }
    }

    /// Counts one "not found" about a person for this caller.
    pub(crate) fn note(&self, who: &str) {
        if let Some(mut window) = self.current() {
            let key = self.key(&window.1, who);
            *window.1.entry(key).or_insert(0) += 1;
        }
    }
}

#[cfg(test)]
mod misses_tests {
    use super::*;

    fn config(most: u64, callers: usize) -> kinfold_audit::RefusalConfig {
        kinfold_audit::RefusalConfig {
            interval_ms: 60_000,
            max_misses_per_caller: most,
            max_sources: callers,
            ..kinfold_audit::RefusalConfig::default()
        }
    }

    #[test]
    fn a_caller_that_keeps_missing_is_held_and_others_are_not() {
        let misses = Misses::new(&config(3, 10));
        for _ in 0..3 {
            assert_eq!(misses.check("dr-probe"), Ok(()));
            misses.note("dr-probe");
        }
        assert!(
            misses
                .check("dr-probe")
                .is_err_and(|wait| (1..=60).contains(&wait))
        );
        assert_eq!(misses.check("dr-other"), Ok(()));
    }

    #[test]
    fn callers_beyond_the_cap_share_one_count() {
        let misses = Misses::new(&config(2, 1));
        misses.note("first");
        misses.note("second");
        misses.note("third");
        assert!(misses.check("fourth").is_err(), "the shared count is spent");
        assert_eq!(misses.check("first"), Ok(()));
    }

    #[test]
    fn a_new_interval_starts_afresh() {
        let misses = Misses::new(&kinfold_audit::RefusalConfig {
            interval_ms: 100,
            max_misses_per_caller: 1,
            ..kinfold_audit::RefusalConfig::default()
        });
        misses.note("dr-probe");
        assert!(misses.check("dr-probe").is_err());
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(misses.check("dr-probe"), Ok(()));
    }
}
