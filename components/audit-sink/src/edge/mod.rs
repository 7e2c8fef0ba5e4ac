//! The component's edge: Spin variables, and the `audit` interface over the
//! bucket (`bucket.rs`) and the key-value store (`kv.rs`).
//!
//! A healthy call with a bucket: `admit` reads one KV value (the spool's
//! depth), `append` writes one object and nothing to KV.

mod bucket;
mod kv;

use std::cell::Cell;
use std::time::{Duration, Instant};

use copilot_jit_audit_log::checkpoint;
use copilot_jit_audit_log::layout::{self, Bucket};
use copilot_jit_audit_log::record::{AuditKey, Record};
use copilot_jit_audit_log::seal::{self, Sealer};
use copilot_jit_audit_log::sigv4::Credentials;
use copilot_jit_audit_log::store::{log_prefix, Blobs};
use copilot_jit_common::unix_now_ms as now_ms;

copilot_jit_wasi::bindings_with_http!("audit-sink");

use copilot_jit::gateway::types::{Finding, Principal, PrincipalKind};
use exports::copilot_jit::gateway::audit::{
    Appended, AuditError, AuditEvent, AuditQuery, AuditStatus, FlushReport, Guest, SealReport,
};
use wasi::keyvalue::store::Bucket as Store;

use crate::exchange::{record_event, Actor, Client, Exchange, Found};
use crate::spool::{self, Slot};
use crate::{claim, trail};
use bucket::BucketBlobs;
use kv::{storage, KvBlobs};

/// Spooled records shipped along with a healthy append.
const CATCH_UP_PER_APPEND: u32 = 8;
/// What catching up may spend after the answer (Spin holds the instance
/// until the handler returns; 30 ms keeps its pool from running out under
/// load, measured in `spin_stores.rs`).
const CATCH_UP_BUDGET: Duration = Duration::from_millis(30);
/// The sealer's lease outlives any one seal.
const LEASE_MS: u64 = 120_000;
/// Most records one seal integrates (each is read once), well within the
/// lease; the rest waits for the next seal (`remaining`).
const SEAL_MAX: usize = 5_000;

thread_local! {
    /// The spool depth `admit` read, for this request's `append` (one
    /// component instance per request).
    static SPOOL_SEEN: Cell<u64> = const { Cell::new(0) };
}

fn variable(name: &str) -> Option<String> {
    copilot_jit_wasi::config::variable(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn config(message: String) -> AuditError {
    AuditError::Config(message)
}

struct Settings {
    key: AuditKey,
    bucket: Option<Bucket>,
    prefix: String,
    spool_max: u64,
    timeout_ms: u64,
    origin: String,
    unsealed_max_age_ms: u64,
}

fn number(name: &str, default: u64) -> Result<u64, AuditError> {
    match variable(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| config(format!("{name} must be a whole number, not {v:?}"))),
    }
}

/// The whole audit configuration, validated: whatever `append` needs.
fn settings() -> Result<Settings, AuditError> {
    let seed = variable("audit_signing_key")
        .ok_or_else(|| config("variable audit_signing_key is not set".into()))?;
    let key = copilot_jit_common::decode_seed(&seed)
        .map(AuditKey::new)
        .map_err(|e| config(format!("audit_signing_key: {e}")))?;
    let timeout_ms = number("audit_s3_timeout_ms", 3_000)?.clamp(100, 60_000);
    let spool_max = number("audit_spool_max", 10_000)?.max(1);
    let unsealed_max_age_ms = number("audit_unsealed_max_age_secs", 600)?.saturating_mul(1000);
    let bucket = match variable("audit_s3_bucket") {
        None => None,
        Some(name) => {
            let need = |var: &str| {
                variable(var)
                    .ok_or_else(|| config(format!("audit_s3_bucket is set but {var} is not")))
            };
            let credentials = Credentials {
                access_key_id: need("audit_s3_access_key_id")?,
                secret_access_key: need("audit_s3_secret_access_key")?,
                session_token: variable("audit_s3_session_token"),
            };
            let path_style = match variable("audit_s3_path_style").as_deref() {
                None | Some("true") => true,
                Some("false") => false,
                Some(_) => return Err(config("audit_s3_path_style must be true or false".into())),
            };
            let region = variable("audit_s3_region").unwrap_or_else(|| "us-east-1".into());
            Some(
                Bucket::new(
                    &need("audit_s3_endpoint")?,
                    &name,
                    path_style,
                    &region,
                    credentials,
                )
                .map_err(|e| config(format!("audit_s3_endpoint: {e}")))?,
            )
        }
    };
    let mut prefix = variable("audit_s3_prefix").unwrap_or_else(|| "copilot-jit/audit/".into());
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    let origin = match variable("audit_log_origin") {
        Some(o) => o,
        None => {
            let public = variable("public_url").unwrap_or_else(|| "copilot-jit.local".into());
            let host = public
                .split("://")
                .last()
                .unwrap_or(&public)
                .trim_end_matches('/');
            format!("{host}/audit")
        }
    };
    if origin.contains(char::is_whitespace) || origin.contains('+') {
        return Err(config(
            "audit_log_origin must not contain spaces or '+'".into(),
        ));
    }
    Ok(Settings {
        key,
        bucket,
        prefix,
        spool_max,
        timeout_ms,
        origin,
        unsealed_max_age_ms,
    })
}

impl Settings {
    /// Where the log's objects are: the bucket, or KV without one.
    fn with_blobs<T>(
        &self,
        store: &Store,
        f: impl FnOnce(&dyn DynBlobs) -> Result<T, String>,
    ) -> Result<T, AuditError> {
        match &self.bucket {
            Some(bucket) => f(&BucketBlobs {
                bucket,
                timeout_ms: self.timeout_ms,
            }),
            None => f(&KvBlobs(store)),
        }
        .map_err(AuditError::Storage)
    }
}

/// `Blobs` as a trait object (the log code is generic; the two stores meet
/// here).
trait DynBlobs {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String>;
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), String>;
    fn list(&self, prefix: &str) -> Result<Vec<String>, String>;
}

impl<T: Blobs> DynBlobs for T {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        Blobs::get(self, key)
    }
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), String> {
        Blobs::put(self, key, bytes)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, String> {
        Blobs::list(self, prefix)
    }
}

struct Dyn<'a>(&'a dyn DynBlobs);

impl Blobs for Dyn<'_> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.0.get(key)
    }
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), String> {
        self.0.put(key, bytes)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, String> {
        self.0.list(prefix)
    }
}

// ---- shipping and the spool ------------------------------------------------

fn line_of(record: &Record) -> Result<String, AuditError> {
    record
        .to_line()
        .map_err(|e| AuditError::Storage(e.to_string()))
}

/// Claims one spool entry, ships it, leaves its tombstone. Ok(false) when
/// another flusher holds it or shipped it.
fn ship_spooled(
    s: &Settings,
    bucket: &Bucket,
    store: &Store,
    key: &str,
    writer: &str,
    timeout_ms: u64,
) -> Result<bool, String> {
    let kv_text = |e: AuditError| format!("{e:?}");
    let Some(payload) = kv::claim_entry(store, key, writer).map_err(kv_text)? else {
        return Ok(false);
    };
    let Some((name, line)) = spool::decode(&payload) else {
        // Not an entry this component wrote: counted, never shipped, and
        // out of the way of the entries behind it.
        eprintln!("AUDIT RECORD LOST: spool entry {key} is unreadable");
        kv::add(store, kv::RECORDS_LOST, 1).map_err(kv_text)?;
        store.set(key, b"").map_err(|e| kv_text(storage(e)))?;
        kv::add(store, kv::SPOOL_DEPTH, -1).map_err(kv_text)?;
        return Ok(false);
    };
    let blobs = BucketBlobs { bucket, timeout_ms };
    if let Err(e) = blobs.put_new(&format!("{}{name}", s.prefix), line) {
        // Hand the entry back for the next flush.
        store.set(key, &payload).map_err(|e| kv_text(storage(e)))?;
        return Err(e);
    }
    if let Some((day, _)) = layout::parse_object_key(name) {
        kv::note_late_day(store, &day).map_err(kv_text)?;
    }
    store.set(key, b"").map_err(|e| kv_text(storage(e)))?;
    kv::add(store, kv::SPOOL_DEPTH, -1).map_err(kv_text)?;
    Ok(true)
}

/// Ships up to `max` spooled records, stopping at `deadline`.
fn flush(
    s: &Settings,
    store: &Store,
    max: u32,
    deadline: Instant,
) -> Result<FlushReport, AuditError> {
    let Some(bucket) = &s.bucket else {
        return Ok(FlushReport {
            shipped: 0,
            remaining: 0,
            error: None,
        });
    };
    let writer = kv::random_hex()?;
    let mut shipped = 0;
    let mut error = None;
    let (mark, found) = kv::spooled(store)?;
    // What each number held once this flush was done with it, in order.
    let mut slots = Vec::with_capacity(found.len());
    for entry in &found {
        if entry.slot != Slot::Waiting {
            slots.push(entry.slot);
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if shipped >= max || left.is_zero() {
            break;
        }
        let timeout_ms = s.timeout_ms.min(left.as_millis() as u64).max(1);
        match ship_spooled(s, bucket, store, &entry.key, &writer, timeout_ms) {
            Ok(true) => {
                shipped += 1;
                slots.push(Slot::Tombstone);
            }
            // Held by another flusher: still waiting as far as the mark goes.
            Ok(false) => slots.push(Slot::Waiting),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    kv::advance_mark(store, mark, &slots)?;
    Ok(FlushReport {
        shipped,
        remaining: kv::counter(store, kv::SPOOL_DEPTH)?,
        error,
    })
}

/// Stores a record: one object in the bucket (nothing in KV), else — the
/// bucket down or slow — in the spool; without a bucket, in KV. A record
/// that fits nowhere is counted and logged, never silently dropped.
/// Stores one record; `Ok(true)` when it went to the spool instead.
fn keep(s: &Settings, record: &Record, unauthenticated: bool) -> Result<bool, AuditError> {
    let line = line_of(record)?;
    let name = layout::record_name(record.id(), record.time_ms());
    let Some(bucket) = &s.bucket else {
        let store = kv::open()?;
        let key = format!("{}{name}", s.prefix);
        Blobs::put(&KvBlobs(&store), &key, line.as_bytes()).map_err(AuditError::Storage)?;
        return Ok(false);
    };
    let blobs = BucketBlobs {
        bucket,
        timeout_ms: s.timeout_ms,
    };
    let reason = match blobs.put_new(&format!("{}{name}", s.prefix), line.as_bytes()) {
        Ok(()) => {
            // Storage is back: ship some of what waited for it.
            if SPOOL_SEEN.with(Cell::get) > 0 {
                let store = kv::open()?;
                let deadline = Instant::now() + CATCH_UP_BUDGET;
                if let Ok(FlushReport { error: Some(e), .. }) =
                    flush(s, &store, CATCH_UP_PER_APPEND, deadline)
                {
                    eprintln!("audit spool not shipped: {e}");
                }
            }
            return Ok(false);
        }
        Err(reason) => reason,
    };
    let store = kv::open()?;
    if unauthenticated {
        // Noise must not fill the spool (and lock everyone out): counted.
        eprintln!("audit record {name} of an unauthenticated call not spooled: {reason}");
        kv::add(&store, kv::NOISE_DROPPED, 1)?;
        return Ok(false);
    }
    eprintln!("audit record {name} spooled: {reason}");
    if let Err(e) = kv::spool(&store, &name, &line) {
        eprintln!(
            "AUDIT RECORD LOST: {name} could be neither stored ({reason}) nor spooled ({e:?})"
        );
        kv::add(&store, kv::RECORDS_LOST, 1)?;
        return Err(e);
    }
    Ok(true)
}

// ---- records --------------------------------------------------------------

fn principal_kind(p: &Principal) -> &'static str {
    match p.kind {
        PrincipalKind::Human => "human",
        PrincipalKind::Workload => "workload",
        PrincipalKind::Agent => "agent",
    }
}

/// The WIT event as the host-tested `exchange` module takes it.
fn exchange(e: AuditEvent) -> Exchange {
    Exchange {
        actor: e.principal.map(|p| Actor {
            kind: principal_kind(&p),
            subject: p.subject,
            issuer: p.issuer,
            email: p.email,
            groups: p.groups,
        }),
        findings: e
            .findings
            .into_iter()
            .map(|f: Finding| Found {
                detector: f.detector,
                count: f.count,
                positions: f.positions,
                fingerprints: f.fingerprints,
            })
            .collect(),
        client: Client {
            editor_version: e.client.editor_version,
            plugin_version: e.client.plugin_version,
            integration_id: e.client.integration_id,
            user_agent: e.client.user_agent,
        },
        request_id: e.request_id,
        client_request_id: e.client_request_id,
        grant_id: e.grant_id,
        token_id: e.token_id,
        method: e.method,
        path: e.path,
        action: e.action,
        model: e.model,
        outcome: e.outcome,
        status: e.status,
        reason: e.reason,
        policy_ids: e.policy_ids,
        prompt: e.prompt,
        response: e.response,
        upstream_status: e.upstream_status,
        bytes_in: e.bytes_in,
        bytes_out: e.bytes_out,
        duration_ms: e.duration_ms,
        upstream_ms: e.upstream_ms,
        ttfb_ms: e.ttfb_ms,
        upstream_mode: e.upstream_mode,
        upstream_login: e.upstream_login,
    }
}

fn query(s: &Settings, store: &Store, q: &AuditQuery) -> Result<Vec<Record>, AuditError> {
    let q = trail::Query {
        grant_id: q.grant_id.clone(),
        subject: q.subject.clone(),
        since: q.since,
        until: q.until,
        limit: q.limit,
    };
    let prefixes = match trail::days_to_list(&q, now_ms()) {
        Some(days) => days
            .iter()
            .map(|d| layout::day_prefix(&s.prefix, d))
            .collect(),
        None => vec![format!("{}dt=", s.prefix)],
    };
    let mut records = Vec::new();
    s.with_blobs(store, |blobs| {
        for prefix in &prefixes {
            for key in blobs.list(prefix)? {
                if layout::parse_object_key(&key).is_none() {
                    continue;
                }
                if let Some(bytes) = blobs.get(&key)? {
                    trail::parse_lines(&bytes, &mut records)?;
                }
            }
        }
        Ok(())
    })?;
    if s.bucket.is_some() {
        // Records still waiting in the spool are part of the trail too.
        let (_, found) = kv::spooled(store)?;
        for entry in found.iter().filter(|e| e.slot == Slot::Waiting) {
            if let Some((_, line)) = spool::decode(claim::parse(&entry.stored).payload) {
                trail::parse_lines(line, &mut records).map_err(AuditError::Storage)?;
            }
        }
    }
    Ok(trail::select(records, &q))
}

fn new_record_id(time_ms: u64) -> Result<String, AuditError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| AuditError::Storage(e.to_string()))?;
    Ok(layout::record_id(time_ms, &bytes))
}

struct Component;

impl Guest for Component {
    fn admit() -> Result<(), AuditError> {
        // Everything `append` will need, checked before the call is served.
        let s = settings()?;
        if s.bucket.is_none() {
            return Ok(());
        }
        let store = kv::open()?;
        let depth = kv::counter(&store, kv::SPOOL_DEPTH)?;
        SPOOL_SEEN.with(|seen| seen.set(depth));
        if depth >= s.spool_max {
            return Err(AuditError::SpoolFull(depth));
        }
        Ok(())
    }

    fn append(e: AuditEvent) -> Result<Appended, AuditError> {
        let s = settings()?;
        let unauthenticated = e.principal.is_none();
        let time_ms = now_ms();
        let id = new_record_id(time_ms)?;
        // Retries (same client request id) are linked when the trail is
        // read, not here: detecting them would need shared state per call.
        let event = record_event(exchange(e), id.clone(), time_ms);
        let record = s
            .key
            .seal(event)
            .map_err(|e| AuditError::Storage(e.to_string()))?;
        let spooled = keep(&s, &record, unauthenticated)?;
        Ok(Appended { id, spooled })
    }

    fn query(q: AuditQuery) -> Result<Vec<String>, AuditError> {
        let s = settings()?;
        let store = kv::open()?;
        query(&s, &store, &q)?.iter().map(line_of).collect()
    }

    fn flush(max: u32) -> Result<FlushReport, AuditError> {
        let s = settings()?;
        let store = kv::open()?;
        // An operator's flush may take its time (a minute at most).
        let deadline = Instant::now() + Duration::from_secs(60);
        flush(&s, &store, max.clamp(1, 10_000), deadline)
    }

    fn status() -> Result<AuditStatus, AuditError> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let s = settings()?;
        let store = kv::open()?;
        let late = kv::late_day(&store)?;
        let now = now_ms();
        // Storage may be down: the status still answers (spool, losses).
        let log = s.with_blobs(&store, |blobs| {
            let pending = seal::pending(&Dyn(blobs), &s.prefix, now, late.as_deref())?;
            let note = blobs.get(&format!("{}checkpoint", log_prefix(&s.prefix)))?;
            Ok((pending, note))
        });
        let (pending, checkpoint_note) = match log {
            Ok(found) => found,
            Err(e) => {
                eprintln!("audit status without the log: {e:?}");
                (seal::Pending::default(), None)
            }
        };
        let note = checkpoint_note
            .map(|n| String::from_utf8_lossy(&n).into_owned())
            .unwrap_or_default();
        let opened = checkpoint::open(&note, &s.key.verifying_key()).ok();
        Ok(AuditStatus {
            storage: if s.bucket.is_some() { "s3" } else { "kv" }.into(),
            spool_depth: kv::counter(&store, kv::SPOOL_DEPTH)?,
            spool_max: s.spool_max,
            records_lost: kv::counter(&store, kv::RECORDS_LOST)?,
            unauthenticated_not_spooled: kv::counter(&store, kv::NOISE_DROPPED)?,
            public_key: URL_SAFE_NO_PAD.encode(s.key.verifying_key().as_bytes()),
            kid: s.key.kid().to_string(),
            origin: s.origin.clone(),
            log_size: opened.as_ref().map_or(0, |c| c.size),
            log_root: opened
                .as_ref()
                .map(|c| hex::encode(c.root))
                .unwrap_or_default(),
            checkpoint: note,
            unsealed: pending.names.len() as u64,
            oldest_unsealed_age_ms: pending.oldest_age_ms(now),
            unsealed_max_age_ms: s.unsealed_max_age_ms,
        })
    }

    fn seal() -> Result<SealReport, AuditError> {
        let s = settings()?;
        let store = kv::open()?;
        let me = kv::random_hex()?;
        kv::take_lease(&store, &me, LEASE_MS)?;
        let late = kv::late_day(&store)?;
        let sealer = Sealer {
            prefix: &s.prefix,
            origin: &s.origin,
            key: &s.key,
            now_ms: now_ms(),
            late_day: late.clone(),
            max: SEAL_MAX,
        };
        let mut raced = false;
        let sealed = s.with_blobs(&store, |blobs| match sealer.seal(&Dyn(blobs)) {
            Ok(report) => Ok(report),
            Err(seal::SealError::Raced) => {
                raced = true;
                Err("another sealer sealed meanwhile; nothing written".into())
            }
            Err(seal::SealError::Storage(e)) => Err(e),
        });
        kv::release_lease(&store, &me)?;
        let report = match sealed {
            Err(AuditError::Storage(why)) if raced => return Err(AuditError::SealerBusy(why)),
            other => other?,
        };
        if late.is_some() && report.remaining == 0 && kv::counter(&store, kv::SPOOL_DEPTH)? == 0 {
            // Every late record is in the tree now.
            store.delete(kv::LATE_DAY).map_err(storage)?;
        }
        Ok(SealReport {
            sealed: report.sealed,
            size: report.size,
            root: hex::encode(report.root),
            checkpoint: report.checkpoint,
            refused: report.refused,
            remaining: report.remaining,
        })
    }
}

export!(Component);
