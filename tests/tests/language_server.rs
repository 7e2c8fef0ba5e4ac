//! The real GitHub Copilot language server (the one JetBrains, copilot.vim
//! and copilot.lua run), unchanged, pointed at the gateway with the
//! environment variables the README documents. It signs in through the
//! gateway's token exchange and gets an inline completion, masked.
//!
//! `scripts/test.sh` installs the server from npm and sets COPILOT_LS_BIN.

use copilot_jit_testkit::harness::{Stack, UPSTREAM_GITHUB_TOKEN};
use copilot_jit_testkit::language_server::LanguageServer;
use copilot_jit_testkit::mock_upstream::StreamScript;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copilot_language_server_completes_through_the_gateway() {
    let stack = Stack::start().await.expect("stack");
    let (id, token) = stack
        .approved_grant(&["chat", "completions"], &[], Some("grant"))
        .await
        .expect("approved grant");

    // The model suggests a line holding a secret, split across events.
    stack.upstream.script_stream(StreamScript {
        pieces: vec![
            "return ".into(),
            "\"ghp_0123456789abcdef".into(),
            "ghijABCDEFGHIJ012345\"".into(),
        ],
        delay: Duration::from_millis(20),
        cut_after: None,
    });

    let home = std::env::temp_dir().join(format!("copilot-jit-ls-{}", std::process::id()));
    std::fs::create_dir_all(home.join("config")).unwrap();
    let mut ls = LanguageServer::start(&stack.url, &token, &home);
    let init = ls
        .request(
            "initialize",
            json!({
                "processId": std::process::id(),
                "capabilities": {"workspace": {"configuration": false}},
                "rootUri": null,
                "initializationOptions": {
                    "editorInfo": {"name": "JetBrains-IC", "version": "2026.1"},
                    "editorPluginInfo": {"name": "copilot-intellij", "version": "1.5.0"}
                }
            }),
        )
        .await;
    assert!(init["result"]["capabilities"].is_object(), "{init}");
    ls.notify("initialized", json!({})).await;
    ls.notify("workspace/didChangeConfiguration", json!({"settings": {}}))
        .await;
    let status = ls.request("checkStatus", json!({})).await;
    assert_eq!(
        status["result"]["status"], "OK",
        "sign-in through the gateway: {status}"
    );

    ls.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": "file:///work/app.py", "languageId": "python", "version": 1,
                                 "text": "def token():\n    "}}),
    )
    .await;
    let completion = ls
        .request(
            "textDocument/inlineCompletion",
            json!({
                "textDocument": {"uri": "file:///work/app.py", "version": 1},
                "position": {"line": 1, "character": 4},
                "context": {"triggerKind": 2},
                "formattingOptions": {"tabSize": 4, "insertSpaces": true}
            }),
        )
        .await;
    let items = completion["result"]["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{completion}"));
    let text = items
        .first()
        .and_then(|i| i["insertText"].as_str())
        .unwrap_or_else(|| panic!("{completion}"));
    assert!(text.contains("[REDACTED:github-token]"), "{text}");
    assert!(
        !text.contains("ghp_"),
        "the secret reached the editor: {text}"
    );
    let _ = ls.child.start_kill();

    // Upstream only ever saw the gateway's own credentials.
    assert_eq!(stack.upstream.leaks(), 0);
    for r in stack.upstream.requests() {
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
