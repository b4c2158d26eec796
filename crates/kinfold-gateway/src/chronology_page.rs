//! `$chronology?_format=html`: the chronology as a page to print for a strategy meeting. Plain
//! HTML and print CSS, no script; the findings first, then every entry in a table whose header
//! repeats on each printed page; what the reader may not see is said, not hidden.

use chrono::{DateTime, Utc};
use kinfold_chronology::{Entry, Finding, Significance};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

/// Who the chronology is about, as the records name them.
pub(crate) struct Subject {
    pub(crate) name: Option<String>,
    pub(crate) born: Option<String>,
    pub(crate) nhs_number: Option<String>,
}

/// Everything the page shows.
pub(crate) struct Page<'a> {
    pub(crate) subject: Subject,
    pub(crate) family: bool,
    pub(crate) entries: &'a [Entry],
    pub(crate) findings: &'a [Finding],
    /// The safeguarding flags (`{"relationship", "flag"}`), active and resolved.
    pub(crate) flags: Vec<&'a Value>,
    pub(crate) withheld: usize,
    pub(crate) withheld_by_rule: &'a [Value],
    pub(crate) missing: &'a [Value],
    pub(crate) prepared_for: String,
    pub(crate) filters: Vec<String>,
    pub(crate) at: DateTime<Utc>,
}

const STYLE: &str = "
body { font-family: Arial, Helvetica, sans-serif; font-size: 11pt; color: #111; margin: 1.5em; }
h1 { font-size: 16pt; margin: 0 0 0.2em; }
h2 { font-size: 13pt; margin: 1.2em 0 0.4em; }
.meta { color: #333; margin: 0.1em 0; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #777; padding: 0.25em 0.4em; text-align: left; vertical-align: top; }
thead { display: table-header-group; }
tr { page-break-inside: avoid; }
.safeguarding td { background: #fde8e8; }
.of-note td { background: #fff6d6; }
.level { font-weight: bold; white-space: nowrap; }
.when { white-space: nowrap; }
.notice { border: 2px solid #444; padding: 0.5em; margin: 0.8em 0; }
@page { size: A4 landscape; margin: 12mm; }
@media print { body { margin: 0; } }
";

fn significance(s: Significance) -> (&'static str, &'static str) {
    match s {
        Significance::Safeguarding => ("safeguarding", "Safeguarding"),
        Significance::OfNote => ("of-note", "Of note"),
        Significance::Routine => ("routine", "Routine"),
    }
}

/// An agency's name from its code in an answer.
fn agency_name(code: &Value) -> &'static str {
    code.as_str()
        .and_then(|c| c.parse::<kinfold_fhir::Agency>().ok())
        .map_or("an agency", kinfold_fhir::Agency::display_name)
}

fn yes_no(value: Option<bool>, yes: &'static str, no: &'static str) -> &'static str {
    match value {
        Some(true) => yes,
        Some(false) => no,
        None => "",
    }
}

/// The page.
pub(crate) fn render(page: &Page<'_>) -> String {
    let who = page
        .subject
        .name
        .as_deref()
        .unwrap_or("(name not recorded)");
    let heading = if page.family {
        "Family chronology: "
    } else {
        "Chronology: "
    };
    let markup: Markup = html! {
        (DOCTYPE)
        html lang="en-GB" {
            head {
                meta charset="utf-8";
                title { (heading) (who) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                h1 { (heading) (who) }
                p.meta {
                    "Date of birth: " (page.subject.born.as_deref().unwrap_or("not recorded"))
                    " · NHS number: " (page.subject.nhs_number.as_deref().unwrap_or("not recorded"))
                }
                p.meta { "Prepared " (page.at.format("%-d %B %Y, %H:%M UTC")) " for " (page.prepared_for) "." }
                @if !page.filters.is_empty() {
                    p.meta { "Showing only: " (page.filters.join("; ")) "." }
                }
                div.notice {
                    @if page.withheld == 0 {
                        p { "Nothing was withheld from you." }
                    } @else {
                        p { strong { (page.withheld) " record(s) were withheld from you" } " under the consent rules:" }
                        ul {
                            @for w in page.withheld_by_rule {
                                li {
                                    (w["count"]) " from " (agency_name(&w["agency"]))
                                    " (" (w["rule"].as_str().unwrap_or_default()) ")"
                                    @if w["overridable"] == true { ", which a safeguarding override could reveal" }
                                }
                            }
                        }
                    }
                    @if !page.missing.is_empty() {
                        p { strong { "Agencies that did not answer, so their records are missing:" } }
                        ul {
                            @for m in page.missing {
                                li { (agency_name(&m["agency"])) ": " (m["reason"].as_str().unwrap_or_default()) }
                            }
                        }
                    }
                }
                @let active: Vec<&&Value> = page.flags.iter().filter(|f| f["flag"]["status"] == "active").collect();
                h2 { "Safeguarding flags (" (active.len()) " active)" }
                @if page.flags.is_empty() {
                    p { "No safeguarding flag is recorded." }
                } @else {
                    ul {
                        @for f in &page.flags {
                            @let flag = &f["flag"];
                            li {
                                strong { (flag["code"]["coding"][0]["display"].as_str().unwrap_or("Flag")) }
                                @if f["relationship"] != "self" { " (" (f["relationship"].as_str().unwrap_or_default()) ")" }
                                @if let Some(detail) = flag["code"]["text"].as_str() { ": " (detail) }
                                ". Raised " (flag["period"]["start"].as_str().unwrap_or_default().get(..10).unwrap_or_default())
                                " by " (flag["author"]["display"].as_str().unwrap_or("not recorded"))
                                @if flag["status"] == "active" {
                                    "; " strong { "active" }
                                } @else {
                                    "; resolved " (flag["period"]["end"].as_str().unwrap_or_default().get(..10).unwrap_or_default())
                                }
                                "."
                            }
                        }
                    }
                }
                h2 { "Findings across agencies (" (page.findings.len()) ")" }
                @if page.findings.is_empty() {
                    p { "No pattern rule was met by the records you may see." }
                } @else {
                    ul {
                        @for f in page.findings {
                            li { strong { (f.date.format("%-d %B %Y")) } ": " (f.summary) " [" (f.cites) "; " (f.evidence.len()) " record(s)]" }
                        }
                    }
                }
                h2 { "Chronology (" (page.entries.len()) " entries, oldest first)" }
                table {
                    thead {
                        tr {
                            th scope="col" { "When" }
                            th scope="col" { "Agency" }
                            th scope="col" { "About" }
                            th scope="col" { "What happened" }
                            th scope="col" { "Significance" }
                            th scope="col" { "Child seen" }
                            th scope="col" { "Action" }
                            th scope="col" { "Record" }
                        }
                    }
                    tbody {
                        @for e in page.entries {
                            @let (class, level) = significance(e.significance);
                            tr class=(class) {
                                td.when { (e.record.when.text.replace('T', " ")) }
                                td { (e.record.agency.display_name()) }
                                td { (if e.record.relationship == "self" { "the child" } else { e.record.relationship.as_str() }) }
                                td { (e.summary) }
                                td.level { (level) }
                                td {
                                    (yes_no(e.record.seen.seen, "seen", "not seen"))
                                    @if e.record.seen.alone.is_some() { ", " (yes_no(e.record.seen.alone, "alone", "not alone")) }
                                    @if e.record.seen.interpreter_needed == Some(true) {
                                        "; interpreter " (yes_no(e.record.seen.interpreter_used, "used", "not used"))
                                    }
                                }
                                td { (e.record.action.as_deref().unwrap_or("none recorded")) }
                                td { (e.record.reference) }
                            }
                        }
                    }
                }
                p.meta { "Every record on this page came through Kinfold's disclosure rules, and this view is recorded in its audit ledger." }
            }
        }
    };
    markup.into_string()
}
