//! Bad input never traps and never gets a 500: each case is a JSON error
//! with the right status, and nothing secret in it.

use copilot_jit_testkit::dev_issuer::{now, Alg};
use copilot_jit_testkit::harness::{Stack, UPSTREAM_GITHUB_TOKEN};
use serde_json::{json, Value};

async fn call(
    stack: &Stack,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let client = reqwest::Client::new();
    let mut req = client.request(method.parse().unwrap(), format!("{}{path}", stack.url));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = req.send().await.expect("reachable");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    assert!(
        headers.get("x-test-host-trap").is_none(),
        "trap on {method} {path}"
    );
    assert!(!text.contains(UPSTREAM_GITHUB_TOKEN));
    let value: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("non-JSON answer to {method} {path}: {text}"));
    assert!(
        value["error"]["code"].is_string() || status < 400,
        "{value}"
    );
    (status, headers, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_json_errors() {
    let stack = Stack::start().await.expect("stack starts");
    let alice = stack.person("alice", &["developers"]);
    let ask = br#"{"scopes":["chat"],"reason":"x"}"#.to_vec();

    let (s, _, _) = call(&stack, "GET", "/no/such/thing", None, None).await;
    assert_eq!(s, 404);
    let (s, h, _) = call(&stack, "DELETE", "/v1/access-requests", Some(&alice), None).await;
    assert_eq!(s, 405);
    assert_eq!(h["allow"], "GET, POST");
    let (s, _, _) = call(&stack, "GET", "/chat/completions", None, None).await;
    assert_eq!(s, 405);

    // Identity problems.
    let (s, h, body) = call(
        &stack,
        "POST",
        "/v1/access-requests",
        None,
        Some(ask.clone()),
    )
    .await;
    assert_eq!(s, 401);
    assert_eq!(h["www-authenticate"], "Bearer");
    assert_eq!(body["error"]["code"], "unauthenticated");
    for garbage in [
        "abc",
        "a.b.c",
        "eyJhbGciOiJub25lIn0.e30.",
        &"x".repeat(20_000),
    ] {
        let (s, _, body) = call(
            &stack,
            "POST",
            "/v1/access-requests",
            Some(garbage),
            Some(ask.clone()),
        )
        .await;
        assert_eq!(s, 401, "{garbage:.20}: {body}");
    }
    let expired = stack.issuer.sign(
        Alg::Es256,
        json!({"iss": stack.issuer.issuer(), "sub": "alice", "aud": "copilot-jit", "exp": now() - 3600, "iat": now() - 7200}),
    );
    let (s, _, body) = call(
        &stack,
        "POST",
        "/v1/access-requests",
        Some(&expired),
        Some(ask.clone()),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (401, Some("token_expired"))
    );
    let wrong_audience = stack.issuer.token_for("alice", &[], "someone-else");
    let (s, _, _) = call(
        &stack,
        "POST",
        "/v1/access-requests",
        Some(&wrong_audience),
        Some(ask.clone()),
    )
    .await;
    assert_eq!(s, 401);

    // Bodies.
    let (s, _, _) = call(
        &stack,
        "POST",
        "/v1/access-requests",
        Some(&alice),
        Some(b"not json".to_vec()),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _, _) = call(&stack, "POST", "/v1/access-requests", Some(&alice), None).await;
    assert_eq!(s, 400);
    let (s, _, _) = call(
        &stack,
        "POST",
        "/v1/access-requests",
        Some(&alice),
        Some(br#"{"scopes":"chat"}"#.to_vec()),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _, body) = call(
        &stack,
        "POST",
        "/v1/access-requests",
        Some(&alice),
        Some(br#"{"scopes":["root"],"reason":"x"}"#.to_vec()),
    )
    .await;
    assert_eq!((s, body["error"]["field"].as_str()), (400, Some("scopes")));
    let huge = format!(
        r#"{{"scopes":["chat"],"reason":"{}"}}"#,
        "x".repeat(70 * 1024)
    )
    .into_bytes();
    let (s, _, _) = call(
        &stack,
        "POST",
        "/v1/access-requests",
        Some(&alice),
        Some(huge),
    )
    .await;
    assert_eq!(s, 413);

    // Unknown ids.
    let (s, _, _) = call(
        &stack,
        "GET",
        "/v1/access-requests/req_000000000000000000000000",
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _, _) = call(
        &stack,
        "POST",
        "/v1/grants/req_nope/token",
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _, _) = call(
        &stack,
        "GET",
        "/v1/access-requests?status=bogus",
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(s, 400);

    // Copilot calls without a usable gateway token say how to get one.
    let chat = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#.to_vec();
    let (s, _, body) = call(
        &stack,
        "POST",
        "/chat/completions",
        None,
        Some(chat.clone()),
    )
    .await;
    assert_eq!(s, 401);
    assert!(body["error"]["how_to_request_access"]["request"]["body"]["scopes"].is_array());
    let (s, _, _) = call(
        &stack,
        "POST",
        "/chat/completions",
        Some("not-a-token"),
        Some(chat.clone()),
    )
    .await;
    assert_eq!(s, 401);
    // An OIDC token is not a gateway token.
    let (s, _, _) = call(
        &stack,
        "POST",
        "/chat/completions",
        Some(&alice),
        Some(chat),
    )
    .await;
    assert_eq!(s, 401);
    assert_eq!(
        stack.upstream.requests().len(),
        0,
        "nothing reached the upstream"
    );
}

/// Every route, every method, hostile bodies and headers: never a trap,
/// never a 500, always JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_input_makes_a_component_trap() {
    let stack = Stack::start().await.expect("stack starts");
    let alice = stack.person("alice", &["developers"]);
    let paths = [
        "/v1/access-requests",
        "/v1/access-requests/req_x",
        "/v1/access-requests/req_x/approve",
        "/v1/access-requests/req_x/deny",
        "/v1/grants/req_x/revoke",
        "/v1/grants/req_x/token",
        "/v1/audit/records?since=-1&until=x&limit=99999999999999999999",
        "/chat/completions",
        "/v1/engines/gpt-4o/completions",
        "/models",
        "/models/gpt-4o",
        "/embeddings",
        "/embeddings/models",
        "/responses",
        "/v1/messages",
        "/copilot_internal/v2/token",
        "/copilot_internal/user",
        "/user",
        "/agents",
        "/telemetry",
        "/%00%ff/..%2f",
        "/v1/access-requests?status=%ff%fe&requester=%00",
    ];
    let bodies: [&[u8]; 8] = [
        b"",
        b"null",
        b"[]",
        b"{\"messages\": 5, \"prompt\": {\"a\": 1}, \"stream\": \"yes\"}",
        b"{\"scopes\": [\"chat\"], \"reason\": \"x\", \"duration\": 99999999999999999999}",
        b"{\"messages\": [{\"content\": [{\"text\": 7}, null, \"x\"]}], \"model\": 3}",
        b"\xff\xfe\x00garbage",
        b"{\"ttl\": -5, \"comment\": {\"nested\": true}}",
    ];
    let authorizations = [
        None,
        Some(format!("Bearer {alice}")),
        Some("Bearer tid=x;exp=99999999999;chat=1:00".to_string()),
        Some("token ".to_string()),
        Some("Basic YWxhZGRpbjpvcGVuc2VzYW1l".to_string()),
    ];
    let client = reqwest::Client::new();
    let mut calls = 0;
    for path in paths {
        for method in ["GET", "POST", "PUT", "DELETE"] {
            for (i, body) in bodies.iter().enumerate() {
                let auth = &authorizations[(calls + i) % authorizations.len()];
                let mut req = client
                    .request(method.parse().unwrap(), format!("{}{path}", stack.url))
                    .header("x-request-id", format!("bad id {}", "x".repeat(300)))
                    .body(body.to_vec());
                if let Some(a) = auth {
                    req = req.header("authorization", a);
                }
                let resp = req.send().await.expect("reachable");
                let status = resp.status().as_u16();
                let trap = resp.headers().get("x-test-host-trap").is_some();
                let text = resp.text().await.unwrap_or_default();
                assert!(
                    !trap && status != 500,
                    "{method} {path} body #{i}: {status} {text}"
                );
                assert!(
                    serde_json::from_str::<Value>(&text).is_ok(),
                    "{method} {path} body #{i}: not JSON: {text}"
                );
                calls += 1;
            }
        }
    }
    assert_eq!(calls, paths.len() * 4 * bodies.len());
}
