//! Who must be told, how urgently, and by when.
//!
//! The rules are data (`rules.toml`, embedded), each naming the requirement it answers
//! (`docs/requirements.md`). [`Rules::plan`] turns one event (a child's A&E attendance, an
//! adult's, a police notification, a booked pregnancy, a birth, an overdue transfer, …) into
//! the notifications it calls for: for each recipient role (resolved from the records by the
//! shell, never typed by hand), its priority and its acknowledgement deadline in England's
//! working days and hours. [`escalation`] says who must be told next when nobody has
//! acknowledged by the deadline.
//!
//! Pure: no I/O, and time comes from the caller (a [`kinfold_time::Clock`]), so that tests and
//! replays run years in seconds.

use chrono::{DateTime, Utc};
use kinfold_time::WorkingCalendar;
use serde::{Deserialize, Serialize};

/// What happened, as the notification rules read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// A child attended A&E.
    ChildAttendance,
    /// A parent or household adult attended A&E.
    AdultAttendance,
    /// The police sent a domestic-abuse notification.
    DomesticAbuseNotification,
    /// A pregnancy was booked.
    BookedPregnancy,
    /// A child was born.
    Birth,
    /// A record custody transfer passed its deadline unfinished.
    CustodyTransferOverdue,
    /// A strategy meeting's minutes were not filed for every attendee in time.
    MinutesOverdue,
    /// A referral's status changed.
    ReferralStatusChange,
    /// A child was not brought to follow-up appointments, again.
    RepeatedWasNotBrought,
    /// A NICE NG75 faltering-growth threshold was met.
    FalteringGrowth,
    /// A child with an active child-protection or looked-after flag was read from an
    /// unscheduled-care setting.
    ProtectedChildAccessed,
}

/// Who is told, as a role the shell resolves from the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The child's registered GP practice.
    RegisteredGp,
    /// The allocated health visitor (under 5) or the school nurse (school age).
    HealthVisitorOrSchoolNurse,
    /// The hospital's paediatric liaison team.
    PaediatricLiaison,
    /// The unborn child's midwife.
    MidwifeOfUnborn,
    /// The midwifery service's safeguarding lead.
    MidwiferySafeguardingLead,
    /// The health visiting team (to allocate a named health visitor).
    HealthVisitingTeam,
    /// The lead of the service sending a record.
    SendingServiceLead,
    /// The lead of the service receiving it.
    ReceivingServiceLead,
    /// The chair of a strategy meeting.
    MeetingChair,
    /// The area's safeguarding lead.
    AreaSafeguardingLead,
    /// Whoever made a referral.
    Referrer,
}

/// Whom a rule's recipients are found for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForEach {
    /// Every child in the household of the person the event is about.
    ChildInHousehold,
    /// Every child of the mother.
    ChildOfMother,
}

/// A kind of injury recorded at an attendance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Injury {
    /// Any injury (in a rule: whichever was recorded).
    Any,
    /// A bruise.
    Bruise,
    /// A burn.
    Burn,
    /// A scald.
    Scald,
    /// A fracture.
    Fracture,
    /// Something swallowed.
    Ingestion,
    /// A dog bite.
    DogBite,
    /// A head injury.
    HeadInjury,
}

/// Why an adult attended A&E, as far as the rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// An overdose.
    Overdose,
    /// Self-harm.
    SelfHarm,
    /// Alcohol.
    Alcohol,
    /// An assault.
    Assault,
    /// A mental-health crisis.
    MentalHealthCrisis,
}

/// Whether a child moves about on their own (NICE CG89: a child who cannot crawl, cruise or
/// bottom-shuffle is not independently mobile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mobility {
    /// Recorded as crawling, cruising, bottom-shuffling or walking.
    IndependentlyMobile,
    /// Recorded as not yet.
    NotIndependentlyMobile,
    /// Not recorded: read from age ([`PRESUMED_IMMOBILE_UNDER_MONTHS`]).
    #[default]
    Unknown,
}

/// Without a recorded mobility, a child younger than this is taken as not independently
/// mobile: few babies crawl before six months, and the rule errs towards telling.
pub const PRESUMED_IMMOBILE_UNDER_MONTHS: u32 = 6;

/// An acknowledgement deadline: exactly one of its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Deadline {
    /// By the close of this many working days after the event's day.
    pub working_days: Option<u32>,
    /// Within this many working hours.
    pub working_hours: Option<u32>,
    /// Before the start of the next working day.
    #[serde(default)]
    pub start_of_next_working_day: bool,
}

impl Deadline {
    /// The moment the deadline falls, for an event at `at`.
    pub fn due(&self, at: DateTime<Utc>, calendar: &WorkingCalendar) -> DateTime<Utc> {
        if self.start_of_next_working_day {
            calendar.start_of_next_working_day(at)
        } else if let Some(hours) = self.working_hours {
            calendar.working_hours_after(at, hours)
        } else {
            calendar.working_days_after(at, self.working_days.unwrap_or(1))
        }
    }

    fn is_one(&self) -> bool {
        usize::from(self.working_days.is_some())
            + usize::from(self.working_hours.is_some())
            + usize::from(self.start_of_next_working_day)
            == 1
    }
}

/// When a rule's notification is urgent: all the given conditions hold.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Urgency {
    /// The child is younger than this many months.
    pub under_months: Option<u32>,
    /// The child is not independently mobile.
    pub not_independently_mobile: Option<bool>,
    /// One of these injuries was recorded (`any`: any injury).
    #[serde(default)]
    pub injuries: Vec<Injury>,
}

impl Urgency {
    fn holds(&self, event: &Event) -> bool {
        let age = self
            .under_months
            .is_none_or(|limit| event.child_age_months.is_some_and(|age| age < limit));
        let mobility = self
            .not_independently_mobile
            .is_none_or(|wanted| event.not_independently_mobile() == wanted);
        let injury = self.injuries.is_empty()
            || self.injuries.iter().any(|wanted| match wanted {
                Injury::Any => !event.injuries.is_empty(),
                injury => event.injuries.contains(injury),
            });
        age && mobility && injury
    }
}

/// A condition on the event for the rule to apply at all.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct When {
    /// One of these reasons was recorded.
    #[serde(default)]
    pub reasons: Vec<Reason>,
}

/// One notification rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Rule {
    /// Its id (`child-attendance`).
    pub id: String,
    /// The requirement it answers (`G5`).
    pub requirement: String,
    /// What it is about, in words.
    pub summary: String,
    /// The event it acts on.
    pub trigger: Trigger,
    /// A further condition on the event.
    #[serde(default)]
    pub when: When,
    /// Who is told.
    pub recipients: Vec<Role>,
    /// Whom the recipients are found for (default: the person the event is about).
    pub for_each: Option<ForEach>,
    /// Told as well when the family has a safeguarding flag or child-protection history.
    #[serde(default)]
    pub also_when_safeguarding_history: Vec<Role>,
    /// The acknowledgement deadline.
    pub acknowledge: Deadline,
    /// When the notification is urgent (any of these).
    #[serde(default)]
    pub urgent_when: Vec<Urgency>,
    /// The deadline when urgent.
    pub urgent_acknowledge: Option<Deadline>,
    /// For a rule about something overdue: how long after its start it is overdue (a custody
    /// transfer not completed within this).
    pub overdue_after: Option<Deadline>,
}

/// The event a plan is made for: what happened, when, and what the records say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub trigger: Trigger,
    /// When it was recorded as happening.
    pub at: DateTime<Utc>,
    /// The child's age in whole months at the time, if known.
    pub child_age_months: Option<u32>,
    /// The child's recorded mobility.
    pub mobility: Mobility,
    /// The injuries recorded.
    pub injuries: Vec<Injury>,
    /// An adult's reasons for attending.
    pub reasons: Vec<Reason>,
    /// The family has a safeguarding flag or child-protection history.
    pub safeguarding_history: bool,
}

impl Event {
    /// An event with nothing else known.
    pub fn new(trigger: Trigger, at: DateTime<Utc>) -> Self {
        Self {
            trigger,
            at,
            child_age_months: None,
            mobility: Mobility::Unknown,
            injuries: Vec::new(),
            reasons: Vec::new(),
            safeguarding_history: false,
        }
    }

    /// Whether the child is not independently mobile: as recorded, else by age.
    pub fn not_independently_mobile(&self) -> bool {
        match self.mobility {
            Mobility::NotIndependentlyMobile => true,
            Mobility::IndependentlyMobile => false,
            Mobility::Unknown => self
                .child_age_months
                .is_some_and(|age| age < PRESUMED_IMMOBILE_UNDER_MONTHS),
        }
    }
}

/// How urgent a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Priority {
    /// Routine.
    Routine,
    /// Urgent.
    Urgent,
}

/// One notification an event calls for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Planned {
    /// The rule.
    pub rule: String,
    /// The requirement the rule answers.
    pub requirement: String,
    /// Who is told.
    pub role: Role,
    /// Whom the recipient is found for.
    pub for_each: Option<ForEach>,
    /// How urgent.
    pub priority: Priority,
    /// Acknowledge by.
    pub due: DateTime<Utc>,
}

/// The rule file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesError(pub String);

impl std::fmt::Display for RulesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "notification rules: {}", self.0)
    }
}

impl std::error::Error for RulesError {}

/// A set of rules.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Rules {
    /// The rules, in the file's order.
    #[serde(rename = "rule")]
    pub rules: Vec<Rule>,
}

/// Kinfold's own rules (`rules.toml`).
pub const KINFOLD_RULES: &str = include_str!("rules.toml");

impl Rules {
    /// Reads rules from TOML, checking that each names a requirement and has exactly one
    /// kind of deadline.
    pub fn from_toml(text: &str) -> Result<Self, RulesError> {
        let rules: Rules = toml::from_str(text).map_err(|e| RulesError(e.to_string()))?;
        for rule in &rules.rules {
            let named = rule
                .requirement
                .strip_prefix('G')
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
            if !named {
                return Err(RulesError(format!(
                    "rule {} must name its requirement (G0 to G20), not {:?}",
                    rule.id, rule.requirement
                )));
            }
            if !rule.acknowledge.is_one()
                || rule.urgent_acknowledge.is_some_and(|d| !d.is_one())
                || rule.overdue_after.is_some_and(|d| !d.is_one())
            {
                return Err(RulesError(format!(
                    "rule {}: a deadline is one of working-days, working-hours or start-of-next-working-day",
                    rule.id
                )));
            }
            if rule.recipients.is_empty() {
                return Err(RulesError(format!("rule {} tells nobody", rule.id)));
            }
        }
        Ok(rules)
    }

    /// Kinfold's own rules.
    pub fn kinfold() -> Result<Self, RulesError> {
        Self::from_toml(KINFOLD_RULES)
    }

    /// The notifications an event calls for: one per recipient role of every rule that
    /// applies, with its priority and deadline.
    pub fn plan(&self, event: &Event, calendar: &WorkingCalendar) -> Vec<Planned> {
        let mut planned = Vec::new();
        for rule in self.rules.iter().filter(|r| r.trigger == event.trigger) {
            if !rule.when.reasons.is_empty()
                && !rule.when.reasons.iter().any(|r| event.reasons.contains(r))
            {
                continue;
            }
            let urgent = rule.urgent_when.iter().any(|u| u.holds(event));
            let (priority, deadline) = match (urgent, rule.urgent_acknowledge) {
                (true, Some(deadline)) => (Priority::Urgent, deadline),
                (true, None) => (Priority::Urgent, rule.acknowledge),
                (false, _) => (Priority::Routine, rule.acknowledge),
            };
            let due = deadline.due(event.at, calendar);
            let extra: &[Role] = if event.safeguarding_history {
                &rule.also_when_safeguarding_history
            } else {
                &[]
            };
            for &role in rule.recipients.iter().chain(extra) {
                planned.push(Planned {
                    rule: rule.id.clone(),
                    requirement: rule.requirement.clone(),
                    role,
                    for_each: rule.for_each,
                    priority,
                    due,
                });
            }
        }
        planned
    }
}

/// What an event's codes (`docs/feeds/events.md`) set off, for a person who is a child or
/// not at the time: an A&E attendance is a child's, or an adult's with the reasons the rules
/// read (`ed-risk-*`); a police domestic-abuse notification and a referral's status change
/// are themselves; a booked pregnancy is the mother's and a birth the baby's. Each trigger comes with the adult's reasons (empty for the others).
pub fn triggers_of<S: AsRef<str>>(codes: &[S], child: bool) -> Vec<(Trigger, Vec<Reason>)> {
    let has = |wanted: &str| codes.iter().any(|c| c.as_ref() == wanted);
    let mut found = Vec::new();
    if has("ed-attendance") {
        if child {
            found.push((Trigger::ChildAttendance, Vec::new()));
        } else {
            let reasons: Vec<Reason> = [
                ("ed-risk-overdose", Reason::Overdose),
                ("ed-risk-self-harm", Reason::SelfHarm),
                ("ed-risk-alcohol", Reason::Alcohol),
                ("ed-risk-assault", Reason::Assault),
                ("ed-risk-mental-health", Reason::MentalHealthCrisis),
            ]
            .into_iter()
            .filter(|(code, _)| has(code))
            .map(|(_, reason)| reason)
            .collect();
            if !reasons.is_empty() {
                found.push((Trigger::AdultAttendance, reasons));
            }
        }
    }
    if has("domestic-abuse-notification") {
        found.push((Trigger::DomesticAbuseNotification, Vec::new()));
    }
    if has("referral-status-change") {
        found.push((Trigger::ReferralStatusChange, Vec::new()));
    }
    // A pregnancy is the mother's; a birth, the baby's (the mother's own record from the same
    // notification sets off nothing).
    if has("pregnancy-booked") && !child {
        found.push((Trigger::BookedPregnancy, Vec::new()));
    }
    if has("birth-notification") && child {
        found.push((Trigger::Birth, Vec::new()));
    }
    found
}

/// Who must act on a notification now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Escalation {
    /// The recipient (acknowledged, or still in time).
    Recipient,
    /// Past its deadline unacknowledged: the recipient's team lead.
    TeamLead,
    /// A further working day on: the area's safeguarding lead.
    AreaSafeguardingLead,
}

/// Where a notification due at `due` stands at `now`, and when it next moves up if nobody
/// acknowledges it.
pub fn escalation(
    due: DateTime<Utc>,
    acknowledged: bool,
    now: DateTime<Utc>,
    calendar: &WorkingCalendar,
) -> (Escalation, Option<DateTime<Utc>>) {
    let area = calendar.working_days_after(due, 1);
    if acknowledged {
        (Escalation::Recipient, None)
    } else if now < due {
        (Escalation::Recipient, Some(due))
    } else if now < area {
        (Escalation::TeamLead, Some(area))
    } else {
        (Escalation::AreaSafeguardingLead, None)
    }
}

#[cfg(test)]
mod tests;
