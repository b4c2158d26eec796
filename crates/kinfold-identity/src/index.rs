//! The person index: which Kinfold person each agency's record is about.
//!
//! A valid NHS number is an exact key. Without one (or when it is new to the index), blocking
//! finds the few records worth comparing, so that resolving one identity never scans the
//! index: records are filed under a handful of keys (date of birth with day and month in
//! either order; family name and birth year; given name and postcode; family and given name),
//! and only records sharing a key are compared. A key shared by more than
//! [`MAX_BLOCK`] records (a very common name) is not read: the others still find the match.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use kinfold_fhir::Agency;
use serde::{Deserialize, Serialize};

use crate::PersonId;
use crate::blocking::block_keys;
use crate::matching::{Comparison, Field, Hold, Identity, Level, Prepared, Thresholds, Weights};

/// One agency's record of a person: the agency and the record's reference there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordKey {
    /// The agency holding the record.
    pub agency: Agency,
    /// `Patient/{id}` at that agency's adapter.
    pub reference: String,
}

/// A person an identity might be, with the best comparison against their records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// The person.
    pub person: PersonId,
    /// Their record that compared best.
    pub record: RecordKey,
    /// The comparison.
    pub comparison: Comparison,
    /// What keeps it from linking by itself, if anything.
    pub hold: Option<Hold>,
}

/// What the index says about an identity.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// The record is already in the index, as this person's.
    Known(PersonId),
    /// Its NHS number is already this person's. `conflict` is set when the demographics
    /// disagree so much that a person should look (score below review).
    Exact {
        /// The person.
        person: PersonId,
        /// The best comparison with the person's records, when it is below review.
        conflict: Option<Candidate>,
    },
    /// One person scores at or above the link threshold, with nothing holding it.
    Linked(Candidate),
    /// Candidates for a person to review, best first.
    Review(Vec<Candidate>),
    /// Nobody is close: a new person.
    New,
}

/// A blocking key shared by more records than this is not read.
pub const MAX_BLOCK: usize = 5000;

#[derive(Debug, Clone)]
struct Entry {
    key: RecordKey,
    person: PersonId,
    prepared: Prepared,
    blocks: Vec<u64>,
}

/// The person index (see the module documentation).
#[derive(Debug, Default)]
pub struct PersonIndex {
    weights: Weights,
    thresholds: Thresholds,
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
    by_key: HashMap<RecordKey, usize>,
    by_person: HashMap<PersonId, Vec<usize>>,
    by_nhs: HashMap<String, Vec<usize>>,
    blocks: HashMap<u64, Vec<usize>>,
    refused: HashMap<RecordKey, HashSet<PersonId>>,
    /// Today, by the caller's clock: who is a child (for [`Hold::ChildBirthDatesDiffer`]).
    /// Until it is set, everyone is treated as possibly a child.
    today: Option<chrono::NaiveDate>,
}

/// Under this age a date of birth years away from another record's is a different child,
/// not a keying error.
pub const CHILD_YEARS: u32 = 18;

impl PersonIndex {
    /// Sets today's date (the gateway's clock), which says who is still a child.
    pub fn set_today(&mut self, today: chrono::NaiveDate) {
        self.today = Some(today);
    }

    /// Whether someone born on this date may be a child today.
    fn may_be_child(&self, prepared: &Prepared) -> bool {
        match (self.today, prepared.dob) {
            (Some(today), Some(dob)) => {
                today.years_since(dob.0).is_none_or(|age| age < CHILD_YEARS)
            }
            _ => true,
        }
    }

    /// An empty index with these weights and thresholds.
    pub fn new(weights: Weights, thresholds: Thresholds) -> Self {
        Self {
            weights,
            thresholds,
            ..Self::default()
        }
    }

    /// The weights in force.
    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// The thresholds in force.
    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// Replaces the weights (after [`Weights::estimate`] on the index's records).
    pub fn set_weights(&mut self, weights: Weights) {
        self.weights = weights;
    }

    /// Every record's folded identity, for estimating weights.
    pub fn prepared(&self) -> Vec<Prepared> {
        self.entries
            .iter()
            .flatten()
            .map(|e| e.prepared.clone())
            .collect()
    }

    /// How many records the index holds.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The person a record is filed under.
    pub fn person_of(&self, key: &RecordKey) -> Option<&PersonId> {
        self.by_key
            .get(key)
            .and_then(|&slot| self.entries[slot].as_ref())
            .map(|e| &e.person)
    }

    /// The person holding a valid NHS number.
    pub fn person_with_nhs(&self, nhs: &str) -> Option<&PersonId> {
        self.by_nhs
            .get(nhs)
            .and_then(|slots| slots.first())
            .and_then(|&slot| self.entries[slot].as_ref())
            .map(|e| &e.person)
    }

    /// A person's records, in agency then reference order.
    pub fn records_of(&self, person: &PersonId) -> Vec<RecordKey> {
        let mut keys: Vec<RecordKey> = self
            .by_person
            .get(person)
            .into_iter()
            .flatten()
            .filter_map(|&slot| self.entries[slot].as_ref().map(|e| e.key.clone()))
            .collect();
        keys.sort();
        keys
    }

    /// A person's valid NHS number, if a record of theirs holds one.
    pub fn nhs_number_of(&self, person: &PersonId) -> Option<&kinfold_fhir::NhsNumber> {
        self.by_person
            .get(person)
            .into_iter()
            .flatten()
            .filter_map(|&slot| self.entries[slot].as_ref())
            .find_map(|e| e.prepared.nhs_number())
    }

    /// Records that a person said are not this person's, so scoring never offers them again.
    pub fn refuse(&mut self, key: RecordKey, person: PersonId) {
        self.refused.entry(key).or_default().insert(person);
    }

    /// What the index says about one agency's record (it changes nothing).
    pub fn resolve(&self, key: &RecordKey, identity: &Identity) -> Resolution {
        if let Some(person) = self.person_of(key) {
            return Resolution::Known(person.clone());
        }
        let prepared = Prepared::new(identity);
        if let Some(nhs) = prepared.nhs_number()
            && let Some(person) = self.person_with_nhs(nhs.as_str())
        {
            let best = self.compare_with(person, &prepared, key);
            let conflict = best.filter(|c| c.comparison.score < self.thresholds.review);
            return Resolution::Exact {
                person: person.clone(),
                conflict,
            };
        }
        let candidates: Vec<Candidate> = self
            .candidates_for(&prepared, Some(key), self.thresholds.review)
            .into_iter()
            .filter(|c| c.hold != Some(Hold::NhsNumbersDiffer))
            // A person already holding another of this agency's records, scoring below the
            // link threshold, is someone the agency's own index already tells apart: not
            // worth a reviewer's time.
            .filter(|c| {
                c.hold != Some(Hold::SameAgency) || c.comparison.score >= self.thresholds.link
            })
            .collect();
        // Candidates at or above the link threshold with nothing holding them back. One held
        // back (a twin, a child born years apart, a person the agency already tells apart)
        // is someone else by its own rule: it does not make the clear candidate ambiguous.
        let linkable: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| c.comparison.score >= self.thresholds.link && c.hold.is_none())
            .collect();
        match linkable.as_slice() {
            [one] => Resolution::Linked((*one).clone()),
            [] if candidates.is_empty() => Resolution::New,
            [] => Resolution::Review(candidates),
            [_, _, ..] => Resolution::Review(
                candidates
                    .into_iter()
                    .map(|mut c| {
                        if c.comparison.score >= self.thresholds.link && c.hold.is_none() {
                            c.hold = Some(Hold::Ambiguous);
                        }
                        c
                    })
                    .collect(),
            ),
        }
    }

    /// An adult a record names without enough to score (often no date of birth: a partner
    /// named in a police notification) among the people already around the child: `circle`
    /// is the child's family and household. Names agree when family and first given name are
    /// each the same or close once folded; the date of birth, sex and postcode must not
    /// differ where both records give them. One person agreeing is a link; several agreeing,
    /// or one agreeing only in part (one of the two names, or everything but a conflicting
    /// date of birth), is a review; nobody is [`Resolution::New`].
    pub fn within_household(
        &self,
        circle: &[PersonId],
        key: &RecordKey,
        identity: &Identity,
    ) -> Resolution {
        let prepared = Prepared::new(identity);
        let named = |level: Level| matches!(level, Level::Exact | Level::Close);
        let free = |level: Level| level != Level::Differs;
        let mut agree = Vec::new();
        let mut partly = Vec::new();
        for person in circle {
            let Some(best) = self
                .by_person
                .get(person)
                .into_iter()
                .flatten()
                .filter_map(|&slot| self.entries[slot].as_ref())
                .filter(|e| &e.key != key)
                .map(|e| self.candidate(e, &prepared, Some(key)))
                .max_by(|a, b| a.comparison.score.total_cmp(&b.comparison.score))
            else {
                continue;
            };
            let c = &best.comparison;
            if c.nhs_numbers_differ
                || self
                    .refused
                    .get(key)
                    .is_some_and(|people| people.contains(person))
            {
                continue;
            }
            let family = named(c.level(Field::FamilyName));
            let given = named(c.level(Field::GivenName));
            let rest = [Field::BirthDate, Field::Sex, Field::Address]
                .into_iter()
                .all(|f| free(c.level(f)));
            if family && given && rest {
                agree.push(best);
            } else if family || given {
                partly.push(best);
            }
        }
        match agree.len() {
            1 => Resolution::Linked(agree.remove(0)),
            0 if partly.is_empty() => Resolution::New,
            0 => Resolution::Review(partly),
            _ => Resolution::Review(
                agree
                    .into_iter()
                    .map(|mut c| {
                        c.hold = Some(Hold::Ambiguous);
                        c
                    })
                    .collect(),
            ),
        }
    }

    /// People an identity might be (scoring at least the review threshold), best first, each
    /// with their best comparison; for searches by name and date of birth.
    pub fn candidates(&self, identity: &Identity) -> Vec<Candidate> {
        self.candidates_for(&Prepared::new(identity), None, self.thresholds.review)
    }

    /// Files a record under a person (replacing where it was filed before).
    pub fn insert(&mut self, key: RecordKey, person: PersonId, identity: &Identity) {
        self.remove(&key);
        let prepared = Prepared::new(identity);
        let blocks = block_keys(&prepared);
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.entries.push(None);
                self.entries.len() - 1
            }
        };
        for block in &blocks {
            self.blocks.entry(*block).or_default().push(slot);
        }
        if let Some(nhs) = prepared.nhs_number() {
            self.by_nhs
                .entry(nhs.as_str().to_owned())
                .or_default()
                .push(slot);
        }
        self.by_key.insert(key.clone(), slot);
        self.by_person.entry(person.clone()).or_default().push(slot);
        self.entries[slot] = Some(Entry {
            key,
            person,
            prepared,
            blocks,
        });
    }

    /// Takes a record out of the index; the person it was filed under, if any.
    pub fn remove(&mut self, key: &RecordKey) -> Option<PersonId> {
        let slot = self.by_key.remove(key)?;
        let entry = self.entries[slot].take()?;
        for block in &entry.blocks {
            remove_slot(&mut self.blocks, block, slot);
        }
        if let Some(nhs) = entry.prepared.nhs_number() {
            remove_slot(&mut self.by_nhs, nhs.as_str(), slot);
        }
        remove_slot(&mut self.by_person, &entry.person, slot);
        self.free.push(slot);
        Some(entry.person)
    }

    /// Files every record of one person under another (a merge); the records moved.
    pub fn move_person(&mut self, from: &PersonId, to: &PersonId) -> Vec<RecordKey> {
        let slots = self.by_person.remove(from).unwrap_or_default();
        let mut moved = Vec::new();
        for slot in slots {
            if let Some(entry) = self.entries[slot].as_mut() {
                entry.person = to.clone();
                moved.push(entry.key.clone());
                self.by_person.entry(to.clone()).or_default().push(slot);
            }
        }
        moved.sort();
        moved
    }

    /// The best comparison of a record's person with another person's records (for a
    /// review pair a person must decide).
    pub fn compare_person(&self, other: &PersonId, key: &RecordKey) -> Option<Candidate> {
        let slot = *self.by_key.get(key)?;
        let prepared = self.entries[slot].as_ref()?.prepared.clone();
        self.compare_with(other, &prepared, key)
    }

    fn compare_with(
        &self,
        person: &PersonId,
        prepared: &Prepared,
        key: &RecordKey,
    ) -> Option<Candidate> {
        self.by_person
            .get(person)
            .into_iter()
            .flatten()
            .filter_map(|&slot| self.entries[slot].as_ref())
            .filter(|e| &e.key != key)
            .map(|e| self.candidate(e, prepared, Some(key)))
            .max_by(|a, b| a.comparison.score.total_cmp(&b.comparison.score))
    }

    fn candidate(&self, entry: &Entry, prepared: &Prepared, key: Option<&RecordKey>) -> Candidate {
        let comparison = Comparison::of(&self.weights, prepared, &entry.prepared);
        // Only an agency's own patient records count: a RelatedPerson naming a mother is
        // not the agency's record of her.
        let patient = |k: &RecordKey| k.reference.starts_with("Patient/");
        let same_agency = key.is_some_and(|key| {
            patient(key)
                && self
                    .by_person
                    .get(&entry.person)
                    .into_iter()
                    .flatten()
                    .any(|&slot| {
                        self.entries[slot].as_ref().is_some_and(|e| {
                            e.key.agency == key.agency && e.key != *key && patient(&e.key)
                        })
                    })
        });
        // Two children whose dates of birth differ by more than a keying error are two
        // children, whatever their names score: a person may still decide.
        let child = self.may_be_child(prepared) || self.may_be_child(&entry.prepared);
        let children_apart = child && comparison.level(Field::BirthDate) == Level::Differs;
        // Either record's date of birth shows an adult: they are not two child twins.
        let adult = !self.may_be_child(prepared) || !self.may_be_child(&entry.prepared);
        // Twins share everything but their given names: for children, given names that differ
        // or are only alike ("Ella", "Ellie") never link by score. An adult's given name that
        // differs is weighed like any other field (a record's corrupted or replaced first
        // name is far commoner among adults than twin parents sharing a home).
        let twins = !adult
            && matches!(
                comparison.level(Field::GivenName),
                Level::Differs | Level::Partial
            );
        let hold = match comparison.hold() {
            Some(Hold::GivenNamesDiffer) if adult => None,
            hold => hold,
        }
        .or(twins.then_some(Hold::GivenNamesDiffer))
        .or(children_apart.then_some(Hold::ChildBirthDatesDiffer))
        .or(same_agency.then_some(Hold::SameAgency));
        Candidate {
            person: entry.person.clone(),
            record: entry.key.clone(),
            comparison,
            hold,
        }
    }

    fn candidates_for(
        &self,
        prepared: &Prepared,
        key: Option<&RecordKey>,
        floor: f64,
    ) -> Vec<Candidate> {
        let refused = key.and_then(|k| self.refused.get(k));
        let mut seen: HashSet<usize> = HashSet::new();
        let mut best: HashMap<&PersonId, Candidate> = HashMap::new();
        for block in block_keys(prepared) {
            let Some(slots) = self.blocks.get(&block) else {
                continue;
            };
            if slots.len() > MAX_BLOCK {
                continue;
            }
            for &slot in slots {
                if !seen.insert(slot) {
                    continue;
                }
                let Some(entry) = self.entries[slot].as_ref() else {
                    continue;
                };
                if refused.is_some_and(|people| people.contains(&entry.person)) {
                    continue;
                }
                // Most records in a block are someone else: score them without building the
                // comparison, and build it only for those worth keeping.
                let score = Comparison::score(&self.weights, prepared, &entry.prepared);
                if score < floor
                    || best
                        .get(&entry.person)
                        .is_some_and(|held| held.comparison.score >= score)
                {
                    continue;
                }
                let candidate = self.candidate(entry, prepared, key);
                best.insert(&entry.person, candidate);
            }
        }
        let mut candidates: Vec<Candidate> = best.into_values().collect();
        candidates.sort_by(|a, b| {
            b.comparison
                .score
                .total_cmp(&a.comparison.score)
                .then_with(|| a.person.cmp(&b.person))
        });
        candidates
    }
}

fn remove_slot<K, Q>(map: &mut HashMap<K, Vec<usize>>, key: &Q, slot: usize)
where
    K: std::borrow::Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ?Sized,
{
    if let Some(slots) = map.get_mut(key) {
        slots.retain(|&s| s != slot);
        if slots.is_empty() {
            map.remove(key);
        }
    }
}

/// The blocking keys a record is filed under.
#[cfg(test)]
mod tests {
    use super::*;

    fn who(family: &str, given: &str, dob: &str, sex: &str, postcode: &str) -> Identity {
        Identity {
            nhs_number: None,
            family: Some(family.into()),
            given: vec![given.into()],
            birth_date: Some(dob.into()),
            gender: Some(sex.into()),
            postcode: Some(postcode.into()),
            address_line: None,
            city: None,
        }
    }

    fn key(agency: Agency, id: &str) -> RecordKey {
        RecordKey {
            agency,
            reference: format!("Patient/{id}"),
        }
    }

    fn person(id: &str) -> PersonId {
        id.parse().expect("id")
    }

    fn named(name: &str, dob: Option<&str>) -> Identity {
        let mut words: Vec<String> = name.split_whitespace().map(str::to_owned).collect();
        let family = words.pop();
        Identity {
            nhs_number: None,
            family,
            given: words,
            birth_date: dob.map(str::to_owned),
            gender: None,
            ..Identity::default()
        }
    }

    fn adult(id: &str) -> RecordKey {
        RecordKey {
            agency: Agency::HealthVisiting,
            reference: format!("RelatedPerson/{id}"),
        }
    }

    #[test]
    fn an_adult_named_without_a_date_of_birth_joins_the_one_in_the_household_with_that_name() {
        let mut index = PersonIndex::default();
        index.insert(
            adult("dan-1"),
            person("partner"),
            &named("Jiří Novák", Some("1990-04-01")),
        );
        index.insert(
            adult("dan-2"),
            person("mother"),
            &named("Amira Novak", Some("1994-05-02")),
        );
        let circle = [person("partner"), person("mother")];
        // Spelt without the diacritics and without a date of birth: the partner.
        match index.within_household(&circle, &adult("dan-3"), &named("Jiri Novak", None)) {
            Resolution::Linked(c) => assert_eq!(c.person, person("partner")),
            other => panic!("{other:?}"),
        }
        // A typo in the given name is still close.
        assert!(matches!(
            index.within_household(&circle, &adult("dan-4"), &named("Jiri Novac", None)),
            Resolution::Linked(c) if c.person == person("partner")
        ));
        // Outside the household the same name joins nobody: only the mother, of the same
        // family name, is offered to a person.
        match index.within_household(
            &[person("mother")],
            &adult("dan-5"),
            &named("Jiri Novak", None),
        ) {
            Resolution::Review(c) => {
                assert_eq!(
                    c.iter().map(|c| &c.person).collect::<Vec<_>>(),
                    [&person("mother")]
                );
            }
            other => panic!("{other:?}"),
        }
        // Only the family name agrees (a different man of the family): a person decides.
        match index.within_household(&circle, &adult("dan-6"), &named("Pavel Novak", None)) {
            Resolution::Review(c) => {
                assert_eq!(c.len(), 2, "both Nováks are offered");
            }
            other => panic!("{other:?}"),
        }
        // The same name with a date of birth that differs: review, not a link.
        assert!(matches!(
            index.within_household(
                &circle,
                &adult("dan-7"),
                &named("Jiri Novak", Some("1971-09-30"))
            ),
            Resolution::Review(_)
        ));
        // Nobody's name agrees: new.
        assert_eq!(
            index.within_household(&circle, &adult("dan-8"), &named("Dean Rowe", None)),
            Resolution::New
        );
    }

    #[test]
    fn two_people_of_one_name_in_a_household_are_a_review_never_a_guess() {
        let mut index = PersonIndex::default();
        index.insert(
            adult("a"),
            person("one"),
            &named("Sam Hale", Some("1980-01-01")),
        );
        index.insert(adult("b"), person("two"), &named("Sam Hale", None));
        match index.within_household(
            &[person("one"), person("two")],
            &adult("c"),
            &named("Sam Hale", None),
        ) {
            Resolution::Review(c) => {
                assert_eq!(c.len(), 2);
                assert!(c.iter().all(|c| c.hold == Some(Hold::Ambiguous)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn namesake_children_born_years_apart_stay_two_people_at_every_score() {
        let mut index = PersonIndex::default();
        index.set_today(chrono::NaiveDate::from_ymd_opt(2026, 12, 2).expect("date"));
        // Everything but the date of birth agrees (the demo's case: one name written with a
        // diacritic, one in capitals; 18.4 bits linked them before this rule).
        index.insert(
            key(Agency::Gp, "g1"),
            person("p1"),
            &who("Wójcik", "Zoë", "2019-05-02", "female", "LS6 2AB"),
        );
        for (dob, postcode) in [
            ("2021-11-20", "LS6 2AB"),
            ("2016-01-30", "LS6 2AB"),
            ("2021-11-20", "M1 1AE"),
        ] {
            let other = who("WOJCIK", "ZOE", dob, "female", postcode);
            match index.resolve(&key(Agency::SchoolNursing, "s1"), &other) {
                Resolution::Review(c) => {
                    assert_eq!(c[0].hold, Some(Hold::ChildBirthDatesDiffer), "{dob}");
                }
                Resolution::New => {}
                other => panic!("{dob} {postcode}: {other:?}"),
            }
        }
        // A keying error in the date is still the same child.
        let slip = who("WOJCIK", "ZOE", "2019-05-03", "female", "LS6 2AB");
        assert!(matches!(
            index.resolve(&key(Agency::SchoolNursing, "s2"), &slip),
            Resolution::Linked(_)
        ));
        let transposed = who("Wojcik", "Zoe", "2019-02-05", "female", "LS6 2AB");
        assert!(matches!(
            index.resolve(&key(Agency::SchoolNursing, "s3"), &transposed),
            Resolution::Linked(_)
        ));
    }

    #[test]
    fn adults_are_not_held_by_the_childrens_rule() {
        let mut index = PersonIndex::default();
        index.set_today(chrono::NaiveDate::from_ymd_opt(2026, 12, 2).expect("date"));
        index.insert(
            key(Agency::Gp, "g1"),
            person("p1"),
            &who("Haddad", "Amira", "1974-05-02", "female", "NE4 5PL"),
        );
        let other = who("Haddad", "Amira", "1977-08-19", "female", "NE4 5PL");
        let candidates = index.candidates(&other);
        assert!(!candidates.is_empty(), "scored as a candidate");
        assert_eq!(
            candidates[0].hold, None,
            "an adult's differing date is scored, not held"
        );
        // The same two records, as children: held.
        index.insert(
            key(Agency::Gp, "g2"),
            person("p2"),
            &who("Haddad", "Amira", "2014-05-02", "female", "NE4 5PL"),
        );
        let child = who("Haddad", "Amira", "2017-08-19", "female", "NE4 5PL");
        let held = index.candidates(&child);
        let p2 = held
            .iter()
            .find(|c| c.person == person("p2"))
            .expect("p2 is a candidate");
        assert_eq!(p2.hold, Some(Hold::ChildBirthDatesDiffer));
    }

    #[test]
    fn a_school_record_without_nhs_number_joins_the_gp_record_with_one() {
        let mut index = PersonIndex::default();
        let mut gp = who("Wójcik", "Ola", "2019-05-02", "female", "LS6 2AB");
        gp.nhs_number = "9990000026".parse().ok();
        index.insert(key(Agency::Gp, "g1"), person("p1"), &gp);
        let school = who("WOJCIK", "Ola", "2019-05-02", "female", "LS6 2AB");
        match index.resolve(&key(Agency::SchoolNursing, "s1"), &school) {
            Resolution::Linked(c) => {
                assert_eq!(c.person, person("p1"));
                assert_eq!(c.comparison.level(crate::Field::FamilyName), Level::Exact);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_known_nhs_number_is_exact_and_wild_demographics_are_a_conflict() {
        let mut index = PersonIndex::default();
        let mut gp = who("Haddad", "Leo", "2022-01-15", "male", "NE4 5PL");
        gp.nhs_number = "9990000026".parse().ok();
        index.insert(key(Agency::Gp, "g1"), person("p1"), &gp);
        let mut ae = gp.clone();
        ae.family = Some("Haddad".into());
        assert_eq!(
            index.resolve(&key(Agency::Ae, "a1"), &ae),
            Resolution::Exact {
                person: person("p1"),
                conflict: None
            }
        );
        let mut wrong = who("Brown", "Agnes", "1950-01-01", "female", "SW1A 1AA");
        wrong.nhs_number = gp.nhs_number.clone();
        match index.resolve(&key(Agency::Ae, "a2"), &wrong) {
            Resolution::Exact {
                person: p,
                conflict: Some(c),
            } => {
                assert_eq!(p, person("p1"));
                assert!(c.comparison.score < index.thresholds().review);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            index.resolve(&key(Agency::Gp, "g1"), &wrong),
            Resolution::Known(person("p1"))
        );
    }

    #[test]
    fn twins_stay_two_people() {
        let mut index = PersonIndex::default();
        index.insert(
            key(Agency::Gp, "g1"),
            person("p1"),
            &who("Novak", "Filip", "2021-06-01", "male", "B12 9QA"),
        );
        let twin = who("Novak", "Jan", "2021-06-01", "male", "B12 9QA");
        match index.resolve(&key(Agency::Gp, "g2"), &twin) {
            Resolution::Review(c) => assert_eq!(c[0].hold, Some(Hold::GivenNamesDiffer)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn child_twins_with_alike_names_are_held_and_an_adults_replaced_first_name_is_weighed() {
        let mut index = PersonIndex::default();
        index.set_today(chrono::NaiveDate::from_ymd_opt(2026, 12, 2).expect("date"));
        let home = |family: &str, given: &str, dob: &str| {
            let mut w = who(family, given, dob, "female", "B12 9QA");
            w.address_line = Some("4 Rowan Close".into());
            w.city = Some("Birmingham".into());
            w
        };
        // "Ella" and "Ellie" are alike, not a typo: twin girls stay two.
        index.insert(
            key(Agency::Gp, "g1"),
            person("p1"),
            &home("Novak", "Ella", "2021-06-01"),
        );
        match index.resolve(
            &key(Agency::HealthVisiting, "h1"),
            &home("Novak", "Ellie", "2021-06-01"),
        ) {
            Resolution::Review(c) => assert_eq!(c[0].hold, Some(Hold::GivenNamesDiffer)),
            other => panic!("{other:?}"),
        }
        // An adult whose first name one agency holds wrongly, everything else the same: linked.
        index.insert(
            key(Agency::Gp, "g2"),
            person("p2"),
            &home("Brennan", "Siobhan", "1988-03-14"),
        );
        match index.resolve(
            &key(Agency::Ae, "a1"),
            &home("Brennan", "Kate", "1988-03-14"),
        ) {
            Resolution::Linked(c) => assert_eq!(c.person, person("p2")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_twin_held_back_does_not_make_the_other_twins_own_record_ambiguous() {
        let mut index = PersonIndex::default();
        index.insert(
            key(Agency::Gp, "g1"),
            person("p1"),
            &who("Novak", "Filip", "2021-06-01", "male", "B12 9QA"),
        );
        index.insert(
            key(Agency::Gp, "g2"),
            person("p2"),
            &who("Novak", "Jan", "2021-06-01", "male", "B12 9QA"),
        );
        // Health visiting's record of Filip: Filip, not a review because Jan scores high too.
        match index.resolve(
            &key(Agency::HealthVisiting, "h1"),
            &who("Novak", "Filip", "2021-06-01", "male", "B12 9QA"),
        ) {
            Resolution::Linked(c) => assert_eq!(c.person, person("p1")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn two_records_of_one_agency_are_not_joined_by_score() {
        let mut index = PersonIndex::default();
        let baby = who("Haddad", "Baby", "2026-10-18", "male", "NE4 5PL");
        index.insert(key(Agency::Midwifery, "m1"), person("p1"), &baby);
        match index.resolve(&key(Agency::Midwifery, "m2"), &baby) {
            Resolution::Review(c) => assert_eq!(c[0].hold, Some(Hold::SameAgency)),
            other => panic!("{other:?}"),
        }
        // The GP's named record of the same baby links to it.
        let named = who("Haddad", "Noah", "2026-10-18", "male", "NE4 5PL");
        assert!(matches!(
            index.resolve(&key(Agency::Gp, "g9"), &named),
            Resolution::Linked(_)
        ));
    }

    #[test]
    fn two_people_scoring_alike_go_to_review() {
        let mut index = PersonIndex::default();
        let baby = who("Haddad", "Baby", "2026-10-18", "male", "NE4 5PL");
        index.insert(key(Agency::Midwifery, "m1"), person("p1"), &baby);
        index.insert(key(Agency::Midwifery, "m2"), person("p2"), &baby);
        match index.resolve(
            &key(Agency::Gp, "g1"),
            &who("Haddad", "Noah", "2026-10-18", "male", "NE4 5PL"),
        ) {
            Resolution::Review(c) => {
                assert_eq!(c.len(), 2);
                assert!(c.iter().all(|c| c.hold == Some(Hold::Ambiguous)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_refused_pair_is_never_offered_again_and_strangers_are_new() {
        let mut index = PersonIndex::default();
        index.insert(
            key(Agency::Gp, "g1"),
            person("p1"),
            &who("Wojcik", "Ola", "2019-05-02", "female", "LS6 2AB"),
        );
        let school = who("Wojcik", "Ola", "2019-05-02", "female", "LS6 2AB");
        index.refuse(key(Agency::SchoolNursing, "s1"), person("p1"));
        assert_eq!(
            index.resolve(&key(Agency::SchoolNursing, "s1"), &school),
            Resolution::New
        );
        let stranger = who("Okafor", "Chidi", "2015-12-24", "male", "M14 5TQ");
        assert_eq!(
            index.resolve(&key(Agency::Ae, "a1"), &stranger),
            Resolution::New
        );
    }

    #[test]
    fn merges_move_records_and_removal_unfiles_them() {
        let mut index = PersonIndex::default();
        let mut a = who("Wojcik", "Ola", "2019-05-02", "female", "LS6 2AB");
        a.nhs_number = "9990000026".parse().ok();
        index.insert(key(Agency::Gp, "g1"), person("p1"), &a);
        index.insert(
            key(Agency::SchoolNursing, "s1"),
            person("p2"),
            &who("Wojcik", "Ola", "2019-05-02", "female", "LS6 2AB"),
        );
        assert_eq!(
            index.move_person(&person("p2"), &person("p1")),
            [key(Agency::SchoolNursing, "s1")]
        );
        assert_eq!(index.records_of(&person("p1")).len(), 2);
        assert_eq!(index.remove(&key(Agency::Gp, "g1")), Some(person("p1")));
        assert_eq!(index.person_with_nhs("9990000026"), None);
        assert_eq!(index.len(), 1);
        assert!(index.records_of(&person("p2")).is_empty());
    }

    #[test]
    fn searches_by_name_and_date_find_people_without_a_scan() {
        let mut index = PersonIndex::default();
        index.insert(
            key(Agency::Gp, "g1"),
            person("p1"),
            &who("Wójcik", "Ola", "2019-05-02", "female", "LS6 2AB"),
        );
        index.insert(
            key(Agency::Gp, "g2"),
            person("p2"),
            &who("Haddad", "Leo", "2022-01-15", "male", "NE4 5PL"),
        );
        let query = Identity {
            family: Some("wojcik".into()),
            given: vec!["OLA".into()],
            birth_date: Some("2019-05-02".into()),
            ..Identity::default()
        };
        let found = index.candidates(&query);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].person, person("p1"));
    }
}
