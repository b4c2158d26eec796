//! Audit records, and the leaf input that commits to each one.

use serde::{Deserialize, Serialize};

use crate::Hash;

/// Who acted: the practitioner or system, their organisation, role and client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AuditAgent {
    /// The token's subject (practitioner or system), or `anonymous` for a refused request.
    pub who: String,
    /// Their organisation's ODS code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation: Option<String>,
    /// Their role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// One record an event concerned: a reference and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntity {
    /// The record's address (absolute URL at its agency, or a Kinfold person URN).
    pub reference: String,
    /// The FHIR resource type.
    pub resource_type: String,
    /// The agency that holds it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency: Option<String>,
    /// `disclosed`, `withheld` or `override`.
    pub disclosure: String,
}

/// One audited event, in FHIR AuditEvent vocabulary (Basic Audit Log Patterns).
///
/// Its canonical form is its JSON serialisation with the fields in the order declared here and
/// no insignificant white space; [`AuditRecord::canonical`] writes it, and the ledger commits
/// to its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When it happened (RFC 3339, UTC, milliseconds).
    pub recorded: String,
    /// AuditEvent.type (`rest` for RESTful operations, `security` for refused requests).
    pub event_type: String,
    /// AuditEvent.subtype: `read`, `search-type`, `operation`, `create`, `update`.
    pub subtype: String,
    /// AuditEvent.action: `C`, `R`, `U`, `D` or `E`.
    pub action: String,
    /// AuditEvent.outcome: `0` success, `4` minor failure, `8` serious failure.
    pub outcome: String,
    /// What was asked, without identifiers: e.g. `Patient/$everything`.
    pub query: String,
    /// Who.
    pub agent: AuditAgent,
    /// AuditEvent.purposeOfEvent, e.g. `direct-care`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The Kinfold person the event was about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// The records concerned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<AuditEntity>,
    /// The rule that decided disclosure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// An override's stated justification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// The request id, to join with service logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The network address the request came from (refused requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// How many events this record stands for, when it summarises several (refused requests
    /// from one address for one reason in one interval, from `recorded` until `until`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// The end of the interval a summary record covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

impl AuditRecord {
    /// The canonical bytes.
    pub fn canonical(&self) -> String {
        // Serialising a struct of strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// SHA-256 of the canonical bytes.
    pub fn commitment(canonical: &str) -> Hash {
        crate::merkle::sha256(&[canonical.as_bytes()])
    }
}

/// The bytes hashed into the tree for one entry: `0x01` (format version) ‖ sequence number
/// (8 bytes, big-endian) ‖ time in milliseconds since the Unix epoch (8 bytes, big-endian) ‖
/// SHA-256 of the canonical audit record (32 bytes). 49 bytes, no patient data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafInput {
    /// Position in the log, from 0.
    pub seq: u64,
    /// When the entry was appended.
    pub timestamp_ms: u64,
    /// SHA-256 of the canonical record.
    pub record_hash: Hash,
}

impl LeafInput {
    /// The format version byte.
    pub const VERSION: u8 = 1;
    /// Encoded length.
    pub const LEN: usize = 49;

    /// The encoded bytes.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[0] = Self::VERSION;
        out[1..9].copy_from_slice(&self.seq.to_be_bytes());
        out[9..17].copy_from_slice(&self.timestamp_ms.to_be_bytes());
        out[17..].copy_from_slice(&self.record_hash);
        out
    }

    /// Decodes the bytes, if they are a leaf input.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::LEN || bytes[0] != Self::VERSION {
            return None;
        }
        Some(Self {
            seq: u64::from_be_bytes(bytes[1..9].try_into().ok()?),
            timestamp_ms: u64::from_be_bytes(bytes[9..17].try_into().ok()?),
            record_hash: bytes[17..].try_into().ok()?,
        })
    }

    /// The leaf hash of this input.
    pub fn leaf_hash(&self) -> Hash {
        crate::leaf_hash(&self.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_inputs_round_trip_and_carry_no_record_text() {
        let record = AuditRecord {
            recorded: "2026-11-26T10:00:00.000Z".into(),
            event_type: "rest".into(),
            subtype: "operation".into(),
            action: "E".into(),
            outcome: "0".into(),
            query: "Patient/$everything".into(),
            agent: AuditAgent {
                who: "nurse".into(),
                ..AuditAgent::default()
            },
            purpose: None,
            patient: Some("person-1".into()),
            entities: vec![],
            rule: None,
            justification: None,
            request_id: None,
            source: None,
            count: None,
            until: None,
        };
        let canonical = record.canonical();
        let input = LeafInput {
            seq: 7,
            timestamp_ms: 1_700_000_000_000,
            record_hash: AuditRecord::commitment(&canonical),
        };
        let bytes = input.to_bytes();
        assert_eq!(LeafInput::from_bytes(&bytes), Some(input));
        assert!(!String::from_utf8_lossy(&bytes).contains("person-1"));
        let back: AuditRecord = serde_json::from_str(&canonical).unwrap();
        assert_eq!(back.canonical(), canonical, "canonical form is stable");
    }
}
