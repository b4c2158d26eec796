//! Proof checking by an independent implementation: the `ct-merkle` crate's RFC 6962
//! verifier, so that Kinfold's own proof generation is checked by code it did not write.

use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use sha2::Sha256;

use crate::Hash;

fn root(hash: &Hash, size: u64) -> RootHash<Sha256> {
    RootHash::new((*hash).into(), size)
}

fn flatten(proof: &[Hash]) -> Vec<u8> {
    proof.iter().flat_map(|h| h.iter().copied()).collect()
}

/// Whether `leaf_input` is entry `index` of the tree of `size` entries with root `root_hash`.
pub fn inclusion(
    leaf_input: &[u8],
    index: u64,
    size: u64,
    root_hash: &Hash,
    proof: &[Hash],
) -> bool {
    let proof = InclusionProof::<Sha256>::from_bytes(flatten(proof));
    root(root_hash, size)
        .verify_inclusion(&leaf_input, index, &proof)
        .is_ok()
}

/// Whether the tree of `new_size` entries with `new_root` extends the tree of `old_size`
/// entries with `old_root`.
pub fn consistency(
    old_size: u64,
    old_root: &Hash,
    new_size: u64,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size == new_size {
        return old_root == new_root && proof.is_empty();
    }
    let Ok(proof) = ConsistencyProof::<Sha256>::try_from_bytes(flatten(proof)) else {
        return false;
    };
    root(new_root, new_size)
        .verify_consistency(&root(old_root, old_size), &proof)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle_test_support::{reference_leaves, reference_log};

    #[test]
    fn every_proof_we_make_verifies_and_any_flipped_bit_fails() {
        let leaves = reference_leaves();
        let log = reference_log();
        for size in 1..=8u64 {
            let root = log.root(size).unwrap();
            for index in 0..size {
                let proof = log.inclusion_proof(index, size).unwrap();
                assert!(
                    inclusion(&leaves[index as usize], index, size, &root, &proof),
                    "{index} in {size}"
                );
                for n in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[n][0] ^= 8;
                    assert!(!inclusion(
                        &leaves[index as usize],
                        index,
                        size,
                        &root,
                        &bad
                    ));
                }
                if index + 1 < size {
                    assert!(
                        !inclusion(&leaves[index as usize], index + 1, size, &root, &proof),
                        "wrong index"
                    );
                }
                let mut wrong_leaf = leaves[index as usize].clone();
                wrong_leaf.push(0);
                assert!(
                    !inclusion(&wrong_leaf, index, size, &root, &proof),
                    "altered leaf"
                );
            }
            for old in 1..=size {
                let proof = log.consistency_proof(old, size).unwrap();
                let old_root = log.root(old).unwrap();
                assert!(
                    consistency(old, &old_root, size, &root, &proof),
                    "{old} to {size}"
                );
                for n in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[n][0] ^= 16;
                    assert!(!consistency(old, &old_root, size, &root, &bad));
                }
            }
        }
    }

    #[test]
    fn proofs_over_larger_trees_verify_for_every_size() {
        let mut log = crate::MerkleLog::new();
        let inputs: Vec<Vec<u8>> = (0..300u32).map(|n| n.to_be_bytes().to_vec()).collect();
        for input in &inputs {
            log.push(crate::leaf_hash(input));
        }
        for size in [1u64, 2, 3, 7, 64, 65, 127, 255, 300] {
            let root = log.root(size).unwrap();
            for index in [0, size / 3, size - 1] {
                let proof = log.inclusion_proof(index, size).unwrap();
                assert!(inclusion(
                    &inputs[index as usize],
                    index,
                    size,
                    &root,
                    &proof
                ));
            }
            for old in [1u64, size / 2 + 1, size] {
                let old = old.min(size);
                let proof = log.consistency_proof(old, size).unwrap();
                assert!(
                    consistency(old, &log.root(old).unwrap(), size, &root, &proof),
                    "{old} to {size}"
                );
            }
        }
    }
}
