//! Test helpers shared by the unit tests: the RFC 6962 reference leaves and hex.

use crate::{MerkleLog, leaf_hash};

pub(crate) const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

pub(crate) fn unhex32(text: &str) -> [u8; 32] {
    unhex(text).try_into().expect("32 bytes")
}

pub(crate) fn reference_leaves() -> Vec<Vec<u8>> {
    LEAVES.iter().map(|l| unhex(l)).collect()
}

pub(crate) fn reference_log() -> MerkleLog {
    let mut log = MerkleLog::new();
    for leaf in reference_leaves() {
        log.push(leaf_hash(&leaf));
    }
    log
}
