//! The family graph: who is whose mother, father, carer, sibling or household member, each
//! edge with the record it came from and how sure it is.
//!
//! Edges are stated the way a record states them: `from` is `relation` of `to` (the mother is
//! the mother of the child; an adult named in a domestic-abuse notification about a child).
//! Siblings are not stored: two children of one parent are siblings, and the answer names
//! both parent edges as the source. An unborn child is a person of its own (with a due date)
//! whose mother edge comes from the booked pregnancy; at birth it becomes the baby.

use std::collections::{BTreeMap, HashMap};

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::PersonId;

/// What `from` is to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Relation {
    /// Mother (birth notification, RelatedPerson `MTH`, booked pregnancy).
    Mother,
    /// Father (RelatedPerson `FTH`).
    Father,
    /// A parent, unspecified (RelatedPerson `PRN`).
    Parent,
    /// Another carer named on the child's record (RelatedPerson, any other relationship).
    Carer,
    /// An adult named in a domestic-abuse notification about the child.
    NamedAdult,
    /// Lives at the same address over overlapping dates.
    HouseholdMember,
}

impl Relation {
    /// Whether the relation makes `from` a parent of `to` (so their other children are
    /// siblings of `to`).
    pub fn is_parental(self) -> bool {
        matches!(self, Self::Mother | Self::Father | Self::Parent)
    }

    /// Reads a relation from its kebab-case name.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Mother,
            Self::Father,
            Self::Parent,
            Self::Carer,
            Self::NamedAdult,
            Self::HouseholdMember,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }

    /// Its kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mother => "mother",
            Self::Father => "father",
            Self::Parent => "parent",
            Self::Carer => "carer",
            Self::NamedAdult => "named-adult",
            Self::HouseholdMember => "household-member",
        }
    }

    /// The relation an HL7 v3 RoleCode on a RelatedPerson states; `None` for a code that
    /// names no family or caring relation (a friend, a neighbour, the patient themself, an
    /// emergency contact), which makes no edge.
    pub fn from_role_code(code: &str) -> Option<Self> {
        match code {
            "MTH" | "NMTH" | "BMTH" | "GESTM" => Some(Self::Mother),
            "FTH" | "NFTH" | "BFTH" => Some(Self::Father),
            "PRN" | "NPRN" | "ADOPTP" | "ADOPTF" | "ADOPTM" => Some(Self::Parent),
            "ONESELF" | "FRND" | "NBOR" | "ROOM" | "C" | "E" | "N" | "S" | "U" | "CHILD"
            | "CHLDADOPT" | "CHLDFOST" | "CHLDINLAW" | "DAU" | "SON" | "NCHILD" | "SIB" | "BRO"
            | "SIS" | "HSIB" | "NSIB" | "SIBINLAW" => None,
            _ => Some(Self::Carer),
        }
    }
}

/// One edge of the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    /// The edge's id (stable: the source record and the two people decide it).
    pub id: String,
    /// Who the relation is of.
    pub from: PersonId,
    /// Who it is to (the child, for every relation but household).
    pub to: PersonId,
    /// What `from` is to `to`.
    pub relation: Relation,
    /// The words the record used, when it said more than the relation ("mother's partner").
    pub detail: Option<String>,
    /// The record it came from (`midwifery/RelatedPerson/mother-of-b1`), or `manual`.
    pub source: String,
    /// How sure: 1.0 for a coded relationship, less for one read from words or addresses.
    pub confidence: f64,
}

/// How a family member is related to the person asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kin {
    /// Their mother.
    Mother,
    /// Their father.
    Father,
    /// A parent.
    Parent,
    /// A carer.
    Carer,
    /// Their child.
    Child,
    /// Their unborn child.
    UnbornChild,
    /// A sibling (through a shared parent, and no parent of the same kind known to differ).
    Sibling,
    /// A half-sibling: one parent shared, and the other mother or father known to differ.
    HalfSibling,
    /// An unborn sibling (the mother's booked pregnancy).
    UnbornSibling,
    /// An adult named in a domestic-abuse notification about them or a sibling or child.
    NamedAdult,
    /// Someone living at the same address.
    HouseholdMember,
}

/// The HL7 v3 RoleCode system.
pub const ROLE_CODE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleCode";
/// Kinfold's codes for relationships v3 RoleCode has none for.
pub const KIN_SYSTEM: &str = "https://kinfold.example/fhir/CodeSystem/family-relationship";

impl Kin {
    /// `(system, code, display)`: HL7 v3 RoleCode where one fits, Kinfold's own otherwise.
    pub fn coding(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Mother => (ROLE_CODE_SYSTEM, "MTH", "mother"),
            Self::Father => (ROLE_CODE_SYSTEM, "FTH", "father"),
            Self::Parent => (ROLE_CODE_SYSTEM, "PRN", "parent"),
            Self::Child => (ROLE_CODE_SYSTEM, "CHILD", "child"),
            Self::Sibling => (ROLE_CODE_SYSTEM, "SIB", "sibling"),
            Self::HalfSibling => (ROLE_CODE_SYSTEM, "HSIB", "half-sibling"),
            Self::Carer => (KIN_SYSTEM, "carer", "carer"),
            Self::UnbornChild => (KIN_SYSTEM, "unborn-child", "unborn child"),
            Self::UnbornSibling => (KIN_SYSTEM, "unborn-sibling", "unborn sibling"),
            Self::NamedAdult => (
                KIN_SYSTEM,
                "named-adult",
                "adult named in a domestic-abuse notification",
            ),
            Self::HouseholdMember => (KIN_SYSTEM, "household-member", "household member"),
        }
    }
}

/// One member of a person's family, as the answer gives them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    /// The member.
    pub person: PersonId,
    /// How they are related to the person asked about.
    pub kin: Kin,
    /// The record's own words, when it had them.
    pub detail: Option<String>,
    /// The edges that make them family (ids).
    pub edges: Vec<String>,
    /// The records those edges came from.
    pub sources: Vec<String>,
    /// The least sure of those edges.
    pub confidence: f64,
}

/// The graph, as loaded from the gateway's store (retracted edges left out).
#[derive(Debug, Default, Clone)]
pub struct FamilyGraph {
    edges: Vec<Edge>,
    unborn: HashMap<PersonId, NaiveDate>,
}

/// How early before its due date a birth can be (22 weeks' gestation) and how late after it.
const BORN_EARLY: Duration = Duration::weeks(18);
const BORN_LATE: Duration = Duration::weeks(6);

impl FamilyGraph {
    /// A graph of these edges; `unborn` names the unborn children and their due dates.
    pub fn new(edges: Vec<Edge>, unborn: HashMap<PersonId, NaiveDate>) -> Self {
        Self { edges, unborn }
    }

    /// Every edge.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// The family of one person, one entry per member (a member related twice is given by
    /// the closest relation, with every edge as its source), ordered by relation.
    pub fn family_of(&self, person: &PersonId) -> Vec<Member> {
        let mut members: BTreeMap<PersonId, Member> = BTreeMap::new();
        let mut add = |who: &PersonId, kin: Kin, detail: Option<String>, edges: &[&Edge]| {
            if who == person {
                return;
            }
            let confidence = edges.iter().map(|e| e.confidence).fold(1.0, f64::min);
            let member = members.entry(who.clone()).or_insert_with(|| Member {
                person: who.clone(),
                kin,
                detail: detail.clone(),
                edges: Vec::new(),
                sources: Vec::new(),
                confidence,
            });
            if kin < member.kin {
                member.kin = kin;
                member.detail = detail;
                member.confidence = confidence;
            }
            for edge in edges {
                if !member.edges.contains(&edge.id) {
                    member.edges.push(edge.id.clone());
                    member.sources.push(edge.source.clone());
                }
            }
        };
        let parents: Vec<&Edge> = self
            .edges
            .iter()
            .filter(|e| e.to == *person && e.relation.is_parental())
            .collect();
        for edge in self.edges.iter().filter(|e| e.to == *person) {
            let kin = match edge.relation {
                Relation::Mother => Kin::Mother,
                Relation::Father => Kin::Father,
                Relation::Parent => Kin::Parent,
                Relation::Carer => Kin::Carer,
                Relation::NamedAdult => Kin::NamedAdult,
                Relation::HouseholdMember => Kin::HouseholdMember,
            };
            add(&edge.from, kin, edge.detail.clone(), &[edge]);
        }
        for edge in self.edges.iter().filter(|e| e.from == *person) {
            if edge.relation.is_parental() {
                let kin = if self.unborn.contains_key(&edge.to) {
                    Kin::UnbornChild
                } else {
                    Kin::Child
                };
                add(&edge.to, kin, None, &[edge]);
                self.named_adults_about(&edge.to, &[edge], &mut add);
            } else if edge.relation == Relation::HouseholdMember {
                add(&edge.to, Kin::HouseholdMember, edge.detail.clone(), &[edge]);
            }
        }
        for parent in &parents {
            for sibling in self
                .edges
                .iter()
                .filter(|e| e.from == parent.from && e.relation.is_parental() && e.to != *person)
            {
                let kin = if self.unborn.contains_key(&sibling.to) {
                    Kin::UnbornSibling
                } else if self.half(person, &sibling.to) {
                    Kin::HalfSibling
                } else {
                    Kin::Sibling
                };
                add(&sibling.to, kin, None, &[parent, sibling]);
                self.named_adults_about(&sibling.to, &[parent, sibling], &mut add);
            }
        }
        let mut members: Vec<Member> = members.into_values().collect();
        members.sort_by(|a, b| a.kin.cmp(&b.kin).then_with(|| a.person.cmp(&b.person)));
        members
    }

    /// Whether two children with a parent in common are half-siblings: each has a mother
    /// (or each a father) and they are different people.
    fn half(&self, a: &PersonId, b: &PersonId) -> bool {
        let parent = |child: &PersonId, relation: Relation| -> Vec<&PersonId> {
            self.edges
                .iter()
                .filter(|e| e.to == *child && e.relation == relation)
                .map(|e| &e.from)
                .collect()
        };
        [Relation::Mother, Relation::Father].into_iter().any(|r| {
            let (x, y) = (parent(a, r), parent(b, r));
            !x.is_empty() && !y.is_empty() && !x.iter().any(|p| y.contains(p))
        })
    }

    fn named_adults_about(
        &self,
        child: &PersonId,
        via: &[&Edge],
        add: &mut impl FnMut(&PersonId, Kin, Option<String>, &[&Edge]),
    ) {
        for named in self
            .edges
            .iter()
            .filter(|e| e.to == *child && e.relation == Relation::NamedAdult)
        {
            let mut edges = via.to_vec();
            edges.push(named);
            add(&named.from, Kin::NamedAdult, named.detail.clone(), &edges);
        }
    }

    /// The mother's unborn child a baby born on `born` is, if one is due near then (born at
    /// most 18 weeks early or 6 weeks late); the nearest due date wins.
    pub fn unborn_for_birth(&self, mother: &PersonId, born: NaiveDate) -> Option<&PersonId> {
        self.edges
            .iter()
            .filter(|e| e.from == *mother && e.relation == Relation::Mother)
            .filter_map(|e| self.unborn.get_key_value(&e.to))
            .filter(|(_, due)| born >= **due - BORN_EARLY && born <= **due + BORN_LATE)
            .min_by_key(|(_, due)| (born - **due).num_days().abs())
            .map(|(id, _)| id)
    }
}

/// Someone's address over a period, for finding households.
#[derive(Debug, Clone, PartialEq)]
pub struct Residence {
    /// Who.
    pub person: PersonId,
    /// The address folded (first line and postcode).
    pub address: String,
    /// From (open when not known).
    pub from: Option<NaiveDate>,
    /// Until (open when not known).
    pub until: Option<NaiveDate>,
    /// The record that gave it.
    pub source: String,
}

/// More people than this at one address is a hostel, a block or a mistake, not a household.
pub const MAX_HOUSEHOLD: usize = 8;

/// Household edges between people at the same address over overlapping dates (confidence
/// 0.6: an address says less than a relationship).
pub fn households(residences: &[Residence]) -> Vec<Edge> {
    let mut by_address: BTreeMap<&str, Vec<&Residence>> = BTreeMap::new();
    for residence in residences {
        by_address
            .entry(&residence.address)
            .or_default()
            .push(residence);
    }
    let mut edges = Vec::new();
    for group in by_address.values() {
        let people: std::collections::BTreeSet<&PersonId> =
            group.iter().map(|r| &r.person).collect();
        if people.len() > MAX_HOUSEHOLD {
            continue;
        }
        for (n, a) in group.iter().enumerate() {
            for b in &group[n + 1..] {
                let overlap = a.from.max(b.from) <= min_open(a.until, b.until);
                if a.person == b.person || !overlap {
                    continue;
                }
                let (from, to) = if a.person < b.person { (a, b) } else { (b, a) };
                let id = format!("household-{}-{}", from.person, to.person);
                if edges.iter().any(|e: &Edge| e.id == id) {
                    continue;
                }
                edges.push(Edge {
                    id,
                    from: from.person.clone(),
                    to: to.person.clone(),
                    relation: Relation::HouseholdMember,
                    detail: None,
                    source: from.source.clone(),
                    confidence: 0.6,
                });
            }
        }
    }
    edges
}

/// The earlier of two ends, an open end being later than any date.
fn min_open(a: Option<NaiveDate>, b: Option<NaiveDate>) -> Option<NaiveDate> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (Some(x), None) | (None, Some(x)) => Some(x),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str) -> PersonId {
        id.parse().expect("id")
    }

    fn edge(from: &str, to: &str, relation: Relation, source: &str) -> Edge {
        Edge {
            id: format!("{from}-{to}-{}", relation.as_str()),
            from: p(from),
            to: p(to),
            relation,
            detail: None,
            source: source.into(),
            confidence: 1.0,
        }
    }

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    /// Mother m with children older and newborn, a booked pregnancy u, and an adult named in
    /// a domestic-abuse notification about the older child.
    fn family() -> FamilyGraph {
        let mut named = edge(
            "adult",
            "older",
            Relation::NamedAdult,
            "health-visiting/RelatedPerson/dan-1",
        );
        named.detail = Some("mother's partner".into());
        named.confidence = 0.8;
        FamilyGraph::new(
            vec![
                edge("m", "older", Relation::Mother, "gp/RelatedPerson/rp1"),
                edge(
                    "m",
                    "newborn",
                    Relation::Mother,
                    "midwifery/RelatedPerson/mother-of-b1",
                ),
                edge("m", "u", Relation::Mother, "midwifery/EpisodeOfCare/preg-1"),
                edge("f", "older", Relation::Father, "gp/RelatedPerson/rp2"),
                named,
            ],
            HashMap::from([(p("u"), date("2027-03-01"))]),
        )
    }

    #[test]
    fn a_newborns_family_has_its_mother_sibling_unborn_sibling_and_the_named_adult() {
        let members = family().family_of(&p("newborn"));
        let kin: Vec<(&str, Kin)> = members.iter().map(|m| (m.person.as_str(), m.kin)).collect();
        assert_eq!(
            kin,
            [
                ("m", Kin::Mother),
                ("older", Kin::Sibling),
                ("u", Kin::UnbornSibling),
                ("adult", Kin::NamedAdult)
            ]
        );
        let sibling = &members[1];
        assert_eq!(
            sibling.sources,
            [
                "midwifery/RelatedPerson/mother-of-b1",
                "gp/RelatedPerson/rp1"
            ]
        );
        let adult = &members[3];
        assert_eq!(adult.detail.as_deref(), Some("mother's partner"));
        assert_eq!(adult.confidence, 0.8);
        // The older child's father is not the newborn's: he is not in its family.
        assert!(members.iter().all(|m| m.person != p("f")));
    }

    #[test]
    fn children_of_one_mother_and_different_fathers_are_half_siblings() {
        let mut graph = family();
        // Without the newborn's father known, the two are siblings (nothing says otherwise).
        assert_eq!(
            graph.family_of(&p("newborn"))[1].kin,
            Kin::Sibling,
            "older, through the mother"
        );
        graph.edges.push(edge(
            "f2",
            "newborn",
            Relation::Father,
            "gp/RelatedPerson/rp3",
        ));
        let older = graph
            .family_of(&p("newborn"))
            .into_iter()
            .find(|m| m.person == p("older"))
            .expect("the older child");
        assert_eq!(older.kin, Kin::HalfSibling);
        assert_eq!(older.kin.coding().1, "HSIB");
        // The same father for both: full siblings.
        graph.edges.push(edge(
            "f",
            "newborn",
            Relation::Father,
            "gp/RelatedPerson/rp4",
        ));
        graph.edges.retain(|e| e.from != p("f2"));
        assert_eq!(
            graph
                .family_of(&p("older"))
                .into_iter()
                .find(|m| m.person == p("newborn"))
                .map(|m| m.kin),
            Some(Kin::Sibling)
        );
    }

    #[test]
    fn a_mothers_family_has_her_children_her_unborn_child_and_the_named_adult() {
        let kin: Vec<(String, Kin)> = family()
            .family_of(&p("m"))
            .into_iter()
            .map(|m| (m.person.to_string(), m.kin))
            .collect();
        assert_eq!(
            kin,
            [
                ("newborn".to_string(), Kin::Child),
                ("older".to_string(), Kin::Child),
                ("u".to_string(), Kin::UnbornChild),
                ("adult".to_string(), Kin::NamedAdult),
            ]
        );
    }

    #[test]
    fn the_unborn_child_is_found_by_its_due_date_at_birth() {
        let graph = family();
        assert_eq!(
            graph.unborn_for_birth(&p("m"), date("2027-02-20")),
            Some(&p("u"))
        );
        assert_eq!(
            graph.unborn_for_birth(&p("m"), date("2026-11-05")),
            Some(&p("u")),
            "18 weeks early"
        );
        assert_eq!(graph.unborn_for_birth(&p("m"), date("2026-10-01")), None);
        assert_eq!(graph.unborn_for_birth(&p("m"), date("2027-05-01")), None);
        assert_eq!(graph.unborn_for_birth(&p("f"), date("2027-03-01")), None);
    }

    #[test]
    fn codes_are_v3_role_codes_where_one_fits() {
        assert_eq!(Kin::Mother.coding().1, "MTH");
        assert_eq!(Kin::Sibling.coding().1, "SIB");
        assert_eq!(Kin::UnbornSibling.coding().0, KIN_SYSTEM);
        assert_eq!(Relation::from_role_code("FTH"), Some(Relation::Father));
        assert_eq!(Relation::from_role_code("GRMTH"), Some(Relation::Carer));
        assert_eq!(Relation::from_role_code("FRND"), None);
        assert_eq!(Relation::from_role_code("SIB"), None);
        assert_eq!(Relation::parse("named-adult"), Some(Relation::NamedAdult));
        assert_eq!(Relation::parse("uncle"), None);
    }

    #[test]
    fn households_are_shared_addresses_over_overlapping_dates() {
        let at = |who: &str, address: &str, from: Option<&str>, until: Option<&str>| Residence {
            person: p(who),
            address: address.into(),
            from: from.map(date),
            until: until.map(date),
            source: format!("gp/Patient/{who}"),
        };
        let edges = households(&[
            at("a", "1 high st ne45pl", Some("2020-01-01"), None),
            at("b", "1 high st ne45pl", None, Some("2021-01-01")),
            at("c", "1 high st ne45pl", None, Some("2019-01-01")),
            at("d", "2 high st ne45pl", None, None),
        ]);
        let pairs: Vec<(&str, &str)> = edges
            .iter()
            .map(|e| (e.from.as_str(), e.to.as_str()))
            .collect();
        assert_eq!(pairs, [("a", "b"), ("b", "c")]);
        let crowd: Vec<Residence> = (0..=MAX_HOUSEHOLD)
            .map(|n| at(&format!("h{n}"), "hostel", None, None))
            .collect();
        assert!(households(&crowd).is_empty());
    }
}
