//! Safeguarding flags with oversight (G11, G20). A flag (FHIR `Flag`) says something every
//! professional opening the child's record must know: a child-protection plan, looked after, a
//! concern about an unborn child, domestic abuse in the household, or an injury whose cause is
//! inconclusive. Flags live on the person, not on an agency's case, so they survive case
//! closure and record transfer.
//!
//! A flag that needs oversight (cause of injury inconclusive) is resolved only by a different
//! practitioner holding a senior safeguarding role, giving a reason; the person who raised it
//! cannot close it, however senior. Every refused attempt is kept and reported: in the review,
//! a flag about an unexplained fracture was closed by the person who raised it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The kinds of flag Kinfold keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlagKind {
    /// The child is subject to a child-protection plan.
    ChildProtectionPlan,
    /// The child is looked after by the local authority.
    LookedAfter,
    /// A concern about an unborn child.
    UnbornChildConcern,
    /// Domestic abuse in the household.
    DomesticAbuse,
    /// An injury whose cause is inconclusive: it needs a senior safeguarding professional's
    /// oversight before it is closed.
    CauseOfInjuryInconclusive,
}

impl FlagKind {
    /// Every kind.
    pub const ALL: [FlagKind; 5] = [
        FlagKind::ChildProtectionPlan,
        FlagKind::LookedAfter,
        FlagKind::UnbornChildConcern,
        FlagKind::DomesticAbuse,
        FlagKind::CauseOfInjuryInconclusive,
    ];

    /// Its code (`cause-of-injury-inconclusive`).
    pub fn code(self) -> &'static str {
        match self {
            FlagKind::ChildProtectionPlan => "child-protection-plan",
            FlagKind::LookedAfter => "looked-after",
            FlagKind::UnbornChildConcern => "unborn-child-concern",
            FlagKind::DomesticAbuse => "domestic-abuse",
            FlagKind::CauseOfInjuryInconclusive => "cause-of-injury-inconclusive",
        }
    }

    /// What it says, for a professional reader.
    pub fn display(self) -> &'static str {
        match self {
            FlagKind::ChildProtectionPlan => "Subject to a child-protection plan",
            FlagKind::LookedAfter => "Looked after by the local authority",
            FlagKind::UnbornChildConcern => "Concern about an unborn child",
            FlagKind::DomesticAbuse => "Domestic abuse in the household",
            FlagKind::CauseOfInjuryInconclusive => "Cause of injury inconclusive",
        }
    }

    /// The kind a code names.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    /// Whether resolving it needs a senior safeguarding professional other than the raiser.
    pub fn needs_oversight(self) -> bool {
        matches!(self, FlagKind::CauseOfInjuryInconclusive)
    }
}

/// A practitioner acting on a flag, as their token names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Practitioner {
    /// Who (the token's subject).
    pub subject: String,
    /// Their organisation (ODS code).
    pub organisation: String,
    /// Their role (`health-visitor`).
    pub role: String,
    /// Whether the role is a senior safeguarding role (a named or designated safeguarding
    /// professional).
    pub senior_safeguarding: bool,
}

/// Why a resolution is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Refusal {
    /// The flag is already resolved.
    AlreadyResolved,
    /// The person who raised a flag needing oversight may not resolve it.
    RaiserMayNotResolve,
    /// A flag needing oversight is resolved only by a senior safeguarding professional.
    NotSeniorSafeguarding,
    /// No reason, or one too short to say anything (fewer than 10 letters).
    NoReason,
}

impl Refusal {
    /// Its code (`flag.raiser-may-not-resolve`).
    pub fn code(self) -> &'static str {
        match self {
            Refusal::AlreadyResolved => "flag.already-resolved",
            Refusal::RaiserMayNotResolve => "flag.raiser-may-not-resolve",
            Refusal::NotSeniorSafeguarding => "flag.oversight-required",
            Refusal::NoReason => "flag.reason-required",
        }
    }

    /// What it says to the practitioner.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::AlreadyResolved => "This flag is already resolved.",
            Refusal::RaiserMayNotResolve => {
                "A flag needing oversight is resolved by a different practitioner from the one who raised it: ask a named or designated safeguarding professional. This attempt is recorded."
            }
            Refusal::NotSeniorSafeguarding => {
                "A flag needing oversight is resolved only by a named or designated safeguarding professional (role safeguarding-professional). This attempt is recorded."
            }
            Refusal::NoReason => "Say why the flag is resolved, in 10 to 1,000 characters.",
        }
    }

    /// Whether the attempt is one oversight exists to stop (and so is reported).
    pub fn is_oversight(self) -> bool {
        matches!(
            self,
            Refusal::RaiserMayNotResolve | Refusal::NotSeniorSafeguarding
        )
    }
}

/// Whether `by` may resolve a flag of `kind` raised by `raised_by`, with `reason`. The flag
/// must be active; one needing oversight needs a senior safeguarding professional who did not
/// raise it; every resolution needs a reason.
pub fn may_resolve(
    kind: FlagKind,
    active: bool,
    raised_by: &Practitioner,
    by: &Practitioner,
    reason: &str,
) -> Result<(), Refusal> {
    if !active {
        return Err(Refusal::AlreadyResolved);
    }
    if kind.needs_oversight() {
        // The same person whatever organisation or role they now act in.
        if by.subject == raised_by.subject {
            return Err(Refusal::RaiserMayNotResolve);
        }
        if !by.senior_safeguarding {
            return Err(Refusal::NotSeniorSafeguarding);
        }
    }
    let letters = reason.chars().filter(|c| c.is_alphabetic()).count();
    if letters < 10 || reason.chars().count() > 1000 {
        return Err(Refusal::NoReason);
    }
    Ok(())
}

/// What happened to a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Raised.
    Raised,
    /// Resolved.
    Resolved,
    /// A resolution refused.
    Refused,
}

/// One action on a flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlagAction {
    /// The flag's id.
    pub flag: String,
    /// Its kind.
    pub kind: FlagKind,
    /// Whom it is about (a Kinfold person id).
    pub person: String,
    /// What was done.
    pub action: Action,
    /// When.
    pub at: DateTime<Utc>,
    /// By whom.
    pub by: Practitioner,
    /// The reason given (a resolution), or the refusal's code (a refused attempt).
    pub reason: Option<String>,
}

/// The oversight report: flags raised and resolved, by whom, and refused attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OversightReport {
    /// Flags raised in the period.
    pub raised: usize,
    /// Flags resolved in the period.
    pub resolved: usize,
    /// Attempts refused in the period (an oversight flag's raiser, or someone not senior).
    pub refused_attempts: usize,
    /// Of those, attempts by the person who raised the flag.
    pub refused_by_raiser: usize,
    /// Flags needing oversight resolved in the period, each by someone other than its raiser.
    pub resolved_with_oversight: usize,
    /// Every action, oldest first.
    pub actions: Vec<FlagAction>,
}

/// The report of these actions (oldest first).
pub fn oversight_report(mut actions: Vec<FlagAction>) -> OversightReport {
    actions.sort_by(|a, b| a.at.cmp(&b.at).then(a.flag.cmp(&b.flag)));
    let count = |action: Action| actions.iter().filter(|a| a.action == action).count();
    let raisers: std::collections::HashMap<&str, &str> = actions
        .iter()
        .filter(|a| a.action == Action::Raised)
        .map(|a| (a.flag.as_str(), a.by.subject.as_str()))
        .collect();
    let refused_by_raiser = actions
        .iter()
        .filter(|a| {
            a.action == Action::Refused
                && a.reason.as_deref() == Some(Refusal::RaiserMayNotResolve.code())
        })
        .count();
    let resolved_with_oversight = actions
        .iter()
        .filter(|a| {
            a.action == Action::Resolved
                && a.kind.needs_oversight()
                && raisers
                    .get(a.flag.as_str())
                    .is_none_or(|raiser| *raiser != a.by.subject)
        })
        .count();
    OversightReport {
        raised: count(Action::Raised),
        resolved: count(Action::Resolved),
        refused_attempts: count(Action::Refused),
        refused_by_raiser,
        resolved_with_oversight,
        actions,
    }
}
