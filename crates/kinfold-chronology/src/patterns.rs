//! Pattern findings across agencies. Each rule cites its source; each finding is dated (the
//! day the pattern was complete) and keeps the records that make it, so a finding stays on
//! record even when later records look reassuring.

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use crate::entry::{Entry, Injury};

/// A child's mobility as recorded (NICE CG89: a child who cannot crawl, cruise or
/// bottom-shuffle is not independently mobile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mobility {
    /// Independently mobile from this day.
    MobileFrom(NaiveDate),
    /// Not recorded: a child under six months is taken as not independently mobile.
    #[default]
    Unknown,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The rule (`fracture-under-2`).
    pub rule: &'static str,
    /// What it rests on (`NICE CG89`, `G13`).
    pub cites: &'static str,
    /// The day the pattern was complete.
    pub date: NaiveDate,
    /// What was found, in words.
    pub summary: String,
    /// The records that make it.
    pub evidence: Vec<String>,
}

/// Injuries within this many days make a run (G13: three within six months).
const INJURY_WINDOW_DAYS: i64 = 183;
/// A&E attendances within this many days are repeated.
const ATTENDANCE_WINDOW_DAYS: i64 = 365;
/// How many A&E attendances within the window are "repeated".
const ATTENDANCES: usize = 3;
/// Was-not-brought within this many days are repeated (G17).
pub const WAS_NOT_BROUGHT_WINDOW_DAYS: i64 = 183;
/// How many planned contacts in a row without the child seen (alone) make a finding (G14).
const CONTACTS_NOT_SEEN: usize = 3;
/// From this age a child is expected to be seen alone, away from the adults, as well as seen
/// (a baby is seen with the parent).
const SEEN_ALONE_FROM_MONTHS: i64 = 24;

/// Age in whole months on a day.
fn months(born: NaiveDate, on: NaiveDate) -> i64 {
    let mut m =
        i64::from(on.year() - born.year()) * 12 + i64::from(on.month()) - i64::from(born.month());
    if on.day() < born.day() {
        m -= 1;
    }
    m
}

fn not_mobile(born: Option<NaiveDate>, mobility: Mobility, on: NaiveDate) -> bool {
    match mobility {
        Mobility::MobileFrom(from) => on < from,
        Mobility::Unknown => born.is_some_and(|b| months(b, on) < 6),
    }
}

/// The child's own entries with an injury.
fn injuries(entries: &[Entry]) -> Vec<&Entry> {
    entries
        .iter()
        .filter(|e| e.record.relationship == "self")
        .filter(|e| {
            !e.record.injuries.is_empty()
                || e.record
                    .events
                    .iter()
                    .any(|c| c == "injury" || c == "child-injured")
        })
        .collect()
}

/// Runs: for each entry, the entries within `days` up to it; the first run of at least
/// `count` found.
fn first_run<'a>(dated: &[&'a Entry], days: i64, count: usize) -> Option<Vec<&'a Entry>> {
    for (end, last) in dated.iter().enumerate() {
        let run: Vec<&Entry> = dated[..=end]
            .iter()
            .filter(|e| (last.record.when.date() - e.record.when.date()).num_days() <= days)
            .copied()
            .collect();
        if run.len() >= count {
            return Some(run);
        }
    }
    None
}

/// A finding resting on one record: dated by it, its agency and time named in the summary.
fn of_one(rule: &'static str, cites: &'static str, what: &str, entry: &Entry) -> Finding {
    Finding {
        rule,
        cites,
        date: entry.record.when.date(),
        summary: format!(
            "{what} ({}, {})",
            entry.record.agency.display_name(),
            entry.record.when.text
        ),
        evidence: vec![entry.record.reference.clone()],
    }
}

fn evidence(entries: &[&Entry]) -> Vec<String> {
    entries.iter().map(|e| e.record.reference.clone()).collect()
}

/// The findings in a child's chronology (`entries` oldest first, as [`crate::assemble`]
/// gives them), for a child born on `born`.
pub fn find(entries: &[Entry], born: Option<NaiveDate>, mobility: Mobility) -> Vec<Finding> {
    let mut findings = Vec::new();
    let injured = injuries(entries);
    for entry in &injured {
        let day = entry.record.when.date();
        let kinds = &entry.record.injuries;
        if not_mobile(born, mobility, day)
            && kinds
                .iter()
                .any(|k| matches!(k, Injury::Bruise | Injury::Burn | Injury::Fracture))
        {
            findings.push(of_one(
                "injury-not-independently-mobile",
                "NICE CG89",
                "A bruise, burn or fracture in a child not independently mobile",
                entry,
            ));
        }
        if born.is_some_and(|b| months(b, day) < 24) && kinds.contains(&Injury::Fracture) {
            findings.push(of_one(
                "fracture-under-2",
                "NICE CG89",
                "A fracture in a child under two",
                entry,
            ));
        }
    }
    if let Some(run) = first_run(&injured, INJURY_WINDOW_DAYS, 3) {
        let mut agencies: Vec<&str> = run.iter().map(|e| e.record.agency.display_name()).collect();
        agencies.sort_unstable();
        agencies.dedup();
        if agencies.len() >= 2
            && let Some(last) = run.last()
        {
            findings.push(Finding {
                rule: "injuries-across-agencies",
                cites: "G13",
                date: last.record.when.date(),
                summary: format!(
                    "{} injuries within six months, recorded by {}",
                    run.len(),
                    agencies.join(", ")
                ),
                evidence: evidence(&run),
            });
        }
    }
    let own = |code: &str| -> Vec<&Entry> {
        entries
            .iter()
            .filter(|e| {
                e.record.relationship == "self" && e.record.events.iter().any(|c| c == code)
            })
            .collect()
    };
    if let Some(run) = first_run(&own("ed-attendance"), ATTENDANCE_WINDOW_DAYS, ATTENDANCES)
        && let Some(last) = run.last()
    {
        findings.push(Finding {
            rule: "repeated-ae-attendances",
            cites: "G5",
            date: last.record.when.date(),
            summary: format!("{} A&E attendances within a year", run.len()),
            evidence: evidence(&run),
        });
    }
    if let Some(run) = first_run(&own("was-not-brought"), WAS_NOT_BROUGHT_WINDOW_DAYS, 2)
        && let Some(last) = run.last()
    {
        findings.push(Finding {
            rule: "repeated-was-not-brought",
            cites: "G17",
            date: last.record.when.date(),
            summary: format!(
                "Not brought to {} appointments within six months",
                run.len()
            ),
            evidence: evidence(&run),
        });
    }
    // The last planned contacts: was the child seen, and seen alone?
    let contacts: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.record.relationship == "self" && e.record.seen.seen.is_some())
        .collect();
    if contacts.len() >= CONTACTS_NOT_SEEN {
        let last = &contacts[contacts.len() - CONTACTS_NOT_SEEN..];
        let old_enough = |e: &Entry| {
            born.is_none_or(|b| months(b, e.record.when.date()) >= SEEN_ALONE_FROM_MONTHS)
        };
        let unseen = last.iter().all(|e| {
            e.record.seen.seen == Some(false)
                || (e.record.seen.alone == Some(false) && old_enough(e))
        });
        if unseen && let Some(latest) = last.last() {
            findings.push(Finding {
                rule: "child-not-seen-alone",
                cites: "G14",
                date: latest.record.when.date(),
                summary: format!(
                    "The child was not seen, or not seen alone, at the last {CONTACTS_NOT_SEEN} planned contacts"
                ),
                evidence: evidence(last),
            });
        }
    }
    for entry in contacts {
        let seen = entry.record.seen;
        if seen.interpreter_needed == Some(true) && seen.interpreter_used == Some(false) {
            findings.push(of_one(
                "interpreter-not-used",
                "G14",
                "An interpreter was needed and not used",
                entry,
            ));
        }
    }
    // G18: the adults' reassurance is not the children's. A notification with children
    // present that records nothing about the child (seen, witnessed, injured) leaves the
    // child's risk to be read from the adult victim's grade, which this rule never does.
    for entry in entries.iter().filter(|e| e.record.relationship == "self") {
        let Some(focus) = &entry.record.child_focus else {
            continue;
        };
        if focus.children_present == Some(true) && !focus.about_the_child() {
            let what = match &focus.adult_victim_risk_grade {
                Some(grade) => format!(
                    "A domestic-abuse notification with children present records nothing about the child: only the adult victim's risk grade ({grade}), which is not the child's"
                ),
                None => "A domestic-abuse notification with children present records nothing about the child (seen, witnessed, injured)".to_owned(),
            };
            findings.push(of_one("child-risk-not-assessed", "G18", &what, entry));
        }
    }
    findings.sort_by(|a, b| a.date.cmp(&b.date).then(a.rule.cmp(b.rule)));
    findings
}
