//! The community agencies' file extracts: midwifery, health visiting and school nursing
//! (formats in `docs/feeds/`). An extract is JSON Lines: one JSON object per line, each a row
//! whose `record` says what it is. Each row is its own [`Plan`], stored whole or not at all; a
//! bad row is answered with its line and field and does not stop the good rows.
//!
//! Every row carries `row_id` (the source system's id for the row: a resent row is stored
//! once), and may carry `recorded_at` (when the source recorded it) and `recorded_by`
//! (`{"name", "role"}`), which become its provenance. The person the row is about comes whole
//! in each row (`child`, `mother`, …: NHS number and/or local id, names, date of birth, sex,
//! postcode), so every row can stand alone and every event names its person.

use kinfold_fhir::codes::{
    CONTACT_TYPE_SYSTEM, LOINC, LOINC_BIRTH_WEIGHT, LOINC_GESTATION_AT_BIRTH, LOINC_HEAD,
    LOINC_HEIGHT, LOINC_LENGTH, LOINC_WEIGHT,
};
use kinfold_fhir::{Agency, NHS_NUMBER_SYSTEM, NhsNumber, Resource};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::events::{ROLE_CODE_SYSTEM, tag};
use super::{Atomicity, Author, Origin, Original, Plan};

/// The media type a row is kept under.
pub const NDJSON: &str = "application/x-ndjson";
/// The longest line taken, in bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Local identifiers of the agency's own system.
pub const LOCAL_ID_SYSTEM: &str = "https://kinfold.example/fhir/NamingSystem/local-id";
/// Details of a contact: was the child seen, seen alone, was an interpreter used.
pub const CONTACT_DETAIL_SYSTEM: &str = "https://kinfold.example/fhir/CodeSystem/contact-detail";
/// Kinds of antenatal concern.
pub const ANTENATAL_CONCERN_SYSTEM: &str =
    "https://kinfold.example/fhir/CodeSystem/antenatal-concern";
/// Kinfold's categories of record (`safeguarding`, `domestic-abuse-notification`, …).
pub const CATEGORY_SYSTEM: &str = "https://kinfold.example/fhir/CodeSystem/record-category";
/// Tasks Kinfold knows (`custody-transfer`).
pub const TASK_SYSTEM: &str = "https://kinfold.example/fhir/CodeSystem/task";
/// Kinfold's extensions, by name (`{EXTENSION_BASE}/estimated-due-date`).
pub const EXTENSION_BASE: &str = "https://kinfold.example/fhir/StructureDefinition";
/// School URNs (the Department for Education's unique reference number).
pub const SCHOOL_URN_SYSTEM: &str = "https://fhir.hl7.org.uk/Id/urn-school-number";
/// Kinfold's codes for carers HL7 v3 RoleCode has no code for (`foster-carer`,
/// `partner-of-parent`).
pub const CARER_SYSTEM: &str = "https://kinfold.example/fhir/CodeSystem/carer-relationship";
/// The longest concern in words a contact row takes (a line or two, not the case notes).
pub const MAX_CONCERN_CHARS: usize = 1000;

/// What one import answered: how many rows were stored, already held, or refused and why.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ImportSummary {
    /// Rows read (blank lines aside).
    pub rows: usize,
    /// Rows stored (new, or changed since last sent).
    pub stored: usize,
    /// Rows already stored exactly so: nothing written.
    pub unchanged: usize,
    /// Rows refused, each with its line, field and reason; nothing of them was stored.
    pub rejected: Vec<RejectedRow>,
}

/// A row that was not stored.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RejectedRow {
    /// Its line in the file.
    pub line: usize,
    /// The field at fault (a JSON path in the row), or empty for the whole row.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// The most rows one import request carries.
pub const MAX_IMPORT_ROWS: usize = 2000;

/// Why one row cannot be stored: its line, the field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// Line number in the file, from 1.
    pub line: usize,
    /// The field, as a JSON path in the row (`child.nhs_number`); empty for the whole row.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "line {}: {}", self.line, self.message)
        } else {
            write!(f, "line {}, {}: {}", self.line, self.field, self.message)
        }
    }
}

impl From<RowError> for RejectedRow {
    fn from(row: RowError) -> Self {
        Self {
            line: row.line,
            field: row.field,
            message: row.message,
        }
    }
}

/// Whether an agency takes extracts.
pub fn takes_extracts(agency: Agency) -> bool {
    matches!(
        agency,
        Agency::Midwifery | Agency::HealthVisiting | Agency::SchoolNursing
    )
}

/// One row of an agency's extract planned: the records to store and its provenance.
pub fn plan_row(agency: Agency, line: usize, text: &str) -> Result<(Plan, Origin), RowError> {
    let fail = |field: &str, message: String| RowError {
        line,
        field: field.to_owned(),
        message,
    };
    if text.len() > MAX_LINE_BYTES {
        return Err(fail(
            "",
            format!("the row is longer than {MAX_LINE_BYTES} bytes"),
        ));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        fail(
            "",
            format!("not a JSON object (column {}): {e}", e.column()),
        )
    })?;
    let Value::Object(mut row) = value else {
        return Err(fail("", "a row must be a JSON object".into()));
    };
    let record =
        take_text(&mut row, "record", line)?.ok_or_else(|| fail("record", "is missing".into()))?;
    let row_id =
        take_text(&mut row, "row_id", line)?.ok_or_else(|| fail("row_id", "is missing".into()))?;
    if row_id.is_empty() || row_id.len() > 64 {
        return Err(fail("row_id", "must be 1 to 64 characters".into()));
    }
    let recorded = take_text(&mut row, "recorded_at", line)?;
    if let Some(at) = &recorded
        && !kinfold_fhir::primitive::Primitive::DateTime.accepts(at)
    {
        return Err(fail(
            "recorded_at",
            format!("'{at}' is not a FHIR dateTime"),
        ));
    }
    let author: Option<Who> = row
        .remove("recorded_by")
        .map(|v| parse(v, line, "recorded_by."))
        .transpose()?;
    let mut rows = Rows {
        agency,
        line,
        row_id: id_part(&row_id),
        out: Vec::new(),
    };
    let body = Value::Object(row);
    match (agency, record.as_str()) {
        (Agency::Midwifery, "booking") => rows.booking(parse(body, line, "")?)?,
        (Agency::Midwifery, "antenatal-contact") => rows.antenatal(parse(body, line, "")?)?,
        (Agency::Midwifery, "birth") => rows.birth(parse(body, line, "")?)?,
        (Agency::HealthVisiting | Agency::SchoolNursing, "contact") => {
            rows.contact(parse(body, line, "")?)?;
        }
        (Agency::HealthVisiting | Agency::SchoolNursing, "growth") => {
            rows.growth(parse(body, line, "")?)?;
        }
        (_, "carers") => rows.carers(parse(body, line, "")?)?,
        (Agency::HealthVisiting, "da-notification") => rows.notification(parse(body, line, "")?)?,
        (Agency::HealthVisiting, "allocation") => rows.allocation(parse(body, line, "")?)?,
        (Agency::HealthVisiting, "transfer") => rows.transfer(parse(body, line, "")?)?,
        (Agency::HealthVisiting | Agency::SchoolNursing, "referral") => {
            rows.referral(parse(body, line, "")?)?;
        }
        (Agency::HealthVisiting | Agency::SchoolNursing, "strategy-meeting") => {
            rows.meeting(parse(body, line, "")?)?;
        }
        (Agency::SchoolNursing, "school") => rows.school(parse(body, line, "")?)?,
        (Agency::SchoolNursing, "school-entry-review") => rows.review(parse(body, line, "")?)?,
        (Agency::SchoolNursing, "ncmp") => rows.ncmp(parse(body, line, "")?)?,
        (Agency::SchoolNursing, "welfare-concern") => rows.welfare(parse(body, line, "")?)?,
        (Agency::SchoolNursing, "was-not-brought") => rows.not_brought(parse(body, line, "")?)?,
        (_, other) => {
            return Err(fail(
                "record",
                format!(
                    "'{other}' is not a record the {} extract carries (docs/feeds/{}.md)",
                    agency.display_name(),
                    agency.as_str()
                ),
            ));
        }
    }
    let origin = Origin {
        message_id: Some(row_id),
        recorded,
        author: author.map(|w| Author {
            name: w.name,
            role: w.role,
        }),
        original: Some(Original {
            content_type: NDJSON.into(),
            bytes: text.as_bytes().to_vec(),
        }),
    };
    let plan = Plan {
        atomicity: Atomicity::Whole,
        entries: rows.out.into_iter().map(Ok).collect(),
    };
    Ok((plan, origin))
}

fn take_text(
    row: &mut Map<String, Value>,
    key: &str,
    line: usize,
) -> Result<Option<String>, RowError> {
    match row.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(RowError {
            line,
            field: key.into(),
            message: "must be a string".into(),
        }),
    }
}

/// Reads a row's body into its record's shape; an error names the field.
fn parse<T: DeserializeOwned>(value: Value, line: usize, prefix: &str) -> Result<T, RowError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        RowError {
            line,
            field: if path == "." {
                prefix.trim_end_matches('.').to_owned()
            } else {
                format!("{prefix}{path}")
            },
            message: e.into_inner().to_string(),
        }
    })
}

/// A person as a row names them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Person {
    nhs_number: Option<String>,
    local_id: Option<String>,
    family: Option<String>,
    #[serde(default)]
    given: Vec<String>,
    birth_date: Option<String>,
    sex: Option<String>,
    postcode: Option<String>,
    address: Option<Address>,
}

/// Where a person lives, and since when: households are found from the first line and
/// postcode over overlapping periods.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Address {
    #[serde(default)]
    lines: Vec<String>,
    city: Option<String>,
    postcode: Option<String>,
    from: Option<String>,
    until: Option<String>,
}

/// Someone who did something: a practitioner, a member of school staff.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Who {
    name: String,
    role: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Concern {
    kind: String,
    detail: Option<String>,
    disclosed_on: Option<String>,
    #[serde(default)]
    routine_enquiry: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Booking {
    mother: Person,
    pregnancy_id: String,
    booking_date: String,
    estimated_due_date: String,
    #[serde(default)]
    concerns: Vec<Concern>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Antenatal {
    mother: Person,
    pregnancy_id: String,
    date: String,
    gestation_weeks: Option<u32>,
    practitioner: Option<Who>,
    #[serde(default)]
    concerns: Vec<Concern>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Birth {
    mother: Person,
    pregnancy_id: String,
    baby: Person,
    born_at: String,
    birth_weight_g: Option<u32>,
    gestation_weeks: Option<u32>,
    #[serde(default)]
    gestation_days: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Contact {
    child: Person,
    date: String,
    contact_type: String,
    #[serde(default)]
    present: Vec<String>,
    child_seen: bool,
    seen_alone: Option<bool>,
    language: Option<String>,
    interpreter_used: Option<bool>,
    practitioner: Option<Who>,
    venue: Option<String>,
    concern: Option<String>,
}

/// A parent or carer of the child, as the source system holds them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Carer {
    person: Person,
    relationship: String,
    parental_responsibility: Option<bool>,
    from: Option<String>,
    until: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Carers {
    child: Person,
    carers: Vec<Carer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Growth {
    child: Person,
    date: String,
    weight_kg: Option<f64>,
    height_cm: Option<f64>,
    length_cm: Option<f64>,
    head_cm: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NamedAdult {
    name: String,
    relationship: String,
    birth_date: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Notification {
    child: Person,
    incident_date: String,
    received_date: String,
    from: String,
    children_present: bool,
    child_seen: Option<bool>,
    child_seen_by: Option<String>,
    child_witnessed: Option<bool>,
    child_injured: Option<bool>,
    /// The adult victim's DASH risk grade, as the police send it: kept, named as the adult's,
    /// and never read as the child's (G18).
    adult_victim_risk_grade: Option<String>,
    notes: Option<String>,
    #[serde(default)]
    adults_named: Vec<NamedAdult>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Allocation {
    child: Person,
    date: String,
    health_visitor: Option<Who>,
    pool: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Transfer {
    child: Person,
    transfer_id: String,
    status: String,
    date: String,
    to: Agency,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Referral {
    child: Person,
    referral_id: String,
    date: String,
    referred_by: Referrer,
    to: String,
    status: String,
    outcome: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Meeting {
    child: Person,
    meeting_id: String,
    date: String,
    chair: Referrer,
    minutes_due: String,
    attendees: Vec<Attendee>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Attendee {
    name: String,
    organisation: String,
    minutes_filed: Option<String>,
}

/// Who made a referral (or chairs a meeting): a professional, their organisation (ODS code)
/// and Kinfold role.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Referrer {
    name: String,
    organisation: String,
    role: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct School {
    child: Person,
    school_urn: String,
    school_name: String,
    from: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Review {
    child: Person,
    date: String,
    practitioner: Option<Who>,
    outcome: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ncmp {
    child: Person,
    date: String,
    year: String,
    height_cm: f64,
    weight_kg: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Welfare {
    child: Person,
    date: String,
    reported_by: Who,
    description: String,
    body_site: Option<String>,
    explanation_given: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotBrought {
    child: Person,
    appointment_date: String,
    service: String,
    reason: Option<String>,
}

/// The records one row makes.
struct Rows {
    agency: Agency,
    line: usize,
    row_id: String,
    out: Vec<Resource>,
}

type Made = Result<(), RowError>;

impl Rows {
    fn fail(&self, field: &str, message: impl Into<String>) -> RowError {
        RowError {
            line: self.line,
            field: field.into(),
            message: message.into(),
        }
    }

    /// Checks a made record like any ingested one and keeps it.
    fn keep(&mut self, value: Value, field: &str) -> Made {
        kinfold_fhir::primitive::check_resource(&value, "")
            .map_err(|e| self.fail(field, format!("gives an invalid value: {e}")))?;
        let resource = Resource::from_value(value)
            .map_err(|e| self.fail(field, format!("gives an invalid value: {e}")))?;
        self.out.push(resource);
        Ok(())
    }

    fn date(&self, value: &str, field: &str) -> Result<String, RowError> {
        if kinfold_fhir::primitive::Primitive::Date.accepts(value) {
            Ok(value.to_owned())
        } else {
            Err(self.fail(field, format!("'{value}' is not a date (YYYY-MM-DD)")))
        }
    }

    fn date_time(&self, value: &str, field: &str) -> Result<String, RowError> {
        if kinfold_fhir::primitive::Primitive::DateTime.accepts(value) {
            Ok(value.to_owned())
        } else {
            Err(self.fail(
                field,
                format!("'{value}' is not a date, or a date and time with a zone"),
            ))
        }
    }

    fn id(&self, kind: &str) -> String {
        let mut id = format!("{kind}-{}", self.row_id);
        id.truncate(64);
        id
    }

    /// The person's Patient record, kept; returns its id.
    fn person(&mut self, person: &Person, field: &str) -> Result<String, RowError> {
        let (id, patient) = self.patient(person, field)?;
        self.keep(patient, field)?;
        Ok(id)
    }

    /// The person's Patient record and its id, not yet kept.
    fn patient(&self, person: &Person, field: &str) -> Result<(String, Value), RowError> {
        let mut identifiers = Vec::new();
        let id = match (&person.nhs_number, &person.local_id) {
            (Some(number), _) => {
                let number: NhsNumber = number
                    .parse()
                    .map_err(|e| self.fail(&format!("{field}.nhs_number"), format!("{e}")))?;
                identifiers.push(json!({"system": NHS_NUMBER_SYSTEM, "value": number.as_str()}));
                format!("nhs-{}", number.as_str())
            }
            (None, Some(local)) if !local.trim().is_empty() => format!("local-{}", id_part(local)),
            _ => {
                return Err(self.fail(field, "needs an nhs_number or a local_id"));
            }
        };
        if let Some(local) = &person.local_id {
            identifiers.push(json!({"system": format!("{LOCAL_ID_SYSTEM}/{}", self.agency.as_str()), "value": local}));
        }
        let mut patient = json!({"resourceType": "Patient", "id": id, "identifier": identifiers});
        if person.family.is_some() || !person.given.is_empty() {
            let mut name = json!({"use": "official"});
            if let Some(family) = &person.family {
                name["family"] = json!(family);
            }
            if !person.given.is_empty() {
                name["given"] = json!(person.given);
            }
            patient["name"] = json!([name]);
        }
        if let Some(born) = &person.birth_date {
            patient["birthDate"] = json!(self.date(born, &format!("{field}.birth_date"))?);
        }
        if let Some(sex) = &person.sex {
            patient["gender"] = json!(match sex.to_ascii_lowercase().as_str() {
                "m" | "male" => "male",
                "f" | "female" => "female",
                "o" | "other" => "other",
                "u" | "unknown" => "unknown",
                _ => {
                    return Err(self.fail(
                        &format!("{field}.sex"),
                        format!("'{sex}' is not male, female, other or unknown"),
                    ));
                }
            });
        }
        match (&person.address, &person.postcode) {
            (Some(address), postcode) => {
                let field = format!("{field}.address");
                let mut value = json!({});
                if !address.lines.is_empty() {
                    value["line"] = json!(address.lines);
                }
                if let Some(city) = &address.city {
                    value["city"] = json!(city);
                }
                match (&address.postcode, postcode) {
                    (Some(a), Some(b))
                        if !a.replace(' ', "").eq_ignore_ascii_case(&b.replace(' ', "")) =>
                    {
                        return Err(self.fail(
                            &format!("{field}.postcode"),
                            format!("'{a}' is not the person's postcode '{b}'"),
                        ));
                    }
                    (Some(code), _) | (None, Some(code)) => value["postalCode"] = json!(code),
                    (None, None) => {}
                }
                let from = address
                    .from
                    .as_deref()
                    .map(|d| self.date(d, &format!("{field}.from")))
                    .transpose()?;
                let until = address
                    .until
                    .as_deref()
                    .map(|d| self.date(d, &format!("{field}.until")))
                    .transpose()?;
                if let (Some(from), Some(until)) = (&from, &until)
                    && until < from
                {
                    return Err(self.fail(&format!("{field}.until"), "is before from"));
                }
                if from.is_some() || until.is_some() {
                    let mut period = json!({});
                    if let Some(from) = from {
                        period["start"] = json!(from);
                    }
                    if let Some(until) = until {
                        period["end"] = json!(until);
                    }
                    value["period"] = period;
                }
                if value.as_object().is_some_and(|o| !o.is_empty()) {
                    patient["address"] = json!([value]);
                }
            }
            (None, Some(postcode)) => patient["address"] = json!([{"postalCode": postcode}]),
            (None, None) => {}
        }
        Ok((id, patient))
    }

    fn concerns(&mut self, mother: &str, concerns: &[Concern]) -> Made {
        for (n, concern) in concerns.iter().enumerate() {
            let field = format!("concerns[{n}]");
            let display = match concern.kind.as_str() {
                "domestic-abuse" => "Domestic abuse disclosed",
                "mental-health" => "Maternal mental health concern",
                "substance-use" => "Substance use in pregnancy",
                other => {
                    return Err(self.fail(
                        &format!("{field}.kind"),
                        format!("'{other}' is not domestic-abuse, mental-health or substance-use"),
                    ));
                }
            };
            let mut flag = json!({
                "resourceType": "Flag",
                "id": self.id(&format!("concern-{n}")),
                "status": "active",
                "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "safeguarding", "display": "Safeguarding"}]}],
                "code": {"coding": [{"system": ANTENATAL_CONCERN_SYSTEM, "code": concern.kind, "display": display}]},
                "subject": {"reference": format!("Patient/{mother}")},
            });
            if let Some(detail) = &concern.detail {
                flag["code"]["text"] = json!(detail);
            }
            if let Some(on) = &concern.disclosed_on {
                flag["period"] = json!({"start": self.date(on, &format!("{field}.disclosed_on"))?});
            }
            if concern.routine_enquiry {
                flag["extension"] = json!([{"url": format!("{EXTENSION_BASE}/disclosed-at-routine-enquiry"), "valueBoolean": true}]);
            }
            tag(
                &mut flag,
                &[
                    "antenatal-concern",
                    &format!("antenatal-concern-{}", concern.kind),
                ],
            );
            self.keep(flag, &field)?;
        }
        Ok(())
    }

    fn booking(&mut self, row: Booking) -> Made {
        let mother = self.person(&row.mother, "mother")?;
        let booked = self.date(&row.booking_date, "booking_date")?;
        let due = self.date(&row.estimated_due_date, "estimated_due_date")?;
        let mut episode = json!({
            "resourceType": "EpisodeOfCare",
            "id": format!("pregnancy-{}", id_part(&row.pregnancy_id)),
            "status": "active",
            "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "77386006", "display": "Pregnancy"}]}],
            "patient": {"reference": format!("Patient/{mother}")},
            "period": {"start": booked},
            "identifier": [{"system": format!("{LOCAL_ID_SYSTEM}/midwifery/pregnancy"), "value": row.pregnancy_id}],
            "extension": [{"url": format!("{EXTENSION_BASE}/estimated-due-date"), "valueDate": due}],
        });
        tag(&mut episode, &["pregnancy-booked"]);
        self.keep(episode, "pregnancy_id")?;
        self.concerns(&mother, &row.concerns)
    }

    fn antenatal(&mut self, row: Antenatal) -> Made {
        let mother = self.person(&row.mother, "mother")?;
        let when = self.date_time(&row.date, "date")?;
        let mut encounter = contact_encounter(
            &self.id("anc"),
            &mother,
            "antenatal-contact",
            "Antenatal contact",
            &when,
        );
        encounter["episodeOfCare"] = json!([{"reference": format!("EpisodeOfCare/pregnancy-{}", id_part(&row.pregnancy_id))}]);
        if let Some(weeks) = row.gestation_weeks {
            encounter["extension"] = json!([{"url": format!("{EXTENSION_BASE}/gestation-weeks"), "valueInteger": weeks}]);
        }
        if let Some(who) = &row.practitioner {
            encounter["participant"] = json!([participant(&who.name, who.role.as_deref())]);
        }
        tag(&mut encounter, &["antenatal-contact"]);
        self.keep(encounter, "date")?;
        self.concerns(&mother, &row.concerns)
    }

    fn birth(&mut self, row: Birth) -> Made {
        let mother = self.person(&row.mother, "mother")?;
        let born = self.date_time(&row.born_at, "born_at")?;
        // A baby is often registered before being named: the record says so.
        let mut baby_person = row.baby;
        if baby_person.birth_date.is_none() {
            baby_person.birth_date = Some(born.get(..10).unwrap_or(&born).to_owned());
        }
        let (baby, mut baby_record) = self.patient(&baby_person, "baby")?;
        if baby_person.given.is_empty() {
            let family = baby_person
                .family
                .as_ref()
                .or(row.mother.family.as_ref())
                .map_or(String::new(), |f| format!(" {f}"));
            let mut name = json!({"text": format!("Baby of{family}")});
            if let Some(family) = &baby_person.family {
                name["family"] = json!(family);
            }
            baby_record["name"] = json!([name]);
        }
        // The baby's record says its birth was notified here.
        tag(&mut baby_record, &["birth-notification"]);
        self.keep(baby_record, "baby")?;
        let mut mother_of = json!({
            "resourceType": "RelatedPerson",
            "id": format!("mother-of-{baby}"),
            "patient": {"reference": format!("Patient/{baby}")},
            "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH", "display": "mother"}]}],
        });
        if let Some(number) = &row.mother.nhs_number {
            mother_of["identifier"] = json!([{"system": NHS_NUMBER_SYSTEM, "value": number}]);
        }
        if row.mother.family.is_some() || !row.mother.given.is_empty() {
            mother_of["name"] = json!([{"family": row.mother.family, "given": row.mother.given}]);
        }
        if let Some(born) = &row.mother.birth_date {
            mother_of["birthDate"] = json!(born);
        }
        mother_of["extension"] = json!([
            {"url": format!("{EXTENSION_BASE}/kinfold-patient"), "valueReference": {"reference": format!("Patient/{mother}")}},
            {"url": format!("{EXTENSION_BASE}/pregnancy"), "valueReference": {"reference": format!("EpisodeOfCare/pregnancy-{}", id_part(&row.pregnancy_id))}}
        ]);
        tag(&mut mother_of, &["mother-of"]);
        self.keep(mother_of, "mother")?;
        if let Some(grams) = row.birth_weight_g {
            if !(200..=7000).contains(&grams) {
                return Err(self.fail("birth_weight_g", format!("{grams} g is not a birth weight")));
            }
            let mut weight = measurement(
                &self.id("birth-weight"),
                &baby,
                &born,
                LOINC_BIRTH_WEIGHT,
                "Birth weight",
                f64::from(grams),
                "g",
            );
            tag(&mut weight, &["birth-measurement"]);
            self.keep(weight, "birth_weight_g")?;
        }
        if let Some(weeks) = row.gestation_weeks {
            if !(20..=45).contains(&weeks) || row.gestation_days > 6 {
                return Err(self.fail(
                    "gestation_weeks",
                    format!("{weeks}+{} is not a gestation at birth", row.gestation_days),
                ));
            }
            let days = weeks * 7 + row.gestation_days;
            let gestation = measurement(
                &self.id("gestation"),
                &baby,
                &born,
                LOINC_GESTATION_AT_BIRTH,
                "Gestational age at birth",
                f64::from(days),
                "d",
            );
            self.keep(gestation, "gestation_weeks")?;
        }
        Ok(())
    }

    fn contact(&mut self, row: Contact) -> Made {
        let child = self.person(&row.child, "child")?;
        let when = self.date_time(&row.date, "date")?;
        let display = match (self.agency, row.contact_type.as_str()) {
            (Agency::HealthVisiting, "antenatal") => "Antenatal health visiting contact",
            (Agency::HealthVisiting, "new-birth-visit") => "New birth visit",
            (Agency::HealthVisiting, "6-8-week-review") => "6–8 week review",
            (Agency::HealthVisiting, "1-year-review") => "1 year review",
            (Agency::HealthVisiting, "2-year-review") => "2–2½ year review",
            (_, "ad-hoc") => "Ad hoc contact",
            (Agency::SchoolNursing, "drop-in") => "School drop-in",
            (Agency::SchoolNursing, "home-visit") => "Home visit",
            (_, other) => {
                return Err(self.fail(
                    "contact_type",
                    format!(
                        "'{other}' is not a contact type of this extract (docs/feeds/{}.md)",
                        self.agency.as_str()
                    ),
                ));
            }
        };
        let id = self.id("contact");
        let mut encounter = contact_encounter(&id, &child, &row.contact_type, display, &when);
        let mut participants: Vec<Value> = row
            .present
            .iter()
            .map(|who| json!({"type": [{"text": "present"}], "individual": {"display": who}}))
            .collect();
        if let Some(who) = &row.practitioner {
            participants.push(participant(&who.name, who.role.as_deref()));
        }
        if !participants.is_empty() {
            encounter["participant"] = json!(participants);
        }
        if let Some(venue) = &row.venue {
            encounter["location"] = json!([{"location": {"display": venue}}]);
        }
        let mut codes = vec!["hcp-contact"];
        if !row.child_seen {
            codes.push("child-not-seen");
        }
        if row.seen_alone == Some(false) {
            codes.push("child-not-seen-alone");
        }
        if row
            .language
            .as_deref()
            .is_some_and(|l| !l.eq_ignore_ascii_case("english"))
            && row.interpreter_used != Some(true)
        {
            codes.push("interpreter-not-used");
        }
        tag(&mut encounter, &codes);
        self.keep(encounter, "date")?;
        let details = [
            (
                "child-seen",
                "Child seen",
                Some(json!({"valueBoolean": row.child_seen})),
            ),
            (
                "seen-alone",
                "Child seen alone",
                row.seen_alone.map(|b| json!({"valueBoolean": b})),
            ),
            (
                "interpreter-used",
                "Interpreter used",
                row.interpreter_used.map(|b| json!({"valueBoolean": b})),
            ),
            (
                "language",
                "Language of the family",
                row.language.as_ref().map(|l| json!({"valueString": l})),
            ),
        ];
        if let Some(concern) = &row.concern
            && (concern.trim().is_empty() || concern.chars().count() > MAX_CONCERN_CHARS)
        {
            return Err(self.fail(
                "concern",
                format!("a concern is 1 to {MAX_CONCERN_CHARS} characters"),
            ));
        }
        let details = details.into_iter().chain([(
            "concern",
            "Concern recorded at the contact",
            row.concern.as_ref().map(|c| json!({"valueString": c})),
        )]);
        for (code, display, value) in details {
            let Some(Value::Object(value)) = value else {
                continue;
            };
            let mut observation = json!({
                "resourceType": "Observation",
                "id": format!("{}-{code}", id.get(..(64 - code.len() - 1).min(id.len())).unwrap_or(&id)),
                "status": "final",
                "code": {"coding": [{"system": CONTACT_DETAIL_SYSTEM, "code": code, "display": display}]},
                "subject": {"reference": format!("Patient/{child}")},
                "encounter": {"reference": format!("Encounter/{id}")},
                "effectiveDateTime": when,
            });
            if let Some(object) = observation.as_object_mut() {
                object.extend(value);
            }
            self.keep(observation, code)?;
        }
        Ok(())
    }

    fn growth(&mut self, row: Growth) -> Made {
        let child = self.person(&row.child, "child")?;
        let when = self.date_time(&row.date, "date")?;
        self.measurements(
            &child,
            &when,
            &[
                (
                    "weight_kg",
                    row.weight_kg,
                    LOINC_WEIGHT,
                    "Body weight",
                    "kg",
                    0.3..=200.0,
                ),
                (
                    "height_cm",
                    row.height_cm,
                    LOINC_HEIGHT,
                    "Body height",
                    "cm",
                    30.0..=220.0,
                ),
                (
                    "length_cm",
                    row.length_cm,
                    LOINC_LENGTH,
                    "Body length",
                    "cm",
                    20.0..=130.0,
                ),
                (
                    "head_cm",
                    row.head_cm,
                    LOINC_HEAD,
                    "Head circumference",
                    "cm",
                    15.0..=70.0,
                ),
            ],
        )
    }

    #[allow(clippy::type_complexity)]
    fn measurements(
        &mut self,
        child: &str,
        when: &str,
        list: &[(
            &str,
            Option<f64>,
            &str,
            &str,
            &str,
            std::ops::RangeInclusive<f64>,
        )],
    ) -> Made {
        let mut any = false;
        for (field, value, code, display, unit, range) in list {
            let Some(value) = value else { continue };
            if !range.contains(value) {
                return Err(self.fail(
                    field,
                    format!(
                        "{value} {unit} is outside {}–{} {unit}",
                        range.start(),
                        range.end()
                    ),
                ));
            }
            any = true;
            let mut observation = measurement(
                &self.id(&field.replace('_', "-")),
                child,
                when,
                code,
                display,
                *value,
                unit,
            );
            tag(&mut observation, &["growth-measurement"]);
            self.keep(observation, field)?;
        }
        if any {
            Ok(())
        } else {
            Err(self.fail("", "a growth row needs at least one measurement"))
        }
    }

    fn notification(&mut self, row: Notification) -> Made {
        let child = self.person(&row.child, "child")?;
        let incident = self.date(&row.incident_date, "incident_date")?;
        let received = self.date(&row.received_date, "received_date")?;
        if received < incident {
            return Err(self.fail("received_date", "is before the incident"));
        }
        let mut extensions = vec![
            json!({"url": format!("{EXTENSION_BASE}/incident-date"), "valueDate": incident}),
            json!({"url": format!("{EXTENSION_BASE}/children-present"), "valueBoolean": row.children_present}),
        ];
        for (name, value) in [
            ("child-seen", row.child_seen),
            ("child-witnessed", row.child_witnessed),
            ("child-injured", row.child_injured),
        ] {
            if let Some(value) = value {
                extensions.push(
                    json!({"url": format!("{EXTENSION_BASE}/{name}"), "valueBoolean": value}),
                );
            }
        }
        if let Some(by) = &row.child_seen_by {
            if row.child_seen != Some(true) || by.trim().is_empty() || by.chars().count() > 200 {
                return Err(self.fail(
                    "child_seen_by",
                    "names who saw the child (1 to 200 characters), with child_seen true",
                ));
            }
            extensions.push(
                json!({"url": format!("{EXTENSION_BASE}/child-seen-by"), "valueString": by.trim()}),
            );
        }
        if let Some(grade) = &row.adult_victim_risk_grade {
            let grade = grade.trim().to_lowercase();
            if !matches!(grade.as_str(), "standard" | "medium" | "high") {
                return Err(self.fail(
                    "adult_victim_risk_grade",
                    "is the adult victim's DASH grade: standard, medium or high",
                ));
            }
            extensions.push(json!({"url": format!("{EXTENSION_BASE}/adult-victim-risk-grade"), "valueCode": grade}));
        }
        let mut communication = json!({
            "resourceType": "Communication",
            "id": self.id("dan"),
            "status": "completed",
            "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "domestic-abuse-notification", "display": "Domestic abuse notification"}]}],
            "subject": {"reference": format!("Patient/{child}")},
            "received": received,
            "sender": {"display": row.from},
            "extension": extensions,
        });
        if let Some(notes) = &row.notes {
            communication["payload"] = json!([{"contentString": notes}]);
        }
        tag(&mut communication, &["domestic-abuse-notification"]);
        self.keep(communication, "")?;
        for (n, adult) in row.adults_named.iter().enumerate() {
            let mut person = json!({
                "resourceType": "RelatedPerson",
                "id": self.id(&format!("dan-adult-{n}")),
                "patient": {"reference": format!("Patient/{child}")},
                "relationship": [{"text": adult.relationship}],
                "name": [{"text": adult.name}],
            });
            if let Some(born) = &adult.birth_date {
                person["birthDate"] =
                    json!(self.date(born, &format!("adults_named[{n}].birth_date"))?);
            }
            tag(&mut person, &["named-in-domestic-abuse-notification"]);
            self.keep(person, &format!("adults_named[{n}]"))?;
        }
        Ok(())
    }

    /// The child's parents and carers: a RelatedPerson each, coded in HL7 v3 RoleCode where
    /// it has a code, with whether they hold parental responsibility and since when.
    fn carers(&mut self, row: Carers) -> Made {
        let child = self.person(&row.child, "child")?;
        if row.carers.is_empty() {
            return Err(self.fail("carers", "name at least one parent or carer"));
        }
        for (n, carer) in row.carers.iter().enumerate() {
            let field = format!("carers[{n}]");
            let (system, code, display) = match carer.relationship.as_str() {
                "mother" => (ROLE_CODE_SYSTEM, "MTH", "mother"),
                "father" => (ROLE_CODE_SYSTEM, "FTH", "father"),
                "parent" => (ROLE_CODE_SYSTEM, "PRN", "parent"),
                "step-parent" => (ROLE_CODE_SYSTEM, "STPPRN", "step parent"),
                "grandparent" => (ROLE_CODE_SYSTEM, "GRPRN", "grandparent"),
                "guardian" => (ROLE_CODE_SYSTEM, "GUARD", "guardian"),
                "foster-carer" => (CARER_SYSTEM, "foster-carer", "foster carer"),
                "partner-of-parent" => (CARER_SYSTEM, "partner-of-parent", "partner of a parent"),
                other => {
                    return Err(self.fail(
                        &format!("{field}.relationship"),
                        format!(
                            "'{other}' is not mother, father, parent, step-parent, grandparent, guardian, foster-carer or partner-of-parent"
                        ),
                    ));
                }
            };
            let (carer_id, record) = self.patient(&carer.person, &format!("{field}.person"))?;
            let mut related = json!({
                "resourceType": "RelatedPerson",
                "id": format!("carer-{}", id_part(&format!("{child}-{carer_id}"))),
                "patient": {"reference": format!("Patient/{child}")},
                "relationship": [{"coding": [{"system": system, "code": code, "display": display}]}],
            });
            for element in ["identifier", "name", "birthDate", "gender", "address"] {
                if let Some(value) = record.get(element) {
                    related[element] = value.clone();
                }
            }
            let from = carer
                .from
                .as_deref()
                .map(|d| self.date(d, &format!("{field}.from")))
                .transpose()?;
            let until = carer
                .until
                .as_deref()
                .map(|d| self.date(d, &format!("{field}.until")))
                .transpose()?;
            if let (Some(from), Some(until)) = (&from, &until)
                && until < from
            {
                return Err(self.fail(&format!("{field}.until"), "is before from"));
            }
            if from.is_some() || until.is_some() {
                let mut period = json!({});
                if let Some(from) = from {
                    period["start"] = json!(from);
                }
                if let Some(until) = until {
                    period["end"] = json!(until);
                }
                related["period"] = period;
            }
            if let Some(holds) = carer.parental_responsibility {
                related["extension"] = json!([{"url": format!("{EXTENSION_BASE}/parental-responsibility"), "valueBoolean": holds}]);
            }
            tag(&mut related, &["carer"]);
            self.keep(related, &field)?;
        }
        Ok(())
    }

    fn allocation(&mut self, row: Allocation) -> Made {
        let child = self.person(&row.child, "child")?;
        let from = self.date(&row.date, "date")?;
        let mut episode = json!({
            "resourceType": "EpisodeOfCare",
            "id": format!("caseload-{child}"),
            "status": "active",
            "type": [{"coding": [{"system": CONTACT_TYPE_SYSTEM, "code": "health-visiting", "display": "Health visiting caseload"}]}],
            "patient": {"reference": format!("Patient/{child}")},
            "period": {"start": from},
        });
        let code = match (&row.health_visitor, &row.pool) {
            (Some(who), None) => {
                episode["careManager"] = json!({"display": who.name});
                "allocated-named-health-visitor"
            }
            (None, Some(pool)) => {
                episode["team"] = json!([{"display": pool}]);
                "allocated-to-pool"
            }
            _ => {
                return Err(self.fail(
                    "health_visitor",
                    "give a health_visitor or a pool, not both or neither",
                ));
            }
        };
        tag(&mut episode, &["caseload-allocation", code]);
        self.keep(episode, "")
    }

    fn transfer(&mut self, row: Transfer) -> Made {
        let child = self.person(&row.child, "child")?;
        let when = self.date(&row.date, "date")?;
        if row.to != Agency::SchoolNursing {
            return Err(self.fail("to", "a health visiting record transfers to school-nursing"));
        }
        let status = match row.status.as_str() {
            "started" => "in-progress",
            "completed" => "completed",
            other => {
                return Err(self.fail("status", format!("'{other}' is not started or completed")));
            }
        };
        let mut task = json!({
            "resourceType": "Task",
            "id": format!("transfer-{}", id_part(&row.transfer_id)),
            "status": status,
            "intent": "order",
            "code": {"coding": [{"system": TASK_SYSTEM, "code": "custody-transfer", "display": "Transfer of the child's record"}]},
            "description": "Custody of the child's record moves from health visiting to school nursing; the record stays readable throughout.",
            "for": {"reference": format!("Patient/{child}")},
            "lastModified": when,
            "owner": {"display": row.to.display_name()},
        });
        if status == "in-progress" {
            task["authoredOn"] = json!(when);
        }
        tag(&mut task, &[&format!("custody-transfer-{}", row.status)]);
        self.keep(task, "")
    }

    /// A referral and its status (G15): a `Task` (code `referral`) whose `requester` is the
    /// referrer, so that the referrer can be told when its status changes.
    fn referral(&mut self, row: Referral) -> Made {
        let child = self.person(&row.child, "child")?;
        let when = self.date(&row.date, "date")?;
        let status = match row.status.as_str() {
            "sent" => "requested",
            "accepted" => "accepted",
            "declined" => "rejected",
            "completed" => "completed",
            other => {
                return Err(self.fail(
                    "status",
                    format!("'{other}' is not sent, accepted, declined or completed"),
                ));
            }
        };
        self.professional(&row.referred_by, "referred_by")?;
        let mut task = json!({
            "resourceType": "Task",
            "id": format!("referral-{}", id_part(&row.referral_id)),
            "status": status,
            "intent": "order",
            "code": {"coding": [{"system": TASK_SYSTEM, "code": "referral", "display": "Referral"}]},
            "description": format!("Referral to {}", row.to),
            "for": {"reference": format!("Patient/{child}")},
            "lastModified": when,
            "requester": Self::as_requester(&row.referred_by),
            "owner": {"display": row.to},
        });
        if let Some(outcome) = &row.outcome {
            task["statusReason"] = json!({"text": outcome});
        }
        // Sent is the referral itself; anything after is a change the referrer hears of.
        let code = if status == "requested" {
            "referral-sent".to_owned()
        } else {
            "referral-status-change".to_owned()
        };
        tag(&mut task, &[&code]);
        self.keep(task, "")
    }

    /// A strategy meeting the service attended (G10): a `Task` (code `strategy-meeting`) whose
    /// `requester` is the chair and whose deadline is when every attendee's minutes are due;
    /// `in-progress` while any attendee's are not filed, `completed` when all are.
    fn meeting(&mut self, row: Meeting) -> Made {
        let child = self.person(&row.child, "child")?;
        let when = self.date(&row.date, "date")?;
        let due = self.date(&row.minutes_due, "minutes_due")?;
        self.professional(&row.chair, "chair")?;
        if row.attendees.is_empty() {
            return Err(self.fail("attendees", "a meeting has attendees"));
        }
        let mut outstanding = 0;
        let mut inputs = Vec::new();
        for (n, attendee) in row.attendees.iter().enumerate() {
            if attendee
                .organisation
                .parse::<kinfold_fhir::OdsCode>()
                .is_err()
            {
                return Err(self.fail(&format!("attendees[{n}].organisation"), "an ODS code"));
            }
            let filed = match &attendee.minutes_filed {
                Some(day) => Some(self.date(day, &format!("attendees[{n}].minutes_filed"))?),
                None => None,
            };
            if filed.is_none() {
                outstanding += 1;
            }
            inputs.push(json!({
                "type": {"text": "attendee"},
                "valueString": match &filed {
                    Some(day) => format!("{} ({}): minutes filed {day}", attendee.name, attendee.organisation),
                    None => format!("{} ({}): minutes not filed", attendee.name, attendee.organisation),
                },
            }));
        }
        let mut task = json!({
            "resourceType": "Task",
            "id": format!("meeting-{}", id_part(&row.meeting_id)),
            "status": if outstanding == 0 { "completed" } else { "in-progress" },
            "intent": "order",
            "code": {"coding": [{"system": TASK_SYSTEM, "code": "strategy-meeting", "display": "Strategy meeting: minutes from every attendee"}]},
            "description": format!("Strategy meeting on {when}: {outstanding} attendee(s) yet to file minutes"),
            "for": {"reference": format!("Patient/{child}")},
            "authoredOn": when,
            "lastModified": when,
            "requester": Self::as_requester(&row.chair),
            "restriction": {"period": {"end": due}},
            "input": inputs,
        });
        let code = if outstanding == 0 {
            "minutes-complete"
        } else {
            "minutes-outstanding"
        };
        tag(&mut task, &["strategy-meeting", code]);
        self.keep(task, "")
    }

    /// Checks a professional named with their organisation and role.
    fn professional(&self, who: &Referrer, field: &str) -> Result<(), RowError> {
        if who.organisation.parse::<kinfold_fhir::OdsCode>().is_err() {
            return Err(self.fail(&format!("{field}.organisation"), "an ODS code"));
        }
        if who.role.parse::<kinfold_consent::Role>().is_err() {
            return Err(self.fail(
                &format!("{field}.role"),
                format!("'{}' is not a role Kinfold knows", who.role),
            ));
        }
        Ok(())
    }

    /// A professional as a Task's `requester`: name, organisation and Kinfold role.
    fn as_requester(who: &Referrer) -> Value {
        json!({
            "display": who.name,
            "identifier": {"system": kinfold_fhir::ODS_CODE_SYSTEM, "value": who.organisation},
            "extension": [{"url": "https://kinfold.example/fhir/StructureDefinition/referrer-role", "valueCode": who.role}],
        })
    }

    fn school(&mut self, row: School) -> Made {
        let child = self.person(&row.child, "child")?;
        if row.school_urn.len() != 6 || !row.school_urn.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.fail(
                "school_urn",
                format!("'{}' is not a school URN (six digits)", row.school_urn),
            ));
        }
        let from = self.date(&row.from, "from")?;
        let mut episode = json!({
            "resourceType": "EpisodeOfCare",
            "id": format!("school-{child}"),
            "status": "active",
            "type": [{"coding": [{"system": CONTACT_TYPE_SYSTEM, "code": "school-nursing", "display": "School nursing"}]}],
            "patient": {"reference": format!("Patient/{child}")},
            "managingOrganization": {"identifier": {"system": SCHOOL_URN_SYSTEM, "value": row.school_urn}, "display": row.school_name},
            "period": {"start": from},
        });
        tag(&mut episode, &["school-enrolment"]);
        self.keep(episode, "")
    }

    fn review(&mut self, row: Review) -> Made {
        let child = self.person(&row.child, "child")?;
        let when = self.date_time(&row.date, "date")?;
        let mut encounter = contact_encounter(
            &self.id("review"),
            &child,
            "school-entry-review",
            "School entry health review",
            &when,
        );
        if let Some(who) = &row.practitioner {
            encounter["participant"] = json!([participant(&who.name, who.role.as_deref())]);
        }
        if let Some(outcome) = &row.outcome {
            encounter["reasonCode"] = json!([{"text": outcome}]);
        }
        tag(&mut encounter, &["school-entry-review"]);
        self.keep(encounter, "")
    }

    fn ncmp(&mut self, row: Ncmp) -> Made {
        let child = self.person(&row.child, "child")?;
        let when = self.date_time(&row.date, "date")?;
        let (code, display) = match row.year.as_str() {
            "reception" => ("ncmp-reception", "NCMP reception measurement"),
            "year-6" => ("ncmp-year-6", "NCMP year 6 measurement"),
            other => return Err(self.fail("year", format!("'{other}' is not reception or year-6"))),
        };
        let mut encounter = contact_encounter(&self.id("ncmp"), &child, code, display, &when);
        tag(&mut encounter, &["ncmp"]);
        self.keep(encounter, "")?;
        self.measurements(
            &child,
            &when,
            &[
                (
                    "weight_kg",
                    Some(row.weight_kg),
                    LOINC_WEIGHT,
                    "Body weight",
                    "kg",
                    8.0..=200.0,
                ),
                (
                    "height_cm",
                    Some(row.height_cm),
                    LOINC_HEIGHT,
                    "Body height",
                    "cm",
                    70.0..=220.0,
                ),
            ],
        )
    }

    fn welfare(&mut self, row: Welfare) -> Made {
        let child = self.person(&row.child, "child")?;
        let when = self.date_time(&row.date, "date")?;
        let mut observation = json!({
            "resourceType": "Observation",
            "id": self.id("welfare"),
            "status": "final",
            "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "safeguarding", "display": "Safeguarding"}]}],
            "code": {"coding": [{"system": CATEGORY_SYSTEM, "code": "welfare-concern", "display": "Welfare concern reported by the school"}]},
            "subject": {"reference": format!("Patient/{child}")},
            "effectiveDateTime": when,
            "performer": [{"display": match &row.reported_by.role {
                Some(role) => format!("{} ({role})", row.reported_by.name),
                None => row.reported_by.name.clone(),
            }}],
            "valueString": row.description,
        });
        let mut codes = vec!["welfare-concern"];
        if let Some(site) = &row.body_site {
            observation["bodySite"] = json!({"text": site});
            codes.push("injury");
        }
        if let Some(explanation) = &row.explanation_given {
            observation["note"] = json!([{"text": format!("Explanation given: {explanation}")}]);
        }
        tag(&mut observation, &codes);
        self.keep(observation, "")
    }

    fn not_brought(&mut self, row: NotBrought) -> Made {
        let child = self.person(&row.child, "child")?;
        let when = self.date_time(&row.appointment_date, "appointment_date")?;
        let mut appointment = json!({
            "resourceType": "Appointment",
            "id": self.id("wnb"),
            "status": "noshow",
            "serviceType": [{"text": row.service}],
            "start": when,
            "description": "Was not brought",
            "participant": [{"actor": {"reference": format!("Patient/{child}")}, "status": "declined"}],
        });
        if let Some(reason) = &row.reason {
            appointment["comment"] = json!(reason);
        }
        tag(&mut appointment, &["was-not-brought"]);
        self.keep(appointment, "")
    }
}

fn contact_encounter(id: &str, patient: &str, code: &str, display: &str, when: &str) -> Value {
    json!({
        "resourceType": "Encounter",
        "id": id,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"},
        "type": [{"coding": [{"system": CONTACT_TYPE_SYSTEM, "code": code, "display": display}]}],
        "subject": {"reference": format!("Patient/{patient}")},
        "period": {"start": when},
    })
}

fn participant(name: &str, role: Option<&str>) -> Value {
    let mut participant = json!({"individual": {"display": name}});
    if let Some(role) = role {
        participant["type"] = json!([{"text": role}]);
    }
    participant
}

fn measurement(
    id: &str,
    patient: &str,
    when: &str,
    code: &str,
    display: &str,
    value: f64,
    unit: &str,
) -> Value {
    json!({
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
    })
}

/// Text made safe for part of a FHIR id (at most 48 characters).
fn id_part(text: &str) -> String {
    super::id_part(text, 48)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::events::codes_of_all;

    const MIDWIFERY: &str = include_str!("../../../../docs/feeds/samples/midwifery.ndjson");
    const HEALTH_VISITING: &str =
        include_str!("../../../../docs/feeds/samples/health-visiting.ndjson");
    const SCHOOL_NURSING: &str =
        include_str!("../../../../docs/feeds/samples/school-nursing.ndjson");

    fn planned(agency: Agency, text: &str, line: usize) -> (Vec<Resource>, Origin) {
        let row = text.lines().nth(line - 1).expect("the sample has the line");
        let (plan, origin) = plan_row(agency, line, row).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.atomicity, Atomicity::Whole);
        let resources = plan
            .entries
            .into_iter()
            .map(|e| e.expect("every entry planned"))
            .collect();
        (resources, origin)
    }

    fn json(resource: &Resource) -> Value {
        serde_json::to_value(resource).expect("json")
    }

    fn of_type<'a>(resources: &'a [Resource], name: &str) -> Vec<&'a Resource> {
        resources.iter().filter(|r| r.type_name() == name).collect()
    }

    #[test]
    fn every_sample_row_plans_and_keeps_its_provenance() {
        for (agency, text) in [
            (Agency::Midwifery, MIDWIFERY),
            (Agency::HealthVisiting, HEALTH_VISITING),
            (Agency::SchoolNursing, SCHOOL_NURSING),
        ] {
            for (n, row) in text.lines().enumerate() {
                let (plan, origin) =
                    plan_row(agency, n + 1, row).unwrap_or_else(|e| panic!("{agency}: {e}"));
                assert!(plan.entries.len() >= 2, "{agency} line {}", n + 1);
                assert!(origin.message_id.is_some() && origin.recorded.is_some());
                assert!(origin.author.is_some());
                let original = origin.original.expect("the row is kept");
                assert_eq!(original.bytes, row.as_bytes(), "kept verbatim");
            }
        }
    }

    #[test]
    fn a_booking_is_a_pregnancy_with_its_due_date_and_the_concern_disclosed() {
        let (records, origin) = planned(Agency::Midwifery, MIDWIFERY, 1);
        assert_eq!(origin.message_id.as_deref(), Some("MW-1001"));
        assert_eq!(
            origin.author.as_ref().map(|a| a.name.as_str()),
            Some("J. Osei")
        );
        let episode = json(of_type(&records, "EpisodeOfCare")[0]);
        assert_eq!(episode["type"][0]["coding"][0]["code"], "77386006");
        assert_eq!(episode["extension"][0]["valueDate"], "2026-10-20");
        assert_eq!(episode["patient"]["reference"], "Patient/nhs-9990000018");
        let flag = json(of_type(&records, "Flag")[0]);
        assert_eq!(flag["code"]["coding"][0]["code"], "domestic-abuse");
        assert_eq!(flag["extension"][0]["valueBoolean"], true);
        let codes = codes_of_all(&records);
        for code in [
            "pregnancy-booked",
            "antenatal-concern",
            "antenatal-concern-domestic-abuse",
        ] {
            assert!(codes.contains(&code.to_owned()), "{codes:?}");
        }
    }

    #[test]
    fn a_birth_makes_the_baby_the_mother_link_and_the_birth_measurements() {
        let (records, _) = planned(Agency::Midwifery, MIDWIFERY, 3);
        let patients = of_type(&records, "Patient");
        assert_eq!(patients.len(), 2, "mother and baby");
        let baby = json(patients[1]);
        assert_eq!(baby["id"], "nhs-9990000034");
        assert_eq!(baby["birthDate"], "2026-10-18");
        assert_eq!(
            baby["name"][0]["text"], "Baby of Haddad",
            "registered before naming"
        );
        let mother = json(of_type(&records, "RelatedPerson")[0]);
        assert_eq!(mother["patient"]["reference"], "Patient/nhs-9990000034");
        assert_eq!(mother["relationship"][0]["coding"][0]["code"], "MTH");
        assert_eq!(mother["identifier"][0]["value"], "9990000018");
        let observations: Vec<Value> = of_type(&records, "Observation")
            .into_iter()
            .map(json)
            .collect();
        assert_eq!(
            observations[0]["code"]["coding"][0]["code"],
            LOINC_BIRTH_WEIGHT
        );
        assert_eq!(observations[0]["valueQuantity"]["value"], 3320.0);
        // 39+5 weeks is 278 days.
        assert_eq!(observations[1]["valueQuantity"]["value"], 278.0);
        assert!(codes_of_all(&records).contains(&"birth-notification".to_owned()));
    }

    #[test]
    fn a_contact_records_who_was_present_and_whether_the_child_was_seen_alone() {
        let (records, _) = planned(Agency::HealthVisiting, HEALTH_VISITING, 2);
        let encounter = json(of_type(&records, "Encounter")[0]);
        assert_eq!(encounter["type"][0]["coding"][0]["code"], "2-year-review");
        assert_eq!(
            encounter["participant"][1]["individual"]["display"],
            "mother's partner"
        );
        let details: Vec<(String, Value)> = of_type(&records, "Observation")
            .into_iter()
            .map(json)
            .map(|o| {
                let code = o["code"]["coding"][0]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let value = o
                    .get("valueBoolean")
                    .or(o.get("valueString"))
                    .cloned()
                    .unwrap_or(Value::Null);
                (code, value)
            })
            .collect();
        assert!(details.contains(&("child-seen".into(), json!(true))));
        assert!(details.contains(&("seen-alone".into(), json!(false))));
        assert!(details.contains(&("interpreter-used".into(), json!(false))));
        assert!(details.contains(&("language".into(), json!("Arabic"))));
        // The concern in words travels with the contact, as its own Observation.
        assert!(details.contains(&(
            "concern".into(),
            json!("Mother reports he is not eating and has lost weight since the summer.")
        )));
        let codes = codes_of_all(&records);
        assert!(codes.contains(&"child-not-seen-alone".to_owned()));
        assert!(codes.contains(&"interpreter-not-used".to_owned()));
        assert!(!codes.contains(&"child-not-seen".to_owned()));
    }

    #[test]
    fn a_police_notification_keeps_the_child_focused_facts_and_names_the_adults() {
        let (records, _) = planned(Agency::HealthVisiting, HEALTH_VISITING, 4);
        let notification = json(of_type(&records, "Communication")[0]);
        assert_eq!(notification["received"], "2026-08-15");
        let extensions = notification["extension"].to_string();
        assert!(extensions.contains("incident-date") && extensions.contains("2026-08-01"));
        assert!(extensions.contains("children-present") && extensions.contains("child-witnessed"));
        let adult = json(of_type(&records, "RelatedPerson")[0]);
        assert_eq!(adult["name"][0]["text"], "Karim Saleh");
        assert_eq!(adult["relationship"][0]["text"], "mother's partner");
        assert!(codes_of_all(&records).contains(&"domestic-abuse-notification".to_owned()));
    }

    #[test]
    fn a_notification_keeps_the_adult_victims_grade_as_the_adults_and_who_saw_the_child() {
        let row = |extra: &str| {
            format!(
                r#"{{"record": "da-notification", "row_id": "d1", "child": {{"local_id": "k1"}}, "incident_date": "2026-08-01", "received_date": "2026-08-03", "from": "Police", "children_present": true{extra}}}"#
            )
        };
        let (plan, _) = plan_row(
            Agency::HealthVisiting,
            1,
            &row(r#", "child_seen": true, "child_seen_by": "Duty social worker", "adult_victim_risk_grade": "Medium""#),
        )
        .expect("plans");
        let communication = plan
            .entries
            .iter()
            .flatten()
            .map(json)
            .find(|r| r["resourceType"] == "Communication")
            .expect("the notification");
        let extension = |name: &str| {
            communication["extension"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| {
                    e["url"]
                        .as_str()
                        .is_some_and(|u| u.ends_with(&format!("/{name}")))
                })
                .cloned()
                .unwrap_or(Value::Null)
        };
        assert_eq!(extension("adult-victim-risk-grade")["valueCode"], "medium");
        assert_eq!(extension("child-seen")["valueBoolean"], true);
        assert_eq!(
            extension("child-seen-by")["valueString"],
            "Duty social worker"
        );
        for (extra, field) in [
            (
                r#", "adult_victim_risk_grade": "red""#,
                "adult_victim_risk_grade",
            ),
            (
                r#", "child_seen_by": "Duty social worker""#,
                "child_seen_by",
            ),
        ] {
            let error = plan_row(Agency::HealthVisiting, 2, &row(extra)).expect_err(extra);
            assert_eq!(error.field, field, "{extra}");
        }
        // A bare grade would be read as the child's: it is refused.
        assert!(plan_row(Agency::HealthVisiting, 3, &row(r#", "risk_grade": "high""#)).is_err());
    }

    #[test]
    fn a_carers_row_names_each_parent_and_carer_with_responsibility_and_period() {
        let (records, _) = planned(Agency::HealthVisiting, HEALTH_VISITING, 6);
        let mother = json(of_type(&records, "RelatedPerson")[0]);
        assert_eq!(mother["patient"]["reference"], "Patient/nhs-9990000026");
        assert_eq!(mother["relationship"][0]["coding"][0]["code"], "MTH");
        assert_eq!(mother["identifier"][0]["value"], "9990000018");
        assert_eq!(mother["name"][0]["given"][0], "Amira");
        assert_eq!(mother["birthDate"], "1994-05-02");
        assert_eq!(mother["period"]["start"], "2022-01-15");
        assert_eq!(mother["extension"][0]["valueBoolean"], true);
        assert!(codes_of_all(&records).contains(&"carer".to_owned()));
        let (records, _) = planned(Agency::SchoolNursing, SCHOOL_NURSING, 7);
        let grandmother = json(of_type(&records, "RelatedPerson")[0]);
        assert_eq!(grandmother["relationship"][0]["coding"][0]["code"], "GRPRN");
        assert_eq!(grandmother["address"][0]["postalCode"], "NE4 5PL");
        // A relationship the feed does not know, an ending before its start and no carer at
        // all are refused by field.
        let row = |carers: &str| {
            format!(
                r#"{{"record": "carers", "row_id": "c1", "child": {{"local_id": "k1"}}, "carers": {carers}}}"#
            )
        };
        for (carers, field) in [
            (
                r#"[{"person": {"local_id": "a"}, "relationship": "uncle"}]"#,
                "carers[0].relationship",
            ),
            (
                r#"[{"person": {"local_id": "a"}, "relationship": "mother", "from": "2024-01-01", "until": "2023-01-01"}]"#,
                "carers[0].until",
            ),
            (r#"[]"#, "carers"),
            (
                r#"[{"person": {"family": "Nobody"}, "relationship": "mother"}]"#,
                "carers[0].person",
            ),
        ] {
            let error = plan_row(Agency::Midwifery, 3, &row(carers)).expect_err(carers);
            assert_eq!((error.line, error.field.as_str()), (3, field), "{carers}");
        }
    }

    #[test]
    fn a_person_carries_an_address_and_its_period_for_households() {
        let row = r#"{"record": "growth", "row_id": "g1", "date": "2026-01-05", "weight_kg": 12.1,
            "child": {"local_id": "k1", "family": "Mercer", "postcode": "LS6 2AB",
                      "address": {"lines": ["7 Ash Grove", "Headingley"], "city": "Leeds", "postcode": "ls62ab", "from": "2024-03-01"}}}"#
            .replace('\n', " ");
        let (plan, _) = plan_row(Agency::SchoolNursing, 1, &row).expect("plans");
        let patient = json(plan.entries[0].as_ref().expect("patient"));
        let address = &patient["address"][0];
        assert_eq!(address["line"], json!(["7 Ash Grove", "Headingley"]));
        assert_eq!(address["city"], "Leeds");
        assert_eq!(address["postalCode"], "ls62ab");
        assert_eq!(address["period"]["start"], "2024-03-01");
        // The event names the first line and the period, which the gateway's households read.
        let event =
            super::super::events::EventPatient::of(plan.entries[0].as_ref().expect("patient"))
                .expect("a patient");
        assert_eq!(event.address_line.as_deref(), Some("7 Ash Grove"));
        assert_eq!(event.address_from.as_deref(), Some("2024-03-01"));
        // Two postcodes that disagree, and an end before the start, are refused by field.
        for (change, field) in [
            (r#""postcode": "ls62ab""#, r#""postcode": "M1 1AE""#),
            (
                r#""from": "2024-03-01""#,
                r#""from": "2024-03-01", "until": "2023-01-01""#,
            ),
        ] {
            let bad = row.replace(change, field);
            let error = plan_row(Agency::SchoolNursing, 1, &bad).expect_err(&bad);
            assert!(error.field.starts_with("child.address."), "{error}");
        }
    }

    #[test]
    fn the_pool_and_the_transfer_are_recorded_as_such() {
        let (records, _) = planned(Agency::HealthVisiting, HEALTH_VISITING, 1);
        let episode = json(of_type(&records, "EpisodeOfCare")[0]);
        assert_eq!(episode["team"][0]["display"], "Central pool (north)");
        assert!(codes_of_all(&records).contains(&"allocated-to-pool".to_owned()));
        let (records, _) = planned(Agency::HealthVisiting, HEALTH_VISITING, 5);
        let task = json(of_type(&records, "Task")[0]);
        assert_eq!(task["status"], "in-progress");
        assert_eq!(task["code"]["coding"][0]["code"], "custody-transfer");
        assert!(codes_of_all(&records).contains(&"custody-transfer-started".to_owned()));
    }

    #[test]
    fn school_rows_carry_the_urn_ncmp_welfare_and_was_not_brought() {
        let (records, _) = planned(Agency::SchoolNursing, SCHOOL_NURSING, 1);
        let episode = json(of_type(&records, "EpisodeOfCare")[0]);
        assert_eq!(
            episode["managingOrganization"]["identifier"]["value"],
            "103456"
        );
        let (records, _) = planned(Agency::SchoolNursing, SCHOOL_NURSING, 3);
        let encounter = json(of_type(&records, "Encounter")[0]);
        assert_eq!(encounter["type"][0]["coding"][0]["code"], "ncmp-reception");
        let codes: Vec<String> = of_type(&records, "Observation")
            .into_iter()
            .map(json)
            .map(|o| {
                o["code"]["coding"][0]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(codes, [LOINC_WEIGHT, LOINC_HEIGHT]);
        let (records, _) = planned(Agency::SchoolNursing, SCHOOL_NURSING, 4);
        let concern = json(of_type(&records, "Observation")[0]);
        assert_eq!(concern["bodySite"]["text"], "left upper arm");
        assert_eq!(
            concern["performer"][0]["display"],
            "E. Clarke (class teacher)"
        );
        assert!(
            concern["note"][0]["text"]
                .as_str()
                .is_some_and(|t| t.contains("scooter"))
        );
        assert!(codes_of_all(&records).contains(&"injury".to_owned()));
        let (records, _) = planned(Agency::SchoolNursing, SCHOOL_NURSING, 5);
        let appointment = &records[1];
        assert_eq!(
            appointment.search_index().patient.as_deref(),
            Some("nhs-9990000026")
        );
        assert_eq!(json(appointment)["status"], "noshow");
    }

    #[test]
    fn a_bad_row_is_named_by_line_and_field() {
        let cases = [
            (
                Agency::HealthVisiting,
                r#"{"record":"growth","row_id":"x","child":{"nhs_number":"9990000027"},"date":"2026-01-01","weight_kg":10}"#,
                "child.nhs_number",
            ),
            (
                Agency::HealthVisiting,
                r#"{"record":"growth","row_id":"x","child":{"local_id":"L1"},"date":"2026-13-01","weight_kg":10}"#,
                "date",
            ),
            (
                Agency::HealthVisiting,
                r#"{"record":"growth","row_id":"x","child":{"local_id":"L1"},"date":"2026-01-01","weight_kg":900}"#,
                "weight_kg",
            ),
            (
                Agency::HealthVisiting,
                r#"{"record":"growth","row_id":"x","child":{"local_id":"L1"},"date":"2026-01-01"}"#,
                "",
            ),
            (
                Agency::HealthVisiting,
                r#"{"record":"contact","row_id":"x","child":{"local_id":"L1"},"date":"2026-01-01","contact_type":"2-year-review","child_seen":"yes"}"#,
                "child_seen",
            ),
            (
                Agency::HealthVisiting,
                r#"{"record":"contact","row_id":"x","child":{"local_id":"L1","nickname":"L"},"date":"2026-01-01","contact_type":"2-year-review","child_seen":true}"#,
                "child.nickname",
            ),
            (
                Agency::HealthVisiting,
                r#"{"record":"ncmp","row_id":"x"}"#,
                "record",
            ),
            (
                Agency::SchoolNursing,
                r#"{"record":"school","row_id":"x","child":{"local_id":"L1"},"school_urn":"12","school_name":"S","from":"2026-01-01"}"#,
                "school_urn",
            ),
            (
                Agency::Midwifery,
                r#"{"record":"booking","child":{}}"#,
                "row_id",
            ),
            (
                Agency::Midwifery,
                r#"{"record":"booking","row_id":"x","mother":{},"pregnancy_id":"p","booking_date":"2026-01-01","estimated_due_date":"2026-09-01"}"#,
                "mother",
            ),
            (Agency::Midwifery, "not json", ""),
        ];
        for (agency, row, field) in cases {
            let err = plan_row(agency, 7, row).expect_err(row);
            assert_eq!(err.line, 7);
            assert_eq!(err.field, field, "{row}: {err}");
            assert!(!err.message.is_empty());
        }
    }
}
