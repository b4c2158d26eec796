//! The one disclosure pipeline, up to the answer: who is asking and why, the people a request
//! is about, every agency asked about each, the caller's relationship with the child, and each
//! record decided (`crate::disclosure`). A caller with no relationship is refused, and the
//! refusal recorded, before anything is answered.

use kinfold_consent::{Purpose, Relationship, Requester, Whose};
use serde_json::Value;

use crate::audit::{Entry, Interaction};
use crate::auth::Caller;
use crate::disclosure::{MAX_FAMILY, Screened, Withheld, dissent_of, facts, requester, screen};
use crate::error::GatewayError;
use crate::state::GatewayState;

/// One person's part of a disclosure, decided.
#[derive(Debug)]
pub(crate) struct Part {
    /// Kinfold's person id.
    pub(crate) id: String,
    /// How they are related to the child asked about (`None`: they are the child).
    pub(crate) kin: Option<kinfold_identity::family::Kin>,
    /// Their NHS number, if known.
    pub(crate) nhs: Option<kinfold_fhir::NhsNumber>,
    /// Their records, decided.
    pub(crate) screened: Screened,
}

/// The people a request is about, their records fetched and decided for this caller.
#[derive(Debug)]
pub(crate) struct Gathered {
    pub(crate) requester: Requester,
    pub(crate) relationship: Relationship,
    pub(crate) parts: Vec<Part>,
    /// Family members left out by the cap ([`MAX_FAMILY`]).
    pub(crate) left_out: usize,
}

/// The one disclosure pipeline, up to the answer: who is asking and why → the people (the
/// child, and with `family` their family) → every agency asked about each → the caller's
/// relationship with the child → each record decided. A caller with no relationship is
/// refused, and the refusal recorded.
pub(crate) async fn gather(
    state: &GatewayState,
    caller: &Caller,
    request: &actix_web::HttpRequest,
    asked: &str,
    family: bool,
    query: &str,
) -> Result<Gathered, GatewayError> {
    gather_types(state, caller, request, asked, family, query, None).await
}

/// Like [`gather`], asking each agency only for records of these types (`_type`; the Patient
/// always comes): for an answer that shows no others, so that what it withholds is counted
/// among what it could have shown.
pub(crate) async fn gather_types(
    state: &GatewayState,
    caller: &Caller,
    request: &actix_web::HttpRequest,
    asked: &str,
    family: bool,
    query: &str,
    types: Option<&str>,
) -> Result<Gathered, GatewayError> {
    let started = kinfold_http::request_started(request).unwrap_or_else(std::time::Instant::now);
    let requester = requester(caller, &state.disclosure)?;
    // A caller that keeps asking about people it is not answered about is held (`429`),
    // whichever kind of "not found" it had.
    let who = caller.client.as_deref().unwrap_or(&caller.subject);
    state.misses.check(who).map_err(GatewayError::Throttled)?;
    let (person_id, target) = match state.target_of(asked).await {
        Ok(found) => found,
        Err(GatewayError::UnknownPerson) => {
            state.misses.note(who);
            // As long as a refusal takes, so that the time does not say who is known.
            state.pace.hold(query, started).await;
            return Err(GatewayError::UnknownPerson);
        }
        Err(other) => return Err(other),
    };
    let mut people = vec![(person_id.clone(), None, target)];
    let mut left_out = 0;
    if family {
        let id: kinfold_identity::PersonId =
            person_id.parse().map_err(|_| GatewayError::UnknownPerson)?;
        let members = match state.family_of(&id).await {
            Ok((_, members)) => members,
            // A person known only by NHS number so far has no family on record yet.
            Err(GatewayError::UnknownPerson) => Vec::new(),
            Err(other) => return Err(other),
        };
        for member in members {
            let (member_id, target) = state.target_of(member.person.as_str()).await?;
            if target.records.is_empty() && target.nhs.is_none() {
                continue;
            }
            if people.len() == MAX_FAMILY {
                left_out += 1;
                continue;
            }
            people.push((member_id, Some(member.kin), target));
        }
    }
    // Every agency asked, and each person's recorded dissents read, side by side.
    let (answers, consents) = tokio::join!(
        futures::future::join_all(
            people
                .iter()
                .map(|(_, _, target)| state.agencies.everything_of_types(target, types)),
        ),
        futures::future::join_all(people.iter().map(|(id, _, _)| state.store.consents_of(id))),
    );
    let policy = state.disclosure.policy();
    let facts = facts(
        &state.disclosure,
        answers.first().map_or(&[][..], Vec::as_slice),
    );
    let today = chrono::Utc::now().date_naive();
    let Some(relationship) = kinfold_consent::relationship(&requester, &facts, today, &policy)
    else {
        state
            .record_access(
                Entry::by_caller(caller, request, Interaction::Operation, query)
                    .about(person_id)
                    .refused("relationship.none")
                    .done(),
            )
            .await?;
        state.misses.note(who);
        state.pace.observe(query, started.elapsed());
        state.pace.hold(query, started).await;
        return Err(GatewayError::NoRelationship);
    };
    // Read from unscheduled care, a protected child's services are told (G20).
    state
        .notifier
        .protected_child_read(
            state,
            &person_id,
            &requester,
            &facts,
            answers.first().map_or(&[][..], Vec::as_slice),
        )
        .await?;
    let mut parts = Vec::with_capacity(people.len());
    for (((id, kin, target), answers), consents) in people.into_iter().zip(answers).zip(consents) {
        // The person's own recorded dissents.
        let dissents: Vec<kinfold_consent::Dissent> = consents?
            .iter()
            .filter_map(|b| serde_json::from_str::<Value>(b).ok())
            .filter_map(|c| dissent_of(&c))
            .collect();
        let whose = if kin.is_none() {
            Whose::Child
        } else {
            Whose::Family
        };
        parts.push(Part {
            id,
            kin,
            nhs: target.nhs,
            screened: screen(
                &policy,
                &requester,
                &relationship,
                whose,
                &dissents,
                answers,
            ),
        });
    }
    Ok(Gathered {
        requester,
        relationship,
        parts,
        left_out,
    })
}

impl Gathered {
    /// The audit record of one person's part: what was disclosed (`disclosed`, or `override`
    /// for what an override revealed), what was withheld and under which rule (named in the
    /// ledger only), the relationship's rule, and the override's justification.
    pub(crate) fn audit_record(
        &self,
        caller: &Caller,
        request: &actix_web::HttpRequest,
        query: &str,
        part: &Part,
        mut disclosed: Vec<kinfold_ledger::AuditEntity>,
    ) -> kinfold_ledger::AuditRecord {
        for entity in &mut disclosed {
            if part
                .screened
                .overridden
                .iter()
                .any(|(url, _, _)| *url == entity.reference)
            {
                entity.disclosure = "override".into();
            }
        }
        disclosed.extend(
            part.screened
                .withheld_records
                .iter()
                .map(|(url, kind, agency, rule)| kinfold_ledger::AuditEntity {
                    reference: url.clone(),
                    resource_type: kind.clone(),
                    agency: Some(agency.as_str().to_owned()),
                    disclosure: format!("withheld ({rule})"),
                }),
        );
        let mut entry = Entry::by_caller(caller, request, Interaction::Operation, query)
            .about(part.id.clone())
            .entities(disclosed)
            .rule(self.relationship.rule);
        if !part.screened.overridden.is_empty()
            && let Purpose::Override { justification } = &self.requester.purpose
        {
            entry = entry.justification(justification.clone());
        }
        entry.done()
    }

    /// An override's reviews: for each person whose records the override revealed, a task on
    /// the privacy officers' queue of each organisation concerned, kept before anything is
    /// answered. Returns the task ids by person (nothing without an override).
    pub(crate) async fn override_reviews(
        &self,
        state: &GatewayState,
        caller: &Caller,
    ) -> Result<Vec<(String, Vec<String>)>, GatewayError> {
        let mut tasks = Vec::new();
        let Purpose::Override { justification } = &self.requester.purpose else {
            return Ok(tasks);
        };
        for part in &self.parts {
            let revealed: Vec<(String, kinfold_fhir::Agency)> = part
                .screened
                .overridden
                .iter()
                .map(|(url, _, agency)| (url.clone(), *agency))
                .collect();
            if revealed.is_empty() {
                continue;
            }
            let mut ids = Vec::new();
            for (id, owner, task) in
                crate::reviews::tasks_for(state, caller, &part.id, justification, &revealed)
            {
                state
                    .store
                    .review_put(&id, &owner, "requested", &task.to_string())
                    .await?;
                ids.push(id);
            }
            tasks.push((part.id.clone(), ids));
        }
        Ok(tasks)
    }

    /// The ledger records of an answer: one per person whose records it carries (so each is
    /// in that person's access report), each with the records disclosed about them
    /// (`disclosed_of(person)`), the override reviews asked for, and what was withheld.
    pub(crate) fn audit_records(
        &self,
        caller: &Caller,
        request: &actix_web::HttpRequest,
        query: &str,
        tasks: &[(String, Vec<String>)],
        mut disclosed_of: impl FnMut(&str) -> Vec<kinfold_ledger::AuditEntity>,
    ) -> Vec<kinfold_ledger::AuditRecord> {
        self.parts
            .iter()
            .map(|part| {
                let mut disclosed = disclosed_of(&part.id);
                for (_, ids) in tasks.iter().filter(|(person, _)| *person == part.id) {
                    disclosed.extend(ids.iter().map(|id| kinfold_ledger::AuditEntity {
                        reference: format!("Task/{id}"),
                        resource_type: "Task".into(),
                        agency: None,
                        disclosure: "override-review requested".into(),
                    }));
                }
                self.audit_record(caller, request, query, part, disclosed)
            })
            .collect()
    }

    /// Every withheld tally, across the people, by agency and rule (a family answer does not
    /// say whose).
    pub(crate) fn withheld(&self) -> Vec<Withheld> {
        let mut all: Vec<Withheld> = Vec::new();
        for tally in self.parts.iter().flat_map(|p| &p.screened.withheld) {
            match all
                .iter_mut()
                .find(|w| w.agency == tally.agency && w.rule == tally.rule)
            {
                Some(found) => found.count += tally.count,
                None => all.push(tally.clone()),
            }
        }
        all
    }
}
