//! The child page: who the child is (name, date of birth, NHS number, language and interpreter
//! need first), active flags, the family, the chronology, the growth chart with its NICE NG75
//! findings, recent accesses for those allowed, and what was withheld with the way to override.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use crate::api::{Answer, Purpose, Who, encode};
use crate::app::{Dashboard, form_of, html, problem, require};
use crate::layout::{choice, csrf_field, page, purpose_field};
use crate::session::Session;

/// The most family members whose names the family panel looks up.
const MAX_MEMBERS_NAMED: usize = 12;

/// The chronology's filters, as the page's form sends them.
#[derive(Debug, Default, Deserialize)]
pub struct ChildQuery {
    purpose: Option<String>,
    family: Option<String>,
    significance: Option<String>,
    agency: Option<String>,
}

const SIGNIFICANCES: [(&str, &str); 3] = [
    ("safeguarding", "Safeguarding only"),
    ("of-note", "Of note and above"),
    ("routine", "Everything"),
];

const AGENCIES: [(&str, &str); 5] = [
    ("midwifery", "Midwifery"),
    ("ae", "A&E"),
    ("gp", "GP practice"),
    ("health-visiting", "Health visiting"),
    ("school-nursing", "School nursing"),
];

fn agency_words(code: &str) -> &str {
    AGENCIES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(code, |(_, words)| words)
}

/// A person id as a page path segment may carry it.
fn is_person_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Everything the page shows, from the API.
struct Gathered {
    patient: Value,
    family: Answer,
    chronology: Answer,
    access: Answer,
    members: HashMap<String, Value>,
}

async fn gather(
    dashboard: &Dashboard,
    token: &Who,
    id: &str,
    query: &ChildQuery,
) -> Result<Gathered, Answer> {
    let api = &dashboard.api;
    // Who the child is and who the family are first (a miss ends here), then everything else
    // at once, the family members' names included.
    let patient_path = format!("/Patient/{id}");
    let family_path = format!("/Patient/{id}/$family");
    let (patient, family) =
        tokio::join!(api.get(token, &patient_path), api.get(token, &family_path));
    let patient = match patient {
        Answer::Json(patient) => patient,
        other => return Err(other),
    };
    let family_on = query.family.as_deref() == Some("on");
    let mut chronology = format!("/Patient/{id}/$chronology?family={family_on}");
    if let Some(significance) = query.significance.as_deref().filter(|s| {
        SIGNIFICANCES
            .iter()
            .any(|(code, _)| code == s && *s != "routine")
    }) {
        chronology.push_str(&format!("&significance={}", encode(significance)));
    }
    if let Some(agency) = query
        .agency
        .as_deref()
        .filter(|a| AGENCIES.iter().any(|(code, _)| code == a))
    {
        chronology.push_str(&format!("&agency={}", encode(agency)));
    }
    let member_ids: Vec<String> = family
        .json()
        .and_then(|f| f["member"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|m| m["entity"]["reference"].as_str())
        .filter_map(|r| r.strip_prefix("Patient/"))
        .filter(|id| is_person_id(id))
        .take(MAX_MEMBERS_NAMED)
        .map(str::to_owned)
        .collect();
    let member_paths: Vec<String> = member_ids
        .iter()
        .map(|member| format!("/Patient/{member}"))
        .collect();
    let access_path = format!("/Patient/{id}/$access-report");
    let (chronology, access, looked_up) = tokio::join!(
        api.get(token, &chronology),
        api.get(token, &access_path),
        futures::future::join_all(member_paths.iter().map(|path| api.get(token, path))),
    );
    let members = member_ids
        .into_iter()
        .zip(looked_up)
        .filter_map(|(id, answer)| match answer {
            Answer::Json(patient) => Some((id, patient)),
            _ => None,
        })
        .collect();
    Ok(Gathered {
        patient,
        family,
        chronology,
        access,
        members,
    })
}

/// A person's name as the records give it.
pub(crate) fn name_of(patient: &Value) -> String {
    let name = &patient["name"][0];
    let given: Vec<&str> = name["given"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let family = name["family"].as_str().unwrap_or("");
    let whole = format!("{} {}", given.join(" "), family);
    let whole = whole.trim();
    if whole.is_empty() {
        "(name not recorded)".to_owned()
    } else {
        whole.to_owned()
    }
}

/// The NHS number, spaced 3-3-4 as the NHS writes it.
pub(crate) fn nhs_number_of(patient: &Value) -> Option<String> {
    let number = patient["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"] == "https://fhir.nhs.uk/Id/nhs-number")?["value"]
        .as_str()?;
    Some(if number.len() == 10 {
        format!("{} {} {}", &number[..3], &number[3..6], &number[6..])
    } else {
        number.to_owned()
    })
}

/// The languages the child's record gives (BCP 47 codes, from the gateway's Patient, which
/// takes them from the agencies' records), and whether any chronology entry says an
/// interpreter is needed.
fn languages(patient: &Value, chronology: &Answer, child: &str) -> (Vec<String>, Option<bool>) {
    let mut languages: Vec<String> = patient["communication"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            c["language"]["coding"][0]["code"]
                .as_str()
                .or(c["language"]["text"].as_str())
        })
        .map(str::to_owned)
        .collect();
    languages.sort();
    languages.dedup();
    let mut interpreter = None;
    for entry in chronology
        .json()
        .and_then(|c| c["entries"].as_array())
        .into_iter()
        .flatten()
        .filter(|e| e["person"] == child)
    {
        if let Some(needed) = entry["seen"]["interpreterNeeded"].as_bool() {
            interpreter = Some(interpreter.unwrap_or(false) || needed);
        }
    }
    (languages, interpreter)
}

/// Each person's latest allocation in the chronology (who is allocated to whom).
fn allocations(chronology: &Answer) -> HashMap<&str, &str> {
    let mut allocations = HashMap::new();
    for entry in chronology
        .json()
        .and_then(|c| c["entries"].as_array())
        .into_iter()
        .flatten()
    {
        let events = entry["events"].as_array().into_iter().flatten();
        if events
            .filter_map(Value::as_str)
            .any(|e| e.starts_with("allocated") || e == "caseload-allocation")
            && let (Some(person), Some(summary)) =
                (entry["person"].as_str(), entry["summary"].as_str())
        {
            allocations.insert(person, summary);
        }
    }
    allocations
}

fn identity(patient: &Value, gathered: &Gathered, id: &str) -> Markup {
    let (languages, interpreter) = languages(patient, &gathered.chronology, id);
    let allocated = allocations(&gathered.chronology).get(id).copied();
    html! {
        section class="panel identity" aria-labelledby="who" {
            h2 id="who" { "Who this is" }
            dl {
                dt { "Date of birth" } dd { (patient["birthDate"].as_str().unwrap_or("not recorded")) }
                dt { "NHS number" } dd { (nhs_number_of(patient).unwrap_or_else(|| "not known".into())) }
                dt { "Sex" } dd { (patient["gender"].as_str().unwrap_or("not recorded")) }
                dt { "Language" }
                dd {
                    @if languages.is_empty() { "not recorded" } @else { (languages.join(", ")) }
                }
                dt { "Interpreter" }
                dd {
                    @match interpreter {
                        Some(true) => span class="interpreter" { "Interpreter needed" },
                        Some(false) => "not needed",
                        None => "not recorded",
                    }
                }
                dt { "Allocated" }
                dd { (allocated.unwrap_or("no allocation recorded")) }
            }
        }
    }
}

fn flags(chronology: &Answer) -> Markup {
    let active: Vec<&Value> = chronology
        .json()
        .and_then(|c| c["flags"].as_array())
        .into_iter()
        .flatten()
        .map(|f| &f["flag"])
        .filter(|f| f["status"] == "active")
        .collect();
    html! {
        section class="panel" aria-labelledby="flags" {
            h2 id="flags" { "Active flags" }
            @if active.is_empty() {
                p { "No active safeguarding flag." }
            } @else {
                ul {
                    @for flag in active {
                        li {
                            span class="tag alert" { (flag["code"]["coding"][0]["display"].as_str().unwrap_or("Flag")) }
                            " " (flag["code"]["text"].as_str().unwrap_or(""))
                            span class="muted" { " — raised by " (flag["author"]["display"].as_str().unwrap_or("unknown")) }
                        }
                    }
                }
            }
        }
    }
}

fn family(gathered: &Gathered, query_purpose: &str) -> Markup {
    let Some(group) = gathered.family.json() else {
        return html! {
            section class="panel" aria-labelledby="family" {
                h2 id="family" { "Family" }
                p { "The family is not available to you." }
            }
        };
    };
    let allocations = allocations(&gathered.chronology);
    let members: Vec<(String, String, bool)> = group["member"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let id = m["entity"]["reference"]
                .as_str()?
                .strip_prefix("Patient/")?;
            let relationship = m["extension"]
                .as_array()?
                .iter()
                .flat_map(|e| e["extension"].as_array().into_iter().flatten())
                .find(|e| e["url"] == "relationship")?;
            let code = relationship["valueCodeableConcept"]["coding"][0]["code"]
                .as_str()
                .unwrap_or("");
            let words = relationship["valueCodeableConcept"]["coding"][0]["display"]
                .as_str()
                .or(relationship["valueCodeableConcept"]["text"].as_str())
                .unwrap_or("family member");
            Some((id.to_owned(), words.to_owned(), code.starts_with("unborn")))
        })
        .collect();
    html! {
        section class="panel" aria-labelledby="family" {
            h2 id="family" { "Family" }
            @if members.is_empty() {
                p { "No family member is known." }
            } @else {
                table {
                    caption class="visually-hidden" { "Family members" }
                    thead { tr { th scope="col" { "Relationship" } th scope="col" { "Name" } th scope="col" { "Born" } th scope="col" { "Allocated" } } }
                    tbody {
                        @for (id, words, unborn) in &members {
                            @let member = gathered.members.get(id);
                            tr {
                                td { (words) @if *unborn { " " span class="tag" { "unborn" } } }
                                td {
                                    @match member {
                                        Some(patient) => a href=(format!("/app/child/{id}?purpose={query_purpose}")) { (name_of(patient)) },
                                        None => span class="muted" { "not shown to you" },
                                    }
                                }
                                td { (member.and_then(|p| p["birthDate"].as_str()).unwrap_or("")) }
                                td { (allocations.get(id.as_str()).copied().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The growth panel: the NICE NG75 episodes the chronology found (dated, kept after a recovery),
/// and the UK-WHO chart.
fn growth(gathered: &Gathered, id: &str, purpose: &str) -> Markup {
    let findings: Vec<&Value> = gathered
        .chronology
        .json()
        .and_then(|c| c["findings"].as_array())
        .into_iter()
        .flatten()
        .filter(|f| f["rule"].as_str().is_some_and(|r| r.starts_with("ng75-")))
        .collect();
    html! {
        section class="panel" aria-labelledby="growth" {
            h2 id="growth" { "Growth" }
            @match &gathered.chronology {
                Answer::Json(_) => {
                    @if findings.is_empty() {
                        p { "No NICE NG75 faltering-growth finding." }
                    } @else {
                        h3 { "NICE NG75 findings" }
                        ul {
                            @for finding in &findings {
                                li class="urgent" {
                                    (finding["date"].as_str().unwrap_or("")) ": "
                                    (finding["summary"].as_str().unwrap_or(""))
                                }
                            }
                        }
                    }
                }
                _ => p { "No growth measurements are available to you." },
            }
            // The chart is an image the browser asks for beside the page (`chart.svg`), through
            // the same API with the same session: the page does not wait for it.
            figure class="chart" {
                img src=(format!("/app/child/{id}/chart.svg?purpose={purpose}")) width="960" height="680"
                    alt="Weight on the UK-WHO centile chart, each measurement plotted by age";
                figcaption { "Weight on the UK-WHO centiles" }
            }
        }
    }
}

fn chronology(gathered: &Gathered, query: &ChildQuery, id: &str, purpose: &str) -> Markup {
    let Some(chronology) = gathered.chronology.json() else {
        return html! {
            section class="panel" aria-labelledby="chronology" {
                h2 id="chronology" { "Chronology" }
                p { "The chronology is not available to you." }
            }
        };
    };
    let entries = chronology["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let findings = chronology["findings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let family_on = query.family.as_deref() == Some("on");
    let significance = query.significance.as_deref().unwrap_or("routine");
    let agency = query.agency.as_deref().unwrap_or("");
    html! {
        section class="panel" aria-labelledby="chronology" {
            h2 id="chronology" { "Chronology" }
            form class="inline" method="get" action=(format!("/app/child/{id}")) {
                input type="hidden" name="purpose" value=(purpose);
                (choice("significance", "significance", "Show", significance, SIGNIFICANCES))
                (choice("agency", "agency", "Agency", agency,
                    std::iter::once(("", "All agencies")).chain(AGENCIES)))
                (choice("family-on", "family", "Family", if family_on { "on" } else { "off" },
                    [("off", "This child only"), ("on", "Whole family")]))
                button class="secondary" type="submit" { "Apply" }
            }
            @if !findings.is_empty() {
                h3 { "Patterns found" }
                ul {
                    @for finding in &findings {
                        li class="urgent" { (finding["summary"].as_str().or(finding["text"].as_str()).unwrap_or("")) }
                    }
                }
            }
            @for missing in chronology["missingAgencies"].as_array().into_iter().flatten() {
                div class="banner warn" role="status" {
                    p { (agency_words(missing["agency"].as_str().or(missing.as_str()).unwrap_or("An agency"))) " did not answer: its records are missing from this chronology." }
                }
            }
            p class="muted" { (entries.len()) " entries, newest last." }
            table {
                caption class="visually-hidden" { "Chronology entries" }
                thead { tr { th scope="col" { "When" } th scope="col" { "Agency" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "Significance" } } }
                tbody {
                    @for entry in &entries {
                        tr {
                            td class="when" { (when(entry["when"]["text"].as_str().unwrap_or(""))) }
                            td { (agency_words(entry["agency"].as_str().unwrap_or(""))) }
                            td { (entry["relationship"].as_str().unwrap_or("")) }
                            td { (entry["summary"].as_str().unwrap_or("")) }
                            td {
                                @match entry["significance"].as_str() {
                                    Some("safeguarding") => span class="tag alert" { "Safeguarding" },
                                    Some("of-note") => span class="tag" { "Of note" },
                                    _ => "Routine",
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A chronology time as a nurse reads it: the date, and the time when there is one.
fn when(text: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(at) => at.format("%Y-%m-%d %H:%M").to_string(),
        Err(_) => text.to_owned(),
    }
}

fn withheld(gathered: &Gathered, session: &Session, id: &str, overridden: bool) -> Markup {
    let Some(withheld) = gathered.chronology.json().map(|c| &c["withheld"]) else {
        return html! {};
    };
    let count = withheld["count"].as_u64().unwrap_or(0);
    let overridable = withheld["byRule"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["overridable"] == true);
    html! {
        @if count > 0 {
            section class="panel" aria-labelledby="withheld" {
                h2 id="withheld" { "Withheld from you" }
                div class="banner warn" role="status" {
                    p { (count) " record" @if count != 1 { "s" } " not shown to you:" }
                    ul {
                        @for rule in withheld["byRule"].as_array().into_iter().flatten() {
                            li { (rule["count"]) " from " (agency_words(rule["agency"].as_str().unwrap_or(""))) " (rule " code { (rule["rule"].as_str().unwrap_or("")) } ")" }
                        }
                    }
                }
                @if overridable && !overridden {
                    form method="post" action=(format!("/app/child/{id}/override")) {
                        (csrf_field(session))
                        label for="justification" { "Why you need to see them now (an override is recorded and reviewed by the privacy officers)" }
                        textarea id="justification" name="justification" rows="3" required minlength="20" {}
                        p { button class="warn" type="submit" { "Override and show" } }
                    }
                }
            }
        }
    }
}

fn accesses(access: &Answer) -> Markup {
    html! {
        section class="panel" aria-labelledby="accesses" {
            h2 id="accesses" { "Recent accesses" }
            @match access.json() {
                Some(report) => {
                    p { (report["summary"].as_str().unwrap_or("")) }
                    table class="compact" {
                        caption class="visually-hidden" { "Who looked at these records" }
                        thead { tr { th scope="col" { "Who" } th scope="col" { "Role" } th scope="col" { "Purpose" } th scope="col" { "Times" } th scope="col" { "Overrides" } th scope="col" { "Last" } } }
                        tbody {
                            @for who in report["by_who"].as_array().into_iter().flatten() {
                                tr {
                                    td { (who["who"].as_str().unwrap_or("")) " " span class="muted" { (who["organisation"].as_str().unwrap_or("")) } }
                                    td { (crate::layout::role_words(who["role"].as_str().unwrap_or(""))) }
                                    td { (who["purpose"].as_str().unwrap_or("")) }
                                    td { (who["accesses"]) }
                                    td { @if who["overrides"].as_u64().unwrap_or(0) > 0 { span class="tag alert" { (who["overrides"]) } } @else { "0" } }
                                    td { (when(who["last"].as_str().unwrap_or(""))) }
                                }
                            }
                        }
                    }
                }
                None => p { "Who has looked at this child's records is shown to privacy officers and to those caring for the child." },
            }
        }
    }
}

fn nothing_found(session: &Session) -> HttpResponse {
    let body = html! {
        p { "No child found." }
        p { a href="/app/search" { "Find a child" } }
    };
    html(
        StatusCode::NOT_FOUND,
        page("No child found", Some(session), body),
    )
}

async fn render(
    dashboard: &Dashboard,
    request: &HttpRequest,
    reference: &str,
    session: &Session,
    id: &str,
    query: &ChildQuery,
    purpose: Purpose,
) -> HttpResponse {
    if !is_person_id(id) {
        return nothing_found(session);
    }
    let overridden = matches!(purpose, Purpose::Override(_));
    let chosen = if overridden {
        "direct-care".to_owned()
    } else {
        purpose.code().to_owned()
    };
    let token = match dashboard.token(request, reference, session, &purpose).await {
        Ok(token) => token,
        Err(refused) => return *refused,
    };
    let gathered = match gather(dashboard, &token, id, query).await {
        Ok(gathered) => gathered,
        Err(Answer::Refused(status, words)) if status == 429 || status >= 500 => {
            return problem(
                StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                Some(session),
                "Not available just now",
                &format!("The gateway could not answer: {words}"),
            );
        }
        Err(_) => return nothing_found(session),
    };
    let patient = gathered.patient.clone();
    let title = name_of(&patient);
    let body = html! {
        @if overridden {
            div id="override-used" class="banner warn" role="status" {
                p { "You used an override: every record shown on this page was recorded in the audit ledger as seen by override, with your reason, and the privacy officers will review it. It lasts for this page only." }
            }
        }
        form class="inline" method="get" action=(format!("/app/child/{id}")) {
            (purpose_field("page-purpose", &chosen))
            button class="secondary" type="submit" { "View for this purpose" }
        }
        (identity(&patient, &gathered, id))
        (flags(&gathered.chronology))
        (withheld(&gathered, session, id, overridden))
        div class="grid" {
            div {
                (chronology(&gathered, query, id, &chosen))
            }
            div {
                (family(&gathered, &chosen))
                (growth(&gathered, id, &chosen))
                (accesses(&gathered.access))
            }
        }
    };
    html(StatusCode::OK, page(&title, Some(session), body))
}

/// `GET /app/child/{id}`: the child page.
pub async fn child_page(
    dashboard: web::Data<Dashboard>,
    request: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ChildQuery>,
) -> HttpResponse {
    let (reference, session) = match require(&dashboard, &request) {
        Ok(signed_in) => signed_in,
        Err(to_sign_in) => return *to_sign_in,
    };
    let purpose = Purpose::chosen(query.purpose.as_deref());
    render(
        &dashboard, &request, &reference, &session, &path, &query, purpose,
    )
    .await
}

/// `GET /app/child/{id}/chart.svg`: the child's weight chart (the API's `$growth-chart`, asked
/// with the session's token for the purpose the page was viewed for).
pub async fn child_chart(
    dashboard: web::Data<Dashboard>,
    request: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ChildQuery>,
) -> HttpResponse {
    let (reference, session) = match require(&dashboard, &request) {
        Ok(signed_in) => signed_in,
        Err(to_sign_in) => return *to_sign_in,
    };
    let id = path.into_inner();
    if !is_person_id(&id) {
        return html(StatusCode::NOT_FOUND, String::new());
    }
    let purpose = Purpose::chosen(query.purpose.as_deref());
    let token = match dashboard
        .token(&request, &reference, &session, &purpose)
        .await
    {
        Ok(token) => token,
        Err(refused) => return *refused,
    };
    match dashboard
        .api
        .get(&token, &format!("/Patient/{id}/$growth-chart"))
        .await
    {
        Answer::Text(svg) if svg.trim_start().starts_with("<svg") => {
            crate::app::harden(HttpResponse::Ok().content_type("image/svg+xml").body(svg))
        }
        _ => html(StatusCode::NOT_FOUND, String::new()),
    }
}

/// `POST /app/child/{id}/override`: the page again, with purpose override and the reason given.
pub async fn child_override(
    dashboard: web::Data<Dashboard>,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let (reference, session) = match require(&dashboard, &request) {
        Ok(signed_in) => signed_in,
        Err(to_sign_in) => return *to_sign_in,
    };
    let fields = match form_of(&session, &body) {
        Ok(fields) => fields,
        Err(refused) => return *refused,
    };
    let justification = fields
        .get("justification")
        .map(|j| j.trim().to_owned())
        .unwrap_or_default();
    if justification.chars().filter(|c| c.is_alphabetic()).count() < 20 {
        return problem(
            StatusCode::BAD_REQUEST,
            Some(&session),
            "Say why you need to override",
            "An override needs a reason of at least 20 letters: it is recorded with every record it shows, and reviewed by the privacy officers. Nothing was shown.",
        );
    }
    let query = ChildQuery {
        family: Some("on".into()),
        ..ChildQuery::default()
    };
    render(
        &dashboard,
        &request,
        &reference,
        &session,
        &path,
        &query,
        Purpose::Override(justification),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nhs_numbers_are_spaced_as_the_nhs_writes_them() {
        let patient = serde_json::json!({"identifier": [
            {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9999000010"}
        ]});
        assert_eq!(nhs_number_of(&patient).as_deref(), Some("999 900 0010"));
    }

    #[test]
    fn language_from_the_record_and_interpreter_need_from_the_contacts() {
        let patient = serde_json::json!({"communication": [
            {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "pl"}]}, "preferred": true}
        ]});
        let chronology = Answer::Json(serde_json::json!({"entries": [
            {"person": "child-1", "seen": {"interpreterNeeded": false}},
            {"person": "child-1", "seen": {"interpreterNeeded": true}},
            {"person": "mother-1", "seen": {"interpreterNeeded": false}}
        ]}));
        assert_eq!(
            languages(&patient, &chronology, "child-1"),
            (vec!["pl".to_owned()], Some(true))
        );
        assert_eq!(
            languages(&serde_json::json!({}), &Answer::NotFound, "child-1"),
            (Vec::new(), None)
        );
    }

    #[test]
    fn only_ids_go_into_paths() {
        assert!(is_person_id("322d5351-cb8d-4cf4-a95a-2c5214a29a2e"));
        assert!(!is_person_id("../Patient"));
        assert!(!is_person_id("a?b"));
        assert!(!is_person_id(""));
    }
}
