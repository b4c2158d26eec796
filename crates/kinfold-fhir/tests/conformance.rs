//! Third-party FHIR examples (official R4 and NHS PDS) parse into Kinfold's types, survive a
//! round trip unchanged, and what Kinfold writes validates against the official R4 JSON Schema.

use std::path::PathBuf;
use std::sync::OnceLock;

use kinfold_fhir::{
    Bundle, BundleType, IssueSeverity, IssueType, OperationOutcome, Resource, ResourceType,
    capability_statement,
};
use serde_json::Value;

/// The repository's copy of the third-party examples (`tests/conformance/SOURCES.md`), or
/// another copy named by `KINFOLD_CONFORMANCE_DIR`.
fn conformance_dir() -> PathBuf {
    std::env::var_os("KINFOLD_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance")
        })
}

fn json_files(folder: &str) -> Vec<(String, Vec<u8>)> {
    let dir = conformance_dir().join(folder);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("conformance folder {} is missing: {e}", dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read(&p).expect("readable file"),
            )
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no JSON examples in {}", dir.display());
    files
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let path = conformance_dir().join("schema/fhir.schema.json");
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let schema: Value = serde_json::from_slice(&text).expect("the FHIR schema is JSON");
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft6)
            .build(&schema)
            .expect("the FHIR schema compiles")
    })
}

fn assert_valid(what: &str, value: &Value) {
    let errors: Vec<String> = validator()
        .iter_errors(value)
        .take(5)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what} does not validate: {errors:#?}");
}

fn round_trip_every_example(folder: &str) {
    for (name, bytes) in json_files(folder) {
        let original: Value = serde_json::from_slice(&bytes).expect("example is JSON");
        let parsed = Resource::from_json(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let written = serde_json::to_value(&parsed).expect("serialises");
        assert_eq!(written, original, "{name} changed in a round trip");
    }
}

#[test]
fn every_official_r4_example_parses_and_round_trips_unchanged() {
    round_trip_every_example("fhir-r4-core");
}

#[test]
fn every_nhs_pds_example_parses_and_round_trips_unchanged() {
    round_trip_every_example("nhs");
}

#[test]
fn the_modelled_examples_land_in_their_own_types() {
    for (name, bytes) in json_files("fhir-r4-core") {
        let parsed = Resource::from_json(&bytes).expect("parses");
        let declared: Value = serde_json::from_slice(&bytes).expect("json");
        let declared = declared["resourceType"].as_str().expect("resourceType");
        if declared.parse::<ResourceType>().is_ok() {
            assert!(
                parsed.resource_type().is_some(),
                "{name} fell through to Other"
            );
        }
    }
}

#[test]
fn round_tripped_official_examples_still_validate_against_the_schema() {
    for (name, bytes) in json_files("fhir-r4-core") {
        let parsed = Resource::from_json(&bytes).expect("parses");
        assert_valid(&name, &serde_json::to_value(&parsed).expect("serialises"));
    }
}

#[test]
fn the_schema_rejects_a_broken_resource_so_these_checks_can_fail() {
    let broken = serde_json::json!({"resourceType": "Observation", "status": 7});
    assert!(!validator().is_valid(&broken));
}

#[test]
fn what_kinfold_writes_validates_against_the_official_schema() {
    let capability = capability_statement(
        "Kinfold test",
        "test",
        "2026-01-01",
        ResourceType::ALL,
        &["read", "search-type"],
        &["everything"],
        &["transaction", "batch"],
    );
    assert_valid(
        "CapabilityStatement",
        &serde_json::to_value(Resource::from(capability)).expect("json"),
    );

    let outcome = OperationOutcome::single(
        IssueSeverity::Error,
        IssueType::Timeout,
        "agency 'ae' did not answer",
    )
    .at("Bundle.entry")
    .with_code("agency-timeout");
    let mut bundle = Bundle::new(BundleType::Searchset);
    bundle.total = Some(0);
    bundle.push_outcome(outcome);
    assert_valid(
        "searchset Bundle",
        &serde_json::to_value(Resource::from(bundle)).expect("json"),
    );
}

#[test]
fn every_official_and_nhs_example_passes_the_primitive_checks() {
    // The checks must not refuse real data: every third-party example is valid FHIR.
    for folder in ["fhir-r4-core", "nhs"] {
        for (name, bytes) in json_files(folder) {
            let value: Value = serde_json::from_slice(&bytes).expect("example is JSON");
            if let Err(e) = kinfold_fhir::primitive::check_resource(&value, "example") {
                panic!("{name}: {e}");
            }
        }
    }
}

#[test]
fn a_broken_official_example_fails_the_primitive_checks() {
    let (name, bytes) = json_files("fhir-r4-core")
        .into_iter()
        .find(|(name, _)| name.ends_with("patient-example.json"))
        .expect("the official Patient example");
    let mut value: Value = serde_json::from_slice(&bytes).expect("JSON");
    value["birthDate"] = Value::String("1974-02-30".into());
    let err = kinfold_fhir::primitive::check_resource(&value, "Patient").unwrap_err();
    assert_eq!(err.location(), Some("Patient.birthDate"), "{name}");
}
