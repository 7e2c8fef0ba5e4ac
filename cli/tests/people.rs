//! The `copilot-jit` command as developers and approvers use it, end to end
//! against the composed gateway and the real `oidc-provider`: signing in
//! with the device flow (the browser step driven as a person does it),
//! asking for access, deciding it, following it, seeing and ending the
//! grant; and the one-line errors with the exit statuses `--help`
//! documents. `--json` answers are parsed, never grepped.
//!
//! `scripts/test.sh` installs the provider and sets OIDC_PROVIDER_DIR.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use copilot_jit_testkit::harness::{eventually, Stack, StackOptions};
use copilot_jit_testkit::login_provider::{free_port, stack_with_login_provider, LoginProvider};
use serde_json::{json, Value};

mod common;
use common::{chat, log_in, log_in_at, waited_for, Home, Idp};

fn credential_file(home: &Home) -> PathBuf {
    home.config().join("copilot-jit/credential")
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("exists")
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_developer_asks_an_approver_decides_and_the_grant_ends() {
    let (stack, _idp) = stack_with_login_provider()
        .await
        .expect("stack and identity provider");
    let alice = Home::new("alice");
    let bob = Home::new("bob");

    // 1. Both sign in with the device flow; no keyring here, so a 0600 file.
    let signed_in = log_in(&alice, &stack, "alice").await;
    assert_eq!(signed_in["event"], "signed_in");
    assert_eq!(signed_in["login"], "alice", "{signed_in}");
    assert_eq!(signed_in["credential_store"], "file");
    #[cfg(unix)]
    {
        assert_eq!(mode(&credential_file(&alice)), 0o600);
        assert_eq!(mode(&alice.config().join("copilot-jit")), 0o700);
    }
    let credential = std::fs::read_to_string(credential_file(&alice))
        .expect("the credential file")
        .trim()
        .to_string();
    assert!(credential.starts_with("gho_"));
    log_in(&bob, &stack, "bob").await;

    // Before any grant, a Copilot call with the sign-in is refused.
    assert_eq!(chat(&stack, &credential).await, 403);

    // 2. Alice asks and waits; the policy's answer comes at once.
    let waiting = alice
        .command(&[
            "request",
            "--scopes",
            "chat,completions",
            "--duration",
            "30m",
            "--reason",
            "pairing on the parser",
            "--wait",
            "--json",
        ])
        .spawn()
        .expect("request starts");

    // 3. Bob's inbox shows it, with the policy's requirements.
    let listed = eventually(|| async {
        let inbox = bob.json(&["approvals", "--json"]).await;
        inbox["requests"]
            .as_array()?
            .iter()
            .find(|r| r["reason"] == "pairing on the parser")
            .cloned()
    })
    .await
    .expect("the request reaches the approver's inbox");
    assert_eq!(listed["you_may_decide"], true, "{listed}");
    assert_eq!(listed["requester"]["subject"], "alice");
    assert_eq!(listed["required_approvals"], 1);
    let id = listed["id"].as_str().expect("id").to_string();
    // Alice sees nothing to decide (her own request is not hers to decide).
    let hers = alice.json(&["approvals", "--json"]).await;
    assert_eq!(hers["requests"], json!([]), "{hers}");
    // In text, the table names requester, scopes, reason and policy.
    let table = bob.run(&["approvals"]).await;
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("ID"), "{text}");
    assert!(
        text.contains(&id) && text.contains("pairing on the parser"),
        "{text}"
    );

    // 4. Bob approves; Alice's --wait ends with 0 and the approved request.
    let approved = bob
        .json(&["approve", &id, "-m", "go ahead", "--json"])
        .await;
    assert_eq!(approved["request"]["status"], "approved", "{approved}");
    let (code, out) = waited_for(waiting).await;
    assert_eq!(code, Some(0), "approved: exit 0");
    let answer: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(answer["request"]["id"], id.as_str());
    assert_eq!(answer["request"]["status"], "approved");

    // 5. Status shows the grant, its time left, and where the credential is.
    let status = alice.json(&["status", "--json"]).await;
    assert_eq!(status["principal"]["subject"], "alice", "{status}");
    assert_eq!(status["credential_store"], "file");
    let grant = status["grants"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["id"] == id.as_str()))
        .unwrap_or_else(|| panic!("the grant in {status}"));
    assert_eq!(grant["scopes"], json!(["chat", "completions"]));
    let left = grant["seconds_left"].as_u64().expect("seconds_left");
    assert!(left > 1700 && left <= 1800, "{left}");
    assert_eq!(status["pending"], json!([]));
    assert!(status["devices"]
        .as_array()
        .is_some_and(|d| d.iter().any(|d| d["current"] == true)));
    let text = String::from_utf8_lossy(&alice.run(&["status"]).await.stdout).into_owned();
    assert!(text.contains("0600") && text.contains(&id), "{text}");

    // The sign-in now opens the grant for a Copilot client.
    assert_eq!(chat(&stack, &credential).await, 200);

    // 6. Revoke (no ID: her active grants): refused from the next call on.
    let revoked = alice.json(&["revoke", "--json"]).await;
    assert_eq!(revoked["revoked"][0]["id"], id.as_str(), "{revoked}");
    assert_eq!(revoked["revoked"][0]["status"], "revoked");
    assert_eq!(chat(&stack, &credential).await, 403);
    let status = alice.json(&["status", "--json"]).await;
    assert_eq!(status["grants"], json!([]), "{status}");

    // 7. Logout revokes the sign-in at the gateway and forgets it here.
    let out = alice.json(&["logout", "--json"]).await;
    assert_eq!(out["revoked_at_gateway"], true, "{out}");
    assert!(!credential_file(&alice).exists());
    let user = reqwest::Client::new()
        .get(format!("{}/api/v3/user", stack.url))
        .header("authorization", format!("token {credential}"))
        .send()
        .await
        .expect("reachable");
    assert_eq!(user.status(), 401, "the old credential opens nothing");
    let after = alice.run(&["status"]).await;
    assert_eq!(after.status.code(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_ends_the_wait_with_1_and_the_reason() {
    let (stack, _idp) = stack_with_login_provider()
        .await
        .expect("stack and identity provider");
    let (alice, bob) = (Home::new("alice-d"), Home::new("bob-d"));
    log_in(&alice, &stack, "alice").await;
    log_in(&bob, &stack, "bob").await;
    let asked = alice
        .json(&[
            "request", "--scopes", "chat", "--reason", "late fix", "--json",
        ])
        .await;
    assert_eq!(asked["request"]["status"], "pending", "{asked}");
    let id = asked["request"]["id"].as_str().expect("id").to_string();
    let waiting = alice
        .command(&[
            "request",
            "--scopes",
            "chat",
            "--reason",
            "second ask",
            "--wait",
        ])
        .spawn()
        .expect("starts");
    let second = eventually(|| async {
        let inbox = bob.json(&["approvals", "--json"]).await;
        inbox["requests"]
            .as_array()?
            .iter()
            .find(|r| r["reason"] == "second ask")
            .and_then(|r| r["id"].as_str().map(str::to_string))
    })
    .await
    .expect("in the inbox");
    // Both there, oldest first (the gateway's clock counts whole seconds).
    let inbox = bob.json(&["approvals", "--json"]).await;
    let listed = inbox["requests"].as_array().unwrap();
    let ids: Vec<&str> = listed.iter().filter_map(|r| r["id"].as_str()).collect();
    assert!(
        ids.contains(&id.as_str()) && ids.contains(&second.as_str()),
        "{ids:?}"
    );
    let ages: Vec<u64> = listed
        .iter()
        .filter_map(|r| r["created_at"].as_u64())
        .collect();
    assert!(ages.windows(2).all(|w| w[0] <= w[1]), "{ages:?}");

    // Denying needs a reason.
    let no_reason = bob.run(&["deny", &second]).await;
    assert_eq!(no_reason.status.code(), Some(2));
    bob.json(&["deny", &second, "-m", "use the staging grant", "--json"])
        .await;
    let out = tokio::time::timeout(Duration::from_secs(30), waiting.wait_with_output())
        .await
        .expect("--wait ends")
        .expect("exit");
    assert_eq!(out.status.code(), Some(1), "denied: exit 1");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("denied by bob") && said.contains("use the staging grant"),
        "{said}"
    );

    // --all shows the decided one too, with its status.
    let all = bob.json(&["approvals", "--all", "--json"]).await;
    assert!(all["requests"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["id"] == second.as_str() && r["status"] == "denied"));
}

/// Asserts a failed run: exactly one line on stderr, the documented
/// status, and with `--json` the same error parsed on stdout.
fn one_line_error(out: &Output, exit: i32, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(exit), "{what}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{what}: one line: {stderr:?}");
    assert!(stderr.starts_with("copilot-jit: "), "{what}: {stderr}");
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_one_line_and_a_documented_exit_status() {
    // A sign-in that lasts seconds, to see one expire.
    let port = free_port().expect("port");
    let issuer = format!("http://127.0.0.1:{port}");
    let mut variables = LoginProvider::variables(&issuer);
    variables.insert("signin_ttl_secs".into(), "4".into());
    let stack = Stack::start_with(StackOptions {
        variables,
        ..StackOptions::default()
    })
    .await
    .expect("stack");
    let _idp = LoginProvider::start(port, &stack.url).await.expect("idp");
    let home = Home::new("carl");

    // --help documents every status it uses.
    let help = home.run(&["--help"]).await;
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for line in [
        "  1  denied",
        "  2  wrong flags",
        "  3  not signed in",
        "  4  the gateway cannot be reached",
        "  5  the gateway refused",
    ] {
        assert!(help.contains(line), "{line} in {help}");
    }

    // Wrong flags and arguments: 2.
    for args in [
        &["request", "--scopes", "chat"][..],
        &["request", "--reason", "x", "--scopes", "chat", "--bogus"],
        &[
            "request",
            "--reason",
            "x",
            "--scopes",
            "chat",
            "--duration",
            "2 hours",
        ],
        &["approve"],
        &["configure", "emacs"],
        &["frobnicate"],
        &["status", "extra"],
    ] {
        one_line_error(&home.run(args).await, 2, &format!("{args:?}"));
    }
    let parsed: Value = serde_json::from_slice(&home.run(&["approve", "--json"]).await.stdout)
        .expect("a JSON error");
    assert_eq!(parsed["error"]["exit"], 2, "{parsed}");

    // Not signed in: 3.
    one_line_error(&home.run(&["status"]).await, 3, "status before login");

    // Unknown gateways: 4.
    let closed = format!("http://127.0.0.1:{}", free_port().expect("port"));
    for gateway in [closed.as_str(), "http://no-such-gateway.invalid"] {
        let out = home.run(&["login", "--gateway", gateway]).await;
        let line = one_line_error(&out, 4, gateway);
        assert!(line.contains("cannot reach"), "{line}");
    }
    // Something that answers, but is not a gateway: the IdP.
    let out = home.run(&["login", "--gateway", &issuer]).await;
    let line = one_line_error(&out, 4, "the IdP as gateway");
    assert!(line.contains("copilot-jit gateway"), "{line}");

    // An unknown scope, found by the gateway: 2 with its message.
    log_in(&home, &stack, "carl").await;
    let out = home
        .run(&["request", "--scopes", "everything", "--reason", "x"])
        .await;
    let line = one_line_error(&out, 2, "unknown scope");
    assert!(line.contains("everything"), "{line}");

    // Expired login: 3, and the way out named.
    let expired = eventually(|| async {
        let out = home.run(&["status"]).await;
        (out.status.code() == Some(3)).then_some(out)
    })
    .await
    .expect("the sign-in expires");
    let line = one_line_error(&expired, 3, "expired sign-in");
    assert!(
        line.contains("expired") && line.contains("copilot-jit login"),
        "{line}"
    );
    let out = home
        .run(&["request", "--scopes", "chat", "--reason", "x", "--json"])
        .await;
    one_line_error(&out, 3, "request after expiry");
    let parsed: Value = serde_json::from_slice(&out.stdout).expect("JSON error");
    assert_eq!(parsed["error"]["exit"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_works_against_the_dev_server_out_of_the_box() {
    // The stack scripts/run-dev.sh serves, its development issuer's own
    // sign-in form in the browser step.
    let stack = Stack::start_with(StackOptions::dev_server())
        .await
        .expect("the dev server");
    let dana = Home::new("dana");
    let signed_in = log_in_at(&dana, &stack, "dana", Idp::DevIssuer).await;
    assert_eq!(signed_in["login"], "dana", "{signed_in}");
    let asked = dana
        .json(&[
            "request",
            "--scopes",
            "chat",
            "--reason",
            "first day",
            "--json",
        ])
        .await;
    assert_eq!(asked["request"]["status"], "pending", "{asked}");
    assert_eq!(asked["request"]["required_approvals"], 1, "{asked}");
    let status = dana.json(&["status", "--json"]).await;
    assert_eq!(status["principal"]["subject"], "dana", "{status}");
    assert_eq!(
        status["pending"][0]["id"], asked["request"]["id"],
        "{status}"
    );
}
