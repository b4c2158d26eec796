//! Kinfold's tamper-evident audit ledger, in the style of Certificate Transparency
//! (RFC 6962 / RFC 9162).
//!
//! * [`AuditRecord`]: what was done, by whom, to which records, and why, in FHIR AuditEvent
//!   vocabulary. Its canonical bytes are committed to by a SHA-256 hash.
//! * [`LeafInput`]: the exact bytes that are hashed into the tree: version, sequence number,
//!   time and the record's hash. It carries no patient data, so the log API can be opened to
//!   every agency's auditor while the records themselves stay under access control.
//! * [`MerkleLog`]: the append-only tree of leaf hashes, with roots, inclusion proofs and
//!   consistency proofs for any tree size.
//! * [`TreeHead`] and [`LedgerKey`]: Ed25519-signed tree heads in RFC 6962's serialisation.
//! * [`verify`]: proof checking by an independent implementation (the `ct-merkle` crate), for
//!   auditors, the `kinfold ledger verify` command and the tests.
//!
//! Invariant: this crate knows nothing about storage or HTTP; the gateway feeds it.

mod merkle;
mod record;
mod sth;
pub mod verify;

#[cfg(test)]
mod merkle_test_support;

pub use merkle::{EMPTY_ROOT, Hash, MerkleLog, leaf_hash, node_hash};
pub use record::{AuditAgent, AuditEntity, AuditRecord, LeafInput};
pub use sth::{LedgerKey, TreeHead};

/// Base64 (standard, padded), as the CT API uses.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard base64.
pub fn from_b64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}
