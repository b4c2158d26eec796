//! The enforcement point: who is asking and why, what the data says about their relationship
//! with the child, and each record the fan-out brought back decided by `kinfold-consent`
//! before anything is answered. What is withheld is counted by agency and rule, never shown.

use chrono::NaiveDate;
use kinfold_consent::{
    Allocation, ChildFacts, Decision, Effect, Item, Policy, Purpose, Relationship, Requester,
    ResourceView, Role, Whose,
};
use kinfold_fhir::{Agency, IssueType};
use kinfold_http::ApiError;
use serde::Deserialize;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::GatewayError;
use crate::fanout::{AgencyAnswer, AgencyRecord};

/// Where each agency's records are held, and the policy's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DisclosureConfig {
    /// The area's ODS code: its designated safeguarding professionals and social workers
    /// relate to every child in it.
    pub area: String,
    /// Each agency's organisation (ODS code). The GP's records are held by the practice the
    /// child is registered with.
    pub organisations: Vec<AgencyOrganisation>,
    /// How many days an A&E attendance makes a relationship for ED clinicians.
    pub ed_window_days: i64,
    /// The shortest override justification, in letters and digits.
    pub min_justification: usize,
}

/// One agency's organisation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgencyOrganisation {
    /// The agency.
    pub agency: Agency,
    /// Its organisation's ODS code.
    pub organisation: String,
}

impl Default for DisclosureConfig {
    fn default() -> Self {
        let policy = Policy::default();
        Self {
            area: "Q99".into(),
            organisations: vec![
                AgencyOrganisation {
                    agency: Agency::Midwifery,
                    organisation: "RXX01".into(),
                },
                AgencyOrganisation {
                    agency: Agency::Ae,
                    organisation: "RXX01".into(),
                },
                AgencyOrganisation {
                    agency: Agency::HealthVisiting,
                    organisation: "RX1".into(),
                },
                AgencyOrganisation {
                    agency: Agency::SchoolNursing,
                    organisation: "RX1".into(),
                },
            ],
            ed_window_days: policy.ed_window_days,
            min_justification: policy.min_justification,
        }
    }
}

impl DisclosureConfig {
    /// The policy with this configuration's settings.
    pub fn policy(&self) -> Policy {
        Policy {
            ed_window_days: self.ed_window_days,
            min_justification: self.min_justification,
            ..Policy::default()
        }
    }

    /// The organisation whose privacy officers review an override of this agency's records
    /// (the area's, for an agency with no organisation of its own configured).
    pub(crate) fn owner_of(&self, agency: Agency) -> String {
        self.organisation_of(agency)
            .unwrap_or(&self.area)
            .to_owned()
    }

    pub(crate) fn organisation_of(&self, agency: Agency) -> Option<&str> {
        self.organisations
            .iter()
            .find(|o| o.agency == agency)
            .map(|o| o.organisation.as_str())
    }
}

/// Who is asking and why, from the caller's signed claims. Without a role, an organisation
/// and a purpose of use, no patient data; an override whose justification is too short to
/// say why is refused, naming its rule (never quietly read as an ordinary request).
pub(crate) fn requester(
    caller: &Caller,
    config: &DisclosureConfig,
) -> Result<Requester, GatewayError> {
    let refuse = |why: String| {
        GatewayError::Refused(ApiError::new(
            actix_web::http::StatusCode::FORBIDDEN,
            IssueType::Forbidden,
            "who-and-why",
            format!(
                "{why}: a request for patient data carries the practitioner's role, organisation (ODS code) and purpose of use (direct-care, safeguarding, or override with a justification)."
            ),
        ))
    };
    let role: Role = caller
        .role
        .as_deref()
        .ok_or_else(|| refuse("The token names no role".into()))?
        .parse()
        .map_err(|e: kinfold_consent::WhoError| {
            refuse(format!("The token's role is not one Kinfold knows ({e})"))
        })?;
    let organisation = caller
        .organisation
        .as_ref()
        .ok_or_else(|| refuse("The token names no organisation".into()))?
        .to_string();
    let purpose = Purpose::parse(
        caller
            .purpose
            .as_deref()
            .ok_or_else(|| refuse("The token names no purpose of use".into()))?,
        caller.justification.as_deref(),
    )
    .map_err(|e| refuse(format!("The token's purpose of use is not usable ({e})")))?;
    purpose
        .check_justification(config.min_justification)
        .map_err(|e| {
            GatewayError::Refused(ApiError::new(
                actix_web::http::StatusCode::FORBIDDEN,
                IssueType::Forbidden,
                "override.justification-too-short",
                format!(
                    "The override is refused under rule override.justification-too-short: {e}. Whitespace, punctuation and invisible characters do not count."
                ),
            ))
        })?;
    Ok(Requester {
        practitioner: caller.subject.clone(),
        name: caller.name.clone(),
        role,
        organisation,
        purpose,
    })
}

/// What a child's records say about the professionals around them.
pub fn facts(config: &DisclosureConfig, answers: &[AgencyAnswer]) -> ChildFacts {
    let mut facts = ChildFacts {
        organisations: vec![config.area.clone()],
        ..ChildFacts::default()
    };
    for answer in answers {
        let Ok(records) = &answer.result else {
            continue;
        };
        if records.is_empty() {
            continue;
        }
        let org = config.organisation_of(answer.agency).map(str::to_owned);
        facts.organisations.extend(org.clone());
        for record in records.iter().map(|r| &r.resource) {
            let kind = record["resourceType"].as_str().unwrap_or_default();
            let tags = tags_of(record);
            match (answer.agency, kind) {
                (Agency::Gp, "Patient") => {
                    for practice in record["generalPractitioner"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        if let Some(code) = practice["identifier"]["value"].as_str() {
                            facts.registered_practices.push(code.to_owned());
                            facts.organisations.push(code.to_owned());
                        }
                    }
                }
                (Agency::HealthVisiting | Agency::SchoolNursing, "EpisodeOfCare")
                    if tags
                        .iter()
                        .any(|t| t == "caseload-allocation" || t == "school-enrolment") =>
                {
                    facts.allocations.push(Allocation {
                        agency: answer.agency,
                        practitioner: record["careManager"]["display"].as_str().map(str::to_owned),
                        organisation: org.clone(),
                    });
                }
                (Agency::Ae, "Encounter") if record["class"]["code"] == "EMER" => {
                    if let Some(day) = record["period"]["start"]
                        .as_str()
                        .and_then(|s| NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok())
                    {
                        facts.ed_attendances.push((day, org.clone()));
                    }
                }
                (Agency::Midwifery, _) => facts.maternity_bookings.push(org.clone()),
                _ => {}
            }
        }
    }
    facts.organisations.sort();
    facts.organisations.dedup();
    facts
}

/// The event tags on a record (`meta.tag` in Kinfold's event system).
fn tags_of(resource: &Value) -> Vec<String> {
    resource["meta"]["tag"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["system"] == kinfold_fhir::codes::EVENT_SYSTEM)
        .filter_map(|t| t["code"].as_str().map(str::to_owned))
        .collect()
}

/// What the rules need of a record.
fn view(resource: &Value, agency: Agency) -> ResourceView {
    let mut codes = Vec::new();
    for element in ["code", "category", "type", "reasonCode"] {
        let concepts: Vec<&Value> = match &resource[element] {
            Value::Array(many) => many.iter().collect(),
            one @ Value::Object(_) => vec![one],
            _ => Vec::new(),
        };
        for concept in concepts {
            for coding in concept["coding"].as_array().into_iter().flatten() {
                if let (Some(system), Some(code)) =
                    (coding["system"].as_str(), coding["code"].as_str())
                {
                    codes.push(format!("{system}|{code}"));
                }
            }
        }
    }
    ResourceView {
        resource_type: resource["resourceType"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        agency: Some(agency),
        tags: tags_of(resource),
        codes,
    }
}

fn date_of(resource: &Value) -> Option<NaiveDate> {
    [
        "effectiveDateTime",
        "recordedDate",
        "onsetDateTime",
        "occurrenceDateTime",
        "sent",
        "received",
        "date",
        "issued",
    ]
    .iter()
    .find_map(|k| resource[*k].as_str())
    .or_else(|| resource["period"]["start"].as_str())
    .and_then(|s| NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok())
}

/// A stored Consent's dissent, if it is an active one.
pub(crate) fn dissent_of(consent: &Value) -> Option<kinfold_consent::Dissent> {
    if consent["status"] != "active" || consent["provision"]["type"] != "deny" {
        return None;
    }
    let provision = &consent["provision"];
    Some(kinfold_consent::Dissent {
        id: consent["id"].as_str()?.to_owned(),
        agencies: provision["actor"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["reference"]["identifier"]["value"].as_str()?.parse().ok())
            .collect(),
        categories: provision["code"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["coding"].as_array().into_iter().flatten())
            .filter_map(|c| kinfold_consent::Category::parse(c["code"].as_str()?))
            .collect(),
        from: day(&provision["period"]["start"]),
        until: day(&provision["period"]["end"]),
    })
}

/// A `YYYY-MM-DD` (or longer) date.
fn day(value: &Value) -> Option<NaiveDate> {
    let text = value.as_str()?;
    NaiveDate::parse_from_str(text.get(..10).unwrap_or(text), "%Y-%m-%d").ok()
}

/// Items of one agency withheld under one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withheld {
    /// The agency.
    pub agency: Agency,
    /// The rule.
    pub rule: String,
    /// Whether an override could reveal them.
    pub overridable: bool,
    /// How many.
    pub count: usize,
}

/// One person's answers after the decisions: what may be shown, and what was withheld or
/// revealed by an override (for the Bundle's outcomes and the ledger).
#[derive(Debug, Default)]
pub struct Screened {
    /// The answers, holding only what may be shown.
    pub answers: Vec<AgencyAnswer>,
    /// What was withheld, by agency and rule.
    pub withheld: Vec<Withheld>,
    /// Each withheld record: its URL, type, agency and rule (for the ledger only).
    pub withheld_records: Vec<(String, String, Agency, String)>,
    /// Each record an override revealed: its URL, the rule it lifted and its agency.
    pub overridden: Vec<(String, String, Agency)>,
}

/// Decides every record of one person's answers.
pub fn screen(
    policy: &Policy,
    requester: &Requester,
    relationship: &Relationship,
    whose: Whose,
    dissents: &[kinfold_consent::Dissent],
    answers: Vec<AgencyAnswer>,
) -> Screened {
    let mut screened = Screened::default();
    for mut answer in answers {
        let agency = answer.agency;
        if let Ok(records) = answer.result {
            let decided: Vec<(AgencyRecord, Decision)> = records
                .into_iter()
                .map(|record| {
                    let decision = if record.resource["resourceType"] == "Patient"
                        || record.resource["resourceType"] == "Provenance"
                    {
                        permit(relationship)
                    } else {
                        let view = view(&record.resource, agency);
                        kinfold_consent::decide(
                            policy,
                            requester,
                            Some(relationship),
                            dissents,
                            &Item {
                                view: &view,
                                whose,
                                date: date_of(&record.resource),
                            },
                        )
                    };
                    (record, decision)
                })
                .collect();
            // A Provenance names the records it is about: it goes only where they all go.
            let withheld_ids: Vec<String> = decided
                .iter()
                .filter(|(_, d)| d.effect != Effect::Permit)
                .map(|(r, _)| local_reference(&r.full_url))
                .collect();
            let mut kept = Vec::new();
            for (record, mut decision) in decided {
                if record.resource["resourceType"] == "Provenance"
                    && let Some(hidden) = record.resource["target"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|t| t["reference"].as_str())
                        .find(|t| withheld_ids.iter().any(|w| w == t))
                {
                    let _ = hidden;
                    decision = Decision {
                        effect: Effect::Withhold,
                        rule: "provenance.of-withheld".into(),
                        overridden: None,
                        overridable: true,
                    };
                }
                match decision.effect {
                    Effect::Permit => {
                        if let Some(lifted) = decision.overridden {
                            screened
                                .overridden
                                .push((record.full_url.clone(), lifted, agency));
                        }
                        kept.push(record);
                    }
                    _ => {
                        screened.withheld_records.push((
                            record.full_url.clone(),
                            record.resource["resourceType"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                            agency,
                            decision.rule.clone(),
                        ));
                        match screened
                            .withheld
                            .iter_mut()
                            .find(|w| w.agency == agency && w.rule == decision.rule)
                        {
                            Some(tally) => tally.count += 1,
                            None => screened.withheld.push(Withheld {
                                agency,
                                rule: decision.rule,
                                overridable: decision.overridable,
                                count: 1,
                            }),
                        }
                    }
                }
            }
            answer.result = Ok(kept);
        }
        screened.answers.push(answer);
    }
    screened
}

fn permit(relationship: &Relationship) -> Decision {
    Decision {
        effect: Effect::Permit,
        rule: relationship.rule.into(),
        overridden: None,
        overridable: false,
    }
}

/// `Type/id` from an adapter's absolute URL.
fn local_reference(full_url: &str) -> String {
    let mut parts = full_url.rsplitn(3, '/');
    match (parts.next(), parts.next()) {
        (Some(id), Some(kind)) => format!("{kind}/{id}"),
        _ => full_url.to_owned(),
    }
}

/// The most family members one answer asks about; beyond, the answer says it is cut short.
pub const MAX_FAMILY: usize = 30;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adapter_url_becomes_a_local_reference() {
        assert_eq!(
            local_reference("http://127.0.0.1:8082/Condition/c1"),
            "Condition/c1"
        );
        assert_eq!(local_reference("nothing"), "nothing");
    }

    use kinfold_consent::Role;
    use proptest::prelude::*;
    use serde_json::json;

    const TAGS: [&str; 12] = [
        "injury",
        "ed-risk-overdose",
        "domestic-abuse-notification",
        "pregnancy-booked",
        "ncmp",
        "welfare-concern",
        "encounter",
        "sensitive-sexual-health",
        "sensitive-gender-identity",
        "antenatal-concern",
        "was-not-brought",
        "letter-safeguarding-section",
    ];
    const TYPES: [&str; 6] = [
        "Encounter",
        "Observation",
        "Condition",
        "Flag",
        "Communication",
        "EpisodeOfCare",
    ];

    fn record(n: usize, kind: &str, tags: &[&str]) -> AgencyRecord {
        let tags: Vec<Value> = tags
            .iter()
            .map(|t| json!({"system": kinfold_fhir::codes::EVENT_SYSTEM, "code": t}))
            .collect();
        AgencyRecord {
            full_url: format!("http://adapter/{kind}/r{n}"),
            resource: json!({"resourceType": kind, "id": format!("r{n}"), "meta": {"tag": tags}}),
        }
    }

    proptest! {
        /// Whatever the records, the caller and the purpose, `screen` keeps exactly what the
        /// policy permits, counts everything else by agency and rule, and keeps a Provenance
        /// only when every record it names is kept.
        #[test]
        fn only_what_the_decision_permits_is_kept_and_every_withheld_item_is_counted(
            items in prop::collection::vec((0..5usize, 0..TYPES.len(), prop::collection::vec(0..TAGS.len(), 0..3)), 0..25),
            role in 0..Role::ALL.len(),
            family in any::<bool>(),
            overriding in any::<bool>(),
            provenance_targets in prop::collection::vec(0..25usize, 1..4),
        ) {
            let requester = Requester {
                practitioner: "p".into(),
                name: None,
                role: Role::ALL[role],
                organisation: "Q99".into(),
                purpose: if overriding {
                    Purpose::Override { justification: "A long enough justification for the test".into() }
                } else {
                    Purpose::DirectCare
                },
            };
            let relationship = Relationship { rule: "relationship.organisation-wide", basis: String::new() };
            let policy = Policy::default();
            let whose = if family { Whose::Family } else { Whose::Child };
            let mut by_agency: Vec<AgencyAnswer> = Agency::ALL
                .into_iter()
                .map(|agency| AgencyAnswer { agency, result: Ok(Vec::new()), truncated: false })
                .collect();
            for (n, (agency, kind, tags)) in items.iter().enumerate() {
                let tags: Vec<&str> = tags.iter().map(|t| TAGS[*t]).collect();
                if let Ok(records) = &mut by_agency[*agency].result {
                    records.push(record(n, TYPES[*kind], &tags));
                }
            }
            // A Provenance naming some of the first agency's records (an adapter's Provenance
            // is about its own records).
            let targets: Vec<Value> = provenance_targets
                .iter()
                .filter(|t| **t < items.len() && items[**t].0 == 0)
                .map(|t| json!({"reference": format!("{}/r{t}", TYPES[items[*t].1])}))
                .collect();
            if let Ok(records) = &mut by_agency[0].result {
                records.push(AgencyRecord {
                    full_url: "http://adapter/Provenance/p".into(),
                    resource: json!({"resourceType": "Provenance", "id": "p", "target": targets}),
                });
            }
            let total: usize = by_agency.iter().map(|a| a.result.as_ref().map_or(0, Vec::len)).sum();
            let screened = screen(&policy, &requester, &relationship, whose, &[], by_agency.clone());
            let mut kept = 0;
            for answer in &screened.answers {
                for record in answer.result.as_ref().expect("answered") {
                    kept += 1;
                    if record.resource["resourceType"] == "Provenance" {
                        continue;
                    }
                    let decision = kinfold_consent::decide(&policy, &requester, Some(&relationship), &[], &Item {
                        view: &view(&record.resource, answer.agency),
                        whose,
                        date: None,
                    });
                    prop_assert_eq!(decision.effect, Effect::Permit, "{}", record.resource);
                }
            }
            let withheld: usize = screened.withheld.iter().map(|w| w.count).sum();
            prop_assert_eq!(kept + withheld, total, "every record is kept or counted");
            prop_assert_eq!(withheld, screened.withheld_records.len());
            let provenance_kept = screened.answers[0]
                .result
                .as_ref()
                .expect("answered")
                .iter()
                .any(|r| r.resource["resourceType"] == "Provenance");
            let first = screened.answers[0].result.as_ref().expect("answered");
            let all_targets_kept = targets.iter().all(|t| {
                let reference = t["reference"].as_str().unwrap_or_default();
                first.iter().any(|r| local_reference(&r.full_url) == reference)
            });
            prop_assert_eq!(provenance_kept, all_targets_kept);
        }
    }
}
