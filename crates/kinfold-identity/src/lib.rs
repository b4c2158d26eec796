//! Identity and family: who each agency's record is about, and who that person's family is.
//!
//! Pure: no I/O. The gateway persists what this crate decides (and writes every decision to
//! the ledger); this crate only compares, scores and walks.
//!
//! * [`normalise`] folds names (case, spacing, hyphens, diacritics and transliteration:
//!   "Wójcik", "Wojcik" and "WOJCIK" are one name), nicknames, dates of birth and postcodes.
//! * [`matching`] compares two identities field by field and scores the comparison with
//!   Fellegi–Sunter weights: priors, or weights estimated from the index's own records
//!   (`estimate.rs`: expectation–maximisation over the pairs blocking finds, `blocking.rs`).
//! * [`index`] is the person index: a valid NHS number is an exact key; otherwise blocking
//!   finds a few candidates, and two thresholds decide link, review or new person.
//! * [`family`] is the family graph: edges with their source record and confidence, siblings
//!   through a shared parent, the unborn child, and each member's relationship to the child.
//!
//! Invariants:
//! * A valid NHS number is the only exact key; one that fails its check digit is never read.
//! * Two records holding different valid NHS numbers are never one person by score.
//! * Nothing is linked automatically when a child's given names disagree or are only alike
//!   (twins), when two children's dates of birth differ beyond a keying error, when a person
//!   already holds another record of the same agency, or when two people score alike: those
//!   go to review.

mod blocking;
mod estimate;
pub use estimate::estimate_due;
pub mod family;
pub mod index;
pub mod matching;
pub mod normalise;
mod person;

pub use family::{Edge, FamilyGraph, Member, Relation};
pub use index::{Candidate, PersonIndex, RecordKey, Resolution};
pub use matching::{Comparison, Field, Identity, Level, Thresholds, WeightRow, Weights};
pub use person::{PersonId, PersonIdError};
