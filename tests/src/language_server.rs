//! The real GitHub Copilot language server (the one JetBrains, copilot.vim
//! and copilot.lua run) as a test drives it: LSP over stdio, the server's
//! own requests answered with `null`.
//!
//! `scripts/test.sh` installs the server from npm and sets COPILOT_LS_BIN.

use serde_json::{json, Value};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

pub struct LanguageServer {
    pub child: Child,
    stdin: ChildStdin,
    messages: mpsc::UnboundedReceiver<Value>,
    next_id: u64,
}

impl LanguageServer {
    /// The documented setup: a gateway token, and the gateway as the GitHub API.
    pub fn start(gateway_url: &str, token: &str, home: &std::path::Path) -> LanguageServer {
        LanguageServer::start_with(
            &[
                ("GH_COPILOT_TOKEN".into(), token.into()),
                ("GH_COPILOT_API_URL".into(), format!("{gateway_url}/")),
                ("GH_COPILOT_SERVER_URL".into(), format!("{gateway_url}/")),
            ],
            home,
        )
    }

    /// The server with only `settings` (and PATH, HOME) in its environment.
    pub fn start_with(settings: &[(String, String)], home: &std::path::Path) -> LanguageServer {
        let bin = std::env::var("COPILOT_LS_BIN")
            .expect("COPILOT_LS_BIN must name the copilot-language-server binary (scripts/test.sh installs it)");
        let mut child = Command::new(bin)
            .arg("--stdio")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .envs(settings.iter().cloned())
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

    pub async fn notify(&mut self, method: &str, params: Value) {
        self.write(json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .await;
    }

    /// Sends a request and waits for its answer, answering the server's own
    /// requests with `null` meanwhile.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
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

    /// Starts a session as an editor does and asks whether it is signed in:
    /// the `checkStatus` answer (`status` is `"OK"` once the token exchange
    /// went through).
    pub async fn sign_in_status(&mut self, editor: &str) -> Value {
        let init = self
            .request(
                "initialize",
                json!({
                    "processId": std::process::id(),
                    "capabilities": {"workspace": {"configuration": false}},
                    "rootUri": null,
                    "initializationOptions": {
                        "editorInfo": {"name": editor, "version": "1.0"},
                        "editorPluginInfo": {"name": "copilot", "version": "1.0"}
                    }
                }),
            )
            .await;
        assert!(init["result"]["capabilities"].is_object(), "{init}");
        self.notify("initialized", json!({})).await;
        self.notify("workspace/didChangeConfiguration", json!({"settings": {}}))
            .await;
        self.request("checkStatus", json!({})).await["result"].clone()
    }
}
