//! The review, replayed (issue 25; G0): the repository's scenarios run through the real feeds
//! on a simulated clock, on SQLite and on PostgreSQL, and the runner's own checks are able to
//! fail.

use std::path::PathBuf;

use kinfold::scenario::{Report, RunOptions, Scenario, load, run};
use kinfold_store::testing::TestPostgres;

fn scenario_file(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/scenarios")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    load(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

async fn play(scenario: Scenario, backend: Backend) -> Report {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(
            TestPostgres::create()
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        ),
    };
    let report = run(
        scenario,
        RunOptions {
            data_dir: dir.path().to_path_buf(),
            gateway_database: database.as_ref().map(|d| d.url.clone()),
        },
    )
    .await
    .expect("the scenario runs");
    if let Some(database) = database {
        database
            .drop_database()
            .await
            .expect("the test database is dropped");
    }
    report
}

fn explain(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_default()
}

async fn the_review_raises_what_it_should(backend: Backend) {
    let scenario = scenario_file("review.yaml");
    let expected = scenario.expect.len();
    let report = play(scenario, backend).await;
    assert!(report.passed, "{}", explain(&report));
    assert_eq!(report.expectations.len(), expected);
    assert!(report.expectations.iter().all(|c| c.met));
    assert!(report.expected_findings.iter().all(|c| c.met));
    // The notification nobody acknowledged climbed to the area's safeguarding lead, at the
    // close of the working day after its deadline (Monday 08:00 → Tuesday 16:00).
    let escalated = report
        .notifications
        .iter()
        .find(|t| {
            t.rule == "domestic-abuse-notification"
                && t.about == "kacper"
                && t.level == 2
                && t.to.contains("area safeguarding lead")
        })
        .unwrap_or_else(|| panic!("{}", explain(&report)));
    assert_eq!(escalated.made, "2024-06-18T16:00:00Z", "{escalated:?}");
    assert!(
        report.ledger.contains("no problem found"),
        "{}",
        report.ledger
    ); // Who saw what through which rule: the health visitor's override is there, with its
    // reason, its rule and its ledger entry.
    assert!(
        report.accesses.iter().any(|a| a.contains("R. Shah")
            && a.contains("by override")
            && a.contains("checking who is caring for the children")
            && a.contains("entry ")),
        "{:?}",
        report.accesses
    );
}

#[tokio::test]
async fn sqlite_the_review_raises_what_it_should() {
    the_review_raises_what_it_should(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_the_review_raises_what_it_should() {
    the_review_raises_what_it_should(Backend::Postgres).await;
}

async fn the_control_family_raises_nothing(backend: Backend) {
    let report = play(scenario_file("control.yaml"), backend).await;
    assert!(report.passed, "{}", explain(&report));
    assert!(
        report.control_faults.is_empty(),
        "{:?}",
        report.control_faults
    );
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    // Only the routine notices every child's attendance gets, each acted on in time.
    assert!(!report.notifications.is_empty());
    for told in &report.notifications {
        assert_eq!(
            (told.rule.as_str(), told.priority.as_str(), told.level),
            ("child-attendance", "routine", 0),
            "{told:?}"
        );
        assert_ne!(told.status, "requested", "{told:?}");
    }
    let markdown = report.markdown(&scenario_file("control.yaml"));
    assert!(
        markdown.contains("Nothing was raised beyond the routine notice"),
        "{markdown}"
    );
}

#[tokio::test]
async fn sqlite_the_control_family_raises_nothing() {
    the_control_family_raises_nothing(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_the_control_family_raises_nothing() {
    the_control_family_raises_nothing(Backend::Postgres).await;
}

/// The third family, written from `docs/scenarios.md` alone by someone who had not read the
/// runner: it runs, and meets what its writer expected.
#[tokio::test]
async fn sqlite_the_newcomers_family_runs_as_written() {
    let scenario = scenario_file("newcomer.yaml");
    let expected = scenario.expect.len() + scenario.expect_findings.len();
    let report = play(scenario, Backend::Sqlite).await;
    assert!(report.passed, "{}", explain(&report));
    assert_eq!(
        report.expectations.len() + report.expected_findings.len(),
        expected
    );
}

/// The runner's checks fail when what happened is not what the scenario expects: the review
/// with its police notification acknowledged (so it never climbs), and an expectation that a
/// school nurse was told of a baby's attendance.
#[tokio::test]
async fn the_runner_says_so_when_an_expectation_is_not_met() {
    let mut scenario = scenario_file("review.yaml");
    scenario
        .timeline
        .retain(|step| !step.at.to_rfc3339().starts_with("2025"));
    let acknowledge: kinfold::scenario::Step = yaml_step(
        "at: 2024-06-14T09:00:00Z\nact: {by: health-visitor, does: acknowledge, rule: domestic-abuse-notification, about: kacper, words: Seen}",
    );
    let at = scenario
        .timeline
        .iter()
        .position(|s| s.at > acknowledge.at)
        .expect("a later step");
    scenario.timeline.insert(at, acknowledge);
    scenario.expect.retain(|e| e.requirement == "G20");
    scenario.expect_findings.clear();
    scenario.end = Some(
        chrono::DateTime::parse_from_rfc3339("2024-12-31T17:00:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc),
    );
    let report = play(scenario, Backend::Sqlite).await;
    assert!(!report.passed, "{}", explain(&report));
    let g20 = &report.expectations[0];
    assert!(!g20.met, "{g20:?}");
    assert!(g20.happened.contains("acknowledged by"), "{g20:?}");
}

fn yaml_step(text: &str) -> kinfold::scenario::Step {
    let scenario = load(&format!(
        "name: one step\nstart: 2024-01-01T00:00:00Z\npeople:\n  kacper: {{nhs_number: \"9990000034\", given: K, family: W, born: 2023-02-14, sex: male}}\nprofessionals:\n  health-visitor: {{name: R. Shah, organisation: RX1, role: health-visitor}}\ntimeline:\n  - {}\n",
        text.replace('\n', "\n    ")
    ))
    .expect("the step reads");
    scenario.timeline[0].clone()
}

#[test]
fn a_scenario_that_names_someone_it_does_not_define_is_refused() {
    let error = load(
        "name: x\nstart: 2024-01-01T00:00:00Z\npeople: {}\ntimeline:\n  - at: 2024-01-02T00:00:00Z\n    ae_attendance: {person: nobody}\n",
    )
    .expect_err("refused");
    assert!(error.0.contains("no person \"nobody\""), "{error}");
    let error = load(
        "name: x\nstart: 2024-01-01T00:00:00Z\npeople: {}\ntimeline:\n  - at: 2023-01-02T00:00:00Z\n    act: {by: a, does: acknowledge, rule: r, about: b}\n",
    )
    .expect_err("refused");
    assert!(error.0.contains("timeline[0]"), "{error}");
}
