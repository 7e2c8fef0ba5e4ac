//! The real GitHub Copilot language server (the one JetBrains, copilot.vim
//! and copilot.lua run), unchanged, against the gateway two ways:
//! - with the environment variables the README documents (a gateway
//!   token): it signs in through the gateway's token exchange;
//! - with only its settings (`github-enterprise.uri`, `http.proxy`) and a
//!   test CA: it signs in with its own device flow, the person at the
//!   gateway's pages and the real IdP's login form, is refused until a grant
//!   is approved, then completes.
//!
//! Either way the inline completion comes through the gateway, masked.
//!
//! `scripts/test.sh` installs the server from npm and sets COPILOT_LS_BIN.

use copilot_jit_testkit::browser::Browser;
use copilot_jit_testkit::connect_proxy::ConnectProxy;
use copilot_jit_testkit::harness::{eventually, send, Stack, UPSTREAM_GITHUB_TOKEN};
use copilot_jit_testkit::language_server::LanguageServer;
use copilot_jit_testkit::login_provider::{HttpsStack, LoginProvider};
use copilot_jit_testkit::mock_upstream::{MockUpstream, StreamScript};
use copilot_jit_testkit::tls::TestCa;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// The deployment's name, as a person configures it in the editor; the
/// server derives `api.gw.test` from it.
const PUBLIC_URL: &str = "https://gw.test";

/// The model suggests a line holding a secret, split across events.
fn suggest_a_secret(upstream: &MockUpstream) {
    upstream.script_stream(StreamScript {
        pieces: vec![
            "return ".into(),
            "\"ghp_0123456789abcdef".into(),
            "ghijABCDEFGHIJ012345\"".into(),
        ],
        delay: Duration::from_millis(20),
        cut_after: None,
    });
}

/// A fresh home for one server.
fn home(name: &str) -> PathBuf {
    let home = std::env::temp_dir().join(format!("copilot-jit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(home.join("config")).expect("home");
    home
}

async fn complete_in_python(ls: &LanguageServer) -> Value {
    ls.inline_completion(
        "file:///work/app.py",
        "python",
        "def token():\n    ",
        (1, 4),
    )
    .await
}

/// The completion's text, masked: the secret never reaches the editor.
fn masked_suggestion(completion: &Value) -> String {
    let text = completion["result"]["items"]
        .as_array()
        .and_then(|items| items.first())
        .and_then(|i| i["insertText"].as_str())
        .unwrap_or_else(|| panic!("no suggestion: {completion}"))
        .to_string();
    assert!(text.contains("[REDACTED:github-token]"), "{text}");
    assert!(
        !text.contains("ghp_"),
        "the secret reached the editor: {text}"
    );
    text
}

/// Upstream only ever saw the gateway's own credentials.
fn upstream_saw_only_the_gateway(upstream: &MockUpstream) {
    assert_eq!(upstream.leaks(), 0);
    for r in upstream.requests() {
        let auth = r.authorization.unwrap_or_default();
        if r.path == "/copilot_internal/v2/token" {
            assert_eq!(auth, format!("token {UPSTREAM_GITHUB_TOKEN}"));
        } else {
            assert!(
                auth.starts_with("Bearer tid="),
                "{} carried {auth:.20}",
                r.path
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copilot_language_server_completes_through_the_gateway() {
    let stack = Stack::start().await.expect("stack");
    let (id, token) = stack
        .approved_grant(&["chat", "completions"], &[], Some("grant"))
        .await
        .expect("approved grant");
    suggest_a_secret(&stack.upstream);

    let home = home("ls");
    let ls = LanguageServer::start(&stack.url, &token, &home);
    ls.initialize("JetBrains-IC", "2026.1", "copilot-intellij")
        .await;
    ls.notify("workspace/didChangeConfiguration", json!({"settings": {}}));
    let status = ls.request("checkStatus", json!({})).await;
    assert_eq!(
        status["result"]["status"], "OK",
        "sign-in through the gateway: {status}"
    );
    masked_suggestion(&complete_in_python(&ls).await);
    drop(ls);

    upstream_saw_only_the_gateway(&stack.upstream);
    // And the audit shows the editor's calls under alice's grant.
    let records = stack
        .audit_records(&format!("grant={id}"))
        .await
        .expect("audit");
    let editor_calls: Vec<&str> = records
        .iter()
        .filter(|r| r["actor"]["app_name"] == "JetBrains-IC/2026.1")
        .filter_map(|r| r["unmapped"]["action"].as_str())
        .collect();
    assert!(editor_calls.contains(&"copilot.token"), "{editor_calls:?}");
    assert!(
        editor_calls.contains(&"copilot.completions"),
        "{editor_calls:?}"
    );
    let _ = std::fs::remove_dir_all(&home);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_language_server_signs_in_with_its_own_device_flow_and_completes_once_approved() {
    let home = home("ls-sign-in");
    // One certificate for both names the deployment needs.
    let ca = TestCa::create(&home.join("tls"), &["gw.test", "api.gw.test"]).expect("test CA");
    let https = HttpsStack::start(&ca, Some(PUBLIC_URL))
        .await
        .expect("stack and identity provider");
    let (stack, idp, plain_url) = (&https.stack, &https.idp, https.plain_url.as_str());
    // gw.test and api.gw.test on port 443 are the gateway's TLS listener.
    let proxy =
        ConnectProxy::start(&[("gw.test:443", stack.addr), ("api.gw.test:443", stack.addr)])
            .await
            .expect("proxy");
    suggest_a_secret(&stack.upstream);

    // 1. The editor starts the server with no token: only its settings
    //    point it at the gateway.
    let ls = LanguageServer::start_with(
        &[(
            "NODE_EXTRA_CA_CERTS".into(),
            ca.ca_pem.display().to_string(),
        )],
        &home,
    );
    ls.initialize("JetBrains-IC", "2026.1", "copilot-intellij")
        .await;
    ls.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {
            "http": {"proxy": proxy.url, "proxyStrictSSL": true},
            "github-enterprise": {"uri": PUBLIC_URL},
        }}),
    );
    let status = ls.request("checkStatus", json!({})).await;
    assert_eq!(status["result"]["status"], "NotSignedIn", "{status}");

    // 2. The editor's "Sign in" button: a code, and the command that opens
    //    the verification page and waits for the sign-in.
    let prompt = ls.request("signIn", json!({})).await;
    let prompt = &prompt["result"];
    assert_eq!(prompt["status"], "PromptUserDeviceFlow", "{prompt}");
    assert_eq!(
        prompt["verificationUri"],
        format!("{PUBLIC_URL}/login/device"),
        "{prompt}"
    );
    let user_code = prompt["userCode"]
        .as_str()
        .unwrap_or_else(|| panic!("{prompt}"))
        .to_string();
    let finishing = ls.send(
        "workspace/executeCommand",
        json!({"command": prompt["command"]["command"], "arguments": prompt["command"]["arguments"]}),
    );
    let opened = eventually(|| async {
        ls.received("window/showDocument")
            .first()
            .and_then(|r| r["params"]["uri"].as_str().map(str::to_string))
    })
    .await
    .expect("the editor is asked to open the verification page");

    // 3. Alice at that page: she types the code, signs in at the IdP's
    //    form, confirms the device.
    let mut browser = Browser::new();
    browser.alias(PUBLIC_URL, plain_url);
    let (confirm, done) = LoginProvider::sign_device_in(&mut browser, &opened, &user_code, "alice")
        .await
        .expect("the verification page");
    assert!(
        confirm.text.contains("GitHub Copilot language server"),
        "{}",
        confirm.text
    );
    assert_eq!(done.status, 200, "{}", done.text);

    // 4. The server's next poll signs it in as alice; Copilot itself is
    //    refused (no grant): the editor says why and offers the page.
    let signed_in = finishing.answer().await;
    assert_eq!(
        signed_in["result"],
        json!({"status": "NotAuthorized", "user": "alice"}),
        "{signed_in}"
    );
    let access_page = format!("{PUBLIC_URL}/access");
    // The editor's status line and a warning say why, with the page's link
    // and a button to it.
    let why = eventually(|| async {
        ls.received("didChangeStatus").iter().find_map(|s| {
            let message = s["params"]["message"].as_str()?;
            (s["params"]["kind"] == "Error" && message.contains("no active grant"))
                .then(|| message.to_string())
        })
    })
    .await
    .unwrap_or_else(|| panic!("no status: {:?}", ls.received("didChangeStatus")));
    assert!(why.contains(&access_page), "{why}");
    let warned = eventually(|| async {
        ls.received("window/showMessageRequest")
            .into_iter()
            .find(|w| w["params"]["message"] == why.as_str())
    })
    .await
    .expect("a warning with the same words");
    assert_eq!(
        warned["params"]["actions"][0]["title"], "Copilot access needed",
        "{warned}"
    );

    // 5. Before approval a completion is refused with the same words, and
    //    nothing reaches Copilot.
    let refused = complete_in_python(&ls).await;
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("no active grant") && message.contains(&access_page),
        "{refused}"
    );
    assert!(
        stack.upstream.requests().is_empty(),
        "upstream was called without a grant: {:?}",
        stack.upstream.requests()
    );

    // 6. Alice clicked "Copilot access needed": her editor opens the access
    //    page, where her browser is still signed in. She asks; Bob approves.
    let opened = eventually(|| async {
        ls.received("window/showDocument").iter().find_map(|r| {
            r["params"]["uri"]
                .as_str()
                .filter(|u| *u == access_page)
                .map(str::to_string)
        })
    })
    .await
    .expect("the editor opens the access page");
    let page = browser.get(&opened).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let (action, csrf) = page.form_ending("/access");
    let asked = browser
        .post_form(
            &action,
            &[
                ("csrf", &csrf),
                ("scope", "completions"),
                ("duration", "1h"),
                ("reason", "inline completions"),
            ],
        )
        .await;
    assert!(
        asked.text.contains("waiting for 1 approval(s)"),
        "{}",
        asked.text
    );
    let id = asked.first_request_id();
    let bob = idp.id_token(PUBLIC_URL, "bob").await.expect("bob");
    let approved = send(
        reqwest::Client::new()
            .post(format!("{plain_url}/v1/access-requests/{id}/approve"))
            .bearer_auth(&bob),
    )
    .await
    .json;
    assert_eq!(approved["request"]["status"], "approved", "{approved}");

    // 7. The next completion comes through, masked: no new sign-in.
    masked_suggestion(&complete_in_python(&ls).await);
    drop(ls);

    // 8. Recorded under alice, with her grant.
    let recorded = idp
        .audit_record(plain_url, PUBLIC_URL, &id, |r| {
            r["unmapped"]["action"] == "copilot.completions" && r["actor"]["user"]["uid"] == "alice"
        })
        .await;
    assert!(recorded.is_some(), "the completion is recorded under alice");
    upstream_saw_only_the_gateway(&stack.upstream);
    // The server reached the gateway by both names (the proxy refused the
    // rest: telemetry hosts).
    let tunnelled: Vec<String> = proxy
        .tunnels()
        .into_iter()
        .filter(|t| t.tunnelled)
        .map(|t| t.target)
        .collect();
    for name in ["gw.test:443", "api.gw.test:443"] {
        assert!(tunnelled.iter().any(|t| t == name), "{tunnelled:?}");
    }
    let _ = std::fs::remove_dir_all(&home);
}
