//! `GET /Patient/{id}/$chronology`: every record the caller may see about a child (and with
//! `family=true`, the child's family), from every agency, as one time-ordered list of
//! chronology entries with the pattern findings, through the one disclosure pipeline: what
//! the caller may not see is counted, an agency that did not answer is named, and the answer
//! is recorded in the ledger before it is sent. The ordering, wording and patterns are
//! `kinfold-chronology`'s; this module reads the FHIR records into it.

use actix_web::{HttpRequest, web};
use chrono::NaiveDate;
use kinfold_chronology::{Entry, Filter, Injury, Record, Seen, Significance, When};
use kinfold_fhir::Agency;
use kinfold_fhir::codes::EVENT_SYSTEM;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::answer::Disclosed;
use crate::audit;
use crate::auth::Caller;
use crate::error::{GatewayError, bad_parameter, day_parameter};
use crate::state::GatewayState;

type State = web::Data<GatewayState>;

/// The record types a chronology is made of (those `happened` dates and the adapters keep),
/// asked of each agency:
/// provenance and originals are not entries, so they are neither fetched nor counted.
const CHRONOLOGY_TYPES: &str = "Encounter,EpisodeOfCare,Flag,Observation,Condition,Communication,Appointment,Task,ServiceRequest,Procedure,DocumentReference";

/// What `$chronology` may be asked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChronologyQuery {
    #[serde(rename = "_format")]
    format: Option<String>,
    family: Option<bool>,
    agency: Option<String>,
    from: Option<String>,
    to: Option<String>,
    significance: Option<String>,
}

/// How the chronology is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Kinfold's JSON (entries, findings, withheld, missing agencies).
    Json,
    /// A FHIR `Bundle` of type `collection`: a `List` of the entries, then their records.
    Fhir,
    /// CSV, one row per entry, and a last row saying what was withheld or missing.
    Csv,
    /// A page to print for a strategy meeting.
    Html,
}

impl ChronologyQuery {
    /// The filters asked for, in words (for the printed page).
    fn described(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(agency) = &self.agency {
            out.push(format!("agencies {agency}"));
        }
        if let Some(from) = &self.from {
            out.push(format!("from {from}"));
        }
        if let Some(to) = &self.to {
            out.push(format!("to {to}"));
        }
        if let Some(significance) = &self.significance {
            out.push(format!("{significance} and above"));
        }
        out
    }

    fn format(&self) -> Result<Format, GatewayError> {
        match self.format.as_deref() {
            None | Some("json" | "application/json") => Ok(Format::Json),
            Some("fhir" | "application/fhir+json") => Ok(Format::Fhir),
            Some("csv" | "text/csv") => Ok(Format::Csv),
            Some("html" | "text/html") => Ok(Format::Html),
            Some(_) => Err(bad_parameter("_format", "must be json, fhir, csv or html")),
        }
    }

    fn filter(&self) -> Result<Filter, GatewayError> {
        let agencies = match self.agency.as_deref() {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|a| {
                    a.trim().parse::<Agency>().map_err(|_| {
                        bad_parameter(
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
                return Err(bad_parameter(
                    "significance",
                    "must be routine, of-note or safeguarding (that and above)",
                ));
            }
        };
        let (from, to) = (
            day_parameter("from", self.from.as_deref())?,
            day_parameter("to", self.to.as_deref())?,
        );
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            return Err(bad_parameter("from", "is after to"));
        }
        Ok(Filter {
            from,
            to,
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

/// The injuries a record names, by its SNOMED CT codes and its words (the chronology's and
/// the notification rules' one reading).
pub(crate) fn injuries_in(resource: &Value) -> Vec<Injury> {
    let mut injuries: Vec<Injury> = resource["code"]["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["system"] == "http://snomed.info/sct")
        .filter_map(|c| c["code"].as_str().and_then(Injury::from_snomed))
        .collect();
    if let Some(text) = words(resource) {
        for injury in Injury::from_words(&text) {
            if !injuries.contains(&injury) {
                injuries.push(injury);
            }
        }
    }
    injuries
}

/// The record's own words, for the notification rules (a bite is a dog's only if it says so).
pub(crate) fn words_of(resource: &Value) -> String {
    words(resource).unwrap_or_default()
}

/// A contact's details, from its own Observations (`child-seen`, `seen-alone`,
/// `interpreter-used`, `language`), by the contact's `Encounter/{id}`: the Encounter's tags
/// say only what went wrong, these say what was recorded either way.
fn contact_details<'a>(
    resources: impl Iterator<Item = &'a Value>,
) -> std::collections::HashMap<String, Seen> {
    let mut details: std::collections::HashMap<String, Seen> = std::collections::HashMap::new();
    for resource in resources.filter(|r| r["resourceType"] == "Observation") {
        let Some(encounter) = resource["encounter"]["reference"].as_str() else {
            continue;
        };
        let value = resource["valueBoolean"].as_bool();
        let seen = details.entry(encounter.to_owned()).or_default();
        match resource["code"]["coding"][0]["code"].as_str() {
            Some("child-seen") => seen.seen = value,
            Some("seen-alone") => seen.alone = value,
            Some("interpreter-used") => seen.interpreter_used = value,
            Some("language") => {
                seen.interpreter_needed = resource["valueString"]
                    .as_str()
                    .map(|l| !l.trim().eq_ignore_ascii_case("english"));
            }
            _ => {}
        }
    }
    details
}

/// When each contact began, by its `Encounter/{id}`: the date of a record made at the contact
/// that carries none of its own (an A&E injury sent without an `ACC` segment).
fn encounter_dates<'a>(
    resources: impl Iterator<Item = &'a Value>,
) -> std::collections::HashMap<String, String> {
    resources
        .filter(|r| r["resourceType"] == "Encounter")
        .filter_map(|r| {
            Some((
                format!("Encounter/{}", r["id"].as_str()?),
                r["period"]["start"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

/// A domestic-abuse notification's child-focused facts, from its extensions (G18).
fn child_focus(resource: &Value) -> Option<kinfold_chronology::ChildFocus> {
    if resource["resourceType"] != "Communication" {
        return None;
    }
    let extensions = resource["extension"].as_array()?;
    let find = |name: &str| {
        extensions.iter().find(|e| {
            e["url"]
                .as_str()
                .is_some_and(|u| u.rsplit('/').next() == Some(name))
        })
    };
    find("children-present")?;
    let flag = |name: &str| find(name).and_then(|e| e["valueBoolean"].as_bool());
    let text = |name: &str, key: &str| find(name).and_then(|e| e[key].as_str()).map(str::to_owned);
    Some(kinfold_chronology::ChildFocus {
        children_present: flag("children-present"),
        child_seen: flag("child-seen"),
        seen_by: text("child-seen-by", "valueString"),
        child_witnessed: flag("child-witnessed"),
        child_injured: flag("child-injured"),
        adult_victim_risk_grade: text("adult-victim-risk-grade", "valueCode"),
    })
}

/// One FHIR record as a chronology record, for a person related to the child as `kin`; a
/// contact's `details` from its own Observations.
fn record_of(
    agency: Agency,
    resource: &Value,
    person: &str,
    kin: &str,
    details: Option<&Seen>,
    encounters: &std::collections::HashMap<String, String>,
) -> Option<Record> {
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
    let at = happened(resource).or_else(|| {
        resource["encounter"]["reference"]
            .as_str()
            .and_then(|e| encounters.get(e))
            .map(String::as_str)
    })?;
    let when = When::parse(at)?;
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
    let mut injuries = injuries_in(resource);
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
    // What the contact's own Observations recorded, where they did.
    let seen = match details {
        Some(d) => Seen {
            seen: d.seen.or(seen.seen),
            alone: d.alone.or(seen.alone),
            interpreter_needed: d.interpreter_needed.or(seen.interpreter_needed),
            interpreter_used: d.interpreter_used.or(seen.interpreter_used),
        },
        None => seen,
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
        child_focus: child_focus(resource),
    })
}

/// A chronology of a child, or with `family=true` of the child's family.
#[utoipa::path(get, path = "/Patient/{id}/$chronology", tag = "Chronology",
    params(("id" = String, Path, description = "Kinfold person id, from a Patient search"),
           ("family" = Option<bool>, Query, description = "true: every family member's records too, each entry naming whose and how related"),
           ("agency" = Option<String>, Query, description = "Only these agencies (comma-separated)"),
           ("from" = Option<String>, Query, description = "From this day (YYYY-MM-DD)"),
           ("to" = Option<String>, Query, description = "To this day (YYYY-MM-DD)"),
           ("significance" = Option<String>, Query, description = "routine, of-note or safeguarding: entries at least this significant"),
           ("_format" = Option<String>, Query, description = "json (default); html: a page to print for a strategy meeting (findings, what was withheld or missing, every entry in a table); fhir: a Bundle (collection) of a List of the entries, their records and an OperationOutcome with the findings, withheld count and missing agencies; csv: one row per entry and a last row saying what was withheld or missing")),
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
    let format = query.format()?;
    let family = query.family.unwrap_or(false);
    let operation = "Patient/$chronology";
    let gathered = crate::pipeline::gather_types(
        &state,
        &caller,
        &request,
        &path.into_inner(),
        family,
        operation,
        Some(CHRONOLOGY_TYPES),
    )
    .await?;
    let child = gathered
        .parts
        .first()
        .map(|p| p.id.clone())
        .ok_or(GatewayError::UnknownPerson)?;
    let mut records = Vec::new();
    // Each record's resource and its address, by agency and reference, for the FHIR export.
    let mut sources: std::collections::HashMap<(Agency, String), (String, Value)> =
        std::collections::HashMap::new();
    let mut born: Option<NaiveDate> = None;
    let mut subject = crate::chronology_page::Subject {
        name: None,
        born: None,
        nhs_number: gathered
            .parts
            .first()
            .and_then(|p| p.nhs.as_ref())
            .map(|n| n.as_str().to_owned()),
    };
    let mut missing: Vec<Value> = Vec::new();
    let mut withheld: Vec<Value> = Vec::new();
    // Each person's safeguarding flags, active and resolved, with whose they are.
    let mut flags: Vec<(String, Value)> = Vec::new();
    for part in &gathered.parts {
        let kin = part.kin.map_or("self", |k| k.coding().2);
        for flag in crate::flags::shown(&state, &part.id).await? {
            flags.push((part.id.clone(), json!({"relationship": kin, "flag": flag})));
        }
        for answer in &part.screened.answers {
            match &answer.result {
                Ok(found) => {
                    let details = contact_details(found.iter().map(|r| &r.resource));
                    let encounters = encounter_dates(found.iter().map(|r| &r.resource));
                    for record in found {
                        let resource = &record.resource;
                        if part.kin.is_none()
                            && resource["resourceType"] == "Patient"
                            && born.is_none()
                        {
                            born = resource["birthDate"]
                                .as_str()
                                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
                            subject.born = resource["birthDate"].as_str().map(str::to_owned);
                            let name = &resource["name"][0];
                            let given: Vec<&str> = name["given"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(Value::as_str)
                                .collect();
                            subject.name = name["family"].as_str().map(|family| {
                                format!("{} {family}", given.join(" ")).trim().to_owned()
                            });
                        }
                        let id = resource["id"].as_str().unwrap_or_default();
                        let own = details.get(&format!("Encounter/{id}"));
                        if let Some(read) =
                            record_of(answer.agency, resource, &part.id, kin, own, &encounters)
                        {
                            sources.insert(
                                (answer.agency, read.reference.clone()),
                                (
                                    record.full_url.clone(),
                                    if format == Format::Fhir {
                                        resource.clone()
                                    } else {
                                        Value::Null
                                    },
                                ),
                            );
                            records.push(read);
                        }
                    }
                }
                Err(failure) => missing.push(json!({
                    "agency": answer.agency.as_str(),
                    "person": part.id,
                    "reason": failure.describe(),
                })),
            }
        }
    }
    // What was withheld, by agency and rule: like `$everything`, a family answer does not say
    // whose.
    for w in gathered.withheld() {
        withheld.push(json!({
            "agency": w.agency.as_str(),
            "rule": w.rule,
            "count": w.count,
            "overridable": w.overridable,
        }));
    }
    let entries: Vec<Entry> = kinfold_chronology::assemble(records, &filter);
    let mut findings =
        kinfold_chronology::find(&entries, born, kinfold_chronology::Mobility::Unknown);
    // The child's growth (NICE NG75, and reviews with no weight: G2), dated, when the records
    // give a birth date and sex to chart against.
    if let Some(part) = gathered.parts.first()
        && let Ok(growth) =
            crate::growth::report(&part.id, part.nhs.as_ref(), &part.screened.answers)
    {
        findings.extend(growth_findings(&growth, &filter));
        findings.sort_by(|a, b| a.date.cmp(&b.date).then(a.rule.cmp(b.rule)));
    }
    let withheld_count: usize = gathered
        .parts
        .iter()
        .flat_map(|p| &p.screened.withheld)
        .map(|w| w.count)
        .sum();
    let withheld_body = json!({"count": withheld_count, "byRule": withheld});
    // Everything is rendered before the ledger records it, so that what is recorded is what
    // is sent.
    let answer = match format {
        Format::Json => Answer::Json(json!({
            "patient": child,
            "family": family,
            "entries": entries,
            "findings": findings,
            "flags": flags.iter().map(|(_, f)| f).collect::<Vec<_>>(),
            "withheld": withheld_body,
            "missingAgencies": missing,
            "familyMembersLeftOut": gathered.left_out,
        })),
        Format::Csv => Answer::Csv(csv(&entries, withheld_count, &missing)?),
        Format::Html => Answer::Html(crate::chronology_page::render(
            &crate::chronology_page::Page {
                subject,
                family,
                entries: &entries,
                findings: &findings,
                flags: flags.iter().map(|(_, f)| f).collect(),
                withheld: withheld_count,
                withheld_by_rule: withheld_body["byRule"]
                    .as_array()
                    .map_or(&[], Vec::as_slice),
                missing: &missing,
                prepared_for: prepared_for(&gathered.requester),
                filters: query.described(),
                at: chrono::Utc::now(),
            },
        )),
        Format::Fhir => Answer::Fhir(bundle(
            &child,
            &entries,
            &findings,
            &flags,
            &withheld_body,
            &missing,
            &sources,
        )),
    };
    // An override's reviews, then the ledger: one entry per person whose records the answer
    // carries (so each is in that person's access report), before a byte is sent.
    let tasks = gathered.override_reviews(&state, &caller).await?;
    let query_words = if family {
        "Patient/$chronology?family=true"
    } else {
        operation
    };
    let records = gathered.audit_records(&caller, &request, query_words, &tasks, |person| {
        let flags_shown = flags.iter().filter(|(p, _)| p == person).map(|(_, f)| {
            audit::disclosed(
                &format!("Flag/{}", f["flag"]["id"].as_str().unwrap_or_default()),
                "Flag",
                None,
            )
        });
        entries
            .iter()
            .filter(|e| e.record.person == person)
            .map(|e| {
                let kind = e.record.reference.split('/').next().unwrap_or_default();
                let url = sources
                    .get(&(e.record.agency, e.record.reference.clone()))
                    .map_or(e.record.reference.as_str(), |(url, _)| url.as_str());
                audit::disclosed(url, kind, Some(e.record.agency.as_str()))
            })
            .chain(flags_shown)
            .collect()
    });
    let receipt = state.record_all(records).await?;
    Ok(match answer {
        Answer::Json(body) => Disclosed::json(receipt, &body),
        Answer::Csv(text) => Disclosed::body(receipt, "text/csv; charset=utf-8", text),
        Answer::Fhir(bundle) => Disclosed::fhir(receipt, &bundle),
        Answer::Html(page) => Disclosed::body(receipt, "text/html; charset=utf-8", page),
    })
}

/// `Observation/{id}` from an adapter's full URL.
fn short_reference(url: &str) -> String {
    let mut parts = url.rsplit('/');
    match (parts.next(), parts.next()) {
        (Some(id), Some(kind)) => format!("{kind}/{id}"),
        _ => url.to_owned(),
    }
}

/// The growth report's dated NG75 findings (kept after recovery) and its reviews without a
/// weight, as chronology findings within the period asked for.
fn growth_findings(
    growth: &crate::growth::GrowthReport,
    filter: &Filter,
) -> Vec<kinfold_chronology::Finding> {
    use kinfold_growth::ng75::Rule;
    let within = |date: NaiveDate| {
        filter.from.is_none_or(|from| date >= from) && filter.to.is_none_or(|to| date <= to)
    };
    let mut out: Vec<kinfold_chronology::Finding> = growth
        .history
        .iter()
        .filter(|d| within(d.date))
        .map(|d| kinfold_chronology::Finding {
            rule: match d.finding.rule {
                Rule::FallAcrossCentiles => "ng75-fall-across-centiles",
                Rule::BelowSecondCentile => "ng75-below-2nd-centile",
                Rule::EarlyWeightLoss => "ng75-early-weight-loss",
                Rule::BirthWeightNotRegained => "ng75-birth-weight-not-regained",
            },
            cites: "NICE NG75",
            date: d.date,
            summary: d.finding.summary.clone(),
            evidence: d
                .finding
                .measurements
                .iter()
                .map(|m| short_reference(m))
                .collect(),
        })
        .collect();
    out.extend(growth.gaps.iter().filter(|g| within(g.date)).map(|g| {
        kinfold_chronology::Finding {
            rule: "review-without-weight",
            cites: "G2",
            date: g.date,
            summary: g.summary.clone(),
            evidence: vec![short_reference(&g.review)],
        }
    }));
    out
}

/// A chronology rendered in the format asked for.
enum Answer {
    Json(Value),
    Csv(String),
    Fhir(Value),
    Html(String),
}

/// Who a page was prepared for, as their token says.
fn prepared_for(requester: &kinfold_consent::Requester) -> String {
    format!(
        "{}{} of {} ({})",
        requester
            .name
            .as_deref()
            .map(|n| format!("{n}, "))
            .unwrap_or_default(),
        requester.role.as_str(),
        requester.organisation,
        requester.purpose.as_str()
    )
}

/// The CSV's columns: what a chronology template asks for, then the record.
const CSV_COLUMNS: [&str; 14] = [
    "when",
    "precision",
    "agency",
    "person",
    "relationship",
    "significance",
    "summary",
    "events",
    "seen",
    "seen_alone",
    "interpreter_needed",
    "interpreter_used",
    "action",
    "record",
];

/// The entries as CSV (one row each, the columns a chronology template asks for), and a last
/// row saying what the caller may not see and which agencies did not answer.
fn csv(entries: &[Entry], withheld: usize, missing: &[Value]) -> Result<String, GatewayError> {
    let mut out = ::csv::Writer::from_writer(Vec::new());
    let yes_no = |b: Option<bool>| match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "",
    };
    let failed = |e: ::csv::Error| GatewayError::Export(format!("CSV: {e}"));
    out.write_record(CSV_COLUMNS).map_err(failed)?;
    for e in entries {
        let r = &e.record;
        let significance = serde_json::to_value(e.significance).unwrap_or_default();
        let precision = serde_json::to_value(r.when.precision).unwrap_or_default();
        let row = [
            r.when.text.clone(),
            precision.as_str().unwrap_or_default().to_owned(),
            r.agency.as_str().to_owned(),
            r.person.clone(),
            r.relationship.clone(),
            significance.as_str().unwrap_or_default().to_owned(),
            e.summary.clone(),
            r.events.join(" "),
            yes_no(r.seen.seen).to_owned(),
            yes_no(r.seen.alone).to_owned(),
            yes_no(r.seen.interpreter_needed).to_owned(),
            yes_no(r.seen.interpreter_used).to_owned(),
            r.action.clone().unwrap_or_default(),
            r.reference.clone(),
        ];
        out.write_record(row.iter().map(|c| cell(c).into_owned()))
            .map_err(failed)?;
    }
    let absent: Vec<&str> = missing
        .iter()
        .filter_map(|m| m["agency"].as_str())
        .collect();
    let note = format!(
        "{withheld} record(s) withheld from this caller{}",
        if absent.is_empty() {
            String::new()
        } else {
            format!("; agencies that did not answer: {}", absent.join(", "))
        }
    );
    // The note goes in the summary column; the others are left empty.
    let summary = CSV_COLUMNS
        .iter()
        .position(|c| *c == "summary")
        .unwrap_or(0);
    out.write_record(
        CSV_COLUMNS
            .iter()
            .enumerate()
            .map(|(n, _)| if n == summary { note.as_str() } else { "" }),
    )
    .map_err(failed)?;
    let bytes = out
        .into_inner()
        .map_err(|e| GatewayError::Export(format!("CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|e| GatewayError::Export(format!("CSV: {e}")))
}

/// A cell as a spreadsheet will read it: text an agency wrote that begins like a formula
/// (`=`, `+`, `-`, `@`, a tab or carriage return) is prefixed with `'`, so that opening the
/// export never runs it.
fn cell(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// The chronology as a FHIR `Bundle` (`collection`): first a `List` whose items are the
/// entries in order (each with its summary and significance as extensions, and a reference to
/// its record), then the records themselves, then an `OperationOutcome` with the findings,
/// what was withheld and what did not answer.
fn bundle(
    child: &str,
    entries: &[Entry],
    findings: &[kinfold_chronology::Finding],
    flags: &[(String, Value)],
    withheld: &Value,
    missing: &[Value],
    sources: &std::collections::HashMap<(Agency, String), (String, Value)>,
) -> Value {
    const EXTENSION: &str = "https://kinfold.example/fhir/StructureDefinition/chronology";
    let mut records = Vec::new();
    let items: Vec<Value> = entries
        .iter()
        .map(|e| {
            let source = sources.get(&(e.record.agency, e.record.reference.clone()));
            if let Some((url, resource)) = source {
                records.push(json!({"fullUrl": url, "resource": resource}));
            }
            json!({
                "extension": [
                    {"url": format!("{EXTENSION}-summary"), "valueString": e.summary},
                    {"url": format!("{EXTENSION}-significance"), "valueCode": serde_json::to_value(e.significance).unwrap_or_default()},
                ],
                "date": e.record.when.text,
                "item": {
                    "reference": source.map_or(e.record.reference.as_str(), |(url, _)| url.as_str()),
                    "display": e.summary,
                },
            })
        })
        .collect();
    let mut issues: Vec<Value> = findings
        .iter()
        .map(|f| {
            json!({"severity": "warning", "code": "informational",
                "details": {"text": format!("{} ({}, {}): {}", f.rule, f.cites, f.date, f.summary)},
                "expression": f.evidence})
        })
        .collect();
    issues.push(json!({"severity": "information", "code": "suppressed",
        "diagnostics": format!("{} record(s) withheld from this caller", withheld["count"])}));
    for m in missing {
        issues.push(json!({"severity": "warning", "code": "transient",
            "diagnostics": format!("{} {}", m["agency"].as_str().unwrap_or_default(), m["reason"].as_str().unwrap_or_default())}));
    }
    let mut entry = vec![json!({"resource": {
        "resourceType": "List", "status": "current", "mode": "snapshot",
        "title": "Chronology",
        "subject": {"reference": format!("Patient/{child}")},
        "entry": items,
    }})];
    entry.extend(records);
    entry.extend(flags.iter().map(|(_, f)| {
        json!({"fullUrl": format!("urn:kinfold:flag:{}", f["flag"]["id"].as_str().unwrap_or_default()), "resource": f["flag"]})
    }));
    entry.push(json!({"resource": {"resourceType": "OperationOutcome", "issue": issues}}));
    json!({"resourceType": "Bundle", "type": "collection", "entry": entry})
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn a_cell_that_begins_like_a_formula_is_not_run_by_a_spreadsheet() {
        assert_eq!(
            cell("=HYPERLINK(\"http://x\")"),
            "'=HYPERLINK(\"http://x\")"
        );
        assert_eq!(cell("+44 113"), "'+44 113");
        assert_eq!(cell("-1"), "'-1");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("A&E: A&E attendance"), "A&E: A&E attendance");
    }
}
