//! One record as a chronology entry.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use kinfold_fhir::Agency;
use serde::Serialize;

/// How precisely a time was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    /// A year.
    Year,
    /// A month.
    Month,
    /// A day.
    Day,
    /// A time of day.
    Time,
}

/// When something happened, as recorded: the text, its precision, and the instant it is
/// ordered by (the start of the year, month or day when that is all that is known).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct When {
    /// As recorded (`2026-03`, `2026-03-04`, `2026-03-04T03:10:00+00:00`).
    pub text: String,
    /// Its precision.
    pub precision: Precision,
    /// The instant it is ordered by.
    #[serde(skip)]
    pub at: DateTime<Utc>,
}

impl When {
    /// Reads a FHIR `date` or `dateTime`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let day = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        let (precision, at) = if let Ok(at) = DateTime::parse_from_rfc3339(text) {
            (Precision::Time, at.with_timezone(&Utc))
        } else if let Ok(at) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S") {
            (Precision::Time, at.and_utc())
        } else if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            (Precision::Day, day(date)?)
        } else if text.len() == 7 {
            (
                Precision::Month,
                day(NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").ok()?)?,
            )
        } else if text.len() == 4 {
            (
                Precision::Year,
                day(NaiveDate::parse_from_str(&format!("{text}-01-01"), "%Y-%m-%d").ok()?)?,
            )
        } else {
            return None;
        };
        Some(Self {
            text: text.to_owned(),
            precision,
            at,
        })
    }

    /// The day it falls on.
    pub fn date(&self) -> NaiveDate {
        self.at.date_naive()
    }
}

/// Whether the child was seen, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Seen {
    /// The child was seen (not only the parent).
    pub seen: Option<bool>,
    /// Seen alone, away from the adults.
    pub alone: Option<bool>,
    /// An interpreter was needed.
    pub interpreter_needed: Option<bool>,
    /// An interpreter was used.
    pub interpreter_used: Option<bool>,
}

/// What a police domestic-abuse notification says about the child, in its child-focused
/// fields (G18), beside the adult victim's risk grade, which describes the adult and is never
/// read as the child's.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChildFocus {
    /// Children were present at the incident.
    pub children_present: Option<bool>,
    /// The child was seen by someone after the incident.
    pub child_seen: Option<bool>,
    /// Who saw the child.
    pub seen_by: Option<String>,
    /// The child witnessed the abuse.
    pub child_witnessed: Option<bool>,
    /// The child was injured.
    pub child_injured: Option<bool>,
    /// The adult victim's risk grade (DASH: standard, medium, high), as the police sent it.
    pub adult_victim_risk_grade: Option<String>,
}

impl ChildFocus {
    /// Whether anything was recorded about the child themself (seen, witnessed, injured).
    pub fn about_the_child(&self) -> bool {
        self.child_seen.is_some() || self.child_witnessed.is_some() || self.child_injured.is_some()
    }

    /// The facts in words ("children present; child seen by the duty social worker; child
    /// witnessed: not recorded; adult victim's risk grade medium (about the adult, not the
    /// child)").
    pub fn words(&self) -> String {
        let said = |b: Option<bool>| match b {
            Some(true) => "yes",
            Some(false) => "no",
            None => "not recorded",
        };
        let mut out = vec![match self.children_present {
            Some(true) => "children present".to_owned(),
            Some(false) => "no children present".to_owned(),
            None => "children present: not recorded".to_owned(),
        }];
        out.push(match (self.child_seen, &self.seen_by) {
            (Some(true), Some(by)) => format!("child seen by {by}"),
            (seen, _) => format!("child seen: {}", said(seen)),
        });
        out.push(format!("child witnessed: {}", said(self.child_witnessed)));
        out.push(format!("child injured: {}", said(self.child_injured)));
        if let Some(grade) = &self.adult_victim_risk_grade {
            out.push(format!(
                "adult victim's risk grade {grade} (about the adult, not the child)"
            ));
        }
        out.join("; ")
    }
}

/// A kind of injury, from a record's codes or words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Injury {
    /// A fracture.
    Fracture,
    /// A bruise.
    Bruise,
    /// A burn.
    Burn,
    /// A scald.
    Scald,
    /// A head injury.
    HeadInjury,
    /// A bite.
    Bite,
    /// Something swallowed.
    Ingestion,
    /// Another injury.
    Other,
}

impl Injury {
    /// The injury a SNOMED CT concept names, for the few the feeds send.
    pub fn from_snomed(code: &str) -> Option<Self> {
        match code {
            "125605004" | "72704001" => Some(Self::Fracture),
            "125667009" => Some(Self::Bruise),
            "125666000" => Some(Self::Burn),
            "82107009" | "7890003" => Some(Self::HeadInjury),
            _ => None,
        }
    }

    /// The injuries words name ("bruising to the left cheek", "scald from a kettle").
    pub fn from_words(text: &str) -> Vec<Self> {
        let text = text.to_lowercase();
        let mut found = Vec::new();
        for (word, injury) in [
            ("fractur", Self::Fracture),
            ("broken", Self::Fracture),
            ("bruis", Self::Bruise),
            ("scald", Self::Scald),
            ("burn", Self::Burn),
            ("head injur", Self::HeadInjury),
            ("bite", Self::Bite),
            ("bitten", Self::Bite),
            ("swallow", Self::Ingestion),
            ("ingest", Self::Ingestion),
        ] {
            if text.contains(word) && !found.contains(&injury) {
                found.push(injury);
            }
        }
        found
    }
}

/// How much a record matters to a safeguarding reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Significance {
    /// An ordinary contact.
    Routine,
    /// Worth knowing: an attendance, a booking, a birth, an allocation.
    OfNote,
    /// A safeguarding matter: an injury, a concern, a notification, a child not brought or
    /// not seen.
    Safeguarding,
}

/// What the gateway knows of one record it may disclose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The record (`Encounter/…` at its agency).
    pub reference: String,
    /// Its agency.
    pub agency: Agency,
    /// When it happened.
    pub when: When,
    /// Kinfold's event codes on it.
    pub events: Vec<String>,
    /// Its own words: the diagnosis, the concern, the reason (short).
    pub text: Option<String>,
    /// The injuries it records.
    pub injuries: Vec<Injury>,
    /// Whom it concerns (a Kinfold person id).
    pub person: String,
    /// Their relationship to the child the chronology is for (`self`, `mother`, `sibling`,
    /// `unborn-sibling`, …).
    pub relationship: String,
    /// Whether the child was seen, and how.
    pub seen: Seen,
    /// The action recorded, if any.
    pub action: Option<String>,
    /// The record's provenance (`Provenance/…`).
    pub provenance: Option<String>,
    /// A domestic-abuse notification's child-focused facts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child_focus: Option<ChildFocus>,
}

/// One line of a chronology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The record it comes from.
    #[serde(flatten)]
    pub record: Record,
    /// What happened, in words, for a professional reader.
    pub summary: String,
    /// How much it matters.
    pub significance: Significance,
}

/// Event codes, what they say in a chronology, and how much they matter. A summary names the
/// kind of contact first, then what happened at it ("A&E attendance, injury").
const EVENTS: &[(&str, &str, Significance)] = &[
    (
        "domestic-abuse-notification",
        "police domestic-abuse notification",
        Significance::Safeguarding,
    ),
    (
        "safeguarding-referral",
        "safeguarding referral made",
        Significance::Safeguarding,
    ),
    (
        "nai-considered",
        "non-accidental injury considered",
        Significance::Safeguarding,
    ),
    (
        "welfare-concern",
        "welfare concern raised",
        Significance::Safeguarding,
    ),
    (
        "antenatal-concern-domestic-abuse",
        "domestic abuse disclosed antenatally",
        Significance::Safeguarding,
    ),
    (
        "ed-attendance-adult-risk",
        "adult's A&E attendance (risk to children)",
        Significance::Safeguarding,
    ),
    ("flag", "safeguarding flag", Significance::Safeguarding),
    ("injury", "injury", Significance::Safeguarding),
    ("child-injured", "child injured", Significance::Safeguarding),
    (
        "was-not-brought",
        "was not brought to an appointment",
        Significance::Safeguarding,
    ),
    (
        "child-not-seen",
        "child not seen at a planned contact",
        Significance::Safeguarding,
    ),
    (
        "child-not-seen-alone",
        "child not seen alone",
        Significance::Safeguarding,
    ),
    (
        "interpreter-not-used",
        "interpreter needed and not used",
        Significance::Safeguarding,
    ),
    (
        "custody-transfer-started",
        "record transfer started",
        Significance::OfNote,
    ),
    ("ed-attendance", "A&E attendance", Significance::OfNote),
    ("pregnancy-booked", "pregnancy booked", Significance::OfNote),
    ("birth-notification", "birth", Significance::OfNote),
    (
        "caseload-allocation",
        "allocated to a caseload",
        Significance::OfNote,
    ),
    (
        "allocated-to-pool",
        "allocated to the central pool (no named practitioner)",
        Significance::OfNote,
    ),
    (
        "school-enrolment",
        "school enrolment",
        Significance::Routine,
    ),
    ("new-birth-visit", "new birth visit", Significance::Routine),
    (
        "school-entry-review",
        "school entry health review",
        Significance::Routine,
    ),
    ("ncmp", "national child measurement", Significance::Routine),
    ("growth-measurement", "measured", Significance::Routine),
    (
        "antenatal-contact",
        "antenatal contact",
        Significance::Routine,
    ),
    ("hcp-contact", "contact", Significance::Routine),
];

impl Entry {
    /// A record as an entry: its significance (the highest of its events', raised to
    /// safeguarding by any injury) and its one-line summary ("A&E: A&E attendance, injury —
    /// Fracture of bone; not seen alone").
    pub fn of(record: Record) -> Self {
        let known: Vec<&(&str, &str, Significance)> = EVENTS
            .iter()
            .filter(|(code, _, _)| record.events.iter().any(|e| e == code))
            .collect();
        let mut significance = known
            .iter()
            .map(|(_, _, s)| *s)
            .max()
            .unwrap_or(Significance::Routine);
        if !record.injuries.is_empty() {
            significance = Significance::Safeguarding;
        }
        let mut words: Vec<&str> = known.iter().map(|(_, words, _)| *words).collect();
        words.sort_by_key(|w| {
            EVENTS
                .iter()
                .position(|(_, x, _)| x == w)
                .map(|at| (EVENTS[at].2, at))
        });
        words.dedup();
        let mut summary = format!("{}: ", record.agency.display_name());
        if words.is_empty() {
            // Nothing coded: say what kind of record it is.
            let kind = record.reference.split('/').next().unwrap_or_default();
            summary.push_str(match kind {
                "Condition" => "diagnosis",
                "Encounter" => "contact",
                "Observation" => "observation",
                "Appointment" => "appointment",
                "Communication" => "communication",
                "DocumentReference" | "Composition" => "document",
                "EpisodeOfCare" => "episode of care",
                "Task" | "ServiceRequest" => "request",
                "Procedure" => "procedure",
                _ => "record",
            });
        } else {
            summary.push_str(&words.join(", "));
        }
        if let Some(text) = record
            .text
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            summary.push_str(" — ");
            summary.push_str(&shorten(text, 120));
        }
        if let Some(focus) = &record.child_focus {
            summary.push_str(" — ");
            summary.push_str(&focus.words());
        }
        if record.relationship != "self" {
            summary.push_str(&format!(" ({})", record.relationship));
        }
        if let Some(action) = record
            .action
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            summary.push_str("; action: ");
            summary.push_str(&shorten(action, 80));
        }
        Self {
            record,
            summary,
            significance,
        }
    }
}

/// At most `most` characters, cut at a word with "…".
fn shorten(text: &str, most: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= most {
        return line;
    }
    let cut: String = line.chars().take(most).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
    format!("{cut}…")
}
