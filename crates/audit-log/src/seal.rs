//! The sealer: integrates records written since the last checkpoint into
//! the RFC 6962 tree (tiles under `{prefix}log/`), then signs a checkpoint.
//! One sealer at a time (the caller holds a lease); nothing on the request
//! path sequences anything.
//!
//! Leaves, in a deterministic order (the records' names, which sort by
//! time): each entry is `{name} {record hash}`, the name `dt=…/{id}.json`
//! relative to the prefix. Which records are already sealed is read from the
//! entry bundles, from the first leaf of the oldest day still listed; the
//! state object keeps, per day, the first leaf holding one of its records.
//! Objects written in order: tiles and entry bundles, state, the checkpoint's
//! copy in the history (`log/checkpoints/{size}`), the checkpoint.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, Checkpoint};
use crate::layout;
use crate::merkle::{self, Hash};
use crate::record::{verify_record, AuditKey, Keyring, Record};
use crate::store::{log_prefix, Blobs};
use crate::tiles::{self, Edge};

/// The sealer's own bookkeeping (not evidence: the tiles and checkpoints are).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub size: u64,
    /// Day → the first leaf index holding a record of that day.
    #[serde(default)]
    pub days: BTreeMap<String, u64>,
    /// When the last seal finished (Unix ms).
    #[serde(default)]
    pub sealed_at_ms: u64,
}

/// One leaf's data.
pub fn entry(name: &str, record_hash: &str) -> Vec<u8> {
    format!("{name} {record_hash}").into_bytes()
}

/// (name, record hash) of a leaf's data.
pub fn parse_entry(data: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(data).ok()?;
    let (name, hash) = text.split_once(' ')?;
    Some((name.to_string(), hash.to_string()))
}

pub struct Sealer<'a> {
    pub prefix: &'a str,
    /// The checkpoint's origin line: names the deployment.
    pub origin: &'a str,
    pub key: &'a AuditKey,
    pub now_ms: u64,
    /// The oldest day a record shipped late (from the spool) may be in.
    pub late_day: Option<String>,
    /// Most records one seal integrates.
    pub max: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SealReport {
    pub sealed: u64,
    pub size: u64,
    pub root: Hash,
    /// The signed checkpoint (empty when the log is still empty).
    pub checkpoint: String,
    /// Objects left out: not records of this key (named for the verifier).
    pub refused: Vec<String>,
    /// Unsealed records beyond `max`, for the next seal.
    pub remaining: u64,
}

/// What is waiting: unsealed record names (oldest first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pending {
    pub names: Vec<String>,
    pub state: State,
}

impl Pending {
    /// Age of the oldest unsealed record at `now_ms`.
    pub fn oldest_age_ms(&self, now_ms: u64) -> Option<u64> {
        self.names
            .first()
            .and_then(|n| layout::parse_object_key(n))
            .and_then(|(_, id)| layout::id_time_ms(&id))
            .map(|t| now_ms.saturating_sub(t))
    }
}

fn read_state(blobs: &impl Blobs, prefix: &str) -> Result<State, String> {
    match blobs.get(&format!("{}state.json", log_prefix(prefix)))? {
        None => Ok(State::default()),
        Some(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| format!("the sealer's state: {e}"))
        }
    }
}

/// Leaf entries `[first, size)` from the entry bundles.
pub fn read_entries(
    blobs: &impl Blobs,
    prefix: &str,
    first: u64,
    size: u64,
) -> Result<Vec<Vec<u8>>, String> {
    let log = log_prefix(prefix);
    let mut out = Vec::new();
    for (index, width, path) in tiles::bundles_of(size) {
        let end = index * tiles::WIDTH + width;
        if end <= first {
            continue;
        }
        let bytes = blobs
            .get(&format!("{log}{path}"))?
            .ok_or_else(|| format!("entry bundle {path} is missing"))?;
        let entries = tiles::decode_bundle(&bytes)?;
        if entries.len() as u64 != width {
            return Err(format!(
                "entry bundle {path} holds {} entries",
                entries.len()
            ));
        }
        let start = index * tiles::WIDTH;
        for (i, e) in entries.into_iter().enumerate() {
            if start + i as u64 >= first {
                out.push(e);
            }
        }
    }
    Ok(out)
}

/// The days a seal lists: yesterday and today, and back to `late_day`
/// (at most 31 days).
fn window(now_ms: u64, late_day: Option<&str>) -> Vec<String> {
    let today = now_ms / 86_400_000;
    let mut first = today.saturating_sub(1);
    if let Some(day) = late_day.and_then(crate::time::parse_day) {
        first = first.min(day).max(today.saturating_sub(31));
    }
    (first..=today)
        .map(|d| crate::time::day_of_ms(d * 86_400_000))
        .collect()
}

/// Unsealed records in the listed days, and the state they were found in.
pub fn pending(
    blobs: &impl Blobs,
    prefix: &str,
    now_ms: u64,
    late_day: Option<&str>,
) -> Result<Pending, String> {
    let state = read_state(blobs, prefix)?;
    let days = window(now_ms, late_day);
    let first = days
        .iter()
        .filter_map(|d| state.days.get(d).copied())
        .min()
        .unwrap_or(state.size);
    let sealed: BTreeSet<String> = read_entries(blobs, prefix, first, state.size)?
        .iter()
        .filter_map(|e| parse_entry(e).map(|(name, _)| name))
        .collect();
    let mut names = Vec::new();
    for day in &days {
        for key in blobs.list(&layout::day_prefix(prefix, day))? {
            let Some(name) = key.strip_prefix(prefix) else {
                continue;
            };
            if layout::parse_object_key(name).is_some() && !sealed.contains(name) {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    Ok(Pending { names, state })
}

/// Why a seal wrote nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum SealError {
    Storage(String),
    /// Another sealer grew the log meanwhile (two held the lease at once).
    Raced,
}

impl From<String> for SealError {
    fn from(e: String) -> Self {
        SealError::Storage(e)
    }
}

impl Sealer<'_> {
    pub fn seal(&self, blobs: &impl Blobs) -> Result<SealReport, SealError> {
        let log = log_prefix(self.prefix);
        let found = pending(blobs, self.prefix, self.now_ms, self.late_day.as_deref())?;
        let mut state = found.state;
        // A state behind the signed log (lost or rolled back) would rebuild
        // the tree from there: refuse instead of rewriting history.
        let current = blobs.get(&format!("{log}checkpoint"))?;
        let signed = current
            .as_deref()
            .and_then(|c| std::str::from_utf8(c).ok())
            .and_then(|c| checkpoint::open(c, &self.key.verifying_key()).ok());
        if let Some(cp) = &signed {
            if cp.size > state.size {
                return Err(SealError::Storage(format!(
                    "the sealer's state ({} records) is behind the signed checkpoint ({}): not sealing over it",
                    state.size, cp.size
                )));
            }
        }
        let mut ring = Keyring::default();
        ring.add(self.key.verifying_key());

        let mut report = SealReport {
            remaining: found.names.len().saturating_sub(self.max) as u64,
            ..SealReport::default()
        };
        let mut entries = Vec::new();
        for name in found.names.iter().take(self.max) {
            let key = format!("{}{name}", self.prefix);
            let Some(bytes) = blobs.get(&key)? else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            let record: Option<Record> = crate::record::check_unique_keys(&text)
                .ok()
                .and_then(|()| serde_json::from_str(&text).ok());
            let own = record.filter(|r| {
                verify_record(r, &ring).is_ok()
                    && layout::parse_object_key(name).map(|(_, id)| id).as_deref() == Some(r.id())
            });
            match own {
                Some(r) => entries.push((name.clone(), entry(name, &r.integrity.hash))),
                None => report.refused.push(name.clone()),
            }
        }

        let mut edge = Edge::load(state.size, |path| {
            blobs
                .get(&format!("{log}{path}"))?
                .ok_or_else(|| format!("tile {path} is missing"))
        })?;
        let carried = if !state.size.is_multiple_of(tiles::WIDTH) {
            let first = state.size - state.size % tiles::WIDTH;
            read_entries(blobs, self.prefix, first, state.size)?
        } else {
            Vec::new()
        };
        let datas: Vec<Vec<u8>> = entries.iter().map(|(_, e)| e.clone()).collect();
        let leaves: Vec<Hash> = datas.iter().map(|d| merkle::leaf_hash(d)).collect();
        let mut writes = tiles::bundle_writes(state.size, &carried, &datas)?;
        writes.extend(edge.append(&leaves));

        if !entries.is_empty() {
            // Another sealer (a lease that ran out) may have moved on.
            if read_state(blobs, self.prefix)?.size != state.size {
                return Err(SealError::Raced);
            }
            for w in &writes {
                blobs.put(&format!("{log}{}", w.path), &w.bytes)?;
            }
            for (i, (name, _)) in entries.iter().enumerate() {
                if let Some((day, _)) = layout::parse_object_key(name) {
                    state.days.entry(day).or_insert(state.size + i as u64);
                }
            }
            state.size = edge.size;
            state.sealed_at_ms = self.now_ms;
            let bytes =
                serde_json::to_vec(&state).map_err(|e| SealError::Storage(e.to_string()))?;
            blobs.put(&format!("{log}state.json"), &bytes)?;
        }
        report.sealed = entries.len() as u64;
        report.size = edge.size;
        report.root = edge.root();
        if edge.size == 0 {
            return Ok(report);
        }
        let cp = Checkpoint {
            origin: self.origin.to_string(),
            size: edge.size,
            root: report.root,
        };
        let up_to_date = signed.is_some_and(|c| c == cp);
        report.checkpoint = match current {
            Some(text) if up_to_date => String::from_utf8_lossy(&text).into_owned(),
            _ => {
                let note = checkpoint::sign(&cp, self.origin, self.key.signing_key());
                blobs.put(
                    &format!("{log}checkpoints/{:020}", cp.size),
                    note.as_bytes(),
                )?;
                blobs.put(&format!("{log}checkpoint"), note.as_bytes())?;
                note
            }
        };
        Ok(report)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::record::tests::records;
    use crate::store::MemoryBlobs;

    pub const PREFIX: &str = "audit/";
    pub const ORIGIN: &str = "copilot-jit.test/audit";

    pub fn store_records(blobs: &MemoryBlobs, recs: &[Record]) -> Vec<String> {
        recs.iter()
            .map(|r| {
                let key = layout::object_key(PREFIX, r.id(), r.time_ms());
                blobs.put(&key, r.to_line().unwrap().as_bytes()).unwrap();
                key
            })
            .collect()
    }

    pub fn sealer(key: &AuditKey, now_ms: u64) -> Sealer<'_> {
        Sealer {
            prefix: PREFIX,
            origin: ORIGIN,
            key,
            now_ms,
            late_day: None,
            max: 100_000,
        }
    }

    #[test]
    fn seals_new_records_once_in_name_order() {
        let key = AuditKey::new([5; 32]);
        let blobs = MemoryBlobs::default();
        let recs = records(&key, 300);
        let now = recs[299].time_ms() + 1000;
        store_records(&blobs, &recs[..200]);
        let first = sealer(&key, now).seal(&blobs).unwrap();
        assert_eq!((first.sealed, first.size), (200, 200));
        store_records(&blobs, &recs[200..]);
        let second = sealer(&key, now).seal(&blobs).unwrap();
        assert_eq!((second.sealed, second.size), (100, 300));
        let again = sealer(&key, now).seal(&blobs).unwrap();
        assert_eq!((again.sealed, again.size), (0, 300));
        assert_eq!(again.checkpoint, second.checkpoint);
        // The tree is the records' hashes in name (time) order.
        let leaves: Vec<Hash> = recs
            .iter()
            .map(|r| {
                let name = layout::record_name(r.id(), r.time_ms());
                merkle::leaf_hash(&entry(&name, &r.integrity.hash))
            })
            .collect();
        assert_eq!(second.root, merkle::root(&leaves));
        let cp = checkpoint::open(&second.checkpoint, &key.verifying_key()).unwrap();
        assert_eq!((cp.size, cp.origin.as_str()), (300, ORIGIN));
        assert!(blobs
            .get("audit/log/checkpoints/00000000000000000200")
            .unwrap()
            .is_some());
    }

    #[test]
    fn a_lost_state_does_not_reseal_over_the_signed_log() {
        let key = AuditKey::new([5; 32]);
        let blobs = MemoryBlobs::default();
        let recs = records(&key, 3);
        store_records(&blobs, &recs);
        let now = recs[2].time_ms();
        sealer(&key, now).seal(&blobs).unwrap();
        blobs.delete("audit/log/state.json");
        assert!(matches!(
            sealer(&key, now).seal(&blobs),
            Err(SealError::Storage(_))
        ));
    }

    #[test]
    fn records_of_another_key_are_refused_not_sealed() {
        let key = AuditKey::new([5; 32]);
        let blobs = MemoryBlobs::default();
        let recs = records(&key, 3);
        store_records(&blobs, &recs);
        let forged = records(&AuditKey::new([6; 32]), 4).pop().unwrap();
        store_records(&blobs, &[forged]);
        let report = sealer(&key, recs[2].time_ms()).seal(&blobs).unwrap();
        assert_eq!(report.sealed, 3);
        assert_eq!(report.refused.len(), 1);
    }

    #[test]
    fn a_late_record_of_an_earlier_day_is_sealed_when_its_day_is_named() {
        let key = AuditKey::new([5; 32]);
        let blobs = MemoryBlobs::default();
        let recs = records(&key, 2);
        store_records(&blobs, &recs[..1]);
        let three_days = 3 * 86_400_000;
        let now = recs[1].time_ms() + three_days;
        sealer(&key, recs[0].time_ms()).seal(&blobs).unwrap();
        store_records(&blobs, &recs[1..]);
        assert_eq!(sealer(&key, now).seal(&blobs).unwrap().sealed, 0);
        let mut late = sealer(&key, now);
        late.late_day = Some(crate::time::day_of_ms(recs[1].time_ms()));
        assert_eq!(late.seal(&blobs).unwrap().sealed, 1);
        assert_eq!(late.seal(&blobs).unwrap().sealed, 0, "sealed once");
    }
}
