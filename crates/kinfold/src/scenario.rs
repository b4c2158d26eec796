//! `kinfold scenario run FILE`: a family's years of records played through the agencies' real
//! feeds on a simulated clock, the professionals' parts acted through the API, and a report of
//! what Kinfold raised, who was told, who acted and when, checked against the scenario's own
//! expectations. The format is in `docs/scenarios.md`.
//!
//! The clock is a [`kinfold_time::ManualClock`]: the runner moves it to each step's time, and on
//! the way stops at every escalation that falls due, so each escalation happens at its own
//! simulated time. Between steps it waits until every adapter's outbox is empty, the gateway
//! has read every event it received and nothing due is left unescalated, so the report does
//! not depend on how fast the machine is.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use kinfold_fhir::{Agency, NhsNumber};
use kinfold_store::StoredNotification;
use kinfold_time::{Clock, ManualClock};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A scenario, as its file says it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Its name.
    pub name: String,
    /// What it tells, in words.
    #[serde(default)]
    pub about: String,
    /// The requirements it touches (`G5`).
    #[serde(default)]
    pub requirements: Vec<String>,
    /// When the clock starts.
    pub start: DateTime<Utc>,
    /// When the clock stops (escalations due by then happen); default the last step's time.
    #[serde(default)]
    pub end: Option<DateTime<Utc>>,
    /// A control family: the runner checks that nothing was raised beyond the routine notice
    /// of a child's attendance, and no pattern was found.
    #[serde(default)]
    pub control: bool,
    /// The family, by a short key of the scenario's own.
    pub people: BTreeMap<String, Person>,
    /// The professionals who act, by key.
    #[serde(default)]
    pub professionals: BTreeMap<String, Professional>,
    /// What the agencies' systems send and what the professionals do, in time order.
    pub timeline: Vec<Step>,
    /// What should have happened.
    #[serde(default)]
    pub expect: Vec<Expectation>,
    /// Patterns and growth findings that should have been found.
    #[serde(default)]
    pub expect_findings: Vec<FindingExpectation>,
}

/// A finding that should have been made (the chronology's patterns, NICE NG75 growth).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FindingExpectation {
    /// The requirement (`G13`).
    pub requirement: String,
    /// What should be found, in words.
    pub says: String,
    /// The child (key).
    pub about: String,
    /// The finding's rule (`fracture-under-2`, `fall-across-centiles`).
    pub rule: String,
}

/// One finding expectation's result.
#[derive(Debug, Clone, Serialize)]
pub struct FindingChecked {
    /// The expectation.
    pub expected: FindingExpectation,
    /// Whether it was found.
    pub met: bool,
    /// The finding, in its words.
    pub found: String,
}

/// One member of the family.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// Their NHS number (the runner follows people by it).
    pub nhs_number: String,
    /// Given name.
    pub given: String,
    /// Family name.
    pub family: String,
    /// Date of birth.
    pub born: NaiveDate,
    /// `female`, `male`, `other` or `unknown`.
    pub sex: String,
    /// First line of the address.
    #[serde(default)]
    pub address: Option<String>,
    /// Postcode.
    #[serde(default)]
    pub postcode: Option<String>,
    /// Their mother's key, for a child.
    #[serde(default)]
    pub mother: Option<String>,
}

/// A professional who acts in the scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Professional {
    /// Their name (the token's subject).
    pub name: String,
    /// Their organisation's ODS code.
    pub organisation: String,
    /// Their role (`health-visitor`).
    pub role: String,
}

/// One step of the timeline: exactly one of its kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// When (scenario time).
    pub at: DateTime<Utc>,
    /// What it is, in words (copied into the report).
    #[serde(default)]
    pub note: Option<String>,
    /// The GP registers these people at a practice (a FHIR Bundle to the GP adapter).
    #[serde(default)]
    pub gp_registration: Option<GpRegistration>,
    /// A visit to A&E (an HL7 v2 ADT^A04 over MLLP).
    #[serde(default)]
    pub ae_attendance: Option<AeAttendance>,
    /// A row of an agency's extract (`POST /$import`), as `docs/feeds/` describes it; a
    /// `child` or `mother` field naming a person's key is replaced by their details.
    #[serde(default)]
    pub extract: Option<Extract>,
    /// A professional acts on a notification, through the API.
    #[serde(default)]
    pub act: Option<Act>,
}

/// A GP registration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpRegistration {
    /// The practice's ODS code.
    pub practice: String,
    /// The people registered (keys).
    pub people: Vec<String>,
}

/// An A&E attendance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AeAttendance {
    /// Who attended (key).
    pub person: String,
    /// An injury, as SNOMED CT `code^words` (`125605004^Fracture of bone`).
    #[serde(default)]
    pub injury: Option<String>,
    /// The reason for attending, as `code^words` (`OD^Overdose of paracetamol`).
    #[serde(default)]
    pub reason: Option<String>,
}

/// An extract row.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extract {
    /// `midwifery`, `health-visiting` or `school-nursing`.
    pub agency: Agency,
    /// The row.
    pub row: Value,
}

/// What a professional does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Acknowledges the notification (with a note).
    Acknowledge,
    /// Completes it (with the action taken).
    Complete,
    /// Overrides a refusal to read the child's and the family's records (`$everything` with
    /// purpose override and the reason in `words`), as a professional who needs to see what
    /// the consent rules withhold; the privacy officers review it.
    Override,
}

/// A professional acting on a notification.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Act {
    /// Who (a professional's key).
    pub by: String,
    /// What they do.
    pub does: Action,
    /// The notification's rule (`adult-risk-attendance`); not for an override.
    #[serde(default)]
    pub rule: String,
    /// The child it is about (key).
    pub about: String,
    /// The note or the action taken.
    #[serde(default)]
    pub words: Option<String>,
}

/// What should have happened: a notification made, and what became of it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// The requirement (`G5`).
    pub requirement: String,
    /// What should happen, in words.
    pub says: String,
    /// The notification's rule.
    pub rule: String,
    /// The child it is about (key).
    pub about: String,
    /// The role told (`health-visitor`).
    pub to: String,
    /// Urgent or not.
    #[serde(default)]
    pub urgent: Option<bool>,
    /// Acknowledged by its recipient (or not).
    #[serde(default)]
    pub acknowledged: Option<bool>,
    /// Escalated at least to this level (1: the recipient's safeguarding lead; 2: the area's).
    #[serde(default)]
    pub escalated: Option<i64>,
    /// Made within this many minutes of the step that set it off.
    #[serde(default)]
    pub within_minutes: Option<i64>,
    /// Only notifications made at or after this time (when an earlier one of the same rule
    /// about the same child is another story).
    #[serde(default)]
    pub after: Option<DateTime<Utc>>,
}

/// Why a scenario could not be run.
#[derive(Debug)]
pub struct ScenarioError(pub String);

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScenarioError {}

fn fail(message: impl Into<String>) -> ScenarioError {
    ScenarioError(message.into())
}

/// Reads a scenario file and checks it refers only to what it defines.
pub fn load(text: &str) -> Result<Scenario, ScenarioError> {
    let scenario: Scenario =
        yaml_serde::from_str(text).map_err(|e| fail(format!("the scenario file: {e}")))?;
    for (key, person) in &scenario.people {
        person
            .nhs_number
            .parse::<NhsNumber>()
            .map_err(|e| fail(format!("people.{key}.nhs_number: {e}")))?;
        if let Some(mother) = &person.mother
            && !scenario.people.contains_key(mother)
        {
            return Err(fail(format!("people.{key}.mother: no person {mother:?}")));
        }
    }
    let person = |key: &str, at: &str| {
        if scenario.people.contains_key(key) {
            Ok(())
        } else {
            Err(fail(format!("{at}: no person {key:?} in people")))
        }
    };
    let mut last = scenario.start;
    for (n, step) in scenario.timeline.iter().enumerate() {
        let at = format!("timeline[{n}]");
        if step.at < last {
            return Err(fail(format!(
                "{at}: {} is before the step above it: the timeline is in time order",
                step.at
            )));
        }
        last = step.at;
        let kinds = [
            step.gp_registration.is_some(),
            step.ae_attendance.is_some(),
            step.extract.is_some(),
            step.act.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(fail(format!(
                "{at}: give exactly one of gp_registration, ae_attendance, extract, act"
            )));
        }
        if let Some(registration) = &step.gp_registration {
            for key in &registration.people {
                person(key, &at)?;
            }
        }
        if let Some(attendance) = &step.ae_attendance {
            person(&attendance.person, &at)?;
        }
        if let Some(extract) = &step.extract {
            if extract.agency == Agency::Ae || extract.agency == Agency::Gp {
                return Err(fail(format!(
                    "{at}: extracts come from midwifery, health visiting or school nursing"
                )));
            }
            for field in ["child", "mother"] {
                if let Some(key) = extract.row[field].as_str() {
                    person(key, &at)?;
                }
            }
        }
        if let Some(act) = &step.act {
            person(&act.about, &at)?;
            if act.does != Action::Override && act.rule.is_empty() {
                return Err(fail(format!(
                    "{at}: act: which notification? give its rule"
                )));
            }
            if act.does == Action::Override
                && act.words.as_deref().is_none_or(|w| w.trim().len() < 20)
            {
                return Err(fail(format!(
                    "{at}: act: an override needs its reason in words (20 letters or more)"
                )));
            }
            if !scenario.professionals.contains_key(&act.by) {
                return Err(fail(format!(
                    "{at}: no professional {:?} in professionals",
                    act.by
                )));
            }
        }
    }
    for (n, expectation) in scenario.expect.iter().enumerate() {
        person(&expectation.about, &format!("expect[{n}]"))?;
    }
    for (n, expectation) in scenario.expect_findings.iter().enumerate() {
        person(&expectation.about, &format!("expect_findings[{n}]"))?;
    }
    Ok(scenario)
}

/// Where a scenario runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// A folder for the adapters' databases and the certificates.
    pub data_dir: PathBuf,
    /// The gateway's database (default SQLite in `data_dir`).
    pub gateway_database: Option<String>,
}

/// One notification as the report tells it.
#[derive(Debug, Clone, Serialize)]
pub struct Told {
    /// The rule.
    pub rule: String,
    /// The child (key, or the person id for someone the scenario does not name).
    pub about: String,
    /// The organisation and role told, and in words.
    pub organisation: String,
    /// The role told.
    pub role: String,
    /// Who, in words.
    pub to: String,
    /// `urgent` or `routine`.
    pub priority: String,
    /// Escalation level (0: the recipient).
    pub level: i64,
    /// When it was made, and its deadline (scenario time).
    pub made: String,
    /// Its deadline.
    pub due: String,
    /// `requested`, `received` or `completed`.
    pub status: String,
    /// Who acknowledged or completed it, and when.
    pub outcome: Vec<String>,
    /// Whether the record that set it off was shown to the recipient.
    pub record_shown: bool,
}

/// One expectation's result.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    /// The expectation.
    pub expected: Expectation,
    /// Whether it was met.
    pub met: bool,
    /// What happened, in words.
    pub happened: String,
}

/// What the scenario did, for people and machines.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The scenario's name.
    pub name: String,
    /// Whether a control.
    pub control: bool,
    /// Each step, with what it did.
    pub steps: Vec<String>,
    /// Every notification made.
    pub notifications: Vec<Told>,
    /// Each expectation checked.
    pub expectations: Vec<Checked>,
    /// Who saw what of each child's records, through which rule, with each disclosure's ledger
    /// entry (the access report, read as the area's privacy officer).
    pub accesses: Vec<String>,
    /// Pattern findings (chronology) and growth findings, per child.
    pub findings: Vec<String>,
    /// Each finding expectation checked.
    pub expected_findings: Vec<FindingChecked>,
    /// For a control: what it raised that it should not have.
    pub control_faults: Vec<String>,
    /// The ledger: its size and root when the scenario ended, and how many entries the
    /// notifications and acts made, each with its inclusion proof checked.
    pub ledger: String,
    /// How long the run took (real seconds) and how long it spanned (scenario days).
    pub timing: String,
    /// Whether every expectation was met (and, for a control, nothing was raised).
    pub passed: bool,
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn millis(at: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(at).map_or_else(String::new, stamp)
}

/// The runner's view of the running stack.
struct Player {
    stack: crate::demo::Stack,
    clock: Arc<ManualClock>,
    http: reqwest::Client,
    feed_http: reqwest::Client,
    scenario: Scenario,
}

impl Player {
    fn person(&self, key: &str) -> &Person {
        &self.scenario.people[key]
    }

    fn url_of(&self, agency: Agency) -> Result<String, ScenarioError> {
        self.stack
            .endpoints
            .iter()
            .find(|e| e.agency == agency)
            .map(|e| e.url.clone())
            .ok_or_else(|| fail(format!("no {agency} adapter")))
    }

    /// The person's details as an extract row gives them.
    fn as_row(&self, key: &str) -> Value {
        let p = self.person(key);
        let mut row = json!({"nhs_number": p.nhs_number, "family": p.family, "given": [p.given],
            "birth_date": p.born.to_string(), "sex": p.sex});
        if let Some(postcode) = &p.postcode {
            row["postcode"] = json!(postcode);
        }
        if let Some(address) = &p.address {
            row["address"] = json!({"lines": [address], "postcode": p.postcode});
        }
        row
    }

    async fn gp_registration(&self, r: &GpRegistration, n: usize) -> Result<String, ScenarioError> {
        let mut entries = Vec::new();
        for key in &r.people {
            let p = self.person(key);
            let id = format!("scn-{key}");
            let mut patient = json!({"resourceType": "Patient", "id": id,
                "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": p.nhs_number}],
                "name": [{"family": p.family, "given": [p.given]}],
                "birthDate": p.born.to_string(), "gender": p.sex,
                "generalPractitioner": [{"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": r.practice}}]});
            if p.address.is_some() || p.postcode.is_some() {
                patient["address"] = json!([{"line": p.address.iter().collect::<Vec<_>>(), "postalCode": p.postcode}]);
            }
            entries.push(json!({"resource": patient, "request": {"method": "PUT", "url": format!("Patient/{id}")}}));
            if let Some(mother) = &p.mother {
                let m = self.person(mother);
                let rp = format!("scn-{key}-mother");
                entries.push(json!({"resource": {"resourceType": "RelatedPerson", "id": rp,
                    "patient": {"reference": format!("Patient/{id}")},
                    "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": m.nhs_number}],
                    "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH"}]}],
                    "name": [{"family": m.family, "given": [m.given]}], "gender": m.sex, "birthDate": m.born.to_string()},
                    "request": {"method": "PUT", "url": format!("RelatedPerson/{rp}")}}));
            }
        }
        let bundle = json!({"resourceType": "Bundle", "type": "transaction",
            "identifier": {"value": format!("SCN-GP-{n}")}, "entry": entries});
        let url = self.url_of(Agency::Gp)?;
        let response = self
            .feed_http
            .post(format!("{url}/"))
            .header("content-type", kinfold_fhir::FHIR_JSON)
            .body(bundle.to_string())
            .send()
            .await
            .map_err(|e| fail(format!("the GP adapter: {e}")))?;
        if !response.status().is_success() {
            return Err(fail(format!(
                "the GP adapter refused the registration: {}",
                response.text().await.unwrap_or_default()
            )));
        }
        Ok(format!(
            "GP practice {} registered {}",
            r.practice,
            r.people.join(", ")
        ))
    }

    async fn ae_attendance(
        &self,
        a: &AeAttendance,
        at: DateTime<Utc>,
        n: usize,
    ) -> Result<String, ScenarioError> {
        let p = self.person(&a.person);
        let when = at.format("%Y%m%d%H%M%S+0000");
        let sex = match p.sex.as_str() {
            "female" => "F",
            "male" => "M",
            _ => "U",
        };
        let mut message = format!(
            "MSH|^~\\&|EPR|RXX|KINFOLD|AE|{when}||ADT^A04^ADT_A01|SCN-{n}|P|2.4\rEVN|A04|{when}\rPID|1||{nhs}^^^NHS^NH||{family}^{given}||{born}|{sex}\rPV1|1|E|AE^^^RXX||||||||||||||||SCN-V{n}|||||||||||||||||01||||||||{when}",
            nhs = p.nhs_number,
            family = p.family,
            given = p.given,
            born = p.born.format("%Y%m%d"),
        );
        if let Some(reason) = &a.reason {
            message.push_str(&format!("\rPV2|||{reason}^LOCAL"));
        }
        if let Some(injury) = &a.injury {
            message.push_str(&format!(
                "\rOBX|1|CWE|injury-type^Injury type^KINFOLD-INJ||{injury}^SCT"
            ));
        }
        let address = self
            .stack
            .mllp
            .get("ae")
            .ok_or_else(|| fail("the A&E adapter takes no MLLP"))?;
        let summary = crate::import::send_hl7v2_pipelined(
            address,
            Some(&self.stack.pki.feed),
            &[message],
            1,
            &indicatif::ProgressBar::hidden(),
        )
        .await
        .map_err(fail)?;
        if let Some(row) = summary.rejected.first() {
            return Err(fail(format!(
                "the A&E adapter refused the attendance ({}): {}",
                row.field, row.message
            )));
        }
        let why = a
            .reason
            .as_deref()
            .or(a.injury.as_deref())
            .and_then(|c| c.split('^').nth(1))
            .unwrap_or("attendance");
        Ok(format!("{} at A&E: {why}", a.person))
    }

    async fn extract(&self, e: &Extract, n: usize) -> Result<String, ScenarioError> {
        let mut row = e.row.clone();
        for field in ["child", "mother"] {
            if let Some(key) = row[field].as_str().map(str::to_owned) {
                row[field] = self.as_row(&key);
            }
        }
        if row.get("row_id").is_none() {
            row["row_id"] = json!(format!("SCN-{n}"));
        }
        let target = crate::import::Target {
            adapter: self.url_of(e.agency)?,
            mllp: None,
            tls: Some(self.stack.pki.feed.clone()),
            mllp_connections: 1,
        };
        let mut summary = kinfold_adapter::ingest::extract::ImportSummary::default();
        let mut text = row.to_string();
        crate::import::send_rows(&self.feed_http, &target, &mut text, 1, &mut summary)
            .await
            .map_err(fail)?;
        if let Some(rejected) = summary.rejected.first() {
            return Err(fail(format!(
                "the {} extract refused the row ({}): {}",
                e.agency, rejected.field, rejected.message
            )));
        }
        Ok(format!(
            "{}: {}",
            e.agency.display_name(),
            row["record"].as_str().unwrap_or("a row")
        ))
    }

    /// A token for a professional, for direct care.
    fn token(&self, who: &Professional) -> Result<String, ScenarioError> {
        self.token_for(who, "direct-care", None)
    }

    /// A token for a professional, for a purpose (an override's with its reason).
    fn token_for(
        &self,
        who: &Professional,
        purpose: &str,
        justification: Option<&str>,
    ) -> Result<String, ScenarioError> {
        kinfold_gateway::issue_token_for(
            &self.stack.auth,
            &kinfold_gateway::TokenFor {
                subject: &who.name,
                name: Some(&who.name),
                org: Some(&who.organisation),
                role: Some(&who.role),
                purpose: Some(purpose),
                justification,
            },
            3600,
        )
        .map_err(|e| fail(e.to_string()))
    }

    /// A gateway answer for the report, read with `token` (`Null` when it is not JSON).
    async fn read(&self, path: &str, token: &str) -> Result<Value, ScenarioError> {
        Ok(self
            .http
            .get(format!("{}{path}", self.stack.gateway_url))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?
            .json()
            .await
            .unwrap_or(Value::Null))
    }

    async fn person_id(&self, key: &str) -> Result<String, ScenarioError> {
        let nhs: NhsNumber = self
            .person(key)
            .nhs_number
            .parse()
            .map_err(|e| fail(format!("{key}: {e}")))?;
        self.stack
            .gateway_store
            .person_id_for(&nhs)
            .await
            .map_err(|e| fail(e.to_string()))
    }

    /// A professional overrides to read the child's and family's records.
    async fn override_read(&self, act: &Act, who: &Professional) -> Result<String, ScenarioError> {
        let why = act.words.clone().unwrap_or_default();
        let token = self.token_for(who, "override", Some(&why))?;
        let person = self.person_id(&act.about).await?;
        let response = self
            .http
            .get(format!(
                "{}/Patient/{person}/$everything?family=true",
                self.stack.gateway_url
            ))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| fail(format!("the gateway: {e}")))?;
        let status = response.status();
        let bundle: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Ok(format!(
                "{} ({}) tried to override for {}: refused ({status})",
                who.name, who.role, act.about
            ));
        }
        Ok(format!(
            "{} ({}) overrode to read {}'s family records ({} entries), giving the reason \"{why}\"",
            who.name,
            who.role,
            act.about,
            bundle["total"].as_u64().unwrap_or(0)
        ))
    }

    async fn act(&self, act: &Act) -> Result<String, ScenarioError> {
        let who = &self.scenario.professionals[&act.by];
        if act.does == Action::Override {
            return self.override_read(act, who).await;
        }
        let token = self.token(who)?;
        let person = self.person_id(&act.about).await?;
        let (all, _) = self
            .stack
            .gateway_store
            .notifications_between(0, i64::MAX, 100_000)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let wanted = match act.does {
            Action::Acknowledge => "requested",
            Action::Complete | Action::Override => "received",
        };
        // The latest such notifications addressed to them (an escalation's copy is the lead's):
        // all those the latest event made (a growth review can meet two NG75 rules at once).
        let candidates: Vec<&StoredNotification> = all
            .iter()
            .filter(|n| {
                n.rule == act.rule
                    && n.person == person
                    && n.owner_org == who.organisation
                    && n.owner_role == who.role
                    && is_original(n)
                    && (n.status == wanted
                        || (act.does == Action::Complete && n.status == "requested"))
            })
            .collect();
        let Some(latest) = candidates.iter().map(|n| n.created).max() else {
            return Ok(format!(
                "{} ({}) found no {} notification about {} to act on",
                who.name, who.role, act.rule, act.about
            ));
        };
        for target in candidates.iter().filter(|n| n.created == latest) {
            let (path, body) = match act.does {
                Action::Acknowledge | Action::Override => (
                    format!("/Task/{}/$acknowledge", target.id),
                    json!({"note": act.words.clone().unwrap_or_default()}),
                ),
                Action::Complete => (
                    format!("/Task/{}/$complete", target.id),
                    json!({"action": act.words.clone().unwrap_or_else(|| "Seen and acted on.".into())}),
                ),
            };
            let response = self
                .http
                .post(format!("{}{path}", self.stack.gateway_url))
                .bearer_auth(&token)
                .header("content-type", kinfold_fhir::FHIR_JSON)
                .body(body.to_string())
                .send()
                .await
                .map_err(|e| fail(format!("the gateway: {e}")))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if !status.is_success() {
                return Ok(format!(
                    "{} ({}) tried to {:?} the {} notification about {}: refused ({status}): {text}",
                    who.name, who.role, act.does, act.rule, act.about
                ));
            }
        }
        Ok(format!(
            "{} ({}) {} the {} notification about {}",
            who.name,
            who.role,
            match act.does {
                Action::Acknowledge | Action::Override => "acknowledged",
                Action::Complete => "completed",
            },
            act.rule,
            act.about
        ))
    }

    /// Waits until every adapter has delivered its events, the gateway has read them and made
    /// their notifications, and nothing due by the clock's time is left to escalate.
    async fn settle(&self) -> Result<(), ScenarioError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let store = &self.stack.gateway_store;
        loop {
            let mut waiting = 0;
            for adapter in self.stack.adapter_stores() {
                waiting += adapter
                    .outbox_status()
                    .await
                    .map_err(|e| fail(e.to_string()))?
                    .0;
            }
            let cursor = store
                .notify_cursor()
                .await
                .map_err(|e| fail(e.to_string()))?;
            let unread = store
                .events_count_after(cursor, 1_000_000)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let now = self.clock.now_millis();
            let overdue = store
                .notifications_to_escalate(now, 1)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let watches = store
                .watches_due(now, 1)
                .await
                .map_err(|e| fail(e.to_string()))?;
            if waiting == 0 && unread == 0 && overdue.is_empty() && watches.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(fail(format!(
                    "Kinfold did not settle in a minute: {waiting} events undelivered, {unread} received and not yet read, {} escalations and {} deadlines due",
                    overdue.len(),
                    watches.len()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Moves the clock to `to`, stopping at every escalation and deadline due on the way.
    async fn advance(&self, to: DateTime<Utc>) -> Result<(), ScenarioError> {
        let store = &self.stack.gateway_store;
        let to_millis = to.timestamp_millis();
        loop {
            let next_escalation = store
                .notifications_to_escalate(to_millis, 1)
                .await
                .map_err(|e| fail(e.to_string()))?
                .first()
                .map(|n| n.next_escalation);
            let next_deadline = store
                .watches_due(to_millis, 100)
                .await
                .map_err(|e| fail(e.to_string()))?
                .iter()
                .map(|w| w.due)
                .min();
            let next = [next_escalation, next_deadline].into_iter().flatten().min();
            match next {
                Some(at) if at > self.clock.now_millis() => {
                    self.clock.set(
                        DateTime::<Utc>::from_timestamp_millis(at)
                            .ok_or_else(|| fail("a deadline out of range"))?,
                    );
                    self.settle().await?;
                }
                Some(_) => self.settle().await?,
                None => break,
            }
            if self.clock.now_millis() >= to_millis {
                break;
            }
        }
        if to > self.clock.now() {
            self.clock.set(to);
        }
        self.settle().await
    }
}

trait Millis {
    fn now_millis(&self) -> i64;
}

impl Millis for ManualClock {
    fn now_millis(&self) -> i64 {
        self.now().timestamp_millis()
    }
}

/// Whether one notification is as the expectation says, and what became of it, in words.
fn judge(
    expected: &Expectation,
    n: &StoredNotification,
    matching: &[&StoredNotification],
    names: &BTreeMap<String, String>,
    step_times: &[(DateTime<Utc>, usize)],
) -> (bool, String) {
    let t = told(n, names);
    let mut met = true;
    let mut words = vec![format!(
        "{} told at {} ({}, due {})",
        t.to, t.made, t.priority, t.due
    )];
    if let Some(urgent) = expected.urgent {
        met &= (t.priority == "urgent") == urgent;
    }
    if let Some(acknowledged) = expected.acknowledged {
        let was = n.status != "requested";
        met &= was == acknowledged;
        words.push(if was {
            format!("{}; {}", t.status, t.outcome.join("; "))
        } else {
            "never acknowledged".into()
        });
    }
    if let Some(level) = expected.escalated {
        met &= n.level == level;
        let steps: Vec<String> = matching
            .iter()
            .filter(|e| escalation_of(e).as_deref() == Some(n.id.as_str()))
            .map(|e| {
                format!(
                    "level {} to {} at {}",
                    e.level,
                    told(e, names).to,
                    millis(e.created)
                )
            })
            .collect();
        words.push(if steps.is_empty() {
            "not escalated".into()
        } else {
            format!("escalated: {}", steps.join(", "))
        });
    }
    if let Some(minutes) = expected.within_minutes {
        // The latest step at or before it was made set it off.
        let cause = step_times
            .iter()
            .rev()
            .find(|(at, _)| at.timestamp_millis() <= n.created)
            .map(|(at, _)| at.timestamp_millis());
        let took = cause.map(|c| (n.created - c) / 60_000);
        met &= took.is_some_and(|t| t <= minutes);
        words.push(match took {
            Some(t) => format!("{t} minutes after the event"),
            None => "made before any step".into(),
        });
    }
    (met, words.join("; "))
}

/// The notification an escalation's copy escalates (its `partOf`).
fn escalation_of(n: &StoredNotification) -> Option<String> {
    let task: Value = serde_json::from_str(&n.body).ok()?;
    task["partOf"][0]["reference"]
        .as_str()?
        .strip_prefix("Task/")
        .map(str::to_owned)
}

/// Whether this is a notification as first made for its recipient, not an escalation's copy.
fn is_original(n: &StoredNotification) -> bool {
    escalation_of(n).is_none()
}

fn told(n: &StoredNotification, names: &BTreeMap<String, String>) -> Told {
    let task: Value = serde_json::from_str(&n.body).unwrap_or(Value::Null);
    let outcome = task["output"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            format!(
                "{}: {}",
                o["type"]["text"].as_str().unwrap_or(""),
                o["valueString"].as_str().unwrap_or("")
            )
        })
        .collect();
    Told {
        rule: n.rule.clone(),
        about: names
            .get(&n.person)
            .cloned()
            .unwrap_or_else(|| n.person.clone()),
        organisation: n.owner_org.clone(),
        role: n.owner_role.clone(),
        to: task["owner"]["display"].as_str().unwrap_or("").to_owned(),
        priority: task["priority"].as_str().unwrap_or("routine").to_owned(),
        level: n.level,
        made: millis(n.created),
        due: millis(n.due),
        status: n.status.clone(),
        outcome,
        record_shown: task.get("focus").is_some(),
    }
}

/// Plays a scenario and reports on it.
pub async fn run(scenario: Scenario, options: RunOptions) -> Result<Report, ScenarioError> {
    run_then(scenario, options, |_, _| async {}).await
}

/// Plays a scenario, then hands its report and the gateway's address to `then`, and stops
/// Kinfold only when `then` has finished: `kinfold scenario run --serve` keeps the dashboard
/// up on the scenario's data until Ctrl-C.
pub async fn run_then<F, Fut>(
    scenario: Scenario,
    options: RunOptions,
    then: F,
) -> Result<Report, ScenarioError>
where
    F: FnOnce(&Report, &str) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = std::time::Instant::now();
    let clock = Arc::new(ManualClock::at(scenario.start));
    let mut demo = crate::demo::DemoOptions::new(options.data_dir.clone(), 0);
    demo.workers = 1;
    demo.clock = clock.clone();
    demo.gateway_database = options.gateway_database.clone();
    demo.refusals.max_misses_per_caller = 100_000;
    let stack = crate::demo::start_stack(&demo)
        .await
        .map_err(|e| fail(format!("Kinfold did not start: {e}")))?;
    let feed_http = kinfold_http::tls::client(&stack.pki.feed, reqwest::Client::builder())
        .map_err(|e| fail(e.to_string()))?
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let player = Player {
        stack,
        clock,
        http: reqwest::Client::new(),
        feed_http,
        scenario,
    };
    let result = play(&player, started).await;
    if let Ok(report) = &result {
        then(report, &player.stack.gateway_url).await;
    }
    player.stack.shutdown().await;
    result
}

async fn play(player: &Player, started: std::time::Instant) -> Result<Report, ScenarioError> {
    let scenario = &player.scenario;
    let mut steps = Vec::new();
    // When each step happened, for the expectations' "within".
    let mut step_times: Vec<(DateTime<Utc>, usize)> = Vec::new();
    for (n, step) in scenario.timeline.iter().enumerate() {
        player.advance(step.at).await?;
        let done = if let Some(r) = &step.gp_registration {
            player.gp_registration(r, n).await
        } else if let Some(a) = &step.ae_attendance {
            player.ae_attendance(a, step.at, n).await
        } else if let Some(e) = &step.extract {
            player.extract(e, n).await
        } else if let Some(act) = &step.act {
            player.act(act).await
        } else {
            Ok(String::new())
        }
        .map_err(|e| fail(format!("timeline[{n}] at {}: {}", stamp(step.at), e.0)))?;
        player.settle().await?;
        let note = step
            .note
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        steps.push(format!("{}: {done}{note}", stamp(step.at)));
        step_times.push((step.at, n));
    }
    let end = scenario
        .end
        .unwrap_or_else(|| scenario.timeline.last().map_or(scenario.start, |s| s.at));
    player.advance(end).await?;

    // Who is who: the scenario's keys for the person ids.
    let mut ids = BTreeMap::new();
    let mut names = BTreeMap::new();
    for key in scenario.people.keys() {
        if let Ok(id) = player.person_id(key).await {
            names.insert(id.clone(), key.clone());
            ids.insert(key.clone(), id);
        }
    }
    let store = &player.stack.gateway_store;
    let (all, _) = store
        .notifications_between(0, i64::MAX, 100_000)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let notifications: Vec<Told> = all.iter().map(|n| told(n, &names)).collect();

    let mut expectations = Vec::new();
    for expected in &scenario.expect {
        let person = ids.get(&expected.about).cloned().unwrap_or_default();
        let matching: Vec<&StoredNotification> = all
            .iter()
            .filter(|n| n.rule == expected.rule && n.person == person)
            .collect();
        // The notifications made for the recipient (not an escalation's copy; a level is how
        // far one has climbed since): met when one of them is as expected.
        let mut candidates: Vec<&&StoredNotification> = matching
            .iter()
            .filter(|n| is_original(n) && n.owner_role == expected.to)
            .filter(|n| {
                expected
                    .after
                    .is_none_or(|after| n.created >= after.timestamp_millis())
            })
            .collect();
        candidates.sort_by_key(|n| n.created);
        let judged: Vec<(bool, String)> = candidates
            .iter()
            .map(|n| judge(expected, n, &matching, &names, &step_times))
            .collect();
        let (met, happened) = judged
            .iter()
            .find(|(met, _)| *met)
            .or(judged.first())
            .cloned()
            .unwrap_or_else(|| {
                (
                    false,
                    format!(
                        "no {} notification about {} reached a {}",
                        expected.rule, expected.about, expected.to
                    ),
                )
            });
        expectations.push(Checked {
            expected: expected.clone(),
            met,
            happened,
        });
    }

    // The patterns: each child's chronology (the whole family) and growth, read as the area's
    // safeguarding lead.
    let lead = player.token(&Professional {
        name: "scenario-area-lead".into(),
        organisation: kinfold_gateway::disclosure::DisclosureConfig::default().area,
        role: "safeguarding-professional".into(),
    })?;
    let mut findings = Vec::new();
    let mut found: Vec<(String, String, String)> = Vec::new();
    for (key, id) in &ids {
        let person = player.person(key);
        let age_days = (end.date_naive() - person.born).num_days();
        if age_days > 18 * 365 {
            continue;
        }
        for (route, field) in [
            ("$chronology?family=true", "findings"),
            ("$growth", "findings"),
        ] {
            let answer = player
                .read(&format!("/Patient/{id}/{route}"), &lead)
                .await?;
            for finding in answer[field].as_array().into_iter().flatten() {
                found.push((
                    key.clone(),
                    finding["rule"].as_str().unwrap_or("").to_owned(),
                    finding["summary"].as_str().unwrap_or("").to_owned(),
                ));
                findings.push(format!(
                    "{key}: {} ({})",
                    finding["summary"].as_str().unwrap_or(""),
                    finding["rule"].as_str().unwrap_or("")
                ));
            }
        }
    }

    // Who saw what, through which rule: each child's access report, as the area's privacy
    // officer reads it, each line with its ledger entry.
    let officer = player.token(&Professional {
        name: "scenario-privacy-officer".into(),
        organisation: kinfold_gateway::disclosure::DisclosureConfig::default().area,
        role: "privacy-officer".into(),
    })?;
    let mut accesses = Vec::new();
    for (key, id) in &ids {
        let report = player
            .read(
                &format!("/Patient/{id}/$access-report?_count=1000"),
                &officer,
            )
            .await?;
        for access in report["accesses"].as_array().into_iter().flatten() {
            let who = access["who"].as_str().unwrap_or("");
            if who == "kinfold-identity" {
                continue;
            }
            accesses.push(format!(
                "{key}: entry {}: {} (rule {}{}{})",
                access["ledger_entry"],
                access["text"].as_str().unwrap_or(""),
                access["rule"].as_str().unwrap_or("-"),
                if access["override"] == true {
                    ", by override"
                } else {
                    ""
                },
                match access["withheld"].as_u64() {
                    Some(n) if n > 0 => format!(", {n} withheld"),
                    _ => String::new(),
                }
            ));
        }
    }
    let expected_findings: Vec<FindingChecked> = scenario
        .expect_findings
        .iter()
        .map(|expected| {
            let hit = found
                .iter()
                .find(|(key, rule, _)| *key == expected.about && *rule == expected.rule);
            FindingChecked {
                expected: expected.clone(),
                met: hit.is_some(),
                found: hit.map_or_else(
                    || format!("no {} finding about {}", expected.rule, expected.about),
                    |(_, _, summary)| summary.clone(),
                ),
            }
        })
        .collect();
    let mut control_faults = Vec::new();
    if scenario.control {
        for t in &notifications {
            if t.rule != "child-attendance" || t.priority == "urgent" || t.level > 0 {
                control_faults.push(format!(
                    "{} ({}, level {}) about {} to {}",
                    t.rule, t.priority, t.level, t.about, t.to
                ));
            }
        }
        control_faults.extend(findings.iter().map(|f| format!("finding: {f}")));
    }

    // The ledger: every entry the run made (each notification's disclosure, each act, each
    // token issued) recomputed from the stored records and checked against the signed tree
    // heads.
    let ledger = &player.stack.gateway_ledger;
    ledger
        .sign_head(store)
        .await
        .map_err(|e| fail(format!("the ledger could not sign its head: {e}")))?;
    let head = ledger.latest();
    let verified = kinfold_audit::verify_store(store, &ledger.public_key(), head.as_ref())
        .await
        .map_err(|e| fail(e.to_string()))?;
    let ledger_words = format!(
        "{} entries recomputed from the stored records and checked against {} signed tree heads ({}); root {} at size {}. Every notification above is a disclosure with its entry there (rule and recipient), listed in the child's access report.",
        verified.entries,
        verified.heads,
        if verified.problems.is_empty() {
            "no problem found".to_owned()
        } else {
            format!("problems: {}", verified.problems.join("; "))
        },
        head.as_ref().map_or("-", |h| h.sha256_root_hash.as_str()),
        head.as_ref().map_or(0, |h| h.tree_size),
    );
    let ledger_ok = verified.problems.is_empty();

    let days = (end - scenario.start).num_days();
    let passed = expectations.iter().all(|c| c.met)
        && expected_findings.iter().all(|c| c.met)
        && control_faults.is_empty()
        && ledger_ok;
    Ok(Report {
        name: scenario.name.clone(),
        control: scenario.control,
        steps,
        notifications,
        expectations,
        accesses,
        findings,
        expected_findings,
        control_faults,
        ledger: ledger_words,
        timing: format!(
            "{days} scenario days replayed in {:.1} s",
            started.elapsed().as_secs_f64()
        ),
        passed,
    })
}

impl Report {
    /// The report for people.
    pub fn markdown(&self, scenario: &Scenario) -> String {
        let mut out = format!("# {}\n\n", self.name);
        if !scenario.about.is_empty() {
            out.push_str(&format!("{}\n\n", scenario.about.trim()));
        }
        out.push_str(&format!(
            "**{}.** {}.\n\n",
            if self.passed { "Passed" } else { "Failed" },
            self.timing
        ));
        if !self.expectations.is_empty() {
            out.push_str("## Expected, and what happened\n\n| requirement | expected | met | what happened |\n|---|---|---|---|\n");
            for c in &self.expectations {
                out.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    c.expected.requirement,
                    c.expected.says.replace('|', "/"),
                    if c.met { "yes" } else { "**no**" },
                    c.happened.replace('|', "/")
                ));
            }
            out.push('\n');
        }
        if !self.expected_findings.is_empty() {
            out.push_str("## Findings expected\n\n| requirement | expected | met | found |\n|---|---|---|---|\n");
            for c in &self.expected_findings {
                out.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    c.expected.requirement,
                    c.expected.says.replace('|', "/"),
                    if c.met { "yes" } else { "**no**" },
                    c.found.replace('|', "/")
                ));
            }
            out.push('\n');
        }
        if self.control {
            out.push_str("## Control\n\n");
            if self.control_faults.is_empty() {
                out.push_str("Nothing was raised beyond the routine notice every child's A&E attendance gets (G5), and no pattern or growth finding was made.\n\n");
            } else {
                for fault in &self.control_faults {
                    out.push_str(&format!("* raised: {fault}\n"));
                }
                out.push('\n');
            }
        }
        out.push_str("## Every notification\n\n| made | rule | about | to | priority | level | due | status | outcome | record shown |\n|---|---|---|---|---|---|---|---|---|---|\n");
        for t in &self.notifications {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                t.made,
                t.rule,
                t.about,
                t.to.replace('|', "/"),
                t.priority,
                t.level,
                t.due,
                t.status,
                t.outcome.join("; ").replace('|', "/"),
                if t.record_shown { "yes" } else { "withheld" }
            ));
        }
        out.push_str("\n## Findings\n\n");
        if self.findings.is_empty() {
            out.push_str("None.\n");
        }
        for f in &self.findings {
            out.push_str(&format!("* {f}\n"));
        }
        out.push_str("\n## Who saw what, through which rule\n\nEach child's access report as the area's privacy officer reads it (the person index's own filing left out), each line with its ledger entry.\n\n");
        for a in &self.accesses {
            out.push_str(&format!("* {a}\n"));
        }
        out.push_str("\n## Timeline\n\n");
        for s in &self.steps {
            out.push_str(&format!("* {s}\n"));
        }
        out.push_str(&format!("\n## Ledger\n\n{}\n", self.ledger));
        out
    }
}
