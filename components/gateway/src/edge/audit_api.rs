//! The auditor's API: records, a grant's replay against today's policy,
//! shipping the spool, sealing the log, and the trail's status.

use copilot_jit_access_policy::{Action, Resource};
use serde_json::{json, Value};

use super::copilot_jit::gateway::types::{Principal, PrincipalKind};
use super::copilot_jit::gateway::{audit, masking};
use super::identity::require_auditor;
use super::policy;
use super::proxy::masking_context;
use super::{Ctx, Reply};
use crate::ask::KNOWN_SCOPES;
use crate::error::{ApiError, ErrorKind};
use crate::routes;

const DEFAULT_RECORDS: u64 = 200;
/// Most records one query or replay reads.
const MAX_RECORDS: u32 = 10_000;
const DEFAULT_FLUSH: u32 = 1000;

fn audit_failure(e: audit::AuditError) -> ApiError {
    ApiError::new(
        ErrorKind::AuditUnavailable,
        "the audit trail cannot be read",
    )
    .detail(format!("{e:?}"))
}

fn whole_number<T: std::str::FromStr>(
    query: &routes::Query,
    name: &str,
) -> Result<Option<T>, ApiError> {
    query
        .get(name)
        .map(|v| {
            v.parse::<T>().map_err(|_| {
                ApiError::new(
                    ErrorKind::BadQuery,
                    format!("{name} must be a whole number"),
                )
            })
        })
        .transpose()
}

/// `GET /v1/audit/records`: signed records, oldest first.
pub(super) fn records(ctx: &mut Ctx) -> Result<Reply, ApiError> {
    require_auditor(ctx)?;
    let query = routes::query_params(&ctx.path);
    let records = audit::query(&audit::AuditQuery {
        grant_id: query.get("grant"),
        subject: query.get("subject"),
        since: whole_number(&query, "since")?,
        until: whole_number(&query, "until")?,
        limit: whole_number::<u64>(&query, "limit")?
            .unwrap_or(DEFAULT_RECORDS)
            .min(u64::from(MAX_RECORDS)) as u32,
    })
    .map_err(audit_failure)?;
    let records: Vec<Value> = records
        .iter()
        .filter_map(|r| serde_json::from_str(r).ok())
        .collect();
    let retries = retries(&records);
    Ok(Reply::Json(
        200,
        json!({"records": records, "retries": retries}),
    ))
}

/// Retries, linked when the trail is read (the hot path keeps no state to
/// link them): record id → the first record (oldest, records come in time
/// order) with the same caller and client request id.
fn retries(records: &[Value]) -> serde_json::Map<String, Value> {
    let mut first: std::collections::HashMap<(String, String), String> = Default::default();
    let mut out = serde_json::Map::new();
    for r in records {
        let (Some(id), Some(client_id)) = (
            r["metadata"]["uid"].as_str(),
            r["unmapped"]["client_request_id"].as_str(),
        ) else {
            continue;
        };
        let caller = r["actor"]["user"]["uid"].as_str().unwrap_or("").to_string();
        match first.entry((caller, client_id.to_string())) {
            std::collections::hash_map::Entry::Occupied(e) => {
                out.insert(id.to_string(), json!(e.get()));
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(id.to_string());
            }
        }
    }
    out
}

/// The groups a recorded caller had.
fn recorded_groups(record: &Value) -> Vec<String> {
    record["actor"]["user"]["groups"]
        .as_array()
        .map(|g| {
            g.iter()
                .filter_map(|g| g["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `GET /v1/audit/grants/{id}/replay`: one grant's records in time order,
/// prompts and responses as recorded, each re-checked against today's
/// masking policy: would it pass today? `as_groups=a,b` re-checks as if
/// members of those groups had sent them.
pub(super) fn replay(ctx: &mut Ctx, grant_id: &str) -> Result<Reply, ApiError> {
    require_auditor(ctx)?;
    let as_groups: Option<Vec<String>> =
        routes::query_params(&ctx.path).get("as_groups").map(|g| {
            g.split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect()
        });
    let records = audit::query(&audit::AuditQuery {
        grant_id: Some(grant_id.to_string()),
        subject: None,
        since: None,
        until: None,
        limit: MAX_RECORDS,
    })
    .map_err(audit_failure)?;
    let records: Vec<Value> = records
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let retries = retries(&records);
    let mut exchanges = Vec::new();
    for record in &records {
        let unmapped = &record["unmapped"];
        let groups = as_groups.clone().unwrap_or_else(|| recorded_groups(record));
        let masking_ctx = masking_context(&groups)?;
        let recheck = |text: Option<&str>, prompt: bool| -> Value {
            let Some(text) = text else { return Value::Null };
            let scan = if prompt {
                masking::inspect_prompt(text, &masking_ctx)
            } else {
                masking::mask_response(text, &masking_ctx)
            };
            let detectors: Vec<&str> = scan.findings.iter().map(|f| f.detector.as_str()).collect();
            json!({"blocked": scan.blocked, "detectors": detectors})
        };
        let prompt = unmapped["prompt"].as_str();
        let response = unmapped["response"].as_str();
        let today_prompt = recheck(prompt, true);
        let today_policy = replay_policy(record, &groups)?;
        let would_block =
            today_prompt["blocked"].as_bool().unwrap_or(false) || today_policy["allowed"] == false;
        let id = record["metadata"]["uid"].as_str().unwrap_or("");
        exchanges.push(json!({
            "id": id,
            "retry_of": retries.get(id),
            "time": record["time"],
            "action": unmapped["action"],
            "path": record["http_request"]["url"]["path"],
            "model": unmapped["model"],
            "outcome": unmapped["outcome"],
            "status": record["api"]["response"]["code"],
            "prompt": prompt,
            "response": response,
            "findings": unmapped["findings"],
            "today": {
                "prompt": today_prompt,
                "response": recheck(response, false),
                "policy": today_policy,
                "would_be_blocked": would_block,
            },
        }));
    }
    if exchanges.is_empty() {
        return Err(ApiError::new(
            ErrorKind::NoRecords,
            format!("the audit trail has no records for grant {grant_id}"),
        ));
    }
    Ok(Reply::Json(
        200,
        json!({"grant_id": grant_id, "exchanges": exchanges}),
    ))
}

/// Today's `use` decision for a recorded Copilot call, asked as the recorded
/// caller with `groups` (theirs, or the replay's `as_groups`). Null for
/// records of other actions.
fn replay_policy(record: &Value, groups: &[String]) -> Result<Value, ApiError> {
    let unmapped = &record["unmapped"];
    let Some(scope) = unmapped["action"]
        .as_str()
        .and_then(|a| a.strip_prefix("copilot."))
        .filter(|s| KNOWN_SCOPES.contains(s))
    else {
        return Ok(Value::Null);
    };
    let user = &record["actor"]["user"];
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let principal = Principal {
        kind: match user["type"].as_str() {
            Some("workload") => PrincipalKind::Workload,
            Some("agent") => PrincipalKind::Agent,
            _ => PrincipalKind::Human,
        },
        issuer: text(&record["actor"]["idp"]["name"]),
        subject: text(&user["uid"]),
        email: user["email_addr"].as_str().map(str::to_string),
        name: None,
        groups: groups.to_vec(),
        claims_json: "{}".into(),
    };
    let mut context = json!({
        "endpoint": text(&record["http_request"]["url"]["path"]),
        "client": text(&record["actor"]["app_name"]),
    });
    if let Some(model) = unmapped["model"].as_str() {
        context["model"] = json!(model);
    }
    let d = policy::decide(&principal, Action::Use, &Resource::Scope(scope), context)?;
    Ok(json!({
        "allowed": d.allowed,
        "policy_ids": d.policy_ids,
        "explanation": d.explain(),
    }))
}

/// `POST /v1/audit/flush`: ships spooled records; for a scheduler when
/// traffic is too thin to carry them along.
pub(super) fn flush(ctx: &mut Ctx) -> Result<Reply, ApiError> {
    require_auditor(ctx)?;
    let query = routes::query_params(&ctx.path);
    let max = whole_number::<u32>(&query, "max")?.unwrap_or(DEFAULT_FLUSH);
    let report = audit::flush(max).map_err(audit_failure)?;
    let body = json!({"shipped": report.shipped, "remaining": report.remaining});
    match report.error {
        Some(e) if report.shipped == 0 => Err(ApiError::new(
            ErrorKind::AuditStorageUnavailable,
            "audit storage is still unreachable; spooled records are kept",
        )
        .with(body)
        .detail(e)),
        _ => Ok(Reply::Json(200, body)),
    }
}

/// `GET /v1/audit/status`: storage, spool, losses, the log's checkpoint
/// and what waits to be sealed, the signing key.
pub(super) fn status(ctx: &mut Ctx) -> Result<Reply, ApiError> {
    require_auditor(ctx)?;
    let s = audit::status().map_err(audit_failure)?;
    let stale = s
        .oldest_unsealed_age_ms
        .is_some_and(|age| age > s.unsealed_max_age_ms);
    Ok(Reply::Json(
        200,
        json!({
            "storage": s.storage,
            "spool": {"depth": s.spool_depth, "max": s.spool_max},
            "records_lost": s.records_lost,
            "unauthenticated_not_spooled": s.unauthenticated_not_spooled,
            "log": {
                "origin": s.origin,
                "size": s.log_size,
                "root": s.log_root,
                "checkpoint": s.checkpoint,
                "unsealed": s.unsealed,
                "oldest_unsealed_age_ms": s.oldest_unsealed_age_ms,
                "unsealed_max_age_ms": s.unsealed_max_age_ms,
                "overdue": stale,
            },
            "public_key": {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": s.kid, "x": s.public_key},
        }),
    ))
}

/// `POST /v1/audit/seal`: integrates the records written since the last
/// checkpoint into the log and signs a new checkpoint; for a scheduler
/// (an identity the policy lets read the audit trail). One at a time.
pub(super) fn seal(ctx: &mut Ctx) -> Result<Reply, ApiError> {
    require_auditor(ctx)?;
    let report = audit::seal().map_err(|e| match e {
        audit::AuditError::SealerBusy(why) => ApiError::new(
            ErrorKind::InvalidState,
            "another sealer is running; try again later",
        )
        .detail(why),
        other => audit_failure(other),
    })?;
    Ok(Reply::Json(
        200,
        json!({
            "sealed": report.sealed,
            "size": report.size,
            "root": report.root,
            "checkpoint": report.checkpoint,
            "refused": report.refused,
            "remaining": report.remaining,
        }),
    ))
}
