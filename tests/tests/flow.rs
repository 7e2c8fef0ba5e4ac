//! The just-in-time flow, end to end, through the composed artifact over HTTP:
//! request → approval → token → Copilot (plain and streamed) → revoke → audit.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use copilot_jit_audit_log::record::{verify_record, Keyring, Record};
use copilot_jit_testkit::harness::{Body, Stack, APPROVERS, AUDITORS, UPSTREAM_GITHUB_TOKEN};
use copilot_jit_testkit::mock_upstream::StreamScript;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use futures::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const PLANTED_SECRET: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";

struct Client<'a> {
    stack: &'a Stack,
}

impl Client<'_> {
    fn new(stack: &Stack) -> Client<'_> {
        Client { stack }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let body = body.map_or(Body::Empty, Body::Json);
        let answer = self.stack.call(method, path, token, body).await;
        assert!(!answer.trapped(), "component trapped on {method} {path}");
        assert!(
            answer.headers.get("x-github-request-id").is_some(),
            "x-github-request-id missing on {path}"
        );
        let value = serde_json::from_str(&answer.text)
            .unwrap_or_else(|_| panic!("{method} {path} answered non-JSON: {}", answer.text));
        (answer.status, value)
    }
}

fn verify_gateway_token(token: &str, jwks: &Value) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the token's kid is published");
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    let x: [u8; 32] = URL_SAFE_NO_PAD
        .decode(key["x"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let sig: [u8; 64] = URL_SAFE_NO_PAD
        .decode(parts[2])
        .unwrap()
        .try_into()
        .unwrap();
    VerifyingKey::from_bytes(&x)
        .unwrap()
        .verify(
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &Signature::from_bytes(&sig),
        )
        .expect("gateway token verifies with the published key");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

/// Reads an SSE body, noting when the first bytes arrived.
async fn read_stream(resp: reqwest::Response) -> (String, Duration) {
    let started = Instant::now();
    let mut first = None;
    let mut text = Vec::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("stream chunk");
        if first.is_none() && !chunk.is_empty() {
            first = Some(started.elapsed());
        }
        text.extend_from_slice(&chunk);
    }
    (
        String::from_utf8(text).expect("utf-8 stream"),
        first.unwrap_or_default(),
    )
}

fn stream_text(body: &str) -> String {
    let lines: Vec<&str> = body.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines.last(),
        Some(&"data: [DONE]"),
        "stream must end with [DONE]: {body}"
    );
    lines
        .iter()
        .map(|l| {
            l.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("every line is a data line: {l}"))
        })
        .filter(|d| *d != "[DONE]")
        .map(|d| {
            let v: Value = serde_json::from_str(d).expect("one JSON object per data line");
            let c = &v["choices"][0];
            c["delta"]["content"]
                .as_str()
                .or(c["text"].as_str())
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jit_flow_end_to_end() {
    let stack = Stack::start().await.expect("stack starts");
    let client = Client::new(&stack);
    // Calls with client headers or streamed answers go through reqwest directly.
    let http = reqwest::Client::new();
    let alice = stack.person("alice", &["developers"]);
    let bob = stack.person("bob", &[APPROVERS]);
    let dave = stack.person("dave", &[APPROVERS, "developers"]);
    let carol = stack.person("carol", &[AUDITORS]);

    // Request access.
    let ask = json!({"scopes": ["chat", "completions"], "reason": "pairing on the parser", "duration": "30m"});
    let (status, created) = client
        .call(
            "POST",
            "/v1/access-requests",
            Some(&alice),
            Some(ask.clone()),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let request = &created["request"];
    assert_eq!(request["status"], "pending");
    assert_eq!(request["requester"]["subject"], "alice");
    assert_eq!(request["duration_secs"], 1800);
    let id = request["id"].as_str().unwrap().to_string();

    // No token before approval.
    let (status, body) = client
        .call(
            "POST",
            &format!("/v1/grants/{id}/token"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["status"], "pending");

    // The requester is not an approver; an approver may not approve their own request.
    let (status, _) = client
        .call(
            "POST",
            &format!("/v1/access-requests/{id}/approve"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (_, own) = client
        .call(
            "POST",
            "/v1/access-requests",
            Some(&dave),
            Some(ask.clone()),
        )
        .await;
    let own_id = own["request"]["id"].as_str().unwrap();
    let (status, body) = client
        .call(
            "POST",
            &format!("/v1/access-requests/{own_id}/approve"),
            Some(&dave),
            Some(json!({"comment": "me"})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("own request"),
        "{body}"
    );

    // The approver sees the pending request and approves it.
    let (status, listed) = client
        .call(
            "GET",
            "/v1/access-requests?status=pending",
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let mine = listed["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .expect("listed");
    assert_eq!(mine["you_may_decide"], true);
    // A non-approver sees only their own requests.
    let (_, alice_list) = client
        .call("GET", "/v1/access-requests", Some(&alice), None)
        .await;
    assert!(alice_list["requests"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["requester"]["subject"] == "alice"));
    let (status, approved) = client
        .call(
            "POST",
            &format!("/v1/access-requests/{id}/approve"),
            Some(&bob),
            Some(json!({"comment": "ok for today"})),
        )
        .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["request"]["status"], "approved");
    let granted_at = approved["request"]["granted_at"].as_u64().unwrap();
    assert_eq!(
        approved["request"]["expires_at"].as_u64().unwrap(),
        granted_at + 1800
    );
    assert_eq!(
        approved["request"]["decisions"][0]["comment"],
        "ok for today"
    );

    // A short-lived Ed25519 token bound to the grant, verifiable with the JWKS.
    let (status, issued) = client
        .call(
            "POST",
            &format!("/v1/grants/{id}/token"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, 200, "{issued}");
    let token = issued["access_token"].as_str().unwrap().to_string();
    assert!(issued["expires_in"].as_u64().unwrap() <= 900);
    let (_, jwks) = client
        .call("GET", "/.well-known/jwks.json", None, None)
        .await;
    let claims = verify_gateway_token(&token, &jwks);
    assert_eq!(claims["gid"], id.as_str());
    assert_eq!(claims["sub"], "alice");
    assert!(claims["exp"].as_u64().unwrap() <= granted_at + 1800);
    // Bob cannot take Alice's token.
    let (status, _) = client
        .call("POST", &format!("/v1/grants/{id}/token"), Some(&bob), None)
        .await;
    assert_eq!(status, 403);

    // Copilot chat, not streamed: the prompt's secret is redacted before it leaves.
    let chat = json!({"model": "gpt-4o", "stream": false, "messages": [
        {"role": "user", "content": format!("why does {PLANTED_SECRET} fail?")}
    ]});
    let resp = http
        .post(format!("{}/chat/completions", stack.url))
        .bearer_auth(&token)
        .header("x-request-id", "client-req-1")
        .header("openai-intent", "conversation-panel")
        .header("x-initiator", "user")
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "client-req-1");
    let text = resp.text().await.unwrap();
    assert!(!text.contains(UPSTREAM_GITHUB_TOKEN));
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Hello from mock Copilot"
    );
    let sent = stack.upstream.requests();
    let upstream_chat = sent
        .iter()
        .rev()
        .find(|r| r.path == "/chat/completions")
        .expect("proxied");
    let upstream_auth = upstream_chat.authorization.clone().unwrap();
    assert!(
        upstream_auth.starts_with("Bearer tid="),
        "the gateway-held Copilot token is used: {upstream_auth}"
    );
    assert!(!upstream_auth.contains(&token));
    let forwarded: Value = serde_json::from_slice(&upstream_chat.body).unwrap();
    let prompt = forwarded["messages"][0]["content"].as_str().unwrap();
    assert!(
        !prompt.contains(PLANTED_SECRET) && prompt.contains("[REDACTED:github-token]"),
        "{prompt}"
    );
    let header = |name: &str| {
        upstream_chat
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("x-request-id").as_deref(), Some("client-req-1"));
    assert_eq!(
        header("openai-intent").as_deref(),
        Some("conversation-panel")
    );
    assert_eq!(header("x-initiator").as_deref(), Some("user"));
    assert!(stack
        .upstream
        .requests()
        .iter()
        .filter(|r| r.path == "/copilot_internal/v2/token")
        .all(|r| {
            r.authorization.as_deref() == Some(&format!("token {UPSTREAM_GITHUB_TOKEN}"))
        }));

    // Streamed chat: a secret split across events is masked, and the first
    // bytes reach the client while upstream is still generating.
    stack.upstream.script_stream(StreamScript {
        pieces: vec![
            "Use ".into(),
            "ghp_0123456789abcdef".into(),
            "ghijABCDEFGHIJ012345".into(),
            " to log in.".into(),
        ],
        delay: Duration::from_millis(400),
        cut_after: None,
    });
    let started = Instant::now();
    let resp = http
        .post(format!("{}/chat/completions", stack.url))
        .bearer_auth(&token)
        .json(&json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "login?"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (body, first_byte) = read_stream(resp).await;
    let total = started.elapsed();
    assert!(
        total >= Duration::from_millis(2000),
        "upstream streams over ~2.4s, took {total:?}"
    );
    assert!(
        first_byte < total / 2,
        "first bytes after {first_byte:?} of {total:?}: the stream was buffered"
    );
    assert!(
        !body.contains("ghp_") && !body.contains("0123456789abcdef"),
        "secret leaked: {body}"
    );
    assert_eq!(stream_text(&body), "Use [REDACTED:github-token] to log in.");
    assert!(
        body.contains("\"content_filter_results\""),
        "upstream fields are kept"
    );

    // Streamed completions through the proxy endpoint.
    stack.upstream.script_stream(StreamScript::default());
    let resp = http
        .post(format!("{}/v1/engines/gpt-41-copilot/completions", stack.url))
        .bearer_auth(&token)
        .json(&json!({"prompt": "def add(a, b):", "suffix": "", "max_tokens": 50, "n": 1, "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (body, _) = read_stream(resp).await;
    assert_eq!(stream_text(&body), "Hello from mock Copilot");

    // The Copilot token was exchanged once and reused from the cache.
    assert_eq!(stack.upstream.exchanges(), 1);
    assert_eq!(
        stack.upstream.leaks(),
        0,
        "a gateway token reached the upstream"
    );

    // Revoke: the very next call with the same token is refused.
    let (status, revoked) = client
        .call(
            "POST",
            &format!("/v1/grants/{id}/revoke"),
            Some(&bob),
            Some(json!({"comment": "done"})),
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["request"]["status"], "revoked");
    let (status, refused) = client
        .call(
            "POST",
            "/chat/completions",
            Some(&token),
            Some(chat.clone()),
        )
        .await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["code"], "grant_not_active");
    assert!(refused["error"]["how_to_request_access"]["request"]["url"]
        .as_str()
        .unwrap()
        .ends_with("/v1/access-requests"));

    // The auditor reads back every call on this grant, allowed and denied;
    // without a bucket the log's day partitions are indexed in KV, so
    // reading and sealing never list the store's keys.
    let listings = stack.gateway.kv().stats().listings();
    let (status, _) = client
        .call("GET", "/v1/audit/records", Some(&alice), None)
        .await;
    assert_eq!(status, 403, "only auditors read the trail");
    let (status, audit) = client
        .call(
            "GET",
            &format!("/v1/audit/records?grant={id}"),
            Some(&carol),
            None,
        )
        .await;
    assert_eq!(status, 200, "{audit}");
    let records = audit["records"].as_array().unwrap();
    let actions: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["unmapped"]["action"].as_str().unwrap(),
                r["unmapped"]["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    for expected in [
        ("access.request", "allowed"),
        ("access.approve", "denied"),
        ("access.approve", "allowed"),
        ("grant.token", "allowed"),
        ("copilot.chat", "allowed"),
        ("copilot.completions", "allowed"),
        ("grant.revoke", "allowed"),
        ("copilot.chat", "denied"),
    ] {
        assert!(
            actions.contains(&expected),
            "missing {expected:?} in {actions:?}"
        );
    }
    let chat_record = records
        .iter()
        .find(|r| r["unmapped"]["client_request_id"] == "client-req-1")
        .expect("the client's request id is recorded");
    let finding = &chat_record["unmapped"]["findings"][0];
    assert_eq!(finding["detector"], "github-token");
    assert_eq!(finding["count"], 1);
    assert!(finding["positions"][0].is_u64(), "where it was: {finding}");
    let fingerprint = finding["fingerprints"][0]
        .as_str()
        .expect("a keyed fingerprint");
    assert!(fingerprint.len() == 16 && fingerprint.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(chat_record["actor"]["user"]["uid"], "alice");
    assert_eq!(chat_record["unmapped"]["upstream_status"], 200);

    // Every record is a signed OCSF event, in time order.
    let (_, all) = client
        .call("GET", "/v1/audit/records?limit=1000", Some(&carol), None)
        .await;
    let all = all["records"].as_array().unwrap();
    let ids: Vec<&str> = all
        .iter()
        .map(|r| r["metadata"]["uid"].as_str().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "time order: {ids:?}");
    for r in all {
        assert_eq!(r["class_uid"], 6003, "each record is an OCSF API Activity");
        assert_eq!(r["integrity"]["v"], 2);
    }
    // ...and its signatures verify under the key the gateway publishes.
    let (status, audit_status) = client
        .call("GET", "/v1/audit/status", Some(&carol), None)
        .await;
    assert_eq!(status, 200, "{audit_status}");
    assert_eq!(audit_status["storage"], "kv");
    assert_eq!(audit_status["records_lost"], 0);
    let mut keys = Keyring::default();
    keys.add_encoded(audit_status["public_key"]["x"].as_str().unwrap())
        .unwrap();
    for r in all {
        let record: Record = serde_json::from_value(r.clone()).unwrap();
        assert_eq!(verify_record(&record, &keys), Ok(()), "{r}");
    }
    // Without a bucket the log is sealed in KV, the same way.
    let (status, sealed) = client
        .call("POST", "/v1/audit/seal", Some(&carol), None)
        .await;
    assert_eq!(status, 200, "{sealed}");
    assert!(
        sealed["size"].as_u64() >= Some(all.len() as u64),
        "{sealed}"
    );
    let (_, audit_status) = client
        .call("GET", "/v1/audit/status", Some(&carol), None)
        .await;
    assert_eq!(
        audit_status["log"]["size"], sealed["size"],
        "{audit_status}"
    );
    assert!(audit_status["log"]["checkpoint"]
        .as_str()
        .is_some_and(|c| c.contains("\n\n\u{2014} ")));
    assert_eq!(
        stack.gateway.kv().stats().listings(),
        listings,
        "the audit trail was read by listing the store's keys"
    );

    // No record holds a credential or the planted secret.
    let upstream_copilot_token = upstream_auth.trim_start_matches("Bearer ").to_string();
    let stored = stack.gateway.kv().snapshot("default").await.unwrap();
    let audit_bytes: Vec<u8> = stored
        .iter()
        .filter(|(k, _)| k.starts_with("audit-object:"))
        .flat_map(|(_, v)| v.clone())
        .collect();
    let audit_text = String::from_utf8_lossy(&audit_bytes);
    assert!(audit_text.contains("github-token"), "findings are recorded");
    for canary in [
        PLANTED_SECRET,
        UPSTREAM_GITHUB_TOKEN,
        &upstream_copilot_token,
        &token,
        &alice,
        &bob,
    ] {
        assert!(
            !audit_text.contains(canary),
            "audit trail holds a secret: {}…",
            &canary[..12]
        );
    }
}
