//! The deepest paths each component runs, driven through the composed
//! artifact: they size the components' stacks (set in each component's
//! `build.rs`, far below Rust's default 1 MiB because every request's
//! instance rewrites its memory on release). A stack too small for one of
//! these traps, and the test host reports the trap.
//!
//! - gateway: JSON nested as deep as the parser allows, in prompts and in
//!   answers (parse, every-string walk, re-encode, drop); a prompt near the
//!   4 MiB limit; Cedar deciding a contractor's call.
//! - masking-filter: that large prompt, full of secrets.
//! - auth-validator: an identity token with hundreds of groups.
//! - audit-sink: the records of all of these, with hundreds of findings.

use copilot_jit_testkit::harness::{self, Answer, Stack};
use serde_json::{json, Value};

const AWS: &str = "AKIAIOSFODNN7EXAMPLE";
/// serde_json refuses more than 128 nested arrays or objects.
const DEEPEST: usize = 126;

fn nested(depth: usize, leaf: Value) -> Value {
    (0..depth).fold(leaf, |inner, i| {
        if i % 2 == 0 {
            json!([inner])
        } else {
            json!({ "n": inner })
        }
    })
}

async fn chat(stack: &Stack, token: &str, request_id: &str, body: &Value) -> Answer {
    harness::send(
        reqwest::Client::new()
            .post(format!("{}/chat/completions", stack.url))
            .bearer_auth(token)
            .header("x-request-id", request_id)
            .json(body),
    )
    .await
}

fn assert_served(answer: &Answer, what: &str) {
    assert!(!answer.trapped(), "{what}: the component trapped");
    assert_eq!(answer.status, 200, "{what}: {}", answer.text);
}

#[tokio::test]
async fn the_deepest_json_a_client_may_send_is_walked_to_the_bottom() {
    let stack = Stack::start().await.expect("stack");
    let (grant, token) = stack
        .approved_grant(&["chat"], &[], None)
        .await
        .expect("grant");
    // A secret at the bottom of the deepest structure the parser accepts,
    // in a field the walk must still reach.
    let body = json!({"model": "gpt-4o", "messages": [
        {"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": nested(DEEPEST - 4, json!(format!("key {AWS}")))}}]
    });
    let answer = chat(&stack, &token, "deep-prompt", &body).await;
    assert_served(&answer, "nested prompt");
    let seen = stack.upstream.requests();
    let sent = seen
        .iter()
        .rfind(|r| r.path == "/chat/completions")
        .expect("upstream called");
    assert!(
        !String::from_utf8_lossy(&sent.body).contains(AWS),
        "the key at the bottom went upstream"
    );
    let record = stack.call_record(&grant, "deep-prompt").await;
    assert!(record.to_string().contains("aws-access-key"), "{record}");

    // One level more than the parser takes: a clear error, not a trap.
    let too_deep = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
        "metadata": nested(130, json!("x"))});
    let answer = chat(&stack, &token, "too-deep", &too_deep).await;
    assert!(!answer.trapped(), "too deep: the component trapped");
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert!(
        answer.json["error"]["message"].is_string(),
        "{}",
        answer.text
    );
}

#[tokio::test]
async fn a_deeply_nested_answer_is_masked_whole_and_streamed() {
    let stack = Stack::start().await.expect("stack");
    let (_, token) = stack
        .approved_grant(&["chat"], &[], None)
        .await
        .expect("grant");
    // A whole answer carrying the deepest structure in a field of its own.
    let reply = json!({"id": "c1", "object": "chat.completion", "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "ok"}}],
        "extra": nested(DEEPEST - 2, json!(format!("key {AWS}")))});
    stack.upstream.fail_next(200, reply);
    let answer = chat(
        &stack,
        &token,
        "deep-answer",
        &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_served(&answer, "nested answer");
    assert!(!answer.text.contains(AWS), "{}", answer.text);

    // The same structure as one event of a stream.
    let event = json!({"id": "c2", "object": "chat.completion.chunk", "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"content": "ok"}}],
        "extra": nested(DEEPEST - 2, json!(format!("key {AWS}")))});
    stack.upstream.inject_frame(&format!("data: {event}\n\n"));
    let answer = chat(
        &stack,
        &token,
        "deep-stream",
        &json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_served(&answer, "nested stream event");
    assert!(answer.text.contains("data:"), "{}", answer.text);
    assert!(!answer.text.contains(AWS), "{}", answer.text);
}

#[tokio::test]
async fn a_prompt_near_the_size_limit_full_of_secrets_is_masked_and_recorded() {
    let stack = Stack::start().await.expect("stack");
    let (grant, token) = stack
        .approved_grant(&["chat"], &[], None)
        .await
        .expect("grant");
    // ~3.5 MB of code-like text with a key every 8 KiB.
    let line = "    let total = items.iter().map(|i| i.price * i.quantity).sum::<u64>();\n";
    let mut prompt = String::with_capacity(3_600_000);
    let mut keys = 0u32;
    while prompt.len() < 3_500_000 {
        for _ in 0..110 {
            prompt.push_str(line);
        }
        prompt.push_str(&format!("aws_key = \"AKIA{keys:016}\"\n"));
        keys += 1;
    }
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]});
    let answer = chat(&stack, &token, "large-prompt", &body).await;
    assert_served(&answer, "large prompt");
    let seen = stack.upstream.requests();
    let sent = seen
        .iter()
        .rfind(|r| r.path == "/chat/completions")
        .expect("upstream called");
    let sent = String::from_utf8_lossy(&sent.body);
    assert!(sent.len() > 3_000_000, "the prompt went upstream whole");
    assert!(!sent.contains("AKIA0000"), "a key went upstream");
    let record = stack.call_record(&grant, "large-prompt").await;
    let findings = record["unmapped"]["findings"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(findings > 0, "{record}");
}

#[tokio::test]
async fn a_contractor_call_decided_by_cedar_is_served() {
    let stack = Stack::start().await.expect("stack");
    let client = reqwest::Client::new();
    let cora = stack.person("cora", &["contractors"]);
    let created = harness::send(
        client
            .post(format!("{}/v1/access-requests", stack.url))
            .bearer_auth(&cora)
            .json(&json!({"scopes": ["chat"], "reason": "deep paths", "duration": "1h"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json["request"]["id"]
        .as_str()
        .expect("request id")
        .to_string();
    for approver in ["sec-1", "sec-2"] {
        let approved = harness::send(
            client
                .post(format!("{}/v1/access-requests/{id}/approve", stack.url))
                .bearer_auth(stack.person(approver, &["security"])),
        )
        .await;
        assert_eq!(approved.status, 200, "{}", approved.text);
    }
    let minted = harness::send(
        client
            .post(format!("{}/v1/grants/{id}/token", stack.url))
            .bearer_auth(&cora),
    )
    .await;
    let token = minted.json["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    assert_served(
        &chat(&stack, &token, "contractor", &body).await,
        "contractor",
    );
    // The forbid Cedar evaluates for contractors still holds.
    let preview =
        json!({"model": "gpt-5-preview", "messages": [{"role": "user", "content": "hi"}]});
    let refused = chat(&stack, &token, "contractor-preview", &preview).await;
    assert!(!refused.trapped());
    assert_eq!(refused.status, 403, "{}", refused.text);
}

#[tokio::test]
async fn an_identity_token_with_hundreds_of_groups_is_verified() {
    let stack = Stack::start().await.expect("stack");
    let mut groups: Vec<String> = (0..400).map(|i| format!("team-{i:04}-platform")).collect();
    groups.push("developers".into());
    let names: Vec<&str> = groups.iter().map(String::as_str).collect();
    let token = stack.person("gina", &names);
    assert!(token.len() > 8_000, "{} bytes", token.len());
    let created = harness::send(
        reqwest::Client::new()
            .post(format!("{}/v1/access-requests", stack.url))
            .bearer_auth(&token)
            .json(&json!({"scopes": ["chat"], "reason": "many groups", "duration": "1h"})),
    )
    .await;
    assert!(!created.trapped(), "the component trapped");
    assert_eq!(created.status, 201, "{}", created.text);
    // The request, as its requester reads it back.
    let id = created.json["request"]["id"].as_str().expect("id");
    let shown = harness::send(
        reqwest::Client::new()
            .get(format!("{}/v1/access-requests/{id}", stack.url))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert_eq!(shown.json["request"]["id"], id, "{}", shown.text);
}

#[test]
fn every_component_starts_with_the_stack_it_was_sized_for() {
    let root = harness::workspace_root();
    let bytes = std::fs::read(root.join("dist/copilot-jit.wasm")).expect("run the build first");
    let shape = copilot_jit_testkit::artifact_shape::shape(&bytes).expect("artifact parses");
    assert_eq!(shape.memories(), 6, "one memory per component");
    for module in shape.modules.iter().filter(|m| !m.memories.is_empty()) {
        let stack = module.stack_bytes.expect("a stack pointer");
        assert!(
            (16 << 10..=192 << 10).contains(&stack),
            "a stack of {stack} bytes (Rust's default is 1 MiB)"
        );
        // Stack first, then data (for the gateway, with the heap its
        // pre-initialisation left): the initial memory is not much more.
        assert!(
            module.memories[0] <= stack + module.data_bytes + (512 << 10),
            "{module:?}"
        );
    }
}

/// The gateway is pre-initialised at build time (wizer): its memory image
/// holds Cedar's tables, and must hold nothing a deployment configures.
#[tokio::test]
async fn the_pre_initialised_image_holds_no_variable_of_a_running_gateway() {
    let stack = Stack::start().await.expect("stack");
    // A running gateway, with every secret variable set.
    let (_, token) = stack
        .approved_grant(&["chat"], &[], None)
        .await
        .expect("grant");
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    assert_served(&chat(&stack, &token, "image", &body).await, "chat");
    let root = harness::workspace_root();
    let artifact = std::fs::read(root.join("dist/copilot-jit.wasm")).expect("built");
    let gateway = std::fs::read(root.join("dist/components/gateway.wasm")).expect("built");
    for name in [
        "token_signing_key",
        "audit_signing_key",
        "masking_fingerprint_key",
        "upstream_github_token",
        "oidc_client_secret",
    ] {
        let value = stack.variables[name].as_bytes();
        assert!(value.len() >= 16, "{name} is a real secret");
        for (file, bytes) in [("artifact", &artifact), ("gateway", &gateway)] {
            assert!(
                !bytes.windows(value.len()).any(|w| w == value),
                "the {file} holds the value of {name}"
            );
        }
    }
}
