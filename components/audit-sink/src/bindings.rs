//! The component's edge: Spin variables, KV (chain head, spool, local
//! records) and wasi:http requests to the bucket.

use copilot_jit_audit_log::layout::{self, Bucket, SignedRequest};
use copilot_jit_audit_log::record::{AuditKey, ChainHead, Record};
use copilot_jit_audit_log::sigv4::Credentials;
use copilot_jit_common::unix_now_ms as now_ms;
use serde_json::{Map, Value};

copilot_jit_wasi::bindings_with_http!("audit-sink");

use copilot_jit::gateway::types::{Finding, Principal, PrincipalKind};
use copilot_jit_common::cas::{update, Step, UpdateError};
use copilot_jit_wasi::http::{Method, Request};
use exports::copilot_jit::gateway::audit::{
    AuditError, AuditEvent, AuditQuery, AuditStatus, FlushReport, Guest,
};
use std::time::{Duration, Instant};
use wasi::keyvalue::atomics;
use wasi::keyvalue::store::{self, Bucket as Store};

use crate::claim::{self, Take};
use crate::exchange::{record_event, Actor, Client, Exchange, Found};
use crate::trail;

copilot_jit_common::kv_cas_store!(KvCas);

const CHAIN: &str = "main";
const HEAD_KEY: &str = "audit-head:main";
/// Records kept in KV when no bucket is configured.
const LOCAL_PREFIX: &str = "audit-record:";
/// Records waiting for the bucket.
const SPOOL_PREFIX: &str = "audit-spool:";
const SPOOLED: &str = "audit-spool-in";
const SHIPPED: &str = "audit-spool-out";
/// Events that could not take a place in the chain in time (a contended
/// head, a slow store): kept whole, sealed by the next flush or audit read.
const PENDING_PREFIX: &str = "audit-pending:";
/// A claimed entry (see `claim`) older than this is taken over.
const CLAIM_TIMEOUT_MS: u64 = 120_000;
/// Genuine conflicts on the chain head retried before the event is parked.
const CAS_ATTEMPTS: u32 = 6;
/// Spooled records shipped along with a healthy append.
const CATCH_UP_PER_APPEND: u32 = 8;
/// What an append may spend after the answer on taking its place in the
/// chain and catching up, beyond its own upload (bounded by
/// `audit_s3_timeout_ms`). Spin holds the instance until the handler
/// returns: at 1,000 calls/s a 1 s budget would hold 1,000 instances and
/// exhaust Spin's pool (measured in `spin_stores.rs`; 100 ms still did at 64
/// clients on one process), so under contention the event is parked (one KV
/// write) and sealed later instead.
const APPEND_BUDGET: Duration = Duration::from_millis(30);
/// What an audit read or flush may spend sealing parked events.
const SEAL_BUDGET: Duration = Duration::from_secs(20);

fn storage(e: store::Error) -> AuditError {
    AuditError::Storage(match e {
        store::Error::NoSuchStore => "no such store".into(),
        store::Error::AccessDenied => "access denied".into(),
        store::Error::Other(m) => m,
    })
}

fn variable(name: &str) -> Option<String> {
    copilot_jit_wasi::config::variable(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

struct Settings {
    key: AuditKey,
    bucket: Option<Bucket>,
    prefix: String,
    spool_max: u64,
    timeout_ms: u64,
}

fn settings() -> Result<Settings, AuditError> {
    let seed = variable("audit_signing_key")
        .ok_or_else(|| AuditError::Config("variable audit_signing_key is not set".into()))?;
    let key = copilot_jit_common::decode_seed(&seed)
        .map(AuditKey::new)
        .map_err(|e| AuditError::Config(format!("audit_signing_key: {e}")))?;
    let number = |name: &str, default: u64| -> Result<u64, AuditError> {
        match variable(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| AuditError::Config(format!("{name} must be a whole number"))),
        }
    };
    let bucket = match variable("audit_s3_bucket") {
        None => None,
        Some(name) => {
            let need = |var: &str| {
                variable(var).ok_or_else(|| {
                    AuditError::Config(format!("audit_s3_bucket is set but {var} is not"))
                })
            };
            let credentials = Credentials {
                access_key_id: need("audit_s3_access_key_id")?,
                secret_access_key: need("audit_s3_secret_access_key")?,
                session_token: variable("audit_s3_session_token"),
            };
            let path_style = match variable("audit_s3_path_style").as_deref() {
                None | Some("true") => true,
                Some("false") => false,
                Some(_) => {
                    return Err(AuditError::Config(
                        "audit_s3_path_style must be true or false".into(),
                    ))
                }
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
                .map_err(|e| AuditError::Config(format!("audit_s3_endpoint: {e}")))?,
            )
        }
    };
    let mut prefix = variable("audit_s3_prefix").unwrap_or_else(|| "copilot-jit/audit/".into());
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok(Settings {
        key,
        bucket,
        prefix,
        spool_max: number("audit_spool_max", 10_000)?.max(1),
        timeout_ms: number("audit_s3_timeout_ms", 3_000)?.clamp(100, 60_000),
    })
}

// ---- wasi:http to the bucket ----------------------------------------------

/// Slow storage counts as down: every wait is bounded by `timeout_ms`, and
/// the record is spooled instead of holding the request.
fn send(request: &SignedRequest, body: &[u8], timeout_ms: u64) -> Result<(u16, Vec<u8>), String> {
    let method = match request.method {
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        _ => Method::Get,
    };
    let mut outgoing = Request::at(
        method,
        request.https,
        &request.host,
        &request.path_and_query,
    )
    .timeout_ms(timeout_ms)
    .between_bytes_timeout_ms(timeout_ms);
    for (name, value) in &request.headers {
        outgoing = outgoing.header(name, value);
    }
    let response = outgoing
        .send((!body.is_empty()).then_some(body))
        .map_err(|e| format!("storage unreachable: {e}"))?;
    let status = response.status();
    let bytes = response
        .read_body(64 * 1024 * 1024)
        .map_err(|e| format!("storage response: {e}"))?;
    Ok((status, bytes))
}

fn storage_error(what: &str, status: u16, body: &[u8]) -> String {
    let code = layout::error_code(&String::from_utf8_lossy(body)).unwrap_or_default();
    format!("{what}: storage answered {status} {code}")
}

fn put_record(
    s: &Settings,
    bucket: &Bucket,
    record: &Record,
    line: &str,
    timeout_ms: u64,
) -> Result<(), String> {
    let key = layout::object_key(&s.prefix, CHAIN, record.seq(), record.time_ms());
    let mut body = line.as_bytes().to_vec();
    body.push(b'\n');
    let request = bucket.put_object(&key, &body, now_ms() / 1000);
    match send(&request, &body, timeout_ms)? {
        (200..=299, _) => Ok(()),
        (status, answer) => Err(storage_error("storing a record", status, &answer)),
    }
}

fn list_bucket(s: &Settings, bucket: &Bucket, prefix: &str) -> Result<Vec<String>, String> {
    copilot_jit_common::all_pages(|next| {
        let request = bucket.list_objects(prefix, next, now_ms() / 1000);
        let (status, body) = send(&request, b"", s.timeout_ms)?;
        if !(200..=299).contains(&status) {
            return Err(storage_error("listing records", status, &body));
        }
        let page = layout::parse_list_page(&String::from_utf8_lossy(&body))?;
        Ok((page.keys, page.next))
    })
}

fn get_object(s: &Settings, bucket: &Bucket, key: &str) -> Result<Vec<u8>, String> {
    match send(&bucket.get_object(key, now_ms() / 1000), b"", s.timeout_ms)? {
        (200..=299, body) => Ok(body),
        (status, body) => Err(storage_error("reading a record", status, &body)),
    }
}

// ---- the chain and the spool ----------------------------------------------

fn counter(store: &Store, key: &str) -> Result<u64, AuditError> {
    Ok(store
        .get(key)
        .map_err(storage)?
        .and_then(|v| {
            // Stores keep counters as decimal text or as 8 little-endian
            // bytes; a small binary counter has NUL bytes, so text is tried
            // first without ambiguity.
            std::str::from_utf8(&v)
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .or_else(|| {
                    <[u8; 8]>::try_from(v.as_slice())
                        .ok()
                        .map(u64::from_le_bytes)
                })
        })
        .unwrap_or(0))
}

fn spool_depth(store: &Store) -> Result<u64, AuditError> {
    Ok(counter(store, SPOOLED)?.saturating_sub(counter(store, SHIPPED)?))
}

fn head(store: &Store) -> Result<ChainHead, AuditError> {
    match store.get(HEAD_KEY).map_err(storage)? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| AuditError::Storage(format!("corrupt chain head: {e}"))),
        None => Ok(ChainHead::default()),
    }
}

fn new_id() -> Result<String, AuditError> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| AuditError::Storage(e.to_string()))?;
    Ok(format!("aud_{}", hex::encode(bytes)))
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, AuditError> {
    serde_json::to_vec(v).map_err(|e| AuditError::Storage(e.to_string()))
}

/// Takes the next place in the chain by compare-and-swap and seals the
/// record for it. Two writers never get the same seq. A swap reported failed
/// is read back (Spin's Redis store reports applied swaps as failed); when
/// others chained behind ours first, the head's recent hashes show it.
/// `Err(reason)`: the event did not get a place; the caller parks it.
fn chain(
    store: &Store,
    key: &AuditKey,
    event: &Map<String, Value>,
    deadline: Instant,
) -> Result<Record, String> {
    let mut mine: Option<Record> = None;
    let chained = update(&KvCas(store), HEAD_KEY, CAS_ATTEMPTS, |current| {
        let head: ChainHead = match current {
            Some(bytes) => {
                serde_json::from_slice(bytes).map_err(|e| format!("corrupt chain head: {e}"))?
            }
            None => ChainHead::default(),
        };
        if let Some(sealed) = &mine {
            match head.holds(sealed.seq(), &sealed.integrity.hash) {
                Some(true) => return Ok(Step::AlreadyApplied(sealed.clone())),
                Some(false) => {}
                None => return Err("the chain moved on too far to tell".to_string()),
            }
        }
        if Instant::now() > deadline {
            return Err("out of time".to_string());
        }
        let record = key
            .seal(event.clone(), CHAIN, &head)
            .map_err(|e| e.to_string())?;
        let next = serde_json::to_vec(&head.after(&record)).map_err(|e| e.to_string())?;
        mine = Some(record.clone());
        Ok(Step::Write(next, record))
    });
    chained.map_err(|e| match e {
        UpdateError::Store(e) => format!("{:?}", storage(e)),
        UpdateError::Rejected(reason) => reason,
        UpdateError::Contended => "the chain head stayed contended".to_string(),
    })
}

/// Keeps an event that has no place in the chain yet.
fn park(store: &Store, id: &str, event: &Map<String, Value>) -> Result<(), AuditError> {
    store
        .set(&format!("{PENDING_PREFIX}{id}"), &encode(event)?)
        .map_err(storage)
}

fn new_writer() -> Result<String, AuditError> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| AuditError::Storage(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// Claims one entry for this worker; `Ok(None)` when it is gone or another
/// live worker holds it. Returns the payload.
fn claim_entry(store: &Store, key: &str, writer: &str) -> Result<Option<Vec<u8>>, AuditError> {
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

/// Seals parked events into the chain and stores them as any record. Stops
/// at `deadline` or on the first failure; returns how many were sealed.
fn seal_pending(s: &Settings, store: &Store, deadline: Instant) -> Result<u32, AuditError> {
    let writer = new_writer()?;
    let mut sealed = 0;
    for key in keys_with_prefix(store, PENDING_PREFIX)? {
        if Instant::now() > deadline {
            break;
        }
        let Some(payload) = claim_entry(store, &key, &writer)? else {
            continue;
        };
        let event: Map<String, Value> = match serde_json::from_slice(&payload) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("pending audit entry {key} is unreadable and stays: {e}");
                continue;
            }
        };
        let record = match chain(store, &s.key, &event, deadline) {
            Ok(r) => r,
            Err(reason) => {
                // Handed back for the next try.
                store.set(&key, &payload).map_err(storage)?;
                eprintln!("pending audit entry {key} not sealed: {reason}");
                break;
            }
        };
        keep(s, store, &record)?;
        store.delete(&key).map_err(storage)?;
        sealed += 1;
    }
    Ok(sealed)
}

/// Stores a sealed record: in KV without a bucket, else in the bucket or,
/// when it is down or slow, in the spool.
fn keep(s: &Settings, store: &Store, record: &Record) -> Result<bool, AuditError> {
    let line = record
        .to_line()
        .map_err(|e| AuditError::Storage(e.to_string()))?;
    match &s.bucket {
        None => {
            store
                .set(
                    &format!("{LOCAL_PREFIX}{:020}", record.seq()),
                    line.as_bytes(),
                )
                .map_err(storage)?;
            Ok(true)
        }
        Some(bucket) => match put_record(s, bucket, record, &line, s.timeout_ms) {
            Ok(()) => Ok(true),
            Err(reason) => {
                eprintln!("audit record seq {} spooled: {reason}", record.seq());
                spool(store, record, &line)?;
                Ok(false)
            }
        },
    }
}

fn spool_key(seq: u64) -> String {
    format!("{SPOOL_PREFIX}{seq:020}")
}

fn spool(store: &Store, record: &Record, line: &str) -> Result<(), AuditError> {
    store
        .set(&spool_key(record.seq()), line.as_bytes())
        .map_err(storage)?;
    atomics::increment(store, SPOOLED, 1).map_err(storage)?;
    Ok(())
}

fn keys_with_prefix(store: &Store, prefix: &str) -> Result<Vec<String>, AuditError> {
    let mut keys = copilot_jit_common::all_pages(|cursor| {
        let page = store.list_keys(cursor).map_err(storage)?;
        let keys = page.keys.into_iter().filter(|k| k.starts_with(prefix));
        Ok((keys.collect(), page.cursor))
    })?;
    keys.sort();
    Ok(keys)
}

/// Claims one spool entry (so two flushers never both count it), ships it,
/// and removes it. Ok(false) when another flusher holds it.
fn ship_spooled(
    s: &Settings,
    bucket: &Bucket,
    store: &Store,
    spool_key: &str,
    writer: &str,
    timeout_ms: u64,
) -> Result<bool, String> {
    let kv = |e: store::Error| format!("{:?}", storage(e));
    let Some(line) = claim_entry(store, spool_key, writer).map_err(|e| format!("{e:?}"))? else {
        return Ok(false);
    };
    let text = String::from_utf8_lossy(&line).into_owned();
    let record: Record = match serde_json::from_str(&text) {
        Ok(r) => r,
        Err(e) => return Err(format!("spool entry {spool_key} is not a record: {e}")),
    };
    if let Err(e) = put_record(s, bucket, &record, &text, timeout_ms) {
        // Hand the entry back for the next flush.
        store.set(spool_key, &line).map_err(kv)?;
        return Err(e);
    }
    store.delete(spool_key).map_err(kv)?;
    atomics::increment(store, SHIPPED, 1).map_err(kv)?;
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
    let writer = new_writer()?;
    let mut shipped = 0;
    let mut error = None;
    for key in keys_with_prefix(store, SPOOL_PREFIX)? {
        let left = deadline.saturating_duration_since(Instant::now());
        if shipped >= max || left.is_zero() {
            break;
        }
        let timeout_ms = s.timeout_ms.min(left.as_millis() as u64).max(1);
        match ship_spooled(s, bucket, store, &key, &writer, timeout_ms) {
            Ok(true) => shipped += 1,
            Ok(false) => {}
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    Ok(FlushReport {
        shipped,
        remaining: spool_depth(store)?,
        error,
    })
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
    }
}

fn unreadable(e: String) -> AuditError {
    AuditError::Storage(e)
}

fn query(s: &Settings, store: &Store, q: &AuditQuery) -> Result<Vec<Record>, AuditError> {
    let q = trail::Query {
        grant_id: q.grant_id.clone(),
        subject: q.subject.clone(),
        since: q.since,
        until: q.until,
        limit: q.limit,
    };
    let mut records = Vec::new();
    match &s.bucket {
        None => {
            for key in keys_with_prefix(store, LOCAL_PREFIX)? {
                if let Some(bytes) = store.get(&key).map_err(storage)? {
                    trail::parse_lines(&bytes, &mut records).map_err(unreadable)?;
                }
            }
        }
        Some(bucket) => {
            let prefixes = match trail::days_to_list(&q, now_ms()) {
                Some(days) => days
                    .iter()
                    .map(|d| layout::day_prefix(&s.prefix, d))
                    .collect(),
                None => vec![s.prefix.clone()],
            };
            for prefix in prefixes {
                for key in list_bucket(s, bucket, &prefix).map_err(AuditError::Storage)? {
                    if layout::parse_object_key(&key).is_some() {
                        let bytes = get_object(s, bucket, &key).map_err(AuditError::Storage)?;
                        trail::parse_lines(&bytes, &mut records).map_err(unreadable)?;
                    }
                }
            }
            // Records still waiting in the spool are part of the trail too.
            for key in keys_with_prefix(store, SPOOL_PREFIX)? {
                if let Some(bytes) = store.get(&key).map_err(storage)? {
                    trail::parse_lines(&bytes, &mut records).map_err(unreadable)?;
                }
            }
        }
    }
    Ok(trail::select(records, &q))
}

struct Component;

impl Guest for Component {
    fn admit() -> Result<(), AuditError> {
        // Asked on every call: without a bucket there is no spool to fill,
        // and nothing else (keys, credentials) needs reading.
        if variable("audit_signing_key").is_none() {
            return Err(AuditError::Config(
                "variable audit_signing_key is not set".into(),
            ));
        }
        if variable("audit_s3_bucket").is_none() {
            return Ok(());
        }
        let spool_max = match variable("audit_spool_max") {
            None => 10_000,
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| AuditError::Config("audit_spool_max must be a whole number".into()))?,
        }
        .max(1);
        let store = store::open("default").map_err(storage)?;
        let depth = spool_depth(&store)?;
        if depth >= spool_max {
            return Err(AuditError::SpoolFull(depth));
        }
        Ok(())
    }

    fn append(e: AuditEvent) -> Result<String, AuditError> {
        let s = settings()?;
        let store = store::open("default").map_err(storage)?;
        // Clients retry once with the same X-Request-Id after a network
        // error: the retry points at the first record of that id.
        let retry_key = e
            .client_request_id
            .as_ref()
            .map(|id| format!("audit-client-request:{id}"));
        let first = match &retry_key {
            Some(k) => store.get(k).map_err(storage)?,
            None => None,
        };
        let retry_of = first
            .as_ref()
            .map(|f| String::from_utf8_lossy(f).into_owned());
        let id = new_id()?;
        let started = Instant::now();
        let deadline = started + APPEND_BUDGET;
        let event = record_event(exchange(e), id.clone(), retry_of, now_ms());
        match chain(&store, &s.key, &event, deadline) {
            Err(reason) => {
                eprintln!("audit record {id} parked: {reason}");
                park(&store, &id, &event)?;
            }
            Ok(record) => {
                let shipped = keep(&s, &store, &record)?;
                // Storage is back: ship some of what waited for it, in the
                // time left.
                if shipped && s.bucket.is_some() && spool_depth(&store)? > 0 {
                    if let Ok(report) = flush(&s, &store, CATCH_UP_PER_APPEND, deadline) {
                        if let Some(e) = report.error {
                            eprintln!("audit spool not shipped: {e}");
                        }
                    }
                }
            }
        }
        if let (Some(k), None) = (retry_key, first) {
            store.set(&k, id.as_bytes()).map_err(storage)?;
        }
        Ok(id)
    }

    fn query(q: AuditQuery) -> Result<Vec<String>, AuditError> {
        let s = settings()?;
        let store = store::open("default").map_err(storage)?;
        // Parked events join the trail before it is read.
        seal_pending(&s, &store, Instant::now() + SEAL_BUDGET)?;
        query(&s, &store, &q)?
            .iter()
            .map(|r| r.to_line().map_err(|e| AuditError::Storage(e.to_string())))
            .collect()
    }

    fn flush(max: u32) -> Result<FlushReport, AuditError> {
        let s = settings()?;
        let store = store::open("default").map_err(storage)?;
        // An operator's flush may take its time (a minute at most).
        let deadline = Instant::now() + Duration::from_secs(60);
        seal_pending(&s, &store, deadline)?;
        flush(&s, &store, max.clamp(1, 10_000), deadline)
    }

    fn status() -> Result<AuditStatus, AuditError> {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let s = settings()?;
        let store = store::open("default").map_err(storage)?;
        let head = head(&store)?;
        Ok(AuditStatus {
            storage: if s.bucket.is_some() { "s3" } else { "kv" }.into(),
            spool_depth: if s.bucket.is_some() {
                spool_depth(&store)?
            } else {
                0
            },
            spool_max: s.spool_max,
            head_seq: head.seq,
            head_hash: head.hash,
            public_key: URL_SAFE_NO_PAD.encode(s.key.verifying_key().as_bytes()),
            kid: s.key.kid().to_string(),
        })
    }
}

export!(Component);
