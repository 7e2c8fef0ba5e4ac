//! The whole stack on loopback: dev issuer, mock upstream, and the composed
//! artifact served by the test host with the settings `spin.toml` declares.

use crate::dev_issuer::DevIssuer;
use crate::host::{self, Gateway, KeyValue};
use crate::kv::StoreKind;
use crate::manifest::Manifest;
use crate::manifest::Resolved;
use crate::mock_upstream::{MockUpstream, SHARED_LOGIN};
use anyhow::Result;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use wasmtime::component::Component;
use wasmtime::Engine;

/// The GitHub token the gateway holds for its Copilot account (a test value).
pub const UPSTREAM_GITHUB_TOKEN: &str = "ghu_upstreamcredentialheldbythegateway01";
pub const APPROVERS: &str = "copilot-approvers";
pub const AUDITORS: &str = "copilot-auditors";

/// Polls `check` every 50 ms for up to 5 s until it returns `Some`. Audit
/// records and notifications follow the answer they describe, so tests wait
/// for them this way rather than sleeping a fixed time.
pub async fn eventually<T, Fut>(mut check: impl FnMut() -> Fut) -> Option<T>
where
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..100 {
        if let Some(found) = check().await {
            return Some(found);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    None
}

/// The folder holding `spin.toml`: the nearest one above the current
/// directory (a shared build cache means the compile-time path may belong to
/// another clone), else the one this crate was compiled in.
pub fn workspace_root() -> PathBuf {
    let compiled_in = || {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".."))
    };
    let Ok(cwd) = std::env::current_dir() else {
        return compiled_in();
    };
    cwd.ancestors()
        .find(|dir| dir.join("spin.toml").is_file() && dir.join("wit").is_dir())
        .map(PathBuf::from)
        .unwrap_or_else(compiled_in)
}

pub fn manifest() -> Result<Manifest> {
    Manifest::load(&workspace_root().join("spin.toml"))
}

/// The artifact is compiled once per process and shared by every stack.
fn compiled(manifest: &Manifest) -> Result<(Engine, Component)> {
    static COMPILED: OnceLock<(Engine, Component)> = OnceLock::new();
    if let Some(c) = COMPILED.get() {
        return Ok(c.clone());
    }
    let engine = host::engine()?;
    let component = host::compile(&engine, manifest)?;
    Ok(COMPILED.get_or_init(|| (engine, component)).clone())
}

/// A person's opaque store key, as every component computes it
/// (`copilot_jit_common::person_key`): tests find a person's records by it.
pub fn person_key(issuer: &str, subject: &str) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(issuer.as_bytes());
    h.update([0u8]);
    h.update(subject.as_bytes());
    hex::encode(&h.finalize()[..16])
}

fn random_seed() -> String {
    STANDARD.encode(rand::random::<[u8; 32]>())
}

pub struct Stack {
    pub url: String,
    pub addr: SocketAddr,
    pub issuer: DevIssuer,
    /// A second dev issuer standing in for GitHub Actions, when asked for.
    pub actions_issuer: Option<DevIssuer>,
    pub upstream: MockUpstream,
    pub gateway: Arc<Gateway>,
    /// Secrets given to the gateway, so tests can check they never leak.
    pub variables: HashMap<String, String>,
    /// The settings the gateway runs with, for peers of this instance.
    resolved: Resolved,
    store: StoreKind,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub struct StackOptions {
    pub listen: SocketAddr,
    pub variables: HashMap<String, String>,
    /// Leave variables set as `SPIN_VARIABLE_*` in the environment to it, so
    /// a real issuer or upstream replaces the embedded ones.
    pub defer_to_environment: bool,
    /// Start a second issuer as GitHub Actions and trust it.
    pub github_actions: bool,
    /// The key-value store behind `wasi:keyvalue` (Spin's SQLite or Redis
    /// stores for fidelity, memory for speed).
    pub store: StoreKind,
    /// Serve HTTPS with this acceptor (the test's own CA), as
    /// `spin up --tls-cert … --tls-key …`; `url` is then `https://…`.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Keep the guests' stderr (`Stack::logs`) instead of printing it.
    pub capture_logs: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            variables: HashMap::new(),
            defer_to_environment: false,
            github_actions: false,
            store: StoreKind::Memory,
            tls: None,
            capture_logs: false,
        }
    }
}

impl StackOptions {
    /// What `scripts/run-dev.sh` serves: people on their own seats, and
    /// the process environment may set any variable.
    pub fn dev_server() -> StackOptions {
        StackOptions {
            variables: HashMap::from([("upstream_mode".to_string(), "own-seat".to_string())]),
            defer_to_environment: true,
            ..StackOptions::default()
        }
    }
}

/// Another instance of a stack's gateway, on its own port.
pub struct Peer {
    pub url: String,
    pub gateway: Arc<Gateway>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `gateway` on a fresh loopback port.
async fn serve_peer(gateway: Gateway) -> Result<Peer> {
    let gateway = Arc::new(gateway);
    let (listener, addr) = host::loopback_listener().await?;
    let task = gateway.clone().serve(listener);
    Ok(Peer {
        url: format!("http://{addr}"),
        gateway,
        task,
    })
}

impl Stack {
    pub async fn start() -> Result<Stack> {
        Stack::start_with(StackOptions::default()).await
    }

    pub async fn start_with(options: StackOptions) -> Result<Stack> {
        let manifest = manifest()?;
        let issuer = DevIssuer::start().await?;
        let upstream = MockUpstream::start(UPSTREAM_GITHUB_TOKEN).await?;
        let listener = tokio::net::TcpListener::bind(options.listen).await?;
        let addr = listener.local_addr()?;
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let url = format!("{scheme}://{addr}");
        let mut variables: HashMap<String, String> = [
            ("public_url", url.clone()),
            ("oidc_issuer", issuer.issuer()),
            ("oidc_issuer_origin", issuer.issuer()),
            ("token_signing_key", random_seed()),
            ("audit_signing_key", random_seed()),
            ("masking_fingerprint_key", random_seed()),
            ("upstream_github_token", UPSTREAM_GITHUB_TOKEN.to_string()),
            // The suites written for one shared seat keep it; the own-seat
            // suite (tests/tests/own_seat.rs) sets "own-seat". The shared
            // seat's login is named, so nothing but the exchange presents
            // its GitHub token (own_seat.rs covers the `/user` lookup).
            ("upstream_mode", "shared-seat".to_string()),
            ("upstream_github_login", SHARED_LOGIN.to_string()),
            ("vault_key", random_seed()),
            ("github_url", upstream.base_url()),
            ("github_api_url", upstream.base_url()),
            ("copilot_api_url", upstream.base_url()),
            ("copilot_proxy_url", upstream.base_url()),
            ("copilot_telemetry_url", upstream.base_url()),
            // The pages sign people in at the dev issuer.
            (
                "oidc_client_secret",
                crate::dev_issuer::DEV_CLIENT_SECRET.to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let actions_issuer = if options.github_actions {
            let actions = DevIssuer::start().await?;
            variables.insert("github_actions_issuer".into(), actions.issuer());
            variables.insert("github_actions_audience".into(), "copilot-jit".into());
            Some(actions)
        } else {
            // Unreachable on purpose: nothing may be fetched from it.
            variables.insert("github_actions_issuer".into(), "http://127.0.0.1:9".into());
            None
        };
        variables.extend(options.variables);
        let env: HashMap<String, String> = std::env::vars().collect();
        if options.defer_to_environment {
            variables.retain(|name, _| {
                !env.contains_key(&format!("SPIN_VARIABLE_{}", name.to_uppercase()))
            });
        }
        let resolved = manifest.resolve(&variables, &env)?;
        let (engine, component) = compiled(&manifest)?;
        let kv = Arc::new(KeyValue::open(&options.store).await?);
        let mut gateway = Gateway::new(&engine, &component, resolved.clone(), kv)?;
        if options.capture_logs {
            gateway.capture_logs();
        }
        let gateway = Arc::new(gateway);
        let task = match options.tls {
            Some(tls) => gateway.clone().serve_tls(listener, tls),
            None => gateway.clone().serve(listener),
        };
        Ok(Stack {
            url,
            addr,
            issuer,
            actions_issuer,
            upstream,
            gateway,
            variables,
            resolved,
            store: options.store,
            task,
        })
    }

    /// A second instance of the same gateway (same settings, keys, issuer
    /// and upstream) with its own instance pool and its own connection to
    /// the same store: scale-out, as two Spin processes behind one load
    /// balancer. Only meaningful on a
    /// shared store (Redis).
    pub async fn peer(&self) -> Result<Peer> {
        let manifest = manifest()?;
        let (_, component) = compiled(&manifest)?;
        // A process of its own: its own engine, so its own instance pool.
        let engine = host::engine()?;
        let bytes = component.serialize()?;
        // SAFETY: the bytes were serialized just now, in this process, by an
        // engine with the same configuration.
        let component = unsafe { Component::deserialize(&engine, &bytes)? };
        let kv = Arc::new(KeyValue::open(&self.store).await?);
        let gateway = Gateway::new(&engine, &component, self.resolved.clone(), kv)?;
        serve_peer(gateway).await
    }

    /// Another instance of this gateway on the same store (the same KV, in
    /// memory too) with some variables changed, as after a redeploy with
    /// new settings (a rotated vault key). Its clock starts where this one's is.
    pub async fn instance_with(&self, changed: &[(&str, &str)]) -> Result<Peer> {
        let manifest = manifest()?;
        let (engine, component) = compiled(&manifest)?;
        let mut resolved = self.resolved.clone();
        for (k, v) in changed {
            resolved.config.insert(k.to_string(), v.to_string());
        }
        let gateway = Gateway::new(&engine, &component, resolved, self.gateway.kv().clone())?;
        gateway.clock().advance(self.gateway.clock().offset_secs());
        serve_peer(gateway).await
    }

    /// Moves time forward for the gateway and the mock upstream alike
    /// (tokens expire without waiting).
    pub fn advance(&self, secs: u64) {
        self.gateway.clock().advance(secs);
        self.upstream.advance(secs);
    }

    /// What the gateway wrote to stderr (with `capture_logs`).
    pub fn logs(&self) -> String {
        self.gateway.logs()
    }

    /// As `person`, issued at the gateway's clock (moved by `advance`), so
    /// it is valid to the gateway after time has moved on.
    pub fn person_now(&self, subject: &str, groups: &[&str]) -> String {
        let now = crate::dev_issuer::now() + self.gateway.clock().offset_secs();
        self.issuer.sign(
            crate::dev_issuer::Alg::Rs256,
            serde_json::json!({
                "iss": self.issuer.issuer(), "sub": subject, "aud": "copilot-jit",
                "email": format!("{subject}@example.com"), "name": subject,
                "groups": groups, "iat": now, "nbf": now, "exp": now + 3600,
            }),
        )
    }

    /// An OIDC token for a person in `groups`.
    pub fn person(&self, subject: &str, groups: &[&str]) -> String {
        self.issuer.token_for(subject, groups, "copilot-jit")
    }

    /// Alice asks for `scopes` (and `models`), Bob approves, Alice takes a
    /// gateway token (`ttl` as the token endpoint takes it, e.g. `"grant"`).
    /// Returns the grant id and the token.
    pub async fn approved_grant(
        &self,
        scopes: &[&str],
        models: &[&str],
        ttl: Option<&str>,
    ) -> Result<(String, String)> {
        let client = reqwest::Client::new();
        let alice = self.person("alice", &["developers"]);
        let bob = self.person("bob", &[APPROVERS]);
        let created: serde_json::Value = client
            .post(format!("{}/v1/access-requests", self.url))
            .bearer_auth(&alice)
            .json(&serde_json::json!({"scopes": scopes, "models": models, "reason": "work", "duration": "1h"}))
            .send()
            .await?
            .json()
            .await?;
        let id = created["request"]["id"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no request created: {created}"))?
            .to_string();
        let approved = client
            .post(format!("{}/v1/access-requests/{id}/approve", self.url))
            .bearer_auth(&bob)
            .send()
            .await?;
        anyhow::ensure!(
            approved.status() == 200,
            "approval failed: {}",
            approved.status()
        );
        let body = match ttl {
            Some(t) => serde_json::json!({ "ttl": t }),
            None => serde_json::json!({}),
        };
        let issued: serde_json::Value = client
            .post(format!("{}/v1/grants/{id}/token", self.url))
            .bearer_auth(&alice)
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        let token = issued["access_token"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no token issued: {issued}"))?
            .to_string();
        Ok((id, token))
    }

    /// The first audit record (for `query`) that `wanted` accepts, waiting
    /// for it to be appended.
    pub async fn audit_record(
        &self,
        query: &str,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let carol = self.person_now("carol", &[AUDITORS]);
        audit_record_as(&self.url, &carol, query, wanted).await
    }

    /// The audit trail as an auditor reads it (`query` as in the API, e.g. `grant=req_…`).
    /// The record of the call on `grant` the client sent as `request_id`,
    /// once it is written (awaited, as records follow the answer).
    pub async fn call_record(&self, grant: &str, request_id: &str) -> serde_json::Value {
        self.audit_record(&format!("grant={grant}"), |r| {
            r["unmapped"]["client_request_id"] == request_id
        })
        .await
        .unwrap_or_else(|| panic!("no audit record for {request_id}"))
    }

    pub async fn audit_records(&self, query: &str) -> Result<Vec<serde_json::Value>> {
        self.audit_records_at(&self.url, query).await
    }

    /// The same, read on another instance (`base`) of this gateway.
    pub async fn audit_records_at(
        &self,
        base: &str,
        query: &str,
    ) -> Result<Vec<serde_json::Value>> {
        let carol = self.person_now("carol", &[AUDITORS]);
        audit_records_as(base, &carol, query).await
    }
}

/// The audit trail at `base` (`query` as in the API) as read by `auditor`
/// (an auditor's ID token, from whichever IdP the gateway trusts).
pub async fn audit_records_as(
    base: &str,
    auditor: &str,
    query: &str,
) -> Result<Vec<serde_json::Value>> {
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/v1/audit/records?limit=10000&{query}"))
        .bearer_auth(auditor)
        .send()
        .await?
        .json()
        .await?;
    body["records"]
        .as_array()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no records: {body}"))
}

/// The first of those records that `wanted` accepts, waiting for it to be
/// appended (records follow the answer they describe).
pub async fn audit_record_as(
    base: &str,
    auditor: &str,
    query: &str,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> Option<serde_json::Value> {
    eventually(|| async {
        audit_records_as(base, auditor, query)
            .await
            .ok()?
            .into_iter()
            .find(|r| wanted(r))
    })
    .await
}

/// What `Stack::call` sends: nothing, a JSON value, or raw bytes labelled
/// as JSON (for bodies that are not).
pub enum Body {
    Empty,
    Json(serde_json::Value),
    Bytes(Vec<u8>),
}

impl From<serde_json::Value> for Body {
    fn from(v: serde_json::Value) -> Self {
        Body::Json(v)
    }
}

impl From<Vec<u8>> for Body {
    fn from(b: Vec<u8>) -> Self {
        Body::Bytes(b)
    }
}

impl From<Option<Vec<u8>>> for Body {
    fn from(b: Option<Vec<u8>>) -> Self {
        b.map_or(Body::Empty, Body::Bytes)
    }
}

/// The gateway's answer to one `Stack::call`.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    /// The body as JSON, `Null` when it is not JSON.
    pub json: serde_json::Value,
}

impl Answer {
    /// Whether the test host reported a trap in the component.
    pub fn trapped(&self) -> bool {
        self.headers.get("x-test-host-trap").is_some()
    }
}

impl Stack {
    /// One call to the gateway as a client makes it: `token` as
    /// `Authorization: Bearer`, `body` as JSON. Panics (failing the test)
    /// when the gateway cannot be reached.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: impl Into<Body>,
    ) -> Answer {
        let method: reqwest::Method = method
            .parse()
            .unwrap_or_else(|_| panic!("{method} is not an HTTP method"));
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        request = match body.into() {
            Body::Empty => request,
            Body::Json(v) => request.json(&v),
            Body::Bytes(b) => request.header("content-type", "application/json").body(b),
        };
        send(request).await
    }
}

/// Sends a request a test built itself (other hosts, headers, forms) and
/// reads the answer. Panics (failing the test) when nothing answers.
pub async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("gateway unreachable: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("body unreadable: {e}"));
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    Answer {
        status,
        headers,
        text,
        json,
    }
}
