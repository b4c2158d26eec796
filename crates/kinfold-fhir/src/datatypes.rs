//! The FHIR datatypes Kinfold reads or writes.

fhir_element! {
    /// `Meta`: version, last update and where this copy came from.
    Meta {
        version_id: Option<String>,
        last_updated: Option<String>,
        /// The agency (adapter) a resource was read from, as a URI.
        source: Option<String>,
        profile: Vec<String>,
        tag: Vec<Coding>,
    }
}

fhir_element! {
    /// `Identifier`: a business identifier such as an NHS number.
    Identifier {
        r#use: Option<String>,
        system: Option<String>,
        value: Option<String>,
    }
}

fhir_element! {
    /// `Coding`: one code from one code system.
    Coding {
        system: Option<String>,
        version: Option<String>,
        code: Option<String>,
        display: Option<String>,
    }
}

fhir_element! {
    /// `CodeableConcept`: codings plus the text a person wrote or reads.
    CodeableConcept {
        coding: Vec<Coding>,
        text: Option<String>,
    }
}

fhir_element! {
    /// `Reference`: a link to another resource, by relative or absolute URL.
    Reference {
        reference: Option<String>,
        r#type: Option<String>,
        identifier: Option<Identifier>,
        display: Option<String>,
    }
}

fhir_element! {
    /// `Quantity`: a measured amount with its UCUM unit.
    Quantity {
        /// A FHIR decimal, kept as written (`72.0` stays `72.0`).
        value: Option<serde_json::Number>,
        comparator: Option<String>,
        unit: Option<String>,
        system: Option<String>,
        code: Option<String>,
    }
}

fhir_element! {
    /// `HumanName`.
    HumanName {
        r#use: Option<String>,
        text: Option<String>,
        family: Option<String>,
        given: Vec<String>,
        prefix: Vec<String>,
    }
}

fhir_element! {
    /// `Period`: a start and an end, either of which may be missing.
    Period {
        start: Option<String>,
        end: Option<String>,
    }
}

impl CodeableConcept {
    /// A concept with a single coding.
    pub fn coded(system: &str, code: &str, display: &str) -> Self {
        Self {
            coding: vec![Coding {
                system: Some(system.to_owned()),
                code: Some(code.to_owned()),
                display: Some(display.to_owned()),
                ..Coding::default()
            }],
            ..Self::default()
        }
    }

    /// A concept with only text.
    pub fn text(text: &str) -> Self {
        Self {
            text: Some(text.to_owned()),
            ..Self::default()
        }
    }

    /// Whether any coding has this system and code.
    pub fn has_code(&self, system: &str, code: &str) -> bool {
        self.coding
            .iter()
            .any(|c| c.system.as_deref() == Some(system) && c.code.as_deref() == Some(code))
    }
}

impl Reference {
    /// A relative literal reference, `Type/id`.
    pub fn to(resource_type: &str, id: &str) -> Self {
        Self {
            reference: Some(format!("{resource_type}/{id}")),
            ..Self::default()
        }
    }

    /// The logical id this reference points at, if it is a literal reference to a resource
    /// of `resource_type` (relative `Type/id`, or an absolute URL ending in `/Type/id`, with
    /// any `/_history/n` suffix ignored).
    pub fn id_of(&self, resource_type: &str) -> Option<&str> {
        let reference = self.reference.as_deref()?;
        let reference = match reference.find("/_history/") {
            Some(at) => &reference[..at],
            None => reference,
        };
        let (head, id) = reference.rsplit_once('/')?;
        let head_type = head.rsplit('/').next().unwrap_or(head);
        (head_type == resource_type && !id.is_empty()).then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_id_of_reads_relative_absolute_and_versioned_references() {
        let relative = Reference::to("Patient", "abc");
        assert_eq!(relative.id_of("Patient"), Some("abc"));
        assert_eq!(relative.id_of("Group"), None);

        let absolute = Reference {
            reference: Some("https://gp.example/fhir/Patient/xyz/_history/3".into()),
            ..Reference::default()
        };
        assert_eq!(absolute.id_of("Patient"), Some("xyz"));

        let contained = Reference {
            reference: Some("#p1".into()),
            ..Reference::default()
        };
        assert_eq!(contained.id_of("Patient"), None);
    }
}
