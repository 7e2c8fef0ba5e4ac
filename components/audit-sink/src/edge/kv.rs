//! The key-value store's part: counters, the spool (only while storage is
//! down), the sealer's lease, and — without a bucket — the objects
//! themselves (`KvBlobs`).

use copilot_jit_audit_log::store::Blobs;
use copilot_jit_common::cas::{update, Step, UpdateError};
use copilot_jit_common::unix_now_ms as now_ms;

use super::exports::copilot_jit::gateway::audit::AuditError;
use super::wasi;
use super::wasi::keyvalue::atomics;
use super::wasi::keyvalue::store::{self, Bucket as Store};
use crate::claim::{self, Take};
use crate::lease;

copilot_jit_common::kv_cas_store!(KvCas);

/// Records waiting for the bucket, by name (`dt=…/{id}.json`).
pub const SPOOL_PREFIX: &str = "audit-spool:";
/// How many wait there: +1 when spooled, −1 when shipped.
pub const SPOOL_DEPTH: &str = "audit-spool-depth";
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

/// Keeps a record for the bucket: entry first, then the count.
pub fn spool(store: &Store, name: &str, line: &str) -> Result<(), AuditError> {
    store
        .set(&format!("{SPOOL_PREFIX}{name}"), line.as_bytes())
        .map_err(storage)?;
    add(store, SPOOL_DEPTH, 1)
}

pub fn keys_with_prefix(store: &Store, prefix: &str) -> Result<Vec<String>, AuditError> {
    let mut keys = copilot_jit_common::all_pages(|cursor| {
        let page = store.list_keys(cursor).map_err(storage)?;
        let keys = page.keys.into_iter().filter(|k| k.starts_with(prefix));
        Ok((keys.collect(), page.cursor))
    })?;
    keys.sort();
    Ok(keys)
}

/// Claims one spool entry for `writer` (so two flushers never both ship
/// and count it); `Ok(None)` when it is gone or held by a live flusher.
pub fn claim_entry(store: &Store, key: &str, writer: &str) -> Result<Option<Vec<u8>>, AuditError> {
    enum Skip {
        Gone,
        Held,
    }
    let taken = update(&KvCas(store), key, 4, |current| {
        let Some(stored) = current else {
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
pub struct KvBlobs<'a>(pub &'a Store);

impl Blobs for KvBlobs<'_> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.0.get(&format!("{OBJECT_PREFIX}{key}")).map_err(text)
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), String> {
        self.0
            .set(&format!("{OBJECT_PREFIX}{key}"), bytes)
            .map_err(text)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, String> {
        let full = format!("{OBJECT_PREFIX}{prefix}");
        Ok(keys_with_prefix(self.0, &full)
            .map_err(|e| format!("{e:?}"))?
            .into_iter()
            .filter_map(|k| k.strip_prefix(OBJECT_PREFIX).map(str::to_string))
            .collect())
    }
}
