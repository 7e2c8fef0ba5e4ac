//! Bad input never traps and never gets a 500: each case is a JSON error
//! with the right status, and nothing secret in it.

use copilot_jit_testkit::dev_issuer::{now, Alg};
use copilot_jit_testkit::harness::{Answer, Stack, UPSTREAM_GITHUB_TOKEN};
use serde_json::{json, Value};

/// What else a case's answer must show besides its status.
enum Check {
    Header(&'static str, &'static str),
    Code(&'static str),
    Field(&'static str),
    HowToRequestAccess,
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    token: Option<String>,
    body: Option<Vec<u8>>,
    status: u16,
    checks: Vec<Check>,
}

fn case(
    name: &'static str,
    method: &'static str,
    path: &'static str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
    status: u16,
) -> Case {
    Case {
        name,
        method,
        path,
        token: token.map(str::to_string),
        body,
        status,
        checks: Vec::new(),
    }
}

impl Case {
    fn and(mut self, check: Check) -> Case {
        self.checks.push(check);
        self
    }
}

fn cases(stack: &Stack) -> Vec<Case> {
    let alice = stack.person("alice", &["developers"]);
    let ask = || Some(br#"{"scopes":["chat"],"reason":"x"}"#.to_vec());
    let chat =
        || Some(br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#.to_vec());
    let expired = stack.issuer.sign(
        Alg::Es256,
        json!({"iss": stack.issuer.issuer(), "sub": "alice", "aud": "copilot-jit", "exp": now() - 3600, "iat": now() - 7200}),
    );
    let wrong_audience = stack.issuer.token_for("alice", &[], "someone-else");
    let huge = format!(
        r#"{{"scopes":["chat"],"reason":"{}"}}"#,
        "x".repeat(70 * 1024)
    )
    .into_bytes();
    let requests = "/v1/access-requests";
    let mut cases = vec![
        case("unknown route", "GET", "/no/such/thing", None, None, 404),
        case("wrong method", "DELETE", requests, Some(&alice), None, 405)
            .and(Check::Header("allow", "GET, POST")),
        case("GET on chat", "GET", "/chat/completions", None, None, 405),
        // Identity problems.
        case("no token", "POST", requests, None, ask(), 401)
            .and(Check::Header("www-authenticate", "Bearer"))
            .and(Check::Code("unauthenticated")),
    ];
    for (name, garbage) in [
        ("token abc", "abc".to_string()),
        ("token a.b.c", "a.b.c".to_string()),
        ("unsigned token", "eyJhbGciOiJub25lIn0.e30.".to_string()),
        ("20 KB token", "x".repeat(20_000)),
    ] {
        cases.push(case(name, "POST", requests, Some(&garbage), ask(), 401));
    }
    cases.extend([
        case(
            "expired token",
            "POST",
            requests,
            Some(&expired),
            ask(),
            401,
        )
        .and(Check::Code("token_expired")),
        case(
            "wrong audience",
            "POST",
            requests,
            Some(&wrong_audience),
            ask(),
            401,
        ),
        // Bodies.
        case(
            "not JSON",
            "POST",
            requests,
            Some(&alice),
            Some(b"not json".to_vec()),
            400,
        ),
        case("no body", "POST", requests, Some(&alice), None, 400),
        case(
            "scopes not a list",
            "POST",
            requests,
            Some(&alice),
            Some(br#"{"scopes":"chat"}"#.to_vec()),
            400,
        ),
        case(
            "unknown scope",
            "POST",
            requests,
            Some(&alice),
            Some(br#"{"scopes":["root"],"reason":"x"}"#.to_vec()),
            400,
        )
        .and(Check::Field("scopes")),
        case(
            "70 KiB body",
            "POST",
            requests,
            Some(&alice),
            Some(huge),
            413,
        ),
        // Unknown ids.
        case(
            "unknown request",
            "GET",
            "/v1/access-requests/req_000000000000000000000000",
            Some(&alice),
            None,
            404,
        ),
        case(
            "unknown grant",
            "POST",
            "/v1/grants/req_nope/token",
            Some(&alice),
            None,
            404,
        ),
        case(
            "unknown status",
            "GET",
            "/v1/access-requests?status=bogus",
            Some(&alice),
            None,
            400,
        ),
        // Copilot calls without a usable gateway token say how to get one.
        case(
            "chat without token",
            "POST",
            "/chat/completions",
            None,
            chat(),
            401,
        )
        .and(Check::HowToRequestAccess),
        case(
            "chat with garbage",
            "POST",
            "/chat/completions",
            Some("not-a-token"),
            chat(),
            401,
        ),
        // An OIDC token is not a gateway token.
        case(
            "chat with an OIDC token",
            "POST",
            "/chat/completions",
            Some(&alice),
            chat(),
            401,
        ),
    ]);
    cases
}

/// Every answer, whatever the case: no trap, no credential, JSON, and an
/// error code on every error.
fn check_answer(case: &Case, answer: &Answer) {
    let (method, path) = (case.method, case.path);
    assert!(!answer.trapped(), "trap on {method} {path}");
    assert!(!answer.text.contains(UPSTREAM_GITHUB_TOKEN));
    let value: Value = serde_json::from_str(&answer.text)
        .unwrap_or_else(|_| panic!("non-JSON answer to {method} {path}: {}", answer.text));
    assert!(
        value["error"]["code"].is_string() || answer.status < 400,
        "{value}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_json_errors() {
    let stack = Stack::start().await.expect("stack starts");
    for case in cases(&stack) {
        let answer = stack
            .call(
                case.method,
                case.path,
                case.token.as_deref(),
                case.body.clone(),
            )
            .await;
        check_answer(&case, &answer);
        let body = &answer.json;
        assert_eq!(answer.status, case.status, "{}: {body}", case.name);
        for check in &case.checks {
            match check {
                Check::Header(name, value) => {
                    assert_eq!(answer.headers[*name], *value, "{}", case.name)
                }
                Check::Code(code) => {
                    assert_eq!(body["error"]["code"].as_str(), Some(*code), "{}", case.name)
                }
                Check::Field(field) => {
                    assert_eq!(
                        body["error"]["field"].as_str(),
                        Some(*field),
                        "{}",
                        case.name
                    )
                }
                Check::HowToRequestAccess => assert!(
                    body["error"]["how_to_request_access"]["request"]["body"]["scopes"].is_array(),
                    "{}: {body}",
                    case.name
                ),
            }
        }
    }
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
