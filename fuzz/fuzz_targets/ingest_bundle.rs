//! An adapter's ingest planner on any body: a plan or an error, never a panic, and the value
//! count never undercounts what serde_json reads.
#![no_main]

use kinfold_adapter::ingest::{BundleLimits, json_values, plan_json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = BundleLimits {
        max_entries: 50,
        max_json_values: 5_000,
    };
    let _ = plan_json(data, limits);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        assert!(json_values(data) >= count(&value), "the count is never low");
    }
});

fn count(value: &serde_json::Value) -> usize {
    1 + match value {
        serde_json::Value::Array(items) => items.iter().map(count).sum(),
        serde_json::Value::Object(map) => map.values().map(count).sum(),
        _ => 0,
    }
}
