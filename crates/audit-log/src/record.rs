//! One audit record per line: an OCSF event (its own fields at the top level,
//! so SIEMs read it as is) plus an `integrity` member that signs it (Ed25519)
//! and chains it to its predecessor (SHA-256), so that edits, deletions,
//! insertions and reordering show.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
pub const FORMAT_VERSION: u32 = 1;

/// Where a chain stands: the last record's sequence number and hash, and
/// the hashes (16-hex prefixes) of the last [`RECENT`] records, newest first,
/// so a writer whose swap was reported failed can tell whether its record
/// took its place even after others chained behind it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<String>,
}

/// Records a head remembers.
pub const RECENT: usize = 64;
const RECENT_PREFIX: usize = 16;

impl Default for ChainHead {
    fn default() -> Self {
        ChainHead {
            seq: 0,
            hash: GENESIS_HASH.to_string(),
            recent: Vec::new(),
        }
    }
}

impl ChainHead {
    /// The head once `record` (sealed on this head) is chained.
    pub fn after(&self, record: &Record) -> ChainHead {
        let hash = record.integrity.hash.clone();
        let mut recent = Vec::with_capacity(RECENT);
        recent.push(hash.get(..RECENT_PREFIX).unwrap_or(&hash).to_string());
        recent.extend(self.recent.iter().take(RECENT - 1).cloned());
        ChainHead {
            seq: record.seq(),
            hash,
            recent,
        }
    }

    /// Whether the record `seq`/`hash` is in this chain: `None` when it is
    /// older than the head remembers.
    pub fn holds(&self, seq: u64, hash: &str) -> Option<bool> {
        if seq > self.seq || seq == 0 {
            return Some(false);
        }
        let back = (self.seq - seq) as usize;
        let prefix = hash.get(..RECENT_PREFIX).unwrap_or(hash);
        self.recent.get(back).map(|h| h == prefix)
    }
}

/// The signed place of a record in its chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    pub v: u32,
    pub chain: String,
    pub seq: u64,
    pub prev: String,
    pub kid: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integrity {
    #[serde(flatten)]
    pub seal: Seal,
    /// SHA-256 over the event and the seal.
    pub hash: String,
    /// Ed25519 over the hash, base64url.
    pub sig: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    #[serde(flatten)]
    pub event: Map<String, Value>,
    pub integrity: Integrity,
}

impl Record {
    /// The record id (OCSF `metadata.uid`).
    pub fn id(&self) -> &str {
        self.event
            .get("metadata")
            .and_then(|m| m.get("uid"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// When it happened (OCSF `time`, Unix milliseconds).
    pub fn time_ms(&self) -> u64 {
        self.event.get("time").and_then(Value::as_u64).unwrap_or(0)
    }

    pub fn seq(&self) -> u64 {
        self.integrity.seal.seq
    }

    /// One JSON Lines line (without the newline).
    pub fn to_line(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum VerifyError {
    /// The content does not match its hash: the record was modified.
    BadHash,
    /// The hash is not signed by the key: modified or forged.
    BadSignature,
    /// Signed under a key id the verifier was not given.
    UnknownKey,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VerifyError::BadHash => "content does not match its hash (modified)",
            VerifyError::BadSignature => "signature does not verify (modified or forged)",
            VerifyError::UnknownKey => "signed with an unknown key id (forged or wrong key)",
        })
    }
}

/// Writes `value` as JSON with every object's keys sorted, whatever map
/// type serde_json was built with (`preserve_order` keeps insertion order,
/// and feature unification can switch it on in one build and not another).
fn write_canonical(value: &Value, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    match value {
        Value::Object(map) => write_canonical_map(map, out)?,
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out)?;
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar)?,
    }
    Ok(())
}

fn write_canonical_map(
    map: &Map<String, Value>,
    out: &mut Vec<u8>,
) -> Result<(), serde_json::Error> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    out.push(b'{');
    for (i, k) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, k)?;
        out.push(b':');
        write_canonical(&map[k], out)?;
    }
    out.push(b'}');
    Ok(())
}

/// SHA-256 of `{"event":…,"seal":…}` in canonical form.
fn record_hash(event: &Map<String, Value>, seal: &Seal) -> Result<[u8; 32], serde_json::Error> {
    let mut bytes = Vec::with_capacity(2048);
    bytes.extend_from_slice(b"{\"event\":");
    write_canonical_map(event, &mut bytes)?;
    bytes.extend_from_slice(b",\"seal\":");
    write_canonical(&serde_json::to_value(seal)?, &mut bytes)?;
    bytes.push(b'}');
    Ok(Sha256::digest(&bytes).into())
}

pub struct AuditKey {
    signing: SigningKey,
    kid: String,
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

    /// Signs `event` as record `seq` of `chain`, after `prev`.
    pub fn seal(
        &self,
        event: Map<String, Value>,
        chain: &str,
        head: &ChainHead,
    ) -> Result<Record, serde_json::Error> {
        let seal = Seal {
            v: FORMAT_VERSION,
            chain: chain.to_string(),
            seq: head.seq + 1,
            prev: head.hash.clone(),
            kid: self.kid.clone(),
        };
        let hash = record_hash(&event, &seal)?;
        let sig = self.signing.sign(&hash);
        Ok(Record {
            event,
            integrity: Integrity {
                seal,
                hash: hex::encode(hash),
                sig: URL_SAFE_NO_PAD.encode(sig.to_bytes()),
            },
        })
    }
}

/// Public keys a verifier accepts, by key id.
#[derive(Default, Clone)]
pub struct Keyring {
    keys: Vec<(String, VerifyingKey)>,
}

impl Keyring {
    pub fn add(&mut self, key: VerifyingKey) {
        let kid = copilot_jit_common::key_id(key.as_bytes());
        self.keys.push((kid, key));
    }

    /// A key from its 32 public bytes, base64url, base64 or hex.
    pub fn add_encoded(&mut self, text: &str) -> Result<(), String> {
        let bytes: [u8; 32] =
            copilot_jit_common::decode_seed(text).map_err(|e| format!("public key: {e}"))?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| "not an Ed25519 public key")?;
        self.add(key);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, key)| key)
    }
}

/// Checks one record's own hash and signature (not its place in the chain).
pub fn verify_record(record: &Record, keys: &Keyring) -> Result<(), VerifyError> {
    let key = keys
        .get(&record.integrity.seal.kid)
        .ok_or(VerifyError::UnknownKey)?;
    let hash =
        record_hash(&record.event, &record.integrity.seal).map_err(|_| VerifyError::BadHash)?;
    if hex::encode(hash) != record.integrity.hash {
        return Err(VerifyError::BadHash);
    }
    let sig: [u8; 64] = URL_SAFE_NO_PAD
        .decode(&record.integrity.sig)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(VerifyError::BadSignature)?;
    key.verify(&hash, &Signature::from_bytes(&sig))
        .map_err(|_| VerifyError::BadSignature)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn chain(key: &AuditKey, n: u64) -> Vec<Record> {
        let mut head = ChainHead::default();
        (1..=n)
            .map(|seq| {
                let event = serde_json::json!({
                    "class_uid": 6003,
                    "time": 1_764_000_000_000u64 + seq,
                    "metadata": {"uid": format!("aud_{seq}")},
                    "unmapped": {"outcome": "allowed", "n": seq},
                });
                let Value::Object(event) = event else {
                    unreachable!()
                };
                let record = key.seal(event, "main", &head).unwrap();
                head = head.after(&record);
                record
            })
            .collect()
    }

    fn ring(key: &AuditKey) -> Keyring {
        let mut ring = Keyring::default();
        ring.add(key.verifying_key());
        ring
    }

    #[test]
    fn records_round_trip_through_json_lines() {
        let key = AuditKey::new([3; 32]);
        let record = &chain(&key, 2)[1];
        let line = record.to_line().unwrap();
        assert!(!line.contains('\n'));
        let back: Record = serde_json::from_str(&line).unwrap();
        assert_eq!(&back, record);
        assert_eq!(back.id(), "aud_2");
        assert_eq!(back.seq(), 2);
        assert_eq!(verify_record(&back, &ring(&key)), Ok(()));
        // The OCSF fields are at the top level of the line.
        let plain: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(plain["class_uid"], 6003);
        assert_eq!(plain["integrity"]["seq"], 2);
    }

    #[test]
    fn the_hash_does_not_depend_on_key_order() {
        let key = AuditKey::new([3; 32]);
        let record = chain(&key, 1).remove(0);
        // The same event with its keys in reverse order verifies.
        let mut reversed = Map::new();
        for (k, v) in record.event.iter().rev() {
            reversed.insert(k.clone(), v.clone());
        }
        let shuffled = Record {
            event: reversed,
            integrity: record.integrity.clone(),
        };
        let mut ring = Keyring::default();
        ring.add(key.verifying_key());
        assert_eq!(verify_record(&shuffled, &ring), Ok(()));
        let mut out = Vec::new();
        write_canonical(
            &serde_json::json!({"b": [1, {"d": 1, "c": "é"}], "a": null}),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":null,"b":[1,{"c":"é","d":1}]}"#
        );
    }

    #[test]
    fn edits_and_foreign_keys_fail_verification() {
        let key = AuditKey::new([3; 32]);
        let mut record = chain(&key, 1).remove(0);
        record.event.insert("status".into(), Value::from("denied"));
        assert_eq!(
            verify_record(&record, &ring(&key)),
            Err(VerifyError::BadHash)
        );

        let other = AuditKey::new([4; 32]);
        let record = chain(&key, 1).remove(0);
        assert_eq!(
            verify_record(&record, &ring(&other)),
            Err(VerifyError::UnknownKey)
        );
        let mut resigned = chain(&other, 1).remove(0);
        resigned.integrity.seal.kid = key.kid().to_string();
        assert!(verify_record(&resigned, &ring(&key)).is_err());
    }

    #[test]
    fn a_head_remembers_which_records_took_their_place() {
        let key = AuditKey::new([7u8; 32]);
        let records = chain(&key, 3);
        let mut head = ChainHead::default();
        for r in &records {
            head = head.after(r);
        }
        assert_eq!(head.seq, 3);
        for r in &records {
            assert_eq!(head.holds(r.seq(), &r.integrity.hash), Some(true));
        }
        // Another record sealed for place 2 is not the one there.
        let other = key
            .seal(
                Map::new(),
                "main",
                &ChainHead {
                    seq: 1,
                    ..head.clone()
                },
            )
            .unwrap();
        assert_eq!(head.holds(2, &other.integrity.hash), Some(false));
        assert_eq!(head.holds(4, &other.integrity.hash), Some(false));
        // Too far back to tell.
        let later = ChainHead {
            seq: head.seq + RECENT as u64,
            ..head.clone()
        };
        assert_eq!(later.holds(1, &records[0].integrity.hash), None);
        let mut long = head.clone();
        for _ in 0..RECENT + 5 {
            long = long.after(&other);
        }
        assert_eq!(long.recent.len(), RECENT);
    }
}
