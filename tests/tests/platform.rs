//! What the platform guarantees, seen through the composed artifact: the
//! manifest's outbound-host and KV-label limits, the upstream credential
//! cache and its refresh, both signature algorithms of the issuer, and
//! compare-and-swap under concurrent approvals.

use copilot_jit_testkit::dev_issuer::{now, Alg};
use copilot_jit_testkit::harness::{Stack, StackOptions, UPSTREAM_GITHUB_TOKEN};
use copilot_jit_testkit::scenarios::approval_race;
use serde_json::{json, Value};
use std::collections::HashMap;

async fn post(stack: &Stack, path: &str, token: &str, body: Value) -> (u16, Value) {
    let answer = stack.call("POST", path, Some(token), body).await;
    assert!(!answer.trapped(), "trap on {path}");
    let json = serde_json::from_str(&answer.text).expect("JSON answer");
    (answer.status, json)
}

fn ask() -> Value {
    json!({"scopes": ["chat"], "reason": "platform test"})
}

async fn granted_token(stack: &Stack) -> String {
    stack
        .approved_grant(&["chat"], &[], None)
        .await
        .expect("approved grant")
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_requests_are_limited_to_the_manifest_hosts() {
    // The issuer's keys live on a host that allowed_outbound_hosts does not
    // list: the fetch is refused by the host and the gateway fails closed.
    let stack = Stack::start_with(StackOptions {
        variables: HashMap::from([(
            "oidc_issuer_origin".to_string(),
            "http://127.0.0.1:9".to_string(),
        )]),
        ..StackOptions::default()
    })
    .await
    .expect("stack");
    let alice = stack.person("alice", &[]);
    let (status, body) = post(&stack, "/v1/access-requests", &alice, ask()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "identity_unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_labels_not_in_the_manifest_are_refused() {
    let stack = Stack::start().await.expect("stack");
    let alice = stack.person("alice", &["developers"]);
    let (status, _) = post(&stack, "/v1/access-requests", &alice, ask()).await;
    assert_eq!(status, 201);
    // The same artifact with no KV label granted: storage is refused, the
    // gateway answers 503 and never traps.
    let mut manifest = copilot_jit_testkit::harness::manifest().expect("manifest");
    manifest.key_value_stores.clear();
    let resolved = manifest
        .resolve(&stack.variables, &HashMap::new())
        .expect("resolve");
    let engine = copilot_jit_testkit::host::engine().expect("engine");
    let component = copilot_jit_testkit::host::compile(&engine, &manifest).expect("compile");
    let gateway = std::sync::Arc::new(
        copilot_jit_testkit::host::Gateway::new(&engine, &component, resolved, Default::default())
            .expect("gateway"),
    );
    let (listener, addr) = copilot_jit_testkit::host::loopback_listener()
        .await
        .expect("listen");
    let task = gateway.serve(listener);
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/v1/access-requests"))
        .bearer_auth(&alice)
        .json(&ask())
        .send()
        .await
        .expect("reachable");
    assert!(resp.headers().get("x-test-host-trap").is_none());
    assert_eq!(resp.status().as_u16(), 503);
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_token_is_cached_and_refreshed_once_on_401() {
    let stack = Stack::start().await.expect("stack");
    let token = granted_token(&stack).await;
    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..3 {
        let (status, body) = post(&stack, "/chat/completions", &token, chat.clone()).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        stack.upstream.exchanges(),
        1,
        "one exchange serves calls until refresh_in"
    );
    // Upstream forgets the Copilot token: the next call gets 401, the gateway
    // exchanges again once and the caller never notices.
    stack.upstream.revoke_issued_tokens();
    let (status, body) = post(&stack, "/chat/completions", &token, chat.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(stack.upstream.exchanges(), 2);
    // Every exchange presented the gateway-held GitHub token; nothing else did.
    for r in stack.upstream.requests() {
        if r.path == "/copilot_internal/v2/token" {
            assert_eq!(
                r.authorization.as_deref(),
                Some(format!("token {UPSTREAM_GITHUB_TOKEN}").as_str())
            );
        } else {
            assert!(!r
                .authorization
                .unwrap_or_default()
                .contains(UPSTREAM_GITHUB_TOKEN));
        }
    }
    // An upstream error reaches the caller with its status, not as a trap.
    stack
        .upstream
        .fail_next(429, json!({"error": {"message": "rate limited"}}));
    let (status, _) = post(&stack, "/chat/completions", &token, chat).await;
    assert_eq!(status, 429);
    assert_eq!(stack.upstream.leaks(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_and_rs256_identity_tokens_are_both_accepted() {
    let stack = Stack::start().await.expect("stack");
    for alg in [Alg::Rs256, Alg::Es256] {
        let token = stack.issuer.sign(
            alg,
            json!({"iss": stack.issuer.issuer(), "sub": format!("user-{alg:?}"), "aud": "copilot-jit",
                   "iat": now(), "exp": now() + 300, "groups": ["developers"]}),
        );
        let (status, body) = post(&stack, "/v1/access-requests", &token, ask()).await;
        assert_eq!(status, 201, "{alg:?}: {body}");
        assert_eq!(
            body["request"]["requester"]["subject"],
            format!("user-{alg:?}")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issuer_algorithm_list_is_enforced_and_fails_closed() {
    let only_es256 = Stack::start_with(StackOptions {
        variables: HashMap::from([("oidc_algorithms".to_string(), "ES256".to_string())]),
        ..StackOptions::default()
    })
    .await
    .expect("stack");
    let claims = |s: &Stack| json!({"iss": s.issuer.issuer(), "sub": "alice", "aud": "copilot-jit", "groups": ["developers"], "iat": now(), "exp": now() + 300});
    let es = only_es256.issuer.sign(Alg::Es256, claims(&only_es256));
    let rs = only_es256.issuer.sign(Alg::Rs256, claims(&only_es256));
    assert_eq!(
        post(&only_es256, "/v1/access-requests", &es, ask()).await.0,
        201
    );
    let (status, body) = post(&only_es256, "/v1/access-requests", &rs, ask()).await;
    assert_eq!(status, 401, "{body}");
    let misconfigured = Stack::start_with(StackOptions {
        variables: HashMap::from([("oidc_algorithms".to_string(), "RS256,HS256".to_string())]),
        ..StackOptions::default()
    })
    .await
    .expect("stack");
    let rs = misconfigured
        .issuer
        .sign(Alg::Rs256, claims(&misconfigured));
    let (status, body) = post(&misconfigured, "/v1/access-requests", &rs, ask()).await;
    assert_eq!(
        status, 503,
        "an unknown algorithm in the configuration refuses everyone: {body}"
    );
}

/// 60 approve, deny and revoke calls race on one request needing two
/// approvals from security (contractors' policy); see
/// `scenarios::approval_race` for what must hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_decisions_end_in_one_consistent_state() {
    let stack = Stack::start().await.expect("stack");
    approval_race(&stack, &[stack.url.as_str()]).await;
}

/// Spin shows a component only the variables its `[component.*.variables]`
/// maps: an application variable left out there is silently invisible.
#[test]
fn every_application_variable_reaches_the_component() {
    let manifest = copilot_jit_testkit::harness::manifest().unwrap();
    for name in manifest.variables.keys() {
        assert_eq!(
            manifest.component_variables.get(name).map(String::as_str),
            Some(format!("{{{{ {name} }}}}").as_str()),
            "spin.toml: variable {name} is not mapped into the component"
        );
    }
}
