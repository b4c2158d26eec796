//! Letters (a `DocumentReference` with its text attached) keep their safeguarding section as
//! structured data: a section headed "Safeguarding" in a plain-text letter becomes an
//! Observation in the `safeguarding` category, derived from the letter, so that it is
//! searchable and travels with the child's record like any other safeguarding item (G16).
//!
//! A heading is a line of its own ending in a colon, or a line of the form `Heading: text`;
//! the section runs to the next heading or the end of the letter.

use base64::Engine as _;
use kinfold_fhir::Resource;
use serde_json::{Value, json};

use super::events::tag;
use super::extract::CATEGORY_SYSTEM;

/// The most letter text read, in bytes (a letter is a few pages).
const MAX_LETTER_BYTES: usize = 256 * 1024;

/// The Observation holding a letter's safeguarding section, if it has one.
pub(crate) fn safeguarding_section(letter: &Resource) -> Option<Resource> {
    let Resource::DocumentReference(document) = letter else {
        return None;
    };
    let id = document.id.as_deref()?;
    let subject = document.subject.clone()?;
    let text = document.content.iter().find_map(|content| {
        let attachment = content.get("attachment")?;
        let media = attachment.get("contentType")?.as_str()?;
        if !media.starts_with("text/plain") && !media.starts_with("text/markdown") {
            return None;
        }
        let data = attachment.get("data")?.as_str()?;
        if data.len() > MAX_LETTER_BYTES * 4 / 3 + 4 {
            return None;
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .ok()?;
        String::from_utf8(bytes).ok()
    })?;
    let section = section(&text, "safeguarding")?;
    let mut observation = json!({
        "resourceType": "Observation",
        "id": format!("{}-sg", id.get(..61).unwrap_or(id)),
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "safeguarding", "display": "Safeguarding"}]}],
        "code": {"coding": [{"system": CATEGORY_SYSTEM, "code": "letter-safeguarding-section", "display": "Safeguarding section of a letter"}]},
        "subject": serde_json::to_value(&subject).ok()?,
        "derivedFrom": [{"reference": format!("DocumentReference/{id}")}],
        "valueString": section,
    });
    if let Some(date) = &document.date {
        observation["effectiveDateTime"] = Value::String(date.clone());
    }
    tag(&mut observation, &["letter-safeguarding-section"]);
    Resource::from_value(observation).ok()
}

/// The text of the section with this heading (case aside), if it says anything.
fn section(text: &str, heading: &str) -> Option<String> {
    let mut lines = text.lines();
    let first = lines.by_ref().find_map(|line| {
        heading_of(line)
            .filter(|(h, _)| h.eq_ignore_ascii_case(heading))
            .map(|(_, rest)| rest.to_owned())
    })?;
    let rest = lines.take_while(|line| heading_of(line).is_none());
    let section = std::iter::once(first)
        .chain(rest.map(|l| l.trim_end().to_owned()))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned();
    (!section.is_empty()).then_some(section)
}

/// A heading line: `Heading:` alone, or `Heading: text`, the heading a few words at most.
fn heading_of(line: &str) -> Option<(&str, &str)> {
    let (head, rest) = line.trim().split_once(':')?;
    let words = head.split_whitespace().count();
    (words > 0 && words <= 4 && head.chars().next()?.is_alphabetic())
        .then(|| (head.trim(), rest.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(text: &str) -> Resource {
        Resource::from_value(json!({
            "resourceType": "DocumentReference", "id": "letter-1", "status": "current",
            "subject": {"reference": "Patient/gp-1"}, "date": "2026-05-02T10:00:00Z",
            "content": [{"attachment": {"contentType": "text/plain; charset=utf-8",
                "data": base64::engine::general_purpose::STANDARD.encode(text)}}]
        }))
        .expect("a letter")
    }

    #[test]
    fn the_safeguarding_section_becomes_an_observation_about_the_child() {
        let text = "Diagnosis: spiral fracture of the left humerus\nHistory: fell from sofa\nSafeguarding:\nInjury not consistent with the account given.\nReferred to children's social care.\nPlan: review in fracture clinic";
        let observation = safeguarding_section(&letter(text)).expect("a section");
        let value = serde_json::to_value(&observation).expect("json");
        assert_eq!(
            value["valueString"],
            "Injury not consistent with the account given.\nReferred to children's social care."
        );
        assert_eq!(value["subject"]["reference"], "Patient/gp-1");
        assert_eq!(
            value["derivedFrom"][0]["reference"],
            "DocumentReference/letter-1"
        );
        assert_eq!(value["category"][0]["coding"][0]["code"], "safeguarding");
        assert_eq!(observation.search_index().patient.as_deref(), Some("gp-1"));
    }

    #[test]
    fn an_inline_section_counts_and_a_letter_without_one_gives_nothing() {
        let inline = safeguarding_section(&letter("Safeguarding: no concerns raised\nPlan: none"))
            .expect("a section");
        assert_eq!(
            serde_json::to_value(&inline).unwrap()["valueString"],
            "no concerns raised"
        );
        assert!(safeguarding_section(&letter("Diagnosis: asthma\nPlan: inhaler")).is_none());
        assert!(
            safeguarding_section(&letter("Safeguarding:\nPlan: none")).is_none(),
            "an empty section"
        );
    }
}
