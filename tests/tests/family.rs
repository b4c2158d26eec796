//! The family as the records tell it, end to end on SQLite and PostgreSQL (issue 26; G1, G5,
//! G6, G9). Four years of one family are played through the agencies' native feeds only
//! (health visiting, midwifery and school nursing extracts, A&E HL7 v2 over MLLP, a GP
//! Bundle), beside a control family of the same size with ordinary contacts:
//!
//! * the older children are siblings through the mother health visiting records for each;
//! * the booked pregnancy is an unborn sibling in each existing child's family from booking,
//!   and the baby's sibling after the birth;
//! * the new baby's pool health visitor sees, in the family view, the older brother's
//!   fracture, every domestic-abuse notification about the household and the mother's
//!   overdose attendance with its diagnosis and safeguarding answers, and not the mother's
//!   unrelated GP consultation;
//! * the mother's partner, named in four notifications with and without a date of birth and
//!   with and without the diacritics of his name, and seen once at A&E, is one person;
//! * the control family's family lists its siblings, and nothing in it is a safeguarding
//!   item.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::agencies::{Backend, Kinfold};
use kinfold_fhir::Agency;
use serde_json::{Value, json};

const MOTHER: &str = "9990001006";
const KAI: &str = "9990001014";
const LILY: &str = "9990001022";
const BABY: &str = "9990001030";
const CONTROL_MOTHER: &str = "9990001049";
const SAM: &str = "9990001057";
const ADA: &str = "9990001065";

/// A person as an extract row names them.
fn person(nhs: &str, name: &str, born: &str, sex: &str, postcode: &str) -> Value {
    let (given, family) = name.split_once(' ').expect("given and family");
    json!({"nhs_number": nhs, "family": family, "given": [given], "birth_date": born, "sex": sex, "postcode": postcode})
}

fn mother() -> Value {
    person(MOTHER, "Hana Mercer", "1995-04-12", "female", "LS6 2AB")
}
fn kai() -> Value {
    person(KAI, "Kai Mercer", "2021-03-10", "male", "LS6 2AB")
}
fn lily() -> Value {
    person(LILY, "Lily Mercer", "2023-06-01", "female", "LS6 2AB")
}

/// Rows as JSON Lines.
fn lines(rows: &[Value]) -> String {
    rows.iter().map(|r| format!("{r}\n")).collect()
}

fn carers(row_id: &str, child: Value, mother: Value) -> Value {
    json!({"record": "carers", "row_id": row_id, "child": child,
        "carers": [{"person": mother, "relationship": "mother", "parental_responsibility": true}]})
}

fn notification(row_id: &str, child: Value, day: &str, adult: Value) -> Value {
    json!({"record": "da-notification", "row_id": row_id, "child": child,
        "incident_date": day, "received_date": day, "from": "Police",
        "children_present": true, "adults_named": [adult]})
}

/// An A&E ADT^A04 with these segments after `PV1`.
fn attendance(control: &str, pid: &str, visit: &str, arrived: &str, rest: &str) -> String {
    let pv1 =
        format!("PV1|1|E|AE^^^RXX||||||||||||||||{visit}|||||||||||||||||01||||||||{arrived}");
    format!(
        "MSH|^~\\&|EPR|RXX|KINFOLD|AE|{arrived}||ADT^A04^ADT_A01|{control}|P|2.4\rEVN|A04|{arrived}\r{pid}\r{pv1}{rest}"
    )
}

async fn until(
    k: &Kinfold,
    token: &str,
    what: &str,
    path: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = k.get_as(token, path).await;
        if status == 200 && ready(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn person_with(k: &Kinfold, nhs: &str) -> String {
    let body = until(
        k,
        &k.token,
        "a person with this NHS number",
        &format!("/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}"),
        |b| b["entry"][0]["resource"]["id"].is_string(),
    )
    .await;
    body["entry"][0]["resource"]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// `(person, relationship code)` of each member of a `$family` Group.
fn members(group: &Value) -> Vec<(String, String)> {
    group["member"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["entity"]["reference"]
                    .as_str()
                    .unwrap_or_default()
                    .trim_start_matches("Patient/")
                    .to_owned(),
                m["extension"][0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

fn kin_of<'a>(family: &'a [(String, String)], person: &str) -> Vec<&'a str> {
    family
        .iter()
        .filter(|(p, _)| p == person)
        .map(|(_, code)| code.as_str())
        .collect()
}

fn tags(resource: &Value) -> Vec<&str> {
    resource["meta"]["tag"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["code"].as_str())
        .collect()
}

/// Whose an entry of a family answer is (`Patient/{person}`).
fn whose(entry: &Value) -> &str {
    entry["extension"][0]["extension"][0]["valueReference"]["reference"]
        .as_str()
        .unwrap_or_default()
}

fn entries(bundle: &Value) -> Vec<&Value> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["resource"]["resourceType"] != "OperationOutcome")
        .collect()
}

/// What the tags of a safeguarding item start with (docs/consent.md's categories).
const SAFEGUARDING_TAGS: [&str; 7] = [
    "ed-risk-",
    "domestic-abuse-notification",
    "named-in-domestic-abuse-notification",
    "antenatal-concern",
    "injury",
    "welfare-concern",
    "child-protection",
];

async fn a_familys_four_years_through_the_native_feeds(backend: Backend) {
    let mut k = Kinfold::adapters(backend).await;
    k.start_gateway().await;

    // 2022–2026, health visiting: each older child's mother, their allocations and contacts,
    // and four police notifications naming the mother's partner four ways.
    let partner = |name: &str, born: Option<&str>, relationship: &str| {
        let mut adult = json!({"name": name, "relationship": relationship});
        if let Some(born) = born {
            adult["birth_date"] = json!(born);
        }
        adult
    };
    let rows = [
        carers("HVS-01", kai(), mother()),
        json!({"record": "allocation", "row_id": "HVS-02", "child": kai(), "date": "2022-01-10", "health_visitor": {"name": "J. Price"}}),
        json!({"record": "contact", "row_id": "HVS-03", "child": kai(), "date": "2023-03-14", "contact_type": "2-year-review", "child_seen": true, "seen_alone": false,
            "concern": "Mother reports he is not eating."}),
        carers("HVS-04", lily(), mother()),
        json!({"record": "allocation", "row_id": "HVS-05", "child": lily(), "date": "2023-06-20", "health_visitor": {"name": "J. Price"}}),
        notification(
            "HVS-06",
            kai(),
            "2024-02-03",
            partner("Tomáš Dvořák", Some("1990-02-11"), "mother's partner"),
        ),
        notification(
            "HVS-07",
            lily(),
            "2024-09-20",
            partner("Tomas Dvorak", Some("1990-02-11"), "mother's partner"),
        ),
        notification(
            "HVS-08",
            kai(),
            "2025-05-01",
            partner("Tomáš Dvořák", None, "mother's partner"),
        ),
        notification(
            "HVS-09",
            lily(),
            "2026-01-14",
            partner("Tomas Dvorak", None, "partner of mother"),
        ),
    ];
    let summary = k.import(Agency::HealthVisiting, &lines(&rows)).await;
    assert_eq!(summary["stored"], rows.len(), "{summary}");

    // 2025, A&E: the older brother's fracture (the mother named in NK1), and the partner's own
    // attendance after an assault, without an NHS number.
    let kai_pid =
        format!("PID|1||{KAI}^^^NHS^NH||Mercer^Kai||20210310|M|||7 Ash Grove^^Leeds^^LS6 2AB^GBR");
    k.send_hl7(&attendance(
        "FAM-AE-1",
        &kai_pid,
        "V-KAI-1",
        "20250815101500+0100",
        "\rACC|20250815093000+0100|FALL^Fall^LOCAL||||||Fell from a climbing frame, per mother\rOBX|1|CWE|injury-type^Injury type^KINFOLD-INJ||125605004^Fracture of bone^SCT\rOBX|2|CWE|body-site^Body site^KINFOLD-INJ||71341001^Femur^SCT\rNK1|1|Mercer^Hana|MTH^Mother^HL70063",
    ))
    .await;
    k.send_hl7(&attendance(
        "FAM-AE-2",
        "PID|1||M55501^^^RXX^MR||Dvořák^Tomáš||19900211|M|||7 Ash Grove^^Leeds^^LS6 2AB^GBR",
        "V-TD-1",
        "20251102230000+0000",
        "\rPV2|||AS^Assault^LOCAL",
    ))
    .await;

    // 2026, GP: Lily's registration, her mother named only in words ("Mrs H Mercer") and
    // linked to the mother's own record by `Patient.link`; the mother's unrelated consultation.
    k.gp_bundle(&json!({
        "resourceType": "Bundle", "type": "transaction", "identifier": {"value": "FAM-GP-1"},
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "gp-lily", "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": LILY}],
                "name": [{"family": "Mercer", "given": ["Lily"]}], "birthDate": "2023-06-01", "gender": "female"},
             "request": {"method": "PUT", "url": "Patient/gp-lily"}},
            {"resource": {"resourceType": "RelatedPerson", "id": "gp-lily-mother", "patient": {"reference": "Patient/gp-lily"},
                "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH"}]}],
                "name": [{"text": "Mrs H Mercer"}]},
             "request": {"method": "PUT", "url": "RelatedPerson/gp-lily-mother"}},
            {"resource": {"resourceType": "Patient", "id": "gp-hana", "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": MOTHER}],
                "name": [{"family": "Mercer", "given": ["Hana"]}], "birthDate": "1995-04-12", "gender": "female",
                "link": [{"other": {"reference": "RelatedPerson/gp-lily-mother"}, "type": "seealso"}]},
             "request": {"method": "PUT", "url": "Patient/gp-hana"}},
            {"resource": {"resourceType": "Encounter", "id": "gp-hana-consult", "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                "subject": {"reference": "Patient/gp-hana"}, "period": {"start": "2026-02-10T10:00:00Z"}},
             "request": {"method": "PUT", "url": "Encounter/gp-hana-consult"}}
        ]
    }))
    .await;

    // March 2026, midwifery: the pregnancy is booked.
    let booking = json!({"record": "booking", "row_id": "MWS-01", "mother": mother(), "pregnancy_id": "PS-1",
        "booking_date": "2026-03-20", "estimated_due_date": "2026-10-25"});
    assert_eq!(
        k.import(Agency::Midwifery, &lines(&[booking])).await["stored"],
        1
    );

    let kai_id = person_with(&k, KAI).await;
    let lily_id = person_with(&k, LILY).await;
    let mother_id = person_with(&k, MOTHER).await;
    // From booking, the unborn child is in each existing child's family, and the two older
    // children are siblings through the mother health visiting recorded.
    let has_unborn = |g: &Value| members(g).iter().any(|(_, code)| code == "unborn-sibling");
    let kai_family = until(
        &k,
        &k.token,
        "Kai's unborn sibling",
        &format!("/Patient/{kai_id}/$family"),
        has_unborn,
    )
    .await;
    let lily_family = until(
        &k,
        &k.token,
        "Lily's unborn sibling",
        &format!("/Patient/{lily_id}/$family"),
        has_unborn,
    )
    .await;
    let kai_members = members(&kai_family);
    assert_eq!(kin_of(&kai_members, &mother_id), ["MTH"], "{kai_family}");
    assert_eq!(kin_of(&kai_members, &lily_id), ["SIB"], "{kai_family}");
    assert_eq!(
        kin_of(&members(&lily_family), &kai_id),
        ["SIB"],
        "{lily_family}"
    );
    let lily_members = members(&lily_family);
    assert_eq!(
        lily_members
            .iter()
            .filter(|(_, code)| code == "MTH")
            .count(),
        1,
        "the GP's RelatedPerson is the mother's own record (Patient.link): {lily_family}"
    );
    assert!(
        lily_family
            .to_string()
            .contains("gp/RelatedPerson/gp-lily-mother"),
        "the GP's relation is one of the sources: {lily_family}"
    );
    let unborn: Vec<&String> = kai_members
        .iter()
        .filter(|(_, code)| code == "unborn-sibling")
        .map(|(p, _)| p)
        .collect();
    assert_eq!(unborn.len(), 1, "{kai_family}");
    assert_eq!(
        kin_of(&members(&lily_family), unborn[0]),
        ["unborn-sibling"],
        "one unborn child, in both children's families"
    );

    // The partner: named four ways and seen once at A&E, he is one person.
    let named: Vec<&String> = kai_members
        .iter()
        .filter(|(_, code)| code == "named-adult")
        .map(|(p, _)| p)
        .collect();
    assert_eq!(named.len(), 1, "one partner, not several: {kai_family}");
    let partner_id = named[0].clone();
    assert_eq!(
        members(&lily_family)
            .iter()
            .filter(|(_, code)| code == "named-adult")
            .map(|(p, _)| p)
            .collect::<Vec<_>>(),
        [&partner_id]
    );
    let (status, partner_person) = k.get(&format!("/Person/{partner_id}")).await;
    assert_eq!(status, 200, "{partner_person}");
    let linked = partner_person["link"].as_array().map_or(0, Vec::len);
    assert_eq!(
        linked, 5,
        "four notifications and the A&E record: {partner_person}"
    );
    let (_, reviews) = k.get_as(&k.steward_token(), "/identity/reviews").await;
    assert!(
        !reviews.to_string().contains(&partner_id),
        "nothing about him left for review: {reviews}"
    );

    // May 2026, A&E: the mother's attendance for an overdose, with the ED safeguarding
    // assessment.
    let mother_pid = format!(
        "PID|1||{MOTHER}^^^NHS^NH||Mercer^Hana||19950412|F|||7 Ash Grove^^Leeds^^LS6 2AB^GBR"
    );
    k.send_hl7(&attendance(
        "FAM-AE-3",
        &mother_pid,
        "V-HM-1",
        "20260502021500+0100",
        "\rPV2|||OD^Overdose of paracetamol^LOCAL\rDG1|1||55680006^Drug overdose^SCT\rOBX|1|NM|children-in-household^Children in the household^KINFOLD-SG||2\rOBX|2|CE|safeguarding-referral^Safeguarding referral made^KINFOLD-SG||N",
    ))
    .await;

    // October 2026: the birth, the baby allocated to the central pool, the new-birth visit.
    let birth = json!({"record": "birth", "row_id": "MWS-02", "mother": mother(), "pregnancy_id": "PS-1",
        "baby": {"nhs_number": BABY, "family": "Mercer", "sex": "male"}, "born_at": "2026-10-18T04:12:00+01:00"});
    assert_eq!(
        k.import(Agency::Midwifery, &lines(&[birth])).await["stored"],
        1
    );
    // Health visiting's record of the baby before naming: no given name yet.
    let baby = json!({"nhs_number": BABY, "family": "Mercer", "birth_date": "2026-10-18", "sex": "male", "postcode": "LS6 2AB"});
    let rows = [
        json!({"record": "allocation", "row_id": "HVS-10", "child": baby, "date": "2026-10-20", "pool": "Central pool (north)"}),
        json!({"record": "contact", "row_id": "HVS-11", "child": baby, "date": "2026-10-28", "contact_type": "new-birth-visit", "child_seen": true}),
    ];
    assert_eq!(
        k.import(Agency::HealthVisiting, &lines(&rows)).await["stored"],
        2
    );
    let baby_id = person_with(&k, BABY).await;
    let (status, was_unborn) = k.get(&format!("/Person/{}", unborn[0])).await;
    assert_eq!(status, 200, "{was_unborn}");
    assert_eq!(
        was_unborn["id"], baby_id,
        "the unborn child became the baby: its id names the baby"
    );

    // The new baby's pool health visitor, in the family view.
    let pool = k.token_as("hv-pool-7", "RX1", "health-visitor");
    let view = until(
        &k,
        &pool,
        "the baby's family view",
        &format!("/Patient/{baby_id}/$everything?family=true"),
        |b| b.to_string().contains("55680006"),
    )
    .await;
    let seen = entries(&view);
    let fracture: Vec<&&Value> = seen
        .iter()
        .filter(|e| {
            whose(e) == format!("Patient/{kai_id}") && tags(&e["resource"]).contains(&"injury")
        })
        .collect();
    assert_eq!(fracture.len(), 1, "the older brother's fracture: {view}");
    let notifications = seen
        .iter()
        .filter(|e| {
            e["resource"]["resourceType"] == "Communication"
                && tags(&e["resource"]).contains(&"domestic-abuse-notification")
        })
        .count();
    assert_eq!(notifications, 4, "every notification about the household");
    let mothers = |resource_type: &str| -> Vec<&Value> {
        seen.iter()
            .filter(|e| {
                whose(e) == format!("Patient/{mother_id}")
                    && e["resource"]["resourceType"] == resource_type
            })
            .map(|e| &e["resource"])
            .collect()
    };
    let diagnosis = mothers("Condition");
    assert!(
        diagnosis
            .iter()
            .any(|c| c["code"]["coding"][0]["code"] == "55680006"),
        "the mother's overdose diagnosis: {view}"
    );
    assert!(
        mothers("Observation")
            .iter()
            .any(|o| o["code"]["coding"][0]["code"] == "children-in-household"),
        "the ED safeguarding answers: {view}"
    );
    assert!(
        !view.to_string().contains("gp-hana-consult"),
        "the mother's unrelated consultation is withheld"
    );
    let withheld = view["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["resource"]["issue"][0]["diagnostics"]
                .as_str()
                .is_some_and(|d| d.contains("family.not-safeguarding-relevant"))
        })
        .count();
    assert!(withheld >= 1, "and counted as withheld: {view}");

    // The same health visitor's family chronology (issue 23): one time-ordered list from
    // every agency and family member, the older brother's fracture in it, the mother's
    // unrelated consultation not, and counted.
    let (status, chronology) = k
        .get_as(
            &pool,
            &format!("/Patient/{baby_id}/$chronology?family=true"),
        )
        .await;
    assert_eq!(status, 200, "{chronology}");
    let told = chronology["entries"].as_array().expect("entries");
    let days: Vec<&str> = told
        .iter()
        .filter_map(|e| e["when"]["text"].as_str())
        .map(|t| t.get(..10).unwrap_or(t))
        .collect();
    assert_eq!(days.len(), told.len(), "every entry is dated: {chronology}");
    assert!(
        days.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {days:?}"
    );
    let agencies: BTreeSet<&str> = told.iter().filter_map(|e| e["agency"].as_str()).collect();
    assert!(agencies.len() >= 3, "every agency's records: {agencies:?}");
    let fracture = told
        .iter()
        .find(|e| {
            e["person"] == kai_id.as_str()
                && e["events"]
                    .as_array()
                    .is_some_and(|codes| codes.iter().any(|c| c == "injury"))
        })
        .unwrap_or_else(|| panic!("the older brother's fracture: {chronology}"));
    assert_eq!(fracture["relationship"], "sibling", "{fracture}");
    assert_eq!(fracture["significance"], "safeguarding", "{fracture}");
    assert!(
        fracture["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("A&E: ") && s.contains("(sibling)")),
        "{fracture}"
    );
    assert!(
        !chronology.to_string().contains("gp-hana-consult"),
        "the mother's unrelated consultation is not in it"
    );
    let withheld_rules: Vec<&str> = chronology["withheld"]["byRule"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w["rule"].as_str())
        .collect();
    assert!(
        chronology["withheld"]["count"].as_u64().unwrap_or(0) >= 1
            && withheld_rules.contains(&"family.not-safeguarding-relevant"),
        "and counted as withheld: {chronology}"
    );
    // The family chronology is in each family member's access record, not only the baby's:
    // the mother's audit trail shows the pool health visitor's chronology.
    let officer = k.token_as("po-area", "Q99", "privacy-officer");
    let (status, trail) = k
        .get_as(
            &officer,
            &format!("/AuditEvent?patient={mother_id}&_count=100"),
        )
        .await;
    assert_eq!(status, 200, "{trail}");
    assert!(
        trail
            .to_string()
            .contains("Patient/$chronology?family=true"),
        "the mother's access record names the family chronology: {trail}"
    );
    // Asked for safeguarding entries only, from A&E: the fracture and the mother's
    // attendance, nothing routine.
    let (status, serious) = k
        .get_as(
            &pool,
            &format!(
                "/Patient/{baby_id}/$chronology?family=true&agency=ae&significance=safeguarding"
            ),
        )
        .await;
    assert_eq!(status, 200, "{serious}");
    let serious = serious["entries"].as_array().expect("entries");
    assert!(!serious.is_empty());
    assert!(
        serious
            .iter()
            .all(|e| e["agency"] == "ae" && e["significance"] == "safeguarding"),
        "{serious:?}"
    );
    // The exports: CSV (a row per entry, and a last row saying what was withheld), a FHIR
    // Bundle (a List of the entries in order, their records, the outcome), and nothing else.
    let path = format!("/Patient/{baby_id}/$chronology?family=true");
    let csv = k
        .http
        .get(format!("{}{path}&_format=csv", k.gateway_url))
        .bearer_auth(&pool)
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/csv")),
        "{:?}",
        csv.headers()
    );
    let csv = csv.text().await.expect("text");
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("when,precision,agency,person,relationship,significance,summary"));
    assert_eq!(rows.len(), told.len() + 2, "header, entries, note: {csv}");
    assert!(
        rows.last()
            .is_some_and(|r| r.contains("record(s) withheld from this caller")),
        "{csv}"
    );
    let (status, bundle) = k.get_as(&pool, &format!("{path}&_format=fhir")).await;
    assert_eq!(status, 200, "{bundle}");
    assert_eq!(bundle["type"], "collection");
    let list = &bundle["entry"][0]["resource"];
    assert_eq!(list["resourceType"], "List");
    assert_eq!(
        list["entry"].as_array().map(Vec::len),
        Some(told.len()),
        "one List item per entry"
    );
    let urls: BTreeSet<&str> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["fullUrl"].as_str())
        .collect();
    assert!(
        list["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|item| item["item"]["reference"]
                .as_str()
                .is_some_and(|r| urls.contains(r))),
        "every item's record is in the Bundle: {bundle}"
    );
    let (status, _) = k.get_as(&pool, &format!("{path}&_format=pdf")).await;
    assert_eq!(status, 400);
    let (status, _) = k
        .get_as(&pool, &format!("{path}&from=2026-01-02&to=2026-01-01"))
        .await;
    assert_eq!(status, 400, "a period that ends before it starts");
    // The page to print: every entry a row, the withheld count said, text escaped.
    let page = k
        .http
        .get(format!("{}{path}&_format=html", k.gateway_url))
        .bearer_auth(&pool)
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/html"))
    );
    let page = page.text().await.expect("text");
    assert_eq!(
        page.matches("<tr class=").count(),
        told.len(),
        "a row per entry"
    );
    assert!(page.contains("record(s) were withheld from you"), "{page}");
    assert!(
        page.contains("Family chronology: ") && page.contains("A&amp;E"),
        "{page}"
    );
    assert!(!page.contains("<script"), "no script");

    // After the birth, the baby is each older child's sibling.
    let kai_family = until(
        &k,
        &k.token,
        "Kai's baby brother",
        &format!("/Patient/{kai_id}/$family"),
        |g| {
            members(g)
                .iter()
                .any(|(p, code)| *p == baby_id && code == "SIB")
        },
    )
    .await;
    assert!(
        !members(&kai_family)
            .iter()
            .any(|(_, code)| code == "unborn-sibling"),
        "{kai_family}"
    );

    // The control family: a mother and two children, ordinary contacts.
    let ruth = person(
        CONTROL_MOTHER,
        "Ruth Okafor",
        "1992-08-08",
        "female",
        "LS7 1AA",
    );
    let sam = person(SAM, "Sam Okafor", "2020-11-02", "male", "LS7 1AA");
    let ada = person(ADA, "Ada Okafor", "2022-09-15", "female", "LS7 1AA");
    let rows = [
        carers("HVC-01", sam.clone(), ruth.clone()),
        carers("HVC-02", ada.clone(), ruth),
        json!({"record": "allocation", "row_id": "HVC-03", "child": ada, "date": "2022-10-01", "health_visitor": {"name": "J. Price"}}),
        json!({"record": "contact", "row_id": "HVC-04", "child": sam, "date": "2022-11-20", "contact_type": "2-year-review", "child_seen": true, "seen_alone": true}),
        json!({"record": "growth", "row_id": "HVC-05", "child": ada, "date": "2023-09-20", "weight_kg": 9.6}),
    ];
    assert_eq!(
        k.import(Agency::HealthVisiting, &lines(&rows)).await["stored"],
        rows.len()
    );
    let sam_id = person_with(&k, SAM).await;
    let ada_id = person_with(&k, ADA).await;
    let sam_family = until(
        &k,
        &k.token,
        "Sam's sister",
        &format!("/Patient/{sam_id}/$family"),
        |g| {
            members(g)
                .iter()
                .any(|(p, code)| *p == ada_id && code == "SIB")
        },
    )
    .await;
    assert!(
        !members(&sam_family)
            .iter()
            .any(|(_, code)| code == "named-adult"),
        "{sam_family}"
    );
    let (status, control) = k
        .get(&format!("/Patient/{sam_id}/$everything?family=true"))
        .await;
    assert_eq!(status, 200, "{control}");
    let flagged: Vec<&Value> = entries(&control)
        .into_iter()
        .filter(|e| {
            e["resource"]["resourceType"] == "Flag"
                || tags(&e["resource"])
                    .iter()
                    .any(|t| SAFEGUARDING_TAGS.iter().any(|s| t.starts_with(s)))
        })
        .collect();
    assert!(
        flagged.is_empty(),
        "nothing in the control family is flagged: {flagged:?}"
    );
    assert!(
        entries(&control).len() >= 5,
        "the control family's records are there: {control}"
    );
    k.finish().await;
}

#[tokio::test]
async fn sqlite_a_familys_four_years_through_the_native_feeds() {
    a_familys_four_years_through_the_native_feeds(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_familys_four_years_through_the_native_feeds() {
    a_familys_four_years_through_the_native_feeds(Backend::Postgres).await;
}

/// The demo's story family shows the same: the daughter's family lists her mother once (the
/// GP, health visiting and A&E each name her), her brother, the unborn sibling while the
/// mother is pregnant, and the partner named twice, spelt two ways, once.
#[tokio::test]
async fn the_demo_story_family_lists_siblings_the_unborn_and_one_partner() {
    let t = common::TestDemo::start(1).await;
    let example = &t.demo.info.family_example;
    let token = t.demo.info.token.clone();
    let path = t.gateway(&format!("/Patient/{}/$family", example.child.id));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let family = loop {
        let (status, family) = common::get_json(&t.http, &path, Some(&token)).await;
        assert_eq!(status, 200, "{family}");
        let text = family.to_string();
        if text.contains("STORY-HV-3") && text.contains("nk1-1-") {
            break family;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "both notifications and the NK1 read: {family}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let kin = members(&family);
    let count = |code: &str| kin.iter().filter(|(_, c)| c == code).count();
    assert_eq!(
        count("MTH"),
        1,
        "one mother, named by three agencies: {family}"
    );
    assert_eq!(count("SIB"), 1, "{family}");
    assert_eq!(count("unborn-sibling"), 1, "{family}");
    assert_eq!(count("named-adult"), 1, "one partner: {family}");
    assert!(example.members.iter().any(|m| m.relationship == "SIB"));
    assert!(
        example
            .members
            .iter()
            .any(|m| m.relationship == "unborn-sibling")
    );
    // Her wrist fracture is flagged "cause of injury inconclusive", active (issue 23).
    let (status, flags) = common::get_json(
        &t.http,
        &t.gateway(&format!("/Flag?patient={}", example.child.id)),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200, "{flags}");
    assert_eq!(flags["total"], 1, "{flags}");
    let flag = &flags["entry"][0]["resource"];
    assert_eq!(flag["status"], "active");
    assert_eq!(
        flag["code"]["coding"][0]["code"],
        "cause-of-injury-inconclusive"
    );
    // Her attendance at A&E reached the hospital's paediatric liaison team (issue 27), in the
    // inbox the README shows.
    let liaison = t.demo.info.consent_example.tokens["paediatric-liaison-nurse"].clone();
    let path = t.gateway("/Task?code=notification&status=requested");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, inbox) = common::get_json(&t.http, &path, Some(&liaison)).await;
        assert_eq!(status, 200, "{inbox}");
        let hers = inbox["entry"].as_array().into_iter().flatten().any(|e| {
            e["resource"]["for"]["reference"] == format!("Patient/{}", example.child.id)
                && e["resource"]["reasonCode"]["coding"][0]["code"] == "child-attendance"
        });
        if hers {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{inbox}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
