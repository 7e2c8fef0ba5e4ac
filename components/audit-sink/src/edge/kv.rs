//! The key-value store's part: counters, the spool (only while storage is
//! down), the sealer's lease, and — without a bucket — the objects
//! themselves (`KvBlobs`).

use copilot_jit_audit_log::layout;
use copilot_jit_audit_log::store::Blobs;
use copilot_jit_common::cas::{update, Step, UpdateError};
use copilot_jit_common::unix_now_ms as now_ms;

use super::exports::copilot_jit::gateway::audit::AuditError;
use super::wasi;
use super::wasi::keyvalue::atomics;
use super::wasi::keyvalue::store::{self, Bucket as Store};
use crate::claim::{self, Take};
use crate::lease;
use crate::spool::{self, Mark, Slot};

copilot_jit_common::kv_cas_store!(KvCas);

/// How many records wait in the spool: +1 when spooled, −1 when shipped.
pub const SPOOL_DEPTH: &str = "audit-spool-depth";
/// The last number a spooled record took (`spool::entry_key`).
const SPOOL_NEXT: &str = "audit-spool-next";
/// Below this number every spooled record is shipped (`spool::Mark`).
const SPOOL_MARK: &str = "audit-spool-mark";
/// Most spool numbers one reader looks at.
const SPOOL_SCAN_MAX: u64 = 20_000;
/// Records neither stored nor spooled.
pub const RECORDS_LOST: &str = "audit-records-lost";
/// Unauthenticated calls whose record was not spooled (storage down).
pub const NOISE_DROPPED: &str = "audit-unauthenticated-not-spooled";
/// The oldest day of a record shipped late from the spool: the sealer
/// lists back to it.
pub const LATE_DAY: &str = "audit-late-day";
const LEASE: &str = "audit-seal-lease";
/// Objects when no bucket is configured.
const OBJECT_PREFIX: &str = "audit-object:";
/// How long each numbered list of object keys is (`KvBlobs`).
const OBJECT_COUNT_PREFIX: &str = "audit-object-count:";
/// The entries of those lists, by number.
const OBJECT_ENTRY_PREFIX: &str = "audit-object-entry:";
/// A claimed spool entry older than this is taken over.
const CLAIM_TIMEOUT_MS: u64 = 120_000;

pub fn storage(e: store::Error) -> AuditError {
    AuditError::Storage(match e {
        store::Error::NoSuchStore => "no such store".into(),
        store::Error::AccessDenied => "access denied".into(),
        store::Error::Other(m) => m,
    })
}

fn text(e: store::Error) -> String {
    match storage(e) {
        AuditError::Storage(m) => m,
        other => format!("{other:?}"),
    }
}

pub fn open() -> Result<Store, AuditError> {
    store::open("default").map_err(storage)
}

/// Stores keep counters as decimal text or as 8 little-endian bytes; a
/// small binary counter has NUL bytes, so text is tried first.
fn counter_value(v: &[u8]) -> Option<i64> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .or_else(|| <[u8; 8]>::try_from(v).ok().map(i64::from_le_bytes))
}

pub fn counter(store: &Store, key: &str) -> Result<u64, AuditError> {
    Ok(store
        .get(key)
        .map_err(storage)?
        .and_then(|v| counter_value(&v))
        .unwrap_or(0)
        .max(0) as u64)
}

pub fn add(store: &Store, key: &str, delta: i64) -> Result<(), AuditError> {
    atomics::increment(store, key, delta)
        .map(|_| ())
        .map_err(storage)
}

pub fn random_hex() -> Result<String, AuditError> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| AuditError::Storage(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// Keeps a record for the bucket: a number, the entry under it, then the
/// count.
pub fn spool(store: &Store, name: &str, line: &str) -> Result<(), AuditError> {
    let n = atomics::increment(store, SPOOL_NEXT, 1).map_err(storage)?;
    let n = u64::try_from(n).map_err(|_| AuditError::Storage(format!("spool number {n}")))?;
    store
        .set(&spool::entry_key(n), &spool::encode(name, line.as_bytes()))
        .map_err(storage)?;
    add(store, SPOOL_DEPTH, 1)
}

/// One spooled record as a reader finds it.
pub struct Spooled {
    pub key: String,
    pub slot: Slot,
    /// The stored bytes (claimed or not) of a waiting record.
    pub stored: Vec<u8>,
}

/// The spool from its low-water mark to the last number taken (at most
/// `SPOOL_SCAN_MAX`), read by number: no key listing.
pub fn spooled(store: &Store) -> Result<(Mark, Vec<Spooled>), AuditError> {
    let mark = spool_mark(store)?;
    let last = counter(store, SPOOL_NEXT)?;
    let end = last.min(mark.first().saturating_add(SPOOL_SCAN_MAX - 1));
    let mut found = Vec::new();
    for n in mark.first()..=end {
        let key = spool::entry_key(n);
        let (slot, stored) = match store.get(&key).map_err(storage)? {
            None => (Slot::Absent, Vec::new()),
            Some(v) if v.is_empty() => (Slot::Tombstone, v),
            Some(v) => (Slot::Waiting, v),
        };
        found.push(Spooled { key, slot, stored });
    }
    Ok((mark, found))
}

fn spool_mark(store: &Store) -> Result<Mark, AuditError> {
    Ok(store
        .get(SPOOL_MARK)
        .map_err(storage)?
        .and_then(|v| serde_json::from_slice(&v).ok())
        .unwrap_or_default())
}

/// Moves the low-water mark past what a reader saw shipped (never back:
/// one compare-and-swap, given up when contended), then removes the
/// tombstones below it.
pub fn advance_mark(store: &Store, seen: Mark, slots: &[Slot]) -> Result<(), AuditError> {
    let next = seen.after(slots, now_ms());
    if next == seen {
        return Ok(());
    }
    let moved = update(&KvCas(store), SPOOL_MARK, 2, |current| {
        let stored: Mark = current
            .and_then(|v| serde_json::from_slice(v).ok())
            .unwrap_or_default();
        if stored.first() > next.first() {
            return Err(());
        }
        let bytes = serde_json::to_vec(&next).map_err(|_| ())?;
        Ok(Step::Write(bytes, ()))
    });
    match moved {
        Ok(()) => {
            for n in seen.first()..next.first() {
                store.delete(&spool::entry_key(n)).map_err(storage)?;
            }
            Ok(())
        }
        Err(UpdateError::Store(e)) => Err(storage(e)),
        Err(_) => Ok(()),
    }
}

/// Claims one spool entry for `writer` (so two flushers never both ship
/// and count it); `Ok(None)` when it is gone or held by a live flusher.
pub fn claim_entry(store: &Store, key: &str, writer: &str) -> Result<Option<Vec<u8>>, AuditError> {
    enum Skip {
        Gone,
        Held,
    }
    let taken = update(&KvCas(store), key, 4, |current| {
        // Absent or a tombstone: shipped by another flusher.
        let Some(stored) = current.filter(|s| !s.is_empty()) else {
            return Err(Skip::Gone);
        };
        let entry = claim::parse(stored);
        let payload = entry.payload.to_vec();
        match claim::take(&entry, writer, now_ms(), CLAIM_TIMEOUT_MS) {
            Take::Mine => Ok(Step::AlreadyApplied(payload)),
            Take::Held => Err(Skip::Held),
            Take::Claim => Ok(Step::Write(
                claim::claimed(now_ms(), writer, &payload),
                payload,
            )),
        }
    });
    match taken {
        Ok(payload) => Ok(Some(payload)),
        Err(UpdateError::Rejected(Skip::Gone | Skip::Held)) | Err(UpdateError::Contended) => {
            Ok(None)
        }
        Err(UpdateError::Store(e)) => Err(storage(e)),
    }
}

/// Notes that a record of `day` was shipped late (read and write only
/// while the spool drains, never on a healthy call).
pub fn note_late_day(store: &Store, day: &str) -> Result<(), AuditError> {
    let current = store.get(LATE_DAY).map_err(storage)?;
    let earlier = current
        .as_deref()
        .and_then(|c| std::str::from_utf8(c).ok())
        .is_some_and(|c| c <= day);
    if !earlier {
        store.set(LATE_DAY, day.as_bytes()).map_err(storage)?;
    }
    Ok(())
}

pub fn late_day(store: &Store) -> Result<Option<String>, AuditError> {
    Ok(store
        .get(LATE_DAY)
        .map_err(storage)?
        .and_then(|v| String::from_utf8(v).ok()))
}

/// Takes the sealer's lease for `ttl_ms` (one compare-and-swap, read back
/// when reported failed). `Err(SealerBusy)` while another holds it.
pub fn take_lease(store: &Store, me: &str, ttl_ms: u64) -> Result<(), AuditError> {
    // (Spin's SQLite store swaps a missing key unconditionally, so two
    // first sealers may both get it: the sealer's own check before writing
    // catches that, `SealError::Raced`.)
    let taken = update(&KvCas(store), LEASE, 3, |current| {
        match lease::take(current, me, now_ms(), ttl_ms) {
            lease::Take::Mine => Ok(Step::AlreadyApplied(())),
            lease::Take::Claim(value) => Ok(Step::Write(value, ())),
            lease::Take::Held(holder, until) => Err(format!(
                "sealer {holder} holds the lease for {} ms more",
                until.saturating_sub(now_ms())
            )),
        }
    });
    match taken {
        Ok(()) => Ok(()),
        Err(UpdateError::Rejected(why)) => Err(AuditError::SealerBusy(why)),
        Err(UpdateError::Contended) => Err(AuditError::SealerBusy("the lease is contended".into())),
        Err(UpdateError::Store(e)) => Err(storage(e)),
    }
}

pub fn release_lease(store: &Store, me: &str) -> Result<(), AuditError> {
    store.set(LEASE, &lease::released(me)).map_err(storage)
}

/// The bucket's objects kept in KV (no bucket configured: a laptop).
///
/// wasi:keyvalue can only list every key of the store, so the day
/// partitions are indexed by number instead: a record's key is added to
/// its day's list (`{prefix}dt=DAY/`), and a day's first record adds the
/// day to the list of days (`{prefix}dt=`). Those two are what the log
/// lists (the sealer, queries); other objects are read by name.
pub struct KvBlobs<'a>(pub &'a Store);

impl KvBlobs<'_> {
    /// Appends `entry` to the numbered list `list`; its new length.
    fn append(&self, list: &str, entry: &str) -> Result<i64, String> {
        let n =
            atomics::increment(self.0, &format!("{OBJECT_COUNT_PREFIX}{list}"), 1).map_err(text)?;
        self.0
            .set(
                &format!("{OBJECT_ENTRY_PREFIX}{list}{n:012}"),
                entry.as_bytes(),
            )
            .map_err(text)?;
        Ok(n)
    }

    /// The entries of the numbered list `list`, sorted, each once (a
    /// rewritten object is listed twice).
    fn entries(&self, list: &str) -> Result<Vec<String>, String> {
        let count = counter(self.0, &format!("{OBJECT_COUNT_PREFIX}{list}"))
            .map_err(|e| format!("{e:?}"))?;
        let mut out = Vec::new();
        for n in 1..=count {
            // Absent: its writer took the number and has not written yet.
            if let Some(v) = self
                .0
                .get(&format!("{OBJECT_ENTRY_PREFIX}{list}{n:012}"))
                .map_err(text)?
            {
                out.push(String::from_utf8_lossy(&v).into_owned());
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// (the list of days, the day's list) a record key belongs in.
fn partitions(key: &str) -> Option<(&str, &str)> {
    layout::parse_object_key(key)?;
    let days_end = key.rfind("dt=")? + 3;
    let day_end = days_end + key[days_end..].find('/')? + 1;
    Some((&key[..days_end], &key[..day_end]))
}

/// `…dt=YYYY-MM-DD/`, as `layout::day_prefix` writes it.
fn is_day_partition(prefix: &str) -> bool {
    prefix
        .rfind("dt=")
        .map(|at| &prefix[at + 3..])
        .is_some_and(|day| day.len() == 11 && day.ends_with('/') && !day[..10].contains('/'))
}

impl Blobs for KvBlobs<'_> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.0.get(&format!("{OBJECT_PREFIX}{key}")).map_err(text)
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), String> {
        self.0
            .set(&format!("{OBJECT_PREFIX}{key}"), bytes)
            .map_err(text)?;
        if let Some((days, day)) = partitions(key) {
            if self.append(day, key)? == 1 {
                self.append(days, day)?;
            }
        }
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, String> {
        if prefix.ends_with("dt=") {
            let mut keys = Vec::new();
            for day in self.entries(prefix)? {
                keys.extend(self.entries(&day)?);
            }
            return Ok(keys);
        }
        if is_day_partition(prefix) {
            return self.entries(prefix);
        }
        Err(format!(
            "without a bucket the log lists day partitions only, not {prefix:?}"
        ))
    }
}
