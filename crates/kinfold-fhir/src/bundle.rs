//! `Bundle`: searchsets, transactions and their responses.

use serde::{Deserialize, Serialize};

use crate::{Identifier, Resource};

/// `Bundle.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BundleType {
    /// A document, first entry a Composition.
    Document,
    /// A message, first entry a MessageHeader.
    Message,
    /// All or nothing.
    Transaction,
    /// The answer to a transaction.
    TransactionResponse,
    /// Each entry on its own.
    Batch,
    /// The answer to a batch.
    BatchResponse,
    /// A history.
    History,
    /// Search results.
    Searchset,
    /// A set of resources.
    Collection,
}

/// `Bundle.entry.search.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SearchEntryMode {
    /// The resource matched the search.
    Match,
    /// Included because a match refers to it.
    Include,
    /// An `OperationOutcome` about the search itself.
    Outcome,
}

fhir_resource! {
    /// A container of resources.
    Bundle {
        identifier: Option<Identifier>,
        r#type: Option<BundleType>,
        timestamp: Option<String>,
        total: Option<u64>,
        link: Vec<BundleLink>,
        entry: Vec<BundleEntry>,
    }
}

fhir_element! {
    /// `Bundle.link`: `self`, `next`, `previous`.
    BundleLink {
        relation: Option<String>,
        url: Option<String>,
    }
}

fhir_element! {
    /// `Bundle.entry`.
    BundleEntry {
        link: Vec<BundleLink>,
        full_url: Option<String>,
        resource: Option<Resource>,
        search: Option<BundleEntrySearch>,
        request: Option<BundleEntryRequest>,
        response: Option<BundleEntryResponse>,
    }
}

fhir_element! {
    /// `Bundle.entry.search`.
    BundleEntrySearch {
        mode: Option<SearchEntryMode>,
        score: Option<serde_json::Number>,
    }
}

fhir_element! {
    /// `Bundle.entry.request`: what a transaction or batch asks for.
    BundleEntryRequest {
        method: Option<String>,
        url: Option<String>,
        if_none_match: Option<String>,
        if_modified_since: Option<String>,
        if_match: Option<String>,
        if_none_exist: Option<String>,
    }
}

fhir_element! {
    /// `Bundle.entry.response`: what happened to one entry.
    BundleEntryResponse {
        status: Option<String>,
        location: Option<String>,
        etag: Option<String>,
        last_modified: Option<String>,
        outcome: Option<Resource>,
    }
}

impl Bundle {
    /// An empty Bundle of the given type.
    pub fn new(kind: BundleType) -> Self {
        Self {
            r#type: Some(kind),
            ..Self::default()
        }
    }

    /// Appends an `OperationOutcome` about the search itself (mode `outcome`).
    pub fn push_outcome(&mut self, outcome: crate::OperationOutcome) {
        self.entry.push(BundleEntry {
            resource: Some(Resource::OperationOutcome(outcome)),
            search: Some(BundleEntrySearch {
                mode: Some(SearchEntryMode::Outcome),
                ..BundleEntrySearch::default()
            }),
            ..BundleEntry::default()
        });
    }
}
