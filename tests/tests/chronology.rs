//! The chronology's pattern rules and safeguarding flags with oversight, end to end on SQLite
//! and PostgreSQL (issue 23; G2, G11, G13, G14, G17, G18, G20). Two children's records are
//! played through the agencies' native feeds only (health visiting and school nursing extracts,
//! A&E HL7 v2 over MLLP), and each rule is asked of `$chronology` as a professional would:
//!
//! * a baby of three months with a fracture at A&E: NICE CG89 twice (not independently
//!   mobile; a fracture under two), and a flag "cause of injury inconclusive" that its raiser
//!   cannot close, nor a social worker, but another senior safeguarding professional can, all
//!   in the oversight report;
//! * the same baby's weight falling across more than two centile spaces by nine months and
//!   recovered by twelve (NICE NG75, kept after recovery), a 6–8 week review without a weight
//!   (G2), and a police notification with children present that records nothing about her,
//!   only the adult victim's grade (G18);
//! * a school-age boy's two bruises recorded by school beside an A&E fracture (G13), three
//!   A&E attendances in a year, two appointments he was not brought to (G17), three school
//!   nursing contacts where he was not seen alone, one with an interpreter needed and not used
//!   (G14); a later contact where he was seen alone clears "not seen alone".

mod common;

use std::time::Duration;

use common::agencies::{Backend, Kinfold};
use kinfold_fhir::Agency;
use serde_json::{Value, json};

const AVA: &str = "9990002002";
const BEN: &str = "9990002010";

fn lines(rows: &[Value]) -> String {
    rows.iter().map(|r| format!("{r}\n")).collect()
}

fn ava() -> Value {
    json!({"nhs_number": AVA, "family": "Okafor", "given": ["Ava"], "birth_date": "2025-01-10", "sex": "female", "postcode": "LS7 3QT"})
}

fn ben() -> Value {
    json!({"nhs_number": BEN, "family": "Hartley", "given": ["Ben"], "birth_date": "2019-04-02", "sex": "male", "postcode": "LS9 8AX"})
}

/// An A&E ADT^A04 for a child, with these segments after `PV1`.
fn attendance(control: &str, pid: &str, visit: &str, arrived: &str, rest: &str) -> String {
    let pv1 =
        format!("PV1|1|E|AE^^^RXX||||||||||||||||{visit}|||||||||||||||||01||||||||{arrived}");
    format!(
        "MSH|^~\\&|EPR|RXX|KINFOLD|AE|{arrived}||ADT^A04^ADT_A01|{control}|P|2.4\rEVN|A04|{arrived}\r{pid}\r{pv1}{rest}"
    )
}

const FRACTURE: &str =
    "\rOBX|1|CWE|injury-type^Injury type^KINFOLD-INJ||125605004^Fracture of bone^SCT";

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

/// The chronology once it holds `entries` entries (the gateway files records as the adapters'
/// events arrive).
async fn chronology(k: &Kinfold, person: &str, entries: usize) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = k.get(&format!("/Patient/{person}/$chronology")).await;
        let held = body["entries"].as_array().map_or(0, Vec::len);
        if status == 200 && held >= entries {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{entries} entries: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// The findings of one rule: `(date, evidence count)`.
fn found(chronology: &Value, rule: &str) -> Vec<(String, usize)> {
    chronology["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["rule"] == rule)
        .map(|f| {
            (
                f["date"].as_str().unwrap_or_default().to_owned(),
                f["evidence"].as_array().map_or(0, Vec::len),
            )
        })
        .collect()
}

async fn post(k: &Kinfold, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let response = k
        .http
        .post(format!("{}{path}", k.gateway_url))
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .body(body.to_string())
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn the_patterns_across_agencies_are_found_and_flags_need_oversight(backend: Backend) {
    let mut k = Kinfold::adapters(backend).await;
    k.start_gateway().await;

    // Ava, through health visiting: her weights (3.3 kg at birth, 6.2 kg at four months, 6.6 kg at nine months, 9.0
    // kg at a year), a 6–8 week review with no weight, and a police notification with
    // children present that says nothing about her but the adult victim's grade.
    let rows = [
        json!({"record": "allocation", "row_id": "AV-01", "child": ava(), "date": "2025-01-20", "health_visitor": {"name": "R. Shah"}}),
        json!({"record": "growth", "row_id": "AV-02", "child": ava(), "date": "2025-01-10", "weight_kg": 3.3}),
        json!({"record": "contact", "row_id": "AV-03", "child": ava(), "date": "2025-03-01", "contact_type": "6-8-week-review", "child_seen": true}),
        json!({"record": "growth", "row_id": "AV-03b", "child": ava(), "date": "2025-05-20", "weight_kg": 6.2}),
        json!({"record": "da-notification", "row_id": "AV-04", "child": ava(), "incident_date": "2025-06-01", "received_date": "2025-06-03",
            "from": "Police", "children_present": true, "adult_victim_risk_grade": "standard"}),
        json!({"record": "growth", "row_id": "AV-05", "child": ava(), "date": "2025-10-10", "weight_kg": 6.6}),
        json!({"record": "growth", "row_id": "AV-06", "child": ava(), "date": "2026-01-12", "weight_kg": 9.0}),
    ];
    let summary = k.import(Agency::HealthVisiting, &lines(&rows)).await;
    assert_eq!(summary["stored"], rows.len(), "{summary}");
    // Her fracture at A&E at three months.
    let ava_pid =
        format!("PID|1||{AVA}^^^NHS^NH||Okafor^Ava||20250110|F|||12 Elm Row^^Leeds^^LS7 3QT^GBR");
    k.send_hl7(&attendance(
        "CH-AE-1",
        &ava_pid,
        "V-AVA-1",
        "20250501031000+0100",
        FRACTURE,
    ))
    .await;

    // Ben, through school nursing: two bruises recorded at school, two appointments he was
    // not brought to, three contacts where he was not seen alone (the last with Polish
    // spoken and no interpreter).
    let concern = |row: &str, day: &str, what: &str| {
        json!({"record": "welfare-concern", "row_id": row, "child": ben(), "date": day,
            "reported_by": {"name": "E. Clarke", "role": "class teacher"}, "description": what,
            "body_site": "upper arm", "explanation_given": "Says he fell"})
    };
    let not_brought = |row: &str, day: &str| {
        json!({"record": "was-not-brought", "row_id": row, "child": ben(), "appointment_date": day,
            "service": "School nursing review", "reason": "No reply from parent"})
    };
    let contact = |row: &str, day: &str, extra: Value| {
        let mut row = json!({"record": "contact", "row_id": row, "child": ben(), "date": day,
            "contact_type": "drop-in", "child_seen": true, "seen_alone": false});
        if let (Some(row), Value::Object(extra)) = (row.as_object_mut(), extra) {
            row.extend(extra);
        }
        row
    };
    let rows = [
        concern("BN-01", "2026-01-10", "Bruising to the upper arm"),
        not_brought("BN-02", "2026-02-01"),
        concern("BN-03", "2026-02-20", "Bruises on both forearms"),
        contact("BN-04", "2026-03-02", json!({})),
        contact("BN-05", "2026-04-20", json!({})),
        not_brought("BN-06", "2026-04-15"),
        contact(
            "BN-07",
            "2026-05-11",
            json!({"language": "Polish", "interpreter_used": false}),
        ),
    ];
    let summary = k.import(Agency::SchoolNursing, &lines(&rows)).await;
    assert_eq!(summary["stored"], rows.len(), "{summary}");
    // His fracture at A&E, and two more attendances within the year.
    let ben_pid =
        format!("PID|1||{BEN}^^^NHS^NH||Hartley^Ben||20190402|M|||4 Mill Lane^^Leeds^^LS9 8AX^GBR");
    for (control, visit, arrived, rest) in [
        ("CH-AE-2", "V-BEN-1", "20260315163000+0000", FRACTURE),
        (
            "CH-AE-3",
            "V-BEN-2",
            "20260401110000+0100",
            "\rPV2|||WHZ^Wheeze^LOCAL",
        ),
        (
            "CH-AE-4",
            "V-BEN-3",
            "20260601193000+0100",
            "\rPV2|||ABD^Abdominal pain^LOCAL",
        ),
    ] {
        k.send_hl7(&attendance(control, &ben_pid, visit, arrived, rest))
            .await;
    }

    let ava_id = person_with(&k, AVA).await;
    let ben_id = person_with(&k, BEN).await;

    // Ava: 7 health visiting records that are entries (allocation, 4 weights, the review, the
    // notification) and the attendance.
    let told = chronology(&k, &ava_id, 8).await;
    assert_eq!(
        found(&told, "injury-not-independently-mobile"),
        [("2025-05-01".to_owned(), 1)],
        "NICE CG89, a baby of three months: {told}"
    );
    assert_eq!(
        found(&told, "fracture-under-2"),
        [("2025-05-01".to_owned(), 1)],
        "{told}"
    );
    let (_, growth) = k.get(&format!("/Patient/{ava_id}/$growth")).await;
    assert_eq!(
        found(&told, "ng75-fall-across-centiles")
            .iter()
            .map(|(d, _)| d.as_str())
            .collect::<Vec<_>>(),
        ["2025-10-10"],
        "the fall, dated by the nine-month weight and kept after she recovered: {growth}"
    );
    assert_eq!(
        found(&told, "review-without-weight"),
        [("2025-03-01".to_owned(), 1)],
        "G2: {told}"
    );
    assert_eq!(
        found(&told, "child-risk-not-assessed"),
        [("2025-06-03".to_owned(), 1)],
        "G18: {told}"
    );
    let notification = told["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| {
            e["events"]
                .to_string()
                .contains("domestic-abuse-notification")
        })
        .unwrap_or_else(|| panic!("the notification: {told}"));
    let words = notification["summary"].as_str().unwrap_or_default();
    assert!(
        words.contains("children present; child seen: not recorded")
            && words
                .contains("adult victim's risk grade standard (about the adult, not the child)"),
        "{words}"
    );
    assert!(
        found(&told, "injuries-across-agencies").is_empty()
            && found(&told, "child-not-seen-alone").is_empty(),
        "{told}"
    );

    // Ben.
    let told = chronology(&k, &ben_id, 10).await;
    let run = found(&told, "injuries-across-agencies");
    assert_eq!(
        run,
        [("2026-03-15".to_owned(), 3)],
        "G13: two bruises at school and the A&E fracture: {told}"
    );
    assert_eq!(
        found(&told, "repeated-ae-attendances"),
        [("2026-06-01".to_owned(), 3)],
        "{told}"
    );
    assert_eq!(
        found(&told, "repeated-was-not-brought"),
        [("2026-04-15".to_owned(), 2)],
        "G17: {told}"
    );
    assert_eq!(
        found(&told, "child-not-seen-alone"),
        [("2026-05-11".to_owned(), 3)],
        "G14: {told}"
    );
    assert_eq!(
        found(&told, "interpreter-not-used"),
        [("2026-05-11".to_owned(), 1)],
        "G14: {told}"
    );
    assert!(
        found(&told, "fracture-under-2").is_empty()
            && found(&told, "injury-not-independently-mobile").is_empty(),
        "a seven-year-old's fracture is not CG89's: {told}"
    );
    // Seen alone at the next contact: "not seen alone" is about the last three contacts.
    let seen_alone = json!({"record": "contact", "row_id": "BN-08", "child": ben(), "date": "2026-06-08",
        "contact_type": "drop-in", "child_seen": true, "seen_alone": true});
    assert_eq!(
        k.import(Agency::SchoolNursing, &lines(&[seen_alone])).await["stored"],
        1
    );
    let told = chronology(&k, &ben_id, 11).await;
    assert!(
        found(&told, "child-not-seen-alone").is_empty(),
        "seen alone at the latest contact: {told}"
    );

    // Flags with oversight. The area's named nurse raises "cause of injury inconclusive" on
    // Ava's fracture.
    let raiser = k.token_as("named-nurse-1", "Q99", "safeguarding-professional");
    let social_worker = k.token_as("sw-4", "Q99", "social-worker");
    let designated = k.token_as("designated-nurse-2", "Q99", "safeguarding-professional");
    let flag = json!({"resourceType": "Flag", "subject": {"reference": format!("Patient/{ava_id}")},
        "code": {"coding": [{"system": "https://kinfold.example/fhir/CodeSystem/safeguarding-flag", "code": "cause-of-injury-inconclusive"}],
                 "text": "Fracture at 3 months; mechanism not explained"}});
    let (status, raised) = post(&k, &raiser, "/Flag", &flag).await;
    assert_eq!(status, 201, "{raised}");
    assert_eq!(raised["status"], "active");
    let flag_id = raised["id"].as_str().expect("id").to_owned();
    let (status, again) = post(&k, &designated, "/Flag", &flag).await;
    assert_eq!(status, 422, "one flag of each kind at a time: {again}");
    assert!(again.to_string().contains(&flag_id), "{again}");
    // No relationship, no flag: answered as an unknown person.
    let unrelated_gp = k.token_as("gp-far", "B99999", "gp");
    let (status, _) = post(&k, &unrelated_gp, "/Flag", &flag).await;
    assert_eq!(status, 404);

    let resolve = format!("/Flag/{flag_id}/$resolve");
    let reason =
        json!({"reason": "Strategy meeting agreed an accidental cause; skeletal survey clear"});
    let (status, refused) = post(&k, &raiser, &resolve, &reason).await;
    assert_eq!(status, 403, "the raiser may not close it: {refused}");
    assert!(
        refused.to_string().contains("flag.raiser-may-not-resolve"),
        "{refused}"
    );
    let (status, refused) = post(&k, &social_worker, &resolve, &reason).await;
    assert_eq!(status, 403, "{refused}");
    assert!(
        refused.to_string().contains("flag.oversight-required"),
        "{refused}"
    );
    let (status, _) = post(&k, &unrelated_gp, &resolve, &reason).await;
    assert_eq!(
        status, 404,
        "no relationship: as a flag that does not exist"
    );
    let (status, refused) = post(&k, &designated, &resolve, &json!({"reason": "ok"})).await;
    assert_eq!(status, 422, "a reason is needed: {refused}");
    // Still active, in the chronology (printed page too) and the flag list.
    let told = chronology(&k, &ava_id, 8).await;
    assert_eq!(told["flags"][0]["flag"]["status"], "active", "{told}");
    let (status, page) = {
        let response = k
            .http
            .get(format!(
                "{}/Patient/{ava_id}/$chronology?_format=html",
                k.gateway_url
            ))
            .bearer_auth(&k.token)
            .send()
            .await
            .expect("page");
        (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        )
    };
    assert_eq!(status, 200);
    assert!(
        page.contains("Safeguarding flags (1 active)")
            && page.contains("Cause of injury inconclusive"),
        "the printed chronology shows the flag"
    );
    let (status, done) = post(&k, &designated, &resolve, &reason).await;
    assert_eq!(
        status, 200,
        "another senior professional resolves it: {done}"
    );
    assert_eq!(done["status"], "inactive");
    assert!(done["period"]["end"].is_string(), "{done}");
    let (status, again) = post(&k, &designated, &resolve, &reason).await;
    assert_eq!(status, 422, "{again}");
    let (status, list) = k.get(&format!("/Flag?patient={ava_id}")).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total"], 1);
    assert_eq!(list["entry"][0]["resource"]["status"], "inactive");

    // The oversight report: raised, resolved, by whom, and both refused attempts.
    let (status, report) = k.get("/Flag/$oversight-report").await;
    assert_eq!(status, 200, "{report}");
    let r = &report["report"];
    assert_eq!(
        (
            r["raised"].as_u64(),
            r["resolved"].as_u64(),
            r["refusedAttempts"].as_u64(),
            r["refusedByRaiser"].as_u64(),
            r["resolvedWithOversight"].as_u64()
        ),
        (Some(1), Some(1), Some(2), Some(1), Some(1)),
        "{report}"
    );
    assert_eq!(report["complete"], true);
    let by: Vec<(&str, &str)> = r["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["action"].as_str().unwrap_or_default(),
                a["by"]["subject"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        by,
        [
            ("raised", "named-nurse-1"),
            ("refused", "named-nurse-1"),
            ("refused", "sw-4"),
            ("resolved", "designated-nurse-2")
        ],
        "{report}"
    );
    // Not a report for everyone: a GP is refused by role; another organisation's privacy
    // officer sees none of these people.
    let (status, _) = k.get_as(&unrelated_gp, "/Flag/$oversight-report").await;
    assert_eq!(status, 403);
    let far_officer = k.token_as("po-far", "B88888", "privacy-officer");
    let (status, far) = k.get_as(&far_officer, "/Flag/$oversight-report").await;
    assert_eq!(status, 200, "{far}");
    assert_eq!(far["shown"], 0, "{far}");
    // The refused attempts are in the ledger, in Ava's audit trail.
    let officer = k.token_as("po-area", "Q99", "privacy-officer");
    let (status, trail) = k
        .get_as(
            &officer,
            &format!("/AuditEvent?patient={ava_id}&_count=200"),
        )
        .await;
    assert_eq!(status, 200);
    let trail = trail.to_string();
    assert!(
        trail.contains("flag.raiser-may-not-resolve") && trail.contains("flag.oversight-required"),
        "both refusals recorded: {trail}"
    );

    // The flag lives on the person: her health visiting record passing to school nursing
    // (a record transfer) leaves it where it is, and a new flag raised then is still hers.
    let transfer = json!({"record": "transfer", "row_id": "AV-07", "child": ava(), "transfer_id": "T-AVA", "status": "completed", "date": "2026-02-01", "to": "school-nursing"});
    assert_eq!(
        k.import(Agency::HealthVisiting, &lines(&[transfer])).await["stored"],
        1
    );
    let plan = json!({"resourceType": "Flag", "subject": {"reference": format!("Patient/{ava_id}")},
        "code": {"coding": [{"system": "https://kinfold.example/fhir/CodeSystem/safeguarding-flag", "code": "child-protection-plan"}]}});
    let (status, _) = post(&k, &designated, "/Flag", &plan).await;
    assert_eq!(status, 201);
    let (_, list) = k.get(&format!("/Flag?patient={ava_id}")).await;
    assert_eq!(list["total"], 2, "{list}");

    k.finish().await;
}

#[tokio::test]
async fn sqlite_the_patterns_across_agencies_are_found_and_flags_need_oversight() {
    the_patterns_across_agencies_are_found_and_flags_need_oversight(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_the_patterns_across_agencies_are_found_and_flags_need_oversight() {
    the_patterns_across_agencies_are_found_and_flags_need_oversight(Backend::Postgres).await;
}
