//! Sign-in sessions. The browser holds only a random reference (the `kinfold_session` cookie:
//! HttpOnly, SameSite=Strict, Secure over TLS, path `/app/`); who is signed in, their forms'
//! CSRF token and the short-lived tokens the pages call the API with stay here, in memory.
//!
//! Bounded: at most `max_sessions` at once (the longest idle is dropped first), each ending
//! after `idle_minutes` without a request or `max_hours` in all. A restart signs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;

/// Who is signed in: what their tokens say about them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// A short key for the sign-in form (`liaison-nurse`).
    pub key: String,
    /// The practitioner's identifier (`sub`).
    pub subject: String,
    /// Their name, as the pages greet them.
    pub name: String,
    /// Their organisation's ODS code.
    pub organisation: String,
    /// Their organisation's name, as the sign-in page shows it.
    #[serde(default)]
    pub organisation_name: String,
    /// Their role (`paediatric-liaison-nurse`).
    pub role: String,
}

/// The session cookie's name.
pub const COOKIE: &str = "kinfold_session";
/// The sign-in form's own cookie (double-submitted with the form, so that nobody can sign a
/// browser in as someone else from another site).
pub const SIGN_IN_COOKIE: &str = "kinfold_sign_in";

/// A random reference: 256 bits from the operating system, base64url.
pub(crate) fn random_reference() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Compares two secrets in time that does not depend on where they first differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    kinfold_http::same_secret(a.as_bytes(), b.as_bytes())
}

/// One signed-in browser.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) user: User,
    pub(crate) csrf: String,
    started: Instant,
    last_seen: Instant,
    /// The API tokens minted for this session, by purpose of use, with when each ends.
    tokens: HashMap<String, (String, Instant)>,
}

/// The sessions' limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most sessions at once.
    pub max_sessions: usize,
    /// A session ends after this long without a request.
    pub idle: Duration,
    /// A session ends this long after sign-in, however busy.
    pub max_age: Duration,
}

/// Every session, by reference.
#[derive(Debug)]
pub(crate) struct Sessions {
    limits: Limits,
    by_reference: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            by_reference: Mutex::new(HashMap::new()),
        }
    }

    fn live(&self, session: &Session, now: Instant) -> bool {
        now.duration_since(session.last_seen) < self.limits.idle
            && now.duration_since(session.started) < self.limits.max_age
    }

    /// Signs a user in: a new session, its reference (for the cookie) and its CSRF token.
    pub(crate) fn start(&self, user: User) -> Result<String, getrandom::Error> {
        let reference = random_reference()?;
        let now = Instant::now();
        let session = Session {
            user,
            csrf: random_reference()?,
            started: now,
            last_seen: now,
            tokens: HashMap::new(),
        };
        let mut all = self.by_reference.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|_, s| self.live(s, now));
        while all.len() >= self.limits.max_sessions.max(1) {
            let Some(oldest) = all
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(r, _)| r.clone())
            else {
                break;
            };
            all.remove(&oldest);
        }
        all.insert(reference.clone(), session);
        Ok(reference)
    }

    /// The live session a cookie refers to (and it is seen now).
    pub(crate) fn find(&self, reference: &str) -> Option<Session> {
        let now = Instant::now();
        let mut all = self.by_reference.lock().unwrap_or_else(|e| e.into_inner());
        let live = all.get(reference).is_some_and(|s| self.live(s, now));
        if !live {
            all.remove(reference);
            return None;
        }
        let session = all.get_mut(reference)?;
        session.last_seen = now;
        Some(session.clone())
    }

    /// Signs out.
    pub(crate) fn end(&self, reference: &str) {
        self.by_reference
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(reference);
    }

    /// A token of this session's for a purpose, while it has a minute left.
    pub(crate) fn token(&self, reference: &str, purpose: &str) -> Option<String> {
        let all = self.by_reference.lock().unwrap_or_else(|e| e.into_inner());
        let (token, until) = all.get(reference)?.tokens.get(purpose)?;
        (until.saturating_duration_since(Instant::now()) > Duration::from_secs(60))
            .then(|| token.clone())
    }

    /// Keeps a token minted for this session.
    pub(crate) fn keep_token(&self, reference: &str, purpose: &str, token: String, for_: Duration) {
        let mut all = self.by_reference.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(session) = all.get_mut(reference) {
            session
                .tokens
                .insert(purpose.to_owned(), (token, Instant::now() + for_));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(key: &str) -> User {
        User {
            key: key.into(),
            subject: format!("demo-{key}"),
            name: key.into(),
            organisation: "RX1".into(),
            organisation_name: String::new(),
            role: "health-visitor".into(),
        }
    }

    fn limits(max_sessions: usize, idle_ms: u64) -> Limits {
        Limits {
            max_sessions,
            idle: Duration::from_millis(idle_ms),
            max_age: Duration::from_secs(3600),
        }
    }

    #[test]
    fn references_are_random_and_long() {
        let a = random_reference().unwrap();
        let b = random_reference().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "256 bits in base64url");
    }

    #[test]
    fn the_longest_idle_session_goes_first_when_full() {
        let sessions = Sessions::new(limits(2, 60_000));
        let first = sessions.start(user("a")).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let second = sessions.start(user("b")).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(
            sessions.find(&first).is_some(),
            "seen again: now the newest"
        );
        let third = sessions.start(user("c")).unwrap();
        assert!(sessions.find(&second).is_none(), "the longest idle went");
        assert!(sessions.find(&first).is_some());
        assert_eq!(sessions.find(&third).unwrap().user.key, "c");
    }

    #[test]
    fn an_idle_session_ends() {
        let sessions = Sessions::new(limits(10, 20));
        let reference = sessions.start(user("a")).unwrap();
        std::thread::sleep(Duration::from_millis(40));
        assert!(sessions.find(&reference).is_none());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn tokens_are_kept_per_purpose_until_their_last_minute() {
        let sessions = Sessions::new(limits(10, 60_000));
        let reference = sessions.start(user("a")).unwrap();
        sessions.keep_token(
            &reference,
            "direct-care",
            "t1".into(),
            Duration::from_secs(900),
        );
        sessions.keep_token(
            &reference,
            "safeguarding",
            "t2".into(),
            Duration::from_secs(30),
        );
        assert_eq!(
            sessions.token(&reference, "direct-care").as_deref(),
            Some("t1")
        );
        assert_eq!(sessions.token(&reference, "safeguarding"), None);
        assert_eq!(sessions.token("another", "direct-care"), None);
    }
}
