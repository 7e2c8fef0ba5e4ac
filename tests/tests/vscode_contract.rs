//! VS Code cannot run here. This replays exactly what its `github-enterprise`
//! sign-in (`extensions/github-authentication`) and the Copilot Chat
//! extension send, in order, as `../shared/reference/clients.md` records
//! them from their source: the device flow with parameters in the query and
//! no body, `GET /api/v3/user` with `Authorization: token`, then on
//! `api.<host>` `/copilot_internal/user` and `/copilot_internal/v2/token`
//! with `X-GitHub-Api-Version: 2025-04-01` (VS Code core also reads
//! `/copilot/mcp_registry` and `/copilot_internal/managed_settings` with
//! `Bearer`), then chat at the envelope's `endpoints.api`.

use copilot_jit_testkit::harness::{send, Body, Stack, APPROVERS};
use serde_json::json;

const CLIENT_ID: &str = "01ab8ac9400c4e429b23";
const SCOPES: &str = "read:user%20user:email%20repo%20workflow";

/// A request as VS Code's fetch makes it to the server or its `api.` host.
fn vscode(
    method: reqwest::Method,
    stack: &Stack,
    host: &str,
    path: &str,
) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .request(method, format!("{}{path}", stack.url))
        .header("host", host)
        .header("user-agent", "Visual-Studio-Code/1.107.0")
        .header("accept", "application/json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vscode_signs_in_to_the_gateway_as_a_github_enterprise_server() {
    let stack = Stack::start().await.expect("stack");
    let server = "gw.test";
    let api = "api.gw.test";
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;

    // github-authentication: device code, query parameters, no body.
    let code = send(vscode(
        post.clone(),
        &stack,
        server,
        &format!("/login/device/code?client_id={CLIENT_ID}&scope={SCOPES}"),
    ))
    .await;
    assert_eq!(code.status, 200, "{}", code.json);
    for field in ["device_code", "user_code", "verification_uri", "interval"] {
        assert!(
            !code.json[field].is_null(),
            "{field} missing: {}",
            code.json
        );
    }
    let device_code = code.json["device_code"].as_str().unwrap();
    let poll = || {
        send(vscode(
            reqwest::Method::POST,
            &stack,
            server,
            &format!(
                "/login/oauth/access_token?client_id={CLIENT_ID}&device_code={device_code}&grant_type=urn:ietf:params:oauth:grant-type:device_code"
            ),
        ))
    };
    assert_eq!(poll().await.json["error"], "authorization_pending");

    // The person opens verification_uri and signs in (the pages' part,
    // driven in device_login.rs; here through the API the pages use).
    let alice = stack.person("alice", &["developers"]);
    let taken = stack
        .call(
            "POST",
            "/v1/sign-in/device",
            Some(&alice),
            json!({"user_code": code.json["user_code"]}),
        )
        .await;
    assert_eq!(taken.status, 200, "{}", taken.text);
    // VS Code polls at the interval; a poll that early gets slow_down, and
    // VS Code waits longer, so this one comes after the interval in spirit:
    // what matters is it accepts `{access_token}` when it arrives.
    let mut token = None;
    for _ in 0..2 {
        let answer = poll().await;
        if let Some(t) = answer.json["access_token"].as_str() {
            token = Some(t.to_string());
            break;
        }
        assert_eq!(answer.json["error"], "slow_down", "{}", answer.json);
    }
    let token = token.expect("VS Code gets its token");

    // The session's account: GET {uri}/api/v3/user with `token`.
    let user = send(
        vscode(get.clone(), &stack, server, "/api/v3/user")
            .header("authorization", format!("token {token}")),
    )
    .await;
    assert_eq!(user.status, 200, "{}", user.json);
    assert!(
        user.json["id"].is_u64() && user.json["login"] == "alice",
        "{}",
        user.json
    );
    assert!(user.headers.get("x-oauth-scopes").is_some());

    // VS Code core on api.<host>, Bearer: the user, MCP registry, managed settings.
    let bearer = format!("Bearer {token}");
    let core_user = send(
        vscode(get.clone(), &stack, api, "/copilot_internal/user").header("authorization", &bearer),
    )
    .await;
    assert_eq!(core_user.json["chat_enabled"], true, "{}", core_user.json);
    for path in [
        "/copilot/mcp_registry",
        "/copilot_internal/managed_settings",
    ] {
        let none =
            send(vscode(get.clone(), &stack, api, path).header("authorization", &bearer)).await;
        assert_eq!(none.status, 404, "{path}");
    }

    // Copilot Chat: user and token with `token` and the API version header.
    let chat_get = |path: &'static str| {
        vscode(reqwest::Method::GET, &stack, api, path)
            .header("authorization", format!("token {token}"))
            .header("x-github-api-version", "2025-04-01")
    };
    assert_eq!(send(chat_get("/copilot_internal/user")).await.status, 200);
    let refused = send(chat_get("/copilot_internal/v2/token")).await;
    assert_eq!(refused.status, 403, "no grant yet: {}", refused.json);
    assert!(
        refused.json["error_details"]["message"].is_string(),
        "{}",
        refused.json
    );

    // Approval arrives; the extension's next token call succeeds.
    let bob = stack.person("bob", &[APPROVERS]);
    let created = stack
        .call(
            "POST",
            "/v1/access-requests",
            Some(&alice),
            json!({"scopes": ["chat"], "reason": "vs code", "duration": "1h"}),
        )
        .await;
    let id = created.json["request"]["id"].as_str().unwrap().to_string();
    let approved = stack
        .call(
            "POST",
            &format!("/v1/access-requests/{id}/approve"),
            Some(&bob),
            Body::Empty,
        )
        .await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    let envelope = send(chat_get("/copilot_internal/v2/token")).await;
    assert_eq!(envelope.status, 200, "{}", envelope.json);
    assert_eq!(envelope.json["endpoints"]["api"], stack.url);
    let session = envelope.json["token"].as_str().unwrap();

    // Chat at endpoints.api with the envelope's token.
    let models = send(
        reqwest::Client::new()
            .get(format!("{}/models", stack.url))
            .bearer_auth(session)
            .header("copilot-integration-id", "vscode-chat"),
    )
    .await;
    assert_eq!(models.status, 200, "{}", models.json);
    let answer = send(
        reqwest::Client::new()
            .post(format!("{}/chat/completions", stack.url))
            .bearer_auth(session)
            .header("copilot-integration-id", "vscode-chat")
            .header("editor-version", "vscode/1.107.0")
            .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]})),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.json);
}
