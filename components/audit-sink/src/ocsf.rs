//! The OCSF 1.3 "API Activity" (class 6003) shape of a record. Fields OCSF
//! has no place for (findings, masked prompt and response, grant) go under
//! `unmapped`, as OCSF prescribes.

use serde_json::{json, Map, Value};

pub const OCSF_VERSION: &str = "1.3.0";
pub const CLASS_UID: u64 = 6003;
pub const CATEGORY_UID: u64 = 6;

/// OCSF activity of an action name, from the table the gateway names its
/// actions by (`copilot_jit_common::action`), so the two cannot drift.
pub fn activity(action: &str) -> (u64, &'static str) {
    let activity = copilot_jit_common::action::activity_of(action);
    (activity.id(), activity.name())
}

/// OCSF status of our outcome names.
pub fn status(outcome: &str) -> (u64, &'static str) {
    match outcome {
        "allowed" => (1, "Success"),
        "denied" | "blocked" | "failed" => (2, "Failure"),
        _ => (99, "Other"),
    }
}

/// Builds the event: `common` holds what the sink knows (ids, times),
/// `actor`, `api`, `http` and `unmapped` come from the gateway's event.
pub struct Parts {
    pub record_id: String,
    pub request_id: String,
    pub time_ms: u64,
    pub duration_ms: u64,
    pub action: String,
    pub outcome: String,
    pub status: u16,
    pub reason: Option<String>,
    pub method: String,
    pub path: String,
    pub model: Option<String>,
    pub user_agent: Option<String>,
    pub app_name: Option<String>,
    pub actor_user: Option<Value>,
    pub issuer: Option<String>,
    pub policy_ids: Vec<String>,
    pub client_request_id: Option<String>,
    pub bytes_out: u64,
    pub unmapped: Map<String, Value>,
}

pub fn event(p: Parts) -> Map<String, Value> {
    let (activity_id, activity_name) = activity(&p.action);
    let (status_id, status_name) = status(&p.outcome);
    let severity = match p.outcome.as_str() {
        "blocked" | "denied" => (3, "Medium"),
        "failed" => (2, "Low"),
        _ => (1, "Informational"),
    };
    let mut resources = Vec::new();
    if let Some(model) = &p.model {
        resources.push(json!({"type": "model", "name": model}));
    }
    if let Some(grant) = p.unmapped.get("grant_id").and_then(Value::as_str) {
        resources.push(json!({"type": "grant", "uid": grant}));
    }
    let decision = if status_id == 1 { "allowed" } else { "denied" };
    let authorizations: Vec<Value> = if p.policy_ids.is_empty() {
        Vec::new()
    } else {
        p.policy_ids
            .iter()
            .map(|id| json!({"decision": decision, "policy": {"uid": id, "name": id}}))
            .collect()
    };
    let mut actor = Map::new();
    if let Some(user) = p.actor_user {
        actor.insert("user".into(), user);
    }
    if let Some(issuer) = p.issuer {
        actor.insert("idp".into(), json!({"name": issuer}));
    }
    if let Some(app) = p.app_name {
        actor.insert("app_name".into(), Value::String(app));
    }
    if !authorizations.is_empty() {
        actor.insert("authorizations".into(), Value::Array(authorizations));
    }
    let value = json!({
        "class_uid": CLASS_UID,
        "class_name": "API Activity",
        "category_uid": CATEGORY_UID,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": CLASS_UID * 100 + activity_id,
        "type_name": format!("API Activity: {activity_name}"),
        "time": p.time_ms,
        "duration": p.duration_ms,
        "severity_id": severity.0,
        "severity": severity.1,
        "status_id": status_id,
        "status": status_name,
        "status_code": p.status.to_string(),
        "status_detail": p.reason,
        "message": format!("{} {}", p.action, p.outcome),
        "metadata": {
            "uid": p.record_id,
            "correlation_uid": p.request_id,
            "version": OCSF_VERSION,
            "log_name": "copilot-jit-audit",
            "product": {"name": "copilot-jit", "vendor_name": "copilot-jit", "version": env!("CARGO_PKG_VERSION")},
        },
        "actor": actor,
        "api": {
            "operation": p.action,
            "service": {"name": "GitHub Copilot"},
            "request": {"uid": p.client_request_id.clone().unwrap_or_else(|| p.request_id.clone())},
            "response": {"code": p.status},
        },
        "http_request": {
            "http_method": p.method,
            "url": {"path": p.path},
            "user_agent": p.user_agent,
            "uid": p.client_request_id,
        },
        "http_response": {"code": p.status, "length": p.bytes_out},
        "resources": resources,
        "unmapped": p.unmapped,
    });
    match value {
        Value::Object(map) => drop_nulls(map),
        _ => Map::new(),
    }
}

/// OCSF leaves absent attributes out rather than null.
fn drop_nulls(map: Map<String, Value>) -> Map<String, Value> {
    map.into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match v {
            Value::Object(inner) if k != "unmapped" => (k, Value::Object(drop_nulls(inner))),
            other => (k, other),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> Parts {
        let mut unmapped = Map::new();
        unmapped.insert("grant_id".into(), json!("req_1"));
        unmapped.insert("outcome".into(), json!("blocked"));
        Parts {
            record_id: "aud_1".into(),
            request_id: "r1".into(),
            time_ms: 1_700_000_000_000,
            duration_ms: 12,
            action: "copilot".into(),
            outcome: "blocked".into(),
            status: 403,
            reason: Some("prompt blocked".into()),
            method: "POST".into(),
            path: "/chat/completions".into(),
            model: Some("gpt-4o".into()),
            user_agent: None,
            app_name: Some("vscode/1.99".into()),
            actor_user: Some(json!({"uid": "alice"})),
            issuer: Some("https://idp".into()),
            policy_ids: vec!["policy0".into()],
            client_request_id: Some("c1".into()),
            bytes_out: 99,
            unmapped,
        }
    }

    #[test]
    fn an_event_carries_the_ocsf_api_activity_classification() {
        let e = Value::Object(event(parts()));
        assert_eq!(e["class_uid"], 6003);
        assert_eq!(e["category_uid"], 6);
        assert_eq!(e["type_uid"], 600399);
        assert_eq!(e["status_id"], 2);
        assert_eq!(e["severity_id"], 3);
        assert_eq!(e["metadata"]["uid"], "aud_1");
        assert_eq!(e["actor"]["user"]["uid"], "alice");
        assert_eq!(e["actor"]["authorizations"][0]["policy"]["uid"], "policy0");
        assert_eq!(e["api"]["request"]["uid"], "c1");
        assert_eq!(e["resources"][0]["name"], "gpt-4o");
        assert_eq!(e["resources"][1]["uid"], "req_1");
        assert!(e["http_request"].get("user_agent").is_none());
    }

    #[test]
    fn activities_follow_the_action() {
        assert_eq!(activity("grant.revoke").0, 4);
        assert_eq!(activity("access.request").0, 1);
        assert_eq!(activity("access.approve").0, 3);
        assert_eq!(activity("audit.read").0, 2);
    }
}
