//! Holes a security review found in prompt and answer inspection, each
//! driven through the composed artifact: tool results and nested content,
//! answer fields outside the usual ones, tokens longer than the stream
//! window, findings of streamed answers, calls that name no model.

use copilot_jit_testkit::harness::{Stack, StackOptions};
use copilot_jit_testkit::mock_upstream::StreamScript;
use serde_json::{json, Value};
use std::time::Duration;

const PEM: &str =
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA2\n-----END RSA PRIVATE KEY-----";
const AWS: &str = "AKIAIOSFODNN7EXAMPLE";
const GH: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";

async fn post(
    stack: &Stack,
    path: &str,
    token: &str,
    request_id: &str,
    body: Value,
) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", stack.url))
        .bearer_auth(token)
        .header("x-request-id", request_id)
        .json(&body)
        .send()
        .await
        .expect("gateway reachable");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

fn detectors(record: &Value) -> Vec<String> {
    record["unmapped"]["findings"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|f| f["detector"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn upstream_saw(stack: &Stack, path: &str, needle: &str) -> bool {
    stack
        .upstream
        .requests()
        .iter()
        .filter(|r| r.path == path)
        .any(|r| String::from_utf8_lossy(&r.body).contains(needle))
}

/// A streamed chat call whose answer upstream sends as `pieces`.
async fn streamed_chat(
    stack: &Stack,
    token: &str,
    request_id: &str,
    pieces: Vec<String>,
) -> (u16, String) {
    stack.upstream.script_stream(StreamScript {
        pieces,
        delay: Duration::from_millis(0),
        cut_after: None,
    });
    post(
        stack,
        "/chat/completions",
        token,
        request_id,
        json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
}

#[tokio::test]
async fn tool_results_and_nested_prompt_content_are_inspected() {
    let stack = Stack::start().await.expect("stack");
    let (grant, token) = stack
        .approved_grant(&["chat"], &[], None)
        .await
        .expect("grant");
    // An Anthropic tool result holding a private key: `private-key = block`.
    let (status, body) = post(
        &stack,
        "/v1/messages",
        &token,
        "tool-result-pem",
        json!({"model": "claude-sonnet-4", "max_tokens": 10, "messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": PEM}]}
        ]}]}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("prompt_blocked") && body.contains("private-key"),
        "{body}"
    );
    assert!(!upstream_saw(&stack, "/v1/messages", "PRIVATE KEY"));
    let record = stack.call_record(&grant, "tool-result-pem").await;
    assert!(
        detectors(&record).contains(&"private-key".to_string()),
        "{record}"
    );

    // Responses: a function output given as parts, and a reasoning summary.
    let (status, body) = post(
        &stack,
        "/responses",
        &token,
        "responses-nested",
        json!({"model": "gpt-4o", "input": [
            {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": format!("key {AWS}")}]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": format!("saw {GH}")}]}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !upstream_saw(&stack, "/responses", AWS),
        "function output passed"
    );
    assert!(
        !upstream_saw(&stack, "/responses", GH),
        "reasoning summary passed"
    );
    let record = stack.call_record(&grant, "responses-nested").await;
    let found = detectors(&record);
    assert!(
        found.contains(&"aws-access-key-id".to_string()),
        "{found:?}"
    );
    assert!(found.contains(&"github-token".to_string()), "{found:?}");
}

#[tokio::test]
async fn chat_answers_are_masked_in_every_field() {
    let stack = Stack::start().await.expect("stack");
    let (_, token) = stack
        .approved_grant(&["chat"], &[], None)
        .await
        .expect("grant");
    // Streamed: a frame without `choices`, a refusal, content as parts.
    stack.upstream.inject_frame(&format!(
        "data: {}\n\ndata: {}\n\ndata: {}\n\n",
        json!({"error": {"message": format!("upstream echoed {GH}")}}),
        json!({"id": "c1", "choices": [{"index": 0, "delta": {"refusal": format!("no: {AWS}")}}]}),
        json!({"id": "c1", "choices": [{"index": 0, "delta": {"content": [{"type": "text", "text": GH}]}}]}),
    ));
    let (status, text) = post(
        &stack,
        "/chat/completions",
        &token,
        "chat-every-field",
        json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains(GH) && !text.contains(AWS), "{text}");
    assert!(
        text.contains("[REDACTED:github-token]") && text.contains("[REDACTED:aws-access-key-id]")
    );

    // Whole: refusal and reasoning fields of the message.
    stack.upstream.fail_next(
        200,
        json!({"id": "chatcmpl-x", "object": "chat.completion", "model": "gpt-4o", "choices": [{
            "index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": null, "refusal": format!("cannot use {AWS}"),
                        "reasoning_text": format!("the token {GH}")}
        }]}),
    );
    let (status, text) = post(
        &stack,
        "/chat/completions",
        &token,
        "chat-whole-every-field",
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).expect("JSON");
    let message = &body["choices"][0]["message"];
    assert_eq!(
        message["refusal"],
        "cannot use [REDACTED:aws-access-key-id]"
    );
    assert_eq!(
        message["reasoning_text"],
        "the token [REDACTED:github-token]"
    );
    assert_eq!(body["model"], "gpt-4o");
}

fn long_jwt() -> String {
    // An ID token for someone in many groups: well past any stream window.
    format!(
        "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJ{}.{}",
        "Z3JvdXBzIjpbImVuZ2luZWVyaW5nIl0s".repeat(200),
        "c2lnbmF0dXJl".repeat(30)
    )
}

#[tokio::test]
async fn tokens_longer_than_the_stream_window_are_never_released() {
    let stack = Stack::start_with(StackOptions {
        variables: [("masking_hold_back_bytes".to_string(), "256".to_string())].into(),
        ..StackOptions::default()
    })
    .await
    .expect("stack");
    let (grant, token) = stack
        .approved_grant(&["chat"], &[], None)
        .await
        .expect("grant");
    let jwt = long_jwt();
    assert!(jwt.len() > 6000);
    // Whole prompts are not bounded by the stream window.
    let (status, body) = post(
        &stack,
        "/chat/completions",
        &token,
        "long-jwt-prompt",
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": format!("my token: {jwt} thanks")}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(!upstream_saw(&stack, "/chat/completions", "Z3JvdXBz"));
    assert!(upstream_saw(
        &stack,
        "/chat/completions",
        "my token: [REDACTED:jwt] thanks"
    ));
    // A streamed answer carrying it in small pieces: redacted from its start.
    let pieces: Vec<String> = format!("here: {jwt} done")
        .as_bytes()
        .chunks(40)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let (status, text) = streamed_chat(&stack, &token, "long-jwt-stream", pieces).await;
    assert_eq!(status, 200);
    assert!(
        !text.contains("Z3JvdXBz") && !text.contains("eyJhbGci"),
        "released"
    );
    assert!(text.contains("[REDACTED:jwt]"), "{text}");
    let record = stack.call_record(&grant, "long-jwt-stream").await;
    assert!(detectors(&record).contains(&"jwt".to_string()), "{record}");
}

#[tokio::test]
async fn streamed_answers_findings_are_audited() {
    let stack = Stack::start().await.expect("stack");
    let (grant, token) = stack
        .approved_grant(&["chat"], &[], None)
        .await
        .expect("grant");
    let pieces = [
        "your key: AKIAIOSF",
        "ODNN7EXAMPLE, mail ",
        "ops@example.com",
    ];
    let pieces = pieces.iter().map(|p| p.to_string()).collect();
    let (status, text) = streamed_chat(&stack, &token, "streamed-findings", pieces).await;
    assert_eq!(status, 200);
    assert!(!text.contains("ODNN7EXAMPLE"));
    let record = stack.call_record(&grant, "streamed-findings").await;
    let found = detectors(&record);
    assert!(found.contains(&"aws-access-key-id".to_string()), "{record}");
    assert!(found.contains(&"email".to_string()), "{record}");
    let findings = record["unmapped"]["findings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        findings
            .iter()
            .all(|f| f["fingerprints"].as_array().is_some_and(|p| !p.is_empty())),
        "streamed findings carry fingerprints like whole ones: {findings:?}"
    );
}

#[tokio::test]
async fn a_call_that_names_no_model_is_refused() {
    let stack = Stack::start().await.expect("stack");
    let (_, limited) = stack
        .approved_grant(&["chat"], &["gpt-4o"], None)
        .await
        .expect("grant");
    for body in [
        json!({"messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": 4, "messages": [{"role": "user", "content": "hi"}]}),
        json!({"model": ["gpt-4o"], "messages": [{"role": "user", "content": "hi"}]}),
    ] {
        let (status, text) = post(&stack, "/chat/completions", &limited, "no-model", body).await;
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("model_not_granted"), "{text}");
    }
    let (_, open) = stack
        .approved_grant(&["chat"], &[], None)
        .await
        .expect("grant");
    let (status, text) = post(
        &stack,
        "/chat/completions",
        &open,
        "no-model-open",
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(
        !stack
            .upstream
            .requests()
            .iter()
            .any(|r| r.path == "/chat/completions"),
        "nothing went upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_text_is_escaped_its_url_trimmed_and_never_recorded() {
    use copilot_jit_testkit::harness::{eventually, APPROVERS};
    use copilot_jit_testkit::webhook::{self, Webhook};
    let hook = Webhook::start().await.expect("webhook");
    // The path as it comes out of Vault or a mounted file: a trailing newline.
    let stack = Stack::start_with(StackOptions {
        variables: [
            ("notify_webhook_origin".to_string(), hook.origin()),
            (
                "notify_webhook_path".to_string(),
                format!("{}\n", webhook::PATH),
            ),
        ]
        .into(),
        ..StackOptions::default()
    })
    .await
    .expect("stack");
    let alice = stack.person("alice", &["developers"]);
    let asked = stack
        .call(
            "POST",
            "/v1/access-requests",
            Some(&alice),
            json!({"scopes": ["chat"], "reason": "<!channel> click <https://evil.example|Approve> & done"}),
        )
        .await;
    assert_eq!(asked.status, 201, "{}", asked.text);
    let (path, message) = eventually(|| async { hook.messages().into_iter().next() })
        .await
        .expect("delivered despite the newline");
    assert_eq!(path, webhook::PATH);
    let text = message["text"].as_str().unwrap_or("");
    assert!(
        text.contains("&lt;!channel&gt; click &lt;https://evil.example|Approve&gt; &amp; done"),
        "{text}"
    );
    assert!(!text.contains("<!channel>") && !text.contains("<https://evil"));
    let id = asked.json["request"]["id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let bob = stack.person("bob", &[APPROVERS]);
    let decided = stack
        .call(
            "POST",
            &format!("/v1/access-requests/{id}/approve"),
            Some(&bob),
            json!({"comment": "<!here> ok"}),
        )
        .await;
    assert_eq!(decided.status, 200, "{}", decided.text);
    let approved = eventually(|| async {
        hook.messages()
            .into_iter()
            .find(|(_, m)| m["copilot_jit"]["event"] == "access.approved")
    })
    .await
    .expect("approval delivered");
    assert!(approved.1["text"]
        .as_str()
        .unwrap_or("")
        .contains("&lt;!here&gt; ok"));

    // A webhook URL the host refuses: the failure is recorded, the URL not.
    let broken = Stack::start_with(StackOptions {
        variables: [
            ("notify_webhook_origin".to_string(), hook.origin()),
            (
                "notify_webhook_path".to_string(),
                "/services/T000/B000/secret part".to_string(),
            ),
        ]
        .into(),
        ..StackOptions::default()
    })
    .await
    .expect("stack");
    let alice = broken.person("alice", &["developers"]);
    let asked = broken
        .call(
            "POST",
            "/v1/access-requests",
            Some(&alice),
            json!({"scopes": ["chat"], "reason": "x"}),
        )
        .await;
    assert_eq!(asked.status, 201, "{}", asked.text);
    let failed = broken
        .audit_record("", |r| {
            r["unmapped"]["action"] == "notify.access.requested"
                && r["unmapped"]["outcome"] == "failed"
        })
        .await
        .expect("the failed delivery is audited");
    // The request's own record is written after its answer too: wait for
    // it, then read everything the trail holds.
    broken
        .audit_record("", |r| r["unmapped"]["action"] == "access.request")
        .await
        .expect("the request is audited");
    let all = serde_json::to_string(&broken.audit_records("").await.unwrap_or_default())
        .unwrap_or_default();
    assert!(
        !all.contains("secret part") && !all.contains("B000"),
        "{failed}"
    );
}

#[tokio::test]
async fn a_renewal_passes_every_policy_a_new_request_would() {
    let stack = Stack::start().await.expect("stack");
    let senior = stack.person("dana", &["senior-engineers"]);
    let asked = stack
        .call(
            "POST",
            "/v1/access-requests",
            Some(&senior),
            json!({"scopes": ["chat"], "reason": "prod fix", "repository": "acme/prod-api"}),
        )
        .await;
    assert_eq!(asked.status, 201, "{}", asked.text);
    assert_eq!(
        asked.json["request"]["status"], "approved",
        "{}",
        asked.text
    );
    let id = asked.json["request"]["id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    // Dana left the senior engineers: the renew policy for developers would
    // permit a renewal, but a new request for production code would not.
    let demoted = stack.person("dana", &["developers"]);
    let renewed = stack
        .call(
            "POST",
            &format!("/v1/grants/{id}/renew"),
            Some(&demoted),
            json!({}),
        )
        .await;
    assert_eq!(renewed.status, 403, "{}", renewed.text);
    assert!(
        renewed.text.contains("production-code-senior-only"),
        "{}",
        renewed.text
    );
    let renewed = stack
        .call(
            "POST",
            &format!("/v1/grants/{id}/renew"),
            Some(&senior),
            json!({}),
        )
        .await;
    assert_eq!(renewed.status, 201, "{}", renewed.text);
}

/// An Entra-like token: a different `sub` per app, the same `oid`.
fn entra_token(stack: &Stack, oid: &str, app: &str, groups: &[&str]) -> String {
    use copilot_jit_testkit::dev_issuer::{now, Alg};
    let now = now();
    stack.issuer.sign(
        Alg::Rs256,
        json!({"iss": stack.issuer.issuer(), "sub": format!("{oid}-pairwise-{app}"), "oid": oid,
               "aud": app, "email": format!("{oid}@Example.com"), "email_verified": true,
               "name": oid, "groups": groups, "iat": now, "nbf": now, "exp": now + 3600}),
    )
}

#[tokio::test]
async fn one_person_with_tokens_for_two_apps_is_one_approver() {
    use copilot_jit_testkit::harness::APPROVERS;
    let stack = Stack::start_with(StackOptions {
        variables: [
            (
                "oidc_audience".to_string(),
                "copilot-jit,second-app".to_string(),
            ),
            ("oidc_subject_claim".to_string(), "oid".to_string()),
        ]
        .into(),
        ..StackOptions::default()
    })
    .await
    .expect("stack");
    // Sam asks with one app's token and tries to approve with the other's.
    let sam_a = entra_token(&stack, "sam", "copilot-jit", &["developers", APPROVERS]);
    let sam_b = entra_token(&stack, "sam", "second-app", &[APPROVERS]);
    let asked = stack
        .call(
            "POST",
            "/v1/access-requests",
            Some(&sam_a),
            json!({"scopes": ["chat"], "reason": "x"}),
        )
        .await;
    assert_eq!(asked.status, 201, "{}", asked.text);
    assert_eq!(asked.json["request"]["requester"]["subject"], "sam");
    assert_eq!(
        asked.json["request"]["requester"]["email"],
        "sam@example.com"
    );
    let id = asked.json["request"]["id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let approved = stack
        .call(
            "POST",
            &format!("/v1/access-requests/{id}/approve"),
            Some(&sam_b),
            json!({}),
        )
        .await;
    assert_eq!(
        approved.status, 403,
        "self-approval through a second app: {}",
        approved.text
    );

    // A contractor's request needs two people from security: one person's
    // two tokens count once.
    let cora = entra_token(&stack, "cora", "copilot-jit", &["contractors"]);
    let asked = stack
        .call(
            "POST",
            "/v1/access-requests",
            Some(&cora),
            json!({"scopes": ["chat"], "reason": "x"}),
        )
        .await;
    assert_eq!(asked.status, 201, "{}", asked.text);
    let id = asked.json["request"]["id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let sec_a = entra_token(&stack, "sec-1", "copilot-jit", &["security"]);
    let sec_b = entra_token(&stack, "sec-1", "second-app", &["security"]);
    let first = stack
        .call(
            "POST",
            &format!("/v1/access-requests/{id}/approve"),
            Some(&sec_a),
            json!({}),
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    let second = stack
        .call(
            "POST",
            &format!("/v1/access-requests/{id}/approve"),
            Some(&sec_b),
            json!({}),
        )
        .await;
    let status = stack
        .call(
            "GET",
            &format!("/v1/access-requests/{id}"),
            Some(&cora),
            copilot_jit_testkit::harness::Body::Empty,
        )
        .await;
    assert_eq!(
        status.json["request"]["status"], "pending",
        "second: {} now: {}",
        second.text, status.text
    );
}

#[tokio::test]
async fn an_unverified_email_is_not_shown_to_approvers() {
    use copilot_jit_testkit::dev_issuer::{now, Alg};
    let stack = Stack::start().await.expect("stack");
    let now = now();
    let token = stack.issuer.sign(
        Alg::Rs256,
        json!({"iss": stack.issuer.issuer(), "sub": "eve", "aud": "copilot-jit",
               "email": "ceo@example.com", "email_verified": false, "name": "Eve",
               "groups": ["developers"], "iat": now, "nbf": now, "exp": now + 3600}),
    );
    let asked = stack
        .call(
            "POST",
            "/v1/access-requests",
            Some(&token),
            json!({"scopes": ["chat"], "reason": "x"}),
        )
        .await;
    assert_eq!(asked.status, 201, "{}", asked.text);
    assert!(
        asked.json["request"]["requester"]["email"].is_null(),
        "{}",
        asked.text
    );
    assert!(!asked.text.contains("ceo@example.com"));
}

fn chat_body() -> Value {
    json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_groups_are_trusted_for_a_bounded_time_then_a_renewal_confirms_them() {
    let stack = Stack::start_with(StackOptions {
        variables: [("groups_max_age_secs".to_string(), "600".to_string())].into(),
        ..StackOptions::default()
    })
    .await
    .expect("stack");
    let (id, token) = stack
        .approved_grant(&["chat"], &[], Some("grant"))
        .await
        .expect("approved grant");
    let (status, text) = post(&stack, "/chat/completions", &token, "fresh", chat_body()).await;
    assert_eq!(status, 200, "{text}");

    // Ten minutes and a second later the grant (an hour long) is still
    // approved, but the groups it captured are no longer trusted.
    stack.advance(601);
    let upstream_calls = stack.upstream.requests().len();
    let (status, text) = post(&stack, "/chat/completions", &token, "stale", chat_body()).await;
    assert_eq!(status, 403, "{text}");
    let refused: Value = serde_json::from_str(&text).expect("JSON");
    let access_page = format!("{}/access", stack.url);
    assert_eq!(
        refused["error_details"]["url"],
        access_page.as_str(),
        "{refused}"
    );
    let message = refused["error_details"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("10 min ago") && message.contains("Renew"),
        "{message}"
    );
    assert_eq!(
        stack.upstream.requests().len(),
        upstream_calls,
        "nothing reached upstream"
    );
    // Editors ask the envelope first: refused there too, in Copilot's shape.
    let envelope = stack
        .call("GET", "/copilot_internal/v2/token", Some(&token), None)
        .await;
    assert_eq!(envelope.status, 403, "{}", envelope.text);
    assert_eq!(envelope.json["error_details"]["url"], access_page.as_str());
    let record = stack.call_record(&id, "stale").await;
    assert_eq!(record["http_response"]["code"], 403, "{record}");

    // A renewal has the IdP vouch for the groups again.
    let alice = stack.person_now("alice", &["developers"]);
    let bob = stack.person_now("bob", &[copilot_jit_testkit::harness::APPROVERS]);
    let renewed = stack
        .call(
            "POST",
            &format!("/v1/grants/{id}/renew"),
            Some(&alice),
            json!({}),
        )
        .await;
    assert_eq!(renewed.status, 201, "{}", renewed.text);
    let renewal = renewed.json["request"]["id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let approved = stack
        .call(
            "POST",
            &format!("/v1/access-requests/{renewal}/approve"),
            Some(&bob),
            json!({}),
        )
        .await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    let issued = stack
        .call(
            "POST",
            &format!("/v1/grants/{renewal}/token"),
            Some(&alice),
            json!({"ttl": "grant"}),
        )
        .await;
    let renewed_token = issued.json["access_token"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let (status, text) = post(
        &stack,
        "/chat/completions",
        &renewed_token,
        "renewed",
        chat_body(),
    )
    .await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_group_age_bound_refuses_calls() {
    let stack = Stack::start_with(StackOptions {
        variables: [("groups_max_age_secs".to_string(), "8 hours".to_string())].into(),
        ..StackOptions::default()
    })
    .await
    .expect("stack");
    let (_, token) = stack
        .approved_grant(&["chat"], &[], None)
        .await
        .expect("approved grant");
    let (status, text) = post(&stack, "/chat/completions", &token, "bound", chat_body()).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("gateway_misconfigured"), "{text}");
    assert!(!upstream_saw(&stack, "/chat/completions", "hello"));
}
