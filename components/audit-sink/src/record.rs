//! Audit records: each one signed (Ed25519) and chained to its predecessor
//! by SHA-256, so that edits, deletions, insertions and reordering show.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Where a chain stands: the last record's sequence number and hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: String,
}

impl Default for ChainHead {
    fn default() -> Self {
        ChainHead {
            seq: 0,
            hash: GENESIS_HASH.to_string(),
        }
    }
}

/// The signed part of a record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Body {
    pub v: u32,
    pub id: String,
    pub chain: String,
    pub seq: u64,
    pub time_ms: u64,
    pub prev: String,
    pub event: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    #[serde(flatten)]
    pub body: Body,
    pub hash: String,
    pub kid: String,
    pub sig: String,
}

pub struct AuditKey {
    signing: SigningKey,
    kid: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum VerifyError {
    BadHash,
    BadSignature,
    UnknownKey,
}

fn body_hash(body: &Body) -> Result<[u8; 32], serde_json::Error> {
    // Field order is fixed by the struct and `event` maps are sorted, so the
    // serialisation is canonical for our own records.
    Ok(Sha256::digest(serde_json::to_vec(body)?).into())
}

impl AuditKey {
    pub fn new(seed: [u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(&seed);
        AuditKey {
            kid: copilot_jit_common::key_id(signing.verifying_key().as_bytes()),
            signing,
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    pub fn seal(&self, body: Body) -> Result<Record, serde_json::Error> {
        let hash = body_hash(&body)?;
        let sig = self.signing.sign(&hash);
        Ok(Record {
            body,
            hash: hex::encode(hash),
            kid: self.kid.clone(),
            sig: URL_SAFE_NO_PAD.encode(sig.to_bytes()),
        })
    }
}

/// Checks one record's own hash and signature (not its place in the chain).
pub fn verify_record(record: &Record, key: &VerifyingKey, kid: &str) -> Result<(), VerifyError> {
    if record.kid != kid {
        return Err(VerifyError::UnknownKey);
    }
    let hash = body_hash(&record.body).map_err(|_| VerifyError::BadHash)?;
    if hex::encode(hash) != record.hash {
        return Err(VerifyError::BadHash);
    }
    let sig: [u8; 64] = URL_SAFE_NO_PAD
        .decode(&record.sig)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(VerifyError::BadSignature)?;
    key.verify(&hash, &Signature::from_bytes(&sig))
        .map_err(|_| VerifyError::BadSignature)
}

/// Problems found walking a chain, in order: one line per broken link.
pub fn verify_chain(records: &[Record], key: &VerifyingKey, kid: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut head = ChainHead::default();
    for record in records {
        if let Err(e) = verify_record(record, key, kid) {
            problems.push(format!(
                "record {} (seq {}): {e:?}",
                record.body.id, record.body.seq
            ));
        }
        if record.body.seq != head.seq + 1 {
            problems.push(format!(
                "record {}: seq {} follows seq {} (missing or reordered records)",
                record.body.id, record.body.seq, head.seq
            ));
        }
        if record.body.prev != head.hash {
            problems.push(format!(
                "record {} (seq {}): does not chain to its predecessor",
                record.body.id, record.body.seq
            ));
        }
        head = ChainHead {
            seq: record.body.seq,
            hash: record.hash.clone(),
        };
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(key: &AuditKey, n: u64) -> Vec<Record> {
        let mut head = ChainHead::default();
        (1..=n)
            .map(|seq| {
                let record = key
                    .seal(Body {
                        v: 1,
                        id: format!("r{seq}"),
                        chain: "main".into(),
                        seq,
                        time_ms: 1000 + seq,
                        prev: head.hash.clone(),
                        event: serde_json::json!({"outcome": "allowed", "n": seq}),
                    })
                    .unwrap();
                head = ChainHead {
                    seq,
                    hash: record.hash.clone(),
                };
                record
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies() {
        let key = AuditKey::new([3; 32]);
        let records = chain(&key, 5);
        assert!(verify_chain(&records, &key.verifying_key(), key.kid()).is_empty());
    }

    #[test]
    fn edits_deletions_and_reordering_are_detected() {
        let key = AuditKey::new([3; 32]);
        let vk = key.verifying_key();
        let mut edited = chain(&key, 4);
        edited[1].body.event = serde_json::json!({"outcome": "denied"});
        assert!(!verify_chain(&edited, &vk, key.kid()).is_empty());

        let mut deleted = chain(&key, 4);
        deleted.remove(2);
        assert!(!verify_chain(&deleted, &vk, key.kid()).is_empty());

        let mut reordered = chain(&key, 4);
        reordered.swap(1, 2);
        assert!(!verify_chain(&reordered, &vk, key.kid()).is_empty());

        let other = AuditKey::new([4; 32]);
        assert!(!verify_chain(&chain(&key, 2), &other.verifying_key(), other.kid()).is_empty());
    }

    #[test]
    fn records_round_trip_through_json() {
        let key = AuditKey::new([3; 32]);
        let record = &chain(&key, 1)[0];
        let text = serde_json::to_string(record).unwrap();
        let back: Record = serde_json::from_str(&text).unwrap();
        assert!(verify_record(&back, &key.verifying_key(), key.kid()).is_ok());
    }
}
