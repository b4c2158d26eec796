//! The FHIR R4 model Kinfold exchanges.
//!
//! This crate owns the wire shape of everything Kinfold sends and receives: the resources
//! (hand-written serde types: no maintained R4 model crate fits, see ARCHITECTURE.md), Bundles,
//! `OperationOutcome`, the CapabilityStatement, search parameters and the search columns
//! extracted from each resource. It also owns the identifiers that must be right before
//! anything else happens: [`NhsNumber`] and [`OdsCode`] can only be built by parsing.
//!
//! Invariants:
//! * Nothing a sender gave us is silently dropped: every struct keeps the elements it does not
//!   model in a flattened `extra` map, and a resource type we do not model at all is kept
//!   whole as [`Resource::Other`]. Read, store and serve round-trips are lossless as JSON.
//! * No I/O: this crate never touches a database, a socket or a file.

#[macro_use]
mod macros;
mod agency;
mod bundle;
mod capability;
pub mod codes;
mod datatypes;
mod error;
mod ids;
mod index;
mod outcome;
pub mod primitive;
mod resource;
pub mod search;

pub use agency::Agency;
pub use bundle::{
    Bundle, BundleEntry, BundleEntryRequest, BundleEntryResponse, BundleEntrySearch, BundleLink,
    BundleType, SearchEntryMode,
};
pub use capability::capability_statement;
pub use codes::CONTACT_TYPE_SYSTEM;
pub use datatypes::{
    CodeableConcept, Coding, HumanName, Identifier, Meta, Period, Quantity, Reference,
};
pub use error::ParseError;
pub use ids::{NHS_NUMBER_SYSTEM, NhsNumber, ODS_CODE_SYSTEM, OdsCode};
pub use index::{DateRange, SearchIndex, TokenValue};
pub use outcome::{IssueSeverity, IssueType, OperationOutcome, OperationOutcomeIssue};
pub use resource::{
    AuditEvent, Binary, CapabilityStatement, Communication, Condition, Consent, DocumentReference,
    Encounter, EpisodeOfCare, Flag, Group, Observation, OtherResource, Patient, Provenance,
    RelatedPerson, Resource, ResourceType, Task,
};

/// The media type of FHIR JSON, for `Content-Type` and `Accept`.
pub const FHIR_JSON: &str = "application/fhir+json";

/// The FHIR version Kinfold speaks.
pub const FHIR_VERSION: &str = "4.0.1";

/// Decides whether an optional element is left out of the JSON we write.
///
/// FHIR forbids empty arrays and empty objects, so `None` and `[]` are both omitted.
pub(crate) trait Omit {
    fn omit(&self) -> bool;
}

impl<T> Omit for Option<T> {
    fn omit(&self) -> bool {
        self.is_none()
    }
}

impl<T> Omit for Vec<T> {
    fn omit(&self) -> bool {
        self.is_empty()
    }
}

pub(crate) fn omit<T: Omit>(value: &T) -> bool {
    value.omit()
}
