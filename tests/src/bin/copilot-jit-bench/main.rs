//! The gateway's cost against the floor, in one run, as ratios.
//!
//! (a) the mock Copilot upstream directly, (b) a bare wasi:http pass-through
//! component, (c) copilot-jit with a valid grant — the same request mix, the
//! same host, the same load generator. Also: per-request instantiation cost,
//! stream timing through the masking filter, artifact sizes. Prints a table
//! and writes BENCHMARKS.md. Never fails on speed.
//!
//! Usage: copilot-jit-bench [--seconds N] [--concurrency N] [--focus | --stores | --masking | --cost]

use anyhow::{Context, Result};
use copilot_jit_testkit::harness::{self, Stack, StackOptions, UPSTREAM_GITHUB_TOKEN};
use copilot_jit_testkit::host::{self, Gateway};
use copilot_jit_testkit::kv::redis::RedisServer;
use copilot_jit_testkit::kv::StoreKind;
use copilot_jit_testkit::mock_upstream::StreamScript;
use futures::StreamExt;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

mod cost;
mod load;

use load::{envelope_token, load, options, start_passthrough, Mix, Options};

/// Time to the first event and mean gap between events, for one stream.
async fn stream_timing(base: &str, token: &str) -> Result<(f64, f64)> {
    let (url, body) = Mix::ChatStream.request(base);
    let started = Instant::now();
    let resp = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    let mut stream = resp.bytes_stream();
    let mut pending = Vec::new();
    let mut arrivals = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        for b in chunk.iter() {
            if *b == b'\n' {
                if pending.starts_with(b"data:") {
                    arrivals.push(started.elapsed());
                }
                pending.clear();
            } else {
                pending.push(*b);
            }
        }
    }
    let first = arrivals.first().context("no events")?.as_secs_f64() * 1000.0;
    let gaps: Vec<f64> = arrivals
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0)
        .collect();
    let mean_gap = gaps.iter().sum::<f64>() / gaps.len().max(1) as f64;
    Ok((first, mean_gap))
}

async fn mean_instantiation(gateway: &Gateway, n: usize) -> Result<f64> {
    for _ in 0..20 {
        gateway.instantiate_once().await?;
    }
    let mut total = Duration::ZERO;
    for _ in 0..n {
        total += gateway.instantiate_once().await?;
    }
    Ok(total.as_secs_f64() * 1e6 / n as f64)
}

async fn grant_token(stack: &Stack) -> Result<String> {
    let (_, jwt) = stack
        .approved_grant(&["chat", "completions", "models"], &[], Some("grant"))
        .await?;
    // Clients trade it for the envelope's session token.
    envelope_token(&stack.url, &format!("Bearer {jwt}")).await
}

/// What the access policy costs a request: parsing the text (what is not
/// done), decoding the compiled set (once per instance that needs it), and
/// one decision. Native, means of 2,000.
fn policy_figures(root: &std::path::Path) -> Result<String> {
    use copilot_jit_access_policy::{Action, Engine, Kind, Principal, Resource};
    use std::str::FromStr;
    let mut text = String::new();
    for entry in std::fs::read_dir(root.join("policies"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "cedar") {
            text.push_str(&std::fs::read_to_string(path)?);
        }
    }
    const N: u32 = 2000;
    let started = Instant::now();
    for _ in 0..N {
        cedar_policy::PolicySet::from_str(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let parse = started.elapsed().as_secs_f64() * 1e6 / f64::from(N);
    let ask = |engine: &Engine, group: &str, model: &str, expect: bool| -> Result<()> {
        let groups = vec![group.to_string()];
        let who = Principal {
            kind: Kind::Human,
            subject: "alice",
            issuer: "https://idp",
            email: "alice@example.com",
            groups: &groups,
            claims: None,
        };
        let d = engine
            .decide(
                &who,
                Action::Use,
                &Resource::Scope("chat"),
                serde_json::json!({"endpoint": "/chat/completions", "client": "bench", "model": model}),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::ensure!(d.allowed == expect, "unexpected bench decision");
        Ok(())
    };
    // What a Copilot call pays in a fresh instance: a developer is covered
    // by the build-time `use` shortcut; a contractor (named by a forbid)
    // makes the instance decode the `use` slice and ask Cedar.
    let timed = |group: &str, model: &str, expect: bool| -> Result<f64> {
        let started = Instant::now();
        for _ in 0..N {
            let engine = Engine::load().map_err(|e| anyhow::anyhow!("{e}"))?;
            ask(&engine, group, model, expect)?;
        }
        Ok(started.elapsed().as_secs_f64() * 1e6 / f64::from(N))
    };
    let shortcut = timed("developers", "gpt-4o", true)?;
    let first = timed("contractors", "gpt-5-preview", false)?;
    let engine = Engine::load().map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = Instant::now();
    for _ in 0..N {
        ask(&engine, "contractors", "gpt-4o", true)?;
    }
    let decide = started.elapsed().as_secs_f64() * 1e6 / f64::from(N);
    let mut out = String::new();
    writeln!(out, "| step ({} policies) | µs, native |", engine.len())?;
    writeln!(out, "|---|---:|")?;
    writeln!(
        out,
        "| parse the whole policy text (never done per request) | {parse:.1} |"
    )?;
    writeln!(
        out,
        "| a Copilot call covered by the build-time `use` shortcut (developers) | {shortcut:.1} |"
    )?;
    writeln!(
        out,
        "| a Copilot call asking Cedar (contractors): decode the `use` slice + decide | {first:.1} |"
    )?;
    writeln!(
        out,
        "| a further `use` decision (entities, context, authorize) | {decide:.1} |"
    )?;
    writeln!(
        out,
        "| parse ÷ what a Cedar call pays | {:.0}× |",
        parse / first
    )?;
    Ok(out)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    format!("{cores} cores ({cpu}), {mem_gib:.0} GiB")
}

/// One row of the stores table: `mix` at `clients` on `stack` beside the
/// bare pass-through, with the KV calls each request made.
async fn store_row(
    label: &str,
    stack: &Stack,
    token: &str,
    bare: (&str, &str),
    mix: Mix,
    clients: usize,
    seconds: u64,
) -> Result<String> {
    let cell = Options {
        seconds,
        concurrency: clients,
        ..Options::default()
    };
    let warm = Options {
        seconds: 1,
        concurrency: clients,
        ..Options::default()
    };
    eprintln!("load: {label}, {}, {clients} clients", mix.name());
    load(&stack.url, token, mix, &warm).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stack.gateway.live_instances().take_peak();
    let stats = stack.gateway.kv().stats();
    let (reads, writes) = (stats.reads(), stats.writes());
    let f = load(&stack.url, token, mix, &cell).await;
    // Work after the answer (the audit record) settles first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = f.calls.max(1) as f64;
    let per_call_reads = (stats.reads() - reads) as f64 / calls;
    let per_call_writes = (stats.writes() - writes) as f64 / calls;
    let peak = stack.gateway.live_instances().take_peak();
    load(bare.0, bare.1, mix, &warm).await;
    let b = load(bare.0, bare.1, mix, &cell).await;
    Ok(format!(
        "| {label} | {} | {clients} | {:.0} | {:.2} | {:.2} | {} | {peak} | {:.0} | {:.2} | {:.2} | {per_call_reads:.2} | {per_call_writes:.2} |",
        mix.name(),
        f.rps,
        f.p50_ms,
        f.p99_ms,
        f.errors,
        b.rps,
        b.p50_ms,
        f.rps / b.rps
    ))
}

/// Spin's two stores, rebuilt in the test host (SQLite behind one
/// connection; Redis with Spin's command sequence on a real server), with
/// the audit log in a bucket (Garage, when installed) or in KV (the laptop
/// default), beside the bare pass-through; with the KV calls per request.
async fn spin_store_table(o: &Options, passthrough_url: &str, bare_token: &str) -> Result<String> {
    let redis = RedisServer::start().await?;
    let garage = match copilot_jit_testkit::garage::Garage::start().await {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("no Garage ({e}): the bucket rows are left out");
            None
        }
    };
    let mut table = String::new();
    writeln!(
        table,
        "## On Spin's stores ({} s per cell, Spin's instance pool)\n",
        o.seconds
    )?;
    writeln!(
        table,
        "| store, audit | request | clients | copilot-jit req/s | p50 ms | p99 ms | errors | instances alive, peak | bare req/s | bare p50 ms | ratio | KV reads/call | KV writes/call |"
    )?;
    writeln!(
        table,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    let bucket_vars: HashMap<String, String> = garage
        .as_ref()
        .map(|g| g.audit_variables().into_iter().collect())
        .unwrap_or_default();
    let all_mixes = [
        Mix::Chat,
        Mix::ChatStream,
        Mix::CompletionsStream,
        Mix::Models,
    ];
    struct Setup {
        label: &'static str,
        store: StoreKind,
        variables: HashMap<String, String>,
        mixes: Vec<Mix>,
        clients: Vec<usize>,
    }
    let mut setups = Vec::new();
    if garage.is_some() {
        setups.push(Setup {
            label: "SQLite, bucket",
            store: StoreKind::Sqlite,
            variables: bucket_vars.clone(),
            mixes: all_mixes.to_vec(),
            clients: vec![1, 8, 64],
        });
    }
    setups.push(Setup {
        label: "SQLite, KV only",
        store: StoreKind::Sqlite,
        variables: HashMap::new(),
        mixes: vec![Mix::Chat],
        clients: vec![1, 8, 64],
    });
    if garage.is_some() {
        setups.push(Setup {
            label: "Redis, bucket",
            store: StoreKind::Redis(redis.url.clone()),
            variables: bucket_vars.clone(),
            mixes: vec![Mix::Chat],
            clients: vec![8, 64],
        });
    }
    for Setup {
        label,
        store,
        variables,
        mixes,
        clients,
    } in setups
    {
        let stack = Stack::start_with(StackOptions {
            store,
            variables,
            ..StackOptions::default()
        })
        .await?;
        let token = grant_token(&stack).await?;
        for mix in mixes {
            for &n in &clients {
                let row = store_row(
                    label,
                    &stack,
                    &token,
                    (passthrough_url, bare_token),
                    mix,
                    n,
                    o.seconds,
                )
                .await?;
                writeln!(table, "{row}")?;
            }
        }
    }
    Ok(table)
}

/// Per-record authentication cost, natively: Ed25519 (what records carry,
/// publicly verifiable) against HMAC-SHA256 (needs the secret to verify).
fn record_auth_figures() -> String {
    use hmac::{Hmac, Mac};
    let key = copilot_jit_audit_log::record::AuditKey::new([7; 32]);
    let hash = [42u8; 32];
    let n = 20_000;
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(ed25519_dalek::Signer::sign(key.signing_key(), &hash));
    }
    let ed = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    let started = Instant::now();
    for _ in 0..n {
        let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(&[7; 32]) else {
            return String::new();
        };
        mac.update(&hash);
        std::hint::black_box(mac.finalize());
    }
    let hm = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    format!(
        "Per-record authentication (native, this machine): Ed25519 sign {ed:.1} µs, HMAC-SHA256 {hm:.2} µs.\n"
    )
}

/// The upstream's own Copilot token, as a client of Copilot presents it.
async fn upstream_copilot_token(stack: &Stack) -> Result<String> {
    envelope_token(
        &stack.upstream.base_url(),
        &format!("token {UPSTREAM_GITHUB_TOKEN}"),
    )
    .await
}

#[tokio::main]
async fn main() -> Result<()> {
    let o = options()?;
    let root = harness::workspace_root();
    if o.masking {
        let engine = host::engine()?;
        println!(
            "{}",
            copilot_jit_testkit::masking_bench::figures(&engine, &root).await?
        );
        return Ok(());
    }
    eprintln!("starting the stack (issuer, mock upstream, copilot-jit)");
    let stack = Stack::start().await?;
    let gateway_token = grant_token(&stack).await?;
    // (a) and (b) present the upstream's own Copilot token, as a client of
    // Copilot would; the pass-through adds nothing.
    let copilot_token = upstream_copilot_token(&stack).await?;

    if o.focus {
        let f = load(&stack.url, &gateway_token, Mix::Chat, &o).await;
        println!(
            "copilot-jit, chat: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
            f.rps, f.p50_ms, f.p99_ms
        );
        return Ok(());
    }
    let engine = host::engine()?;
    let passthrough_file = root.join("dist/bench/passthrough.wasm");
    let (passthrough, passthrough_url, _passthrough_task) =
        start_passthrough(&engine, &passthrough_file, &stack.upstream.base_url()).await?;
    if o.cost {
        let table = cost::table(
            &root,
            cost::Targets {
                stack: &stack,
                passthrough: &passthrough,
                passthrough_url: &passthrough_url,
                copilot_token: &copilot_token,
                developer_token: &gateway_token,
            },
            &o,
        )
        .await?;
        println!("{table}");
        return Ok(());
    }
    if o.stores {
        let bare_token = upstream_copilot_token(&stack).await?;
        let table = spin_store_table(&o, &passthrough_url, &bare_token).await?;
        println!("{table}\n{}", record_auth_figures());
        return Ok(());
    }

    let targets = [
        (
            "(a) upstream directly",
            stack.upstream.base_url(),
            copilot_token.clone(),
        ),
        (
            "(b) bare pass-through",
            passthrough_url.clone(),
            copilot_token.clone(),
        ),
        ("(c) copilot-jit", stack.url.clone(), gateway_token.clone()),
    ];
    let mut report = String::new();
    writeln!(
        report,
        "## Overhead ({} s per cell, {} concurrent clients)\n",
        o.seconds, o.concurrency
    )?;
    writeln!(
        report,
        "| request | target | req/s | p50 ms | p99 ms | errors |"
    )?;
    writeln!(report, "|---|---|---:|---:|---:|---:|")?;
    let mut summary = String::new();
    writeln!(
        summary,
        "| request | (c)/(b) throughput | (c)−(a) p50 ms | (c)−(b) p50 ms |"
    )?;
    writeln!(summary, "|---|---:|---:|---:|")?;
    for mix in [Mix::Chat, Mix::ChatStream, Mix::CompletionsStream] {
        let mut figures = Vec::new();
        for (name, base, token) in &targets {
            eprintln!("load: {} → {name}", mix.name());
            // A short warm-up so caches (upstream token, JIT code) are hot.
            load(
                base,
                token,
                mix,
                &Options {
                    seconds: 1,
                    concurrency: o.concurrency,
                    ..Options::default()
                },
            )
            .await;
            let f = load(base, token, mix, &o).await;
            writeln!(
                report,
                "| {} | {name} | {:.0} | {:.2} | {:.2} | {} |",
                mix.name(),
                f.rps,
                f.p50_ms,
                f.p99_ms,
                f.errors
            )?;
            figures.push(f);
        }
        writeln!(
            summary,
            "| {} | {:.2} | {:+.2} | {:+.2} |",
            mix.name(),
            figures[2].rps / figures[1].rps,
            figures[2].p50_ms - figures[0].p50_ms,
            figures[2].p50_ms - figures[1].p50_ms
        )?;
    }

    eprintln!("unloaded latency");
    let mut unloaded = String::new();
    writeln!(
        unloaded,
        "| request | (a) p50 ms | (b) p50 ms | (c) p50 ms | (c)−(a) ms | (c)−(b) ms |"
    )?;
    writeln!(unloaded, "|---|---:|---:|---:|---:|---:|")?;
    let one_client = Options {
        seconds: o.seconds.min(3),
        concurrency: 1,
        ..Options::default()
    };
    for mix in [Mix::Chat, Mix::ChatStream, Mix::CompletionsStream] {
        let mut p50 = Vec::new();
        for (_, base, token) in &targets {
            p50.push(load(base, token, mix, &one_client).await.p50_ms);
        }
        writeln!(
            unloaded,
            "| {} | {:.2} | {:.2} | {:.2} | {:+.2} | {:+.2} |",
            mix.name(),
            p50[0],
            p50[1],
            p50[2],
            p50[2] - p50[0],
            p50[2] - p50[1]
        )?;
    }

    eprintln!("per-request start cost");
    let jit = mean_instantiation(&stack.gateway, 500).await?;
    let bare = mean_instantiation(&passthrough, 500).await?;
    let mut start = String::new();
    writeln!(start, "| component | instantiate, µs (mean of 500) |")?;
    writeln!(start, "|---|---:|")?;
    writeln!(start, "| bare pass-through | {bare:.0} |")?;
    writeln!(
        start,
        "| copilot-jit (six components composed) | {jit:.0} |"
    )?;
    writeln!(start, "| ratio | {:.2}× |", jit / bare)?;

    eprintln!("stream timing");
    stack.upstream.script_stream(StreamScript {
        pieces: (0..20).map(|i| format!("token {i} ")).collect(),
        delay: Duration::from_millis(10),
        cut_after: None,
    });
    let mut streams = String::new();
    writeln!(
        streams,
        "| target | first event, ms | mean gap between events, ms |"
    )?;
    writeln!(streams, "|---|---:|---:|")?;
    let mut timings = Vec::new();
    for (name, base, token) in &targets {
        let mut firsts = Vec::new();
        let mut gaps = Vec::new();
        for _ in 0..10 {
            let (first, gap) = stream_timing(base, token).await?;
            firsts.push(first);
            gaps.push(gap);
        }
        let (first, gap) = (
            firsts.iter().sum::<f64>() / 10.0,
            gaps.iter().sum::<f64>() / 10.0,
        );
        writeln!(streams, "| {name} | {first:.2} | {gap:.2} |")?;
        timings.push((first, gap));
    }
    writeln!(
        streams,
        "| added by copilot-jit over (a) | {:+.2} | {:+.2} |",
        timings[2].0 - timings[0].0,
        timings[2].1 - timings[0].1
    )?;

    eprintln!("masking throughput");
    let masking = copilot_jit_testkit::masking_bench::figures(&engine, &root).await?;
    eprintln!("access policy");
    let policy = policy_figures(&root)?;

    let mut sizes = String::new();
    writeln!(sizes, "| artifact | KiB |")?;
    writeln!(sizes, "|---|---:|")?;
    for name in [
        "gateway",
        "auth-validator",
        "grant-store",
        "token-minter",
        "masking-filter",
        "audit-sink",
    ] {
        let len = std::fs::metadata(root.join(format!("dist/components/{name}.wasm")))?.len();
        writeln!(sizes, "| {name} | {} |", len / 1024)?;
    }
    let composed = std::fs::metadata(root.join("dist/copilot-jit.wasm"))?.len();
    writeln!(
        sizes,
        "| **copilot-jit.wasm (composed)** | {} |",
        composed / 1024
    )?;
    writeln!(
        sizes,
        "| bare pass-through | {} |",
        std::fs::metadata(&passthrough_file)?.len() / 1024
    )?;

    let date = std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let body = format!(
        "Machine: {}. Run: {date}. Command: `scripts/bench.sh --seconds {} --concurrency {}`.\n\
         The load generator, the mock upstream and the host share the machine, so read the ratios, not the absolute figures.\n\n\
         ## Summary\n\n{summary}\n{report}\n## Unloaded latency (one client, {} s per cell)\n\n{unloaded}\n## Per-request start cost\n\n{start}\n\
         ## Streams (20 events, 10 ms apart, means of 10 streams)\n\n{streams}\n## Masking (full default detector set)\n\n{masking}\n## Access policy (Cedar)\n\n{policy}\n## Artifacts\n\n{sizes}",
        machine(),
        o.seconds,
        o.concurrency,
        one_client.seconds
    );
    println!("{body}");
    let results = root.join("target-bench-results.md");
    std::fs::write(&results, &body)?;
    eprintln!("figures written to {}", results.display());
    Ok(())
}
