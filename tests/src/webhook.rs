//! A Slack-compatible incoming webhook on loopback: records what the gateway
//! posts, and can be told to fail.

use std::sync::{Arc, Mutex};

use crate::serve::{json_response, serve};

#[derive(Default)]
struct State {
    messages: Vec<(String, serde_json::Value)>,
    fail_with: Option<u16>,
}

pub struct Webhook {
    addr: std::net::SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

/// The secret part of the hook's URL, as Slack issues them.
pub const PATH: &str = "/services/T000/B000/secretpart";

impl Webhook {
    pub async fn start() -> anyhow::Result<Webhook> {
        let (listener, addr) = crate::host::loopback_listener().await?;
        let state = Arc::new(Mutex::new(State::default()));
        let handler_state = state.clone();
        let task = serve(listener, move |req| {
            let state = handler_state.clone();
            async move {
                let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(status) = s.fail_with {
                    return json_response(status, &serde_json::json!({"ok": false}));
                }
                let body = serde_json::from_slice(&req.body).unwrap_or(serde_json::Value::Null);
                s.messages.push((req.path, body));
                json_response(200, &serde_json::json!({"ok": true}))
            }
        });
        Ok(Webhook { addr, state, task })
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Spin variables that point the gateway at this hook.
    pub fn variables(&self) -> Vec<(String, String)> {
        vec![
            ("notify_webhook_origin".into(), self.origin()),
            ("notify_webhook_path".into(), PATH.into()),
        ]
    }

    /// (path, JSON body) of every delivered message.
    pub fn messages(&self) -> Vec<(String, serde_json::Value)> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .messages
            .clone()
    }

    pub fn fail_with(&self, status: Option<u16>) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fail_with = status;
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}
