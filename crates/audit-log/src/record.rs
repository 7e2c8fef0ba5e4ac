//! One audit record: an OCSF event (its own fields at the top level, so SIEMs
//! read it as is) plus an `integrity` member with its canonical SHA-256 hash
//! and an Ed25519 signature over it. Where a record stands among the others
//! is not part of it: the sealer's Merkle tree (`log`) fixes that later, so
//! writing a record needs no shared state.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Version 2: one object per record, no chain; order and completeness come
/// from the Merkle tree the sealer builds over the records (`log`).
pub const FORMAT_VERSION: u32 = 2;

/// What the signature covers besides the event: the format and the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    pub v: u32,
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

    /// Hashes and signs `event`.
    pub fn seal(&self, event: Map<String, Value>) -> Result<Record, serde_json::Error> {
        let seal = Seal {
            v: FORMAT_VERSION,
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

    /// The key itself, for signing checkpoints.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
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

/// Refuses JSON whose objects repeat a key: a reader that takes the first
/// occurrence and one that takes the last would see different records under
/// one valid signature.
pub fn check_unique_keys(text: &str) -> Result<(), String> {
    use serde::de::{Deserialize, Deserializer, Error, MapAccess, SeqAccess, Visitor};

    struct Unique;
    impl<'de> Deserialize<'de> for Unique {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(UniqueVisitor)
        }
    }
    struct UniqueVisitor;
    impl<'de> Visitor<'de> for UniqueVisitor {
        type Value = Unique;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key.clone()) {
                    return Err(A::Error::custom(format!("the key {key:?} appears twice")));
                }
                map.next_value::<Unique>()?;
            }
            Ok(Unique)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
            while seq.next_element::<Unique>()?.is_some() {}
            Ok(Unique)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_unit<E>(self) -> Result<Unique, E> {
            Ok(Unique)
        }
    }
    serde_json::from_str::<Unique>(text)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Checks one record's own hash and signature (not its place in the log).
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

    /// `n` records a millisecond apart, with ids in time order.
    pub fn records(key: &AuditKey, n: u64) -> Vec<Record> {
        (1..=n)
            .map(|i| {
                let time = 1_764_000_000_000u64 + i;
                let event = serde_json::json!({
                    "class_uid": 6003,
                    "time": time,
                    "metadata": {"uid": crate::layout::record_id(time, &[i as u8; 8])},
                    "unmapped": {"outcome": "allowed", "n": i},
                });
                let Value::Object(event) = event else {
                    unreachable!()
                };
                key.seal(event).unwrap()
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
        let record = &records(&key, 2)[1];
        let line = record.to_line().unwrap();
        assert!(!line.contains('\n'));
        let back: Record = serde_json::from_str(&line).unwrap();
        assert_eq!(&back, record);
        assert!(back.id().starts_with("aud_"));
        assert_eq!(verify_record(&back, &ring(&key)), Ok(()));
        // The OCSF fields are at the top level of the line.
        let plain: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(plain["class_uid"], 6003);
        assert_eq!(plain["integrity"]["v"], 2);
    }

    #[test]
    fn the_hash_does_not_depend_on_key_order() {
        let key = AuditKey::new([3; 32]);
        let record = records(&key, 1).remove(0);
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
    fn a_repeated_key_is_refused_at_any_depth() {
        assert_eq!(
            check_unique_keys(r#"{"a":1,"b":[{"c":2}],"d":{"e":null}}"#),
            Ok(())
        );
        assert!(check_unique_keys(r#"{"a":1,"a":2}"#).is_err());
        assert!(check_unique_keys(r#"{"x":[{"o":"allowed","o":"denied"}]}"#).is_err());
        let key = AuditKey::new([3; 32]);
        let line = records(&key, 1)[0].to_line().unwrap();
        assert_eq!(check_unique_keys(&line), Ok(()));
    }

    #[test]
    fn edits_and_foreign_keys_fail_verification() {
        let key = AuditKey::new([3; 32]);
        let mut record = records(&key, 1).remove(0);
        record.event.insert("status".into(), Value::from("denied"));
        assert_eq!(
            verify_record(&record, &ring(&key)),
            Err(VerifyError::BadHash)
        );

        let other = AuditKey::new([4; 32]);
        let record = records(&key, 1).remove(0);
        assert_eq!(
            verify_record(&record, &ring(&other)),
            Err(VerifyError::UnknownKey)
        );
        let mut resigned = records(&other, 1).remove(0);
        resigned.integrity.seal.kid = key.kid().to_string();
        assert!(verify_record(&resigned, &ring(&key)).is_err());
    }
}
