//! The population as each agency's system would really send it (`docs/feeds/`), so that the
//! demo is seeded through the native feeds: A&E attendances as HL7 v2 ADT messages (with the
//! discharge letters and flags as the EPR's FHIR document feed), midwifery, health visiting
//! and school nursing as JSON Lines extract rows, and the GP as FHIR structured-record
//! Bundles. The same records as [`crate::Population::bundles`], rendered from them.

use std::collections::BTreeMap;

use kinfold_fhir::codes::{
    LOINC_BIRTH_WEIGHT, LOINC_GESTATION_AT_BIRTH, LOINC_HEAD, LOINC_HEIGHT, LOINC_LENGTH,
    LOINC_WEIGHT,
};
use kinfold_fhir::{Agency, Bundle, Resource};
use serde_json::{Value, json};

/// What one agency's system sends for one family.
#[derive(Debug, Clone)]
pub enum Feed {
    /// HL7 v2 messages, one per attendance, to send over MLLP.
    Hl7v2(Vec<String>),
    /// Extract rows (JSON Lines), for `POST /$import`.
    Rows(Vec<String>),
    /// A FHIR transaction Bundle, for `POST /`.
    Fhir(Box<Bundle>),
}

/// One family's records at one agency, rendered as that agency's feed.
pub(crate) fn render(agency: Agency, resources: Vec<Resource>) -> Vec<Feed> {
    let values: Vec<Value> = resources
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect();
    match agency {
        Agency::Gp => vec![Feed::Fhir(Box::new(crate::transaction(resources)))],
        Agency::Ae => ae(&values),
        Agency::Midwifery => vec![Feed::Rows(midwifery(&values))],
        Agency::HealthVisiting => vec![Feed::Rows(health_visiting(&values))],
        Agency::SchoolNursing => vec![Feed::Rows(school_nursing(&values))],
    }
}

fn of_type<'a>(values: &'a [Value], name: &str) -> impl Iterator<Item = &'a Value> {
    values.iter().filter(move |v| v["resourceType"] == name)
}

fn code(value: &Value, path: &str) -> String {
    value
        .pointer(path)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn reference_id(value: &Value, path: &str) -> String {
    code(value, path).trim_start_matches("Patient/").to_owned()
}

fn nhs_of(patient: &Value) -> String {
    code(patient, "/identifier/0/value")
}

/// A person as extract rows carry them.
fn person(patient: &Value) -> Value {
    json!({
        "nhs_number": nhs_of(patient),
        "family": code(patient, "/name/0/family"),
        "given": patient.pointer("/name/0/given").cloned().unwrap_or(json!([])),
        "birth_date": code(patient, "/birthDate"),
        "sex": code(patient, "/gender"),
    })
}

fn day(date_time: &str) -> &str {
    date_time.get(..10).unwrap_or(date_time)
}

fn row(mut value: Value, record: &str, row_id: String, recorded_at: &str, by: Value) -> String {
    value["record"] = json!(record);
    value["row_id"] = json!(row_id);
    value["recorded_at"] = json!(recorded_at);
    value["recorded_by"] = by;
    value.to_string()
}

/// Measurements by (patient, day): weight, height, length, head, and the ids they had.
fn measurements(values: &[Value]) -> BTreeMap<(String, String), (BTreeMap<String, f64>, String)> {
    let mut by_day: BTreeMap<(String, String), (BTreeMap<String, f64>, String)> = BTreeMap::new();
    for observation in of_type(values, "Observation") {
        let loinc = code(observation, "/code/coding/0/code");
        let field = match loinc.as_str() {
            LOINC_WEIGHT => "weight_kg",
            LOINC_HEIGHT => "height_cm",
            LOINC_LENGTH => "length_cm",
            LOINC_HEAD => "head_cm",
            _ => continue,
        };
        let Some(value) = observation
            .pointer("/valueQuantity/value")
            .and_then(Value::as_f64)
        else {
            continue;
        };
        let when = code(observation, "/effectiveDateTime");
        let entry = by_day
            .entry((reference_id(observation, "/subject/reference"), when))
            .or_default();
        entry.0.insert(field.to_owned(), value);
        entry.1 = code(observation, "/id");
    }
    by_day
}

fn midwifery(values: &[Value]) -> Vec<String> {
    let patients: BTreeMap<String, &Value> = of_type(values, "Patient")
        .map(|p| (code(p, "/id"), p))
        .collect();
    let midwife = json!({"name": "Community midwife", "role": "midwife"});
    let mut rows = Vec::new();
    for pregnancy in of_type(values, "EpisodeOfCare") {
        let Some(mother) = patients.get(&reference_id(pregnancy, "/patient/reference")) else {
            continue;
        };
        let start = code(pregnancy, "/period/start");
        let Ok(start_date) = start.parse::<chrono::NaiveDate>() else {
            continue;
        };
        let due = start_date + chrono::Days::new(280);
        let booked = start_date + chrono::Days::new(70);
        rows.push(row(
            json!({
                "mother": person(mother),
                "pregnancy_id": code(pregnancy, "/id"),
                "booking_date": booked.to_string(),
                "estimated_due_date": due.to_string(),
            }),
            "booking",
            format!("MW-booking-{}", code(pregnancy, "/id")),
            &format!("{booked}T12:00:00Z"),
            midwife.clone(),
        ));
    }
    for birth in
        of_type(values, "Encounter").filter(|e| code(e, "/type/0/coding/0/code") == "birth")
    {
        let baby_id = reference_id(birth, "/subject/reference");
        let Some(baby) = patients.get(&baby_id) else {
            continue;
        };
        let Some(mother) = of_type(values, "RelatedPerson")
            .find(|r| reference_id(r, "/patient/reference") == baby_id)
            .and_then(|r| {
                let nhs = code(r, "/identifier/0/value");
                patients.values().find(|p| nhs_of(p) == nhs)
            })
        else {
            continue;
        };
        let about_baby = |loinc: &str| {
            of_type(values, "Observation")
                .find(|o| {
                    reference_id(o, "/subject/reference") == baby_id
                        && code(o, "/code/coding/0/code") == loinc
                })
                .and_then(|o| o.pointer("/valueQuantity/value").and_then(Value::as_f64))
        };
        let mut fields = json!({
            "mother": person(mother),
            "pregnancy_id": format!("P-{baby_id}"),
            "baby": person(baby),
            "born_at": day(&code(birth, "/period/start")),
        });
        if let Some(kg) = about_baby(LOINC_BIRTH_WEIGHT) {
            fields["birth_weight_g"] = json!((kg * 1000.0).round() as u32);
        }
        if let Some(weeks) = about_baby(LOINC_GESTATION_AT_BIRTH) {
            let whole = weeks.floor();
            fields["gestation_weeks"] = json!(whole as u32);
            fields["gestation_days"] = json!((((weeks - whole) * 7.0).round() as u32).min(6));
        }
        rows.push(row(
            fields,
            "birth",
            format!("MW-birth-{baby_id}"),
            &format!("{}T12:00:00Z", day(&code(birth, "/period/start"))),
            midwife.clone(),
        ));
    }
    rows
}

fn health_visiting(values: &[Value]) -> Vec<String> {
    let patients: BTreeMap<String, &Value> = of_type(values, "Patient")
        .map(|p| (code(p, "/id"), p))
        .collect();
    let visitor = json!({"name": "Health visitor", "role": "health visitor"});
    let mut rows = Vec::new();
    for episode in of_type(values, "EpisodeOfCare") {
        let Some(child) = patients.get(&reference_id(episode, "/patient/reference")) else {
            continue;
        };
        let start = code(episode, "/period/start");
        let mut fields = json!({"child": person(child), "date": start});
        // Every third child is in the central pool, not with a named health visitor (G8).
        if nhs_of(child).bytes().last().is_some_and(|b| b % 3 == 0) {
            fields["pool"] = json!("Central pool");
        } else {
            fields["health_visitor"] = json!({"name": "Named health visitor"});
        }
        rows.push(row(
            fields,
            "allocation",
            format!("HV-allocation-{}", code(episode, "/id")),
            &format!("{start}T09:00:00Z"),
            visitor.clone(),
        ));
    }
    for contact in of_type(values, "Encounter") {
        let Some(child) = patients.get(&reference_id(contact, "/subject/reference")) else {
            continue;
        };
        let language = code(child, "/communication/0/language/coding/0/code");
        let mut fields = json!({
            "child": person(child),
            "date": code(contact, "/period/start"),
            "contact_type": code(contact, "/type/0/coding/0/code"),
            "present": ["mother"],
            "child_seen": true,
            "seen_alone": false,
            "practitioner": visitor,
        });
        if !language.is_empty() {
            fields["language"] = json!(language);
            fields["interpreter_used"] = json!(true);
        }
        rows.push(row(
            fields,
            "contact",
            format!("HV-{}", code(contact, "/id")),
            &code(contact, "/period/end"),
            visitor.clone(),
        ));
    }
    for ((patient, when), (fields, id)) in measurements(values) {
        let Some(child) = patients.get(&patient) else {
            continue;
        };
        let mut value = json!({"child": person(child), "date": when});
        for (field, number) in fields {
            value[field] = json!(number);
        }
        rows.push(row(
            value,
            "growth",
            format!("HV-{id}"),
            &when,
            visitor.clone(),
        ));
    }
    rows
}

fn school_nursing(values: &[Value]) -> Vec<String> {
    let patients: BTreeMap<String, &Value> = of_type(values, "Patient")
        .map(|p| (code(p, "/id"), p))
        .collect();
    let nurse = json!({"name": "School nurse", "role": "school nurse"});
    let mut rows = Vec::new();
    for (id, child) in &patients {
        let birth = code(child, "/birthDate");
        let Ok(born) = birth.parse::<chrono::NaiveDate>() else {
            continue;
        };
        let from = born + chrono::Days::new(1640);
        let digits: String = id.chars().filter(char::is_ascii_digit).collect();
        let urn = 100_000 + digits.parse::<u32>().unwrap_or(0) % 40 * 1013;
        rows.push(row(
            json!({"child": person(child), "school_urn": urn.to_string(), "school_name": "Riverside Primary", "from": from.to_string()}),
            "school",
            format!("SN-school-{id}"),
            &format!("{from}T09:00:00Z"),
            nurse.clone(),
        ));
    }
    for review in of_type(values, "Encounter")
        .filter(|e| code(e, "/type/0/coding/0/code") == "school-entry-review")
    {
        let Some(child) = patients.get(&reference_id(review, "/subject/reference")) else {
            continue;
        };
        rows.push(row(
            json!({"child": person(child), "date": code(review, "/period/start"), "practitioner": nurse}),
            "school-entry-review",
            format!("SN-{}", code(review, "/id")),
            &code(review, "/period/end"),
            nurse.clone(),
        ));
    }
    for ((patient, when), (fields, id)) in measurements(values) {
        let Some(child) = patients.get(&patient) else {
            continue;
        };
        let (Some(weight), Some(height)) = (fields.get("weight_kg"), fields.get("height_cm"))
        else {
            continue;
        };
        let year = if id.contains("year-6") {
            "year-6"
        } else {
            "reception"
        };
        rows.push(row(
            json!({"child": person(child), "date": when, "year": year, "height_cm": height, "weight_kg": weight}),
            "ncmp",
            format!("SN-{id}"),
            &when,
            nurse.clone(),
        ));
    }
    rows
}

/// `2026-03-01T10:00:00Z` as an HL7 time with its zone.
fn hl7_time(date_time: &str) -> String {
    let digits: String = date_time
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect();
    format!("{digits:0<14}+0000")
}

fn ae(values: &[Value]) -> Vec<Feed> {
    let patients: BTreeMap<String, &Value> = of_type(values, "Patient")
        .map(|p| (code(p, "/id"), p))
        .collect();
    let mut messages = Vec::new();
    for attendance in of_type(values, "Encounter") {
        let patient_id = reference_id(attendance, "/subject/reference");
        let Some(patient) = patients.get(&patient_id) else {
            continue;
        };
        let arrived = code(attendance, "/period/start");
        let left = code(attendance, "/period/end");
        let visit = code(attendance, "/id");
        let sex = match code(patient, "/gender").as_str() {
            "male" => "M",
            "female" => "F",
            _ => "U",
        };
        let mut message = format!(
            "MSH|^~\\&|EPR|RXX|KINFOLD|AE|{now}||ADT^A03^ADT_A03|{visit}|P|2.5\rEVN|A03|{now}\rPID|1||{nhs}^^^NHS^NH||{family}^{given}||{born}|{sex}\rPV1|1|E|AE^^^RXX||||||||||||||||{visit}|||||||||||||||||||||||||{arrived}|{left}",
            now = hl7_time(&left),
            nhs = nhs_of(patient),
            family = code(patient, "/name/0/family"),
            given = code(patient, "/name/0/given/0"),
            born = code(patient, "/birthDate").replace('-', ""),
            arrived = hl7_time(&arrived),
            left = hl7_time(&left),
        );
        let same_day = |v: &&Value, path: &str| {
            reference_id(v, "/subject/reference") == patient_id
                && day(&code(v, path)) == day(&arrived)
        };
        let mut obx = 0;
        for (n, injury) in of_type(values, "Condition")
            .filter(|c| same_day(c, "/onsetDateTime"))
            .enumerate()
        {
            let coded = format!(
                "{}^{}^SCT",
                code(injury, "/code/coding/0/code"),
                code(injury, "/code/coding/0/display")
            );
            message.push_str(&format!(
                "\rDG1|{}||{coded}||{}",
                n + 1,
                hl7_time(&code(injury, "/recordedDate"))
            ));
            obx += 1;
            message.push_str(&format!(
                "\rOBX|{obx}|CWE|injury-type^Injury type^KINFOLD-INJ||{coded}"
            ));
        }
        for weight in of_type(values, "Observation").filter(|o| same_day(o, "/effectiveDateTime")) {
            obx += 1;
            message.push_str(&format!(
                "\rOBX|{obx}|NM|{}^{}^LN||{}|{}^{}^UCUM|||||F|||{}",
                code(weight, "/code/coding/0/code"),
                code(weight, "/code/coding/0/display"),
                weight
                    .pointer("/valueQuantity/value")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0),
                code(weight, "/valueQuantity/code"),
                code(weight, "/valueQuantity/code"),
                hl7_time(&code(weight, "/effectiveDateTime")),
            ));
        }
        messages.push(message);
    }
    let mut feeds = vec![Feed::Hl7v2(messages)];
    // Discharge letters and flags come from the EPR's FHIR document feed, about the patient
    // the ADT feed registered (`nhs-{number}`).
    let documents: Vec<Resource> = values
        .iter()
        .filter(|v| {
            matches!(
                v["resourceType"].as_str(),
                Some("DocumentReference" | "Flag")
            )
        })
        .filter_map(|v| {
            let patient = patients.get(&reference_id(v, "/subject/reference"))?;
            let mut v = v.clone();
            v["subject"] = json!({"reference": format!("Patient/nhs-{}", nhs_of(patient))});
            Resource::from_value(v).ok()
        })
        .collect();
    if !documents.is_empty() {
        feeds.push(Feed::Fhir(Box::new(crate::transaction(documents))));
    }
    feeds
}
