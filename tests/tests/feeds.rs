//! The agencies' native feeds end to end, on SQLite and on PostgreSQL: an extract's rows
//! through `POST /$import` (the door `kinfold import` uses), an HL7 v2 message over a real
//! MLLP socket and a GP Bundle, each visible through the gateway with its provenance and its
//! original; a bad row refused by line and field with nothing of it stored; a resend stored
//! once; the outbox delivering each item's event to the gateway, surviving an adapter restart
//! while the gateway is down; and a custody transfer that never makes the record unavailable
//! (G4, G7, G12, G16).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::agencies::{Backend, Kinfold, coded, event_key, of_type};
use kinfold_fhir::Agency;
use kinfold_gateway::events::EventKey;
use kinfold_store::Store;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIDWIFERY: &str = include_str!("../../docs/feeds/samples/midwifery.ndjson");
const HEALTH_VISITING: &str = include_str!("../../docs/feeds/samples/health-visiting.ndjson");
const SCHOOL_NURSING: &str = include_str!("../../docs/feeds/samples/school-nursing.ndjson");
const CHILD_NHS: &str = "9990000026";

async fn every_feed_is_visible_with_its_provenance_and_a_resend_is_stored_once(backend: Backend) {
    let mut k = Kinfold::adapters(backend).await;
    k.start_gateway().await;
    for (agency, rows, count) in [
        (Agency::Midwifery, MIDWIFERY, 3),
        (Agency::HealthVisiting, HEALTH_VISITING, 6),
        (Agency::SchoolNursing, SCHOOL_NURSING, 7),
    ] {
        let summary = k.import(agency, rows).await;
        assert_eq!(summary["stored"], count, "{agency}: {summary}");
        assert_eq!(
            summary["rejected"].as_array().map(Vec::len),
            Some(0),
            "{summary}"
        );
        // The same file again: stored once.
        let again = k.import(agency, rows).await;
        assert_eq!(
            (again["stored"].as_u64(), again["unchanged"].as_u64()),
            (Some(0), Some(count)),
            "{again}"
        );
    }

    let everything = k.everything_of(CHILD_NHS).await;
    // Health visiting and school nursing, side by side: contacts, notification, NCMP,
    // welfare concern, was-not-brought.
    assert_eq!(coded(&everything, "Encounter", "2-year-review").len(), 1);
    assert_eq!(
        coded(&everything, "Communication", "domestic-abuse-notification").len(),
        1
    );
    assert_eq!(
        coded(&everything, "Observation", "welfare-concern").len(),
        1
    );
    assert_eq!(coded(&everything, "Encounter", "ncmp-reception").len(), 1);
    assert_eq!(of_type(&everything, "Appointment").len(), 1);
    // Each item's provenance names its agency, author, times and the original row, which an
    // authorised caller can fetch through the gateway, exactly as sent.
    let provenance: Vec<&Value> = of_type(&everything, "Provenance")
        .into_iter()
        .filter(|p| p["meta"]["source"].is_string())
        .collect();
    assert_eq!(provenance.len(), 6 + 7, "one per row about the child");
    let welfare = provenance
        .iter()
        .find(|p| p["entity"][0]["what"]["identifier"]["value"] == "SN-3004")
        .expect("the welfare concern's provenance");
    assert_eq!(welfare["agent"][1]["who"]["display"], "D. Mensah");
    assert_eq!(
        welfare["agent"][1]["role"][0]["text"],
        "designated safeguarding lead"
    );
    assert_eq!(welfare["occurredDateTime"], "2026-11-10T15:00:00Z");
    assert!(
        welfare["recorded"]
            .as_str()
            .is_some_and(|r| r.starts_with("20") && r != "2026-11-10T15:00:00Z")
    );
    let binary = welfare["entity"][0]["what"]["reference"]
        .as_str()
        .expect("the original");
    let (status, original) = k.get(&format!("/{binary}")).await;
    assert_eq!(status, 200, "{original}");
    assert_eq!(original["resourceType"], "Binary");
    assert_eq!(original["contentType"], "application/x-ndjson");
    let row = SCHOOL_NURSING.lines().nth(3).expect("row 4");
    assert_eq!(original["data"], base64_of(row));
    // Reading it is an access in the child's own report (whose it is, from the person index).
    let child = everything["entry"][0]["resource"]["id"]
        .as_str()
        .expect("the person");
    let (status, report) = k.get(&format!("/Patient/{child}/$access-report")).await;
    assert_eq!(status, 200);
    assert!(report.to_string().contains("used Binary/{id}"), "{report}");
    // Each identity change is recorded once (a pass that failed to save and was read again
    // would record it again).
    assert_eq!(
        report
            .to_string()
            .matches("\"rule\":\"kinfold.identity.new\"")
            .count(),
        1,
        "{report}"
    );
    // Only a FHIR id is asked for: nothing else reaches the agency's URL.
    for probe in [
        "school-nursing.x%3F_count=1",
        "nobody.abc",
        "school-nursing.does-not-exist",
    ] {
        let (status, outcome) = k.get(&format!("/Binary/{probe}")).await;
        assert_eq!(status, 404, "{probe}: {outcome}");
        assert_eq!(outcome["resourceType"], "OperationOutcome");
    }

    // The mother's record at midwifery: pregnancy, antenatal concerns; the baby's birth.
    let mother = k.everything_of("9990000018").await;
    assert_eq!(coded(&mother, "EpisodeOfCare", "77386006").len(), 1);
    assert_eq!(coded(&mother, "Flag", "domestic-abuse").len(), 1);
    let baby = k.everything_of("9990000034").await;
    assert_eq!(coded(&baby, "RelatedPerson", "MTH").len(), 1);
    assert_eq!(coded(&baby, "Observation", "8339-4").len(), 1);

    // One event per row per person, delivered to the gateway with the person and the codes.
    let events = k.events_from(Agency::SchoolNursing, 7).await;
    assert_eq!(events.len(), 7, "{events:?}");
    let welfare_event = events
        .iter()
        .find(|e| e["sourceMessageId"] == "SN-3004")
        .expect("the welfare concern's event");
    assert_eq!(welfare_event["patient"]["nhsNumber"], CHILD_NHS);
    assert_eq!(welfare_event["patient"]["birthDate"], "2022-01-15");
    let codes: Vec<&str> = welfare_event["codes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        codes.contains(&"welfare-concern") && codes.contains(&"injury"),
        "{codes:?}"
    );
    let births = k.events_from(Agency::Midwifery, 4).await;
    assert_eq!(
        births.len(),
        4,
        "booking, contact, and the birth for mother and baby: {births:?}"
    );
    k.finish().await;
}

fn base64_of(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

async fn a_bad_row_is_refused_by_line_and_field_and_the_good_rows_stored(backend: Backend) {
    let mut k = Kinfold::adapters(backend).await;
    k.start_gateway().await;
    let good = HEALTH_VISITING.lines().nth(2).expect("a growth row");
    let bad_number = good.replace(CHILD_NHS, "9990000027");
    let bad_date = HEALTH_VISITING
        .lines()
        .nth(1)
        .expect("a contact")
        .replace("2026-02-20T10:30:00Z", "2026-02-30");
    let rows = format!("{bad_number}\n{good}\n\n{bad_date}\n");
    let summary = k.import(Agency::HealthVisiting, &rows).await;
    assert_eq!(summary["stored"], 1, "{summary}");
    let rejected = summary["rejected"].as_array().expect("rejections");
    assert_eq!(rejected.len(), 2);
    assert_eq!(
        (rejected[0]["line"].as_u64(), rejected[0]["field"].as_str()),
        (Some(1), Some("child.nhs_number"))
    );
    assert_eq!(
        (rejected[1]["line"].as_u64(), rejected[1]["field"].as_str()),
        (Some(4), Some("date"))
    );
    // Nothing of the bad rows was stored.
    let everything = k.everything_of(CHILD_NHS).await;
    assert_eq!(
        of_type(&everything, "Encounter").len(),
        0,
        "the bad contact left nothing"
    );
    assert_eq!(coded(&everything, "Observation", "29463-7").len(), 1);
    k.finish().await;
}

async fn events_wait_in_the_outbox_through_a_restart_until_the_gateway_is_up(backend: Backend) {
    // The gateway is not running yet: the adapter stores, and its events wait.
    let mut k = Kinfold::adapters(backend).await;
    let summary = k.import(Agency::HealthVisiting, HEALTH_VISITING).await;
    assert_eq!(summary["stored"], 6, "{summary}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The adapter goes down with its events undelivered, and comes back.
    let handle = k.handles.remove(&Agency::HealthVisiting).expect("running");
    handle.stop(true).await;
    let url = match backend {
        Backend::Sqlite => format!(
            "sqlite://{}",
            k.dir.path().join("health-visiting.db").display()
        ),
        Backend::Postgres => k.databases[Agency::ALL
            .iter()
            .position(|a| *a == Agency::HealthVisiting)
            .unwrap()]
        .url
        .clone(),
    };
    let store = Store::open(&url).await.expect("the adapter's store");
    let (waiting, _) = store.outbox_status().await.expect("outbox");
    assert_eq!(waiting, 6, "every event waits for the gateway");
    store.close().await;
    k.start_adapter(Agency::HealthVisiting, &url).await;
    k.start_gateway().await;
    let events = k.events_from(Agency::HealthVisiting, 6).await;
    assert_eq!(events.len(), 6, "delivered once the gateway is up");
    let store = Store::open(&url).await.expect("the adapter's store");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.outbox_status().await.expect("outbox").0 > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        store.outbox_status().await.expect("outbox").0,
        0,
        "the outbox empties"
    );
    store.close().await;
    k.finish().await;
}

async fn during_a_custody_transfer_both_services_add_and_everything_stays_readable(
    backend: Backend,
) {
    let mut k = Kinfold::adapters(backend).await;
    k.start_gateway().await;
    // Health visiting holds the record and starts the transfer (the sample's transfer row).
    assert_eq!(
        k.import(Agency::HealthVisiting, HEALTH_VISITING).await["stored"],
        6
    );
    // While it runs, both services add to the child's record.
    let hv_contact = HEALTH_VISITING
        .lines()
        .nth(1)
        .unwrap()
        .replace("HV-2002", "HV-2010")
        .replace("2026-02-20T10:30:00Z", "2026-09-10T10:30:00Z")
        .replace("2-year-review", "ad-hoc");
    assert_eq!(
        k.import(Agency::HealthVisiting, &hv_contact).await["stored"],
        1
    );
    assert_eq!(
        k.import(
            Agency::SchoolNursing,
            SCHOOL_NURSING.lines().next().unwrap()
        )
        .await["stored"],
        1
    );
    let during = k.everything_of(CHILD_NHS).await;
    assert!(
        common::outcomes(&during).is_empty(),
        "no agency missing: {during}"
    );
    let transfer = coded(&during, "Task", "custody-transfer");
    assert_eq!(transfer.len(), 1);
    assert_eq!(transfer[0]["status"], "in-progress");
    assert_eq!(
        coded(&during, "Encounter", "2-year-review").len(),
        1,
        "the health visiting history"
    );
    assert_eq!(
        coded(&during, "Encounter", "ad-hoc").len(),
        1,
        "health visiting's new entry"
    );
    assert_eq!(
        coded(&during, "EpisodeOfCare", "school-nursing").len(),
        1,
        "school nursing's new entry"
    );
    // Completed: still all there.
    let completed = HEALTH_VISITING
        .lines()
        .nth(4)
        .unwrap()
        .replace("HV-2005", "HV-2011")
        .replace("\"started\"", "\"completed\"")
        .replace("2026-09-01", "2026-09-20");
    assert_eq!(
        k.import(Agency::HealthVisiting, &completed).await["stored"],
        1
    );
    let after = k.everything_of(CHILD_NHS).await;
    assert_eq!(
        coded(&after, "Task", "custody-transfer")[0]["status"],
        "completed"
    );
    assert_eq!(coded(&after, "Encounter", "2-year-review").len(), 1);
    k.finish().await;
}

async fn an_a_and_e_message_over_mllp_and_a_gp_bundle_carry_provenance_and_events(
    backend: Backend,
) {
    let mut k = Kinfold::adapters(backend).await;
    k.start_gateway().await;
    let message = format!(
        "MSH|^~\\&|EPR|RXX|KINFOLD|AE|20261101100000+0000||ADT^A04^ADT_A01|FEED-T1|P|2.5\rEVN|A04|20261101100500+0000|||OP1^Okafor^Rita\rPID|1||{CHILD_NHS}^^^NHS^NH||Haddad^Leo||20220115|1\rPV1|1|E|AE^^^RXX||||||||||||||||V77|||||||||||||||||||||||||20261101093000+0000\rACC|20261101083000+0000|FALL^Fall^LOCAL\rOBX|1|CWE|injury-type^Injury type^KINFOLD-INJ||125605004^Fracture of bone^SCT\rOBX|2|CWE|body-site^Body site^KINFOLD-INJ||71341001^Femur^SCT"
    );
    let mut stream = k.mllp_stream().await;
    let mut frame = vec![0x0b];
    frame.extend_from_slice(message.as_bytes());
    frame.extend_from_slice(&[0x1c, 0x0d]);
    stream.write_all(&frame).await.unwrap();
    let mut ack = Vec::new();
    while !ack.ends_with(&[0x1c, 0x0d]) {
        ack.push(stream.read_u8().await.expect("an ACK"));
    }
    assert!(
        String::from_utf8_lossy(&ack).contains("MSA|AA"),
        "{}",
        String::from_utf8_lossy(&ack)
    );

    let gp = serde_json::json!({
        "resourceType": "Bundle", "type": "transaction", "identifier": {"value": "GP-EXTRACT-1"},
        "timestamp": "2026-11-02T09:00:00Z",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": format!("gp-{CHILD_NHS}"), "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": CHILD_NHS}],
                "generalPractitioner": [{"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "A81001"}}]},
             "request": {"method": "PUT", "url": format!("Patient/gp-{CHILD_NHS}")}},
            {"resource": {"resourceType": "Immunization", "id": "imm-1", "status": "completed", "vaccineCode": {"text": "MMR"}, "patient": {"reference": format!("Patient/gp-{CHILD_NHS}")}, "occurrenceDateTime": "2023-01-20"},
             "request": {"method": "PUT", "url": "Immunization/imm-1"}},
            {"resource": {"resourceType": "DocumentReference", "id": "letter-1", "status": "current", "subject": {"reference": format!("Patient/gp-{CHILD_NHS}")}, "date": "2026-11-01T16:00:00Z",
                "content": [{"attachment": {"contentType": "text/plain", "data": base64_of("Diagnosis: fracture of femur\nSafeguarding:\nMechanism does not fit the injury; referral made.\nPlan: fracture clinic")}}]},
             "request": {"method": "PUT", "url": "DocumentReference/letter-1"}}
        ]
    });
    let (status, answer) = common::post_json(
        &k.http,
        &format!("{}/", k.urls[&Agency::Gp]),
        gp.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    let everything = k.everything_of(CHILD_NHS).await;
    let injury = coded(&everything, "Condition", "125605004");
    assert_eq!(injury.len(), 1, "the injury");
    assert_eq!(injury[0]["bodySite"][0]["coding"][0]["code"], "71341001");
    // Every record area is served (G16): the immunisation typed at the GP is there.
    assert_eq!(of_type(&everything, "Immunization").len(), 1);
    // The hospital letter's safeguarding section is kept as structured data.
    let section = coded(&everything, "Observation", "letter-safeguarding-section");
    assert_eq!(section.len(), 1);
    assert_eq!(
        section[0]["valueString"],
        "Mechanism does not fit the injury; referral made."
    );
    let ae_provenance = of_type(&everything, "Provenance")
        .into_iter()
        .find(|p| p["entity"][0]["what"]["identifier"]["value"] == "FEED-T1")
        .expect("the message's provenance");
    assert_eq!(ae_provenance["agent"][1]["who"]["display"], "Rita Okafor");
    let binary = ae_provenance["entity"][0]["what"]["reference"]
        .as_str()
        .unwrap();
    let (status, original) = k.get(&format!("/{binary}")).await;
    assert_eq!(status, 200, "{original}");
    assert_eq!(
        original["data"],
        base64_of(&message),
        "the message kept byte for byte"
    );
    let ae_events = k.events_from(Agency::Ae, 1).await;
    let codes = ae_events[0]["codes"].to_string();
    assert!(
        codes.contains("ed-attendance") && codes.contains("injury"),
        "{codes}"
    );
    let gp_events = k.events_from(Agency::Gp, 1).await;
    assert_eq!(gp_events[0]["sourceMessageId"], "GP-EXTRACT-1");
    k.finish().await;
}

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both_backends!(
    every_feed_is_visible_with_its_provenance_and_a_resend_is_stored_once,
    a_bad_row_is_refused_by_line_and_field_and_the_good_rows_stored,
    events_wait_in_the_outbox_through_a_restart_until_the_gateway_is_up,
    during_a_custody_transfer_both_services_add_and_everything_stays_readable,
    an_a_and_e_message_over_mllp_and_a_gp_bundle_carry_provenance_and_events,
);

/// Only an adapter's own event key delivers its agency's events: a user token, another
/// agency's key, or no token is refused with an OperationOutcome, and nothing is kept.
#[tokio::test]
async fn the_gateway_takes_events_only_with_the_agencys_own_key() {
    let mut k = Kinfold::adapters(Backend::Sqlite).await;
    k.start_gateway().await;
    let url = format!("{}/events", k.gateway_url);
    let sign = |key: &EventKey, sub: &str| {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = serde_json::json!({"iss": "kinfold", "aud": "kinfold-gateway", "sub": sub, "iat": now, "exp": now + 60, "role": "kinfold-adapter"});
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(key.secret.expose().as_bytes()),
        )
        .expect("signed")
    };
    let delivery = |agency: &str| {
        serde_json::json!({"agency": agency, "events": [{"id": "evt-forged", "agency": agency, "codes": ["welfare-concern"]}]}).to_string()
    };
    let ae = event_key(Agency::Ae);
    let cases: Vec<(Option<String>, String, u16)> = vec![
        (None, delivery("ae"), 401),
        (Some(k.token.clone()), delivery("ae"), 401),
        // The A&E key, claiming to be the GP's adapter, or delivering GP events.
        (Some(sign(&ae, "gp-adapter")), delivery("ae"), 401),
        (Some(sign(&ae, "ae-adapter")), delivery("gp"), 400),
        (Some(sign(&ae, "ae-adapter")), "not json".into(), 400),
    ];
    for (token, body, expected) in cases {
        let mut request = k
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("answered");
        assert_eq!(response.status().as_u16(), expected);
        let outcome: Value = response.json().await.expect("json");
        assert_eq!(outcome["resourceType"], "OperationOutcome");
    }
    assert!(
        k.gateway_store()
            .events_after(0, 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing kept"
    );
    // The right key is taken, and a second delivery of the same event is kept once.
    for _ in 0..2 {
        let response = k
            .http
            .post(&url)
            .bearer_auth(sign(&ae, "ae-adapter"))
            .header("content-type", "application/json")
            .body(delivery("ae"))
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), 200);
    }
    assert_eq!(
        k.gateway_store().events_after(0, 10).await.unwrap().len(),
        1
    );
    k.finish().await;
}

/// The demo's population, rendered as each agency's native feed, plans cleanly through the
/// adapters' own planners and keeps every growth measurement, attendance and birth that the
/// FHIR rendering of the same population has.
#[test]
fn the_synthetic_population_survives_its_native_feeds_whole() {
    use kinfold_synth::{Feed, Options, Population};
    let population = Population::generate(Options {
        families: 40,
        ..Options::default()
    });
    let growth_codes = ["29463-7", "8302-2", "8306-3", "9843-4"];
    let growth = |resources: Vec<kinfold_fhir::Resource>| {
        resources
            .iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .filter(|v| {
                v["resourceType"] == "Observation"
                    && growth_codes.contains(&v["code"]["coding"][0]["code"].as_str().unwrap_or(""))
            })
            .count()
    };
    let mut expected: BTreeMap<Agency, usize> = BTreeMap::new();
    for (agency, bundle) in population.bundles() {
        let resources = bundle
            .entry
            .into_iter()
            .filter_map(|e| e.resource)
            .collect();
        *expected.entry(agency).or_default() += growth(resources);
    }
    let mut got: BTreeMap<Agency, usize> = BTreeMap::new();
    let mut messages = 0;
    for (agency, feed) in population.native_feeds() {
        let resources: Vec<kinfold_fhir::Resource> = match feed {
            Feed::Rows(rows) => rows
                .iter()
                .enumerate()
                .flat_map(|(n, row)| {
                    let (plan, _) = kinfold_adapter::ingest::extract::plan_row(agency, n + 1, row)
                        .unwrap_or_else(|e| panic!("{agency}: {e}\n{row}"));
                    plan.entries.into_iter().map(|e| e.expect("planned"))
                })
                .collect(),
            Feed::Hl7v2(list) => list
                .iter()
                .flat_map(|text| {
                    messages += 1;
                    let message = kinfold_hl7v2::Message::parse(text).expect("parses");
                    let plan = kinfold_adapter::ingest::hl7v2::plan_adt(&message)
                        .unwrap_or_else(|e| panic!("{e}\n{text}"));
                    plan.entries.into_iter().map(|e| e.expect("planned"))
                })
                .collect(),
            Feed::Fhir(bundle) => bundle
                .entry
                .into_iter()
                .filter_map(|e| e.resource)
                .collect(),
        };
        *got.entry(agency).or_default() += growth(resources);
    }
    assert!(messages > 0, "A&E attendances go over HL7 v2");
    for agency in Agency::ALL {
        assert_eq!(
            got.get(&agency).copied().unwrap_or(0),
            expected.get(&agency).copied().unwrap_or(0),
            "{agency}: every growth measurement survives"
        );
    }
    assert!(expected.values().sum::<usize>() > 100, "{expected:?}");
}
