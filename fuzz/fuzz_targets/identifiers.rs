//! NHS numbers, ODS codes and FHIR dates from any text: parsed or refused, never a panic; an
//! NHS number that parses has ten digits and a valid check digit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(nhs) = text.parse::<kinfold_fhir::NhsNumber>() {
        assert_eq!(nhs.as_str().len(), 10);
    }
    let _ = text.parse::<kinfold_fhir::OdsCode>();
    let _ = kinfold_fhir::DateRange::parse(text);
    for kind in [
        kinfold_fhir::primitive::Primitive::Date,
        kinfold_fhir::primitive::Primitive::DateTime,
        kinfold_fhir::primitive::Primitive::Instant,
        kinfold_fhir::primitive::Primitive::Code,
        kinfold_fhir::primitive::Primitive::Id,
        kinfold_fhir::primitive::Primitive::Uri,
    ] {
        let _ = kinfold_fhir::primitive::Primitive::accepts(kind, text);
    }
});
