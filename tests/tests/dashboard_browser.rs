//! The liaison dashboard in a real browser: Chromium, headless, driven through WebDriver
//! (Debian's `chromium` and `chromium-driver`; `.ci/run` installs them when missing), at a
//! hospital PC's 1366×768. Every page is checked with axe-core (vendored in
//! `tests/browser/axe-core/`) for violations of serious or critical impact, and photographed
//! into `target/dashboard-screenshots/`.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::TestDemo;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const AXE: &str = include_str!("../browser/axe-core/axe.min.js");

/// ChromeDriver on a free port, stopped when dropped.
struct Driver {
    process: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn program(name: &str, fallback: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| fallback.to_owned())
}

async fn driver() -> Driver {
    let chromedriver = program("KINFOLD_CHROMEDRIVER", "/usr/bin/chromedriver");
    assert!(
        std::path::Path::new(&chromedriver).exists(),
        "{chromedriver} is missing: install Debian's chromium and chromium-driver (.ci/run does), or set KINFOLD_CHROMEDRIVER"
    );
    let port = free_port();
    let process = Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(response) = http.get(format!("{url}/status")).send().await
            && response.status().is_success()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "chromedriver did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Driver { process, url }
}

async fn browser(driver: &Driver) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": program("KINFOLD_CHROMIUM", "/usr/bin/chromium"),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1366,768", "--lang=en-GB", "--no-first-run"]
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session");
    client
        .set_window_size(1366, 768)
        .await
        .expect("the window's size");
    client
}

fn screenshots() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let dir = target.join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshots' folder");
    dir
}

/// Photographs the page and checks it with axe-core: no serious or critical violation.
async fn check(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("a screenshot");
    std::fs::write(screenshots().join(format!("{name}.png")), png).expect("saved");
    client
        .execute(AXE, Vec::new())
        .await
        .expect("axe-core loads");
    let found = client
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               axe.run(document, {resultTypes: ['violations']})
                 .then(r => done(r.violations
                   .filter(v => v.impact === 'serious' || v.impact === 'critical')
                   .map(v => ({id: v.id, impact: v.impact, help: v.help,
                               nodes: v.nodes.slice(0, 3).map(n => n.target)}))))
                 .catch(e => done([{id: 'axe-error', help: String(e)}]));"#,
            Vec::new(),
        )
        .await
        .expect("axe-core runs");
    assert_eq!(
        found,
        json!([]),
        "{name}: axe-core found serious or critical violations"
    );
}

async fn text_of(client: &Client) -> String {
    client
        .find(Locator::Css("body"))
        .await
        .expect("a body")
        .text()
        .await
        .expect("its text")
}

async fn sign_in(client: &Client, base: &str, user: &str) {
    client
        .goto(&format!("{base}/app/sign-in"))
        .await
        .expect("the sign-in page");
    client
        .find(Locator::Css(&format!("button[value='{user}']")))
        .await
        .expect("the user's button")
        .click()
        .await
        .expect("signed in");
    client
        .wait()
        .for_element(Locator::Css("nav[aria-label='Main']"))
        .await
        .expect("a signed-in page");
}

async fn sign_out(client: &Client) {
    client
        .find(Locator::Css("form[action='/app/sign-out'] button"))
        .await
        .expect("sign out")
        .click()
        .await
        .expect("signed out");
    client
        .wait()
        .for_element(Locator::Css("ul.users"))
        .await
        .expect("the sign-in page again");
}

#[tokio::test]
async fn a_liaison_nurse_a_health_visitor_and_a_gp_use_the_dashboard_in_chromium() {
    let driver = driver().await;
    let t = TestDemo::start(20).await;
    let base = t.demo.info.gateway.clone();
    let child = t.demo.info.family_example.child.clone();
    let client = browser(&driver).await;

    // The sign-in page lists the demo's users; the keyboard reaches the skip link first.
    client
        .goto(&format!("{base}/app/sign-in"))
        .await
        .expect("the sign-in page");
    check(&client, "01-sign-in").await;
    client
        .find(Locator::Css("body"))
        .await
        .expect("a body")
        .send_keys("\u{E004}")
        .await
        .expect("Tab");
    let focused = client
        .active_element()
        .await
        .expect("focus")
        .text()
        .await
        .expect("text");
    assert_eq!(focused, "Skip to main content");

    // The liaison nurse's worklist: the hospital's notifications, each naming its child.
    sign_in(&client, &base, "liaison-nurse").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let task = loop {
        client
            .goto(&format!("{base}/app/worklist"))
            .await
            .expect("the worklist");
        if let Ok(form) = client
            .find(Locator::Css("form[action$='/acknowledge']"))
            .await
        {
            let action = form.attr("action").await.expect("action").expect("action");
            break action
                .trim_start_matches("/app/tasks/")
                .trim_end_matches("/acknowledge")
                .to_owned();
        }
        assert!(tokio::time::Instant::now() < deadline, "no notification");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(text_of(&client).await.contains("(born "));
    check(&client, "02-worklist").await;

    // Acknowledged with a note, by keyboard: Enter in the note field sends its form.
    client
        .find(Locator::Css(&format!(
            "form[action='/app/tasks/{task}/acknowledge'] input[name='note']"
        )))
        .await
        .expect("the note")
        .send_keys("Seen; health visitor told by phone\u{E007}")
        .await
        .expect("typed");
    client
        .wait()
        .for_element(Locator::Css("#done-acknowledged"))
        .await
        .expect("acknowledged");
    assert!(text_of(&client).await.contains("Acknowledged:"));
    check(&client, "03-acknowledged").await;

    // Completed with the action taken.
    let complete = client
        .find(Locator::Css(&format!(
            "form[action='/app/tasks/{task}/complete']"
        )))
        .await
        .expect("the completion form");
    complete
        .find(Locator::Css("input[name='action']"))
        .await
        .expect("the action")
        .send_keys("Discussed with the named health visitor; home visit booked")
        .await
        .expect("typed");
    complete
        .find(Locator::Css("button[type='submit']"))
        .await
        .expect("Complete")
        .click()
        .await
        .expect("clicked");
    client
        .wait()
        .for_element(Locator::Css("#done-completed"))
        .await
        .expect("completed");
    assert!(text_of(&client).await.contains("Completed:"));
    let liaison = t.demo.info.consent_example.tokens["paediatric-liaison-nurse"].clone();
    let (_, stored) = common::get_json(
        &t.http,
        &t.gateway(&format!("/Task/{task}")),
        Some(&liaison),
    )
    .await;
    assert_eq!(stored["status"], "completed", "{stored}");
    assert!(stored.to_string().contains("home visit booked"));

    // The story child's page: identity, flags, family, chronology, growth chart.
    client
        .goto(&format!("{base}/app/child/{}?family=on", child.id))
        .await
        .expect("the child page");
    let page = text_of(&client).await;
    for seen in [
        "999 900 0010",
        "Active flags",
        "Cause of injury inconclusive",
        "Family",
        "mother",
        "Chronology",
        "police domestic-abuse notification",
        "Growth",
        "Recent accesses",
    ] {
        assert!(page.contains(seen), "{seen} is not on the child page");
    }
    let chart = client
        .find(Locator::Css(".chart img"))
        .await
        .expect("the growth chart");
    let drawn: bool = client
        .execute(
            "return arguments[0].complete && arguments[0].naturalWidth > 0;",
            vec![serde_json::to_value(&chart).expect("element")],
        )
        .await
        .expect("asked")
        .as_bool()
        .unwrap_or(false);
    assert!(drawn, "the chart image was loaded and drawn");
    check(&client, "04-child-liaison-nurse").await;
    // Below the fold: the chronology beside the family and the growth chart.
    client
        .execute(
            "document.getElementById('chronology').scrollIntoView();",
            Vec::new(),
        )
        .await
        .expect("scrolled");
    let png = client.screenshot().await.expect("a screenshot");
    std::fs::write(
        screenshots().join("04b-child-chronology-family-chart.png"),
        png,
    )
    .expect("saved");

    // Search by NHS number finds her.
    client
        .goto(&format!("{base}/app/search?nhs={}", child.nhs_number))
        .await
        .expect("search");
    client
        .find(Locator::Css(&format!("a[href^='/app/child/{}']", child.id)))
        .await
        .expect("found");
    check(&client, "05-search").await;
    sign_out(&client).await;

    // The health visitor: some of the family's records are withheld from her; she overrides,
    // giving her reason, and the override is recorded.
    sign_in(&client, &base, "health-visitor").await;
    client
        .goto(&format!("{base}/app/child/{}?family=on", child.id))
        .await
        .expect("the child page");
    let withheld = client
        .find(Locator::Css("#withheld"))
        .await
        .expect("a withheld notice");
    assert_eq!(withheld.text().await.expect("text"), "Withheld from you");
    check(&client, "06-child-health-visitor").await;
    client
        .find(Locator::Css("#justification"))
        .await
        .expect("the reason")
        .send_keys("Bruising seen on the baby at today's visit; checking the whole household")
        .await
        .expect("typed");
    client
        .find(Locator::Css("form[action$='/override'] button"))
        .await
        .expect("override")
        .click()
        .await
        .expect("clicked");
    client
        .wait()
        .for_element(Locator::Css("#override-used"))
        .await
        .expect("the override page");
    let page = text_of(&client).await;
    assert!(page.contains("You used an override"), "{page}");
    check(&client, "07-override").await;
    // Recorded: the mother's access report (her records were the ones withheld) counts the
    // health visitor's overrides, and the privacy officer finds it in her review queue.
    let officer = t.demo.info.consent_example.tokens["privacy-officer"].clone();
    let mother = t
        .demo
        .info
        .consent_example
        .mother
        .clone()
        .expect("the story's mother");
    let (status, report) = common::get_json(
        &t.http,
        &t.gateway(&format!("/Patient/{mother}/$access-report")),
        Some(&officer),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    let hers: Vec<&Value> = report["by_who"]
        .as_array()
        .expect("by_who")
        .iter()
        .filter(|w| w["who"] == "demo-health-visitor")
        .collect();
    assert!(
        hers.iter()
            .any(|w| w["overrides"].as_u64().unwrap_or(0) > 0),
        "{report}"
    );
    sign_out(&client).await;
    sign_in(&client, &base, "privacy-officer").await;
    let page = text_of(&client).await;
    assert!(
        page.contains("Overrides to review")
            && page.contains("checking the whole household")
            && page.contains("demo-health-visitor"),
        "{page}"
    );
    check(&client, "08-privacy-officer-reviews").await;
    sign_out(&client).await;

    // A GP with no relationship to the family: her search finds nothing, her page is a miss.
    sign_in(&client, &base, "unrelated-gp").await;
    client
        .goto(&format!("{base}/app/search?nhs={}", child.nhs_number))
        .await
        .expect("search");
    assert!(text_of(&client).await.contains("No child found."));
    check(&client, "09-unrelated-gp-search").await;
    client
        .goto(&format!("{base}/app/child/{}", child.id))
        .await
        .expect("the child page");
    let page = text_of(&client).await;
    assert!(
        page.contains("No child found.") && !page.contains("Kowalczyk"),
        "{page}"
    );
    check(&client, "10-unrelated-gp-child").await;

    client.close().await.expect("closed");
    t.demo.shutdown().await;
}
