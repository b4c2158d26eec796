//! The FHIR JSON reader and the primitive checks: any bytes give a resource or an error, never
//! a panic, and a resource that parses writes back as JSON that parses again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = kinfold_fhir::primitive::check_resource(&value, "Resource");
    }
    if let Ok(resource) = kinfold_fhir::Resource::from_json(data) {
        let written = resource.to_json();
        let again = kinfold_fhir::Resource::from_json(written.as_bytes());
        assert!(again.is_ok(), "what Kinfold writes, it reads: {written}");
        let _ = resource.search_index();
    }
});
