use chrono::Duration;
use kinfold_time::{Clock, ManualClock};

use super::*;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("time")
        .with_timezone(&Utc)
}

fn rules() -> Rules {
    Rules::kinfold().expect("Kinfold's rules read")
}

fn attendance(age: u32, injuries: &[Injury]) -> Event {
    Event {
        child_age_months: Some(age),
        injuries: injuries.to_vec(),
        // Wednesday 2 December 2026, 14:00 GMT.
        ..Event::new(Trigger::ChildAttendance, at("2026-12-02T14:00:00Z"))
    }
}

fn roles(planned: &[Planned]) -> Vec<Role> {
    planned.iter().map(|p| p.role).collect()
}

#[test]
fn every_rule_names_its_requirement_and_every_trigger_has_a_rule() {
    let rules = rules();
    for rule in &rules.rules {
        assert!(rule.requirement.starts_with('G'), "{}", rule.id);
    }
    for trigger in [
        Trigger::ChildAttendance,
        Trigger::AdultAttendance,
        Trigger::DomesticAbuseNotification,
        Trigger::BookedPregnancy,
        Trigger::Birth,
        Trigger::CustodyTransferOverdue,
        Trigger::MinutesOverdue,
        Trigger::ReferralStatusChange,
        Trigger::RepeatedWasNotBrought,
        Trigger::FalteringGrowth,
        Trigger::ProtectedChildAccessed,
    ] {
        assert!(
            rules.rules.iter().any(|r| r.trigger == trigger),
            "{trigger:?}"
        );
    }
    // A rule without its requirement, or with two deadlines, is refused.
    let unnamed = KINFOLD_RULES.replacen("requirement = \"G5\"", "requirement = \"soon\"", 1);
    assert!(Rules::from_toml(&unnamed).is_err());
    let doubled = KINFOLD_RULES.replacen(
        "acknowledge = { working-days = 1 }",
        "acknowledge = { working-days = 1, working-hours = 2 }",
        1,
    );
    assert!(Rules::from_toml(&doubled).is_err());
}

#[test]
fn a_childs_attendance_tells_three_services_and_is_urgent_as_nice_cg89_says() {
    let rules = rules();
    let calendar = WorkingCalendar::default();
    // A four-year-old's fracture: routine, by the close of the next working day.
    let routine = rules.plan(&attendance(48, &[Injury::Fracture]), &calendar);
    assert_eq!(
        roles(&routine),
        [
            Role::RegisteredGp,
            Role::HealthVisitorOrSchoolNurse,
            Role::PaediatricLiaison
        ]
    );
    assert!(routine.iter().all(|p| p.priority == Priority::Routine));
    assert_eq!(routine[0].due, at("2026-12-03T17:00:00Z"));
    // Any injury under two: urgent, within four working hours (Wednesday 14:00 to Thursday
    // 10:00).
    let toddler = rules.plan(&attendance(18, &[Injury::HeadInjury]), &calendar);
    assert!(toddler.iter().all(|p| p.priority == Priority::Urgent));
    assert_eq!(toddler[0].due, at("2026-12-03T10:00:00Z"));
    // A scald under five.
    let scald = rules.plan(&attendance(40, &[Injury::Scald]), &calendar);
    assert_eq!(scald[0].priority, Priority::Urgent);
    // A bruise on a three-year-old who is recorded as not independently mobile (CG89).
    let mut immobile = attendance(36, &[Injury::Bruise]);
    assert_eq!(
        rules.plan(&immobile, &calendar)[0].priority,
        Priority::Routine
    );
    immobile.mobility = Mobility::NotIndependentlyMobile;
    assert_eq!(
        rules.plan(&immobile, &calendar)[0].priority,
        Priority::Urgent
    );
    // An attendance with no injury recorded, at three: routine.
    assert_eq!(
        rules.plan(&attendance(36, &[]), &calendar)[0].priority,
        Priority::Routine
    );
}

#[test]
fn an_adults_attendance_tells_the_childrens_services_only_for_the_reasons_that_matter() {
    let rules = rules();
    let calendar = WorkingCalendar::default();
    let mut overdose = Event::new(Trigger::AdultAttendance, at("2026-12-02T03:00:00Z"));
    overdose.reasons = vec![Reason::Overdose];
    let planned = rules.plan(&overdose, &calendar);
    assert_eq!(
        roles(&planned),
        [
            Role::HealthVisitorOrSchoolNurse,
            Role::RegisteredGp,
            Role::MidwifeOfUnborn
        ]
    );
    assert!(
        planned
            .iter()
            .all(|p| p.for_each == Some(ForEach::ChildInHousehold))
    );
    assert!(planned.iter().all(|p| p.requirement == "G5"));
    // A sprained ankle is nobody's business.
    let sprain = Event::new(Trigger::AdultAttendance, at("2026-12-02T03:00:00Z"));
    assert!(rules.plan(&sprain, &calendar).is_empty());
}

#[test]
fn a_police_notification_on_christmas_eve_is_due_when_the_services_next_open() {
    let planned = rules().plan(
        &Event::new(
            Trigger::DomesticAbuseNotification,
            at("2026-12-24T22:00:00Z"),
        ),
        &WorkingCalendar::default(),
    );
    assert_eq!(planned.len(), 2);
    // Christmas Day, the weekend and the substitute Boxing Day pass (G9).
    assert!(planned.iter().all(|p| p.due == at("2026-12-29T09:00:00Z")));
}

#[test]
fn a_booked_pregnancy_also_tells_the_midwifery_safeguarding_lead_when_there_is_history() {
    let rules = rules();
    let calendar = WorkingCalendar::default();
    let mut booking = Event::new(Trigger::BookedPregnancy, at("2026-12-02T11:00:00Z"));
    assert_eq!(
        roles(&rules.plan(&booking, &calendar)),
        [Role::HealthVisitorOrSchoolNurse]
    );
    booking.safeguarding_history = true;
    assert_eq!(
        roles(&rules.plan(&booking, &calendar)),
        [
            Role::HealthVisitorOrSchoolNurse,
            Role::MidwiferySafeguardingLead
        ]
    );
}

#[test]
fn an_unacknowledged_notification_climbs_to_the_team_lead_then_the_area_lead() {
    let calendar = WorkingCalendar::default();
    let clock = ManualClock::at(at("2026-12-24T22:00:00Z"));
    let due = rules().plan(
        &Event::new(Trigger::DomesticAbuseNotification, clock.now()),
        &calendar,
    )[0]
    .due;
    assert_eq!(
        escalation(due, false, clock.now(), &calendar),
        (Escalation::Recipient, Some(due))
    );
    clock.set(due + Duration::minutes(1));
    let (step, next) = escalation(due, false, clock.now(), &calendar);
    assert_eq!(step, Escalation::TeamLead);
    // The area lead a working day later: Wednesday 30 December at close.
    assert_eq!(next, Some(at("2026-12-30T17:00:00Z")));
    clock.advance(Duration::days(2));
    assert_eq!(
        escalation(due, false, clock.now(), &calendar).0,
        Escalation::AreaSafeguardingLead
    );
    // Acknowledged: it stays with the recipient, whatever the time.
    assert_eq!(
        escalation(due, true, clock.now(), &calendar),
        (Escalation::Recipient, None)
    );
}

#[test]
fn an_events_codes_say_what_it_sets_off() {
    let codes = |list: &[&str]| {
        list.iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<String>>()
    };
    let child = triggers_of(&codes(&["patient", "ed-attendance", "injury"]), true);
    assert_eq!(child, vec![(Trigger::ChildAttendance, Vec::new())]);
    // An adult's attendance matters only for the reasons the rules read.
    assert!(triggers_of(&codes(&["patient", "ed-attendance", "injury"]), false).is_empty());
    let adult = triggers_of(
        &codes(&["ed-attendance", "ed-risk-overdose", "ed-risk-alcohol"]),
        false,
    );
    assert_eq!(
        adult,
        vec![(
            Trigger::AdultAttendance,
            vec![Reason::Overdose, Reason::Alcohol]
        )]
    );
    assert_eq!(
        triggers_of(
            &codes(&["communication", "domestic-abuse-notification"]),
            true
        ),
        vec![(Trigger::DomesticAbuseNotification, Vec::new())]
    );
    assert_eq!(
        triggers_of(&codes(&["episode-of-care", "pregnancy-booked"]), false),
        vec![(Trigger::BookedPregnancy, Vec::new())]
    );
    assert_eq!(
        triggers_of(&codes(&["patient", "birth-notification"]), true),
        vec![(Trigger::Birth, Vec::new())]
    );
    // The mother's record from a birth notification, a child's from a booking: nothing.
    assert!(triggers_of(&codes(&["patient", "birth-notification"]), false).is_empty());
    assert!(triggers_of(&codes(&["pregnancy-booked"]), true).is_empty());
    assert_eq!(
        triggers_of(&codes(&["task", "referral-status-change"]), true),
        vec![(Trigger::ReferralStatusChange, Vec::new())]
    );
    assert!(triggers_of(&codes(&["task", "referral-sent"]), true).is_empty());
    // A routine contact sets off nothing.
    assert!(triggers_of(&codes(&["encounter", "hcp-contact"]), true).is_empty());
}
