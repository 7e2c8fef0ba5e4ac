//! Helpers for people's own seats (tests/tests/own_seat.rs, the CLI's
//! tests): a stack in own-seat mode, linking a GitHub account through the
//! gateway and the mock's GitHub, a grant for any developer.

use crate::harness::{eventually, send, Answer, Stack, StackOptions, APPROVERS};
use serde_json::{json, Value};
use std::collections::HashMap;

/// A GitHub App's user tokens: 8 hours, with refresh tokens.
pub const EIGHT_HOURS: u64 = 8 * 3600;
/// Five minutes before such a token expires: due for refresh, and a grant
/// of eight hours taken after linking still holds.
pub const LATER: u64 = EIGHT_HOURS - 300;

/// A fresh vault key (32 random bytes, base64).
pub fn vault_key() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

/// Own-seat mode, with `extra` variables.
pub fn options(extra: &[(&str, &str)]) -> StackOptions {
    let mut variables: HashMap<String, String> =
        HashMap::from([("upstream_mode".to_string(), "own-seat".to_string())]);
    for (k, v) in extra {
        variables.insert(k.to_string(), v.to_string());
    }
    StackOptions {
        variables,
        ..StackOptions::default()
    }
}

/// A stack in own-seat mode whose mock GitHub issues 8-hour user tokens.
pub async fn own_seat_stack(extra: &[(&str, &str)]) -> Stack {
    let stack = Stack::start_with(options(extra)).await.expect("stack");
    stack.upstream.set_user_token_ttl(Some(EIGHT_HOURS));
    stack
}

/// `who` links the GitHub account `login`: the gateway starts GitHub's
/// device flow, the person authorises the code on "github.com", and the
/// gateway's status (one poll of GitHub per request) turns linked.
pub async fn link_at(base: &str, stack: &Stack, oidc: &str, login: &str) -> Value {
    let http = reqwest::Client::new();
    let started: Value = http
        .post(format!("{base}/v1/github/link"))
        .bearer_auth(oidc)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(started["status"], "pending", "{started}");
    let user_code = started["user_code"].as_str().expect("user code");
    assert!(started["verification_uri"]
        .as_str()
        .is_some_and(|u| u.ends_with("/login/device")));
    assert!(stack.upstream.authorize_device(user_code, login));
    eventually(|| async {
        let status: Value = http
            .get(format!("{base}/v1/github/link"))
            .bearer_auth(oidc)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (status["status"] != "pending").then_some(status)
    })
    .await
    .expect("the link completes")
}

/// As `link_at` on the stack itself, checked linked.
pub async fn link(stack: &Stack, oidc: &str, login: &str) -> Value {
    let linked = link_at(&stack.url, stack, oidc, login).await;
    assert_eq!(linked["status"], "linked", "{linked}");
    assert_eq!(linked["login"], login);
    linked
}

/// `subject` (a developer) asks for chat and completions, bob approves,
/// and `subject` takes a gateway token for the whole grant.
pub async fn grant_for(stack: &Stack, subject: &str) -> (String, String) {
    let oidc = stack.person_now(subject, &["developers"]);
    let bob = stack.person_now("bob", &[APPROVERS]);
    let created = stack
        .call(
            "POST",
            "/v1/access-requests",
            Some(&oidc),
            json!({"scopes": ["chat", "completions"], "reason": "work", "duration": "8h"}),
        )
        .await;
    let id = created.json["request"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", created.text))
        .to_string();
    let approved = stack
        .call(
            "POST",
            &format!("/v1/access-requests/{id}/approve"),
            Some(&bob),
            json!({}),
        )
        .await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    let token = stack
        .call(
            "POST",
            &format!("/v1/grants/{id}/token"),
            Some(&oidc),
            json!({"ttl": "grant"}),
        )
        .await;
    (
        id,
        token.json["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{}", token.text))
            .to_string(),
    )
}

/// One non-streamed chat call at `base` with a gateway token.
pub async fn chat_at(base: &str, token: &str) -> Answer {
    send(
        reqwest::Client::new()
            .post(format!("{base}/chat/completions"))
            .bearer_auth(token)
            .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})),
    )
    .await
}
