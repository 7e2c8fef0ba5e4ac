//! RFC 6962 (Certificate Transparency) Merkle tree hashing: leaf and node
//! hashes, the tree head of any prefix, and the proofs a client checks.
//! `MTH` in the comments is RFC 6962 §2.1's Merkle Tree Hash.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// `SHA-256(0x00 || data)`: a leaf's hash.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`: an inner node's hash.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// `MTH` of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two smaller than `n` (n ≥ 2).
fn split_point(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// `MTH` over already hashed leaves (or over the roots of equal perfect
/// subtrees, which combine the same way).
pub fn root(hashes: &[Hash]) -> Hash {
    match hashes.len() {
        0 => empty_root(),
        1 => hashes[0],
        n => {
            let k = split_point(n);
            node_hash(&root(&hashes[..k]), &root(&hashes[k..]))
        }
    }
}

/// Roots of every prefix as leaves are added, without keeping the leaves:
/// the perfect subtrees that make up the tree so far (a "compact range").
#[derive(Clone, Debug, Default)]
pub struct CompactRange {
    /// (height, hash), left to right, heights strictly decreasing.
    stack: Vec<(u32, Hash)>,
    size: u64,
}

impl CompactRange {
    pub fn push(&mut self, leaf: Hash) {
        let mut node = (0u32, leaf);
        while let Some(&(height, left)) = self.stack.last() {
            if height != node.0 {
                break;
            }
            self.stack.pop();
            node = (height + 1, node_hash(&left, &node.1));
        }
        self.stack.push(node);
        self.size += 1;
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// `MTH` of the leaves pushed so far: the subtrees folded from the right.
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return empty_root();
        };
        for (_, left) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// The audit path of leaf `index` in the tree of `leaves` (RFC 6962 §2.1.1).
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Vec<Hash> {
    fn path(leaves: &[Hash], m: usize, out: &mut Vec<Hash>) {
        let n = leaves.len();
        if n <= 1 {
            return;
        }
        let k = split_point(n);
        if m < k {
            path(&leaves[..k], m, out);
            out.push(root(&leaves[k..]));
        } else {
            path(&leaves[k..], m - k, out);
            out.push(root(&leaves[..k]));
        }
    }
    let mut out = Vec::new();
    if index < leaves.len() {
        path(leaves, index, &mut out);
    }
    out
}

/// Checks an audit path (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && r == *root
}

/// The consistency proof from the first `m` leaves to all of `leaves`
/// (RFC 6962 §2.1.2).
pub fn consistency_proof(leaves: &[Hash], m: usize) -> Vec<Hash> {
    fn subproof(leaves: &[Hash], m: usize, complete: bool, out: &mut Vec<Hash>) {
        let n = leaves.len();
        if m == n {
            if !complete {
                out.push(root(leaves));
            }
            return;
        }
        let k = split_point(n);
        if m <= k {
            subproof(&leaves[..k], m, complete, out);
            out.push(root(&leaves[k..]));
        } else {
            subproof(&leaves[k..], m - k, false, out);
            out.push(root(&leaves[..k]));
        }
    }
    let mut out = Vec::new();
    if m > 0 && m < leaves.len() {
        subproof(leaves, m, true, &mut out);
    }
    out
}

/// Checks that the tree of `size1` with `root1` is a prefix of the tree of
/// `size2` with `root2` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> bool {
    if size1 > size2 {
        return false;
    }
    if size1 == size2 {
        return proof.is_empty() && root1 == root2;
    }
    if size1 == 0 {
        return proof.is_empty();
    }
    let mut proof: Vec<Hash> = proof.to_vec();
    if size1.is_power_of_two() {
        proof.insert(0, *root1);
    }
    let Some((first, rest)) = proof.split_first() else {
        return false;
    };
    let (mut f_n, mut s_n) = (size1 - 1, size2 - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && fr == *root1 && sr == *root2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("leaf {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn known_answers_from_rfc_6962_test_vectors() {
        // The empty tree, and one leaf of no bytes (Certificate Transparency's
        // reference vectors, as used by Trillian and Tessera).
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex::encode(leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        // The eight-leaf tree of RFC 6962's reference vectors.
        let inputs: [&[u8]; 8] = [
            b"",
            &[0x00],
            &[0x10],
            &[0x20, 0x21],
            &[0x30, 0x31],
            &[0x40, 0x41, 0x42, 0x43],
            &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
            &[
                0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
                0x6e, 0x6f,
            ],
        ];
        let hashes: Vec<Hash> = inputs.iter().map(|d| leaf_hash(d)).collect();
        assert_eq!(
            hex::encode(root(&hashes)),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
        );
        assert_eq!(
            hex::encode(root(&hashes[..3])),
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"
        );
    }

    #[test]
    fn a_compact_range_gives_every_prefix_root() {
        let all = leaves(300);
        let mut range = CompactRange::default();
        for (i, leaf) in all.iter().enumerate() {
            range.push(*leaf);
            assert_eq!(range.root(), root(&all[..=i]), "size {}", i + 1);
        }
        assert_eq!(CompactRange::default().root(), empty_root());
    }

    #[test]
    fn inclusion_proofs_verify_and_wrong_ones_do_not() {
        for n in [1usize, 2, 3, 5, 8, 13, 64, 100] {
            let all = leaves(n);
            let head = root(&all);
            for i in 0..n {
                let proof = inclusion_proof(&all, i);
                assert!(verify_inclusion(&all[i], i as u64, n as u64, &proof, &head));
                let other = leaf_hash(b"not in the tree");
                assert!(!verify_inclusion(&other, i as u64, n as u64, &proof, &head));
                if n > 1 {
                    let j = (i + 1) % n;
                    assert!(!verify_inclusion(
                        &all[i], j as u64, n as u64, &proof, &head
                    ));
                }
            }
        }
    }

    #[test]
    fn consistency_proofs_verify_and_rewritten_history_does_not() {
        for n in [2usize, 3, 7, 8, 9, 31, 64, 100] {
            let all = leaves(n);
            let head = root(&all);
            for m in 1..=n {
                let proof = consistency_proof(&all, m);
                let old = root(&all[..m]);
                assert!(
                    verify_consistency(m as u64, n as u64, &proof, &old, &head),
                    "{m} → {n}"
                );
                // An old head from a different history is not consistent.
                let mut forged = all[..m].to_vec();
                forged[m - 1] = leaf_hash(b"rewritten");
                let forged_root = root(&forged);
                if m < n {
                    assert!(!verify_consistency(
                        m as u64,
                        n as u64,
                        &proof,
                        &forged_root,
                        &head
                    ));
                }
            }
        }
    }
}
