//! Notifications end to end on SQLite and PostgreSQL (issue 27; G5, G9, G20), through the
//! native feeds only, on a clock the test moves:
//!
//! * a baby of six months at A&E with a fracture: her registered GP, her health visiting team
//!   (a central pool) and the hospital's paediatric liaison team are each told, urgently
//!   (NICE CG89: under two), due within four working hours;
//! * her mother at A&E after an overdose: the GP and health visitor of **every child in the
//!   household** are told (her son's named health visitor, her daughter's pool);
//! * a police domestic-abuse notification about the son: both children's health visitors and
//!   GP, due before the next working day starts;
//! * a child no service has on record: the area's safeguarding lead is told, and why;
//! * a boy's second missed appointment in six months tells his school nursing team (G17); a
//!   baby's weight falling across two centile spaces tells her health visitor (NICE NG75);
//! * each notification is seen only by those it is addressed to (another practice finds
//!   nothing and gets "not found"), acknowledged by a named practitioner, completed with the
//!   action taken; one left alone climbs to its organisation's safeguarding lead and at the
//!   close of the next working day to the area's, each step its own Task and ledger entry;
//! * the oversight report counts, per rule and team, what was notified, acknowledged in time
//!   or late, completed, overdue, escalated and sent to the area for want of a recipient;
//! * `/metrics` counts them by rule and team, with the times, and names nobody;
//! * a child with a child-protection plan read from the emergency department: her health
//!   visitors and the area's lead are told who looked, when and why (G20).

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::agencies::{Backend, Kinfold};
use kinfold_fhir::Agency;
use kinfold_time::ManualClock;
use serde_json::{Value, json};

const MOTHER: &str = "9990000018";
const SON: &str = "9990000026";
const DAUGHTER: &str = "9990000034";
const STRANGER: &str = "9990002045";
const BEN: &str = "9990002010";
const AVA: &str = "9990002002";
const PRACTICE: &str = "A81001";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("time")
        .with_timezone(&Utc)
}

fn gp_patient(id: &str, nhs: &str, given: &str, born: &str, sex: &str) -> Value {
    json!({"resource": {
        "resourceType": "Patient", "id": id,
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
        "name": [{"family": "Haddad", "given": [given]}],
        "birthDate": born, "gender": sex,
        "address": [{"line": ["1 Tyne Street"], "postalCode": "NE4 5PL"}],
        "generalPractitioner": [{"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": PRACTICE}}]
    }, "request": {"method": "PUT", "url": format!("Patient/{id}")}})
}

fn mother_of(child: &str) -> Value {
    json!({"resource": {"resourceType": "RelatedPerson", "id": format!("{child}-mother"),
        "patient": {"reference": format!("Patient/{child}")},
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": MOTHER}],
        "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH"}]}],
        "name": [{"family": "Haddad", "given": ["Amira"]}], "gender": "female", "birthDate": "1994-05-02"},
     "request": {"method": "PUT", "url": format!("RelatedPerson/{child}-mother")}})
}

fn child(nhs: &str, given: &str, born: &str, sex: &str) -> Value {
    json!({"nhs_number": nhs, "family": "Haddad", "given": [given], "birth_date": born, "sex": sex, "postcode": "NE4 5PL"})
}

/// An A&E ADT^A04 arriving at `arrived` (HL7 time), with these segments after `PV1`.
fn attendance(control: &str, pid: &str, arrived: &str, rest: &str) -> String {
    attendance_at_visit(control, &format!("V-{control}"), pid, arrived, rest)
}

/// As [`attendance`], for the visit (`PV1-19`) given: an update of an attendance names its
/// visit again.
fn attendance_at_visit(control: &str, visit: &str, pid: &str, arrived: &str, rest: &str) -> String {
    format!(
        "MSH|^~\\&|EPR|RXX|KINFOLD|AE|{arrived}||ADT^A04^ADT_A01|{control}|P|2.4\rEVN|A04|{arrived}\r{pid}\rPV1|1|E|AE^^^RXX||||||||||||||||{visit}|||||||||||||||||01||||||||{arrived}{rest}"
    )
}

async fn person_with(k: &Kinfold, nhs: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = k
            .get(&format!(
                "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}"
            ))
            .await;
        if let Some(id) = body["entry"][0]["resource"]["id"].as_str() {
            return id.to_owned();
        }
        assert!(tokio::time::Instant::now() < deadline, "{nhs}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn tasks(bundle: &Value) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["resource"].clone())
        .collect()
}

fn rule(task: &Value) -> &str {
    task["reasonCode"]["coding"][0]["code"]
        .as_str()
        .unwrap_or_default()
}

fn about(task: &Value) -> &str {
    task["for"]["reference"].as_str().unwrap_or_default()
}

fn extension<'a>(task: &'a Value, name: &str) -> Option<&'a Value> {
    task["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"].as_str().is_some_and(|u| u.ends_with(name)))
}

/// The inbox of `token` once it holds at least `count` notifications.
async fn inbox(k: &Kinfold, token: &str, query: &str, count: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = k
            .get_as(token, &format!("/Task?code=notification{query}"))
            .await;
        assert_eq!(status, 200, "{body}");
        let found = tasks(&body);
        // A notification kept between the page's read and its count is counted, not yet
        // shown: ask again.
        let whole = body["total"].as_u64() == Some(found.len() as u64);
        if whole && found.len() >= count {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{count} notifications for {query}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn post(k: &Kinfold, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let response = k
        .http
        .post(format!("{}{path}", k.gateway_url))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn the_rules_tell_the_right_people_who_acknowledge_or_are_escalated(backend: Backend) {
    let mut k = Kinfold::adapters(backend).await;
    // Thursday 3 December 2026, 10:00 in London (GMT).
    let clock = ManualClock::at(at("2026-12-03T10:00:00Z"));
    k.start_gateway_with_clock(clock.clone()).await;

    // The GP knows the mother and her two children, registered at one practice.
    k.gp_bundle(&json!({
        "resourceType": "Bundle", "type": "transaction", "identifier": {"value": "GP-NOTIFY-1"},
        "entry": [
            gp_patient("gp-son", SON, "Leo", "2022-01-15", "male"),
            mother_of("gp-son"),
            gp_patient("gp-daughter", DAUGHTER, "Mia", "2026-06-01", "female"),
            mother_of("gp-daughter"),
            gp_patient("gp-mother", MOTHER, "Amira", "1994-05-02", "female"),
        ]
    }))
    .await;
    // Health visiting: the son allocated to a named health visitor, the daughter to the pool.
    let rows = [
        json!({"record": "allocation", "row_id": "N-01", "child": child(SON, "Leo", "2022-01-15", "male"), "date": "2026-02-01", "health_visitor": {"name": "R. Shah"}}),
        json!({"record": "allocation", "row_id": "N-02", "child": child(DAUGHTER, "Mia", "2026-06-01", "female"), "date": "2026-06-20", "pool": "Central pool (north)"}),
    ];
    let stored = k
        .import(
            Agency::HealthVisiting,
            &rows.iter().map(|r| format!("{r}\n")).collect::<String>(),
        )
        .await;
    assert_eq!(stored["stored"], 2, "{stored}");
    let son = person_with(&k, SON).await;
    let daughter = person_with(&k, DAUGHTER).await;
    let mother = person_with(&k, MOTHER).await;

    let gp = k.token_as("dr.jones", PRACTICE, "gp");
    let other_gp = k.token_as("dr.other", "B82002", "gp");
    let shah = k.token_as("R. Shah", "RX1", "health-visitor");
    let liaison = k.token_as("pln.kaur", "RXX01", "paediatric-liaison-nurse");
    let hv_lead = k.token_as("sg.lead", "RX1", "safeguarding-professional");
    let area_lead = k.token_as("area.lead", "Q99", "safeguarding-professional");

    // 1. The daughter, six months old, at A&E with a fracture.
    k.send_hl7(&attendance(
        "N-AE-1",
        &format!("PID|1||{DAUGHTER}^^^NHS^NH||Haddad^Mia||20260601|F"),
        "20261203095000+0000",
        "\rOBX|1|CWE|injury-type^Injury type^KINFOLD-INJ||125605004^Fracture of bone^SCT",
    ))
    .await;
    let for_gp = inbox(&k, &gp, "", 1).await;
    assert_eq!(for_gp.len(), 1, "{for_gp:?}");
    let gp_task = &for_gp[0];
    assert_eq!(rule(gp_task), "child-attendance");
    assert_eq!(about(gp_task), format!("Patient/{daughter}"));
    assert_eq!(gp_task["priority"], "urgent", "under two with an injury");
    // Four working hours from 10:00 on a Thursday.
    assert_eq!(
        gp_task["restriction"]["period"]["end"], "2026-12-03T14:00:00Z",
        "{gp_task}"
    );
    assert_eq!(gp_task["status"], "requested");
    assert_eq!(gp_task["owner"]["identifier"]["value"], PRACTICE);
    assert!(
        gp_task["focus"]["reference"]
            .as_str()
            .is_some_and(|r| r.contains("/Encounter/")),
        "the GP may see the attendance: {gp_task}"
    );
    let for_liaison = inbox(&k, &liaison, "", 1).await;
    assert_eq!(
        for_liaison.iter().map(rule).collect::<Vec<_>>(),
        ["child-attendance"]
    );
    // The daughter's pool at health visiting: every health visitor of RX1 sees it.
    let for_hv = inbox(&k, &shah, "", 1).await;
    assert_eq!(for_hv.len(), 1, "{for_hv:?}");
    assert_eq!(about(&for_hv[0]), format!("Patient/{daughter}"));
    // Another practice finds nothing, and cannot read or acknowledge it.
    let (status, body) = k.get_as(&other_gp, "/Task?code=notification").await;
    assert_eq!((status, body["total"].as_u64()), (200, Some(0)), "{body}");
    let gp_id = gp_task["id"].as_str().expect("id").to_owned();
    let (status, _) = k.get_as(&other_gp, &format!("/Task/{gp_id}")).await;
    assert_eq!(status, 404);
    let (status, unknown) = k
        .get_as(&other_gp, "/Task/00000000-0000-4000-8000-000000000000")
        .await;
    assert_eq!(status, 404);
    let (status, refused) = post(
        &k,
        &other_gp,
        &format!("/Task/{gp_id}/$acknowledge"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        refused["issue"][0]["code"], unknown["issue"][0]["code"],
        "a notification addressed to someone else is answered as one that does not exist"
    );

    // 2. The mother at A&E after an overdose: the GP and health visitor of both children.
    k.send_hl7(&attendance(
        "N-AE-2",
        &format!("PID|1||{MOTHER}^^^NHS^NH||Haddad^Amira||19940502|F"),
        "20261203102000+0000",
        "\rPV2|||OD^Overdose of paracetamol^LOCAL",
    ))
    .await;
    let for_gp = inbox(&k, &gp, "", 3).await;
    let adult: Vec<&Value> = for_gp
        .iter()
        .filter(|t| rule(t) == "adult-risk-attendance")
        .collect();
    let mut children: Vec<&str> = adult.iter().map(|t| about(t)).collect();
    children.sort_unstable();
    let mut expected = vec![format!("Patient/{son}"), format!("Patient/{daughter}")];
    expected.sort();
    assert_eq!(children, expected, "{for_gp:?}");
    assert!(
        !for_gp
            .iter()
            .any(|t| about(t) == format!("Patient/{mother}")),
        "the mother is no child: nobody is told about her as one"
    );
    let for_hv = inbox(&k, &shah, "", 3).await;
    let named = for_hv
        .iter()
        .find(|t| rule(t) == "adult-risk-attendance" && about(t) == format!("Patient/{son}"))
        .unwrap_or_else(|| panic!("the son's health visitor is told: {for_hv:?}"));
    assert!(
        named["owner"]["display"]
            .as_str()
            .is_some_and(|d| d.contains("R. Shah")),
        "{named}"
    );
    assert_eq!(
        extension(named, "notification-requirement").map(|e| &e["valueCode"]),
        Some(&json!("G5"))
    );
    assert_eq!(named["priority"], "routine");
    // One working day: the close of Friday.
    assert_eq!(
        named["restriction"]["period"]["end"],
        "2026-12-04T17:00:00Z"
    );
    // Whether the professional may see the mother's attendance is the consent engine's
    // answer: the Task shows the record or says that one exists they may not see, never
    // neither.
    for task in &adult {
        let shown = task["focus"].is_object();
        let withheld = extension(task, "withheld-count").is_some();
        assert!(shown != withheld, "{task}");
    }

    // 3. A police domestic-abuse notification about the son: both children, due before the
    // services open on Friday.
    let da = json!({"record": "da-notification", "row_id": "N-03", "child": child(SON, "Leo", "2022-01-15", "male"),
        "incident_date": "2026-12-02", "received_date": "2026-12-03", "from": "Police", "children_present": true,
        "child_seen": false, "adult_victim_risk_grade": "medium"});
    assert_eq!(
        k.import(Agency::HealthVisiting, &format!("{da}\n")).await["stored"],
        1
    );
    let for_gp = inbox(&k, &gp, "", 5).await;
    let police: Vec<&Value> = for_gp
        .iter()
        .filter(|t| rule(t) == "domestic-abuse-notification")
        .collect();
    assert_eq!(police.len(), 2, "{for_gp:?}");
    for task in &police {
        assert_eq!(task["restriction"]["period"]["end"], "2026-12-04T09:00:00Z");
        assert_eq!(
            extension(task, "notification-requirement").map(|e| &e["valueCode"]),
            Some(&json!("G9"))
        );
    }

    // 4. A child nobody has on record: the area's safeguarding lead, told why.
    k.send_hl7(&attendance(
        "N-AE-3",
        &format!("PID|1||{STRANGER}^^^NHS^NH||Doe^Sam||20200310|M"),
        "20261203103000+0000",
        "",
    ))
    .await;
    let for_area = inbox(&k, &area_lead, "", 2).await;
    let stranger = person_with(&k, STRANGER).await;
    let unresolved: Vec<&Value> = for_area
        .iter()
        .filter(|t| about(t) == format!("Patient/{stranger}"))
        .collect();
    assert_eq!(
        unresolved.len(),
        2,
        "no GP and no school nurse: {for_area:?}"
    );
    for task in &unresolved {
        assert!(extension(task, "recipient-unresolved").is_some(), "{task}");
        assert_eq!(
            task["priority"], "routine",
            "a school-age child with no injury"
        );
    }

    // 5. Repeated was-not-brought (G17): a school-age boy's second missed appointment within
    // six months tells his school nursing team (the first alone tells nobody); a baby's weight
    // falling across more than two centile spaces (NICE NG75) tells her health visitor, once.
    let ben = json!({"nhs_number": BEN, "family": "Hartley", "given": ["Ben"], "birth_date": "2019-04-02", "sex": "male", "postcode": "LS9 8AX"});
    let rows = [
        json!({"record": "school", "row_id": "N-10", "child": ben, "school_urn": "100001", "school_name": "Hill Top Primary", "from": "2023-09-01"}),
        json!({"record": "was-not-brought", "row_id": "N-11", "child": ben, "appointment_date": "2026-10-01", "service": "School nursing review", "reason": "No reply from parent"}),
    ];
    let stored = k
        .import(
            Agency::SchoolNursing,
            &rows.iter().map(|r| format!("{r}\n")).collect::<String>(),
        )
        .await;
    assert_eq!(stored["stored"], 2, "{stored}");
    let school_nurse = k.token_as("sn.ali", "RX1", "school-nurse");
    let boy = person_with(&k, BEN).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !inbox(&k, &school_nurse, "", 0)
            .await
            .iter()
            .any(|t| rule(t) == "was-not-brought"),
        "one missed appointment is no pattern"
    );
    let again = json!({"record": "was-not-brought", "row_id": "N-12", "child": ben, "appointment_date": "2026-11-20", "service": "School nursing review", "reason": "No reply from parent"});
    assert_eq!(
        k.import(Agency::SchoolNursing, &format!("{again}\n")).await["stored"],
        1
    );
    let for_school = inbox(&k, &school_nurse, "", 1).await;
    let missed: Vec<&Value> = for_school
        .iter()
        .filter(|t| rule(t) == "was-not-brought")
        .collect();
    assert_eq!(missed.len(), 1, "{for_school:?}");
    assert_eq!(about(missed[0]), format!("Patient/{boy}"));
    assert_eq!(
        extension(missed[0], "notification-requirement").map(|e| &e["valueCode"]),
        Some(&json!("G17"))
    );
    let ava = json!({"nhs_number": AVA, "family": "Okafor", "given": ["Ava"], "birth_date": "2026-01-10", "sex": "female", "postcode": "LS7 3QT"});
    let rows = [
        json!({"record": "allocation", "row_id": "N-20", "child": ava, "date": "2026-01-20", "health_visitor": {"name": "R. Shah"}}),
        json!({"record": "growth", "row_id": "N-21", "child": ava, "date": "2026-01-10", "weight_kg": 3.3}),
        json!({"record": "growth", "row_id": "N-22", "child": ava, "date": "2026-05-20", "weight_kg": 6.2}),
        json!({"record": "growth", "row_id": "N-23", "child": ava, "date": "2026-10-10", "weight_kg": 6.6}),
    ];
    let stored = k
        .import(
            Agency::HealthVisiting,
            &rows.iter().map(|r| format!("{r}\n")).collect::<String>(),
        )
        .await;
    assert_eq!(stored["stored"], 4, "{stored}");
    let baby = person_with(&k, AVA).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let faltering = loop {
        let found: Vec<Value> = inbox(&k, &shah, "", 0)
            .await
            .into_iter()
            .filter(|t| rule(t) == "faltering-growth")
            .collect();
        if !found.is_empty() {
            break found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a faltering-growth notification"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        faltering.len(),
        1,
        "one episode, one notification: {faltering:?}"
    );
    assert_eq!(about(&faltering[0]), format!("Patient/{baby}"));

    // Acknowledged by a named practitioner, then completed with the action taken.
    let (status, acked) = post(
        &k,
        &gp,
        &format!("/Task/{gp_id}/$acknowledge"),
        &json!({"note": "Seen; will call the health visitor."}),
    )
    .await;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["status"], "received");
    assert!(
        acked["output"][0]["valueString"]
            .as_str()
            .is_some_and(|s| s.contains("dr.jones")),
        "{acked}"
    );
    let (status, again) = post(&k, &gp, &format!("/Task/{gp_id}/$acknowledge"), &json!({})).await;
    assert_eq!(status, 400, "{again}");
    let (status, short) = post(
        &k,
        &gp,
        &format!("/Task/{gp_id}/$complete"),
        &json!({"action": "done"}),
    )
    .await;
    assert_eq!(status, 400, "{short}");
    let (status, done) = post(
        &k,
        &gp,
        &format!("/Task/{gp_id}/$complete"),
        &json!({"action": "Spoke to the health visitor; joint visit booked for Monday."}),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["status"], "completed");
    let completed = inbox(&k, &gp, "&status=completed", 1).await;
    assert_eq!(completed.len(), 1);

    // Nobody at health visiting acknowledges the daughter's attendance. At 14:01 it goes to
    // RX1's safeguarding lead; the GP's, acknowledged, goes nowhere.
    clock.set(at("2026-12-03T14:01:00Z"));
    let for_lead = inbox(&k, &hv_lead, "", 1).await;
    assert_eq!(for_lead.len(), 1, "{for_lead:?}");
    let escalated = &for_lead[0];
    assert_eq!(
        escalated["businessStatus"]["coding"][0]["code"],
        "team-lead"
    );
    let hv_task = inbox(&k, &shah, "", 1)
        .await
        .into_iter()
        .find(|t| rule(t) == "child-attendance")
        .expect("the pool's notification");
    assert_eq!(
        escalated["partOf"][0]["reference"],
        format!("Task/{}", hv_task["id"].as_str().expect("id"))
    );
    assert_eq!(hv_task["businessStatus"]["coding"][0]["code"], "team-lead");
    assert!(
        !inbox(&k, &hv_lead, "", 0)
            .await
            .iter()
            .any(|t| t["partOf"][0]["reference"] == format!("Task/{gp_id}")),
        "the acknowledged notification does not escalate"
    );
    // Still unacknowledged at the close of the next working day: the area's lead.
    clock.set(at("2026-12-04T16:59:00Z"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !inbox(&k, &area_lead, "", 0)
            .await
            .iter()
            .any(|t| t["partOf"].is_array()),
        "not before the close of Friday"
    );
    clock.set(at("2026-12-04T17:01:00Z"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found = inbox(&k, &area_lead, "", 0).await;
        if found.iter().any(|t| {
            t["partOf"][0]["reference"]
                == format!("Task/{}", hv_task["id"].as_str().unwrap_or_default())
                && t["businessStatus"]["coding"][0]["code"] == "area-safeguarding-lead"
        }) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{found:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The team lead may act on what reached them: acknowledging stops the ladder.
    let hv_id = hv_task["id"].as_str().expect("id");
    let (status, acked) = post(
        &k,
        &hv_lead,
        &format!("/Task/{hv_id}/$acknowledge"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{acked}");

    // The oversight report (G20): per rule and team, as the clock stands (Friday 17:01).
    let (status, report) = k.get_as(&area_lead, "/$notification-report").await;
    assert_eq!(status, 200, "{report}");
    let row = |report: &Value, rule: &str, org: &str, role: &str| -> Value {
        report["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["rule"] == rule && r["organisation"] == org && r["role"] == role)
            .cloned()
            .unwrap_or_else(|| panic!("{rule} {org} {role}: {report}"))
    };
    let pool = row(&report, "child-attendance", "RX1", "health-visitor");
    assert_eq!(
        (
            &pool["notified"],
            &pool["acknowledgedLate"],
            &pool["escalated"],
            &pool["overdue"]
        ),
        (&json!(1), &json!(1), &json!(1), &json!(0)),
        "{pool}"
    );
    let practice = row(&report, "child-attendance", PRACTICE, "gp");
    assert_eq!(
        (
            &practice["notified"],
            &practice["acknowledgedInTime"],
            &practice["completed"]
        ),
        (&json!(1), &json!(1), &json!(1)),
        "{practice}"
    );
    let unresolved = row(
        &report,
        "child-attendance",
        "Q99",
        "safeguarding-professional",
    );
    assert_eq!(
        (
            &unresolved["notified"],
            &unresolved["recipientUnresolved"],
            &unresolved["overdue"]
        ),
        (&json!(2), &json!(2), &json!(2)),
        "due at the close of Friday, nobody acknowledged: {unresolved}"
    );
    // An organisation's lead sees its own teams only; a GP is no overseer.
    let (status, own) = k.get_as(&hv_lead, "/$notification-report").await;
    assert_eq!(status, 200, "{own}");
    assert!(
        own["rows"].as_array().is_some_and(|rows| !rows.is_empty() && rows.iter().all(|r| r["organisation"] == "RX1")),
        "{own}"
    );
    let (status, _) = k.get_as(&gp, "/$notification-report").await;
    assert_eq!(status, 403);

    // 6. Access is a notification too: with a child-protection plan flagged, the daughter's
    // record read from the emergency department tells her health visitors and the area's
    // lead who looked and why.
    let (status, flag) = post(&k, &area_lead, "/Flag", &json!({"resourceType": "Flag",
        "subject": {"reference": format!("Patient/{daughter}")},
        "code": {"coding": [{"system": "https://kinfold.example/fhir/CodeSystem/safeguarding-flag", "code": "child-protection-plan"}]}})).await;
    assert_eq!(status, 201, "{flag}");
    let arrived = Utc::now().format("%Y%m%d%H%M%S+0000").to_string();
    k.send_hl7(&attendance(
        "N-AE-4",
        &format!("PID|1||{DAUGHTER}^^^NHS^NH||Haddad^Mia||20260601|F"),
        &arrived,
        "",
    ))
    .await;
    let ed = k.token_as("dr.ed", "RXX01", "emergency-department-clinician");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = k
            .get_as(&ed, &format!("/Patient/{daughter}/$everything"))
            .await;
        if status == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let told = |tasks: &[Value]| -> Vec<Value> {
        tasks
            .iter()
            .filter(|t| rule(t) == "protected-child-accessed")
            .cloned()
            .collect()
    };
    let for_area = told(&inbox(&k, &area_lead, "", 0).await);
    assert_eq!(for_area.len(), 1, "{for_area:?}");
    assert!(
        for_area[0]["note"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("dr.ed") && t.contains("direct care")),
        "{}",
        for_area[0]
    );
    assert_eq!(told(&inbox(&k, &shah, "", 0).await).len(), 1);
    // The same clinician reading again the same day tells nobody twice; another
    // professional's read (the GP's) is no unscheduled care and tells nobody.
    let (status, _) = k
        .get_as(&ed, &format!("/Patient/{daughter}/$everything"))
        .await;
    assert_eq!(status, 200);
    let (status, _) = k
        .get_as(&gp, &format!("/Patient/{daughter}/$everything"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(told(&inbox(&k, &area_lead, "", 0).await).len(), 1);

    // The measurements: open and overdue by rule and team, the times, and no person in them.
    let metrics = k
        .http
        .get(format!("{}/metrics", k.gateway_url))
        .send()
        .await
        .expect("answered")
        .text()
        .await
        .expect("text");
    let value = |prefix: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{prefix} in {metrics}"))
    };
    assert!(value("kinfold_event_to_notification_seconds_count") >= 4.0);
    assert_eq!(
        value("kinfold_notification_to_acknowledgement_seconds_count"),
        2.0
    );
    assert!(
        value(
            "kinfold_notifications_open{rule=\"adult-risk-attendance\",organisation=\"RX1\",role=\"health-visitor\"}"
        ) >= 2.0
    );
    assert!(
        value("kinfold_request_seconds_count{route=\"/Task/{id}/$acknowledge\",method=\"POST\"}")
            >= 2.0
    );
    assert!(value("kinfold_fanout_seconds_count{agency=\"gp\"}") >= 1.0);
    assert!(value("kinfold_ledger_append_seconds_count") >= 1.0);
    assert_eq!(value("kinfold_events_waiting"), 0.0);
    for person in [&son, &daughter, &mother] {
        assert!(
            !metrics.contains(person.as_str()),
            "no person in the metrics"
        );
    }
    assert!(!metrics.contains(SON) && !metrics.contains(DAUGHTER));

    // Every notification is in the ledger about its child, made by the notifier.
    let officer = k.token_as("po.area", "Q99", "privacy-officer");
    let (status, trail) = k
        .get_as(
            &officer,
            &format!("/AuditEvent?patient={daughter}&_count=200"),
        )
        .await;
    assert_eq!(status, 200, "{trail}");
    let text = trail.to_string();
    assert!(text.contains("kinfold-notify"), "{trail}");
    assert!(text.contains("notification child-attendance"), "{trail}");

    k.finish().await;
}

#[tokio::test]
async fn sqlite_the_rules_tell_the_right_people_who_acknowledge_or_are_escalated() {
    the_rules_tell_the_right_people_who_acknowledge_or_are_escalated(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_the_rules_tell_the_right_people_who_acknowledge_or_are_escalated() {
    the_rules_tell_the_right_people_who_acknowledge_or_are_escalated(Backend::Postgres).await;
}

/// The GP, the health visitor and the mother's two children, registered and allocated; the
/// daughter's person id.
async fn family(k: &Kinfold) -> String {
    k.gp_bundle(&json!({
        "resourceType": "Bundle", "type": "transaction", "identifier": {"value": "GP-NOTIFY-2"},
        "entry": [
            gp_patient("gp-son", SON, "Leo", "2022-01-15", "male"),
            mother_of("gp-son"),
            gp_patient("gp-daughter", DAUGHTER, "Mia", "2026-06-01", "female"),
            mother_of("gp-daughter"),
            gp_patient("gp-mother", MOTHER, "Amira", "1994-05-02", "female"),
        ]
    }))
    .await;
    let row = json!({"record": "allocation", "row_id": "N-02", "child": child(DAUGHTER, "Mia", "2026-06-01", "female"), "date": "2026-06-20", "pool": "Central pool (north)"});
    assert_eq!(
        k.import(Agency::HealthVisiting, &format!("{row}\n")).await["stored"],
        1
    );
    person_with(k, DAUGHTER).await
}

/// Waits until the notification work has read every event the gateway received.
async fn read_every_event(k: &Kinfold) {
    let store = k.gateway_store();
    let last = store
        .events_after(0, 100_000)
        .await
        .expect("events")
        .last()
        .map_or(0, |e| e.seq);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while store.notify_cursor().await.expect("cursor") < last {
        assert!(tokio::time::Instant::now() < deadline, "events left unread");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every notification kept, as (rule, child, owner organisation, owner role, status).
async fn kept(k: &Kinfold) -> Vec<(String, String, String, String, String)> {
    let (all, total) = k
        .gateway_store()
        .notifications_between(0, i64::MAX, 1000)
        .await
        .expect("notifications");
    assert_eq!(all.len() as i64, total);
    let mut all: Vec<_> = all
        .into_iter()
        .map(|n| (n.rule, n.person, n.owner_org, n.owner_role, n.status))
        .collect();
    all.sort();
    all
}

/// The gateway killed while the A&E adapter delivers, and started again: every notification
/// the attendance calls for is made, once; one acknowledged before another restart stays
/// acknowledged and is not made again.
#[tokio::test]
async fn sqlite_a_gateway_killed_mid_delivery_loses_no_notification_and_repeats_none() {
    let mut k = Kinfold::adapters(Backend::Sqlite).await;
    k.start_gateway_with_clock(ManualClock::at(at("2026-12-03T10:00:00Z")))
        .await;
    let daughter = family(&k).await;
    k.kill_gateway().await;
    // The attendance reaches the A&E adapter while the gateway is down; its outbox retries.
    k.send_hl7(&attendance(
        "N-AE-9",
        &format!("PID|1||{DAUGHTER}^^^NHS^NH||Haddad^Mia||20260601|F"),
        "20261203095000+0000",
        "\rOBX|1|CWE|injury-type^Injury type^KINFOLD-INJ||125605004^Fracture of bone^SCT",
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    k.restart_gateway().await;
    let gp = k.token_as("dr.jones", PRACTICE, "gp");
    let for_gp = inbox(&k, &gp, "", 1).await;
    let liaison = k.token_as("pln.kaur", "RXX01", "paediatric-liaison-nurse");
    inbox(&k, &liaison, "", 1).await;
    let hv = k.token_as("hv.any", "RX1", "health-visitor");
    inbox(&k, &hv, "", 1).await;
    let expected = vec![
        (
            "child-attendance".to_owned(),
            daughter.clone(),
            PRACTICE.to_owned(),
            "gp".to_owned(),
            "requested".to_owned(),
        ),
        (
            "child-attendance".to_owned(),
            daughter.clone(),
            "RX1".to_owned(),
            "health-visitor".to_owned(),
            "requested".to_owned(),
        ),
        (
            "child-attendance".to_owned(),
            daughter.clone(),
            "RXX01".to_owned(),
            "paediatric-liaison-nurse".to_owned(),
            "requested".to_owned(),
        ),
    ];
    assert_eq!(kept(&k).await, expected);
    let id = for_gp[0]["id"].as_str().expect("id");
    let (status, _) = post(&k, &gp, &format!("/Task/{id}/$acknowledge"), &json!({})).await;
    assert_eq!(status, 200);
    // Another restart, and the hospital's update of the same attendance (a new event about
    // the same Encounter): nobody is told again.
    k.kill_gateway().await;
    k.restart_gateway().await;
    k.send_hl7(&attendance_at_visit(
        "N-AE-9b",
        "V-N-AE-9",
        &format!("PID|1||{DAUGHTER}^^^NHS^NH||Haddad^Mia||20260601|F"),
        "20261203095000+0000",
        "\rPV2|||FALL^Fell from the sofa^LOCAL\rOBX|1|CWE|injury-type^Injury type^KINFOLD-INJ||125605004^Fracture of bone^SCT",
    ))
    .await;
    let events = k.events_from(Agency::Ae, 2).await;
    assert_eq!(events.len(), 2, "the update is an event of its own");
    read_every_event(&k).await;
    let mut after = expected.clone();
    after[0].4 = "received".to_owned();
    assert_eq!(kept(&k).await, after);
    k.finish().await;
}

/// Two gateways on one PostgreSQL database, both making notifications from the same events:
/// each is made once.
#[tokio::test]
async fn postgres_two_gateways_make_each_notification_once() {
    let mut k = Kinfold::adapters(Backend::Postgres).await;
    k.start_gateway().await;
    let second = k.start_another_gateway().await;
    let daughter = family(&k).await;
    for n in 0..5 {
        k.send_hl7(&attendance(
            &format!("N-AE-2{n}"),
            &format!("PID|1||{DAUGHTER}^^^NHS^NH||Haddad^Mia||20260601|F"),
            &format!("2026120{}095000+0000", n + 1),
            "\rOBX|1|CWE|injury-type^Injury type^KINFOLD-INJ||125605004^Fracture of bone^SCT",
        ))
        .await;
    }
    // The second gateway reads the same database: its inbox shows what either made.
    let gp = k.token_as("dr.jones", PRACTICE, "gp");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let response = k
            .http
            .get(format!("{second}/Task?code=notification"))
            .bearer_auth(&gp)
            .send()
            .await
            .expect("answered");
        let body: Value = response.json().await.expect("json");
        if body["total"] == 5 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    read_every_event(&k).await;
    let all = kept(&k).await;
    // Five attendances, three recipients each, no more.
    assert_eq!(all.len(), 15, "{all:?}");
    assert!(all.iter().all(|n| n.1 == daughter));
    k.finish().await;
}

/// A custody transfer not completed by its deadline (G7): ten working days after it started,
/// both services' leads are told, once (here one organisation runs both, so one notification);
/// a transfer completed in time tells nobody.
async fn an_overdue_transfer_tells_both_services_leads(backend: Backend) {
    let mut k = Kinfold::adapters(backend).await;
    let clock = ManualClock::at(at("2026-12-03T10:00:00Z"));
    k.start_gateway_with_clock(clock.clone()).await;
    let transfer = |row: &str, who: Value, id: &str, status: &str, day: &str| json!({"record": "transfer", "row_id": row, "child": who, "transfer_id": id, "status": status, "date": day, "to": "school-nursing"});
    let son = child(SON, "Leo", "2021-09-15", "male");
    let daughter = child(DAUGHTER, "Mia", "2021-10-01", "female");
    let rows = [
        transfer("T-01", son.clone(), "T1", "started", "2026-12-03"),
        transfer("T-02", daughter.clone(), "T2", "started", "2026-12-03"),
    ];
    let stored = k
        .import(
            Agency::HealthVisiting,
            &rows.iter().map(|r| format!("{r}\n")).collect::<String>(),
        )
        .await;
    assert_eq!(stored["stored"], 2, "{stored}");
    let boy = person_with(&k, SON).await;
    person_with(&k, DAUGHTER).await;
    read_every_event(&k).await;
    let done = transfer("T-03", daughter, "T2", "completed", "2026-12-10");
    assert_eq!(
        k.import(Agency::HealthVisiting, &format!("{done}\n")).await["stored"],
        1
    );
    read_every_event(&k).await;
    let lead = k.token_as("sg.lead", "RX1", "safeguarding-professional");
    // Nine working days on: not yet.
    clock.set(at("2026-12-16T16:00:00Z"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let overdue = |tasks: Vec<Value>| -> Vec<Value> {
        tasks
            .into_iter()
            .filter(|t| rule(t) == "custody-transfer-overdue")
            .collect()
    };
    assert!(overdue(inbox(&k, &lead, "", 0).await).is_empty());
    // The close of the tenth working day passed.
    clock.set(at("2026-12-17T17:01:00Z"));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let told = loop {
        let told = overdue(inbox(&k, &lead, "", 0).await);
        if !told.is_empty() {
            break told;
        }
        assert!(tokio::time::Instant::now() < deadline, "the leads told");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let told_later = overdue(inbox(&k, &lead, "", 0).await);
    assert_eq!(
        told_later.len(),
        1,
        "once, for the transfer not completed: {told_later:?}"
    );
    assert_eq!(about(&told[0]), format!("Patient/{boy}"));
    assert_eq!(
        extension(&told[0], "notification-requirement").map(|e| &e["valueCode"]),
        Some(&json!("G7"))
    );
    assert!(
        told[0]["focus"]["reference"]
            .as_str()
            .is_some_and(|r| r.ends_with("/Task/transfer-T1")),
        "{}",
        told[0]
    );
    k.finish().await;
}

#[tokio::test]
async fn sqlite_an_overdue_transfer_tells_both_services_leads() {
    an_overdue_transfer_tells_both_services_leads(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_an_overdue_transfer_tells_both_services_leads() {
    an_overdue_transfer_tells_both_services_leads(Backend::Postgres).await;
}

/// A booked pregnancy (G6) tells the health visitor of the mother's existing child, and, the
/// child having a child-protection plan, the midwifery safeguarding lead; a birth (G8) tells
/// the health visiting team, who must allocate a named health visitor.
async fn a_booking_and_a_birth_tell_health_visiting(backend: Backend) {
    let mut k = Kinfold::adapters(backend).await;
    let clock = ManualClock::at(at("2026-12-03T10:00:00Z"));
    k.start_gateway_with_clock(clock).await;
    k.gp_bundle(&json!({
        "resourceType": "Bundle", "type": "transaction", "identifier": {"value": "GP-NOTIFY-3"},
        "entry": [
            gp_patient("gp-son", SON, "Leo", "2022-01-15", "male"),
            mother_of("gp-son"),
            gp_patient("gp-mother", MOTHER, "Amira", "1994-05-02", "female"),
        ]
    }))
    .await;
    let allocation = json!({"record": "allocation", "row_id": "N-40", "child": child(SON, "Leo", "2022-01-15", "male"), "date": "2026-02-01", "health_visitor": {"name": "R. Shah"}});
    assert_eq!(
        k.import(Agency::HealthVisiting, &format!("{allocation}\n"))
            .await["stored"],
        1
    );
    let son = person_with(&k, SON).await;
    person_with(&k, MOTHER).await;
    let area_lead = k.token_as("area.lead", "Q99", "safeguarding-professional");
    let (status, flag) = post(&k, &area_lead, "/Flag", &json!({"resourceType": "Flag",
        "subject": {"reference": format!("Patient/{son}")},
        "code": {"coding": [{"system": "https://kinfold.example/fhir/CodeSystem/safeguarding-flag", "code": "child-protection-plan"}]}})).await;
    assert_eq!(status, 201, "{flag}");
    read_every_event(&k).await;
    let mother = json!({"nhs_number": MOTHER, "family": "Haddad", "given": ["Amira"], "birth_date": "1994-05-02", "sex": "female", "postcode": "NE4 5PL"});
    let booking = json!({"record": "booking", "row_id": "N-41", "mother": mother, "pregnancy_id": "P-9",
        "booking_date": "2026-04-01", "estimated_due_date": "2026-12-01"});
    assert_eq!(
        k.import(Agency::Midwifery, &format!("{booking}\n")).await["stored"],
        1
    );
    let shah = k.token_as("R. Shah", "RX1", "health-visitor");
    let booked = |tasks: &[Value]| -> Vec<Value> {
        tasks
            .iter()
            .filter(|t| rule(t) == "booked-pregnancy")
            .cloned()
            .collect()
    };
    let for_hv = booked(&inbox(&k, &shah, "", 1).await);
    assert_eq!(for_hv.len(), 1, "{for_hv:?}");
    assert_eq!(
        about(&for_hv[0]),
        format!("Patient/{son}"),
        "for the existing child"
    );
    assert_eq!(
        extension(&for_hv[0], "notification-requirement").map(|e| &e["valueCode"]),
        Some(&json!("G6"))
    );
    let midwifery_lead = k.token_as("mw.lead", "RXX01", "safeguarding-professional");
    let for_lead = booked(&inbox(&k, &midwifery_lead, "", 1).await);
    assert_eq!(
        for_lead.len(),
        1,
        "the child has a child-protection plan: {for_lead:?}"
    );

    let birth = json!({"record": "birth", "row_id": "N-42", "mother": mother, "pregnancy_id": "P-9",
        "baby": {"nhs_number": "9990002118", "family": "Haddad", "sex": "female"},
        "born_at": "2026-11-30T04:12:00+00:00", "birth_weight_g": 3320, "gestation_weeks": 39, "gestation_days": 5});
    assert_eq!(
        k.import(Agency::Midwifery, &format!("{birth}\n")).await["stored"],
        1
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let births = loop {
        let found: Vec<Value> = inbox(&k, &shah, "", 0)
            .await
            .into_iter()
            .filter(|t| rule(t) == "birth")
            .collect();
        if !found.is_empty() {
            break found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a birth notification"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    read_every_event(&k).await;
    let births_now: Vec<Value> = inbox(&k, &shah, "", 0)
        .await
        .into_iter()
        .filter(|t| rule(t) == "birth")
        .collect();
    assert_eq!(
        births_now.len(),
        1,
        "one, for the baby, not the mother: {births_now:?}"
    );
    let baby = person_with(&k, "9990002118").await;
    assert_eq!(about(&births[0]), format!("Patient/{baby}"));
    assert!(
        births[0]["owner"]["display"]
            .as_str()
            .is_some_and(|d| d.contains("health visiting team")),
        "{}",
        births[0]
    );
    k.finish().await;
}

#[tokio::test]
async fn sqlite_a_booking_and_a_birth_tell_health_visiting() {
    a_booking_and_a_birth_tell_health_visiting(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_booking_and_a_birth_tell_health_visiting() {
    a_booking_and_a_birth_tell_health_visiting(Backend::Postgres).await;
}

/// A referral's status change tells whoever made it (G15): sent tells nobody; accepted tells
/// the referring GP practice, named, and nobody else.
async fn a_referrals_status_change_tells_the_referrer(backend: Backend) {
    let mut k = Kinfold::adapters(backend).await;
    k.start_gateway_with_clock(ManualClock::at(at("2026-12-03T10:00:00Z")))
        .await;
    let referral = |row: &str, status: &str| {
        json!({"record": "referral", "row_id": row, "child": child(SON, "Leo", "2022-01-15", "male"),
            "referral_id": "R-1", "date": "2026-12-01", "to": "Community paediatrics", "status": status,
            "referred_by": {"name": "Dr Jones", "organisation": PRACTICE, "role": "gp"}})
    };
    assert_eq!(
        k.import(
            Agency::HealthVisiting,
            &format!("{}\n", referral("N-50", "sent"))
        )
        .await["stored"],
        1
    );
    let son = person_with(&k, SON).await;
    read_every_event(&k).await;
    let gp = k.token_as("dr.jones", PRACTICE, "gp");
    let referrals = |tasks: Vec<Value>| -> Vec<Value> {
        tasks
            .into_iter()
            .filter(|t| rule(t) == "referral-status")
            .collect()
    };
    assert!(
        referrals(inbox(&k, &gp, "", 0).await).is_empty(),
        "sent is no change"
    );
    assert_eq!(
        k.import(
            Agency::HealthVisiting,
            &format!("{}\n", referral("N-51", "accepted"))
        )
        .await["stored"],
        1
    );
    read_every_event(&k).await;
    let told = referrals(inbox(&k, &gp, "", 1).await);
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(about(&told[0]), format!("Patient/{son}"));
    assert!(
        told[0]["owner"]["display"]
            .as_str()
            .is_some_and(|d| d.contains("Dr Jones")),
        "{}",
        told[0]
    );
    assert_eq!(
        extension(&told[0], "notification-requirement").map(|e| &e["valueCode"]),
        Some(&json!("G15"))
    );
    let other = k.token_as("dr.other", "B82002", "gp");
    assert!(referrals(inbox(&k, &other, "", 0).await).is_empty());
    // A referrer in a role Kinfold does not know is refused at the feed, by line and field.
    let mut bad = referral("N-52", "completed");
    bad["referred_by"]["role"] = json!("consultant");
    let summary = k.import(Agency::HealthVisiting, &format!("{bad}\n")).await;
    assert_eq!(summary["stored"], 0, "{summary}");
    assert!(
        summary.to_string().contains("referred_by.role"),
        "{summary}"
    );
    k.finish().await;
}

#[tokio::test]
async fn sqlite_a_referrals_status_change_tells_the_referrer() {
    a_referrals_status_change_tells_the_referrer(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_referrals_status_change_tells_the_referrer() {
    a_referrals_status_change_tells_the_referrer(Backend::Postgres).await;
}

/// Strategy-meeting minutes not filed by every attendee by their deadline (G10) tell the chair,
/// as the meeting names them, and the area's safeguarding lead; a meeting whose minutes all
/// came in tells nobody.
async fn overdue_minutes_tell_the_chair_and_the_area(backend: Backend) {
    let mut k = Kinfold::adapters(backend).await;
    let clock = ManualClock::at(at("2026-12-03T10:00:00Z"));
    k.start_gateway_with_clock(clock.clone()).await;
    let meeting = |row: &str, id: &str, gp_filed: Value| {
        json!({"record": "strategy-meeting", "row_id": row, "child": child(SON, "Leo", "2022-01-15", "male"),
            "meeting_id": id, "date": "2026-12-01", "minutes_due": "2026-12-04",
            "chair": {"name": "J. Patel", "organisation": "Q99", "role": "social-worker"},
            "attendees": [
                {"name": "R. Shah", "organisation": "RX1", "minutes_filed": "2026-12-02"},
                {"name": "Dr Jones", "organisation": PRACTICE, "minutes_filed": gp_filed}]})
    };
    let rows = [
        meeting("N-60", "M1", Value::Null),
        meeting("N-61", "M2", Value::Null),
    ];
    let stored = k
        .import(
            Agency::HealthVisiting,
            &rows.iter().map(|r| format!("{r}\n")).collect::<String>(),
        )
        .await;
    assert_eq!(stored["stored"], 2, "{stored}");
    let son = person_with(&k, SON).await;
    read_every_event(&k).await;
    // The GP files M2's minutes in time.
    let filed = meeting("N-62", "M2", json!("2026-12-03"));
    assert_eq!(
        k.import(Agency::HealthVisiting, &format!("{filed}\n"))
            .await["stored"],
        1
    );
    read_every_event(&k).await;
    let chair = k.token_as("J. Patel", "Q99", "social-worker");
    let area_lead = k.token_as("area.lead", "Q99", "safeguarding-professional");
    let overdue = |tasks: Vec<Value>| -> Vec<Value> {
        tasks
            .into_iter()
            .filter(|t| rule(t) == "minutes-overdue")
            .collect()
    };
    clock.set(at("2026-12-04T20:00:00Z"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        overdue(inbox(&k, &chair, "", 0).await).is_empty(),
        "due by the end of the day"
    );
    clock.set(at("2026-12-05T00:01:00Z"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let told = loop {
        let told = overdue(inbox(&k, &chair, "", 0).await);
        if !told.is_empty() {
            break told;
        }
        assert!(tokio::time::Instant::now() < deadline, "the chair told");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        overdue(inbox(&k, &chair, "", 0).await).len(),
        1,
        "M1 only, once"
    );
    assert_eq!(about(&told[0]), format!("Patient/{son}"));
    assert!(
        told[0]["owner"]["display"]
            .as_str()
            .is_some_and(|d| d.contains("J. Patel")),
        "{}",
        told[0]
    );
    assert!(
        told[0]["focus"]["reference"]
            .as_str()
            .is_some_and(|r| r.ends_with("/Task/meeting-M1")),
        "{}",
        told[0]
    );
    assert_eq!(
        extension(&told[0], "notification-requirement").map(|e| &e["valueCode"]),
        Some(&json!("G10"))
    );
    assert_eq!(overdue(inbox(&k, &area_lead, "", 1).await).len(), 1);
    k.finish().await;
}

#[tokio::test]
async fn sqlite_overdue_minutes_tell_the_chair_and_the_area() {
    overdue_minutes_tell_the_chair_and_the_area(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_overdue_minutes_tell_the_chair_and_the_area() {
    overdue_minutes_tell_the_chair_and_the_area(Backend::Postgres).await;
}
