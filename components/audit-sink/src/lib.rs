//! The audit-sink component: builds signed, hash-chained records and keeps
//! them in `wasi:keyvalue`. The chain head advances by compare-and-swap.

pub mod record;

#[cfg(target_arch = "wasm32")]
mod bindings {
    use super::record::{AuditKey, Body, ChainHead, Record};
    use copilot_jit_common::unix_now_ms as now_ms;

    wit_bindgen::generate!({
        path: "../../wit",
        world: "audit-sink",
        generate_all,
    });

    use copilot_jit::gateway::types::{Finding, Principal, PrincipalKind};
    use exports::copilot_jit::gateway::audit::{AuditError, AuditEvent, AuditQuery, Guest};
    use wasi::config::store as config;
    use wasi::keyvalue::atomics::{self, Cas, CasError};
    use wasi::keyvalue::store::{self, Bucket};

    const CHAIN: &str = "main";
    const RECORD_PREFIX: &str = "audit-record:";
    const CAS_ATTEMPTS: usize = 64;

    fn storage(e: store::Error) -> AuditError {
        AuditError::Storage(match e {
            store::Error::NoSuchStore => "no such store".into(),
            store::Error::AccessDenied => "access denied".into(),
            store::Error::Other(m) => m,
        })
    }

    fn key() -> Result<AuditKey, AuditError> {
        let text = match config::get("audit_signing_key") {
            Ok(Some(v)) => v,
            _ => {
                return Err(AuditError::Config(
                    "variable audit_signing_key is not set".into(),
                ))
            }
        };
        copilot_jit_common::decode_seed(&text)
            .map(AuditKey::new)
            .map_err(|e| AuditError::Config(format!("audit_signing_key: {e}")))
    }

    fn principal_json(p: &Principal) -> serde_json::Value {
        serde_json::json!({
            "kind": match p.kind {
                PrincipalKind::Human => "human",
                PrincipalKind::Workload => "workload",
                PrincipalKind::Agent => "agent",
            },
            "issuer": p.issuer,
            "subject": p.subject,
            "email": p.email,
            "groups": p.groups,
        })
    }

    fn findings_json(f: &[Finding]) -> serde_json::Value {
        f.iter()
            .map(|f| {
                serde_json::json!({
                    "detector": f.detector,
                    "count": f.count,
                    "positions": f.positions,
                    "fingerprints": f.fingerprints,
                })
            })
            .collect()
    }

    fn event_json(e: &AuditEvent) -> serde_json::Value {
        serde_json::json!({
            "request_id": e.request_id,
            "client_request_id": e.client_request_id,
            "principal": e.principal.as_ref().map(principal_json),
            "grant_id": e.grant_id,
            "token_id": e.token_id,
            "method": e.method,
            "path": e.path,
            "action": e.action,
            "model": e.model,
            "client": e.client,
            "outcome": e.outcome,
            "status": e.status,
            "reason": e.reason,
            "findings": findings_json(&e.findings),
            "prompt": e.prompt,
            "response": e.response,
            "upstream_status": e.upstream_status,
            "bytes_in": e.bytes_in,
            "bytes_out": e.bytes_out,
            "duration_ms": e.duration_ms,
            "upstream_ms": e.upstream_ms,
        })
    }

    fn new_id() -> Result<String, AuditError> {
        let mut bytes = [0u8; 12];
        getrandom::fill(&mut bytes).map_err(|e| AuditError::Storage(e.to_string()))?;
        Ok(format!("aud_{}", hex::encode(bytes)))
    }

    fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, AuditError> {
        serde_json::to_vec(v).map_err(|e| AuditError::Storage(e.to_string()))
    }

    fn append(
        bucket: &Bucket,
        key: &AuditKey,
        event: serde_json::Value,
    ) -> Result<String, AuditError> {
        let id = new_id()?;
        let record_key = format!("{RECORD_PREFIX}{id}");
        let head_key = format!("audit-head:{CHAIN}");
        let mut cas = Cas::new(bucket, &head_key).map_err(storage)?;
        for _ in 0..CAS_ATTEMPTS {
            let head: ChainHead = match cas.current().map_err(storage)? {
                Some(bytes) => serde_json::from_slice(&bytes)
                    .map_err(|e| AuditError::Storage(format!("corrupt chain head: {e}")))?,
                None => ChainHead::default(),
            };
            let record = key
                .seal(Body {
                    v: 1,
                    id: id.clone(),
                    chain: CHAIN.into(),
                    seq: head.seq + 1,
                    time_ms: now_ms(),
                    prev: head.hash,
                    event: event.clone(),
                })
                .map_err(|e| AuditError::Storage(e.to_string()))?;
            // The record is written under its own id before the head moves,
            // so a lost race never overwrites another writer's record.
            bucket
                .set(&record_key, &encode(&record)?)
                .map_err(storage)?;
            let next = ChainHead {
                seq: record.body.seq,
                hash: record.hash.clone(),
            };
            match atomics::swap(cas, &encode(&next)?) {
                Ok(()) => return Ok(id),
                Err(CasError::CasFailed(fresh)) => cas = fresh,
                Err(CasError::StoreError(e)) => return Err(storage(e)),
            }
        }
        Err(AuditError::Storage(
            "audit chain is contended; record not chained".into(),
        ))
    }

    fn matches(r: &Record, q: &AuditQuery) -> bool {
        let event = &r.body.event;
        let time_s = r.body.time_ms / 1000;
        q.grant_id
            .as_ref()
            .is_none_or(|g| event["grant_id"].as_str() == Some(g.as_str()))
            && q.subject
                .as_ref()
                .is_none_or(|s| event["principal"]["subject"].as_str() == Some(s.as_str()))
            && q.since.is_none_or(|t| time_s >= t)
            && q.until.is_none_or(|t| time_s <= t)
    }

    struct Component;

    impl Guest for Component {
        fn append(event: AuditEvent) -> Result<String, AuditError> {
            let key = key()?;
            let bucket = store::open("default").map_err(storage)?;
            let mut json = event_json(&event);
            // Clients retry once with the same X-Request-Id after a network
            // error: the retry points at the first record of that id.
            let retry_key = event
                .client_request_id
                .as_ref()
                .map(|id| format!("audit-client-request:{id}"));
            let first = match &retry_key {
                Some(k) => bucket.get(k).map_err(storage)?,
                None => None,
            };
            if let Some(first) = &first {
                json["retry_of"] =
                    serde_json::Value::String(String::from_utf8_lossy(first).into_owned());
            }
            let id = append(&bucket, &key, json)?;
            if let (Some(k), None) = (retry_key, first) {
                bucket.set(&k, id.as_bytes()).map_err(storage)?;
            }
            Ok(id)
        }

        fn query(q: AuditQuery) -> Result<Vec<String>, AuditError> {
            let bucket = store::open("default").map_err(storage)?;
            let mut keys = Vec::new();
            let mut cursor = None;
            loop {
                let page = bucket.list_keys(cursor.as_deref()).map_err(storage)?;
                keys.extend(
                    page.keys
                        .into_iter()
                        .filter(|k| k.starts_with(RECORD_PREFIX)),
                );
                match page.cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            let mut records = Vec::new();
            for k in keys {
                if let Some(bytes) = bucket.get(&k).map_err(storage)? {
                    let r: Record = serde_json::from_slice(&bytes)
                        .map_err(|e| AuditError::Storage(format!("corrupt record {k}: {e}")))?;
                    if matches(&r, &q) {
                        records.push(r);
                    }
                }
            }
            records.sort_by_key(|r| r.body.seq);
            let limit = q.limit.clamp(1, 1000) as usize;
            let skip = records.len().saturating_sub(limit);
            records
                .into_iter()
                .skip(skip)
                .map(|r| serde_json::to_string(&r).map_err(|e| AuditError::Storage(e.to_string())))
                .collect()
        }
    }

    export!(Component);
}
