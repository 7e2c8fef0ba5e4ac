//! Checks a stored audit trail: every record's signature, its place in its
//! chain, and that the storage position matches the record. Reports which
//! records were modified, deleted, inserted or reordered.

use std::collections::BTreeMap;

use crate::record::{verify_record, Keyring, Record, VerifyError};

/// One line read from storage.
pub struct Stored {
    /// Where it was found, for the report (`object key` or `file:line`).
    pub location: String,
    /// (chain, seq) the storage position promises (from the object name).
    pub slot: Option<(String, u64)>,
    pub line: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    Modified,
    Deleted,
    Inserted,
    Reordered,
    Unreadable,
}

impl Problem {
    pub fn name(self) -> &'static str {
        match self {
            Problem::Modified => "modified",
            Problem::Deleted => "deleted",
            Problem::Inserted => "inserted",
            Problem::Reordered => "reordered",
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

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainSummary {
    pub records: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub last_hash: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub records: u64,
    pub chains: BTreeMap<String, ChainSummary>,
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

struct Entry {
    location: String,
    slot_seq: Option<u64>,
    record: Record,
    signed: bool,
}

/// Verifies everything in `stored` (any order; positions come from slots).
/// A chain may start after seq 1 (a day's partition continues the day
/// before): its first record's predecessor is then not checked.
pub fn verify(stored: Vec<Stored>, keys: &Keyring) -> Report {
    let mut report = Report::default();
    let mut chains: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    for item in stored {
        let record: Record = match serde_json::from_str(&item.line) {
            Ok(r) => r,
            Err(e) => {
                report.flag(
                    Problem::Unreadable,
                    &item.location,
                    format!("not an audit record: {e}"),
                );
                continue;
            }
        };
        report.records += 1;
        let signed = match verify_record(&record, keys) {
            Ok(()) => true,
            Err(e) => {
                let problem = match e {
                    VerifyError::BadHash | VerifyError::BadSignature => Problem::Modified,
                    VerifyError::UnknownKey => Problem::Inserted,
                };
                report.flag(
                    problem,
                    &item.location,
                    format!("record {} (seq {}): {e}", record.id(), record.seq()),
                );
                false
            }
        };
        let chain = record.integrity.seal.chain.clone();
        if let Some((slot_chain, slot_seq)) = &item.slot {
            if *slot_chain != chain || *slot_seq != record.seq() {
                report.flag(
                    Problem::Reordered,
                    &item.location,
                    format!(
                        "stored as {slot_chain} seq {slot_seq} but holds {chain} seq {} ({})",
                        record.seq(),
                        record.id()
                    ),
                );
            }
        }
        chains.entry(chain).or_default().push(Entry {
            location: item.location,
            slot_seq: item.slot.map(|(_, s)| s),
            record,
            signed,
        });
    }
    for (chain, mut entries) in chains {
        // Entries without a named slot (lines of a file) are in storage
        // order: a seq lower than one already seen was moved.
        let mut highest = 0;
        for entry in entries.iter().filter(|e| e.slot_seq.is_none()) {
            let seq = entry.record.seq();
            if seq < highest {
                report.flag(
                    Problem::Reordered,
                    &entry.location,
                    format!("{chain} seq {seq} stored after seq {highest}"),
                );
            }
            highest = highest.max(seq);
        }
        // Chain continuity follows the records' own sequence numbers.
        entries.sort_by(|a, b| {
            a.record
                .seq()
                .cmp(&b.record.seq())
                .then_with(|| a.location.cmp(&b.location))
        });
        let mut summary = ChainSummary::default();
        let mut prev: Option<&Entry> = None;
        for entry in &entries {
            let seq = entry.record.seq();
            summary.records += 1;
            if prev.is_none() {
                summary.first_seq = seq;
            }
            if let Some(p) = prev {
                let pseq = p.record.seq();
                if seq == pseq {
                    let what = if entry.record.integrity.hash == p.record.integrity.hash {
                        "a second copy of"
                    } else {
                        "a different record claiming"
                    };
                    report.flag(
                        Problem::Inserted,
                        &entry.location,
                        format!("{what} {chain} seq {seq} (also at {})", p.location),
                    );
                    continue;
                }
                if seq > pseq + 1 {
                    let missing = if seq == pseq + 2 {
                        format!("seq {}", pseq + 1)
                    } else {
                        format!("seqs {}–{}", pseq + 1, seq - 1)
                    };
                    report.flag(
                        Problem::Deleted,
                        &entry.location,
                        format!("{chain} {missing} missing before seq {seq}"),
                    );
                } else if seq == pseq + 1
                    && entry.signed
                    && p.signed
                    && entry.record.integrity.seal.prev != p.record.integrity.hash
                {
                    report.flag(
                        Problem::Inserted,
                        &entry.location,
                        format!(
                            "{chain} seq {seq} ({}) does not chain to seq {pseq} ({})",
                            entry.record.id(),
                            p.record.id()
                        ),
                    );
                }
            } else if seq == 1 && entry.record.integrity.seal.prev != crate::record::GENESIS_HASH {
                report.flag(
                    Problem::Inserted,
                    &entry.location,
                    format!("{chain} seq 1 does not start from the genesis hash"),
                );
            }
            summary.last_seq = seq.max(summary.last_seq);
            summary.last_hash = entry.record.integrity.hash.clone();
            prev = Some(entry);
        }
        report.chains.insert(chain, summary);
    }
    report
        .findings
        .sort_by(|a, b| a.location.cmp(&b.location).then(a.problem.cmp(&b.problem)));
    report
}

/// Verifies and also checks the chain reaches an expected head (`seq`), so a
/// deleted tail shows too.
pub fn check_head(report: &mut Report, chain: &str, head_seq: u64) {
    let last = report.chains.get(chain).map(|c| c.last_seq).unwrap_or(0);
    if last < head_seq {
        report.flag(
            Problem::Deleted,
            chain,
            format!(
                "{chain} ends at seq {last} but its head is seq {head_seq}: the newest records are missing"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{object_key, parse_object_key};
    use crate::record::tests::chain;
    use crate::record::AuditKey;

    fn stored(records: &[Record]) -> Vec<Stored> {
        records
            .iter()
            .map(|r| {
                let key = object_key("a/", "main", r.seq(), r.time_ms());
                let (_, chain, seq) = parse_object_key(&key).unwrap();
                Stored {
                    location: key,
                    slot: Some((chain, seq)),
                    line: r.to_line().unwrap(),
                }
            })
            .collect()
    }

    fn setup() -> (AuditKey, Keyring, Vec<Stored>) {
        let key = AuditKey::new([7; 32]);
        let mut ring = Keyring::default();
        ring.add(key.verifying_key());
        let items = stored(&chain(&key, 6));
        (key, ring, items)
    }

    fn problems(report: &Report) -> Vec<(Problem, String)> {
        report
            .findings
            .iter()
            .map(|f| (f.problem, f.location.clone()))
            .collect()
    }

    #[test]
    fn an_intact_trail_is_clean() {
        let (_, ring, items) = setup();
        let report = verify(items, &ring);
        assert!(report.is_clean(), "{:?}", report.findings);
        assert_eq!(report.records, 6);
        assert_eq!(report.chains["main"].last_seq, 6);
    }

    #[test]
    fn an_edit_is_reported_at_its_object() {
        let (_, ring, mut items) = setup();
        items[2].line = items[2].line.replace("\"allowed\"", "\"denied\"");
        let report = verify(items, &ring);
        let p = problems(&report);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, Problem::Modified);
        assert!(p[0].1.ends_with("main-00000000000000000003.jsonl"));
    }

    #[test]
    fn a_deletion_names_the_missing_seq() {
        let (_, ring, mut items) = setup();
        items.remove(3);
        let report = verify(items, &ring);
        assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
        assert_eq!(report.findings[0].problem, Problem::Deleted);
        assert!(report.findings[0].detail.contains("seq 4 missing"));
    }

    #[test]
    fn swapped_objects_are_reported_as_reordered() {
        let (_, ring, mut items) = setup();
        let line = items[1].line.clone();
        items[1].line = items[4].line.clone();
        items[4].line = line;
        let report = verify(items, &ring);
        let reordered: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.problem == Problem::Reordered)
            .collect();
        assert_eq!(reordered.len(), 2, "{:?}", report.findings);
    }

    #[test]
    fn insertions_are_reported() {
        let (_, ring, mut items) = setup();
        // A record signed by another key, slotted in as seq 7.
        let forged = chain(&AuditKey::new([8; 32]), 7).pop().unwrap();
        items.extend(stored(&[forged]));
        // A second copy of seq 2 under another name.
        let mut copy = stored(&chain(&AuditKey::new([7; 32]), 2)).pop().unwrap();
        copy.location = "a/dt=x/main-copy.jsonl".into();
        copy.slot = None;
        items.push(copy);
        let report = verify(items, &ring);
        let kinds: Vec<_> = report.findings.iter().map(|f| f.problem).collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == Problem::Inserted).count(),
            2,
            "{:?}",
            report.findings
        );
    }

    #[test]
    fn a_truncated_tail_shows_against_the_head() {
        let (_, ring, mut items) = setup();
        items.truncate(4);
        let mut report = verify(items, &ring);
        assert!(report.is_clean());
        check_head(&mut report, "main", 6);
        assert_eq!(report.findings[0].problem, Problem::Deleted);
    }

    #[test]
    fn garbage_is_unreadable_not_a_crash() {
        let (_, ring, mut items) = setup();
        items[0].line = "{not json".into();
        let report = verify(items, &ring);
        assert_eq!(report.findings[0].problem, Problem::Unreadable);
    }
}
