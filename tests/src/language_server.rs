//! The real GitHub Copilot language server (the one JetBrains, copilot.vim
//! and copilot.lua run) as a test drives it: LSP over stdio. The server's own
//! requests are answered as an editor would (`window/showDocument` is the
//! editor opening a page: the test plays the person's browser; a message's
//! first button is clicked; everything else `null`), and what it sends on
//! its own is kept for the test to read.
//!
//! `scripts/test.sh` installs the server from npm and sets COPILOT_LS_BIN.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot};

/// How long one request may take (a device-flow sign-in includes a person
/// at the IdP and the server's poll interval).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(90);

type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

pub struct LanguageServer {
    pub child: Child,
    outgoing: mpsc::UnboundedSender<Value>,
    waiting: Waiting,
    /// The server's notifications and requests, in the order it sent them.
    received: Arc<Mutex<Vec<Value>>>,
    next_id: AtomicU64,
}

/// A request sent and not yet answered.
pub struct Pending {
    method: String,
    answer: oneshot::Receiver<Value>,
}

impl Pending {
    /// The server's answer (the whole response: `result` or `error`).
    pub async fn answer(self) -> Value {
        let method = self.method;
        tokio::time::timeout(ANSWER_TIMEOUT, self.answer)
            .await
            .unwrap_or_else(|_| panic!("no answer to {method} within {ANSWER_TIMEOUT:?}"))
            .unwrap_or_else(|_| panic!("the language server exited during {method}"))
    }
}

/// The answer an editor gives to a request from the server.
fn editor_answer(request: &Value) -> Value {
    match request["method"].as_str() {
        // The editor opened the page (the test opens it as the person).
        Some("window/showDocument") => json!({"success": true}),
        // The person clicks the message's first button.
        Some("window/showMessageRequest") => request["params"]["actions"]
            .get(0)
            .cloned()
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

impl LanguageServer {
    /// The documented setup: a gateway token, and the gateway as the GitHub API.
    pub fn start(gateway_url: &str, token: &str, home: &Path) -> LanguageServer {
        LanguageServer::start_with(
            &[
                ("GH_COPILOT_TOKEN".into(), token.into()),
                ("GH_COPILOT_API_URL".into(), format!("{gateway_url}/")),
                ("GH_COPILOT_SERVER_URL".into(), format!("{gateway_url}/")),
            ],
            home,
        )
    }

    /// The server with only `env` (and PATH, HOME) in its environment.
    pub fn start_with(env: &[(String, String)], home: &Path) -> LanguageServer {
        let bin = std::env::var("COPILOT_LS_BIN")
            .expect("COPILOT_LS_BIN must name the copilot-language-server binary (scripts/test.sh installs it)");
        let mut child = Command::new(bin)
            .arg("--stdio")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .envs(env.iter().cloned())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the language server starts");
        let mut stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (outgoing, mut to_write) = mpsc::unbounded_channel::<Value>();
        tokio::spawn(async move {
            while let Some(message) = to_write.recv().await {
                let body = message.to_string();
                let frame = format!("Content-Length: {}\r\n\r\n{body}", body.len());
                if stdin.write_all(frame.as_bytes()).await.is_err() || stdin.flush().await.is_err()
                {
                    return;
                }
            }
        });
        let waiting = Waiting::default();
        let received = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(read_messages(
            stdout,
            outgoing.clone(),
            waiting.clone(),
            received.clone(),
        ));
        LanguageServer {
            child,
            outgoing,
            waiting,
            received,
            next_id: AtomicU64::new(0),
        }
    }

    pub fn notify(&self, method: &str, params: Value) {
        // A closed channel means the server exited: the next answer says so.
        let _ = self
            .outgoing
            .send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Sends a request; its answer is awaited separately, so the test can
    /// act (as the person at the browser) while the server works.
    pub fn send(&self, method: &str, params: Value) -> Pending {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, answer) = oneshot::channel();
        self.waiting
            .lock()
            .expect("waiting requests")
            .insert(id, tx);
        let _ = self
            .outgoing
            .send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        Pending {
            method: method.to_string(),
            answer,
        }
    }

    /// Sends a request and waits for its answer.
    pub async fn request(&self, method: &str, params: Value) -> Value {
        self.send(method, params).answer().await
    }

    /// What the server sent of `method` so far (notifications and requests).
    pub fn received(&self, method: &str) -> Vec<Value> {
        self.received
            .lock()
            .expect("received messages")
            .iter()
            .filter(|m| m["method"] == method)
            .cloned()
            .collect()
    }

    /// `initialize` and `initialized` as an editor sends them (it can open
    /// pages: `window.showDocument`).
    pub async fn initialize(&self, editor: &str, version: &str, plugin: &str) {
        let init = self
            .request(
                "initialize",
                json!({
                    "processId": std::process::id(),
                    "capabilities": {
                        "workspace": {"configuration": false},
                        "window": {"showDocument": {"support": true}}
                    },
                    "rootUri": null,
                    "initializationOptions": {
                        "editorInfo": {"name": editor, "version": version},
                        "editorPluginInfo": {"name": plugin, "version": "1.0"}
                    }
                }),
            )
            .await;
        assert!(init["result"]["capabilities"].is_object(), "{init}");
        self.notify("initialized", json!({}));
    }

    /// Starts a session as an editor does and asks whether it is signed in:
    /// the `checkStatus` answer (`status` is `"OK"` once the token exchange
    /// went through).
    pub async fn sign_in_status(&self, editor: &str) -> Value {
        self.initialize(editor, "1.0", "copilot").await;
        self.notify("workspace/didChangeConfiguration", json!({"settings": {}}));
        self.request("checkStatus", json!({})).await["result"].clone()
    }

    /// Opens `text` as a document and asks for the inline completion at
    /// `line`/`character`, as an editor does while one types: the answer.
    pub async fn inline_completion(
        &self,
        uri: &str,
        language: &str,
        text: &str,
        (line, character): (u32, u32),
    ) -> Value {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": language, "version": 1, "text": text}}),
        );
        self.request(
            "textDocument/inlineCompletion",
            json!({
                "textDocument": {"uri": uri, "version": 1},
                "position": {"line": line, "character": character},
                "context": {"triggerKind": 2},
                "formattingOptions": {"tabSize": 4, "insertSpaces": true}
            }),
        )
        .await
    }
}

/// Reads LSP frames: answers go to whoever waits for them, the server's
/// requests are answered as an editor would, everything it sends on its own
/// is kept.
async fn read_messages(
    stdout: ChildStdout,
    outgoing: mpsc::UnboundedSender<Value>,
    waiting: Waiting,
    received: Arc<Mutex<Vec<Value>>>,
) {
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
        let Ok(message) = serde_json::from_slice::<Value>(&body) else {
            continue;
        };
        if message.get("method").is_some() {
            if let Some(id) = message.get("id") {
                let _ = outgoing
                    .send(json!({"jsonrpc": "2.0", "id": id, "result": editor_answer(&message)}));
            }
            received.lock().expect("received messages").push(message);
            continue;
        }
        let waiter = message["id"]
            .as_u64()
            .and_then(|id| waiting.lock().expect("waiting requests").remove(&id));
        if let Some(waiter) = waiter {
            let _ = waiter.send(message);
        }
    }
}
