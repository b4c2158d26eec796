//! The dashboard's pages, timed (issue 24: every page rendered by the server in 50 ms median or
//! less on the demo). A release demo with its default population; each page asked for 200 times
//! in a row after 20 unmeasured, by one signed-in browser over loopback, so each time is the
//! whole round trip: the page's own API calls (each through the disclosure pipeline and the
//! ledger), the rendering and the HTTP around them.
//!
//! `bash bench/dashboard.sh` runs this and writes the dashboard section of `BENCHMARKS.md`.

use std::time::{Duration, Instant};

const WARM: usize = 20;
const TIMED: usize = 200;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let at = page.find(marker).expect("a CSRF field");
    let rest = &page[at + marker.len()..];
    rest[..rest.find('"').expect("quote")].to_owned()
}

impl Browser {
    async fn sign_in(base: &str, user: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let response = http
            .get(format!("{base}/app/sign-in"))
            .send()
            .await
            .expect("sign-in page");
        let sign_in_cookie = cookie_of(&response, "kinfold_sign_in");
        let page = response.text().await.expect("page");
        let response = http
            .post(format!("{base}/app/sign-in"))
            .header("cookie", format!("kinfold_sign_in={sign_in_cookie}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={}&user={user}", csrf_of(&page)))
            .send()
            .await
            .expect("signed in");
        assert_eq!(response.status().as_u16(), 303);
        let session = cookie_of(&response, "kinfold_session");
        Self {
            http,
            base: base.to_owned(),
            cookie: format!("kinfold_session={session}"),
        }
    }

    async fn get(&self, path: &str) -> (u16, usize) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("answered");
        let status = response.status().as_u16();
        (status, response.bytes().await.expect("body").len())
    }
}

fn cookie_of(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .expect("the cookie")
        .to_owned()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn time(browser: &Browser, path: &str, expect: u16) -> (f64, f64, usize) {
    let mut size = 0;
    for _ in 0..WARM {
        let (status, bytes) = browser.get(path).await;
        assert_eq!(status, expect, "{path}");
        size = bytes;
    }
    let mut times = Vec::with_capacity(TIMED);
    for _ in 0..TIMED {
        let started = Instant::now();
        let (status, _) = browser.get(path).await;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, expect, "{path}");
    }
    times.sort_by(f64::total_cmp);
    (percentile(&times, 50.0), percentile(&times, 99.0), size)
}

async fn run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = kinfold::demo::DemoOptions::new(dir.path().to_path_buf(), 0);
    options.refusals.max_misses_per_caller = 1_000_000;
    let demo = kinfold::demo::start(options)
        .await
        .expect("the demo starts");
    let base = demo.info.gateway.clone();
    let child = demo.info.family_example.child.clone();
    // The demo's events are read and its notifications made before anything is timed.
    tokio::time::sleep(Duration::from_secs(10)).await;

    let nurse = Browser::sign_in(&base, "liaison-nurse").await;
    let visitor = Browser::sign_in(&base, "health-visitor").await;
    let gp = Browser::sign_in(&base, "gp").await;
    let unrelated = Browser::sign_in(&base, "unrelated-gp").await;
    let signed_out = Browser {
        http: reqwest::Client::new(),
        base: base.clone(),
        cookie: String::new(),
    };
    let (worklist_status, _) = nurse.get("/app/worklist").await;
    assert_eq!(worklist_status, 200);

    let child_page = format!("/app/child/{}", child.id);
    let chart = format!("/app/child/{}/chart.svg", child.id);
    let family_page = format!("/app/child/{}?family=on", child.id);
    let by_nhs = format!("/app/search?nhs={}", child.nhs_number);
    let pages: Vec<(&str, &Browser, String, u16)> = vec![
        ("sign-in page", &signed_out, "/app/sign-in".into(), 200),
        (
            "worklist (liaison nurse, every waiting notification of the hospital)",
            &nurse,
            "/app/worklist".into(),
            200,
        ),
        (
            "child page (liaison nurse, the story child)",
            &nurse,
            child_page.clone(),
            200,
        ),
        (
            "child page, whole family (health visitor)",
            &visitor,
            family_page,
            200,
        ),
        (
            "the child page's growth chart (an image the browser asks for beside the page)",
            &nurse,
            chart,
            200,
        ),
        (
            "search by NHS number (the family's GP)",
            &gp,
            by_nhs.clone(),
            200,
        ),
        (
            "search by NHS number, no relationship (unrelated GP: a miss)",
            &unrelated,
            by_nhs,
            200,
        ),
        (
            "child page, no relationship (unrelated GP: not found)",
            &unrelated,
            child_page,
            404,
        ),
    ];
    for (what, browser, path, status) in pages {
        let (median, p99, bytes) = time(browser, &path, status).await;
        println!(
            "| {what} | {median:.1} ms | {p99:.1} ms | {} kB |",
            bytes.div_ceil(1024)
        );
    }
    demo.shutdown().await;
}
