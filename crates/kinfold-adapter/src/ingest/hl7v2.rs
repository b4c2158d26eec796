//! The A&E feed's messages: an HL7 v2 ADT message (A01, A03, A04, A08; versions 2.3 to 2.8)
//! turned into the same [`Plan`] a FHIR Bundle becomes, stored whole or not at all.
//!
//! * `PID` becomes the Patient: identifiers from `PID-3` (an `NHS` assigning authority is the
//!   NHS number, which must pass its check digit), name `PID-5`, birth date `PID-7`, sex
//!   `PID-8` (`M`/`1` male, `F`/`2` female, `O` other, anything else unknown), address
//!   `PID-11`. Its id is `nhs-{number}`, or `mrn-{first identifier}` without one, so that a
//!   resent or updated message updates the same record.
//! * Each `NK1` becomes a RelatedPerson of the patient (name, relationship with its v3
//!   RoleCode, address, sex, date of birth, identifiers), for the gateway's family graph.
//! * `PV1` becomes the Encounter: class from `PV1-2` (`E` emergency, `I` inpatient, `O`
//!   outpatient), arrival `PV1-44`, departure `PV1-45`, discharge disposition `PV1-36`, the
//!   visit number `PV1-19` as identifier and id (`visit-{number}`, or `msg-{MSH-10}`). A03 and
//!   a message with a departure time finish the Encounter; others leave it in progress.
//! * HL7 times with a zone become FHIR dateTimes to the second. A time without a zone is kept
//!   to the day only: FHIR needs a zone, and guessing one would put a timestamp an hour out for
//!   half the year. The exact original stays in the message itself.
//!
//! * `PV2-3` (admit reason) is the presenting complaint, the Encounter's `reasonCode`.
//! * Each `DG1` becomes a Condition (an encounter diagnosis; SNOMED CT or ICD-10 by `DG1-3.3`).
//! * The ED safeguarding assessment comes as `OBX` segments whose `OBX-3` is coded in the
//!   `KINFOLD-SG` coding system (`docs/feeds/ae-hl7v2.md`): whether non-accidental injury was
//!   considered, whether a safeguarding referral was made, the children in the household, who
//!   accompanied the child. Each becomes an Observation in the `safeguarding` category. Other
//!   `OBX` segments are kept only in the original message.
//!
//! Every resource made is checked like any other ingest (FHIR primitive types); a fault is a
//! NAK naming the segment and field it came from.
//!
//! * Injuries: the standard `ACC` segment (time `ACC-1`, mechanism `ACC-2`, description
//!   `ACC-8`) and `OBX` segments coded `KINFOLD-INJ` (`injury-type`, `body-site`,
//!   `mechanism`) become one Condition tagged `injury`: code the type, `bodySite` the site,
//!   the mechanism in an extension, onset the time of the accident.
//! * A presenting complaint or diagnosis of overdose, self-harm, alcohol, assault or a
//!   mental-health crisis tags the Encounter, its diagnoses and its safeguarding answers
//!   (`ed-risk-overdose`, …): a parent's attendance for these is what a child's professionals
//!   need to know (G5).
//!
//! [`origin_of`] gives the message's provenance: `MSH-10`, the time recorded (`EVN-2`, else
//! `MSH-7`) and the operator (`EVN-5`).

use chrono_tz::Tz;
use kinfold_fhir::{NHS_NUMBER_SYSTEM, NhsNumber, Resource};
use kinfold_hl7v2::{Hl7Error, Message};
use serde_json::{Value, json};

use super::events::tag;
use super::{Atomicity, Author, Origin, Original, Plan};

/// The system of identifiers from `PID-3` whose assigning authority is not the NHS.
pub const ASSIGNER_SYSTEM: &str = "https://kinfold.example/fhir/NamingSystem/hl7v2-assigner";
/// The code system of `PV1-36` discharge dispositions, kept as the sender coded them.
pub const DISCHARGE_SYSTEM: &str =
    "https://kinfold.example/fhir/CodeSystem/hl7v2-discharge-disposition";

/// The code system of the ED safeguarding assessment's questions (`OBX-3.3` = `KINFOLD-SG`).
pub const SAFEGUARDING_SYSTEM: &str = "https://kinfold.example/fhir/CodeSystem/ed-safeguarding";
/// The Observation category that marks a safeguarding item.
pub const SAFEGUARDING_CATEGORY: &str =
    "https://kinfold.example/fhir/CodeSystem/observation-category";

/// The code system of the injury questions (`OBX-3.3` = `KINFOLD-INJ`).
pub const INJURY_SYSTEM: &str = "https://kinfold.example/fhir/CodeSystem/ed-injury";
/// The extension that carries an injury's mechanism on its Condition.
pub const MECHANISM_EXTENSION: &str =
    "https://kinfold.example/fhir/StructureDefinition/injury-mechanism";
/// The media type an HL7 v2 message is kept under.
pub const HL7V2_MEDIA_TYPE: &str = "x-application/hl7-v2+er7";

/// The ADT trigger events the A&E adapter takes: admit or visit (A01, A04), discharge (A03),
/// update (A08), pre-admit (A05), cancel admit or visit (A11), cancel discharge (A13), add
/// and update person (A28, A31), and merge patient (A40).
pub const TAKEN_EVENTS: [&str; 10] = [
    "A01", "A03", "A04", "A05", "A08", "A11", "A13", "A28", "A31", "A40",
];
/// The events about the person only: their `PV1`, if any, is not an attendance.
const PERSON_EVENTS: [&str; 3] = ["A28", "A31", "A40"];

/// The plan for one ADT message.
pub fn plan_adt(message: &Message<'_>) -> Result<Plan, Hl7Error> {
    read_adt(message, DEFAULT_SENDER_ZONE).map(|adt| adt.plan)
}

/// The time zone of an HL7 v2 sender's times without an offset, unless configured.
pub const DEFAULT_SENDER_ZONE: Tz = chrono_tz::Europe::London;

/// One ADT message read, its times without an offset being local times in `zone`: the plan,
/// and the values left out as unreadable.
pub fn read_adt(message: &Message<'_>, zone: Tz) -> Result<Adt, Hl7Error> {
    let warnings = Warnings::default();
    let plan = plan_with(message, zone, &warnings)?;
    Ok(Adt {
        plan,
        warnings: warnings.into_inner(),
    })
}

fn plan_with(message: &Message<'_>, zone: Tz, warnings: &Warnings) -> Result<Plan, Hl7Error> {
    let (code, event) = message.kind();
    if code != "ADT" || !TAKEN_EVENTS.contains(&event.as_str()) {
        return Err(Hl7Error::at(
            "MSH",
            1,
            9,
            format!(
                "{code}^{event} is not taken here (ADT {})",
                TAKEN_EVENTS.join(", ")
            ),
        ));
    }
    let pid_at = position(message, "PID")
        .ok_or_else(|| Hl7Error::at("PID", 0, 0, "an ADT message needs a PID segment"))?;
    let (patient_id, mut patient) = patient(message, pid_at, warnings)?;
    if event == "A40" {
        // The hospital merged one of its records (MRG-1) into this one: the surviving record
        // says which it replaces, for the gateway's person index.
        let replaced = merged_record(message)?;
        if replaced != patient_id {
            patient["link"] = json!([{"other": {"reference": format!("Patient/{replaced}")}, "type": "replaces"}]);
            tag(&mut patient, &["patient-merge"]);
        }
    }
    // An attendance for overdose, self-harm, alcohol, assault or a mental-health crisis:
    // the attendance, its diagnoses and its safeguarding answers all say so.
    let risks = risks(message);
    let mut entries = vec![Ok(resource(patient, "PID", pid_at)?)];
    let mut encounter_id = None;
    let attendance = !PERSON_EVENTS.contains(&event.as_str())
        && message.value("PV1", 2, 1, 1, 1).as_deref() != Some("N");
    if let Some(pv1_at) = position(message, "PV1").filter(|_| attendance) {
        let mut encounter = encounter(message, pv1_at, &patient_id, &event, zone, warnings)?;
        tag(&mut encounter, &risks);
        encounter_id = encounter["id"].as_str().map(str::to_owned);
        entries.push(Ok(resource(encounter, "PV1", pv1_at)?));
    }
    let context = Context {
        patient: patient_id,
        encounter: encounter_id,
        control_id: id_part(message.control_id().unwrap_or("unknown")),
        zone,
        warnings,
    };
    for (n, at) in positions(message, "DG1").into_iter().enumerate() {
        let mut condition = diagnosis(message, n + 1, &context)?;
        tag(&mut condition, &risks);
        entries.push(Ok(resource(condition, "DG1", at)?));
    }
    for (n, at) in positions(message, "OBX").into_iter().enumerate() {
        if let Some(mut observation) = safeguarding(message, n + 1, at, &context)? {
            tag(&mut observation, &risks);
            entries.push(Ok(resource(observation, "OBX", at)?));
        }
        if let Some(observation) = measurement(message, n + 1, at, &context)? {
            entries.push(Ok(resource(observation, "OBX", at)?));
        }
    }
    if let Some((condition, segment, at)) = injury(message, &context)? {
        entries.push(Ok(resource(condition, segment, at)?));
    }
    for (n, at) in positions(message, "NK1").into_iter().enumerate() {
        if let Some(related) = next_of_kin(message, n + 1, at, &context)? {
            entries.push(Ok(resource(related, "NK1", at)?));
        }
    }
    Ok(Plan {
        atomicity: Atomicity::Whole,
        entries,
    })
}

/// The message's provenance: its control id, when it was recorded, by whom, and its text.
pub fn origin_of(message: &Message<'_>, text: &str, zone: Tz) -> Origin {
    let recorded = message
        .value("EVN", 2, 1, 1, 1)
        .or_else(|| message.value("MSH", 7, 1, 1, 1))
        .and_then(|raw| date_time_in(&raw, zone));
    let author = {
        let part = |c| message.value("EVN", 5, 1, c, 1);
        let name: Vec<String> = [3, 2].iter().filter_map(|&c| part(c)).collect();
        (!name.is_empty()).then(|| Author {
            name: name.join(" "),
            role: Some("operator (EVN-5)".into()),
        })
    };
    Origin {
        message_id: message.control_id().map(str::to_owned),
        recorded,
        author,
        original: Some(Original {
            content_type: HL7V2_MEDIA_TYPE.into(),
            bytes: text.as_bytes().to_vec(),
        }),
    }
}

/// The attendance risks a presenting complaint or diagnosis names, as event codes.
fn risks(message: &Message<'_>) -> Vec<&'static str> {
    const RISKS: [(&str, &[&str], &[&str]); 5] = [
        // (event code, words in the text, SNOMED CT codes)
        (
            "ed-risk-overdose",
            &["overdose", "poisoning"],
            &["55680006", "1149222004"],
        ),
        (
            "ed-risk-self-harm",
            &["self-harm", "self harm", "self-injur"],
            &["248062006", "417163006"],
        ),
        (
            "ed-risk-alcohol",
            &["alcohol", "intoxicat", "drunk"],
            &["25702006", "15167005"],
        ),
        ("ed-risk-assault", &["assault"], &["52684005", "225962004"]),
        (
            "ed-risk-mental-health",
            &["mental health crisis", "suicid", "psychosis", "psychotic"],
            &["6471006", "69322001"],
        ),
    ];
    let mut said: Vec<(String, String)> = Vec::new();
    let mut add = |segment: &str, n: usize, field: usize| {
        let part = |c| {
            message
                .value_n(segment, n, field, 1, c, 1)
                .unwrap_or_default()
        };
        said.push((part(1), part(2).to_lowercase()));
    };
    add("PV2", 1, 3);
    for n in 1..=positions(message, "DG1").len() {
        add("DG1", n, 3);
    }
    RISKS
        .iter()
        .filter(|(_, words, codes)| {
            said.iter().any(|(code, text)| {
                codes.contains(&code.as_str()) || words.iter().any(|w| text.contains(w))
            })
        })
        .map(|(event, _, _)| *event)
        .collect()
}

/// HL7 v2 table 0063 (relationship) codes and the HL7 v3 RoleCode each is, where one is.
const RELATIONSHIPS: [(&str, &str); 14] = [
    ("MTH", "MTH"),
    ("FTH", "FTH"),
    ("PAR", "PRN"),
    ("GRD", "GUARD"),
    ("GRP", "GRPRN"),
    ("EXF", "EXT"),
    ("SPO", "SPS"),
    ("DOM", "DOMPART"),
    ("SIB", "SIB"),
    ("BRO", "BRO"),
    ("SIS", "SIS"),
    ("CHD", "CHILD"),
    ("FND", "FRND"),
    ("SEL", "ONESELF"),
];
/// The HL7 v2 table 0063 code system.
pub const V2_RELATIONSHIP_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v2-0063";

/// The `n`th `NK1` (next of kin or associated party) as a RelatedPerson of the patient:
/// name `NK1-2`, relationship `NK1-3` (table 0063, with its v3 RoleCode where there is one),
/// address `NK1-4`, sex `NK1-15`, date of birth `NK1-16`, identifiers `NK1-33` (an `NHS`
/// assigning authority is the NHS number). An `NK1` naming nobody is skipped.
fn next_of_kin(
    message: &Message<'_>,
    n: usize,
    at: usize,
    context: &Context<'_>,
) -> Result<Option<Value>, Hl7Error> {
    let patient_id = context.patient.as_str();
    let part = |field, c| message.value_n("NK1", n, field, 1, c, 1);
    let family = part(2, 1);
    let given: Vec<String> = [2, 3].iter().filter_map(|&c| part(2, c)).collect();
    if family.is_none() && given.is_empty() {
        return Ok(None);
    }
    let mut id = format!("nk1-{n}-{patient_id}");
    id.truncate(64);
    let mut related = json!({
        "resourceType": "RelatedPerson",
        "id": id,
        "patient": {"reference": format!("Patient/{patient_id}")},
    });
    let mut name = json!({});
    if let Some(family) = family {
        name["family"] = json!(family);
    }
    if !given.is_empty() {
        name["given"] = json!(given);
    }
    related["name"] = json!([name]);
    if let Some(code) = part(3, 1) {
        let text = part(3, 2);
        let mut coding = Vec::new();
        if let Some((_, v3)) = RELATIONSHIPS.iter().find(|(v2, _)| *v2 == code) {
            coding.push(json!({"system": super::events::ROLE_CODE_SYSTEM, "code": v3}));
        }
        let mut v2 = json!({"system": V2_RELATIONSHIP_SYSTEM, "code": code});
        if let Some(text) = &text {
            v2["display"] = json!(text);
        }
        coding.push(v2);
        let mut concept = json!({"coding": coding});
        if let Some(text) = text {
            concept["text"] = json!(text);
        }
        related["relationship"] = json!([concept]);
    }
    let mut identifiers = Vec::new();
    for r in 1..=message.repetitions_n("NK1", n, 33) {
        let Some(value) = message.value_n("NK1", n, 33, r, 1, 1) else {
            continue;
        };
        let authority = message.value_n("NK1", n, 33, r, 4, 1).unwrap_or_default();
        if authority.eq_ignore_ascii_case("NHS") {
            let number: NhsNumber = value
                .parse()
                .map_err(|e| Hl7Error::at("NK1", at, 33, format!("NK1-33 repetition {r}: {e}")))?;
            identifiers.push(json!({"system": NHS_NUMBER_SYSTEM, "value": number.as_str()}));
        } else {
            identifiers.push(json!({"system": ASSIGNER_SYSTEM, "value": value}));
        }
    }
    if !identifiers.is_empty() {
        related["identifier"] = json!(identifiers);
    }
    let address: Vec<(usize, &str)> = vec![(3, "city"), (5, "postalCode")];
    let line = part(4, 1);
    if line.is_some() || part(4, 5).is_some() {
        let mut value = json!({});
        if let Some(line) = line {
            value["line"] = json!([line]);
        }
        for (c, element) in address {
            if let Some(v) = part(4, c) {
                value[element] = json!(v);
            }
        }
        related["address"] = json!([value]);
    }
    if let Some(sex) = part(15, 1) {
        related["gender"] = json!(match sex.as_str() {
            "M" | "1" => "male",
            "F" | "2" => "female",
            "O" => "other",
            _ => "unknown",
        });
    }
    if let Some(born) = part(16, 1) {
        match birth_date_of(&born) {
            Some(date) => related["birthDate"] = json!(date),
            None => context.warnings.push(Hl7Error::at(
                "NK1",
                at,
                16,
                format!("NK1-16 '{born}' is not a date of birth: left out"),
            )),
        }
    }
    tag(&mut related, &["next-of-kin"]);
    Ok(Some(related))
}

/// The injury, from `ACC` and the `KINFOLD-INJ` questions, with the segment it is located at.
fn injury(
    message: &Message<'_>,
    context: &Context,
) -> Result<Option<(Value, &'static str, usize)>, Hl7Error> {
    let mut kind = None;
    let mut site = None;
    let mut mechanism = None;
    let mut first_at = None;
    for (n, at) in positions(message, "OBX").into_iter().enumerate() {
        let n = n + 1;
        if message.value_n("OBX", n, 3, 1, 3, 1).as_deref() != Some("KINFOLD-INJ") {
            continue;
        }
        first_at.get_or_insert(at);
        let question = message.value_n("OBX", n, 3, 1, 1, 1).unwrap_or_default();
        let answer = concept(message, "OBX", n, 5).ok_or_else(|| {
            Hl7Error::at(
                "OBX",
                at,
                5,
                format!("OBX-5 gives no answer to '{question}'"),
            )
        })?;
        match question.as_str() {
            "injury-type" => kind = Some(answer),
            "body-site" => site = Some(answer),
            "mechanism" => mechanism = Some(answer),
            other => {
                return Err(Hl7Error::at(
                    "OBX",
                    at,
                    3,
                    format!("'{other}' is not an injury question (docs/feeds/ae-hl7v2.md)"),
                ));
            }
        }
    }
    let acc_at = position(message, "ACC");
    if mechanism.is_none() && acc_at.is_some() {
        mechanism = concept(message, "ACC", 1, 2).or_else(|| {
            message
                .value("ACC", 8, 1, 1, 1)
                .map(|text| json!({"text": text}))
        });
    }
    let Some((segment, at)) = first_at
        .map(|at| ("OBX", at))
        .or_else(|| acc_at.map(|at| ("ACC", at)))
    else {
        return Ok(None);
    };
    let mut condition = json!({
        "resourceType": "Condition",
        "id": context.id("injury", 1),
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item"}], "text": "Injury"}],
        "code": kind.unwrap_or_else(|| json!({"text": "Injury"})),
    });
    context.link(&mut condition);
    if let Some(site) = site {
        condition["bodySite"] = json!([site]);
    }
    if let Some(mechanism) = mechanism {
        condition["extension"] =
            json!([{"url": MECHANISM_EXTENSION, "valueCodeableConcept": mechanism}]);
    }
    if let Some(at) = acc_at
        && let Some(raw) = message.value("ACC", 1, 1, 1, 1)
    {
        let when = date_time_in(&raw, context.zone)
            .ok_or_else(|| Hl7Error::at("ACC", at, 1, format!("ACC-1 '{raw}' is not a time")))?;
        condition["onsetDateTime"] = json!(when);
    }
    if let Some(description) = message.value("ACC", 8, 1, 1, 1) {
        condition["note"] = json!([{"text": description}]);
    }
    tag(&mut condition, &["injury"]);
    Ok(Some((condition, segment, at)))
}

/// The position (from 1) of the first segment with this name.
fn position(message: &Message<'_>, name: &str) -> Option<usize> {
    message
        .segments()
        .find(|(segment, _)| *segment == name)
        .map(|(_, at)| at)
}

/// The positions (from 1) of every segment with this name.
fn positions(message: &Message<'_>, name: &str) -> Vec<usize> {
    message
        .segments()
        .filter(|(segment, _)| *segment == name)
        .map(|(_, at)| at)
        .collect()
}

/// Values Kinfold could not read and left out, outside what it needs to file the message:
/// each is answered `AA` with an `ERR` of severity `W` naming it.
#[derive(Debug, Default)]
pub struct Warnings(std::cell::RefCell<Vec<Hl7Error>>);

impl Warnings {
    fn push(&self, warning: Hl7Error) {
        self.0.borrow_mut().push(warning);
    }

    /// What was left out, in message order.
    pub fn into_inner(self) -> Vec<Hl7Error> {
        self.0.into_inner()
    }
}

/// One ADT message read: what to store, and what was left out.
#[derive(Debug)]
pub struct Adt {
    /// What to store.
    pub plan: Plan,
    /// What could not be read and was left out (answered as warnings).
    pub warnings: Vec<Hl7Error>,
}

/// Whom and what the records of one message are about.
struct Context<'w> {
    warnings: &'w Warnings,
    patient: String,
    encounter: Option<String>,
    control_id: String,
    /// The sender's time zone, for times without an offset.
    zone: Tz,
}

impl Context<'_> {
    /// The id of a record that belongs to this attendance (or, without one, this message).
    fn id(&self, kind: &str, n: usize) -> String {
        let owner = self
            .encounter
            .clone()
            .unwrap_or_else(|| format!("msg-{}", self.control_id));
        let mut id = format!("{kind}-{n}-{owner}");
        id.truncate(64);
        id
    }

    fn link(&self, resource: &mut Value) {
        resource["subject"] = json!({"reference": format!("Patient/{}", self.patient)});
        if let Some(encounter) = &self.encounter {
            resource["encounter"] = json!({"reference": format!("Encounter/{encounter}")});
        }
    }
}

/// A coded element (`CE`/`CWE`: code, text, coding system) as a FHIR CodeableConcept.
fn concept(message: &Message<'_>, segment: &str, n: usize, field: usize) -> Option<Value> {
    let part = |c| message.value_n(segment, n, field, 1, c, 1);
    let (code, text, system) = (part(1), part(2), part(3));
    if code.is_none() && text.is_none() {
        return None;
    }
    let mut concept = json!({});
    if let Some(code) = code {
        let system = match system.as_deref().map(str::to_ascii_uppercase).as_deref() {
            Some("SCT" | "SNOMED" | "SNM" | "SNOMEDCT") => "http://snomed.info/sct".to_owned(),
            Some("I10" | "ICD10" | "ICD-10") => "http://hl7.org/fhir/sid/icd-10".to_owned(),
            Some(other) => format!("{ASSIGNER_SYSTEM}/coding-system/{}", id_part(other)),
            None => format!("{ASSIGNER_SYSTEM}/coding-system"),
        };
        let mut coding = json!({"system": system, "code": code});
        if let Some(text) = &text {
            coding["display"] = json!(text);
        }
        concept["coding"] = json!([coding]);
    }
    if let Some(text) = text {
        concept["text"] = json!(text);
    }
    Some(concept)
}

/// The `n`th `DG1` as an encounter diagnosis.
fn diagnosis(message: &Message<'_>, n: usize, context: &Context) -> Result<Value, Hl7Error> {
    let at = positions(message, "DG1")[n - 1];
    let code = concept(message, "DG1", n, 3)
        .ok_or_else(|| Hl7Error::at("DG1", at, 3, "DG1-3 gives no diagnosis code"))?;
    let mut condition = json!({
        "resourceType": "Condition",
        "id": context.id("dg", n),
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "encounter-diagnosis"}]}],
        "code": code,
    });
    context.link(&mut condition);
    if let Some(raw) = message.value_n("DG1", n, 5, 1, 1, 1) {
        match date_time_in(&raw, context.zone) {
            Some(when) => condition["recordedDate"] = json!(when),
            None => context.warnings.push(Hl7Error::at(
                "DG1",
                at,
                5,
                format!("DG1-5 '{raw}' is not a time: left out"),
            )),
        }
    }
    Ok(condition)
}

/// The `n`th `OBX`, if it is a question of the ED safeguarding assessment.
fn safeguarding(
    message: &Message<'_>,
    n: usize,
    at: usize,
    context: &Context,
) -> Result<Option<Value>, Hl7Error> {
    if message.value_n("OBX", n, 3, 1, 3, 1).as_deref() != Some("KINFOLD-SG") {
        return Ok(None);
    }
    let code = message.value_n("OBX", n, 3, 1, 1, 1).unwrap_or_default();
    let answer = message
        .value_n("OBX", n, 5, 1, 1, 1)
        .ok_or_else(|| Hl7Error::at("OBX", at, 5, format!("OBX-5 gives no answer to '{code}'")))?;
    let yes_no = |answer: &str| match answer {
        "Y" | "y" => Ok(true),
        "N" | "n" => Ok(false),
        other => Err(Hl7Error::at(
            "OBX",
            at,
            5,
            format!("OBX-5 '{other}' is not Y or N"),
        )),
    };
    let (display, value) = match code.as_str() {
        "nai-considered" => (
            "Non-accidental injury considered",
            json!({"valueBoolean": yes_no(&answer)?}),
        ),
        "safeguarding-referral" => (
            "Safeguarding referral made",
            json!({"valueBoolean": yes_no(&answer)?}),
        ),
        "children-in-household" => {
            let count: u32 = answer.parse().map_err(|_| {
                Hl7Error::at(
                    "OBX",
                    at,
                    5,
                    format!("OBX-5 '{answer}' is not a number of children"),
                )
            })?;
            ("Children in the household", json!({"valueInteger": count}))
        }
        "accompanied-by" => ("Accompanied by", json!({"valueString": answer})),
        other => {
            return Err(Hl7Error::at(
                "OBX",
                at,
                3,
                format!(
                    "'{other}' is not a question of the ED safeguarding assessment (docs/feeds/ae-hl7v2.md)"
                ),
            ));
        }
    };
    let mut observation = json!({
        "resourceType": "Observation",
        "id": context.id(&format!("sg-{code}"), n),
        "status": "final",
        "category": [{"coding": [{"system": SAFEGUARDING_CATEGORY, "code": "safeguarding", "display": "Safeguarding"}]}],
        "code": {"coding": [{"system": SAFEGUARDING_SYSTEM, "code": code, "display": display}]},
    });
    context.link(&mut observation);
    if let Some(object) = observation.as_object_mut()
        && let Value::Object(value) = value
    {
        object.extend(value);
    }
    if let Some(raw) = message.value_n("OBX", n, 14, 1, 1, 1) {
        let Some(when) = date_time_in(&raw, context.zone) else {
            context.warnings.push(Hl7Error::at(
                "OBX",
                at,
                14,
                format!("OBX-14 '{raw}' is not a time: left out"),
            ));
            return Ok(Some(observation));
        };
        observation["effectiveDateTime"] = json!(when);
    }
    Ok(Some(observation))
}

/// The `n`th `OBX`, if it is a growth measurement coded in LOINC (`OBX-3.3` `LN`): weight,
/// height, length, head circumference or BMI, as a vital-signs Observation the growth chart
/// reads.
fn measurement(
    message: &Message<'_>,
    n: usize,
    at: usize,
    context: &Context,
) -> Result<Option<Value>, Hl7Error> {
    use kinfold_fhir::codes::{
        LOINC, LOINC_BMI, LOINC_HEAD, LOINC_HEIGHT, LOINC_LENGTH, LOINC_WEIGHT,
    };
    if !matches!(
        message.value_n("OBX", n, 3, 1, 3, 1).as_deref(),
        Some("LN" | "LOINC")
    ) {
        return Ok(None);
    }
    let code = message.value_n("OBX", n, 3, 1, 1, 1).unwrap_or_default();
    let (display, units): (&str, &[&str]) = match code.as_str() {
        LOINC_WEIGHT => ("Body weight", &["kg"]),
        LOINC_HEIGHT => ("Body height", &["cm"]),
        LOINC_LENGTH => ("Body length", &["cm"]),
        LOINC_HEAD => ("Head circumference", &["cm"]),
        LOINC_BMI => ("Body mass index", &["kg/m2"]),
        _ => return Ok(None),
    };
    let raw = message
        .value_n("OBX", n, 5, 1, 1, 1)
        .ok_or_else(|| Hl7Error::at("OBX", at, 5, format!("OBX-5 gives no value for {code}")))?;
    let value: f64 = raw
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .ok_or_else(|| Hl7Error::at("OBX", at, 5, format!("OBX-5 '{raw}' is not a measurement")))?;
    let unit = message.value_n("OBX", n, 6, 1, 1, 1).unwrap_or_default();
    if !units.contains(&unit.as_str()) {
        return Err(Hl7Error::at(
            "OBX",
            at,
            6,
            format!(
                "OBX-6 '{unit}' is not the unit of {display} ({})",
                units.join(", ")
            ),
        ));
    }
    let mut observation = json!({
        "resourceType": "Observation",
        "id": context.id(&format!("vs-{code}"), n),
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
    });
    context.link(&mut observation);
    let when = message
        .value_n("OBX", n, 14, 1, 1, 1)
        .or_else(|| message.value("PV1", 44, 1, 1, 1));
    if let Some(raw) = when {
        let when = date_time_in(&raw, context.zone)
            .ok_or_else(|| Hl7Error::at("OBX", at, 14, format!("OBX-14 '{raw}' is not a time")))?;
        observation["effectiveDateTime"] = json!(when);
    }
    tag(&mut observation, &["growth-measurement"]);
    Ok(Some(observation))
}

/// Checks a made resource like any ingested one; a fault names its segment.
fn resource(value: Value, segment: &str, at: usize) -> Result<Resource, Hl7Error> {
    kinfold_fhir::primitive::check_resource(&value, "").map_err(|e| {
        Hl7Error::at(
            segment,
            at,
            0,
            format!("{segment} gives an invalid value: {e}"),
        )
    })?;
    Resource::from_value(value).map_err(|e| Hl7Error::at(segment, at, 0, e.to_string()))
}

/// The id (as [`patient`] makes ids) of the record an A40 merges away: `MRG-1`, prior patient
/// identifier list (an `NHS` assigning authority is the NHS number).
fn merged_record(message: &Message<'_>) -> Result<String, Hl7Error> {
    let at = position(message, "MRG").ok_or_else(|| {
        Hl7Error::at(
            "MRG",
            0,
            0,
            "an A40 needs an MRG segment naming the record merged",
        )
    })?;
    let mut first = None;
    for n in 1..=message.repetitions("MRG", 1) {
        let Some(value) = message.value("MRG", 1, n, 1, 1) else {
            continue;
        };
        let authority = message.value("MRG", 1, n, 4, 1).unwrap_or_default();
        if authority.eq_ignore_ascii_case("NHS") {
            let number: NhsNumber = value
                .parse()
                .map_err(|e| Hl7Error::at("MRG", at, 1, format!("MRG-1 repetition {n}: {e}")))?;
            return Ok(format!("nhs-{}", number.as_str()));
        }
        first.get_or_insert(value);
    }
    first
        .map(|id| format!("mrn-{}", id_part(&id)))
        .ok_or_else(|| Hl7Error::at("MRG", at, 1, "MRG-1 names no prior patient identifier"))
}

fn patient(
    message: &Message<'_>,
    at: usize,
    warnings: &Warnings,
) -> Result<(String, Value), Hl7Error> {
    let mut identifiers = Vec::new();
    let mut nhs = None;
    for n in 1..=message.repetitions("PID", 3) {
        let Some(value) = message.value("PID", 3, n, 1, 1) else {
            continue;
        };
        let authority = message.value("PID", 3, n, 4, 1).unwrap_or_default();
        if authority.eq_ignore_ascii_case("NHS") {
            let number: NhsNumber = value
                .parse()
                .map_err(|e| Hl7Error::at("PID", at, 3, format!("PID-3 repetition {n}: {e}")))?;
            identifiers.push(json!({"system": NHS_NUMBER_SYSTEM, "value": number.as_str()}));
            nhs.get_or_insert(number);
        } else {
            let system = if authority.is_empty() {
                ASSIGNER_SYSTEM.to_owned()
            } else {
                format!("{ASSIGNER_SYSTEM}/{}", id_part(&authority))
            };
            identifiers.push(json!({"system": system, "value": value}));
        }
    }
    let id = match (&nhs, identifiers.first()) {
        (Some(number), _) => format!("nhs-{number}", number = number.as_str()),
        (None, Some(first)) => format!("mrn-{}", id_part(first["value"].as_str().unwrap_or(""))),
        (None, None) => {
            return Err(Hl7Error::at(
                "PID",
                at,
                3,
                "PID-3 gives no patient identifier",
            ));
        }
    };
    let mut patient = json!({"resourceType": "Patient", "id": id, "identifier": identifiers});
    let family = message.value("PID", 5, 1, 1, 1);
    let given: Vec<String> = [2, 3]
        .iter()
        .filter_map(|&c| message.value("PID", 5, 1, c, 1))
        .collect();
    if family.is_some() || !given.is_empty() {
        let mut name = json!({"use": "official"});
        if let Some(family) = family {
            name["family"] = json!(family);
        }
        if !given.is_empty() {
            name["given"] = json!(given);
        }
        if let Some(prefix) = message.value("PID", 5, 1, 5, 1) {
            name["prefix"] = json!([prefix]);
        }
        patient["name"] = json!([name]);
    }
    if let Some(born) = message.value("PID", 7, 1, 1, 1) {
        // An impossible date of birth is left out (the person is filed by the rest), and
        // the sender is told.
        match birth_date_of(&born) {
            Some(date) => patient["birthDate"] = json!(date),
            None => warnings.push(Hl7Error::at(
                "PID",
                at,
                7,
                format!("PID-7 '{born}' is not a date of birth: left out"),
            )),
        }
    }
    if let Some(sex) = message.value("PID", 8, 1, 1, 1) {
        patient["gender"] = json!(match sex.as_str() {
            "M" | "1" => "male",
            "F" | "2" => "female",
            "O" => "other",
            _ => "unknown",
        });
    }
    if message.value("PID", 11, 1, 1, 1).is_some() || message.value("PID", 11, 1, 5, 1).is_some() {
        let part = |c| message.value("PID", 11, 1, c, 1);
        let mut address = json!({});
        let lines: Vec<String> = [1, 2].iter().filter_map(|&c| part(c)).collect();
        if !lines.is_empty() {
            address["line"] = json!(lines);
        }
        for (c, element) in [
            (3, "city"),
            (4, "district"),
            (5, "postalCode"),
            (6, "country"),
        ] {
            if let Some(value) = part(c) {
                address[element] = json!(value);
            }
        }
        patient["address"] = json!([address]);
    }
    Ok((id, patient))
}

fn encounter(
    message: &Message<'_>,
    at: usize,
    patient_id: &str,
    event: &str,
    zone: Tz,
    warnings: &Warnings,
) -> Result<Value, Hl7Error> {
    let visit = message.value("PV1", 19, 1, 1, 1);
    let id = match &visit {
        Some(number) => format!("visit-{}", id_part(number)),
        None => format!("msg-{}", id_part(message.control_id().unwrap_or("unknown"))),
    };
    let mut encounter = json!({
        "resourceType": "Encounter",
        "id": id,
        "subject": {"reference": format!("Patient/{patient_id}")},
    });
    if let Some(number) = &visit {
        encounter["identifier"] =
            json!([{"system": format!("{ASSIGNER_SYSTEM}/visit-number"), "value": number}]);
    }
    let class = match message.value("PV1", 2, 1, 1, 1).as_deref() {
        Some("E") => Some(("EMER", "emergency")),
        Some("I") => Some(("IMP", "inpatient encounter")),
        Some("O") => Some(("AMB", "ambulatory")),
        _ => None,
    };
    if let Some((code, display)) = class {
        encounter["class"] = json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": code, "display": display});
    }
    let time = |field: usize| -> Result<Option<String>, Hl7Error> {
        message
            .value("PV1", field, 1, 1, 1)
            .map(|raw| {
                date_time_in(&raw, zone).ok_or_else(|| {
                    Hl7Error::at(
                        "PV1",
                        at,
                        field,
                        format!("PV1-{field} '{raw}' is not a time"),
                    )
                })
            })
            .transpose()
    };
    // The arrival is what the rules use (the emergency department's relationship window); a
    // departure that cannot be read is left out with a warning.
    let arrived = time(44)?;
    let left = time(45).unwrap_or_else(|warning| {
        warnings.push(Hl7Error {
            message: format!("{}: left out", warning.message),
            ..warning
        });
        None
    });
    if arrived.is_some() || left.is_some() {
        let mut period = json!({});
        if let Some(start) = arrived {
            period["start"] = json!(start);
        }
        if let Some(end) = &left {
            period["end"] = json!(end);
        }
        encounter["period"] = period;
    }
    encounter["status"] = json!(match event {
        // A pre-admission is planned; a cancelled admission or visit did not happen.
        "A05" => "planned",
        "A11" => "cancelled",
        // A cancelled discharge puts the patient back in the department.
        "A13" => "in-progress",
        "A03" => "finished",
        _ if left.is_some() => "finished",
        _ => "in-progress",
    });
    if let Some(reason) = concept(message, "PV2", 1, 3) {
        encounter["reasonCode"] = json!([reason]);
    }
    if let Some(disposition) = message.value("PV1", 36, 1, 1, 1) {
        encounter["hospitalization"] = json!({"dischargeDisposition": {"coding": [{"system": DISCHARGE_SYSTEM, "code": disposition}]}});
    }
    Ok(encounter)
}

/// Text made safe for part of a FHIR id (at most 56 characters).
fn id_part(text: &str) -> String {
    super::id_part(text, 56)
}

/// `YYYYMMDD` as a FHIR date, if it is a real one.
/// A date of birth (`PID-7`, `NK1-16`) at the precision sent: `YYYY`, `YYYY-MM` or
/// `YYYY-MM-DD` (a time of birth after it is left in the message).
fn birth_date_of(raw: &str) -> Option<String> {
    let digits: &str = raw.trim().split(['+', '-', '.']).next().unwrap_or_default();
    let cut = match digits.len() {
        4 | 6 | 8 => digits,
        n if n > 8 => digits.get(..8)?,
        _ => return None,
    };
    date_time_in(cut, DEFAULT_SENDER_ZONE)
}

/// An HL7 time (`YYYYMMDD[HHMM[SS[.S…]]][±ZZZZ]`) as a FHIR dateTime: to the second with its
/// zone, or, without a zone, the day only.
/// An HL7 v2 `DTM`/`TS` as a FHIR date or dateTime at the precision it was sent:
/// `YYYY`, `YYYYMM`, `YYYYMMDD`, then hours, minutes, seconds and up to four decimals of a
/// second, with an optional `+ZZZZ`/`-ZZZZ` offset. A time without an offset is the sender's
/// local time in `zone` (its offset that day from the tz database: GMT in winter, BST in
/// summer); a local time that does not exist (the hour clocks go forward) is read an hour
/// later, and one that happens twice (the hour they go back) as the first.
fn date_time_in(raw: &str, zone: Tz) -> Option<String> {
    let raw = raw.trim();
    let (body, offset) = match raw.get(4..).and_then(|rest| rest.find(['+', '-'])) {
        Some(at) => (&raw[..at + 4], Some(&raw[at + 4..])),
        None => (raw, None),
    };
    let (digits, fraction) = match body.split_once('.') {
        Some((digits, fraction)) => (digits, Some(fraction)),
        None => (body, None),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit())
        || fraction
            .is_some_and(|f| f.is_empty() || f.len() > 4 || !f.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let number =
        |range: std::ops::Range<usize>| digits.get(range).and_then(|d| d.parse::<u32>().ok());
    let year = i32::try_from(number(0..4)?).ok()?;
    let value = match digits.len() {
        4 if fraction.is_none() && offset.is_none() => format!("{year:04}"),
        6 if fraction.is_none() && offset.is_none() => {
            let month = number(4..6)?;
            chrono::NaiveDate::from_ymd_opt(year, month, 1)?;
            format!("{year:04}-{month:02}")
        }
        8 if fraction.is_none() && offset.is_none() => {
            chrono::NaiveDate::from_ymd_opt(year, number(4..6)?, number(6..8)?)?
                .format("%Y-%m-%d")
                .to_string()
        }
        10 | 12 | 14 => {
            let date = chrono::NaiveDate::from_ymd_opt(year, number(4..6)?, number(6..8)?)?;
            let time = chrono::NaiveTime::from_hms_opt(
                number(8..10)?,
                number(10..12).unwrap_or(0),
                number(12..14).unwrap_or(0),
            )?;
            let local = date.and_time(time);
            let fixed = match offset {
                Some(offset) => {
                    let sign = if offset.starts_with('-') { -1 } else { 1 };
                    let hhmm = offset.get(1..)?;
                    if hhmm.len() != 4 || !hhmm.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    let (h, m): (i32, i32) = (hhmm[..2].parse().ok()?, hhmm[2..].parse().ok()?);
                    if h > 14 || m > 59 {
                        return None;
                    }
                    let offset = chrono::FixedOffset::east_opt(sign * (h * 3600 + m * 60))?;
                    local.and_local_timezone(offset).single()?.fixed_offset()
                }
                None => {
                    use chrono::TimeZone;
                    let in_zone = zone.from_local_datetime(&local).earliest().or_else(|| {
                        zone.from_local_datetime(&(local + chrono::Duration::hours(1)))
                            .earliest()
                    })?;
                    in_zone.fixed_offset()
                }
            };
            let seconds = fixed.format("%Y-%m-%dT%H:%M:%S").to_string();
            let offset = fixed.format("%:z").to_string();
            match fraction {
                Some(fraction) => format!("{seconds}.{fraction}{offset}"),
                None => format!("{seconds}{offset}"),
            }
        }
        _ => return None,
    };
    kinfold_fhir::primitive::Primitive::DateTime
        .accepts(&value)
        .then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A01: &str = "MSH|^~\\&|EPR|RXX|KINFOLD|AE|20250611100000||ADT^A01^ADT_A01|MSG0001|P|2.4\rEVN|A01|20250611100000\rPID|1||9434765919^^^NHS^NH~H123^^^RXX^MR||W\\XC3B3\\jcik^\\XC581\\ucja^^^Miss||20210811|2|||1 Elm Row^^Leeds^^LS1 1AA^GBR\rPV1|1|E|AE^^^RXX||||||||||||||||V123|||||||||||||||||01||||||||20250611093000+0100";

    fn plan(text: &str) -> Result<Plan, Hl7Error> {
        plan_adt(&Message::parse(text).expect("parses"))
    }

    fn json_of(plan: &Plan, n: usize) -> Value {
        serde_json::to_value(plan.entries[n].as_ref().expect("planned")).expect("json")
    }

    #[test]
    fn an_a_and_e_attendance_becomes_a_patient_and_an_emergency_encounter() {
        let plan = plan(A01).expect("plans");
        assert_eq!(plan.atomicity, Atomicity::Whole);
        let patient = json_of(&plan, 0);
        assert_eq!(patient["id"], "nhs-9434765919");
        assert_eq!(patient["identifier"][0]["system"], NHS_NUMBER_SYSTEM);
        assert_eq!(patient["identifier"][1]["value"], "H123");
        assert_eq!(patient["name"][0]["family"], "Wójcik");
        assert_eq!(patient["name"][0]["given"][0], "Łucja");
        assert_eq!(patient["birthDate"], "2021-08-11");
        assert_eq!(patient["gender"], "female");
        assert_eq!(patient["address"][0]["postalCode"], "LS1 1AA");
        let encounter = json_of(&plan, 1);
        assert_eq!(encounter["id"], "visit-V123");
        assert_eq!(encounter["class"]["code"], "EMER");
        assert_eq!(encounter["status"], "in-progress");
        assert_eq!(encounter["period"]["start"], "2025-06-11T09:30:00+01:00");
        assert_eq!(encounter["subject"]["reference"], "Patient/nhs-9434765919");
        assert_eq!(
            encounter["hospitalization"]["dischargeDisposition"]["coding"][0]["code"],
            "01"
        );
    }

    #[test]
    fn times_keep_their_zone_and_precision_and_local_times_their_hour() {
        let london = DEFAULT_SENDER_ZONE;
        let at = |raw: &str| date_time_in(raw, london);
        assert_eq!(
            at("20250611093015+0000").as_deref(),
            Some("2025-06-11T09:30:15+00:00")
        );
        assert_eq!(
            at("202506110930-0500").as_deref(),
            Some("2025-06-11T09:30:00-05:00")
        );
        // Every legal precision, kept at that precision.
        assert_eq!(at("2013").as_deref(), Some("2013"));
        assert_eq!(at("201306").as_deref(), Some("2013-06"));
        assert_eq!(at("20250611").as_deref(), Some("2025-06-11"));
        assert_eq!(
            at("2025061103").as_deref(),
            Some("2025-06-11T03:00:00+01:00")
        );
        assert_eq!(
            at("20250611093015.1234+0100").as_deref(),
            Some("2025-06-11T09:30:15.1234+01:00")
        );
        // No offset: the sender's local time, BST in summer and GMT in winter (an arrival at
        // 03:00 keeps its hour).
        assert_eq!(
            at("202506110300").as_deref(),
            Some("2025-06-11T03:00:00+01:00")
        );
        assert_eq!(
            at("202501150300").as_deref(),
            Some("2025-01-15T03:00:00+00:00")
        );
        // The hour the clocks go forward does not exist: read an hour later; the hour they go
        // back happens twice: read as the first.
        assert_eq!(
            at("202503300130").as_deref(),
            Some("2025-03-30T02:30:00+01:00")
        );
        assert_eq!(
            at("202510260130").as_deref(),
            Some("2025-10-26T01:30:00+01:00")
        );
        // Another sender's zone.
        assert_eq!(
            date_time_in("202506110300", chrono_tz::America::New_York).as_deref(),
            Some("2025-06-11T03:00:00-04:00")
        );
        for bad in [
            "20250231",
            "2025061109+2500",
            "20251",
            "2025061109.",
            "abcd",
            "201313",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }

    #[test]
    fn faults_are_located_in_the_message() {
        let bad_nhs = A01.replace("9434765919", "9434765918");
        let err = plan(&bad_nhs).unwrap_err();
        assert_eq!((err.segment.as_deref(), err.field), (Some("PID"), Some(3)));
        // An impossible date of birth is left out and warned about, not refused.
        let bad_birth = A01.replace("|20210811|", "|20210230|");
        let read = read_adt(
            &Message::parse(&bad_birth).expect("parses"),
            DEFAULT_SENDER_ZONE,
        )
        .expect("taken");
        let warning = &read.warnings[0];
        assert_eq!(
            (warning.segment.as_deref(), warning.field),
            (Some("PID"), Some(7))
        );
        let bad_time = A01.replace("20250611093000+0100", "2025061199+0100");
        let err = plan(&bad_time).unwrap_err();
        assert_eq!((err.segment.as_deref(), err.field), (Some("PV1"), Some(44)));
        let other = A01.replace("ADT^A01^ADT_A01", "ORU^R01");
        let err = plan(&other).unwrap_err();
        assert_eq!((err.segment.as_deref(), err.field), (Some("MSH"), Some(9)));
    }

    #[test]
    fn every_real_adt_message_is_planned_or_refused_with_a_location() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance/hl7v2");
        let mut planned = 0;
        for entry in std::fs::read_dir(dir).expect("conformance messages") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "hl7") {
                continue;
            }
            let bytes = std::fs::read(&path).expect("readable");
            let text = kinfold_hl7v2::decode(&bytes);
            let message = Message::parse(&text).expect("every real message reads");
            match plan_adt(&message) {
                Ok(plan) => {
                    planned += 1;
                    assert!(!plan.entries.is_empty(), "{}", path.display());
                    eprintln!(
                        "planned {}: {} resources",
                        path.display(),
                        plan.entries.len()
                    );
                }
                Err(e) => {
                    assert!(e.segment.is_some(), "{}: {e:?}", path.display());
                    eprintln!("refused {}: {e}", path.display());
                }
            }
        }
        assert!(planned >= 5, "most real messages plan: {planned}");
    }

    #[test]
    fn the_safeguarding_assessment_diagnosis_and_complaint_are_kept_as_structured_data() {
        let message = format!(
            "{A01}\rPV2|||Q\\S\\R^Fall from height^LOCAL\rDG1|1||125605004^Fracture of bone^SCT||20250611101500+0100\rOBX|1|CE|nai-considered^Non-accidental injury considered^KINFOLD-SG||Y\rOBX|2|CE|safeguarding-referral^Safeguarding referral made^KINFOLD-SG||N\rOBX|3|NM|children-in-household^Children in the household^KINFOLD-SG||3\rOBX|4|ST|accompanied-by^Accompanied by^KINFOLD-SG||Mother's partner\rOBX|5|NM|8867-4^Heart rate^LN||110"
        );
        let plan = plan(&message).expect("plans");
        let all: Vec<Value> = (0..plan.entries.len()).map(|n| json_of(&plan, n)).collect();
        let encounter = &all[1];
        assert_eq!(encounter["reasonCode"][0]["text"], "Fall from height");
        let condition = all
            .iter()
            .find(|r| r["resourceType"] == "Condition")
            .expect("a diagnosis");
        assert_eq!(
            condition["code"]["coding"][0]["system"],
            "http://snomed.info/sct"
        );
        assert_eq!(condition["code"]["coding"][0]["code"], "125605004");
        assert_eq!(condition["encounter"]["reference"], "Encounter/visit-V123");
        let answer = |code: &str| {
            all.iter()
                .find(|r| r["code"]["coding"][0]["code"] == code)
                .unwrap_or_else(|| panic!("{code} kept"))
                .clone()
        };
        assert_eq!(answer("nai-considered")["valueBoolean"], true);
        assert_eq!(answer("safeguarding-referral")["valueBoolean"], false);
        assert_eq!(answer("children-in-household")["valueInteger"], 3);
        assert_eq!(answer("accompanied-by")["valueString"], "Mother's partner");
        assert_eq!(
            answer("nai-considered")["category"][0]["coding"][0]["code"],
            "safeguarding"
        );
        assert_eq!(
            all.len(),
            2 + 1 + 4,
            "the heart rate stays in the original only"
        );

        let unknown = message.replace("accompanied-by^", "mood^");
        let err = super::plan_adt(&Message::parse(&unknown).unwrap()).unwrap_err();
        assert_eq!((err.segment.as_deref(), err.field), (Some("OBX"), Some(3)));
        let not_yes_no = message.replace("KINFOLD-SG||Y", "KINFOLD-SG||maybe");
        let err = super::plan_adt(&Message::parse(&not_yes_no).unwrap()).unwrap_err();
        assert_eq!((err.segment.as_deref(), err.field), (Some("OBX"), Some(5)));
    }

    #[test]
    fn an_injury_keeps_its_type_site_and_mechanism() {
        let message = format!(
            "{A01}\rACC|20250610183000+0100|FALL^Fall^LOCAL||||||Fell from sofa onto wooden floor\rOBX|1|CWE|injury-type^Injury type^KINFOLD-INJ||125605004^Fracture of bone^SCT\rOBX|2|CWE|body-site^Body site^KINFOLD-INJ||71341001^Femur^SCT"
        );
        let planned = plan(&message).expect("plans");
        let all: Vec<Value> = planned
            .entries
            .iter()
            .map(|e| serde_json::to_value(e.as_ref().expect("entry")).expect("json"))
            .collect();
        let injury = all
            .iter()
            .find(|r| r["id"].as_str().is_some_and(|id| id.starts_with("injury-")))
            .expect("an injury");
        assert_eq!(injury["code"]["coding"][0]["code"], "125605004");
        assert_eq!(
            injury["code"]["coding"][0]["system"],
            "http://snomed.info/sct"
        );
        assert_eq!(injury["bodySite"][0]["coding"][0]["code"], "71341001");
        assert_eq!(injury["extension"][0]["url"], MECHANISM_EXTENSION);
        assert_eq!(
            injury["extension"][0]["valueCodeableConcept"]["coding"][0]["code"],
            "FALL"
        );
        assert_eq!(injury["onsetDateTime"], "2025-06-10T18:30:00+01:00");
        assert_eq!(
            injury["note"][0]["text"],
            "Fell from sofa onto wooden floor"
        );
        assert_eq!(injury["meta"]["tag"][0]["code"], "injury");

        // An injury question Kinfold does not know is refused, located.
        let unknown = message.replace("body-site^", "colour^");
        let err = plan(&unknown).unwrap_err();
        assert_eq!((err.segment.as_deref(), err.field), (Some("OBX"), Some(3)));
    }

    #[test]
    fn what_real_systems_send_is_read_as_sent() {
        // HL7's explicit null clears a field; a year-precision arrival stays a year.
        let nulls = A01.replace("||20250611093000+0100", "||2013|\"\"");
        let planned = plan(&nulls).expect("a null departure is no departure");
        let encounter = json_of(&planned, 1);
        assert_eq!(encounter["period"]["start"], "2013");
        assert!(encounter["period"].get("end").is_none(), "{encounter}");
        assert_eq!(encounter["status"], "in-progress");
        // Dates of birth at every precision; an impossible one is left out with a warning.
        for (born, expected) in [
            ("1965", json!("1965")),
            ("196512", json!("1965-12")),
            ("196512131515", json!("1965-12-13")),
        ] {
            let message = A01.replace("|20210811|", &format!("|{born}|"));
            assert_eq!(
                json_of(&plan(&message).expect("plans"), 0)["birthDate"],
                expected,
                "{born}"
            );
        }
        let impossible = A01.replace("|20210811|", "|196513121515|");
        let read = read_adt(
            &Message::parse(&impossible).expect("parses"),
            DEFAULT_SENDER_ZONE,
        )
        .expect("taken");
        assert!(json_of(&read.plan, 0).get("birthDate").is_none());
        assert_eq!(read.warnings.len(), 1);
        assert_eq!(
            (read.warnings[0].segment.as_deref(), read.warnings[0].field),
            (Some("PID"), Some(7))
        );
        // A diagnosis time that cannot be read is left out, the diagnosis kept.
        let late = format!("{A01}\rDG1|1||55680006^Drug overdose^SCT||yesterday");
        let read =
            read_adt(&Message::parse(&late).expect("parses"), DEFAULT_SENDER_ZONE).expect("taken");
        assert_eq!(
            json_of(&read.plan, 2)["code"]["coding"][0]["code"],
            "55680006"
        );
        assert_eq!(read.warnings[0].field, Some(5));
    }

    #[test]
    fn person_events_pre_admission_cancellation_and_merge_are_taken() {
        let as_event = |event: &str| {
            A01.replace("ADT^A01^ADT_A01", &format!("ADT^{event}^ADT_A01"))
                .replace("EVN|A01", &format!("EVN|{event}"))
        };
        // Add or update a person: the Patient, no attendance.
        for event in ["A28", "A31"] {
            let planned = plan(&as_event(event)).expect(event);
            assert_eq!(planned.entries.len(), 1, "{event}: the person only");
            assert_eq!(json_of(&planned, 0)["resourceType"], "Patient");
        }
        assert_eq!(
            json_of(&plan(&as_event("A05")).expect("A05"), 1)["status"],
            "planned"
        );
        assert_eq!(
            json_of(&plan(&as_event("A11")).expect("A11"), 1)["status"],
            "cancelled"
        );
        // A merge: the surviving record says which record it replaces.
        let merge = format!("{}\rMRG|H999^^^RXX^MR", as_event("A40"));
        let patient = json_of(&plan(&merge).expect("A40"), 0);
        assert_eq!(patient["link"][0]["other"]["reference"], "Patient/mrn-H999");
        assert_eq!(patient["link"][0]["type"], "replaces");
        let no_mrg = plan(&as_event("A40")).expect_err("an A40 names what it merges");
        assert_eq!(no_mrg.segment.as_deref(), Some("MRG"));
        // The NHS ITK samples' person events are taken.
        for name in [
            "nhs-itk-v24_A28_example.hl7",
            "nhs-itk-v24_A31_example.hl7",
            "nhs-itk-v24_A40_example.hl7",
            "nhs-itk-v24_A05_example.hl7",
        ] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/conformance/hl7v2")
                .join(name);
            let bytes = std::fs::read(&path).expect("readable");
            let text = kinfold_hl7v2::decode(&bytes);
            let message = Message::parse(&text).expect("reads");
            let read =
                read_adt(&message, DEFAULT_SENDER_ZONE).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!read.plan.entries.is_empty(), "{name}");
        }
    }

    #[test]
    fn next_of_kin_become_related_people_with_their_relationship_and_identifiers() {
        let nk1 = "NK1|1|Haddad^Amira^^^Mrs|MTH^Mother^HL70063|1 Mill Lane^^Leeds^^LS6 2AB|||||||||||F|19940502|||||||||||||||||9990000018^^^NHS";
        let friend = "NK1|2|Rowe^Dean|FND^Friend^HL70063";
        let nobody = "NK1|3||EMC^Emergency contact^HL70063";
        let message = format!("{A01}\r{nk1}\r{friend}\r{nobody}");
        let planned = plan(&message).expect("plans");
        let related: Vec<Value> = (0..planned.entries.len())
            .map(|n| json_of(&planned, n))
            .filter(|r| r["resourceType"] == "RelatedPerson")
            .collect();
        assert_eq!(related.len(), 2, "an NK1 naming nobody is skipped");
        let mother = &related[0];
        assert_eq!(mother["patient"]["reference"], "Patient/nhs-9434765919");
        assert_eq!(mother["name"][0]["family"], "Haddad");
        assert_eq!(mother["name"][0]["given"][0], "Amira");
        assert_eq!(mother["relationship"][0]["coding"][0]["code"], "MTH");
        assert_eq!(
            mother["relationship"][0]["coding"][1]["system"],
            V2_RELATIONSHIP_SYSTEM
        );
        assert_eq!(mother["address"][0]["postalCode"], "LS6 2AB");
        assert_eq!(mother["address"][0]["line"][0], "1 Mill Lane");
        assert_eq!(mother["birthDate"], "1994-05-02");
        assert_eq!(mother["gender"], "female");
        assert_eq!(mother["identifier"][0]["value"], "9990000018");
        assert_eq!(related[1]["relationship"][0]["coding"][0]["code"], "FRND");
        // A wrong NHS number in NK1-33 is a NAK naming the segment and field.
        let bad = format!("{A01}\r{}", nk1.replace("9990000018", "9990000019"));
        let fault = plan(&bad).expect_err("refused");
        assert!(fault.to_string().contains("NK1"), "{fault}");
    }

    #[test]
    fn an_attendance_for_overdose_or_assault_is_tagged_for_the_rules() {
        let message =
            format!("{A01}\rPV2|||OD^Overdose of paracetamol^LOCAL\rDG1|1||52684005^Assault^SCT");
        let planned = plan(&message).expect("plans");
        let encounter =
            serde_json::to_value(planned.entries[1].as_ref().expect("entry")).expect("json");
        let tags: Vec<&str> = encounter["meta"]["tag"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["code"].as_str())
            .collect();
        assert_eq!(tags, ["ed-risk-overdose", "ed-risk-assault"]);
        // The diagnosis that named the risk carries it too, so that a child's professionals
        // see the parent's diagnoses with the attendance (G5).
        let diagnosis =
            serde_json::to_value(planned.entries[2].as_ref().expect("entry")).expect("json");
        assert_eq!(diagnosis["resourceType"], "Condition");
        assert_eq!(diagnosis["meta"]["tag"][1]["code"], "ed-risk-assault");
        let crisis = format!("{A01}\rPV2|||MH^Mental health crisis^LOCAL");
        let crisis = plan(&crisis).expect("plans");
        let encounter =
            serde_json::to_value(crisis.entries[1].as_ref().expect("entry")).expect("json");
        assert_eq!(encounter["meta"]["tag"][0]["code"], "ed-risk-mental-health");
        let plain = plan(A01).expect("plans");
        let encounter =
            serde_json::to_value(plain.entries[1].as_ref().expect("entry")).expect("json");
        assert!(encounter["meta"].is_null(), "no risk, no tag: {encounter}");
    }

    #[test]
    fn the_origin_is_the_control_id_event_time_operator_and_text() {
        let text = A01.replace(
            "EVN|A01|20250611100000",
            "EVN|A01|20250611100500+0100|||OP7^Okafor^Rita",
        );
        let message = Message::parse(&text).expect("parses");
        let origin = origin_of(&message, &text, DEFAULT_SENDER_ZONE);
        assert_eq!(origin.message_id.as_deref(), Some("MSG0001"));
        assert_eq!(
            origin.recorded.as_deref(),
            Some("2025-06-11T10:05:00+01:00")
        );
        assert_eq!(
            origin.author.map(|a| a.name).as_deref(),
            Some("Rita Okafor")
        );
        assert_eq!(origin.original.map(|o| o.bytes), Some(text.into_bytes()));
    }
}
