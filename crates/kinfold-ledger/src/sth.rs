//! Signed tree heads.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::Hash;

/// A tree head: how big the log was, when, and its root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    /// Number of entries.
    pub tree_size: u64,
    /// When signed, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The Merkle root of the first `tree_size` entries.
    pub root: Hash,
}

impl TreeHead {
    /// The bytes that are signed: RFC 6962 section 3.5's `TreeHeadSignature`, i.e.
    /// `version` v1 (0x00) ‖ `signature_type` tree_hash (0x01) ‖ timestamp (8 bytes,
    /// big-endian) ‖ tree_size (8 bytes, big-endian) ‖ sha256_root_hash (32 bytes).
    pub fn signed_bytes(&self) -> [u8; 50] {
        let mut out = [0u8; 50];
        out[0] = 0;
        out[1] = 1;
        out[2..10].copy_from_slice(&self.timestamp_ms.to_be_bytes());
        out[10..18].copy_from_slice(&self.tree_size.to_be_bytes());
        out[18..].copy_from_slice(&self.root);
        out
    }

    /// Checks a signature over this head with an Ed25519 public key.
    pub fn verify(&self, public_key: &[u8; 32], signature: &[u8]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(public_key) else {
            return false;
        };
        let Ok(signature) = Signature::from_slice(signature) else {
            return false;
        };
        key.verify(&self.signed_bytes(), &signature).is_ok()
    }
}

/// The ledger's Ed25519 signing key. `Debug` never shows it.
#[derive(Clone)]
pub struct LedgerKey(SigningKey);

impl LedgerKey {
    /// A key from its 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    /// The public key, 32 bytes.
    pub fn public_key(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// Signs a tree head: a 64-byte Ed25519 signature over [`TreeHead::signed_bytes`].
    pub fn sign(&self, head: &TreeHead) -> [u8; 64] {
        self.0.sign(&head.signed_bytes()).to_bytes()
    }
}

impl fmt::Debug for LedgerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LedgerKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_head_verifies_and_any_change_breaks_it() {
        let key = LedgerKey::from_seed([7; 32]);
        let head = TreeHead {
            tree_size: 10,
            timestamp_ms: 1_700_000_000_000,
            root: [3; 32],
        };
        let signature = key.sign(&head);
        assert!(head.verify(&key.public_key(), &signature));
        let bigger = TreeHead {
            tree_size: 11,
            ..head
        };
        assert!(!bigger.verify(&key.public_key(), &signature));
        let other = LedgerKey::from_seed([8; 32]);
        assert!(!head.verify(&other.public_key(), &signature));
        assert!(!format!("{key:?}").contains('7'));
    }

    // RFC 8032 section 7.1, TEST 1: the empty message under the published key.
    #[test]
    fn ed25519_matches_rfc_8032_test_1() {
        let seed: [u8; 32] = crate::merkle_test_support::unhex32(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        );
        let key = SigningKey::from_bytes(&seed);
        assert_eq!(
            crate::merkle_test_support::hex(&key.verifying_key().to_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            crate::merkle_test_support::hex(&key.sign(b"").to_bytes()),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }
}
