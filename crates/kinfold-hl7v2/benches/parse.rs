//! HL7 v2 messages parsed per second on one core.
//!
//!   cargo bench -p kinfold-hl7v2 --bench parse
//!
//! Parses the real ADT messages in `tests/conformance/hl7v2/` (every version and separator
//! style there) over and over, reading each message's type, control id, NHS number and name
//! as the A&E feed will, seven times, and prints the median rate as a Markdown row for
//! BENCHMARKS.md. Target (issue 10): 30,000 messages a second.

use std::hint::black_box;
use std::time::Instant;

use kinfold_hl7v2::{Message, decode};

fn main() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance/hl7v2");
    let mut texts: Vec<String> = std::fs::read_dir(&dir)
        .expect("conformance messages")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "hl7"))
        .map(|p| decode(&std::fs::read(p).expect("readable")).into_owned())
        .collect();
    texts.sort();
    let rounds = 20_000 / texts.len().max(1);
    let mut rates = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        let mut parsed = 0u64;
        for _ in 0..rounds {
            for text in &texts {
                let m = Message::parse(text).expect("parses");
                black_box((
                    m.kind(),
                    m.control_id(),
                    m.value("PID", 3, 1, 1, 1),
                    m.value("PID", 5, 1, 1, 1),
                ));
                parsed += 1;
            }
        }
        rates.push(parsed as f64 / started.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    let bytes: usize = texts.iter().map(String::len).sum();
    println!(
        "| HL7 v2 ADT messages parsed and read per second, one core ({} real messages, {} bytes on average; median of 7) | {median:.0} /s | ≥ 30,000 /s |",
        texts.len(),
        bytes / texts.len().max(1)
    );
}
