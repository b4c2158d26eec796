//! The safeguarding logic of issue 23: a chronology and the patterns in it.
//!
//! * [`entry`]: one record as a chronology entry: when (at the precision recorded), which
//!   agency, what happened (Kinfold's event codes), whom it concerns, its significance
//!   (routine, of note, safeguarding) and a one-line factual summary for a professional
//!   reader, whether the child was seen, seen alone, and had an interpreter when one was
//!   needed, and the action recorded.
//! * [`chronology`]: the entries a caller may see, from every agency and family member, in
//!   one time-ordered list, filtered by period, agency and significance.
//! * [`patterns`]: findings across agencies, each rule citing NICE or a requirement and each
//!   finding dated and kept with the records that make it: an injury in a child not
//!   independently mobile and a fracture under two (NICE CG89), three injuries within six
//!   months across agencies (G13), repeated A&E attendances, repeated was-not-brought (G17),
//!   a child not seen or not seen alone at the last planned contacts, or an interpreter needed
//!   and not used (G14), a domestic-abuse notification that records nothing about the child
//!   and leaves only the adult victim's risk grade (G18).
//! * [`flags`]: safeguarding flags with oversight (G11, G20): who may resolve a flag (one
//!   needing oversight: a senior safeguarding professional who did not raise it, with a
//!   reason), and the oversight report of flags raised, resolved and refused attempts.
//!
//! Pure: the gateway reads the records (through the disclosure pipeline, so an entry is a
//! disclosure like any other) and turns each into a [`entry::Record`]; this crate orders,
//! words and weighs them.

pub mod chronology;
pub mod entry;
pub mod flags;
pub mod patterns;

pub use chronology::{Filter, assemble};
pub use entry::{ChildFocus, Entry, Injury, Precision, Record, Seen, Significance, When};
pub use patterns::{Finding, Mobility, find};

#[cfg(test)]
mod tests;
