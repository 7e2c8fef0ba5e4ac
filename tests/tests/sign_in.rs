//! Signing in like GitHub: the device flow as VS Code and the Copilot CLI
//! send it, a `gho_` credential that is identity only, the person's grant
//! looked up on every call (approval after sign-in counts at once,
//! revocation too), and the GitHub API shapes clients read.

use copilot_jit_testkit::harness::{self, Answer, Body, Stack, StackOptions, APPROVERS};
use serde_json::{json, Value};

const VSCODE_CLIENT_ID: &str = "01ab8ac9400c4e429b23";
const CLI_CLIENT_ID: &str = "Ov23ctDVkRmgkPke0Mmm";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// One request, failing the test if the component trapped.
async fn send(req: reqwest::RequestBuilder) -> Answer {
    let answer = harness::send(req).await;
    assert!(!answer.trapped(), "trap");
    answer
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// VS Code's `github-enterprise` sign-in: parameters in the query, no body.
async fn vscode_device_code(stack: &Stack) -> Value {
    let a = send(
        client()
            .post(format!(
                "{}/login/device/code?client_id={VSCODE_CLIENT_ID}&scope=read:user%20user:email%20repo%20workflow",
                stack.url
            ))
            .header("accept", "application/json"),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.json);
    a.json
}

async fn vscode_poll(stack: &Stack, device_code: &str) -> Answer {
    send(
        client()
            .post(format!(
                "{}/login/oauth/access_token?client_id={VSCODE_CLIENT_ID}&device_code={device_code}&grant_type={DEVICE_GRANT}",
                stack.url
            ))
            .header("accept", "application/json"),
    )
    .await
}

/// The Copilot CLI's: a form body.
async fn cli_poll(stack: &Stack, device_code: &str) -> Answer {
    send(
        client()
            .post(format!("{}/login/oauth/access_token", stack.url))
            .header("accept", "application/json")
            .form(&[
                ("client_id", CLI_CLIENT_ID),
                ("device_code", device_code),
                ("grant_type", DEVICE_GRANT),
            ]),
    )
    .await
}

/// A person takes a user code with their OIDC token (as the page does once
/// the IdP has signed them in).
async fn take_code(stack: &Stack, id_token: &str, user_code: &str) -> Answer {
    send(
        client()
            .post(format!("{}/v1/sign-in/device", stack.url))
            .bearer_auth(id_token)
            .json(&json!({ "user_code": user_code })),
    )
    .await
}

async fn get(stack: &Stack, path: &str, auth: &str, host: Option<&str>) -> Answer {
    let mut req = client()
        .get(format!("{}{path}", stack.url))
        .header("authorization", auth)
        .header("x-github-api-version", "2025-04-01");
    if let Some(h) = host {
        req = req.header("host", h);
    }
    send(req).await
}

async fn chat(stack: &Stack, auth: &str) -> Answer {
    send(
        client()
            .post(format!("{}/chat/completions", stack.url))
            .header("authorization", auth)
            .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]})),
    )
    .await
}

/// Signs alice in through the device flow (VS Code's shape) and returns
/// her credential.
async fn signed_in_alice(stack: &Stack) -> String {
    let code = vscode_device_code(stack).await;
    let alice = stack.person("alice", &["developers"]);
    let taken = take_code(stack, &alice, code["user_code"].as_str().unwrap()).await;
    assert_eq!(taken.status, 200, "{}", taken.json);
    let polled = vscode_poll(stack, code["device_code"].as_str().unwrap()).await;
    polled.json["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no credential: {}", polled.json))
        .to_string()
}

async fn request_and_approve(stack: &Stack, scopes: &[&str]) -> String {
    let alice = stack.person("alice", &["developers"]);
    let bob = stack.person("bob", &[APPROVERS]);
    let created = stack
        .call(
            "POST",
            "/v1/access-requests",
            Some(&alice),
            json!({"scopes": scopes, "reason": "work", "duration": "1h"}),
        )
        .await;
    let id = created.json["request"]["id"].as_str().unwrap().to_string();
    let approved = stack
        .call(
            "POST",
            &format!("/v1/access-requests/{id}/approve"),
            Some(&bob),
            json!({}),
        )
        .await;
    assert_eq!(approved.status, 200, "{}", approved.text);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_flow_sign_in_is_identity_and_the_grant_is_looked_up_per_call() {
    let stack = Stack::start().await.expect("stack");

    // 1. The device flow, as VS Code sends it.
    let code = vscode_device_code(&stack).await;
    let user_code = code["user_code"].as_str().expect("user_code");
    let device_code = code["device_code"].as_str().expect("device_code");
    assert_eq!(
        code["verification_uri"],
        format!("{}/login/device", stack.url)
    );
    assert_eq!(code["interval"], 5);
    assert!(code["expires_in"].as_u64().unwrap() > 120, "{code}");
    assert_eq!(user_code.len(), 9, "{user_code}");

    let pending = vscode_poll(&stack, device_code).await;
    assert_eq!(pending.status, 200);
    assert_eq!(pending.json["error"], "authorization_pending");
    let fast = vscode_poll(&stack, device_code).await;
    assert_eq!(fast.json["error"], "slow_down", "{}", fast.json);
    assert_eq!(fast.json["interval"], 10);

    // 2. Alice takes the code (typed in lower case, as people do).
    let alice = stack.person("alice", &["developers"]);
    let taken = take_code(&stack, &alice, &user_code.to_lowercase()).await;
    assert_eq!(taken.status, 200, "{}", taken.json);
    assert_eq!(taken.json["client"], "Visual Studio Code");

    // 3. The next poll gets the credential, once.
    let granted = vscode_poll(&stack, device_code).await;
    let credential = granted.json["access_token"]
        .as_str()
        .expect("credential")
        .to_string();
    assert!(credential.starts_with("gho_"), "{credential}");
    assert!(credential[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(granted.json["token_type"], "bearer");
    let replayed = vscode_poll(&stack, device_code).await;
    assert_eq!(replayed.json["error"], "invalid_grant", "{}", replayed.json);

    // 4. GitHub's user, on the server and on its api. host.
    let token = format!("token {credential}");
    let user = get(&stack, "/api/v3/user", &token, Some("gw.example")).await;
    assert_eq!(user.status, 200, "{}", user.json);
    assert_eq!(user.json["login"], "alice");
    assert!(user.json["id"].as_u64().is_some());
    assert!(user.headers["x-oauth-scopes"]
        .to_str()
        .unwrap()
        .contains("read:user"));
    let same = get(&stack, "/user", &token, Some("api.gw.example")).await;
    assert_eq!(same.json["id"], user.json["id"]);
    let root = get(&stack, "/api/v3", &token, None).await;
    assert_eq!(root.status, 200);
    assert!(root.headers.get("x-oauth-scopes").is_some());
    let copilot_user = get(
        &stack,
        "/copilot_internal/user",
        &token,
        Some("api.gw.example"),
    )
    .await;
    assert_eq!(copilot_user.status, 200, "{}", copilot_user.json);
    assert_eq!(copilot_user.json["chat_enabled"], true);
    assert_eq!(copilot_user.json["endpoints"]["api"], stack.url);

    // 5. Signed in, but no grant: Copilot's own 403, linking the request page.
    let bearer = format!("Bearer {credential}");
    let refused = chat(&stack, &bearer).await;
    assert_eq!(refused.status, 403, "{}", refused.json);
    assert_eq!(
        refused.json["error_details"]["url"],
        format!("{}/access", stack.url)
    );
    let envelope = get(&stack, "/copilot_internal/v2/token", &token, None).await;
    assert_eq!(envelope.status, 403, "{}", envelope.json);
    assert!(envelope.json["error_details"]["message"]
        .as_str()
        .unwrap()
        .contains("no active grant"));

    // 6. Approval arrives later: the same credential works, no new sign-in.
    let grant_id = request_and_approve(&stack, &["chat"]).await;
    let answered = chat(&stack, &bearer).await;
    assert_eq!(answered.status, 200, "{}", answered.json);
    let envelope = get(&stack, "/copilot_internal/v2/token", &token, None).await;
    assert_eq!(envelope.status, 200, "{}", envelope.json);
    let session = envelope.json["token"].as_str().unwrap();
    assert_eq!(chat(&stack, &format!("Bearer {session}")).await.status, 200);
    // A scope the grant lacks is still refused.
    let completions = send(
        client()
            .post(format!(
                "{}/v1/engines/gpt-41-copilot/completions",
                stack.url
            ))
            .header("authorization", &bearer)
            .json(&json!({"prompt": "fn main", "max_tokens": 5})),
    )
    .await;
    assert_eq!(completions.status, 403, "{}", completions.json);

    // 7. The call is recorded under alice, with her grant and sign-in.
    let record = stack
        .audit_record(&format!("grant={grant_id}"), |r| {
            r["unmapped"]["action"] == "copilot.chat"
                && r["unmapped"]["token_id"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("signin:"))
        })
        .await;
    let record = record.expect("the chat call is recorded with the sign-in");
    assert_eq!(record["actor"]["user"]["uid"], "alice");

    // 8. Revoking the grant closes it at once; the sign-in stays.
    let bob = stack.person("bob", &[APPROVERS]);
    let revoked = stack
        .call(
            "POST",
            &format!("/v1/grants/{grant_id}/revoke"),
            Some(&bob),
            json!({}),
        )
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert_eq!(chat(&stack, &bearer).await.status, 403);
    assert_eq!(get(&stack, "/api/v3/user", &token, None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_devices_are_listed_and_revoked() {
    let stack = Stack::start().await.expect("stack");
    let first = signed_in_alice(&stack).await;
    let second = signed_in_alice(&stack).await;
    request_and_approve(&stack, &["chat"]).await;
    let alice = stack.person("alice", &["developers"]);

    let listed = stack
        .call("GET", "/v1/sign-ins", Some(&alice), Body::Empty)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let devices = listed.json["sign_ins"].as_array().expect("list").clone();
    assert_eq!(devices.len(), 2, "{}", listed.json);
    assert!(
        !listed.text.contains(&first[4..]),
        "the list shows no credential"
    );
    // The listing through a credential marks that one as current.
    let mine = stack
        .call("GET", "/v1/sign-ins", Some(&second), Body::Empty)
        .await;
    let current: Vec<&Value> = mine.json["sign_ins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["current"] == true)
        .collect();
    assert_eq!(current.len(), 1, "{}", mine.json);
    let second_id = current[0]["id"].as_str().unwrap().to_string();

    // Bob cannot end alice's sign-in; alice can.
    let bob = stack.person("bob", &[APPROVERS]);
    let path = format!("/v1/sign-ins/{second_id}/revoke");
    assert_eq!(
        stack
            .call("POST", &path, Some(&bob), Body::Empty)
            .await
            .status,
        404
    );
    let ended = stack.call("POST", &path, Some(&alice), Body::Empty).await;
    assert_eq!(ended.status, 200, "{}", ended.text);
    let after = chat(&stack, &format!("Bearer {second}")).await;
    assert_eq!(after.status, 401, "{}", after.json);
    assert_eq!(chat(&stack, &format!("Bearer {first}")).await.status, 200);
    let record = stack
        .audit_record("subject=alice", |r| {
            r["unmapped"]["action"] == "signin.revoke"
        })
        .await;
    assert!(record.is_some(), "the revocation is recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_form_and_json_bodies_work_and_hostile_inputs_are_refused() {
    let stack = Stack::start().await.expect("stack");

    // The Copilot CLI's form body.
    let started = send(
        client()
            .post(format!("{}/login/device/code", stack.url))
            .header("accept", "application/json")
            .form(&[
                ("client_id", CLI_CLIENT_ID),
                (
                    "scope",
                    "read:user,read:org,repo,gist,codespace,write:plugin_gateway_connections",
                ),
            ]),
    )
    .await;
    assert_eq!(started.status, 200, "{}", started.json);
    let device_code = started.json["device_code"].as_str().unwrap().to_string();
    let user_code = started.json["user_code"].as_str().unwrap().to_string();
    assert_eq!(
        cli_poll(&stack, &device_code).await.json["error"],
        "authorization_pending"
    );

    // A code taken by one person cannot be taken by another.
    let alice = stack.person("alice", &["developers"]);
    let mallory = stack.person("mallory", &["developers"]);
    assert_eq!(take_code(&stack, &alice, &user_code).await.status, 200);
    let second = take_code(&stack, &mallory, &user_code).await;
    assert_eq!(second.status, 409, "{}", second.json);
    assert!(second.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("already used"));
    let polled = cli_poll(&stack, &device_code).await;
    let credential = polled.json["access_token"]
        .as_str()
        .expect("alice's credential");
    let user = get(&stack, "/user", &format!("token {credential}"), None).await;
    assert_eq!(
        user.json["login"], "alice",
        "the code went to its first taker"
    );
    // Once redeemed, the user code is gone and the device code spent.
    assert_eq!(take_code(&stack, &mallory, &user_code).await.status, 404);
    assert_eq!(
        cli_poll(&stack, &device_code).await.json["error"],
        "invalid_grant"
    );

    // JSON bodies.
    let json_started = send(
        client()
            .post(format!("{}/login/device/code", stack.url))
            .json(&json!({"client_id": "some-app", "scope": "read:user"})),
    )
    .await;
    assert_eq!(json_started.status, 200, "{}", json_started.json);

    // Hostile and malformed input: clear errors, never a 500.
    let huge = "A".repeat(100_000);
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            client().post(format!(
                "{}/login/oauth/access_token?grant_type={DEVICE_GRANT}&device_code={}",
                stack.url,
                "f".repeat(4000)
            )),
            400,
            "invalid_request",
        ),
        (
            client().post(format!(
                "{}/login/oauth/access_token?grant_type=password&device_code=x",
                stack.url
            )),
            400,
            "unsupported_grant_type",
        ),
        (
            client().post(format!(
                "{}/login/oauth/access_token?grant_type={DEVICE_GRANT}&device_code=0000",
                stack.url
            )),
            200,
            "invalid_grant",
        ),
        (
            client()
                .post(format!("{}/login/device/code", stack.url))
                .form(&[("client_id", &huge[..4000])]),
            400,
            "invalid_request",
        ),
    ];
    for (req, status, error) in cases {
        let a = send(req).await;
        assert_eq!(
            (a.status, a.json["error"].as_str()),
            (status, Some(error)),
            "{}",
            a.json
        );
    }
    let oversized = send(
        client()
            .post(format!("{}/login/device/code", stack.url))
            .form(&[("client_id", huge.as_str())]),
    )
    .await;
    assert_eq!(oversized.status, 413, "{}", oversized.json);
    for typed in ["", "AAAA-AAAA", &huge[..40], "BCDF-GHJK"] {
        let a = take_code(&stack, &alice, typed).await;
        assert_eq!(a.status, 404, "{typed}: {}", a.json);
    }
    let no_identity = send(
        client()
            .post(format!("{}/v1/sign-in/device", stack.url))
            .json(&json!({"user_code": user_code})),
    )
    .await;
    assert_eq!(no_identity.status, 401);

    // Forged or unknown credentials: 401, no store write needed to tell.
    for forged in [
        format!("gho_{}", "a".repeat(40)),
        "gho_short".to_string(),
        "ghp_personalaccesstoken".to_string(),
    ] {
        let a = chat(&stack, &format!("Bearer {forged}")).await;
        assert_eq!(a.status, 401, "{forged}: {}", a.json);
        let u = get(&stack, "/api/v3/user", &format!("token {forged}"), None).await;
        assert_eq!(u.status, 401, "{forged}");
    }
    assert_eq!(get(&stack, "/api/v3", "token nope", None).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probed_copilot_features_get_githubs_404() {
    let stack = Stack::start().await.expect("stack");
    let credential = signed_in_alice(&stack).await;
    let auth = format!("Bearer {credential}");
    for (method, path) in [
        (
            "GET",
            "/copilot_internal/managed_settings?client_id=github/cli&client_version=1.0.102",
        ),
        ("GET", "/copilot_internal/team_customizations"),
        ("GET", "/copilot/mcp_registry"),
        ("GET", "/copilot_internal/content_exclusion"),
        ("POST", "/mcp/readonly"),
        ("GET", "/agents/swe/internal/memory/v0/enabled"),
    ] {
        let method: reqwest::Method = method.parse().unwrap();
        let a = send(
            client()
                .request(method, format!("{}{path}", stack.url))
                .header("authorization", &auth),
        )
        .await;
        assert_eq!(a.status, 404, "{path}");
        assert_eq!(a.json["message"], "Not Found", "{path}: {}", a.json);
    }
    let meta = get(&stack, "/api/v3/meta", &auth, None).await;
    assert_eq!(meta.status, 200);
    assert_eq!(meta.json["verifiable_password_authentication"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_cannot_sign_devices_in() {
    use copilot_jit_testkit::dev_issuer::{now, Alg};
    let stack = Stack::start_with(copilot_jit_testkit::harness::StackOptions {
        github_actions: true,
        ..Default::default()
    })
    .await
    .expect("stack");
    let code = vscode_device_code(&stack).await;
    let actions = stack.actions_issuer.as_ref().expect("actions issuer");
    let run = actions.sign(
        Alg::Rs256,
        json!({
            "iss": actions.issuer(), "aud": "copilot-jit", "sub": "repo:acme/app:ref:refs/heads/main",
            "repository": "acme/app", "repository_owner": "acme", "ref": "refs/heads/main",
            "event_name": "push", "workflow": "ci", "iat": now(), "exp": now() + 300,
        }),
    );
    let refused = take_code(&stack, &run, code["user_code"].as_str().unwrap()).await;
    assert_eq!(refused.status, 403, "{}", refused.json);
    let still = vscode_poll(&stack, code["device_code"].as_str().unwrap()).await;
    assert_eq!(still.json["error"], "authorization_pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_speaks_for_its_person_on_the_access_api_and_no_further() {
    let stack = Stack::start().await.expect("stack");
    let credential = signed_in_alice(&stack).await;
    let auth = format!("token {credential}");

    // What the copilot-jit command does with it: ask, list, see who I am.
    let asked = send(
        client()
            .post(format!("{}/v1/access-requests", stack.url))
            .header("authorization", &auth)
            .json(&json!({"scopes": ["chat"], "reason": "from the terminal"})),
    )
    .await;
    assert_eq!(asked.status, 201, "{}", asked.json);
    assert_eq!(asked.json["request"]["requester"]["subject"], "alice");
    let mine = get(&stack, "/v1/access-requests", &auth, None).await;
    assert_eq!(mine.status, 200, "{}", mine.json);
    assert_eq!(mine.json["requests"][0]["id"], asked.json["request"]["id"]);
    let me = get(&stack, "/v1/sign-ins", &auth, None).await;
    assert_eq!(me.json["principal"]["subject"], "alice", "{}", me.json);
    assert_eq!(me.json["principal"]["groups"], json!(["developers"]));

    // It cannot sign another device in (a sign-in outliving itself), nor
    // read the audit trail.
    let code = vscode_device_code(&stack).await;
    let bound = send(
        client()
            .post(format!("{}/v1/sign-in/device", stack.url))
            .header("authorization", &auth)
            .json(&json!({"user_code": code["user_code"]})),
    )
    .await;
    assert_eq!(bound.status, 401, "{}", bound.json);
    let audit = get(&stack, "/v1/audit/records", &auth, None).await;
    assert_eq!(audit.status, 401, "{}", audit.json);

    // Ended, it opens nothing there either.
    let id = me.json["sign_ins"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let ended = send(
        client()
            .post(format!("{}/v1/sign-ins/{id}/revoke", stack.url))
            .header("authorization", &auth),
    )
    .await;
    assert_eq!(ended.status, 200, "{}", ended.json);
    let after = get(&stack, "/v1/access-requests", &auth, None).await;
    assert_eq!(after.status, 401, "{}", after.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_from_a_sign_in_trusts_the_groups_from_when_it_signed_in() {
    let stack = Stack::start_with(StackOptions {
        variables: [("groups_max_age_secs".to_string(), "600".to_string())].into(),
        ..StackOptions::default()
    })
    .await
    .expect("stack");
    let old = format!("token {}", signed_in_alice(&stack).await);
    stack.advance(601);
    let bob = stack.person_now("bob", &[APPROVERS]);
    let ask_and_approve = |auth: String| {
        let (stack, bob) = (&stack, bob.clone());
        async move {
            let asked = send(
                client()
                    .post(format!("{}/v1/access-requests", stack.url))
                    .header("authorization", &auth)
                    .json(&json!({"scopes": ["chat"], "reason": "from the terminal"})),
            )
            .await;
            assert_eq!(asked.status, 201, "{}", asked.json);
            let id = asked.json["request"]["id"].as_str().unwrap().to_string();
            let approved = stack
                .call(
                    "POST",
                    &format!("/v1/access-requests/{id}/approve"),
                    Some(&bob),
                    json!({}),
                )
                .await;
            assert_eq!(approved.status, 200, "{}", approved.text);
        }
    };

    // Asked now, with a sign-in made eleven minutes ago: the groups the
    // request captured are the sign-in's, already past the bound.
    ask_and_approve(old.clone()).await;
    let refused = chat(&stack, &old).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert!(
        refused.text.contains("group memberships"),
        "{}",
        refused.text
    );

    // Signed in again, the IdP vouches for them now.
    let code = vscode_device_code(&stack).await;
    let alice = stack.person_now("alice", &["developers"]);
    let taken = take_code(&stack, &alice, code["user_code"].as_str().unwrap()).await;
    assert_eq!(taken.status, 200, "{}", taken.json);
    let polled = vscode_poll(&stack, code["device_code"].as_str().unwrap()).await;
    let fresh = format!("token {}", polled.json["access_token"].as_str().unwrap());
    ask_and_approve(fresh.clone()).await;
    let served = chat(&stack, &fresh).await;
    assert_eq!(served.status, 200, "{}", served.text);
}
