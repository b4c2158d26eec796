//! The entries a caller may see, in one time-ordered list.

use chrono::NaiveDate;
use kinfold_fhir::Agency;

use crate::entry::{Entry, Record, Significance};

/// What the caller asked for (`from=`, `to=`, `agency=`, `significance=`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// From this day (inclusive).
    pub from: Option<NaiveDate>,
    /// To this day (inclusive).
    pub to: Option<NaiveDate>,
    /// Only these agencies (none: all).
    pub agencies: Vec<Agency>,
    /// Only entries at least this significant.
    pub significance: Option<Significance>,
}

impl Filter {
    fn keeps(&self, entry: &Entry) -> bool {
        let day = entry.record.when.date();
        self.from.is_none_or(|from| day >= from)
            && self.to.is_none_or(|to| day <= to)
            && (self.agencies.is_empty() || self.agencies.contains(&entry.record.agency))
            && self.significance.is_none_or(|s| entry.significance >= s)
    }
}

/// The records as entries, filtered, oldest first (records of the same moment in the order
/// of their agency and reference, so the list reads the same every time).
pub fn assemble(records: impl IntoIterator<Item = Record>, filter: &Filter) -> Vec<Entry> {
    let mut entries: Vec<Entry> = records
        .into_iter()
        .map(Entry::of)
        .filter(|e| filter.keeps(e))
        .collect();
    entries.sort_by(|a, b| {
        a.record
            .when
            .at
            .cmp(&b.record.when.at)
            .then(a.record.agency.as_str().cmp(b.record.agency.as_str()))
            .then(a.record.reference.cmp(&b.record.reference))
    });
    entries
}
