//! `Patient/{id}/$growth` and `$growth-chart`: every height, weight, BMI and head
//! circumference any agency holds for a child, scored against UK-WHO, with the NICE NG75
//! findings and the reviews where no weight was taken (G2).
//!
//! The records come through the same fan-out as `$everything`, and the disclosure is recorded
//! in the ledger before anything is sent.

use actix_web::{HttpRequest, web};
use chrono::NaiveDate;
use kinfold_fhir::codes::{
    CONTACT_TYPE_SYSTEM, CONTACTS_EXPECTING_WEIGHT, LOINC, LOINC_BIRTH_WEIGHT, LOINC_BMI,
    LOINC_GESTATION_AT_BIRTH, LOINC_HEAD, LOINC_HEAD_TAPE, LOINC_HEIGHT, LOINC_LENGTH,
    LOINC_WEIGHT,
};
use kinfold_fhir::{Agency, ParseError};
use kinfold_growth::chart::{Annotation, Chart, ChartPoint};
use kinfold_growth::ng75::{self, Finding, Rule, Weight};
use kinfold_growth::{Ages, Gap, Gestation, Measure, Review, Sex, missing_weights};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::answer::Disclosed;
use crate::audit::{self, Entry, Interaction};
use crate::auth::Caller;
use crate::error::GatewayError;
use crate::fanout::AgencyAnswer;
use crate::merge;
use crate::state::GatewayState;
use kinfold_audit::Receipt;

type State = web::Data<GatewayState>;

/// One scored measurement.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Scored {
    /// The agency's record (absolute URL at its adapter).
    pub observation: String,
    /// Which agency took it.
    pub agency: Agency,
    /// `weight`, `height`, `bmi` or `ofc`.
    pub measure: Measure,
    /// When.
    pub date: NaiveDate,
    /// The value, in `unit`.
    pub value: f64,
    /// `kg`, `cm` or `kg/m2`.
    pub unit: &'static str,
    /// Recorded as the birth weight.
    pub birth_weight: bool,
    /// Chronological age, decimal years.
    pub age: f64,
    /// Age from the expected date of delivery, decimal years.
    pub corrected_age: f64,
    /// Whether the SDS and centile are at the corrected age (UK-WHO rule).
    pub age_corrected: bool,
    /// SDS at the chart age, where there is a reference.
    pub sds: Option<f64>,
    /// Centile (0–100) at the chart age, where there is a reference.
    pub centile: Option<f64>,
    /// `implausible` (shown, not charted) or `no-reference`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flag: Option<&'static str>,
    /// Why there is no reference, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_reference: Option<String>,
}

/// An agency whose records are missing from the answer.
#[derive(Debug, Clone, Serialize)]
pub struct Missing {
    /// Which agency.
    pub agency: Agency,
    /// Why, in words.
    pub reason: String,
}

/// The answer of `$growth`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrowthReport {
    /// Kinfold person id.
    pub patient: String,
    /// `male` or `female`.
    pub sex: Sex,
    /// Date of birth.
    pub birth_date: NaiveDate,
    /// Gestation at birth (`null`: not recorded, term assumed).
    pub gestation: Option<Gestation>,
    /// The reference every SDS is against.
    pub reference: &'static str,
    /// Every measurement, oldest first.
    pub measurements: Vec<Scored>,
    /// NICE NG75 findings about the child now.
    pub findings: Vec<Finding>,
    /// Every NG75 finding met at some point, dated by the weight that met it: a fall the child
    /// has since recovered from stays here.
    pub history: Vec<ng75::DatedFinding>,
    /// Reviews where a weight was expected and none was taken.
    pub gaps: Vec<Gap>,
    /// Agencies that did not answer: their measurements are missing.
    pub missing_agencies: Vec<Missing>,
}

const REFERENCE: &str = "UK-WHO (UK90 below 2 weeks and from 4 years; WHO 2006 from 2 weeks to 4 years), by the LMS method";

/// Reads a child's growth from the agencies' answers.
pub(crate) fn report(
    person_id: &str,
    nhs: Option<&kinfold_fhir::NhsNumber>,
    answers: &[AgencyAnswer],
) -> Result<GrowthReport, GatewayError> {
    let patient =
        merge::patient_view(person_id, nhs, answers).ok_or(GatewayError::UnknownPerson)?;
    let sex = patient["gender"].as_str().and_then(Sex::parse);
    let birth = patient["birthDate"]
        .as_str()
        .and_then(|d| d.parse::<NaiveDate>().ok());
    let (Some(sex), Some(birth)) = (sex, birth) else {
        return Err(GatewayError::NotChartable(
            "Growth can only be charted for a child with a recorded birth date and a sex of male or female.".into(),
        ));
    };
    let records = answers.iter().filter_map(|a| {
        a.result
            .as_ref()
            .ok()
            .map(|records| records.iter().map(move |r| (a.agency, r)))
    });
    let mut gestation = None;
    let mut raw = Vec::new();
    let mut reviews = Vec::new();
    for (agency, record) in records.flatten() {
        let resource = &record.resource;
        match resource["resourceType"].as_str() {
            Some("Observation") if is_current(resource) => {
                if let Some(code) = loinc_code(resource) {
                    if code == LOINC_GESTATION_AT_BIRTH {
                        gestation = gestation.or_else(|| read_gestation(resource));
                    } else if let Some((measure, birth_weight)) = measure_for(code)
                        && let (Some(date), Some(value)) =
                            (effective_date(resource), quantity(resource, measure))
                    {
                        raw.push((
                            record.full_url.clone(),
                            agency,
                            measure,
                            birth_weight,
                            date,
                            value,
                        ));
                    }
                }
            }
            Some("Encounter") => {
                if let Some((label, date)) = review_of(resource) {
                    reviews.push(Review {
                        reference: record.full_url.clone(),
                        label: label.to_owned(),
                        date,
                        agency: agency.as_str().to_owned(),
                    });
                }
            }
            _ => {}
        }
    }
    let used_gestation = gestation.unwrap_or(Gestation::TERM);
    let mut measurements: Vec<Scored> = raw
        .into_iter()
        .filter_map(
            |(observation, agency, measure, birth_weight, date, value)| {
                let ages = Ages::new(birth, date, used_gestation).ok()?;
                let (sds, centile, flag, no_reference) =
                    match kinfold_growth::assess(measure, sex, ages.chart, value) {
                        Ok(a) => (
                            Some(a.sds),
                            Some(a.centile),
                            a.implausible.then_some("implausible"),
                            None,
                        ),
                        Err(why) => (None, None, Some("no-reference"), Some(why.to_string())),
                    };
                Some(Scored {
                    observation,
                    agency,
                    measure,
                    date,
                    value,
                    unit: measure.unit(),
                    birth_weight,
                    age: ages.chronological,
                    corrected_age: ages.corrected,
                    age_corrected: ages.is_corrected,
                    sds,
                    centile,
                    flag,
                    no_reference,
                })
            },
        )
        .collect();
    measurements.sort_by_key(|a| (a.date, a.measure));
    // The NG75 rules take the weights as scored above (implausible ones without a score).
    let weights: Vec<Weight> = measurements
        .iter()
        .filter(|m| m.measure == Measure::Weight)
        .map(|m| Weight {
            reference: m.observation.clone(),
            date: m.date,
            ages: Ages::from_days((m.date - birth).num_days(), used_gestation),
            kg: m.value,
            sds: m.sds.filter(|_| m.flag.is_none()),
            agency: m.agency.as_str().to_owned(),
            is_birth_weight: m.birth_weight,
        })
        .collect();
    let findings = ng75::assess(&weights);
    let mut history = ng75::history(&weights);
    // Without a recorded gestation every age is taken as from term: a preterm baby's early
    // weights then plot lower than they are. Say so on what was found in the first two years.
    if gestation.is_none() {
        for past in &mut history {
            if (past.date - birth).num_days() < 2 * 365 {
                past.finding.summary.push_str(
                    " Gestation at birth is not recorded, so term was assumed; a preterm baby's early weights plot lower than they are.",
                );
            }
        }
    }
    let weight_dates: Vec<NaiveDate> = weights.iter().map(|w| w.date).collect();
    let gaps = missing_weights(&reviews, &weight_dates);
    let missing_agencies = answers
        .iter()
        .filter_map(|a| match &a.result {
            Err(failure) => Some(Missing {
                agency: a.agency,
                reason: failure.describe(),
            }),
            Ok(_) if a.truncated => Some(Missing {
                agency: a.agency,
                reason: format!(
                    "holds more records than one answer carries ({} pages), so only some were read",
                    crate::fanout::MAX_PAGES
                ),
            }),
            Ok(_) => None,
        })
        .collect();
    Ok(GrowthReport {
        patient: person_id.to_owned(),
        sex,
        birth_date: birth,
        gestation,
        reference: REFERENCE,
        measurements,
        findings,
        history,
        gaps,
        missing_agencies,
    })
}

/// Entered-in-error and cancelled measurements are not growth.
fn is_current(observation: &Value) -> bool {
    matches!(
        observation["status"].as_str(),
        Some("final" | "amended" | "corrected" | "preliminary")
    )
}

fn loinc_code(observation: &Value) -> Option<&str> {
    observation["code"]["coding"]
        .as_array()?
        .iter()
        .find(|c| c["system"] == LOINC)
        .and_then(|c| c["code"].as_str())
}

fn measure_for(code: &str) -> Option<(Measure, bool)> {
    match code {
        LOINC_WEIGHT => Some((Measure::Weight, false)),
        LOINC_BIRTH_WEIGHT => Some((Measure::Weight, true)),
        LOINC_HEIGHT | LOINC_LENGTH => Some((Measure::Height, false)),
        LOINC_BMI => Some((Measure::Bmi, false)),
        LOINC_HEAD | LOINC_HEAD_TAPE => Some((Measure::Ofc, false)),
        _ => None,
    }
}

fn effective_date(observation: &Value) -> Option<NaiveDate> {
    let text = observation["effectiveDateTime"]
        .as_str()
        .or_else(|| observation["effectivePeriod"]["start"].as_str())?;
    text.get(..10)?.parse().ok()
}

/// The value in the measure's unit, converting the UCUM units agencies use.
fn quantity(observation: &Value, measure: Measure) -> Option<f64> {
    let q = &observation["valueQuantity"];
    let value = q["value"].as_f64()?;
    let unit = q["code"]
        .as_str()
        .or_else(|| q["unit"].as_str())
        .unwrap_or(measure.unit());
    let factor = match (measure, unit) {
        (Measure::Weight, "kg") | (Measure::Height | Measure::Ofc, "cm") => 1.0,
        (Measure::Weight, "g") => 0.001,
        (Measure::Height | Measure::Ofc, "mm") => 0.1,
        (Measure::Height | Measure::Ofc, "m") => 100.0,
        (Measure::Bmi, "kg/m2" | "kg/m^2") => 1.0,
        _ => return None,
    };
    Some(value * factor)
}

/// Gestation at birth from a `wk` or `d` quantity, or a "39+6" string.
fn read_gestation(observation: &Value) -> Option<Gestation> {
    let days = if let Some(text) = observation["valueString"].as_str() {
        let (weeks, days) = text.split_once('+').unwrap_or((text, "0"));
        weeks.trim().parse::<i64>().ok()? * 7 + days.trim().parse::<i64>().ok()?
    } else {
        let q = &observation["valueQuantity"];
        let value = q["value"].as_f64()?;
        match q["code"].as_str().or_else(|| q["unit"].as_str())? {
            "wk" => (value * 7.0).round() as i64,
            "d" => value.round() as i64,
            _ => return None,
        }
    };
    let weeks = u8::try_from(days / 7).ok()?;
    let days = u8::try_from(days % 7).ok()?;
    Gestation::new(weeks, days).ok()
}

fn review_of(encounter: &Value) -> Option<(&'static str, NaiveDate)> {
    let codes = encounter["type"].as_array()?;
    let label = codes
        .iter()
        .flat_map(|t| t["coding"].as_array().into_iter().flatten())
        .filter(|c| c["system"] == CONTACT_TYPE_SYSTEM)
        .find_map(|c| {
            CONTACTS_EXPECTING_WEIGHT
                .iter()
                .find(|(code, _)| c["code"] == *code)
                .map(|(_, label)| *label)
        })?;
    let date = encounter["period"]["start"]
        .as_str()?
        .get(..10)?
        .parse()
        .ok()?;
    Some((label, date))
}

async fn load(
    caller: &Caller,
    state: &State,
    request: &HttpRequest,
    person_id: String,
    operation: &'static str,
) -> Result<(GrowthReport, Receipt), GatewayError> {
    // The same disclosure pipeline as `$everything`: only what this caller may see is read.
    let mut gathered =
        crate::pipeline::gather(state, caller, request, &person_id, false, operation).await?;
    let part = gathered.parts.remove(0);
    let answers = &part.screened.answers;
    if answers.iter().all(|a| a.result.is_err()) {
        return Err(GatewayError::NoAgencyAnswered);
    }
    let person_id = part.id.clone();
    let report = report(&person_id, part.nhs.as_ref(), answers)?;
    let disclosed = report
        .measurements
        .iter()
        .map(|m| audit::disclosed(&m.observation, "Observation", Some(m.agency.as_str())))
        .collect();
    // Fail closed: the disclosure is durably in the ledger before a byte is sent.
    let receipt = state
        .record_access(
            Entry::by_caller(caller, request, Interaction::Operation, operation)
                .about(person_id)
                .entities(disclosed)
                .rule(gathered.relationship.rule)
                .done(),
        )
        .await?;
    Ok((report, receipt))
}

/// Every growth measurement for a child, scored, with NG75 findings and missing reviews.
#[utoipa::path(get, path = "/Patient/{id}/$growth", tag = "Growth",
    params(("id" = String, Path, description = "Kinfold person id, from a Patient search")),
    responses(
        (status = 200, description = "Every height, weight, BMI and head circumference from every agency, oldest first, each with chronological and corrected age, SDS and centile against UK-WHO (at corrected age while the charts correct for prematurity), its source agency and any flag (`implausible`, `no-reference`); the NICE NG75 findings, each naming its rule, the guideline's words, the measurements and the agencies that took them; reviews where no weight was taken; and agencies that did not answer.", content_type = "application/json", body = serde_json::Value),
        (status = 401, description = "Missing, expired or untrusted token", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 403, description = "The token lacks role, organisation or purpose of use (`who-and-why`), or the records show no legitimate relationship between the caller and the child (`no-relationship`, recorded); nothing is disclosed", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "Unknown person", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 422, description = "No birth date or no sex of male/female recorded", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 503, description = "The ledger cannot record this disclosure, so nothing is disclosed", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn growth(
    caller: Caller,
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<Disclosed, GatewayError> {
    kinfold_http::no_parameters(&request).map_err(GatewayError::Refused)?;
    let (report, receipt) = load(
        &caller,
        &state,
        &request,
        path.into_inner(),
        "Patient/$growth",
    )
    .await?;
    Ok(Disclosed::json(receipt, &report))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChartQuery {
    measure: Option<String>,
}

/// A UK-WHO growth chart for one measure, as SVG.
#[utoipa::path(get, path = "/Patient/{id}/$growth-chart", tag = "Growth",
    params(("id" = String, Path, description = "Kinfold person id, from a Patient search"),
           ("measure" = Option<String>, Query, description = "weight (default), height, bmi or ofc")),
    responses(
        (status = 200, description = "An SVG chart: the nine UK-WHO centile lines (0.4th to 99.6th), every plausible measurement coloured by the agency that took it, and any NG75 fall drawn and labelled", content_type = "image/svg+xml", body = String),
        (status = 400, description = "Unknown measure", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 401, description = "Missing, expired or untrusted token", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 403, description = "The token lacks role, organisation or purpose of use (`who-and-why`), or the records show no legitimate relationship between the caller and the child (`no-relationship`, recorded); nothing is disclosed", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "Unknown person", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 503, description = "The ledger cannot record this disclosure, so nothing is disclosed", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn growth_chart(
    caller: Caller,
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ChartQuery>,
) -> Result<Disclosed, GatewayError> {
    let measure = match query.measure.as_deref() {
        None => Measure::Weight,
        Some(text) => Measure::parse(text).ok_or_else(|| {
            GatewayError::BadSearch(ParseError::SearchParameter {
                name: "measure".into(),
                message: "must be weight, height, bmi or ofc".into(),
            })
        })?,
    };
    let (report, receipt) = load(
        &caller,
        &state,
        &request,
        path.into_inner(),
        "Patient/$growth-chart",
    )
    .await?;
    let svg =
        kinfold_growth::chart::render(&chart(&report, measure)).map_err(GatewayError::Chart)?;
    Ok(Disclosed::body(
        receipt,
        "image/svg+xml; charset=utf-8",
        svg,
    ))
}

/// The chart for one measure: plausible, referenced measurements, one series per agency, and
/// the NG75 fall (for weight) drawn from the peak to the latest weight.
pub fn chart(report: &GrowthReport, measure: Measure) -> Chart {
    let plotted: Vec<&Scored> = report
        .measurements
        .iter()
        .filter(|m| m.measure == measure && m.sds.is_some() && m.flag.is_none())
        .collect();
    let mut series: Vec<Agency> = Vec::new();
    for m in &plotted {
        if !series.contains(&m.agency) {
            series.push(m.agency);
        }
    }
    let chart_age = |m: &Scored| {
        if m.age_corrected {
            m.corrected_age
        } else {
            m.age
        }
    };
    let points = plotted
        .iter()
        .map(|m| ChartPoint {
            age: chart_age(m),
            value: m.value,
            series: series.iter().position(|a| *a == m.agency).unwrap_or(0),
        })
        .collect();
    let mut annotations = Vec::new();
    if measure == Measure::Weight {
        for finding in report
            .findings
            .iter()
            .filter(|f| f.rule == Rule::FallAcrossCentiles)
        {
            // The fall runs through every weight from where it began to the latest.
            let began = plotted
                .iter()
                .find(|m| Some(&m.observation) == finding.fall_began.as_ref())
                .map(|m| m.date);
            let path: Vec<(f64, f64)> = plotted
                .iter()
                .filter(|m| finding.measurements.contains(&m.observation))
                .filter(|m| began.is_some_and(|began| m.date >= began))
                .map(|m| (chart_age(m), m.value))
                .collect();
            if path.len() >= 2 {
                annotations.push(Annotation {
                    path,
                    text: format!(
                        "Fall of {:.1} centile spaces: NICE NG75 threshold met",
                        finding.centile_spaces.unwrap_or_default()
                    ),
                });
            }
        }
    }
    let mut notes: Vec<String> = report
        .missing_agencies
        .iter()
        .map(|m| {
            format!(
                "{} {}: its measurements are missing.",
                m.agency.display_name(),
                m.reason
            )
        })
        .collect();
    if plotted.is_empty() {
        notes.push(format!(
            "No {} measurement that can be charted is recorded for this child by any agency that answered.",
            measure.label().to_lowercase()
        ));
    }
    if measure == Measure::Weight {
        notes.extend(report.gaps.iter().map(|gap| gap.summary.clone()));
    }
    let hidden = report
        .measurements
        .iter()
        .filter(|m| m.measure == measure && m.flag.is_some())
        .count();
    if hidden > 0 {
        notes.push(format!("{hidden} measurement(s) not plotted: implausible or outside the reference (see $growth)."));
    }
    let sex = match report.sex {
        Sex::Male => "boy",
        Sex::Female => "girl",
    };
    let gestation = report
        .gestation
        .map(|g| format!(", born at {}+{} weeks", g.weeks, g.days))
        .unwrap_or_default();
    Chart {
        measure,
        sex: report.sex,
        title: format!(
            "{}: {sex}, born {}{gestation}",
            measure.label(),
            report.birth_date
        ),
        series: series.iter().map(|a| a.display_name().to_owned()).collect(),
        points,
        annotations,
        notes,
    }
}
