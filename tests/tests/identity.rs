//! Identity and family end to end, on SQLite and on PostgreSQL: the agencies' native feeds
//! (an extract through `POST /$import`, an A&E message over MLLP, a GP Bundle) reach the
//! gateway as events; the person index links them and the family graph joins them, and the
//! family's records come back through the gateway in one answer (G1, G6, G8).

mod common;

use std::time::Duration;

use common::agencies::{Backend, Kinfold, coded};
use kinfold_fhir::Agency;
use serde_json::{Value, json};

const MIDWIFERY: &str = include_str!("../../docs/feeds/samples/midwifery.ndjson");
const HEALTH_VISITING: &str = include_str!("../../docs/feeds/samples/health-visiting.ndjson");
const MOTHER_NHS: &str = "9990000018";
const CHILD_NHS: &str = "9990000026";
const BABY_NHS: &str = "9990000034";

fn gp_patient(
    id: &str,
    nhs: Option<&str>,
    family: &str,
    given: &str,
    born: &str,
    sex: &str,
) -> Value {
    let mut patient = json!({
        "resourceType": "Patient", "id": id,
        "name": [{"family": family, "given": [given]}],
        "birthDate": born, "gender": sex,
        "address": [{"line": ["1 Tyne Street"], "postalCode": "NE4 5PL"}]
    });
    if let Some(nhs) = nhs {
        patient["identifier"] =
            json!([{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}]);
    }
    json!({"resource": patient, "request": {"method": "PUT", "url": format!("Patient/{id}")}})
}

/// Waits until the gateway has read every event it has received into the person index
/// (a query reads what is waiting before it answers), and `ready` holds.
async fn until(k: &Kinfold, what: &str, ready: impl Fn(&Value) -> bool, path: &str) -> Value {
    until_as(k, &k.token, what, ready, path).await
}

/// As [`until`], as another caller.
async fn until_as(
    k: &Kinfold,
    token: &str,
    what: &str,
    ready: impl Fn(&Value) -> bool,
    path: &str,
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
        "a person with this NHS number",
        |b| b["entry"][0]["resource"]["id"].is_string(),
        &format!("/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}"),
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

fn whose(entry: &Value) -> (&str, &str) {
    let parts = &entry["extension"][0]["extension"];
    (
        parts[0]["valueReference"]["reference"]
            .as_str()
            .unwrap_or_default(),
        parts[1]["valueCoding"]["code"].as_str().unwrap_or_default(),
    )
}

async fn a_newborns_family_is_seen_whole_and_the_unborn_child_becomes_the_baby(backend: Backend) {
    let mut k = Kinfold::adapters(backend).await;
    k.start_gateway().await;
    // The GP knows Leo and that his mother is the woman with NHS number …018.
    k.gp_bundle(&json!({
        "resourceType": "Bundle", "type": "transaction", "identifier": {"value": "GP-FAMILY-1"},
        "entry": [
            gp_patient("gp-leo", Some(CHILD_NHS), "Haddad", "Leo", "2022-01-15", "male"),
            {"resource": {"resourceType": "RelatedPerson", "id": "gp-leo-mother", "patient": {"reference": "Patient/gp-leo"},
                "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": MOTHER_NHS}],
                "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH"}]}],
                "name": [{"family": "Haddad", "given": ["Amira"]}], "gender": "female", "birthDate": "1994-05-02"},
             "request": {"method": "PUT", "url": "RelatedPerson/gp-leo-mother"}},
            gp_patient("gp-amira", Some(MOTHER_NHS), "Haddad", "Amira", "1994-05-02", "female"),
            // The grandfather lives with them: related to no one on any record but his address.
            gp_patient("gp-omar", Some("9990000069"), "Haddad", "Omar", "1961-02-02", "male"),
            {"resource": {"resourceType": "Encounter", "id": "gp-amira-consult", "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                "subject": {"reference": "Patient/gp-amira"}, "period": {"start": "2026-03-02T10:00:00Z"}},
             "request": {"method": "PUT", "url": "Encounter/gp-amira-consult"}}
        ]
    })).await;
    // Leo's fracture at A&E, over MLLP.
    k.send_hl7(&format!(
        "MSH|^~\\&|EPR|RXX|KINFOLD|AE|20261101100000+0000||ADT^A04^ADT_A01|FAM-T1|P|2.5\rEVN|A04|20261101100500+0000\rPID|1||{CHILD_NHS}^^^NHS^NH||Haddad^Leo||20220115|1\rPV1|1|E|AE^^^RXX||||||||||||||||V78|||||||||||||||||||||||||20261101093000+0000\rACC|20261101083000+0000|FALL^Fall^LOCAL\rOBX|1|CWE|injury-type^Injury type^KINFOLD-INJ||125605004^Fracture of bone^SCT"
    )).await;
    // Health visiting: a domestic-abuse notification about Leo naming the mother's partner.
    assert!(k.import(Agency::HealthVisiting, HEALTH_VISITING).await["stored"].as_u64() > Some(0));
    // Midwifery: the mother's booked pregnancy (the first row only, for now).
    let booking = MIDWIFERY.lines().next().expect("the booking row");
    assert_eq!(k.import(Agency::Midwifery, booking).await["stored"], 1);

    let leo = person_with(&k, CHILD_NHS).await;
    let mother = person_with(&k, MOTHER_NHS).await;
    // G6: the booked pregnancy is in the family of the mother's existing child.
    let family = until(
        &k,
        "the unborn sibling in Leo's family",
        |g| members(g).iter().any(|(_, code)| code == "unborn-sibling"),
        &format!("/Patient/{leo}/$family"),
    )
    .await;
    let kin = members(&family);
    assert!(kin.contains(&(mother.clone(), "MTH".into())), "{kin:?}");
    assert!(
        kin.iter().any(|(_, code)| code == "named-adult"),
        "the partner named in the notification: {kin:?}"
    );
    let unborn = kin
        .iter()
        .find(|(_, code)| code == "unborn-sibling")
        .expect("unborn")
        .0
        .clone();

    // A concern about the unborn child, flagged before the birth (issue 23).
    let flagged = k
        .http
        .post(format!("{}/Flag", k.gateway_url))
        .bearer_auth(&k.token)
        .header("content-type", "application/fhir+json")
        .body(
            json!({"resourceType": "Flag", "subject": {"reference": format!("Patient/{unborn}")},
                "code": {"coding": [{"system": "https://kinfold.example/fhir/CodeSystem/safeguarding-flag", "code": "unborn-child-concern"}]}})
            .to_string(),
        )
        .send()
        .await
        .expect("answered");
    assert_eq!(flagged.status().as_u16(), 201);

    // The birth: the unborn child becomes the newborn.
    let birth = MIDWIFERY.lines().nth(2).expect("the birth row");
    assert_eq!(k.import(Agency::Midwifery, birth).await["stored"], 1);
    let baby = person_with(&k, BABY_NHS).await;
    // The birth's event may reach the gateway after the search above (which finds the baby by
    // asking the agencies): wait for it.
    until(
        &k,
        "the unborn child is now the baby",
        |person| person["id"] == baby.as_str(),
        &format!("/Person/{unborn}"),
    )
    .await;
    // The unborn child's flag is the baby's.
    let (status, flags) = k.get(&format!("/Flag?patient={baby}")).await;
    assert_eq!(status, 200, "{flags}");
    assert_eq!(
        flags["entry"][0]["resource"]["code"]["coding"][0]["code"], "unborn-child-concern",
        "{flags}"
    );
    let family = until(
        &k,
        "the baby in Leo's family",
        |g| members(g).contains(&(baby.clone(), "SIB".into())),
        &format!("/Patient/{leo}/$family"),
    )
    .await;
    assert!(
        !members(&family)
            .iter()
            .any(|(_, code)| code == "unborn-sibling"),
        "{family}"
    );

    // G1: the health visitor's query for the newborn brings the sibling's fracture and the
    // family's domestic-abuse notification, each as a family member's entry.
    let (status, everything) = k
        .get(&format!("/Patient/{baby}/$everything?family=true"))
        .await;
    assert_eq!(status, 200, "{everything}");
    let entries = everything["entry"].as_array().expect("entries");
    let fracture = entries
        .iter()
        .find(|e| {
            e["resource"]["resourceType"] == "Condition"
                && e["resource"].to_string().contains("125605004")
        })
        .expect("the sibling's fracture");
    assert_eq!(whose(fracture), (format!("Patient/{leo}").as_str(), "SIB"));
    let notification = entries
        .iter()
        .find(|e| {
            e["resource"]["resourceType"] == "Communication"
                && e["resource"]
                    .to_string()
                    .contains("domestic-abuse-notification")
        })
        .expect("the domestic-abuse notification");
    assert_eq!(whose(notification).1, "SIB");
    assert!(
        entries
            .iter()
            .any(|e| whose(e) == (format!("Patient/{baby}").as_str(), "self")),
        "the baby's own records"
    );
    // The mother's unrelated GP consultation is not safeguarding-relevant: withheld, counted,
    // and nothing of it shown.
    assert!(
        !everything.to_string().contains("gp-amira-consult"),
        "the mother's GP consultation is withheld"
    );
    let withheld: Vec<&Value> = entries
        .iter()
        .filter(|e| e["resource"]["issue"][0]["code"] == "suppressed")
        .collect();
    assert!(
        withheld.iter().any(|o| {
            let issue = &o["resource"]["issue"][0];
            issue["details"]["coding"][0]["code"] == "gp"
                && issue["diagnostics"].as_str().is_some_and(|d| {
                    d.contains("family.not-safeguarding-relevant") && d.contains("override")
                })
        }),
        "{withheld:?}"
    );
    let same = k.get(&format!("/Group/{baby}/$everything")).await;
    assert_eq!(same.0, 200);
    assert_eq!(same.1["total"], everything["total"]);
    assert_eq!(coded(&same.1, "Condition", "125605004").len(), 1);

    // Each family member's disclosure is in their own access report; so are their links.
    let (status, report) = k.get(&format!("/Patient/{leo}/$access-report")).await;
    assert_eq!(status, 200, "{report}");
    let text = report.to_string();
    assert!(text.contains("as part of their family's records"), "{text}");
    assert!(text.contains("kinfold.identity.nhs-number"), "{text}");
    assert!(text.contains("kinfold.family.edge-from-data"), "{text}");
    k.finish().await;
}

async fn a_child_spelt_two_ways_is_one_person_and_twins_stay_two(backend: Backend) {
    let mut k = Kinfold::adapters(backend).await;
    k.start_gateway().await;
    // The GP: Ola Wójcik with an NHS number, and twin Filip Novak.
    k.gp_bundle(&json!({
        "resourceType": "Bundle", "type": "transaction", "identifier": {"value": "GP-ID-1"},
        "entry": [
            gp_patient("gp-ola", Some("9990000042"), "Wójcik", "Ola", "2019-05-02", "female"),
            gp_patient("gp-filip", Some("9990000050"), "Novak", "Filip", "2020-06-01", "male"),
        ]
    }))
    .await;
    // School nursing, without NHS numbers: "WOJCIK" and the other twin, Jan.
    let rows = [
        json!({"record": "school", "row_id": "SN-9001", "recorded_at": "2026-09-03T09:00:00Z", "recorded_by": {"name": "R. Adeyemi"},
            "child": {"local_id": "SCH-17", "family": "WOJCIK", "given": ["Ola"], "birth_date": "2019-05-02", "sex": "female", "postcode": "NE4 5PL"},
            "school_urn": "103456", "school_name": "Riverside Primary", "from": "2026-09-03"}),
        json!({"record": "school", "row_id": "SN-9002", "recorded_at": "2026-09-03T09:00:00Z", "recorded_by": {"name": "R. Adeyemi"},
            "child": {"local_id": "SCH-18", "family": "Novak", "given": ["Jan"], "birth_date": "2020-06-01", "sex": "male", "postcode": "NE4 5PL"},
            "school_urn": "103456", "school_name": "Riverside Primary", "from": "2026-09-03"}),
    ];
    let text: Vec<String> = rows.iter().map(Value::to_string).collect();
    assert_eq!(
        k.import(Agency::SchoolNursing, &text.join("\n")).await["stored"],
        2
    );

    // Found by name without an NHS number, across spellings: one person, two agencies.
    let found = until(
        &k,
        "Ola by name",
        |b| {
            b["entry"][0]["resource"]["link"]
                .as_array()
                .is_some_and(|l| l.len() == 2)
        },
        "/Patient?name=Ola%20Wojcik&birthdate=2019-05-02",
    )
    .await;
    assert_eq!(found["total"], 1, "{found}");
    let ola = found["entry"][0]["resource"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(person_with(&k, "9990000042").await, ola);
    let (status, person) = k.get(&format!("/Person/{ola}")).await;
    assert_eq!(status, 200);
    let methods: Vec<&str> = person["link"]
        .as_array()
        .expect("links")
        .iter()
        .map(|l| {
            l["extension"][0]["extension"][0]["valueCode"]
                .as_str()
                .unwrap_or_default()
        })
        .collect();
    assert!(
        methods.contains(&"score"),
        "the school's record joined by score: {person}"
    );

    // Twins: two people, and the pair is on the review queue with what held it back.
    let filip = person_with(&k, "9990000050").await;
    let jan = until(
        &k,
        "Jan by name",
        |b| b["total"].as_u64() > Some(0),
        "/Patient?family=Novak&given=Jan&birthdate=2020-06-01",
    )
    .await;
    let jan_ids: Vec<&str> = jan["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["resource"]["id"].as_str())
        .collect();
    assert!(!jan_ids.is_empty(), "{jan}");
    assert!(
        jan_ids.iter().all(|id| *id != filip),
        "Jan is not Filip: {jan}"
    );
    // The identity review queue and changes by hand are the identity stewards'.
    let steward = k.steward_token();
    let queue = until_as(
        &k,
        &steward,
        "the twins' pair on the review queue",
        |q| q.to_string().contains(filip.as_str()),
        "/identity/reviews",
    )
    .await;
    let pair = queue["reviews"]
        .as_array()
        .expect("reviews")
        .iter()
        .find(|r| r["candidate"] == filip.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("the twins' pair: {queue}"));
    assert_eq!(pair["hold"], "given-names-differ");
    assert!(
        pair["comparison"]
            .to_string()
            .contains("\"level\":\"differs\""),
        "{pair}"
    );

    // A person rejects the pair, with a reason; it is decided and recorded.
    let url = format!(
        "{}/identity/reviews/{}/$reject",
        k.gateway_url,
        pair["id"].as_str().expect("id")
    );
    let short = k
        .http
        .post(&url)
        .bearer_auth(&steward)
        .body(r#"{"reason":"no"}"#)
        .send()
        .await
        .expect("answers");
    assert_eq!(short.status(), 400, "a reason is needed");
    let response = k
        .http
        .post(&url)
        .bearer_auth(&steward)
        .body(r#"{"reason":"Twins: different given names, school confirms two pupils"}"#)
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    let (_, open) = k.get_as(&steward, "/identity/reviews").await;
    assert!(
        !open
            .to_string()
            .contains(pair["id"].as_str().unwrap_or_default())
    );
    let (_, report) = k.get(&format!("/Patient/{filip}/$access-report")).await;
    assert!(
        report
            .to_string()
            .contains("kinfold.identity.review-rejected"),
        "{report}"
    );

    // A manual unlink splits the school's record off Ola, and a manual link puts it back.
    let school = person["link"]
        .as_array()
        .expect("links")
        .iter()
        .find(|l| l["target"]["extension"][0]["valueCode"] == "school-nursing")
        .map(|l| {
            l["target"]["reference"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .expect("the school's record");
    let change = json!({"agency": "school-nursing", "reference": school, "reason": "Checked with the school: a different child"});
    let split = k
        .http
        .post(format!("{}/Person/{ola}/$unlink", k.gateway_url))
        .bearer_auth(&steward)
        .body(change.to_string())
        .send()
        .await
        .expect("answers");
    assert_eq!(split.status(), 200);
    let split: Value = split.json().await.expect("a Person");
    let other = split["id"].as_str().expect("a new person").to_owned();
    assert_ne!(other, ola);
    let (_, ola_now) = k.get(&format!("/Person/{ola}")).await;
    assert_eq!(ola_now["link"].as_array().map(Vec::len), Some(1));
    let join = json!({"agency": "school-nursing", "reference": school, "reason": "School confirmed the same child after all"});
    let joined = k
        .http
        .post(format!("{}/Person/{ola}/$link", k.gateway_url))
        .bearer_auth(&steward)
        .body(join.to_string())
        .send()
        .await
        .expect("answers");
    assert_eq!(joined.status(), 200);
    let (_, ola_now) = k.get(&format!("/Person/{ola}")).await;
    assert_eq!(
        ola_now["link"].as_array().map(Vec::len),
        Some(2),
        "{ola_now}"
    );
    let (_, report) = k.get(&format!("/Patient/{ola}/$access-report")).await;
    assert!(
        report.to_string().contains("kinfold.identity.manual-link"),
        "{report}"
    );

    // A baby notified at birth before naming, and registered by the GP under another surname
    // at another address: the score alone keeps them apart; the same mother and date of
    // birth join them.
    let birth = json!({"record": "birth", "row_id": "MW-9001", "recorded_at": "2026-10-01T06:00:00Z", "recorded_by": {"name": "P. Lindqvist", "role": "midwife"},
        "mother": {"nhs_number": "9990000077", "family": "Brooks", "given": ["Hana"], "birth_date": "1990-01-01", "sex": "female", "postcode": "NE4 5PL"},
        "pregnancy_id": "P-9", "baby": {"local_id": "MW-B-1", "family": "Brooks", "sex": "female", "postcode": "NE4 5PL"},
        "born_at": "2026-10-01T03:00:00Z", "birth_weight_g": 3100, "gestation_weeks": 39, "gestation_days": 0});
    assert_eq!(
        k.import(Agency::Midwifery, &birth.to_string()).await["stored"],
        1
    );
    k.gp_bundle(&json!({
        "resourceType": "Bundle", "type": "transaction", "identifier": {"value": "GP-ID-2"},
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "gp-marta",
                "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000085"}],
                "name": [{"family": "Okoro", "given": ["Marta"]}], "gender": "female", "birthDate": "2026-10-01",
                "address": [{"line": ["9 Elvet Bridge"], "postalCode": "DH1 3LE"}]},
             "request": {"method": "PUT", "url": "Patient/gp-marta"}},
            {"resource": {"resourceType": "RelatedPerson", "id": "gp-marta-mother", "patient": {"reference": "Patient/gp-marta"},
                "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000077"}],
                "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH"}]}]},
             "request": {"method": "PUT", "url": "RelatedPerson/gp-marta-mother"}}
        ]
    })).await;
    let marta = person_with(&k, "9990000085").await;
    let joined = until(
        &k,
        "the baby's birth record joined to the named child",
        |p| p["link"].as_array().map(Vec::len) == Some(2),
        &format!("/Person/{marta}"),
    )
    .await;
    assert!(joined.to_string().contains("birth-and-mother"), "{joined}");
    let (_, report) = k.get(&format!("/Patient/{marta}/$access-report")).await;
    assert!(
        report
            .to_string()
            .contains("kinfold.identity.birth-and-mother"),
        "{report}"
    );
    k.finish().await;
}

#[tokio::test]
async fn sqlite_a_newborns_family_is_seen_whole_and_the_unborn_child_becomes_the_baby() {
    a_newborns_family_is_seen_whole_and_the_unborn_child_becomes_the_baby(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_newborns_family_is_seen_whole_and_the_unborn_child_becomes_the_baby() {
    a_newborns_family_is_seen_whole_and_the_unborn_child_becomes_the_baby(Backend::Postgres).await;
}

#[tokio::test]
async fn sqlite_a_child_spelt_two_ways_is_one_person_and_twins_stay_two() {
    a_child_spelt_two_ways_is_one_person_and_twins_stay_two(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_child_spelt_two_ways_is_one_person_and_twins_stay_two() {
    a_child_spelt_two_ways_is_one_person_and_twins_stay_two(Backend::Postgres).await;
}

/// An HL7 A40 from the hospital merges two of its own records: from then on they are one
/// person, `$everything` shows both attendances, the merged person's id answers with the
/// surviving person, and the merge is in the access report.
async fn a_hospital_merge_makes_its_two_records_one_person(backend: Backend) {
    let mut k = Kinfold::adapters(backend).await;
    k.start_gateway().await;
    let adt = |event: &str, control: &str, pid: &str, visit: &str, rest: &str| {
        format!(
            "MSH|^~\\&|EPR|RXX|KINFOLD|AE|20260301100000+0000||ADT^{event}^ADT_A01|{control}|P|2.4\rEVN|{event}|20260301100000+0000\r{pid}\rPV1|1|E|AE^^^RXX||||||||||||||||{visit}|||||||||||||||||01||||||||20260301093000+0000{rest}"
        )
    };
    // The same boy registered twice at the hospital: once without his NHS number and spelt
    // "Jon Smyth", once with it. Two records of one agency never link by score.
    k.send_hl7(&adt(
        "A04",
        "MRG-T-1",
        "PID|1||H100^^^RXX^MR||Smyth^Jon||20200110|M|||2 Low Lane^^Leeds^^LS6 2AB",
        "V-H100",
        "",
    ))
    .await;
    k.send_hl7(&adt("A04", "MRG-T-2", "PID|1||9990001073^^^NHS^NH~H200^^^RXX^MR||Smith^John||20200110|M|||2 Low Lane^^Leeds^^LS6 2AB", "V-H200", "")).await;
    let survivor = person_with(&k, "9990001073").await;
    let (_, before) = k.get(&format!("/Patient/{survivor}/$everything")).await;
    assert!(
        !before.to_string().contains("visit-V-H100"),
        "not yet one person"
    );
    // The hospital merges H100 into the record with the NHS number.
    k.send_hl7(&adt(
        "A40",
        "MRG-T-3",
        "PID|1||9990001073^^^NHS^NH~H200^^^RXX^MR||Smith^John||20200110|M|||2 Low Lane^^Leeds^^LS6 2AB",
        "V-H200",
        "\rMRG|H100^^^RXX^MR",
    ))
    .await;
    let after = until(
        &k,
        "both attendances under the surviving person",
        |b| b.to_string().contains("visit-V-H100"),
        &format!("/Patient/{survivor}/$everything"),
    )
    .await;
    assert!(after.to_string().contains("visit-V-H200"), "{after}");
    let (status, person) = k.get(&format!("/Person/{survivor}")).await;
    assert_eq!(status, 200, "{person}");
    assert!(person.to_string().contains("source-merge"), "{person}");
    let officer = k.token_as("po-1", "Q99", "privacy-officer");
    let (status, report) = k
        .get_as(&officer, &format!("/Patient/{survivor}/$access-report"))
        .await;
    assert_eq!(status, 200, "{report}");
    let merges = report["accesses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["rule"] == "kinfold.identity.source-merge")
        .count();
    assert_eq!(merges, 1, "the merge is in the access report: {report}");
    k.finish().await;
}

#[tokio::test]
async fn sqlite_a_hospital_merge_makes_its_two_records_one_person() {
    a_hospital_merge_makes_its_two_records_one_person(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_hospital_merge_makes_its_two_records_one_person() {
    a_hospital_merge_makes_its_two_records_one_person(Backend::Postgres).await;
}

/// An identity answer never waits for the person index to read the events received: it uses
/// the index as it stands and says how far behind it is (issue 22). Events kept by the gateway
/// but not yet read (written here straight into its store, as a delivery under way would have
/// them) are counted in an `index-behind` outcome; the next delivery reads them, and the
/// outcome goes.
async fn an_answer_says_how_far_behind_the_index_is(backend: Backend) {
    let mut k = Kinfold::adapters(backend).await;
    k.start_gateway().await;
    let adt = |control: &str, nhs: &str, family: &str, visit: &str| {
        format!(
            "MSH|^~\\&|EPR|RXX|KINFOLD|AE|20260301100000+0000||ADT^A04^ADT_A01|{control}|P|2.4\rEVN|A04|20260301100000+0000\rPID|1||{nhs}^^^NHS^NH||{family}^Sam||20200110|M|||2 Low Lane^^Leeds^^LS6 2AB\rPV1|1|E|AE^^^RXX||||||||||||||||{visit}|||||||||||||||||01||||||||20260301093000+0000"
        )
    };
    k.send_hl7(&adt("BEHIND-1", "9990002029", "Behind", "V-BH-1"))
        .await;
    let search = "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990002029";
    let behind = |bundle: &Value| {
        bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["resource"]["issue"][0]["code"] == "incomplete")
            .filter_map(|e| e["resource"]["issue"][0]["diagnostics"].as_str())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // The message's one event received (and read by its delivery: the search below says
    // nothing is behind), so no delivery is under way when the test adds its own.
    let mut event = k.events_from(Agency::Ae, 1).await.remove(0);
    let caught_up = until(
        &k,
        "the attendance filed and the index caught up",
        |b| b["entry"][0]["resource"]["id"].is_string() && behind(b).is_empty(),
        search,
    )
    .await;
    assert!(behind(&caught_up).is_empty(), "{caught_up}");
    // Two events the gateway has kept and not yet read.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let unread: Vec<(String, String)> = (1..=2)
        .map(|n| {
            event["id"] = json!(format!("behind-test-{n}"));
            (format!("behind-test-{n}"), event.to_string())
        })
        .collect();
    let kept = k
        .gateway_store()
        .events_receive("ae", &unread, now)
        .await
        .expect("kept");
    assert_eq!(kept, 2);
    let (status, answer) = k.get(search).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["entry"][0]["resource"]["resourceType"], "Patient",
        "answered with the index as it stands: {answer}"
    );
    let said = behind(&answer);
    assert_eq!(said.len(), 1, "{answer}");
    assert!(
        said[0].contains("2 received events still to read"),
        "{answer}"
    );
    // The next delivery reads them all.
    k.send_hl7(&adt("BEHIND-2", "9990002037", "Later", "V-BH-2"))
        .await;
    until(
        &k,
        "the index caught up again",
        |b| b["entry"][0]["resource"]["id"].is_string() && behind(b).is_empty(),
        search,
    )
    .await;
    k.finish().await;
}

#[tokio::test]
async fn sqlite_an_answer_says_how_far_behind_the_index_is() {
    an_answer_says_how_far_behind_the_index_is(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_an_answer_says_how_far_behind_the_index_is() {
    an_answer_says_how_far_behind_the_index_is(Backend::Postgres).await;
}
