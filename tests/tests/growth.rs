//! G2 end to end: every agency's measurements on one UK-WHO chart, with NICE NG75 findings,
//! through the running gateway and five adapters.

mod common;

use common::{TestDemo, get_json};
use kinfold_fhir::Agency;
use serde_json::Value;

/// GET a growth chart with the demo's token: status, content type and body.
async fn chart(t: &TestDemo, child: &str, query: &str) -> (u16, String, String) {
    let response = t
        .http
        .get(t.gateway(&format!("/Patient/{child}/$growth-chart{query}")))
        .bearer_auth(&t.demo.info.token)
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .to_owned();
    (status, content_type, response.text().await.expect("body"))
}

fn rules(report: &Value) -> Vec<&str> {
    report["findings"]
        .as_array()
        .map(|f| f.iter().filter_map(|f| f["rule"].as_str()).collect())
        .unwrap_or_default()
}

/// The falling child raises NG75 findings naming the agencies that weighed her; her brothers,
/// growing normally, raise none.
#[tokio::test]
async fn the_faltering_child_is_found_and_her_brothers_are_not() {
    let t = TestDemo::start(2).await;
    let growth = t
        .demo
        .info
        .growth_example
        .clone()
        .expect("the demo has a growth example");
    let (status, report) = t
        .get(&t.gateway(&format!("/Patient/{}/$growth", growth.child.id)))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["sex"], "female");

    // Weights from four agencies, all scored.
    let weights: Vec<&Value> = report["measurements"]
        .as_array()
        .expect("measurements")
        .iter()
        .filter(|m| m["measure"] == "weight")
        .collect();
    let weighed_by: std::collections::BTreeSet<&str> = weights
        .iter()
        .filter_map(|w| w["agency"].as_str())
        .collect();
    for agency in ["gp", "ae", "health-visiting", "school-nursing", "midwifery"] {
        assert!(
            weighed_by.contains(agency),
            "no weight from {agency}: {weighed_by:?}"
        );
    }
    assert!(
        weights
            .iter()
            .all(|w| w["sds"].is_f64() && w["centile"].is_f64())
    );
    // Before 3 she tracks between the 50th and 75th centiles; by 4½ she is below the 2nd.
    for w in &weights {
        let (age, centile) = (
            w["age"].as_f64().unwrap_or(0.0),
            w["centile"].as_f64().unwrap_or(0.0),
        );
        if (0.1..3.0).contains(&age) {
            assert!((40.0..=80.0).contains(&centile), "at {age:.2} y: {centile}");
        }
        if age >= 4.5 {
            assert!(centile < 2.3, "at {age:.2} y: {centile}");
        }
    }

    let found = rules(&report);
    assert!(found.contains(&"fall-across-centiles"), "{found:?}");
    assert!(found.contains(&"below-second-centile"), "{found:?}");
    let fall = report["findings"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["rule"] == "fall-across-centiles"))
        .expect("fall");
    assert!(
        fall["centileSpaces"].as_f64().unwrap_or(0.0) >= 2.0,
        "{fall}"
    );
    assert_eq!(fall["birthBand"], "9th-to-91st");
    assert!(
        fall["guideline"]
            .as_str()
            .unwrap_or("")
            .contains("2 or more weight centile spaces")
    );
    let agencies: Vec<&str> = fall["agencies"]
        .as_array()
        .expect("agencies")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(agencies.contains(&"school-nursing"), "{agencies:?}");
    assert!(agencies.len() >= 2, "{agencies:?}");
    // Her 2-year review was a home visit without scales: a gap.
    let gaps = report["gaps"].as_array().expect("gaps");
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0]["agency"], "health-visiting");
    assert!(
        gaps[0]["summary"]
            .as_str()
            .unwrap_or("")
            .contains("2–2½ year review")
    );
    // Over time, each finding is dated by the weight that first met it.
    let history = report["history"].as_array().expect("history");
    let dated_fall = history
        .iter()
        .find(|d| d["rule"] == "fall-across-centiles")
        .unwrap_or_else(|| panic!("the fall, dated: {history:?}"));
    let fall_date = dated_fall["date"].as_str().expect("date").to_owned();
    assert!(
        weights.iter().any(|w| w["date"] == fall_date.as_str()),
        "dated by one of her weights: {fall_date}"
    );

    // Her chronology carries the growth findings among its own (issue 23): the fall, dated,
    // citing NG75, and the review without a weight (G2).
    let (status, chronology) = t
        .get(&t.gateway(&format!("/Patient/{}/$chronology", growth.child.id)))
        .await;
    assert_eq!(status, 200, "{chronology}");
    let findings = chronology["findings"].as_array().expect("findings");
    let fall = findings
        .iter()
        .find(|f| f["rule"] == "ng75-fall-across-centiles")
        .unwrap_or_else(|| panic!("{findings:?}"));
    assert_eq!(fall["cites"], "NICE NG75");
    assert_eq!(fall["date"], fall_date.as_str());
    assert!(
        findings
            .iter()
            .any(|f| f["rule"] == "review-without-weight" && f["cites"] == "G2"),
        "{findings:?}"
    );

    assert!(!growth.siblings.is_empty());
    for sibling in &growth.siblings {
        let (status, report) = t
            .get(&t.gateway(&format!("/Patient/{}/$growth", sibling.id)))
            .await;
        assert_eq!(status, 200, "{report}");
        assert!(
            report["measurements"]
                .as_array()
                .is_some_and(|m| !m.is_empty())
        );
        assert_eq!(
            rules(&report),
            Vec::<&str>::new(),
            "sibling {}: {report}",
            sibling.id
        );
        assert_eq!(report["gaps"].as_array().map(Vec::len), Some(0));
        assert_eq!(
            report["history"].as_array().map(Vec::len),
            Some(0),
            "nothing met at any time either: {report}"
        );
    }
}

/// The chart is SVG a browser can show: nine centile lines, every plotted weight, the fall
/// labelled; the disclosure is in the ledger.
#[tokio::test]
async fn the_growth_chart_is_svg_with_every_weight_and_the_fall() {
    let t = TestDemo::start(1).await;
    let growth = t.demo.info.growth_example.clone().expect("growth example");
    let (status, content_type, svg) = chart(&t, &growth.child.id, "?measure=weight").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("image/svg+xml"));
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(str::trim))
        .collect();
    for label in [
        "0.4th", "2nd", "9th", "25th", "50th", "75th", "91st", "98th", "99.6th",
    ] {
        assert!(texts.contains(&label), "{label} missing");
    }
    assert!(
        texts
            .iter()
            .any(|t| t.contains("Fall of") && t.contains("NICE NG75")),
        "{texts:?}"
    );
    for agency in [
        Agency::Gp,
        Agency::Ae,
        Agency::HealthVisiting,
        Agency::SchoolNursing,
    ] {
        assert!(
            texts.contains(&agency.display_name()),
            "legend lacks {agency}"
        );
    }
    let (_, report) = t
        .get(&t.gateway(&format!("/Patient/{}/$growth", growth.child.id)))
        .await;
    let plotted = report["measurements"]
        .as_array()
        .expect("measurements")
        .iter()
        .filter(|m| m["measure"] == "weight" && m.get("flag").is_none())
        .count();
    let legend_markers = 5; // one per agency that weighed her
    let circles = doc
        .descendants()
        .filter(|n| {
            n.has_tag_name("circle")
                && n.attribute("fill")
                    .is_some_and(|f| f.starts_with('#') && f != "#FFFFFF")
        })
        .count();
    assert_eq!(
        circles,
        plotted + legend_markers,
        "every plotted weight is a point"
    );

    // Nobody measured her BMI: the chart says so rather than showing an empty grid.
    let (_, _, bmi) = chart(&t, &growth.child.id, "?measure=bmi").await;
    assert!(
        bmi.contains("No body mass index measurement that can be charted"),
        "{bmi}"
    );

    // Asked for an unknown measure: a FHIR error naming the parameter.
    let (status, outcome) = get_json(
        &t.http,
        &t.gateway(&format!(
            "/Patient/{}/$growth-chart?measure=shoe-size",
            growth.child.id
        )),
        Some(&t.demo.info.token),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert!(outcome.to_string().contains("measure"), "{outcome}");

    // Both views are in the audit trail.
    let (_, events) = t
        .officer_get(&t.gateway(&format!("/AuditEvent?patient={}", growth.child.id)))
        .await;
    let text = events.to_string();
    assert!(
        text.contains("Patient/$growth-chart") && text.contains("Patient/$growth"),
        "{text}"
    );
}

/// No token, no growth.
#[tokio::test]
async fn growth_needs_a_token() {
    let t = TestDemo::start(1).await;
    let growth = t.demo.info.growth_example.clone().expect("growth example");
    let (status, outcome) = get_json(
        &t.http,
        &t.gateway(&format!("/Patient/{}/$growth", growth.child.id)),
        None,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(outcome["resourceType"], "OperationOutcome");
}

/// Control children: across a population of ordinary families (term and preterm, every age),
/// growing along their own centiles raises no NG75 finding.
#[tokio::test]
async fn children_growing_normally_raise_no_alarm() {
    let families = 25;
    let t = TestDemo::start(families).await;
    let population = kinfold_synth::Population::generate(kinfold_synth::Options {
        families,
        ..kinfold_synth::Options::default()
    });
    let mut checked = 0;
    let mut preterm = 0;
    for child in population.children().filter(|c| !c.falters) {
        let (status, found) = t
            .get(&t.gateway(&format!(
                "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{}",
                child.nhs_number
            )))
            .await;
        assert_eq!(status, 200);
        let id = found["entry"][0]["resource"]["id"]
            .as_str()
            .expect("person id")
            .to_owned();
        let (status, report) = t.get(&t.gateway(&format!("/Patient/{id}/$growth"))).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(
            rules(&report),
            Vec::<&str>::new(),
            "{} ({:?}): {report}",
            child.given,
            child.gestation
        );
        // Nothing met at any time either; or, where no agency recorded her gestation (so
        // term is assumed), what her early weights met says so.
        for past in report["history"].as_array().into_iter().flatten() {
            assert!(
                report["gestation"].is_null()
                    && past["summary"]
                        .as_str()
                        .is_some_and(|s| s.contains("term was assumed")),
                "{} ({:?}): {past}",
                child.given,
                child.gestation
            );
        }
        checked += 1;
        preterm += usize::from(child.gestation.weeks < 37);
    }
    assert!(checked >= 40, "only {checked} children");
    assert!(preterm >= 1, "no preterm child among {checked}");
}

/// G4 in growth too: an agency that does not answer is named, in the JSON and under the chart,
/// and the other agencies' measurements are still scored.
#[tokio::test]
async fn a_missing_agency_is_named_in_growth_and_on_the_chart() {
    let mut t = TestDemo::start(1).await;
    let growth = t.demo.info.growth_example.clone().expect("growth example");
    t.demo.stop_adapter(Agency::SchoolNursing).await;
    let (status, report) = t
        .get(&t.gateway(&format!("/Patient/{}/$growth", growth.child.id)))
        .await;
    assert_eq!(status, 200, "{report}");
    let missing = report["missingAgencies"]
        .as_array()
        .expect("missingAgencies");
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(missing[0]["agency"], "school-nursing");
    assert!(
        report["measurements"]
            .as_array()
            .is_some_and(|m| m.iter().all(|m| m["agency"] != "school-nursing") && m.len() > 5)
    );
    let (_, _, svg) = chart(&t, &growth.child.id, "").await;
    assert!(
        svg.contains("School nursing could not be reached: its measurements are missing."),
        "the chart names the missing agency"
    );
}
