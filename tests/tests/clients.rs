//! Real Copilot clients, unchanged, pointed at the gateway: the requests the
//! language server and VS Code make (see the protocol reference), answered as
//! they expect, with the gateway's checks in between.

use copilot_jit_testkit::harness::{
    eventually, Stack, StackOptions, APPROVERS, AUDITORS, UPSTREAM_GITHUB_TOKEN,
};
use copilot_jit_testkit::mock_upstream::{Failure, StreamScript};
use futures::StreamExt;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use std::time::Duration;

/// The headers the language server sends on API calls.
fn ls_headers(req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    req.header("user-agent", "GithubCopilot/1.539.0")
        .header("editor-version", "JetBrains-IC/2026.1")
        .header("editor-plugin-version", "copilot-intellij/1.5.0")
        .header("copilot-language-server-version", "1.539.0")
        .header("accept-encoding", "br, gzip, deflate")
}

async fn get(stack: &Stack, path: &str, auth: Option<&str>) -> (u16, HeaderMap, Value) {
    let mut req = ls_headers(reqwest::Client::new().get(format!("{}{path}", stack.url)));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.expect("reachable");
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    assert!(headers.get("x-test-host-trap").is_none(), "trap on {path}");
    assert!(
        headers.get("x-github-request-id").is_some(),
        "x-github-request-id missing on {path}"
    );
    let text = resp.text().await.expect("body");
    assert!(
        !text.contains(UPSTREAM_GITHUB_TOKEN),
        "upstream credential leaked on {path}"
    );
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// A grant for alice over `scopes` and `models`, and her gateway token.
async fn grant(stack: &Stack, scopes: &[&str], models: &[&str]) -> (String, String) {
    stack
        .approved_grant(scopes, models, None)
        .await
        .expect("approved grant")
}

fn parse_token_fields(token: &str) -> Vec<(String, String)> {
    // As clients do: token.split(':')[0].split(';'), then key=value.
    token
        .split(':')
        .next()
        .unwrap_or("")
        .split(';')
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_language_server_sequence_works_through_the_gateway() {
    let stack = Stack::start().await.expect("stack");
    let (grant_id, gateway_token) = grant(&stack, &["chat", "completions"], &[]).await;

    // 1. Token exchange, in both header styles.
    for auth in [
        format!("Bearer {gateway_token}"),
        format!("token {gateway_token}"),
    ] {
        let (status, _, envelope) = get(&stack, "/copilot_internal/v2/token", Some(&auth)).await;
        assert_eq!(status, 200, "{envelope}");
        let token = envelope["token"].as_str().expect("token");
        let fields = parse_token_fields(token);
        let field = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.clone());
        assert_eq!(field("chat").as_deref(), Some("1"));
        assert!(field("tid").is_some());
        let expires_at = envelope["expires_at"].as_u64().unwrap();
        assert_eq!(field("exp"), Some(expires_at.to_string()));
        let refresh_in = envelope["refresh_in"].as_u64().unwrap();
        let now = copilot_jit_testkit::dev_issuer::now();
        assert!(
            now + refresh_in < expires_at,
            "clients refresh before expiry"
        );
        assert!(expires_at <= now + 3600 + 5, "never beyond the grant");
        for endpoint in ["api", "proxy", "telemetry"] {
            assert_eq!(envelope["endpoints"][endpoint], stack.url.as_str());
        }
    }
    let (_, _, envelope) = get(
        &stack,
        "/copilot_internal/v2/token",
        Some(&format!("Bearer {gateway_token}")),
    )
    .await;
    let copilot_token = envelope["token"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {copilot_token}");

    // 2. User info and telemetry (accepted, dropped, never upstream).
    let (status, _, user) = get(
        &stack,
        "/copilot_internal/user",
        Some(&format!("Bearer {gateway_token}")),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(user["chat_enabled"], true);
    let (status, _, _) = get(&stack, "/telemetry", None).await;
    assert_eq!(status, 200);
    let posted = reqwest::Client::new()
        .post(format!("{}/telemetry", stack.url))
        .json(&json!([{"name": "event"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);

    // 3. Models, with every field the language server requires.
    let (status, _, models) = get(&stack, "/models", Some(&bearer)).await;
    assert_eq!(status, 200, "{models}");
    let data = models["data"].as_array().expect("model list");
    assert!(!data.is_empty());
    for m in data {
        for key in ["id", "name", "version", "model_picker_enabled", "object"] {
            assert!(!m[key].is_null(), "{key} missing in {m}");
        }
        for key in ["type", "tokenizer", "family", "object"] {
            assert!(
                !m["capabilities"][key].is_null(),
                "capabilities.{key} missing in {m}"
            );
        }
    }
    let (status, _, agents) = get(&stack, "/agents", Some(&bearer)).await;
    assert_eq!((status, agents), (200, json!({"agents": []})));

    // 4. Ghost-text completions and chat with the envelope token, headers that
    //    steer routing and billing forwarded unchanged, plain text upstream.
    let resp = ls_headers(reqwest::Client::new().post(format!("{}/v1/engines/gpt-41-copilot/completions", stack.url)))
        .header("authorization", &bearer)
        .header("openai-intent", "copilot-ghost")
        .header("x-github-api-version", "2025-05-01")
        .header("x-request-id", "ls-req-1")
        .json(&json!({"prompt": "def add(a, b):", "suffix": "", "max_tokens": 500, "n": 3, "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "ls-req-1");
    let body = resp.text().await.unwrap();
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    let resp = ls_headers(reqwest::Client::new().post(format!("{}/chat/completions", stack.url)))
        .header("authorization", &bearer)
        .header("copilot-integration-id", "jetbrains-chat")
        .header("openai-intent", "conversation-panel")
        .header("x-initiator", "agent")
        .json(&json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    let sent = stack.upstream.requests();
    let completion = sent
        .iter()
        .find(|r| r.path.starts_with("/v1/engines/"))
        .expect("completion proxied");
    let chat = sent
        .iter()
        .rev()
        .find(|r| r.path == "/chat/completions")
        .expect("chat proxied");
    let h = |r: &copilot_jit_testkit::mock_upstream::Recorded, k: &str| {
        r.headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        h(completion, "openai-intent").as_deref(),
        Some("copilot-ghost")
    );
    assert_eq!(
        h(completion, "x-github-api-version").as_deref(),
        Some("2025-05-01")
    );
    assert_eq!(
        h(completion, "editor-version").as_deref(),
        Some("JetBrains-IC/2026.1")
    );
    assert_eq!(
        h(completion, "editor-plugin-version").as_deref(),
        Some("copilot-intellij/1.5.0")
    );
    assert_eq!(h(completion, "x-request-id").as_deref(), Some("ls-req-1"));
    assert_eq!(
        h(completion, "accept-encoding").as_deref(),
        Some("identity")
    );
    assert_eq!(
        h(chat, "copilot-integration-id").as_deref(),
        Some("jetbrains-chat")
    );
    assert_eq!(h(chat, "x-initiator").as_deref(), Some("agent"));
    assert!(
        sent.iter().all(|r| r.path != "/telemetry"),
        "telemetry never goes upstream"
    );
    assert!(sent
        .iter()
        .all(|r| !r.authorization.clone().unwrap_or_default().contains("jit=")));
    assert_eq!(stack.upstream.leaks(), 0);

    // 5. Revoked: the exchange answers the envelope clients display.
    let bob = stack.person("bob", &[APPROVERS]);
    let revoked = reqwest::Client::new()
        .post(format!("{}/v1/grants/{grant_id}/revoke", stack.url))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let (status, _, refused) = get(
        &stack,
        "/copilot_internal/v2/token",
        Some(&format!("Bearer {gateway_token}")),
    )
    .await;
    assert_eq!(status, 403, "{refused}");
    let message = refused["error_details"]["message"]
        .as_str()
        .expect("error_details.message");
    assert!(message.contains("revoked"), "{message}");
    assert!(refused["error_details"]["url"]
        .as_str()
        .unwrap()
        .ends_with("/v1/access-requests"));
    let (status, _, _) = get(&stack, "/models", Some(&bearer)).await;
    assert_eq!(status, 403, "the envelope token dies with the grant");
    let (status, _, _) = get(&stack, "/copilot_internal/v2/token", Some("Bearer garbage")).await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_are_limited_to_the_grant() {
    let stack = Stack::start().await.expect("stack");
    let (_, token) = grant(&stack, &["chat"], &["gpt-4o"]).await;
    let bearer = format!("Bearer {token}");
    let (status, _, models) = get(&stack, "/models", Some(&bearer)).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, vec!["gpt-4o"]);
    let (status, _, _) = get(&stack, "/models/gpt-41-copilot", Some(&bearer)).await;
    assert_eq!(status, 404);
    let refused = reqwest::Client::new()
        .post(format!("{}/chat/completions", stack.url))
        .header("authorization", &bearer)
        .json(&json!({"model": "o1", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    // A scope the grant lacks.
    let refused = reqwest::Client::new()
        .post(format!("{}/v1/engines/gpt-4o/completions", stack.url))
        .header("authorization", &bearer)
        .json(&json!({"prompt": "x", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_reach_clients_as_they_understand_them() {
    let stack = Stack::start().await.expect("stack");
    let (_, token) = grant(&stack, &["chat"], &[]).await;
    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    let post = || {
        reqwest::Client::new()
            .post(format!("{}/chat/completions", stack.url))
            .bearer_auth(&token)
            .json(&chat)
            .send()
    };
    stack.upstream.fail_next_with(Failure {
        status: 429,
        body: json!({"error": {"message": "rate limited", "code": "rate_limited"}}),
        retry_after: Some(17),
    });
    let resp = post().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "17");
    stack.upstream.fail_next(
        402,
        json!({"error": {"message": "quota_exceeded: monthly"}}),
    );
    let resp = post().await.unwrap();
    assert_eq!(resp.status(), 402);
    assert!(resp.text().await.unwrap().contains("quota_exceeded"));
    stack
        .upstream
        .fail_next(466, json!("client version not supported"));
    let resp = post().await.unwrap();
    assert_eq!(resp.status(), 466);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("client version not supported"));
    stack
        .upstream
        .fail_next(503, json!({"error": {"message": "unavailable"}}));
    assert_eq!(post().await.unwrap().status(), 503);
    // Upstream refuses the gateway twice (after one refresh): not the
    // client's fault, so not a 401 that would make it drop its token.
    stack.upstream.fail_next(401, json!({"message": "bad"}));
    stack.upstream.fail_next(401, json!({"message": "bad"}));
    let resp = post().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(post().await.unwrap().status(), 200, "healthy again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_cancels_upstream_and_a_retry_is_recognised() {
    let stack = Stack::start().await.expect("stack");
    let (grant_id, token) = grant(&stack, &["chat"], &[]).await;
    stack.upstream.script_stream(StreamScript {
        pieces: (0..8).map(|i| format!("piece {i} ")).collect(),
        delay: Duration::from_millis(250),
        cut_after: None,
    });
    let resp = reqwest::Client::new()
        .post(format!("{}/chat/completions", stack.url))
        .bearer_auth(&token)
        .header("x-request-id", "retry-me")
        .json(&json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let first = body.next().await.expect("first bytes").expect("chunk");
    assert!(!first.is_empty());
    drop(body); // the editor moved on
                // The gateway notices the drop and cancels upstream after it answered.
    let cancelled =
        eventually(|| async { (stack.upstream.cancelled_streams() >= 1).then_some(()) }).await;
    assert!(cancelled.is_some(), "upstream was not cancelled");

    // The client retries with the same X-Request-Id.
    stack.upstream.script_stream(StreamScript::default());
    let resp = reqwest::Client::new()
        .post(format!("{}/chat/completions", stack.url))
        .bearer_auth(&token)
        .header("x-request-id", "retry-me")
        .json(&json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert!(resp.text().await.unwrap().ends_with("data: [DONE]\n\n"));

    // Retries are linked when the trail is read (no per-call state).
    let carol = stack.person("carol", &[AUDITORS]);
    let trail: Value = reqwest::Client::new()
        .get(format!(
            "{}/v1/audit/records?limit=10000&grant={grant_id}",
            stack.url
        ))
        .bearer_auth(&carol)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let calls: Vec<&Value> = trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["unmapped"]["client_request_id"] == "retry-me")
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["unmapped"]["outcome"], "cancelled");
    assert_eq!(calls[1]["unmapped"]["outcome"], "allowed");
    let first = calls[0]["metadata"]["uid"].as_str().unwrap();
    let second = calls[1]["metadata"]["uid"].as_str().unwrap();
    assert!(trail["retries"].get(first).is_none());
    assert_eq!(trail["retries"][second], first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_and_messages_apis_are_proxied_and_masked() {
    let stack = Stack::start().await.expect("stack");
    let (_, token) = grant(&stack, &["chat"], &[]).await;
    let secret = "AKIAIOSFODNN7EXAMPLE";
    stack.upstream.set_reply(&format!("the key is {secret}"));
    for (path, body) in [
        (
            "/responses",
            json!({"model": "gpt-4o", "input": [{"role": "user", "content": [{"type": "input_text", "text": format!("use {secret}")}]}]}),
        ),
        (
            "/v1/messages",
            json!({"model": "claude", "max_tokens": 10, "system": "be brief", "messages": [{"role": "user", "content": format!("use {secret}")}]}),
        ),
    ] {
        let resp = reqwest::Client::new()
            .post(format!("{}{path}", stack.url))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let text = resp.text().await.unwrap();
        assert!(
            !text.contains(secret) && text.contains("[REDACTED:aws-access-key-id]"),
            "{path}: {text}"
        );
        let sent = stack.upstream.requests();
        let upstream = sent.iter().rev().find(|r| r.path == path).expect("proxied");
        assert!(
            !String::from_utf8_lossy(&upstream.body).contains(secret),
            "{path}: prompt not redacted"
        );
        // Streamed: a secret split across events is masked, event lines kept.
        stack.upstream.script_stream(StreamScript {
            pieces: vec![
                "the key is AKIAIOSF".into(),
                "ODNN7EXAMPLE".into(),
                " ok".into(),
            ],
            delay: Duration::from_millis(5),
            cut_after: None,
        });
        let mut streamed = body.clone();
        streamed["stream"] = json!(true);
        let resp = reqwest::Client::new()
            .post(format!("{}{path}", stack.url))
            .bearer_auth(&token)
            .json(&streamed)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let text = resp.text().await.unwrap();
        assert!(
            !text.contains("ODNN7EXAMPLE") && !text.contains(secret),
            "{path}: {text}"
        );
        assert!(
            text.contains("[REDACTED:aws-access-key-id]"),
            "{path}: {text}"
        );
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if let Some(data) = line.strip_prefix("data: ") {
                let event: Value =
                    serde_json::from_str(data).expect("one JSON object per data line");
                assert_eq!(
                    lines[i - 1],
                    format!("event: {}", event["type"].as_str().unwrap()),
                    "{path}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ide_token_can_last_the_grant() {
    let stack = Stack::start().await.expect("stack");
    let (grant_id, _) = grant(&stack, &["chat"], &[]).await;
    let alice = stack.person("alice", &["developers"]);
    let ask = |body: Value| {
        reqwest::Client::new()
            .post(format!("{}/v1/grants/{grant_id}/token", stack.url))
            .bearer_auth(&alice)
            .json(&body)
            .send()
    };
    let short: Value = ask(json!({})).await.unwrap().json().await.unwrap();
    assert!(short["expires_in"].as_u64().unwrap() <= 900);
    let long: Value = ask(json!({"ttl": "grant"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let expires_in = long["expires_in"].as_u64().unwrap();
    assert!(expires_in > 3500 && expires_in <= 3600, "{long}");
    let ten: Value = ask(json!({"ttl": "10m"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(ten["expires_in"].as_u64().unwrap() <= 600);
    assert_eq!(ask(json!({"ttl": "forever"})).await.unwrap().status(), 400);
    assert_eq!(ask(json!({"lifetime": 5})).await.unwrap().status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masking_follows_the_policy_file_and_the_callers_groups() {
    let stack = Stack::start().await.expect("stack");
    stack
        .upstream
        .set_reply("ask bob@example.com on build7.corp.acme.example about Project Nightingale");
    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "who?"}]});
    let answer = |token: String| {
        let chat = chat.clone();
        let url = format!("{}/chat/completions", stack.url);
        async move {
            let body: Value = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&chat)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or("")
                .to_string()
        }
    };
    // A developer sees personal data and internal names redacted.
    let (_, developer) = grant(&stack, &["chat"], &[]).await;
    assert_eq!(
        answer(developer).await,
        "ask [REDACTED:email] on [REDACTED:internal-hostname] about [REDACTED:project-codename]"
    );
    // The security team may see e-mail addresses (policies/detectors.toml).
    let client = reqwest::Client::new();
    let sam = stack.person("sam", &["security-team", "developers"]);
    let bob = stack.person("bob", &[APPROVERS]);
    let created: Value = client
        .post(format!("{}/v1/access-requests", stack.url))
        .bearer_auth(&sam)
        .json(&json!({"scopes": ["chat"], "reason": "incident"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["request"]["id"].as_str().unwrap();
    client
        .post(format!("{}/v1/access-requests/{id}/approve", stack.url))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    let issued: Value = client
        .post(format!("{}/v1/grants/{id}/token", stack.url))
        .bearer_auth(&sam)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let security = issued["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        answer(security.clone()).await,
        "ask bob@example.com on [REDACTED:internal-hostname] about [REDACTED:project-codename]"
    );
    // The marker blocks a developer's prompt but only redacts the security team's.
    let marked = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "summarise this CONFIDENTIAL memo"}]});
    let (_, developer) = grant(&stack, &["chat"], &[]).await;
    for (token, expected) in [(developer, 403), (security, 200)] {
        let status = reqwest::Client::new()
            .post(format!("{}/chat/completions", stack.url))
            .bearer_auth(token)
            .json(&marked)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_that_cannot_be_inspected_never_pass() {
    let chat =
        json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    for (policy, ends_early) in [("fail", true), ("drop", false)] {
        let stack = copilot_jit_testkit::harness::Stack::start_with(
            copilot_jit_testkit::harness::StackOptions {
                variables: std::collections::HashMap::from([(
                    "masking_unparseable_frames".to_string(),
                    policy.to_string(),
                )]),
                ..Default::default()
            },
        )
        .await
        .expect("stack");
        let (grant_id, token) = grant(&stack, &["chat"], &[]).await;
        stack
            .upstream
            .inject_frame("data: {\"choices\":[{\"delta\":{\"content\":\"ghp_0123456789abcdefghijABCDEFGHIJ012345\"}}\n\n");
        let body = reqwest::Client::new()
            .post(format!("{}/chat/completions", stack.url))
            .bearer_auth(&token)
            .json(&chat)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !body.contains("ghp_"),
            "{policy}: uninspected text leaked: {body}"
        );
        if ends_early {
            assert!(body.contains("gateway_stream_error"), "{policy}: {body}");
            assert!(
                !body.contains("[DONE]"),
                "{policy}: the stream must end at the bad frame"
            );
        } else {
            assert!(body.ends_with("data: [DONE]\n\n"), "{policy}: {body}");
            assert!(
                body.contains("Hello"),
                "{policy}: the rest of the stream continues"
            );
        }
        let records = stack
            .audit_records(&format!("grant={grant_id}"))
            .await
            .expect("audit");
        let reason = records
            .iter()
            .rev()
            .find(|r| r["unmapped"]["action"] == "copilot.chat")
            .and_then(|r| r["unmapped"]["reason"].as_str().map(str::to_string))
            .unwrap_or_default();
        assert!(
            reason.contains("could not be inspected") || reason.contains("dropped"),
            "{policy}: {reason}"
        );
    }
}

/// Telemetry is dropped by default (the flow test checks nothing reaches
/// upstream); with `telemetry_forward` it goes on masked and without any
/// credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_forwarding_is_masked_and_carries_no_credential() {
    let stack = Stack::start_with(StackOptions {
        variables: [("telemetry_forward".to_string(), "true".to_string())].into(),
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let (_, gateway_token) = stack
        .approved_grant(&["completions"], &[], None)
        .await
        .unwrap();
    let secret = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    let posted = reqwest::Client::new()
        .post(format!("{}/telemetry", stack.url))
        .bearer_auth(&gateway_token)
        .header("content-type", "application/x-json-stream")
        .body(format!(
            r#"{{"name":"copilot/ghostText.shown","data":{{"snippet":"token = {secret}"}}}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    let sent = stack.upstream.requests();
    let forwarded = sent
        .iter()
        .find(|r| r.path == "/telemetry")
        .expect("telemetry forwarded");
    assert!(
        forwarded.authorization.is_none(),
        "no credential travels with telemetry"
    );
    let body = String::from_utf8_lossy(&forwarded.body);
    assert!(!body.contains(secret), "{body}");
    assert!(body.contains("[REDACTED:github-token]"), "{body}");
    assert_eq!(
        forwarded
            .headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| v.as_str()),
        Some("application/x-json-stream")
    );
    assert_eq!(stack.upstream.leaks(), 0);
}
