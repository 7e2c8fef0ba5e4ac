//! One exchange, as the gateway reports it, turned into the OCSF event the
//! record carries (`ocsf`), with what OCSF has no place for under
//! `unmapped`. Secret-free by construction: the gateway hands over masked
//! text and findings as fingerprints, never values.

use serde_json::{json, Map, Value};

use crate::ocsf;

pub struct Actor {
    /// "human", "workload" or "agent".
    pub kind: &'static str,
    pub subject: String,
    pub issuer: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
}

pub struct Found {
    pub detector: String,
    pub count: u32,
    pub positions: Vec<u64>,
    pub fingerprints: Vec<String>,
}

#[derive(Default)]
pub struct Client {
    pub editor_version: Option<String>,
    pub plugin_version: Option<String>,
    pub integration_id: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Default)]
pub struct Exchange {
    pub request_id: String,
    pub client_request_id: Option<String>,
    pub actor: Option<Actor>,
    pub grant_id: Option<String>,
    pub token_id: Option<String>,
    pub method: String,
    pub path: String,
    pub action: String,
    pub model: Option<String>,
    pub client: Client,
    pub outcome: String,
    pub status: u16,
    pub reason: Option<String>,
    pub policy_ids: Vec<String>,
    pub findings: Vec<Found>,
    pub prompt: Option<String>,
    pub response: Option<String>,
    pub upstream_status: Option<u16>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration_ms: u64,
    pub upstream_ms: Option<u64>,
    pub ttfb_ms: Option<u64>,
    pub upstream_mode: Option<String>,
    pub upstream_login: Option<String>,
}

fn findings_json(f: &[Found]) -> Value {
    f.iter()
        .map(|f| {
            json!({
                "detector": f.detector,
                "count": f.count,
                "positions": f.positions,
                "fingerprints": f.fingerprints,
            })
        })
        .collect()
}

/// The event of record `id`, at `time_ms`. (Retries of a client request id
/// are linked when the trail is read: nothing per call knows the first.)
pub fn record_event(e: Exchange, id: String, time_ms: u64) -> Map<String, Value> {
    let actor = e.actor.as_ref();
    let mut unmapped = Map::new();
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            unmapped.insert(k.to_string(), v);
        }
    };
    put("request_id", json!(e.request_id));
    put("client_request_id", json!(e.client_request_id));
    put("action", json!(e.action));
    put("outcome", json!(e.outcome));
    put("reason", json!(e.reason));
    put("grant_id", json!(e.grant_id));
    put("token_id", json!(e.token_id));
    put("model", json!(e.model));
    put("principal_kind", json!(actor.map(|a| a.kind)));
    put(
        "client",
        json!({
            "editor_version": e.client.editor_version,
            "plugin_version": e.client.plugin_version,
            "integration_id": e.client.integration_id,
        }),
    );
    put("policy_ids", json!(e.policy_ids));
    put("findings", findings_json(&e.findings));
    put("prompt", json!(e.prompt));
    put("response", json!(e.response));
    put("upstream_status", json!(e.upstream_status));
    put("upstream_ms", json!(e.upstream_ms));
    put("ttfb_ms", json!(e.ttfb_ms));
    put("upstream_mode", json!(e.upstream_mode));
    put("upstream_login", json!(e.upstream_login));
    put("bytes_in", json!(e.bytes_in));
    put("bytes_out", json!(e.bytes_out));
    let actor_user = actor.map(|a| {
        json!({
            "uid": a.subject,
            "email_addr": a.email,
            "type": a.kind,
            "groups": a.groups.iter().map(|g| json!({"name": g})).collect::<Vec<_>>(),
        })
    });
    ocsf::event(ocsf::Parts {
        record_id: id,
        request_id: e.request_id,
        time_ms,
        duration_ms: e.duration_ms,
        action: e.action,
        outcome: e.outcome,
        status: e.status,
        reason: e.reason,
        method: e.method,
        path: e.path,
        model: e.model,
        user_agent: e.client.user_agent,
        app_name: e.client.editor_version,
        actor_user,
        issuer: actor.map(|a| a.issuer.clone()),
        policy_ids: e.policy_ids,
        client_request_id: e.client_request_id,
        bytes_out: e.bytes_out,
        unmapped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat() -> Exchange {
        Exchange {
            request_id: "r1".into(),
            actor: Some(Actor {
                kind: "human",
                subject: "alice".into(),
                issuer: "https://idp".into(),
                email: Some("alice@example.com".into()),
                groups: vec!["developers".into()],
            }),
            grant_id: Some("req_1".into()),
            method: "POST".into(),
            path: "/chat/completions".into(),
            action: "copilot.chat".into(),
            outcome: "allowed".into(),
            status: 200,
            findings: vec![Found {
                detector: "github-token".into(),
                count: 1,
                positions: vec![12],
                fingerprints: vec!["0011223344556677".into()],
            }],
            prompt: Some("my token is [REDACTED:github-token]".into()),
            upstream_mode: Some("own-seat".into()),
            upstream_login: Some("alice-gh".into()),
            ..Exchange::default()
        }
    }

    #[test]
    fn an_exchange_becomes_an_ocsf_event_with_the_rest_unmapped() {
        let event = record_event(chat(), "aud_1".into(), 1_764_000_000_000);
        let v = Value::Object(event);
        assert_eq!(v["class_uid"], 6003);
        assert_eq!(v["time"], 1_764_000_000_000u64);
        assert_eq!(v["actor"]["user"]["uid"], "alice");
        assert_eq!(v["actor"]["user"]["groups"][0]["name"], "developers");
        assert_eq!(v["unmapped"]["grant_id"], "req_1");
        assert_eq!(v["unmapped"]["principal_kind"], "human");
        assert_eq!(
            v["unmapped"]["findings"][0]["fingerprints"][0],
            "0011223344556677"
        );
        assert_eq!(v["metadata"]["uid"], "aud_1");
        assert_eq!(v["unmapped"]["upstream_mode"], "own-seat");
        assert_eq!(v["unmapped"]["upstream_login"], "alice-gh");
    }

    #[test]
    fn absent_fields_are_left_out() {
        let first = Value::Object(record_event(chat(), "aud_1".into(), 0));
        assert!(first["unmapped"].get("upstream_status").is_none());
        let anonymous = Exchange {
            actor: None,
            ..chat()
        };
        let v = Value::Object(record_event(anonymous, "aud_3".into(), 0));
        assert!(v["unmapped"].get("principal_kind").is_none());
    }
}
