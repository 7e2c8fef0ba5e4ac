//! Checks a stored audit log: every record's hash and signature; that the
//! sealed tree (entry bundles and tiles) hashes to the signed checkpoint;
//! that every checkpoint in the history, and a witness's copy, is a prefix
//! of it (append-only); that every sealed leaf's object is present and
//! unchanged; and which records are present but not sealed yet, and since
//! when. What it cannot see: a record that was never written.

use std::collections::{BTreeMap, HashMap};

use ed25519_dalek::VerifyingKey;

use crate::checkpoint::{self, Checkpoint};
use crate::layout;
use crate::merkle::{self, CompactRange, Hash};
use crate::record::{verify_record, Keyring, Record, VerifyError};
use crate::seal::{parse_entry, read_entries};
use crate::store::{log_prefix, Blobs};
use crate::tiles;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    /// A record's content no longer matches its hash, signature or leaf.
    Modified,
    /// A sealed leaf's object is gone.
    Deleted,
    /// An object the log never held: forged, or a copy under another name.
    Inserted,
    /// An object holds another sealed record than the one its name names.
    Reordered,
    /// The tree or a checkpoint was rewritten (not append-only).
    Rewritten,
    Unreadable,
}

impl Problem {
    pub fn name(self) -> &'static str {
        match self {
            Problem::Modified => "modified",
            Problem::Deleted => "deleted",
            Problem::Inserted => "inserted",
            Problem::Reordered => "reordered",
            Problem::Rewritten => "rewritten",
            Problem::Unreadable => "unreadable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub problem: Problem,
    pub location: String,
    pub detail: String,
}

/// A record present and authentic but not in the tree yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsealed {
    pub location: String,
    pub age_ms: u64,
}

#[derive(Debug, Default)]
pub struct Report {
    pub objects: u64,
    pub records: u64,
    /// Leaves of the checkpoint checked (all, or the listed days').
    pub sealed: u64,
    pub checkpoint: Option<Checkpoint>,
    /// Checkpoints of the history found consistent with the latest.
    pub consistent_checkpoints: u64,
    pub unsealed: Vec<Unsealed>,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    fn flag(&mut self, problem: Problem, location: &str, detail: String) {
        self.findings.push(Finding {
            problem,
            location: location.to_string(),
            detail,
        });
    }
}

pub struct Options<'a> {
    pub prefix: &'a str,
    /// Keys of the records (and, the first one that opens it, of checkpoints).
    pub keys: &'a Keyring,
    pub checkpoint_keys: &'a [VerifyingKey],
    /// A checkpoint kept elsewhere (a witness copy), as its note text.
    pub witness: Option<&'a str>,
    /// Only records of these days (`YYYY-MM-DD`); the tree is checked whole.
    pub days: &'a [String],
    pub now_ms: u64,
}

fn open_checkpoint(note: &[u8], keys: &[VerifyingKey]) -> Result<Checkpoint, String> {
    let text = std::str::from_utf8(note).map_err(|_| "a checkpoint that is not text")?;
    let mut last = "no checkpoint key given".to_string();
    for key in keys {
        match checkpoint::open(text, key) {
            Ok(cp) => return Ok(cp),
            Err(e) => last = e,
        }
    }
    Err(last)
}

struct Leaf {
    name: String,
    hash: String,
}

/// Reads the tree and checks it against its checkpoints. Leaves by index.
fn check_tree(blobs: &impl Blobs, o: &Options, report: &mut Report) -> Result<Vec<Leaf>, String> {
    let log = log_prefix(o.prefix);
    let Some(note) = blobs.get(&format!("{log}checkpoint"))? else {
        if let Some(w) = o.witness {
            let size = open_checkpoint(w.as_bytes(), o.checkpoint_keys)
                .map(|c| c.size)
                .unwrap_or(0);
            report.flag(
                Problem::Rewritten,
                &format!("{log}checkpoint"),
                format!("no checkpoint, but the witness holds one of {size} records"),
            );
        }
        return Ok(Vec::new());
    };
    let latest = match open_checkpoint(&note, o.checkpoint_keys) {
        Ok(cp) => cp,
        Err(e) => {
            report.flag(Problem::Rewritten, &format!("{log}checkpoint"), e);
            return Ok(Vec::new());
        }
    };
    report.checkpoint = Some(latest.clone());
    let entries = match read_entries(blobs, o.prefix, 0, latest.size) {
        Ok(e) => e,
        Err(e) => {
            report.flag(Problem::Rewritten, &format!("{log}tile/entries"), e);
            return Ok(Vec::new());
        }
    };
    // Roots of every size a checkpoint names, as the leaves stream past.
    let mut wanted: BTreeMap<u64, Vec<(String, Checkpoint)>> = BTreeMap::new();
    for key in blobs.list(&format!("{log}checkpoints/"))? {
        let Some(bytes) = blobs.get(&key)? else {
            continue;
        };
        match open_checkpoint(&bytes, o.checkpoint_keys) {
            Ok(cp) => wanted.entry(cp.size).or_default().push((key, cp)),
            Err(e) => report.flag(Problem::Rewritten, &key, e),
        }
    }
    if let Some(w) = o.witness {
        match open_checkpoint(w.as_bytes(), o.checkpoint_keys) {
            Ok(cp) => wanted
                .entry(cp.size)
                .or_default()
                .push(("the witness's checkpoint".to_string(), cp)),
            Err(e) => report.flag(Problem::Rewritten, "the witness's checkpoint", e),
        }
    }
    let mut range = CompactRange::default();
    let mut leaves = Vec::with_capacity(entries.len());
    let mut hashes: Vec<Hash> = Vec::with_capacity(entries.len());
    let mut check = |size: u64, root: Hash, report: &mut Report| {
        for (location, cp) in wanted.remove(&size).unwrap_or_default() {
            if cp.root == root && cp.origin == latest.origin {
                report.consistent_checkpoints += 1;
            } else {
                report.flag(
                    Problem::Rewritten,
                    &location,
                    format!(
                        "the checkpoint of {size} records is not a prefix of today's log: history was rewritten"
                    ),
                );
            }
        }
    };
    check(0, merkle::empty_root(), report);
    for (i, data) in entries.iter().enumerate() {
        let hash = merkle::leaf_hash(data);
        range.push(hash);
        hashes.push(hash);
        check(range.size(), range.root(), report);
        match parse_entry(data) {
            Some((name, hash)) => leaves.push(Leaf { name, hash }),
            None => {
                report.flag(
                    Problem::Rewritten,
                    &format!("leaf {i}"),
                    "a leaf that is not a record entry".into(),
                );
                leaves.push(Leaf {
                    name: String::new(),
                    hash: String::new(),
                });
            }
        }
    }
    for (size, cps) in wanted {
        for (location, _) in cps {
            report.flag(
                Problem::Rewritten,
                &location,
                format!(
                    "names {size} records but the log holds {}: the log was truncated or rewritten",
                    latest.size
                ),
            );
        }
    }
    if range.root() != latest.root {
        report.flag(
            Problem::Rewritten,
            &format!("{log}checkpoint"),
            "the entry bundles do not hash to the checkpoint's root".into(),
        );
    }
    // The hash tiles must be the ones these leaves make.
    for tile in tiles::all_tiles(&hashes) {
        let path = format!("{log}{}", tile.path);
        if blobs.get(&path)?.as_deref() != Some(tile.bytes.as_slice()) {
            report.flag(
                Problem::Rewritten,
                &path,
                "a hash tile differs from the tree its entries make".into(),
            );
        }
    }
    Ok(leaves)
}

fn record_of(bytes: &[u8]) -> Result<Record, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8")?;
    crate::record::check_unique_keys(text.trim_end())
        .map_err(|e| format!("refused as ambiguous: {e}"))?;
    serde_json::from_str(text.trim_end()).map_err(|e| format!("not an audit record: {e}"))
}

/// Verifies everything under the prefix (the listed days' records, or all).
pub fn verify(blobs: &impl Blobs, o: &Options) -> Result<Report, String> {
    let mut report = Report::default();
    let leaves = check_tree(blobs, o, &mut report)?;
    let in_days = |name: &str| {
        o.days.is_empty()
            || layout::parse_object_key(name).is_some_and(|(day, _)| o.days.contains(&day))
    };
    let by_name: HashMap<&str, usize> = leaves
        .iter()
        .enumerate()
        .map(|(i, l)| (l.name.as_str(), i))
        .collect();
    let by_hash: HashMap<&str, usize> = leaves
        .iter()
        .enumerate()
        .map(|(i, l)| (l.hash.as_str(), i))
        .collect();

    let mut keys: Vec<String> = if o.days.is_empty() {
        blobs.list(&format!("{}dt=", o.prefix))?
    } else {
        let mut all = Vec::new();
        for day in o.days {
            all.extend(blobs.list(&layout::day_prefix(o.prefix, day))?);
        }
        all
    };
    keys.sort();
    let mut present: HashMap<String, ()> = HashMap::new();
    for key in &keys {
        let Some(name) = key.strip_prefix(o.prefix) else {
            continue;
        };
        let Some((day, id)) = layout::parse_object_key(name) else {
            continue;
        };
        report.objects += 1;
        present.insert(name.to_string(), ());
        let Some(bytes) = blobs.get(key)? else {
            continue;
        };
        let record = match record_of(&bytes) {
            Ok(r) => r,
            Err(e) => {
                // A sealed object that no longer parses was changed.
                let problem = if by_name.contains_key(name) {
                    Problem::Modified
                } else {
                    Problem::Unreadable
                };
                report.flag(problem, key, e);
                continue;
            }
        };
        report.records += 1;
        let authentic = verify_record(&record, o.keys);
        let leaf = by_name.get(name).map(|&i| (i, &leaves[i]));
        let holds_other = by_hash
            .get(record.integrity.hash.as_str())
            .filter(|&&i| leaves[i].name != name)
            .map(|&i| &leaves[i].name);
        match (leaf, authentic) {
            (Some((i, leaf)), Ok(())) if leaf.hash == record.integrity.hash => {
                if record.id() != id {
                    report.flag(
                        Problem::Modified,
                        key,
                        format!("leaf {i} holds a record with the id {}", record.id()),
                    );
                } else if crate::time::day_of_ms(record.time_ms()) != day {
                    report.flag(
                        Problem::Modified,
                        key,
                        format!("leaf {i}: the record's time is not in dt={day}"),
                    );
                }
            }
            (Some((i, _)), _) => match holds_other {
                Some(other) if authentic.is_ok() => report.flag(
                    Problem::Reordered,
                    key,
                    format!("leaf {i} holds the record sealed as {other}"),
                ),
                _ => report.flag(
                    Problem::Modified,
                    key,
                    format!(
                        "leaf {i}: {}",
                        match authentic {
                            Err(e) => e.to_string(),
                            Ok(()) => "the content is not the sealed record".into(),
                        }
                    ),
                ),
            },
            (None, Err(e)) => report.flag(
                Problem::Inserted,
                key,
                format!(
                    "record {} is not in the log and {}",
                    record.id(),
                    match e {
                        VerifyError::UnknownKey => "is signed with an unknown key".to_string(),
                        other => other.to_string(),
                    }
                ),
            ),
            (None, Ok(())) => match holds_other {
                Some(other) => report.flag(
                    Problem::Inserted,
                    key,
                    format!("a copy of the record sealed as {other}"),
                ),
                None if record.id() != id => report.flag(
                    Problem::Inserted,
                    key,
                    format!("stored under {id} but is record {}", record.id()),
                ),
                None => report.unsealed.push(Unsealed {
                    location: key.clone(),
                    age_ms: o.now_ms.saturating_sub(record.time_ms()),
                }),
            },
        }
    }
    for (i, leaf) in leaves.iter().enumerate() {
        if leaf.name.is_empty() || !in_days(&leaf.name) {
            continue;
        }
        report.sealed += 1;
        if !present.contains_key(&leaf.name) {
            report.flag(
                Problem::Deleted,
                &format!("{}{}", o.prefix, leaf.name),
                format!("sealed leaf {i} is missing from storage"),
            );
        }
    }
    report
        .findings
        .sort_by(|a, b| a.location.cmp(&b.location).then(a.problem.cmp(&b.problem)));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::records;
    use crate::record::AuditKey;
    use crate::seal::tests::{sealer, store_records, PREFIX};
    use crate::store::MemoryBlobs;

    struct Fixture {
        key: AuditKey,
        ring: Keyring,
        blobs: MemoryBlobs,
        keys: Vec<String>,
        now: u64,
    }

    fn sealed(n: u64) -> Fixture {
        let key = AuditKey::new([7; 32]);
        let mut ring = Keyring::default();
        ring.add(key.verifying_key());
        let blobs = MemoryBlobs::default();
        let recs = records(&key, n);
        let keys = store_records(&blobs, &recs);
        let now = recs[recs.len() - 1].time_ms() + 5;
        sealer(&key, now).seal(&blobs).unwrap();
        Fixture {
            key,
            ring,
            blobs,
            keys,
            now,
        }
    }

    fn run(f: &Fixture, witness: Option<&str>) -> Report {
        let cp_keys = [f.key.verifying_key()];
        verify(
            &f.blobs,
            &Options {
                prefix: PREFIX,
                keys: &f.ring,
                checkpoint_keys: &cp_keys,
                witness,
                days: &[],
                now_ms: f.now,
            },
        )
        .unwrap()
    }

    fn problems(r: &Report) -> Vec<(Problem, String)> {
        r.findings
            .iter()
            .map(|f| (f.problem, f.location.clone()))
            .collect()
    }

    #[test]
    fn an_intact_sealed_log_is_clean() {
        let f = sealed(6);
        let report = run(&f, None);
        assert!(report.is_clean(), "{:?}", report.findings);
        assert_eq!((report.records, report.sealed), (6, 6));
        assert!(report.unsealed.is_empty());
        assert_eq!(report.consistent_checkpoints, 1);
    }

    #[test]
    fn each_kind_of_tampering_is_named() {
        let f = sealed(8);
        let get = |k: &str| f.blobs.get(k).unwrap().unwrap();
        // Edit 1, delete 2, swap 3 and 4, copy 5 under a new name.
        let edited = String::from_utf8(get(&f.keys[1]))
            .unwrap()
            .replace("\"allowed\"", "\"denied\"");
        f.blobs.put(&f.keys[1], edited.as_bytes()).unwrap();
        f.blobs.delete(&f.keys[2]);
        let (three, four) = (get(&f.keys[3]), get(&f.keys[4]));
        f.blobs.put(&f.keys[3], &four).unwrap();
        f.blobs.put(&f.keys[4], &three).unwrap();
        let fake = layout::object_key(
            PREFIX,
            &layout::record_id(1_764_000_000_100, &[9; 8]),
            1_764_000_000_100,
        );
        f.blobs.put(&fake, &get(&f.keys[5])).unwrap();
        let report = run(&f, None);
        let p = problems(&report);
        assert!(p.contains(&(Problem::Modified, f.keys[1].clone())), "{p:?}");
        assert!(p.contains(&(Problem::Deleted, f.keys[2].clone())), "{p:?}");
        assert!(
            p.contains(&(Problem::Reordered, f.keys[3].clone())),
            "{p:?}"
        );
        assert!(
            p.contains(&(Problem::Reordered, f.keys[4].clone())),
            "{p:?}"
        );
        assert!(p.contains(&(Problem::Inserted, fake.clone())), "{p:?}");
        assert_eq!(p.len(), 5, "{p:?}");
    }

    #[test]
    fn a_sealed_record_with_a_repeated_key_is_modified() {
        let f = sealed(2);
        let text = String::from_utf8(f.blobs.get(&f.keys[0]).unwrap().unwrap()).unwrap();
        // A second "outcome" after the signed one: serde would read the last.
        let forged = text.replacen(
            "\"outcome\":\"allowed\"",
            "\"outcome\":\"allowed\",\"outcome\":\"denied\"",
            1,
        );
        assert_ne!(forged, text);
        f.blobs.put(&f.keys[0], forged.as_bytes()).unwrap();
        let report = run(&f, None);
        assert_eq!(
            problems(&report),
            vec![(Problem::Modified, f.keys[0].clone())]
        );
    }

    #[test]
    fn a_forged_record_is_inserted_and_a_new_one_is_unsealed() {
        let f = sealed(3);
        let forged = records(&AuditKey::new([8; 32]), 4).pop().unwrap();
        store_records(&f.blobs, &[forged]);
        let late = records(&f.key, 5).pop().unwrap();
        store_records(&f.blobs, &[late]);
        let report = run(&f, None);
        assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
        assert_eq!(report.findings[0].problem, Problem::Inserted);
        assert_eq!(report.unsealed.len(), 1);
    }

    #[test]
    fn a_rewritten_tree_is_caught_by_a_witness_and_by_the_history() {
        let f = sealed(5);
        let witness =
            String::from_utf8(f.blobs.get("audit/log/checkpoint").unwrap().unwrap()).unwrap();
        // Rewrite: drop every object and the log, re-seal only the first
        // three records with the real key.
        let kept: Vec<(String, Vec<u8>)> = f.keys[..3]
            .iter()
            .map(|k| (k.clone(), f.blobs.get(k).unwrap().unwrap()))
            .collect();
        f.blobs.objects.borrow_mut().clear();
        for (k, v) in &kept {
            f.blobs.put(k, v).unwrap();
        }
        sealer(&f.key, f.now).seal(&f.blobs).unwrap();
        let report = run(&f, None);
        assert!(
            report.is_clean(),
            "without a witness a rewrite by the key holder passes: {:?}",
            report.findings
        );
        let report = run(&f, Some(&witness));
        assert_eq!(
            problems(&report),
            vec![(Problem::Rewritten, "the witness's checkpoint".to_string())]
        );
    }

    #[test]
    fn a_truncated_tree_contradicts_its_own_history() {
        let f = sealed(5);
        // Five more records, sealed: history holds sizes 5 and 10.
        let more: Vec<Record> = records(&f.key, 10).into_iter().skip(5).collect();
        store_records(&f.blobs, &more);
        sealer(&f.key, f.now + 10).seal(&f.blobs).unwrap();
        // The bundles are cut back to five leaves; the checkpoint is left.
        let five = f
            .blobs
            .get("audit/log/tile/entries/000.p/5")
            .unwrap()
            .unwrap();
        f.blobs.delete("audit/log/tile/entries/000.p/10");
        f.blobs
            .put("audit/log/tile/entries/000.p/10", &five)
            .unwrap();
        let report = run(&f, None);
        assert!(
            report
                .findings
                .iter()
                .any(|x| x.problem == Problem::Rewritten),
            "{:?}",
            report.findings
        );
    }
}
