use chrono::NaiveDate;
use kinfold_fhir::Agency;

use super::*;

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
}

fn record(n: usize, agency: Agency, when: &str, events: &[&str]) -> Record {
    Record {
        reference: format!("Encounter/{n}"),
        agency,
        when: When::parse(when).expect("when"),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        text: None,
        injuries: Vec::new(),
        person: "child".into(),
        relationship: "self".into(),
        seen: Seen::default(),
        action: None,
        provenance: None,
        child_focus: None,
    }
}

fn injured(mut record: Record, injury: Injury, text: &str) -> Record {
    record.injuries = vec![injury];
    record.text = Some(text.into());
    record.events.push("injury".into());
    record
}

#[test]
fn times_keep_the_precision_they_were_recorded_at() {
    let arrival = When::parse("2026-03-04T03:10:00+00:00").expect("time");
    assert_eq!(arrival.precision, Precision::Time);
    assert_eq!(
        When::parse("2026-03-04").expect("day").precision,
        Precision::Day
    );
    let month = When::parse("2026-03").expect("month");
    assert_eq!(month.precision, Precision::Month);
    assert_eq!(month.date(), day("2026-03-01"));
    assert_eq!(
        When::parse("2026").expect("year").precision,
        Precision::Year
    );
    assert!(When::parse("March 2026").is_none());
}

#[test]
fn an_entry_says_what_happened_in_one_line_and_how_much_it_matters() {
    let mut attendance = injured(
        record(
            1,
            Agency::Ae,
            "2026-03-04T03:10:00+00:00",
            &["ed-attendance"],
        ),
        Injury::Fracture,
        "Fracture of bone",
    );
    attendance.action = Some("Safeguarding referral to children's social care".into());
    let entry = Entry::of(attendance);
    assert_eq!(entry.significance, Significance::Safeguarding);
    assert_eq!(
        entry.summary,
        "A&E: A&E attendance, injury — Fracture of bone; action: Safeguarding referral to children's social care"
    );
    let mut mothers = record(2, Agency::Gp, "2026-02-01", &["hcp-contact"]);
    mothers.relationship = "mother".into();
    let entry = Entry::of(mothers);
    assert_eq!(entry.significance, Significance::Routine);
    assert_eq!(entry.summary, "GP practice: contact (mother)");
    let police = Entry::of(record(
        3,
        Agency::HealthVisiting,
        "2026-02-03",
        &["domestic-abuse-notification"],
    ));
    assert_eq!(police.significance, Significance::Safeguarding);
    // Nothing coded: the kind of record, and its words; an injury in them is safeguarding.
    let mut diagnosis = record(4, Agency::Ae, "2026-03-04T04:00:00+00:00", &[]);
    diagnosis.reference = "Condition/4".into();
    diagnosis.text = Some("Fracture of bone".into());
    diagnosis.injuries = Injury::from_words("Fracture of bone");
    let diagnosis = Entry::of(diagnosis);
    assert_eq!(diagnosis.summary, "A&E: diagnosis — Fracture of bone");
    assert_eq!(diagnosis.significance, Significance::Safeguarding);
    assert_eq!(
        Injury::from_words("Bruising to the left cheek; scald from a kettle"),
        [Injury::Bruise, Injury::Scald]
    );
}

#[test]
fn the_chronology_is_one_time_ordered_list_filtered_as_asked() {
    let records = vec![
        record(3, Agency::SchoolNursing, "2026-05-01", &["hcp-contact"]),
        record(
            1,
            Agency::Ae,
            "2026-03-04T03:10:00+00:00",
            &["ed-attendance"],
        ),
        record(
            2,
            Agency::HealthVisiting,
            "2026-03",
            &["domestic-abuse-notification"],
        ),
    ];
    let all = assemble(records.clone(), &Filter::default());
    let order: Vec<&str> = all.iter().map(|e| e.record.reference.as_str()).collect();
    // A month recorded as such sorts at its start.
    assert_eq!(order, ["Encounter/2", "Encounter/1", "Encounter/3"]);
    let serious = assemble(
        records.clone(),
        &Filter {
            significance: Some(Significance::OfNote),
            ..Filter::default()
        },
    );
    assert_eq!(serious.len(), 2);
    let spring = assemble(
        records,
        &Filter {
            from: Some(day("2026-03-02")),
            agencies: vec![Agency::Ae, Agency::SchoolNursing],
            ..Filter::default()
        },
    );
    assert_eq!(spring.len(), 2);
}

#[test]
fn injuries_across_agencies_attendances_and_missed_appointments_are_found_and_dated() {
    // A child born in June 2019: the school records two injuries, then A&E a fracture, all
    // within six months; A&E sees her three times in a year; she is not brought twice.
    let mut records = vec![
        injured(
            record(1, Agency::SchoolNursing, "2025-01-10", &["welfare-concern"]),
            Injury::Bruise,
            "bruise to the cheek",
        ),
        injured(
            record(2, Agency::SchoolNursing, "2025-03-02", &[]),
            Injury::Bruise,
            "bruised arm",
        ),
        injured(
            record(
                3,
                Agency::Ae,
                "2025-05-20T19:00:00+01:00",
                &["ed-attendance"],
            ),
            Injury::Fracture,
            "Fracture of bone",
        ),
        record(
            4,
            Agency::Ae,
            "2024-09-01T10:00:00+01:00",
            &["ed-attendance"],
        ),
        record(
            5,
            Agency::Ae,
            "2025-02-11T22:00:00+00:00",
            &["ed-attendance"],
        ),
        record(6, Agency::Gp, "2025-02-01", &["was-not-brought"]),
        record(7, Agency::SchoolNursing, "2025-06-01", &["was-not-brought"]),
    ];
    // The mother's own attendance is in the family chronology but is not the child's pattern.
    let mut mothers = record(
        8,
        Agency::Ae,
        "2025-04-01T01:00:00+01:00",
        &["ed-attendance"],
    );
    mothers.relationship = "mother".into();
    records.push(mothers);
    let entries = assemble(records, &Filter::default());
    let findings = find(
        &entries,
        Some(day("2019-06-01")),
        Mobility::MobileFrom(day("2020-03-01")),
    );
    let rules: Vec<&str> = findings.iter().map(|f| f.rule).collect();
    // Dated by the day each pattern was complete; the same day in the rules' order.
    assert_eq!(
        rules,
        [
            "injuries-across-agencies",
            "repeated-ae-attendances",
            "repeated-was-not-brought"
        ]
    );
    let across = &findings[0];
    assert_eq!(across.cites, "G13");
    assert_eq!(across.date, day("2025-05-20"));
    assert_eq!(
        across.evidence,
        ["Encounter/1", "Encounter/2", "Encounter/3"]
    );
    assert_eq!(
        across.summary,
        "3 injuries within six months, recorded by A&E, School nursing"
    );
    assert_eq!(findings[1].date, day("2025-05-20"));
    assert_eq!(
        findings[1].evidence,
        ["Encounter/4", "Encounter/5", "Encounter/3"]
    );
    assert_eq!(findings[2].date, day("2025-06-01"));
}

#[test]
fn a_baby_not_yet_mobile_with_a_fracture_is_two_findings_and_a_walking_childs_fall_none() {
    let baby = assemble(
        vec![injured(
            record(
                1,
                Agency::Ae,
                "2025-04-02T03:10:00+01:00",
                &["ed-attendance"],
            ),
            Injury::Fracture,
            "Fracture of bone",
        )],
        &Filter::default(),
    );
    let findings = find(&baby, Some(day("2025-01-10")), Mobility::Unknown);
    let rules: Vec<&str> = findings.iter().map(|f| f.rule).collect();
    assert_eq!(
        rules,
        ["fracture-under-2", "injury-not-independently-mobile"]
    );
    assert!(findings.iter().all(|f| f.cites == "NICE CG89"));
    // The control child: one bruise from a fall at two and a half, walking since 13 months.
    let toddler = assemble(
        vec![
            injured(
                record(
                    1,
                    Agency::Ae,
                    "2025-07-02T11:00:00+01:00",
                    &["ed-attendance"],
                ),
                Injury::Bruise,
                "bruised knee after a fall",
            ),
            record(2, Agency::Gp, "2025-03-01", &["hcp-contact"]),
        ],
        &Filter::default(),
    );
    assert!(
        find(
            &toddler,
            Some(day("2023-01-10")),
            Mobility::MobileFrom(day("2024-02-10"))
        )
        .is_empty()
    );
}

#[test]
fn a_child_not_seen_alone_and_an_interpreter_not_used_are_found() {
    let contact = |n: usize, when: &str, seen: bool, alone: bool| {
        let mut r = record(n, Agency::HealthVisiting, when, &["hcp-contact"]);
        r.seen = Seen {
            seen: Some(seen),
            alone: Some(alone),
            interpreter_needed: Some(true),
            interpreter_used: Some(n != 2),
        };
        r
    };
    let entries = assemble(
        vec![
            contact(1, "2025-01-10", true, true),
            contact(2, "2025-03-10", true, false),
            contact(3, "2025-05-10", false, false),
            contact(4, "2025-07-10", true, false),
        ],
        &Filter::default(),
    );
    let findings = find(&entries, Some(day("2018-01-01")), Mobility::Unknown);
    let rules: Vec<(&str, NaiveDate)> = findings.iter().map(|f| (f.rule, f.date)).collect();
    assert_eq!(
        rules,
        [
            ("interpreter-not-used", day("2025-03-10")),
            ("child-not-seen-alone", day("2025-07-10"))
        ]
    );
    // A baby seen with the parent at every contact: nothing to find.
    let baby = find(&entries, Some(day("2024-12-01")), Mobility::Unknown);
    assert!(
        baby.iter().all(|f| f.rule != "child-not-seen-alone"),
        "{baby:?}"
    );
    // Seen alone at the last contact: no finding.
    let mut later = entries.iter().map(|e| e.record.clone()).collect::<Vec<_>>();
    later.push(contact(5, "2025-09-10", true, true));
    let findings = find(
        &assemble(later, &Filter::default()),
        Some(day("2018-01-01")),
        Mobility::Unknown,
    );
    assert!(findings.iter().all(|f| f.rule != "child-not-seen-alone"));
}

#[test]
fn a_notification_that_records_nothing_about_the_child_is_found_whatever_the_adults_grade() {
    let notification = |n: usize, focus: ChildFocus| {
        let mut r = record(
            n,
            Agency::HealthVisiting,
            "2026-02-03",
            &["domestic-abuse-notification"],
        );
        r.child_focus = Some(focus);
        r
    };
    let graded_only = ChildFocus {
        children_present: Some(true),
        adult_victim_risk_grade: Some("standard".into()),
        ..ChildFocus::default()
    };
    let entries = assemble([notification(1, graded_only)], &Filter::default());
    let findings = find(&entries, Some(day("2021-03-10")), Mobility::Unknown);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].rule, "child-risk-not-assessed");
    assert_eq!(findings[0].cites, "G18");
    assert!(
        findings[0]
            .summary
            .contains("(standard), which is not the child's")
    );
    // The entry states the child-focused facts, and marks the grade as the adult's.
    assert!(
        entries[0]
            .summary
            .contains("children present; child seen: not recorded")
            && entries[0]
                .summary
                .contains("adult victim's risk grade standard (about the adult, not the child)"),
        "{}",
        entries[0].summary
    );
    // A high grade for the adult does not stand in for the child either; seen by someone does.
    let seen = ChildFocus {
        children_present: Some(true),
        child_seen: Some(true),
        seen_by: Some("the duty social worker".into()),
        adult_victim_risk_grade: Some("high".into()),
        ..ChildFocus::default()
    };
    let absent = ChildFocus {
        children_present: Some(false),
        ..ChildFocus::default()
    };
    let entries = assemble(
        [notification(2, seen), notification(3, absent)],
        &Filter::default(),
    );
    assert!(
        find(&entries, Some(day("2021-03-10")), Mobility::Unknown).is_empty(),
        "the child seen, or no children present: nothing to find"
    );
    assert!(
        entries
            .iter()
            .any(|e| e.summary.contains("child seen by the duty social worker"))
    );
}

mod flags {
    use chrono::{TimeZone, Utc};

    use crate::flags::*;

    fn who(subject: &str, senior: bool) -> Practitioner {
        Practitioner {
            subject: subject.into(),
            organisation: "RX1".into(),
            role: if senior {
                "safeguarding-professional".into()
            } else {
                "paediatric-liaison-nurse".into()
            },
            senior_safeguarding: senior,
        }
    }

    const REASON: &str = "Strategy meeting agreed accidental cause, skeletal survey clear";

    #[test]
    fn a_flag_needing_oversight_is_resolved_only_by_another_senior_professional_with_a_reason() {
        let kind = FlagKind::CauseOfInjuryInconclusive;
        assert!(kind.needs_oversight());
        let raiser = who("named-nurse-1", true);
        // Raised by a senior professional: still not theirs to close.
        assert_eq!(
            may_resolve(kind, true, &raiser, &raiser, REASON),
            Err(Refusal::RaiserMayNotResolve)
        );
        // The raiser acting in another role or organisation is still the raiser.
        let mut elsewhere = raiser.clone();
        elsewhere.organisation = "Q99".into();
        assert_eq!(
            may_resolve(kind, true, &raiser, &elsewhere, REASON),
            Err(Refusal::RaiserMayNotResolve)
        );
        assert_eq!(
            may_resolve(kind, true, &raiser, &who("liaison-2", false), REASON),
            Err(Refusal::NotSeniorSafeguarding)
        );
        let other = who("designated-nurse-3", true);
        assert_eq!(
            may_resolve(kind, true, &raiser, &other, "ok"),
            Err(Refusal::NoReason)
        );
        assert_eq!(may_resolve(kind, true, &raiser, &other, REASON), Ok(()));
        assert_eq!(
            may_resolve(kind, false, &raiser, &other, REASON),
            Err(Refusal::AlreadyResolved)
        );
        // A flag without oversight (the plan ended) is closed by anyone allowed to see it.
        let plan = FlagKind::ChildProtectionPlan;
        assert!(!plan.needs_oversight());
        let hv = who("hv-1", false);
        assert_eq!(may_resolve(plan, true, &hv, &hv, REASON), Ok(()));
        for kind in FlagKind::ALL {
            assert_eq!(FlagKind::parse(kind.code()), Some(kind));
        }
        assert_eq!(FlagKind::parse("closed"), None);
    }

    #[test]
    fn the_oversight_report_counts_what_was_raised_resolved_and_refused() {
        let at = |day: u32| Utc.with_ymd_and_hms(2026, 3, day, 9, 0, 0).unwrap();
        let act =
            |flag: &str, kind, action, day, by: Practitioner, reason: Option<&str>| FlagAction {
                flag: flag.into(),
                kind,
                person: "child".into(),
                action,
                at: at(day),
                by,
                reason: reason.map(str::to_owned),
            };
        let raiser = who("named-nurse-1", true);
        let other = who("designated-nurse-3", true);
        let kind = FlagKind::CauseOfInjuryInconclusive;
        let report = oversight_report(vec![
            act("f1", kind, Action::Resolved, 9, other.clone(), Some(REASON)),
            act("f1", kind, Action::Raised, 2, raiser.clone(), None),
            act(
                "f1",
                kind,
                Action::Refused,
                4,
                raiser.clone(),
                Some(Refusal::RaiserMayNotResolve.code()),
            ),
            act(
                "f1",
                kind,
                Action::Refused,
                5,
                who("liaison-2", false),
                Some(Refusal::NotSeniorSafeguarding.code()),
            ),
            act("f2", FlagKind::LookedAfter, Action::Raised, 6, other, None),
        ]);
        assert_eq!(report.raised, 2);
        assert_eq!(report.resolved, 1);
        assert_eq!(report.refused_attempts, 2);
        assert_eq!(report.refused_by_raiser, 1);
        assert_eq!(report.resolved_with_oversight, 1);
        let days: Vec<u32> = report
            .actions
            .iter()
            .map(|a| chrono::Datelike::day(&a.at))
            .collect();
        assert_eq!(days, [2, 4, 5, 6, 9], "oldest first");
    }
}
