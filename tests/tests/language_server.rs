//! The real GitHub Copilot language server (the one JetBrains, copilot.vim
//! and copilot.lua run), unchanged, pointed at the gateway with the
//! environment variables the README documents. It signs in through the
//! gateway's token exchange and gets an inline completion, masked.
//!
//! `scripts/test.sh` installs the server from npm and sets COPILOT_LS_BIN.

use copilot_jit_testkit::harness::{Stack, UPSTREAM_GITHUB_TOKEN};
use copilot_jit_testkit::mock_upstream::StreamScript;
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

struct LanguageServer {
    child: Child,
    stdin: ChildStdin,
    messages: mpsc::UnboundedReceiver<Value>,
    next_id: u64,
}

impl LanguageServer {
    fn start(gateway_url: &str, token: &str, home: &std::path::Path) -> LanguageServer {
        let bin = std::env::var("COPILOT_LS_BIN")
            .expect("COPILOT_LS_BIN must name the copilot-language-server binary (scripts/test.sh installs it)");
        let mut child = Command::new(bin)
            .arg("--stdio")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            // The documented setup: a gateway token, and the gateway as the GitHub API.
            .env("GH_COPILOT_TOKEN", token)
            .env("GH_COPILOT_API_URL", format!("{gateway_url}/"))
            .env("GH_COPILOT_SERVER_URL", format!("{gateway_url}/"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the language server starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, messages) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut length = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse::<usize>().ok();
                    }
                }
                let Some(n) = length else { return };
                let mut body = vec![0; n];
                if reader.read_exact(&mut body).await.is_err() {
                    return;
                }
                if let Ok(v) = serde_json::from_slice(&body) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        });
        LanguageServer {
            child,
            stdin,
            messages,
            next_id: 0,
        }
    }

    async fn write(&mut self, message: Value) {
        let body = message.to_string();
        let frame = format!("Content-Length: {}\r\n\r\n{body}", body.len());
        self.stdin
            .write_all(frame.as_bytes())
            .await
            .expect("write to the server");
        self.stdin.flush().await.expect("flush");
    }

    async fn notify(&mut self, method: &str, params: Value) {
        self.write(json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .await;
    }

    /// Sends a request and waits for its answer, answering the server's own
    /// requests with `null` meanwhile.
    async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.write(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let message = tokio::time::timeout_at(deadline, self.messages.recv())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method} within 60 s"))
                .unwrap_or_else(|| panic!("the language server exited during {method}"));
            if message.get("method").is_some() {
                if let Some(server_id) = message.get("id").cloned() {
                    self.write(json!({"jsonrpc": "2.0", "id": server_id, "result": null}))
                        .await;
                }
                continue;
            }
            if message["id"] == id {
                return message;
            }
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
