//! The identity state as it is kept: one JSON body per piece, and the changes that put a
//! piece in place both in memory and among the rows to save.

use chrono::{NaiveDate, SecondsFormat, Utc};
use kinfold_fhir::NhsNumber;
use kinfold_identity::{Edge, Identity, PersonId, RecordKey};
use kinfold_store::IdentityRow;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Changes, Inner};
use crate::error::GatewayError;

/// Demographics as an agency gave them (what the index compares).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Demographics {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) nhs_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) family: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) given: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) birth_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) gender: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) postcode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) address_line: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) address_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) address_until: Option<String>,
}

impl Demographics {
    /// The address folded for finding households (first line and postcode), when both are
    /// given.
    pub(crate) fn address_key(&self) -> Option<String> {
        let line = kinfold_identity::normalise::fold(self.address_line.as_deref()?);
        let postcode = kinfold_identity::normalise::Postcode::parse(self.postcode.as_deref()?)?;
        (!line.is_empty()).then(|| format!("{line}|{}", postcode.full))
    }

    /// As the index reads them: an NHS number that fails its check digit is no NHS number.
    pub(crate) fn identity(&self) -> Identity {
        Identity {
            nhs_number: self
                .nhs_number
                .as_deref()
                .and_then(|n| n.parse::<NhsNumber>().ok()),
            family: self.family.clone(),
            given: self.given.clone(),
            birth_date: self.birth_date.clone(),
            gender: self.gender.clone(),
            postcode: self.postcode.clone(),
            address_line: self.address_line.clone(),
            city: self.city.clone(),
        }
    }
}

/// How a record came to be filed under its person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Method {
    /// Its valid NHS number is the person's.
    NhsNumber,
    /// Its demographics scored above the link threshold.
    Score,
    /// Nobody matched: a new person.
    New,
    /// A person linked it by hand (always wins over the algorithm).
    Manual,
    /// A review pair was accepted.
    Review,
    /// A baby notified before naming, joined to the named record through the same mother and
    /// date of birth.
    BirthAndMother,
    /// An adult named without enough to score, joined to the one person of that name among
    /// the child's family and household.
    Household,
    /// The agency merged two of its own records (an HL7 A40).
    SourceMerge,
}

impl Method {
    /// Its name, as the ledger and the Person view give it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::NhsNumber => "nhs-number",
            Self::Score => "score",
            Self::New => "new",
            Self::Manual => "manual",
            Self::Review => "review",
            Self::BirthAndMother => "birth-and-mother",
            Self::Household => "household",
            Self::SourceMerge => "source-merge",
        }
    }
}

/// One agency record and its person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RecordBody {
    pub(crate) record: RecordKey,
    pub(crate) person: PersonId,
    pub(crate) demographics: Demographics,
    pub(crate) method: Method,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    pub(crate) updated: String,
}

/// A person (or an unborn child).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PersonBody {
    pub(crate) id: PersonId,
    pub(crate) created: String,
    /// An unborn child's due date (from the booked pregnancy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) due_date: Option<NaiveDate>,
    /// An unborn child's pregnancy record (`midwifery/EpisodeOfCare/…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pregnancy: Option<String>,
    /// The person this one now is (a merge, or an unborn child born).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) merged_into: Option<PersonId>,
}

/// Who took an edge back, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Retraction {
    pub(crate) by: String,
    pub(crate) reason: String,
    pub(crate) at: String,
}

/// A family edge, from the data or asserted by hand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EdgeBody {
    pub(crate) edge: Edge,
    /// `data` or `manual`.
    pub(crate) origin: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) asserted_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) retracted: Option<Retraction>,
}

/// The state of a review pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum ReviewStatus {
    Open,
    Accepted,
    Rejected,
}

/// A pair for a person to review: a record and a person it may be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReviewBody {
    pub(crate) id: String,
    /// `match` (scored between the thresholds, or held) or `nhs-number-conflict` (the NHS
    /// number is the person's but the demographics are not).
    pub(crate) kind: String,
    pub(crate) record: RecordKey,
    pub(crate) candidate: PersonId,
    pub(crate) candidate_record: RecordKey,
    pub(crate) score: f64,
    /// The fields that agreed and disagreed, with their weights.
    pub(crate) comparison: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) hold: Option<Value>,
    pub(crate) status: ReviewStatus,
    pub(crate) created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) decided_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

/// A record a person said is not this person's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RefusalBody {
    pub(crate) record: RecordKey,
    pub(crate) person: PersonId,
    pub(crate) by: String,
    pub(crate) reason: String,
}

/// Now, as the bodies record it.
pub(crate) fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A record key as one string (`gp|Patient/g1`).
pub(crate) fn record_key(key: &RecordKey) -> String {
    format!("{}|{}", key.agency.as_str(), key.reference)
}

fn row(kind: &str, key: String, body: &impl Serialize) -> IdentityRow {
    IdentityRow {
        kind: kind.to_owned(),
        key,
        body: serde_json::to_string(body).unwrap_or_default(),
    }
}

fn corrupt(kind: &str) -> GatewayError {
    GatewayError::Store(kinfold_store::StoreError::Corrupt(format!(
        "an identity {kind} cannot be read back"
    )))
}

impl Inner {
    /// Puts one kept piece of state back in memory.
    pub(crate) fn restore(&mut self, row: &IdentityRow) -> Result<(), GatewayError> {
        fn parse<T: for<'de> Deserialize<'de>>(row: &IdentityRow) -> Result<T, GatewayError> {
            serde_json::from_str(&row.body).map_err(|_| corrupt(&row.kind))
        }
        match row.kind.as_str() {
            "record" => self.set_record(parse(row)?),
            "person" => self.set_person(parse(row)?),
            "edge" => self.set_edge(parse(row)?),
            "review" => self.set_review(parse(row)?),
            "refusal" => self.set_refusal(parse(row)?),
            _ => return Err(corrupt(&row.kind)),
        }
        Ok(())
    }

    /// Files a record under its person.
    pub(crate) fn put_record(&mut self, body: RecordBody, changes: &mut Changes) {
        changes
            .rows
            .push(row("record", record_key(&body.record), &body));
        self.set_record(body);
    }

    /// Keeps a person.
    pub(crate) fn put_person(&mut self, body: PersonBody, changes: &mut Changes) {
        changes.rows.push(row("person", body.id.to_string(), &body));
        self.set_person(body);
    }

    /// Keeps an edge.
    pub(crate) fn put_edge(&mut self, body: EdgeBody, changes: &mut Changes) {
        changes.rows.push(row("edge", body.edge.id.clone(), &body));
        self.set_edge(body);
    }

    /// Keeps a review pair.
    pub(crate) fn put_review(&mut self, body: ReviewBody, changes: &mut Changes) {
        changes.rows.push(row("review", body.id.clone(), &body));
        self.set_review(body);
    }

    /// Keeps a refusal.
    pub(crate) fn put_refusal(&mut self, body: RefusalBody, changes: &mut Changes) {
        let key = format!("{}|{}", record_key(&body.record), body.person);
        changes.rows.push(row("refusal", key.clone(), &body));
        self.set_refusal(body);
    }

    fn set_record(&mut self, body: RecordBody) {
        if let Some(old) = self
            .records
            .get(&body.record)
            .and_then(|r| r.demographics.address_key())
            && let Some(at) = self.addresses.get_mut(&old)
        {
            at.remove(&body.record);
        }
        if let Some(address) = body.demographics.address_key() {
            self.addresses
                .entry(address)
                .or_default()
                .insert(body.record.clone());
        }
        self.index.insert(
            body.record.clone(),
            body.person.clone(),
            &body.demographics.identity(),
        );
        self.records.insert(body.record.clone(), body);
    }

    fn set_person(&mut self, body: PersonBody) {
        let before = self
            .persons
            .get(&body.id)
            .and_then(|b| b.merged_into.clone());
        if before != body.merged_into {
            if let Some(old) = before
                && let Some(from) = self.merged_from.get_mut(&old)
            {
                from.retain(|p| *p != body.id);
            }
            if let Some(into) = &body.merged_into {
                self.merged_from
                    .entry(into.clone())
                    .or_default()
                    .push(body.id.clone());
            }
        }
        self.persons.insert(body.id.clone(), body);
    }

    fn set_edge(&mut self, body: EdgeBody) {
        self.edges.insert(body.edge.id.clone(), body);
    }

    fn set_review(&mut self, body: ReviewBody) {
        self.reviews.insert(body.id.clone(), body);
    }

    fn set_refusal(&mut self, body: RefusalBody) {
        self.index.refuse(body.record, body.person);
    }
}
