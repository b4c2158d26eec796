//! The liaison dashboard over plain HTTP (the browser tests are `dashboard_browser.rs`): its
//! cookies, its forms' CSRF tokens, and that a page says no more than the API would.

mod common;

use std::time::Duration;

use common::TestDemo;

/// A browser without a browser: one session's cookies, no redirects followed.
struct Visitor {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

/// The `Set-Cookie` headers of an answer, whole.
fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect()
}

/// The first `name="csrf"` value of a page.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token");
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').expect("closing quote")].to_owned()
}

impl Visitor {
    fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: base.to_owned(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, response: &reqwest::Response) {
        for header in set_cookies(response) {
            let pair = header.split(';').next().unwrap_or("");
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            self.cookies.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    async fn get(&mut self, path: &str) -> (u16, String, Option<String>) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, self.cookie_header())
            .send()
            .await
            .expect("answered");
        self.keep(&response);
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (status, response.text().await.expect("body"), location)
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (u16, String, Option<String>) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, self.cookie_header())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(serde_urlencoded_pairs(form))
            .send()
            .await
            .expect("answered");
        self.keep(&response);
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (status, response.text().await.expect("body"), location)
    }

    /// Signs in as one of the demo's users; the session's CSRF token.
    async fn sign_in(&mut self, user: &str) -> String {
        let (status, page, _) = self.get("/app/sign-in").await;
        assert_eq!(status, 200, "{page}");
        let token = csrf_of(&page);
        let (status, body, location) = self
            .post("/app/sign-in", &[("csrf", &token), ("user", user)])
            .await;
        assert_eq!(status, 303, "{body}");
        assert_eq!(location.as_deref(), Some("/app/worklist"));
        let (status, page, _) = self.get("/app/worklist").await;
        assert_eq!(status, 200, "{page}");
        csrf_of(&page)
    }
}

fn serde_urlencoded_pairs(form: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish()
}

/// The Task ids a worklist page offers to acknowledge.
fn acknowledgeable(page: &str) -> Vec<String> {
    page.match_indices("action=\"/app/tasks/")
        .filter_map(|(at, m)| {
            let rest = &page[at + m.len()..];
            let id = &rest[..rest.find('/')?];
            rest[id.len()..]
                .starts_with("/acknowledge")
                .then(|| id.to_owned())
        })
        .collect()
}

/// The page's main region (the header names who is signed in, which differs by session).
fn main_of(page: &str) -> &str {
    let start = page.find("<main").expect("a main region");
    &page[start..]
}

#[tokio::test]
async fn sessions_and_forms_refuse_what_did_not_come_from_the_signed_in_page() {
    let t = TestDemo::start(20).await;
    let base = t.demo.info.gateway.clone();

    // Not signed in: to the sign-in page, for pages and forms alike.
    let mut stranger = Visitor::new(&base);
    let (status, _, location) = stranger.get("/app/worklist").await;
    assert_eq!((status, location.as_deref()), (303, Some("/app/sign-in")));

    // The sign-in form is double-submitted with its own cookie: without it, nobody is signed in.
    let (_, page, _) = stranger.get("/app/sign-in").await;
    let token = csrf_of(&page);
    let mut elsewhere = Visitor::new(&base);
    let (status, body, _) = elsewhere
        .post(
            "/app/sign-in",
            &[("csrf", token.as_str()), ("user", "liaison-nurse")],
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        elsewhere
            .cookies
            .iter()
            .all(|(n, _)| n != "kinfold_session")
    );

    // The session cookie: a random reference, HttpOnly, SameSite=Strict, for /app/ only.
    let mut nurse = Visitor::new(&base);
    let (_, page, _) = nurse.get("/app/sign-in").await;
    let response = nurse
        .http
        .post(format!("{base}/app/sign-in"))
        .header(reqwest::header::COOKIE, nurse.cookie_header())
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(serde_urlencoded_pairs(&[
            ("csrf", &csrf_of(&page)),
            ("user", "liaison-nurse"),
        ]))
        .send()
        .await
        .expect("answered");
    let session_cookie = set_cookies(&response)
        .into_iter()
        .find(|c| c.starts_with("kinfold_session="))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/app/"] {
        assert!(session_cookie.contains(attribute), "{session_cookie}");
    }
    assert!(
        !session_cookie.contains("Secure"),
        "plain HTTP on loopback: {session_cookie}"
    );
    let value = session_cookie
        .trim_start_matches("kinfold_session=")
        .split(';')
        .next()
        .unwrap_or("");
    assert_eq!(value.len(), 43, "256 random bits: {session_cookie}");
    assert!(
        !value.contains('.') && !value.starts_with("eyJ"),
        "a reference, never a token"
    );
    nurse.keep(&response);
    let (_, worklist, _) = nurse.get("/app/worklist").await;
    let nurse_csrf = csrf_of(&worklist);

    // The liaison team's notifications arrive as the demo's events are read.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let task = loop {
        let (status, page, _) = nurse.get("/app/worklist").await;
        assert_eq!(status, 200);
        if let Some(id) = acknowledgeable(&page).into_iter().next() {
            assert!(page.contains("(born "), "each line names its child");
            break id;
        }
        assert!(tokio::time::Instant::now() < deadline, "no notification");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };

    let mut visitor = Visitor::new(&base);
    let visitor_csrf = visitor.sign_in("health-visitor").await;
    assert_ne!(visitor_csrf, nurse_csrf);
    let acknowledge = format!("/app/tasks/{task}/acknowledge");

    // No CSRF token, or another session's: refused, nothing changed.
    let (status, body, _) = nurse.post(&acknowledge, &[("note", "seen")]).await;
    assert_eq!(status, 403, "{body}");
    let (status, body, _) = nurse
        .post(
            &acknowledge,
            &[("csrf", visitor_csrf.as_str()), ("note", "seen")],
        )
        .await;
    assert_eq!(status, 403, "{body}");
    // The health visitor's own token with her own session: the liaison team's notification
    // is not hers, and it is answered as one that does not exist.
    let (status, body, _) = visitor
        .post(
            &acknowledge,
            &[("csrf", visitor_csrf.as_str()), ("note", "seen")],
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let liaison = t.demo.info.consent_example.tokens["paediatric-liaison-nurse"].clone();
    let (status, stored) = common::get_json(
        &t.http,
        &t.gateway(&format!("/Task/{task}")),
        Some(&liaison),
    )
    .await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["status"], "requested", "{stored}");

    // With the session's own token: acknowledged, by the nurse signed in.
    let (status, body, location) = nurse
        .post(
            &acknowledge,
            &[
                ("csrf", nurse_csrf.as_str()),
                ("note", "Seen; passing to the health visitor"),
                ("purpose", "direct-care"),
            ],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(location.as_deref(), Some("/app/worklist?done=acknowledged"));
    let (_, stored) = common::get_json(
        &t.http,
        &t.gateway(&format!("/Task/{task}")),
        Some(&liaison),
    )
    .await;
    assert_eq!(stored["status"], "received", "{stored}");
    assert!(
        stored.to_string().contains("demo-liaison-nurse")
            && stored.to_string().contains("passing to the health visitor"),
        "{stored}"
    );

    // Signed out: the reference is no longer a session.
    let (status, _, _) = nurse
        .post("/app/sign-out", &[("csrf", nurse_csrf.as_str())])
        .await;
    assert_eq!(status, 303);
    let mut replay = Visitor::new(&base);
    replay
        .cookies
        .push(("kinfold_session".into(), value.to_owned()));
    let (status, _, location) = replay.get("/app/worklist").await;
    assert_eq!((status, location.as_deref()), (303, Some("/app/sign-in")));
    t.demo.shutdown().await;
}

#[tokio::test]
async fn a_gp_without_a_relationship_finds_what_a_miss_finds() {
    let t = TestDemo::start(20).await;
    let base = t.demo.info.gateway.clone();
    let child = t.demo.info.family_example.child.clone();

    let mut gp = Visitor::new(&base);
    gp.sign_in("unrelated-gp").await;
    let (known_status, known, _) = gp
        .get(&format!("/app/search?nhs={}", child.nhs_number))
        .await;
    let (unknown_status, unknown, _) = gp.get("/app/search?nhs=999+000+2118").await;
    assert_eq!((known_status, unknown_status), (200, 200));
    assert!(known.contains("No child found."), "{known}");
    let strip = |page: &str, typed: &str| main_of(page).replace(typed, "");
    assert_eq!(
        strip(&known, &child.nhs_number),
        strip(&unknown, "999 000 2118"),
        "a refusal reads exactly as a miss"
    );
    // Her page, and a person who does not exist: the same answer.
    let (status, refused, _) = gp.get(&format!("/app/child/{}", child.id)).await;
    let (missing_status, missing, _) = gp
        .get("/app/child/00000000-0000-4000-8000-000000000000")
        .await;
    assert_eq!((status, missing_status), (404, 404));
    assert_eq!(main_of(&refused), main_of(&missing));

    // The practice the family is registered with finds her, and the index's candidates for a
    // name and date of birth come with their scores.
    let mut own_gp = Visitor::new(&base);
    own_gp.sign_in("gp").await;
    let (status, found, _) = own_gp
        .get(&format!("/app/search?nhs={}", child.nhs_number))
        .await;
    assert_eq!(status, 200);
    assert!(
        found.contains(&format!("/app/child/{}", child.id)),
        "{found}"
    );
    // By name and date of birth: every candidate with its score, none opened for her.
    let (status, found, _) = own_gp
        .get("/app/search?name=Lucja+Kowalczyk&birthdate=2019-05-02")
        .await;
    assert_eq!(status, 200, "{found}");
    assert!(found.contains("Match score"), "{found}");
    assert!(
        found.contains(&format!("/app/child/{}", child.id)),
        "{found}"
    );
    let score_cell = found
        .split("<td>")
        .filter_map(|cell| cell.split("</td>").next())
        .find_map(|cell| cell.parse::<f64>().ok())
        .expect("a score");
    assert!((0.0..=1.0).contains(&score_cell), "{score_cell}");
    // A name without a date of birth is asked for again, not guessed.
    let (status, page, _) = own_gp.get("/app/search?name=Lucja+Kowalczyk").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Give both the name and the date of birth."),
        "{page}"
    );
    let (status, page, _) = own_gp.get(&format!("/app/child/{}", child.id)).await;
    assert_eq!(status, 200, "{page}");
    for section in [
        "Who this is",
        "Active flags",
        "Family",
        "Chronology",
        "Growth",
    ] {
        assert!(page.contains(section), "{section} missing");
    }
    t.demo.shutdown().await;
}
