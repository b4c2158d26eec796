//! `GET /Patient/{id}/$chronology`: every record the caller may see about a child (and with
//! `family=true`, the child's family), from every agency, as one time-ordered list of
//! chronology entries with the pattern findings, through the one disclosure pipeline: what
//! the caller may not see is counted, an agency that did not answer is named, and the answer
//! is recorded in the ledger before it is sent. The ordering, wording and patterns are
//! `kinfold-chronology`'s; this module reads the FHIR records into it.

use actix_web::{HttpRequest, web};
use chrono::NaiveDate;
use kinfold_chronology::{Entry, Filter, Injury, Record, Seen, Significance, When};
use kinfold_fhir::codes::EVENT_SYSTEM;
use kinfold_fhir::{Agency, ParseError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::answer::Disclosed;
use crate::audit::{self, Entry as AuditEntry, Interaction};
use crate::auth::Caller;
use crate::error::GatewayError;
use crate::state::GatewayState;

type State = web::Data<GatewayState>;

/// What `$chronology` may be asked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChronologyQuery {
    family: Option<bool>,
    agency: Option<String>,
    from: Option<String>,
    to: Option<String>,
    significance: Option<String>,
}

fn bad(name: &str, message: &str) -> GatewayError {
    GatewayError::BadSearch(ParseError::SearchParameter {
        name: name.into(),
        message: message.into(),
    })
}

impl ChronologyQuery {
    fn filter(&self) -> Result<Filter, GatewayError> {
        let day = |name: &str, text: &Option<String>| {
            text.as_deref()
                .map(|t| {
                    NaiveDate::parse_from_str(t, "%Y-%m-%d")
                        .map_err(|_| bad(name, "must be a date, YYYY-MM-DD"))
                })
                .transpose()
        };
        let agencies = match self.agency.as_deref() {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|a| {
                    a.trim().parse::<Agency>().map_err(|_| {
                        bad(
                            "agency",
                            "must be midwifery, ae, gp, health-visiting or school-nursing (several separated by commas)",
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let significance = match self.significance.as_deref() {
            None => None,
            Some("routine") => Some(Significance::Routine),
            Some("of-note") => Some(Significance::OfNote),
            Some("safeguarding") => Some(Significance::Safeguarding),
            Some(_) => {
                return Err(bad(
                    "significance",
                    "must be routine, of-note or safeguarding (that and above)",
                ));
            }
        };
        Ok(Filter {
            from: day("from", &self.from)?,
            to: day("to", &self.to)?,
            agencies,
            significance,
        })
    }
}

/// When a resource says it happened, by its type.
fn happened(resource: &Value) -> Option<&str> {
    let at = |path: &[&str]| {
        path.iter()
            .try_fold(resource, |v, key| v.get(*key))
            .and_then(Value::as_str)
    };
    match resource["resourceType"].as_str()? {
        "Encounter" | "EpisodeOfCare" | "Flag" => at(&["period", "start"]),
        "Observation" => at(&["effectiveDateTime"])
            .or_else(|| at(&["effectivePeriod", "start"]))
            .or_else(|| at(&["issued"])),
        "Condition" => at(&["onsetDateTime"]).or_else(|| at(&["recordedDate"])),
        "Communication" => at(&["sent"]).or_else(|| at(&["received"])),
        "Appointment" => at(&["start"]),
        "Task" | "ServiceRequest" => {
            at(&["executionPeriod", "start"]).or_else(|| at(&["authoredOn"]))
        }
        "Procedure" => at(&["performedDateTime"]),
        "DocumentReference" | "Composition" => at(&["date"]),
        _ => None,
    }
}

/// The record's own words: its coded meaning's text or display, a concern or message.
fn words(resource: &Value) -> Option<String> {
    let code = &resource["code"];
    code["text"]
        .as_str()
        .or_else(|| code["coding"][0]["display"].as_str())
        .or_else(|| resource["valueString"].as_str())
        .or_else(|| resource["payload"][0]["contentString"].as_str())
        .or_else(|| resource["reasonCode"][0]["text"].as_str())
        .or_else(|| resource["type"][0]["text"].as_str())
        .or_else(|| resource["type"][0]["coding"][0]["display"].as_str())
        .map(str::to_owned)
}

/// One FHIR record as a chronology record, for a person related to the child as `kin`.
fn record_of(agency: Agency, resource: &Value, person: &str, kin: &str) -> Option<Record> {
    let kind = resource["resourceType"].as_str()?;
    // A contact's details (seen, seen alone, interpreter, language) are on its Encounter's
    // tags: their own Observations would only repeat them.
    if kind == "Observation"
        && matches!(
            resource["code"]["coding"][0]["code"].as_str(),
            Some("child-seen" | "seen-alone" | "interpreter-used" | "language")
        )
    {
        return None;
    }
    let when = When::parse(happened(resource)?)?;
    let mut events: Vec<String> = resource["meta"]["tag"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["system"] == EVENT_SYSTEM)
        .filter_map(|t| t["code"].as_str().map(str::to_owned))
        .collect();
    // What the record's type says where the feed tags nothing: an A&E encounter is an
    // attendance; a Flag is a safeguarding flag.
    if events.is_empty() && agency == Agency::Ae && kind == "Encounter" {
        events.push("ed-attendance".into());
    }
    if kind == "Flag" {
        events.push("flag".into());
    }
    let text = words(resource);
    let mut injuries: Vec<Injury> = resource["code"]["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["system"] == "http://snomed.info/sct")
        .filter_map(|c| c["code"].as_str().and_then(Injury::from_snomed))
        .collect();
    if let Some(text) = &text {
        for injury in Injury::from_words(text) {
            if !injuries.contains(&injury) {
                injuries.push(injury);
            }
        }
    }
    if injuries.is_empty() && events.iter().any(|e| e == "injury" || e == "child-injured") {
        injuries.push(Injury::Other);
    }
    let has = |code: &str| events.iter().any(|e| e == code);
    let seen = Seen {
        seen: if has("child-not-seen") {
            Some(false)
        } else if has("child-seen") || has("seen-alone") || has("child-not-seen-alone") {
            Some(true)
        } else {
            None
        },
        alone: if has("seen-alone") {
            Some(true)
        } else if has("child-not-seen-alone") || has("child-not-seen") {
            Some(false)
        } else {
            None
        },
        interpreter_needed: (has("interpreter-used") || has("interpreter-not-used"))
            .then_some(true),
        interpreter_used: if has("interpreter-used") {
            Some(true)
        } else if has("interpreter-not-used") {
            Some(false)
        } else {
            None
        },
    };
    let action = has("safeguarding-referral").then(|| "safeguarding referral made".to_owned());
    Some(Record {
        reference: format!("{kind}/{}", resource["id"].as_str()?),
        agency,
        when,
        events,
        text,
        injuries,
        person: person.to_owned(),
        relationship: kin.to_owned(),
        seen,
        action,
        provenance: None,
    })
}

/// A chronology of a child, or with `family=true` of the child's family.
#[utoipa::path(get, path = "/Patient/{id}/$chronology", tag = "Chronology",
    params(("id" = String, Path, description = "Kinfold person id, from a Patient search"),
           ("family" = Option<bool>, Query, description = "true: every family member's records too, each entry naming whose and how related"),
           ("agency" = Option<String>, Query, description = "Only these agencies (comma-separated)"),
           ("from" = Option<String>, Query, description = "From this day (YYYY-MM-DD)"),
           ("to" = Option<String>, Query, description = "To this day (YYYY-MM-DD)"),
           ("significance" = Option<String>, Query, description = "routine, of-note or safeguarding: entries at least this significant")),
    responses(
        (status = 200, description = "`entries`: every record the caller may see, oldest first: when (as recorded, with its precision), agency, event codes, whom it concerns and their relationship to the child, a one-line summary, significance, whether the child was seen, seen alone and had an interpreter, the action recorded, and the source record (`reference` at `agency`). `findings`: the patterns across agencies (NICE CG89 injuries, injuries within six months across agencies, repeated attendances and was-not-brought, child not seen alone, interpreter not used), each dated with its evidence. `withheld`: what the caller may not see, counted by rule. `missingAgencies`: agencies that did not answer.", content_type = "application/json", body = serde_json::Value),
        (status = 400, description = "A parameter that cannot be read", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 401, description = "Missing, expired or untrusted token", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 403, description = "The token lacks role, organisation or purpose of use (`who-and-why`)", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 404, description = "Unknown person, or no legitimate relationship with the child (answered alike, and recorded)", content_type = "application/fhir+json", body = serde_json::Value),
        (status = 503, description = "The ledger cannot record this disclosure, so nothing is disclosed", content_type = "application/fhir+json", body = serde_json::Value),
    ),
    security(("bearer" = [])))]
pub(crate) async fn chronology(
    caller: Caller,
    state: State,
    request: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ChronologyQuery>,
) -> Result<Disclosed, GatewayError> {
    let filter = query.filter()?;
    let family = query.family.unwrap_or(false);
    let operation = "Patient/$chronology";
    let gathered = crate::pipeline::gather(
        &state,
        &caller,
        &request,
        &path.into_inner(),
        family,
        operation,
    )
    .await?;
    let child = gathered
        .parts
        .first()
        .map(|p| p.id.clone())
        .ok_or(GatewayError::UnknownPerson)?;
    let mut records = Vec::new();
    let mut born: Option<NaiveDate> = None;
    let mut missing: Vec<Value> = Vec::new();
    let mut withheld: Vec<Value> = Vec::new();
    for part in &gathered.parts {
        let kin = part.kin.map_or("self", |k| k.coding().2);
        for answer in &part.screened.answers {
            match &answer.result {
                Ok(found) => {
                    for record in found {
                        let resource = &record.resource;
                        if part.kin.is_none()
                            && resource["resourceType"] == "Patient"
                            && born.is_none()
                        {
                            born = resource["birthDate"]
                                .as_str()
                                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
                        }
                        records.extend(record_of(answer.agency, resource, &part.id, kin));
                    }
                }
                Err(failure) => missing.push(json!({
                    "agency": answer.agency.as_str(),
                    "person": part.id,
                    "reason": failure.describe(),
                })),
            }
        }
        for w in &part.screened.withheld {
            withheld.push(json!({
                "person": part.id,
                "relationship": kin,
                "agency": w.agency.as_str(),
                "rule": w.rule,
                "count": w.count,
                "overridable": w.overridable,
            }));
        }
    }
    let entries: Vec<Entry> = kinfold_chronology::assemble(records, &filter);
    let findings = kinfold_chronology::find(&entries, born, kinfold_chronology::Mobility::Unknown);
    let disclosed = entries
        .iter()
        .map(|e| {
            let kind = e.record.reference.split('/').next().unwrap_or_default();
            audit::disclosed(&e.record.reference, kind, Some(e.record.agency.as_str()))
        })
        .collect();
    // Fail closed: the disclosure is durably in the ledger before a byte is sent.
    let receipt = state
        .record_access(
            AuditEntry::by_caller(&caller, &request, Interaction::Operation, operation)
                .about(child.clone())
                .entities(disclosed)
                .rule(gathered.relationship.rule)
                .done(),
        )
        .await?;
    let withheld_count: usize = gathered
        .parts
        .iter()
        .flat_map(|p| &p.screened.withheld)
        .map(|w| w.count)
        .sum();
    let body = json!({
        "patient": child,
        "family": family,
        "entries": entries,
        "findings": findings,
        "withheld": {"count": withheld_count, "byRule": withheld},
        "missingAgencies": missing,
        "familyMembersLeftOut": gathered.left_out,
    });
    Ok(Disclosed::json(receipt, &body))
}
