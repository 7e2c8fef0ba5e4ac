//! A mock Copilot upstream that follows `reference/copilot-protocol.md` (a):
//! the GitHub API token exchange, CAPI chat and models, the completions
//! proxy; `x-github-request-id` and `x-request-id` on every response; exact
//! SSE framing; scriptable replies, delays, errors and early stream cuts.
//!
//! It is strict about credentials: only the GitHub token it was given (the
//! shared seat) or a live user token of an account linked through its device
//! flow (`mock_github`, each person's own seat) may exchange, only Copilot
//! tokens it issued may call the API, and any request carrying a gateway
//! token (a JWT) is refused and counted as a leak. Each recorded call names
//! the account whose Copilot token it carried.

use crate::mock_github::{self, Github};
use crate::serve::{json_response, serve, Body, Received};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How the next streamed answer behaves.
#[derive(Clone, Debug)]
pub struct StreamScript {
    /// Text pieces, one SSE event each.
    pub pieces: Vec<String>,
    /// Pause before each event.
    pub delay: Duration,
    /// Close the connection after this many events, without `[DONE]`.
    pub cut_after: Option<usize>,
}

impl Default for StreamScript {
    fn default() -> Self {
        StreamScript {
            pieces: ["Hello", " from", " mock", " Copilot"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            delay: Duration::from_millis(0),
            cut_after: None,
        }
    }
}

/// The login of the shared seat's account (the gateway-held token's).
pub const SHARED_LOGIN: &str = "copilot-jit-shared-seat";

#[derive(Default)]
struct State {
    github_token: String,
    refresh_in: u64,
    /// Copilot tokens: when each expires and whose account it was made for.
    issued: HashMap<String, (u64, String)>,
    /// Every Copilot token ever issued (for canaries).
    all_issued: Vec<String>,
    github: Github,
    /// Seconds added to the real clock (tests move time forward).
    clock_offset: u64,
    exchanges: usize,
    leaks: usize,
    requests: Vec<Recorded>,
    failures: VecDeque<Failure>,
    cancelled_streams: usize,
    /// A raw frame the next stream sends after its first event.
    injected_frame: Option<String>,
    script: StreamScript,
    reply: String,
}

/// A scripted failure of the next API call.
#[derive(Clone, Debug)]
pub struct Failure {
    pub status: u16,
    /// JSON bodies are sent as JSON, anything else as plain text.
    pub body: serde_json::Value,
    pub retry_after: Option<u64>,
}

/// What the mock saw, for assertions.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// The GitHub account whose Copilot token the call carried.
    pub copilot_user: Option<String>,
}

#[derive(Clone)]
pub struct MockUpstream {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn looks_like_jwt(value: &str) -> bool {
    let token = value.split_whitespace().last().unwrap_or("");
    token.starts_with("eyJ") && token.matches('.').count() == 2
}

impl MockUpstream {
    pub async fn start(github_token: &str) -> anyhow::Result<MockUpstream> {
        let (listener, addr) = crate::host::loopback_listener().await?;
        let state = Arc::new(Mutex::new(State {
            github_token: github_token.to_string(),
            refresh_in: 1500,
            reply: "Hello from mock Copilot".into(),
            github: Github::new(),
            ..State::default()
        }));
        let handler_state = state.clone();
        let task = serve(listener, move |req| {
            let state = handler_state.clone();
            async move { handle(&state, addr, req).await }
        });
        Ok(MockUpstream {
            addr,
            state,
            task: Arc::new(task),
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next streamed answer follows this script.
    pub fn script_stream(&self, script: StreamScript) {
        self.lock().script = script;
    }

    /// The non-streamed chat answer.
    pub fn set_reply(&self, text: &str) {
        self.lock().reply = text.to_string();
    }

    pub fn set_refresh_in(&self, secs: u64) {
        self.lock().refresh_in = secs;
    }

    /// The next API call (not the token exchange) fails with this answer.
    pub fn fail_next(&self, status: u16, body: serde_json::Value) {
        self.fail_next_with(Failure {
            status,
            body,
            retry_after: None,
        });
    }

    pub fn fail_next_with(&self, failure: Failure) {
        self.lock().failures.push_back(failure);
    }

    /// The next stream sends `frame` verbatim after its first event.
    pub fn inject_frame(&self, frame: &str) {
        self.lock().injected_frame = Some(frame.to_string());
    }

    /// Streams whose reader went away before the mock finished sending.
    pub fn cancelled_streams(&self) -> usize {
        self.lock().cancelled_streams
    }

    /// Forgets issued Copilot tokens, as when upstream rotates them.
    pub fn revoke_issued_tokens(&self) {
        self.lock().issued.clear();
    }

    pub fn exchanges(&self) -> usize {
        self.lock().exchanges
    }

    pub fn leaks(&self) -> usize {
        self.lock().leaks
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Moves the mock's clock forward (with the gateway's: `Stack::advance`).
    pub fn advance(&self, secs: u64) {
        self.lock().clock_offset += secs;
    }

    /// The person authorises the device code `user_code` on GitHub as `login`.
    pub fn authorize_device(&self, user_code: &str, login: &str) -> bool {
        self.lock().github.authorize(user_code, login)
    }

    pub fn deny_device(&self, user_code: &str) -> bool {
        self.lock().github.deny(user_code)
    }

    /// User tokens issued from now on expire after `ttl` seconds and come
    /// with a refresh token (a GitHub App's); `None`: they never expire.
    pub fn set_user_token_ttl(&self, ttl: Option<u64>) {
        self.lock().github.user_token_ttl = ttl;
    }

    pub fn set_device_interval(&self, secs: u64) {
        self.lock().github.device_interval = secs;
    }

    /// The client id the device flow accepts.
    pub fn set_client_id(&self, client_id: &str) {
        self.lock().github.client_id = client_id.to_string();
    }

    /// GitHub refuses every refresh of `login`'s tokens from now on.
    pub fn refuse_refresh(&self, login: &str) {
        self.lock().github.refuse_refresh(login);
    }

    /// Every access token of `login` is revoked.
    pub fn revoke_user_tokens(&self, login: &str) {
        self.lock().github.revoke_user_tokens(login);
    }

    pub fn remove_seat(&self, login: &str) {
        self.lock().github.remove_seat(login);
    }

    /// `refresh_token` grants asked for `login`'s tokens.
    pub fn refreshes(&self, login: &str) -> usize {
        self.lock().github.refreshes(login)
    }

    /// Polls of the device grant.
    pub fn device_polls(&self) -> usize {
        self.lock().github.device_polls()
    }

    /// Every GitHub secret issued (device codes, access and refresh
    /// tokens) and every Copilot token: what must never be stored in the
    /// clear, recorded, logged or answered.
    pub fn issued_secrets(&self) -> Vec<String> {
        let s = self.lock();
        let mut all = s.github.secrets();
        all.extend(s.all_issued.iter().cloned());
        all
    }
}

fn with_protocol_headers(mut r: hyper::Response<Body>, req: &Received) -> hyper::Response<Body> {
    let h = r.headers_mut();
    let id = format!("{:032x}", rand::random::<u128>());
    let request_id = req.header("x-request-id").unwrap_or_else(|| id.clone());
    let mut set = |k: &'static str, v: String| {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    set("x-github-request-id", id.to_uppercase());
    set("x-request-id", request_id);
    set(
        "content-security-policy",
        "default-src 'none'; sandbox".into(),
    );
    set("strict-transport-security", "max-age=31536000".into());
    r
}

fn unauthorized(message: &str) -> hyper::Response<Body> {
    json_response(
        401,
        &serde_json::json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": "401"}),
    )
}

async fn handle(
    state: &Arc<Mutex<State>>,
    addr: SocketAddr,
    req: Received,
) -> hyper::Response<Body> {
    let response = route(state, addr, &req).await;
    with_protocol_headers(response, &req)
}

async fn route(
    state: &Arc<Mutex<State>>,
    addr: SocketAddr,
    req: &Received,
) -> hyper::Response<Body> {
    let authorization = req.header("authorization");
    let presented = authorization.as_deref().and_then(|a| {
        a.strip_prefix("token ")
            .or_else(|| a.strip_prefix("Bearer "))
            .map(str::trim)
    });
    {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        let copilot_user = presented
            .and_then(|p| s.issued.get(p))
            .map(|(_, login)| login.clone());
        s.requests.push(Recorded {
            method: req.method.clone(),
            path: req.path.clone(),
            authorization: authorization.clone(),
            headers: req
                .headers
                .iter()
                .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.to_string(), v.to_string())))
                .collect(),
            body: req.body.clone(),
            copilot_user,
        });
        if authorization.as_deref().is_some_and(looks_like_jwt) {
            s.leaks += 1;
            return unauthorized("a gateway token reached the upstream");
        }
    }
    let path = req.path.split('?').next().unwrap_or("");
    if path == "/copilot_internal/v2/token" && req.method == "GET" {
        return token_exchange(state, addr, authorization.as_deref());
    }
    if let Some(answer) = github(state, addr, req, path, presented) {
        return answer;
    }
    // Everything else needs a Copilot token this mock issued.
    let bearer = authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or("");
    let failure = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        let now = now() + s.clock_offset;
        let valid = s.issued.get(bearer).is_some_and(|(exp, _)| *exp > now);
        if !valid {
            return unauthorized("unauthorized: token expired or invalid");
        }
        s.failures.pop_front()
    };
    if let Some(f) = failure {
        let mut r = match &f.body {
            serde_json::Value::String(text) => {
                let mut r = hyper::Response::new(crate::serve::full(text.clone()));
                *r.status_mut() =
                    hyper::StatusCode::from_u16(f.status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
                r
            }
            body => json_response(f.status, body),
        };
        if let Some(secs) = f.retry_after {
            if let Ok(v) = hyper::header::HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert("retry-after", v);
            }
        }
        return r;
    }
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
    match (req.method.as_str(), path) {
        ("GET", "/models") => json_response(200, &models()),
        ("POST", "/chat/completions") => {
            if body["stream"].as_bool().unwrap_or(false) {
                let script = state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .script
                    .clone();
                sse(state.clone(), chat_events(&script), &script)
            } else {
                let reply = state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .reply
                    .clone();
                json_response(
                    200,
                    &serde_json::json!({
                        "id": "chatcmpl-mock",
                        "object": "chat.completion",
                        "created": now(),
                        "model": body["model"].as_str().unwrap_or("gpt-4o"),
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}
                    }),
                )
            }
        }
        ("POST", p) if p.starts_with("/v1/engines/") && p.ends_with("/completions") => {
            let script = state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .script
                .clone();
            sse(state.clone(), completion_events(&script), &script)
        }
        ("GET", "/embeddings/models") => json_response(
            200,
            &serde_json::json!({"models": [{"id": "text-embedding-3-small", "name": "text-embedding-3-small",
                                 "version": "text-embedding-3-small", "object": "model"}]}),
        ),
        ("POST", "/responses") if body["stream"].as_bool().unwrap_or(false) => {
            let script = state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .script
                .clone();
            let text: String = script.pieces.concat();
            let mut events = vec![
                serde_json::json!({"type": "response.created", "response": {"id": "resp-mock", "status": "in_progress"}}),
            ];
            for piece in &script.pieces {
                events.push(serde_json::json!({"type": "response.output_text.delta", "item_id": "msg-1", "output_index": 0, "content_index": 0, "delta": piece}));
            }
            events.push(serde_json::json!({"type": "response.output_text.done", "item_id": "msg-1", "output_index": 0, "content_index": 0, "text": text}));
            events.push(serde_json::json!({"type": "response.completed", "response": {"id": "resp-mock", "status": "completed",
                "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}]}}));
            typed_sse(state.clone(), events, &script)
        }
        ("POST", "/v1/messages") if body["stream"].as_bool().unwrap_or(false) => {
            let script = state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .script
                .clone();
            let mut events = vec![
                serde_json::json!({"type": "message_start", "message": {"id": "msg-mock", "role": "assistant", "content": []}}),
                serde_json::json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ];
            for piece in &script.pieces {
                events.push(serde_json::json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}));
            }
            events.push(serde_json::json!({"type": "content_block_stop", "index": 0}));
            events.push(
                serde_json::json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}),
            );
            events.push(serde_json::json!({"type": "message_stop"}));
            typed_sse(state.clone(), events, &script)
        }
        ("POST", "/responses") => {
            let reply = state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .reply
                .clone();
            json_response(
                200,
                &serde_json::json!({
                    "id": "resp-mock", "object": "response", "status": "completed",
                    "output": [{"type": "message", "role": "assistant",
                                "content": [{"type": "output_text", "text": reply}]}]
                }),
            )
        }
        ("POST", "/v1/messages") => {
            let reply = state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .reply
                .clone();
            json_response(
                200,
                &serde_json::json!({
                    "id": "msg-mock", "type": "message", "role": "assistant",
                    "content": [{"type": "text", "text": reply}], "stop_reason": "end_turn"
                }),
            )
        }
        ("POST", "/embeddings") => json_response(
            200,
            &serde_json::json!({
                "object": "list",
                "data": [{"object": "embedding", "embedding": [0.1, 0.2, 0.3], "index": 0}],
                "model": "text-embedding-3-small",
                "usage": {"prompt_tokens": 3, "total_tokens": 3}
            }),
        ),
        _ => json_response(404, &serde_json::json!({"message": "Not Found"})),
    }
}

/// GitHub's own endpoints for linked accounts: the device flow, the token
/// endpoint, `GET /user`; `None` for every other path.
fn github(
    state: &Arc<Mutex<State>>,
    addr: SocketAddr,
    req: &Received,
    path: &str,
    presented: Option<&str>,
) -> Option<hyper::Response<Body>> {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    let now = now() + s.clock_offset;
    let params =
        || mock_github::params(&req.path, req.header("content-type").as_deref(), &req.body);
    let (status, body) = match (req.method.as_str(), path) {
        ("POST", "/login/device/code") => {
            s.github
                .device_code(&params(), &format!("http://{addr}"), now)
        }
        ("POST", "/login/oauth/access_token") => s.github.access_token(&params(), now),
        // What a person does on github.com: enter the code, as whom.
        ("GET", "/login/device") => {
            drop(s);
            return Some(device_page(None));
        }
        ("POST", "/login/device") => {
            let p = params();
            let code = p.get("user_code").cloned().unwrap_or_default();
            let login = p.get("login").cloned().unwrap_or_default();
            let done = !login.is_empty() && s.github.authorize(&code, &login);
            drop(s);
            return Some(device_page(Some(done)));
        }
        ("GET", "/user") => {
            let token = presented.unwrap_or("");
            if !s.github_token.is_empty() && token == s.github_token {
                (
                    200,
                    serde_json::json!({"login": SHARED_LOGIN, "id": 1, "type": "User"}),
                )
            } else {
                match s.github.user(token, now) {
                    Some(user) => (200, user),
                    None => {
                        return Some(unauthorized("Bad credentials"));
                    }
                }
            }
        }
        _ => return None,
    };
    Some(json_response(status, &body))
}

/// The mock's stand-in for github.com/login/device (the development runner
/// links accounts through it): a code and a login, no password.
fn device_page(done: Option<bool>) -> hyper::Response<Body> {
    let note = match done {
        Some(true) => "<p>Authorised. Return to the gateway's page.</p>",
        Some(false) => "<p>Unknown or used code.</p>",
        None => "",
    };
    let html = format!(
        "<!doctype html><title>Mock GitHub</title><h1>Device activation (mock GitHub)</h1>{note}\
<form method=\"post\"><label>Code <input name=\"user_code\"></label> \
<label>as GitHub login <input name=\"login\" value=\"octocat\"></label> <button>Authorize</button></form>"
    );
    let mut r = hyper::Response::new(crate::serve::full(html));
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn token_exchange(
    state: &Arc<Mutex<State>>,
    addr: SocketAddr,
    authorization: Option<&str>,
) -> hyper::Response<Body> {
    let presented = authorization.and_then(|a| {
        a.strip_prefix("token ")
            .or_else(|| a.strip_prefix("Bearer "))
            .map(str::trim)
    });
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    let now = now() + s.clock_offset;
    let shared = !s.github_token.is_empty() && presented == Some(s.github_token.as_str());
    let login = if shared {
        SHARED_LOGIN.to_string()
    } else {
        match presented.and_then(|p| s.github.user_of(p, now)) {
            Some(login) => login,
            None => return unauthorized("Bad credentials"),
        }
    };
    if !shared && !s.github.has_seat(&login) {
        return json_response(404, &serde_json::json!({"message": "Not Found"}));
    }
    s.exchanges += 1;
    let refresh_in = s.refresh_in;
    let expires_at = now + refresh_in + 60;
    let tid = format!("{:032x}", rand::random::<u128>());
    let mac = format!("{:064x}", rand::random::<u128>());
    let token = format!(
        "tid={tid};exp={expires_at};sku=copilot_for_business_seat;proxy-ep=127.0.0.1;st=dotcom;chat=1;8kp=1:{mac}"
    );
    s.issued.insert(token.clone(), (expires_at, login));
    s.all_issued.push(token.clone());
    let base = format!("http://{addr}");
    json_response(
        200,
        &serde_json::json!({
            "token": token,
            "expires_at": expires_at,
            "refresh_in": refresh_in,
            "sku": "copilot_for_business_seat",
            "individual": false,
            "chat_enabled": true,
            "telemetry": "disabled",
            "public_suggestions": "disabled",
            "endpoints": {"api": base, "proxy": base, "telemetry": base, "origin-tracker": base}
        }),
    )
}

fn models() -> serde_json::Value {
    let model = |id: &str, kind: &str, family: &str| {
        serde_json::json!({
            "id": id, "name": id, "version": id, "object": "model", "vendor": "mock",
            "model_picker_enabled": kind == "chat", "is_chat_default": id == "gpt-4o",
            "is_chat_fallback": false, "preview": false,
            "supported_endpoints": if kind == "chat" { serde_json::json!(["/chat/completions", "/responses"]) } else { serde_json::json!([]) },
            "capabilities": {
                "type": kind, "family": family, "tokenizer": "o200k_base", "object": "model_capabilities",
                "limits": {"max_prompt_tokens": 64000, "max_output_tokens": 4096},
                "supports": {"streaming": kind != "embeddings", "tool_calls": kind == "chat"}
            }
        })
    };
    serde_json::json!({
        "object": "list",
        "data": [
            model("gpt-4o", "chat", "gpt-4o"),
            model("gpt-41-copilot", "completion", "gpt-4.1"),
            model("text-embedding-3-small", "embeddings", "text-embedding-3-small"),
        ]
    })
}

fn chat_events(script: &StreamScript) -> Vec<String> {
    let created = now();
    let mut events = vec![serde_json::json!({
        "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": created, "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]
    })
    .to_string()];
    for piece in &script.pieces {
        events.push(
            serde_json::json!({
                "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": created, "model": "gpt-4o",
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null,
                             "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}}]
            })
            .to_string(),
        );
    }
    events.push(
        serde_json::json!({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": created, "model": "gpt-4o",
            "choices": [{"index": 0, "delta": {"content": null}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": script.pieces.len(), "total_tokens": 5 + script.pieces.len()}
        })
        .to_string(),
    );
    events
}

fn completion_events(script: &StreamScript) -> Vec<String> {
    let created = now();
    let last = script.pieces.len().saturating_sub(1);
    script
        .pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            serde_json::json!({
                "id": "cmpl-mock", "created": created, "model": "gpt-41-copilot",
                "choices": [{"index": 0, "text": piece, "finish_reason": if i == last { serde_json::json!("stop") } else { serde_json::Value::Null }, "logprobs": null}]
            })
            .to_string()
        })
        .collect()
}

/// One `data: <json>\n\n` per event, flushed one by one, then `data: [DONE]`.
/// Chat and completions framing: `data: <json>` per event, `[DONE]` last.
fn sse(
    state: Arc<Mutex<State>>,
    events: Vec<String>,
    script: &StreamScript,
) -> hyper::Response<Body> {
    let mut frames: Vec<String> = events
        .into_iter()
        .map(|e| format!("data: {e}\n\n"))
        .collect();
    if let Some(raw) = state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .injected_frame
        .take()
    {
        frames.insert(1.min(frames.len()), raw);
    }
    stream_frames(state, frames, Some("data: [DONE]\n\n"), script)
}

/// Responses and Messages framing: `event: <type>` and `data: <json>`.
fn typed_sse(
    state: Arc<Mutex<State>>,
    events: Vec<serde_json::Value>,
    script: &StreamScript,
) -> hyper::Response<Body> {
    let frames = events
        .into_iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap_or("")))
        .collect();
    stream_frames(state, frames, None, script)
}

fn stream_frames(
    state: Arc<Mutex<State>>,
    frames: Vec<String>,
    trailer: Option<&'static str>,
    script: &StreamScript,
) -> hyper::Response<Body> {
    let (tx, rx) = futures::channel::mpsc::unbounded::<Bytes>();
    let delay = script.delay;
    let cut_after = script.cut_after;
    tokio::spawn(async move {
        for (i, frame) in frames.into_iter().enumerate() {
            if cut_after == Some(i) {
                return;
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if tx.unbounded_send(Bytes::from(frame)).is_err() {
                state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .cancelled_streams += 1;
                return;
            }
        }
        if let Some(t) = trailer {
            let _ = tx.unbounded_send(Bytes::from_static(t.as_bytes()));
        }
    });
    let body = BodyExt::boxed(StreamBody::new(
        rx.map(|b| Ok::<_, Infallible>(Frame::data(b))),
    ));
    let mut r = hyper::Response::new(body);
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    r.headers_mut().insert(
        "openai-processing-ms",
        hyper::header::HeaderValue::from_static("12"),
    );
    r
}
