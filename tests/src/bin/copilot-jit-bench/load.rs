//! The bench's load generator: a closed loop of clients sending one request
//! mix, and the bare pass-through component it is compared with.

use anyhow::{bail, Context, Result};
use copilot_jit_testkit::host::{self, Gateway, KeyValue};
use copilot_jit_testkit::manifest::Resolved;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Default)]
pub(crate) struct Options {
    pub(crate) seconds: u64,
    pub(crate) concurrency: usize,
    /// Load only copilot-jit with non-streamed chat (for a profiler).
    pub(crate) focus: bool,
    /// Only the table on Spin's stores (SQLite, Redis) at 8 and 64 clients.
    pub(crate) stores: bool,
    /// Only the masking figures.
    pub(crate) masking: bool,
    /// Only the per-request cost figures (instances, memories, start cost).
    pub(crate) cost: bool,
}

pub(crate) fn options() -> Result<Options> {
    let mut o = Options {
        seconds: 5,
        concurrency: 8,
        focus: false,
        stores: false,
        masking: false,
        cost: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--focus" {
            o.focus = true;
            continue;
        }
        if a == "--stores" {
            o.stores = true;
            continue;
        }
        if a == "--masking" {
            o.masking = true;
            continue;
        }
        if a == "--cost" {
            o.cost = true;
            continue;
        }
        let value = args.next().context("every option takes a value")?;
        match a.as_str() {
            "--seconds" => o.seconds = value.parse()?,
            "--concurrency" => o.concurrency = value.parse()?,
            _ => bail!(
                "usage: copilot-jit-bench [--seconds N] [--concurrency N] [--focus] [--stores] [--masking] [--cost]"
            ),
        }
    }
    Ok(o)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mix {
    Chat,
    ChatStream,
    CompletionsStream,
    Models,
}

impl Mix {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mix::Chat => "chat",
            Mix::ChatStream => "chat, streamed",
            Mix::CompletionsStream => "completions, streamed",
            Mix::Models => "/models",
        }
    }

    pub(crate) fn request(self, base: &str) -> (String, Value) {
        match self {
            Mix::Chat => (
                format!("{base}/chat/completions"),
                json!({"model": "gpt-4o", "stream": false,
                       "messages": [{"role": "user", "content": "explain this function: def add(a, b): return a + b"}]}),
            ),
            Mix::ChatStream => (
                format!("{base}/chat/completions"),
                json!({"model": "gpt-4o", "stream": true,
                       "messages": [{"role": "user", "content": "explain this function: def add(a, b): return a + b"}]}),
            ),
            Mix::Models => (format!("{base}/models"), Value::Null),
            Mix::CompletionsStream => (
                format!("{base}/v1/engines/gpt-41-copilot/completions"),
                json!({"prompt": "def add(a, b):\n    ", "suffix": "", "max_tokens": 50, "n": 1, "stream": true}),
            ),
        }
    }
}

#[derive(Default, Clone)]
pub(crate) struct Figures {
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) errors: usize,
    /// Answers seen, good or not.
    pub(crate) calls: usize,
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Closed-loop load: `concurrency` clients, each sending the next request
/// when the previous answer has been read completely.
pub(crate) async fn load(base: &str, token: &str, mix: Mix, o: &Options) -> Figures {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(o.seconds);
    let started = Instant::now();
    let workers = (0..o.concurrency).map(|_| {
        let client = client.clone();
        let (url, body) = mix.request(base);
        let token = token.to_string();
        async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                let call = if body.is_null() {
                    client.get(&url)
                } else {
                    client.post(&url).json(&body)
                };
                let ok = match call.bearer_auth(&token).send().await {
                    Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
                    _ => false,
                };
                if ok {
                    latencies.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }
    });
    let results = futures::future::join_all(workers).await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut all: Vec<Duration> = results.iter().flat_map(|(l, _)| l.clone()).collect();
    all.sort();
    Figures {
        rps: all.len() as f64 / elapsed,
        p50_ms: percentile(&all, 0.50),
        p99_ms: percentile(&all, 0.99),
        errors: results.iter().map(|(_, e)| e).sum(),
        calls: all.len() + results.iter().map(|(_, e)| e).sum::<usize>(),
    }
}

/// The bare pass-through component, served on loopback in front of `upstream`.
pub(crate) async fn start_passthrough(
    engine: &wasmtime::Engine,
    file: &std::path::Path,
    upstream: &str,
) -> Result<(Arc<Gateway>, String, tokio::task::JoinHandle<()>)> {
    let component = wasmtime::component::Component::from_file(engine, file)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{} (run scripts/bench.sh)", file.display()))?;
    let passthrough = Arc::new(Gateway::new(
        engine,
        &component,
        Resolved {
            config: HashMap::from([("upstream_url".to_string(), upstream.to_string())]),
            allowed_outbound_hosts: vec![upstream.to_string()],
            key_value_stores: Vec::new(),
        },
        Arc::new(KeyValue::default()),
    )?);
    let (listener, addr) = host::loopback_listener().await?;
    let task = passthrough.clone().serve(listener);
    Ok((passthrough, format!("http://{addr}"), task))
}

/// The session token of a Copilot token envelope: what `credential`
/// (`Bearer …` or `token …`) gets from `{base}/copilot_internal/v2/token`,
/// and what every completion and chat call then carries.
pub(crate) async fn envelope_token(base: &str, authorization: &str) -> Result<String> {
    let envelope: Value = reqwest::Client::new()
        .get(format!("{base}/copilot_internal/v2/token"))
        .header("authorization", authorization)
        .send()
        .await?
        .json()
        .await?;
    Ok(envelope["token"]
        .as_str()
        .with_context(|| format!("no envelope token: {envelope}"))?
        .to_string())
}
