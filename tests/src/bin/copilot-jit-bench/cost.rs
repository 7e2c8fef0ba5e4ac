//! What one request costs the host before the gateway does any work of its
//! own, on the test host configured like Spin's pool: the instances,
//! memories and tables it creates, the bytes the pool rewrites when it is
//! released, how many such requests one Spin process holds at once, start
//! cost and chat throughput against the bare component, and a contractor's
//! call (which asks Cedar) against a developer's (which does not).

use crate::load::{envelope_token, load, Mix, Options};
use anyhow::{Context, Result};
use copilot_jit_testkit::artifact_shape::{shape, Shape};
use copilot_jit_testkit::footprint::FootprintMeans;
use copilot_jit_testkit::harness::Stack;
use copilot_jit_testkit::host::{linear_memory_keep_resident, Gateway};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// Spin's pool defaults (`crates/core` in Spin 3.x–4.x).
const SPIN_INSTANCES: f64 = 1000.0;
const SPIN_MEMORIES: f64 = 1000.0;
const SPIN_TABLES: f64 = 2000.0;
/// The components composed into the artifact, as `dist/components/` holds them.
const COMPONENTS: &[&str] = &[
    "gateway",
    "auth-validator",
    "grant-store",
    "token-minter",
    "masking-filter",
    "audit-sink",
];

pub(crate) struct Targets<'a> {
    pub stack: &'a Stack,
    pub passthrough: &'a Gateway,
    pub passthrough_url: &'a str,
    pub copilot_token: &'a str,
    pub developer_token: &'a str,
}

pub(crate) async fn table(root: &Path, t: Targets<'_>, o: &Options) -> Result<String> {
    let mut out = String::new();
    let artifact = read_shape(&root.join("dist/copilot-jit.wasm"))?;
    let bare = read_shape(&root.join("dist/bench/passthrough.wasm"))?;

    writeln!(out, "### What each instance is made of (from the bytes)\n")?;
    writeln!(
        out,
        "| component | core instances | memories | tables | initial memory KiB | stack KiB | data KiB |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|")?;
    for name in COMPONENTS {
        let s = read_shape(&root.join(format!("dist/components/{name}.wasm")))?;
        shape_row(&mut out, name, &s)?;
    }
    shape_row(&mut out, "**copilot-jit.wasm (composed)**", &artifact)?;
    shape_row(&mut out, "bare pass-through", &bare)?;

    eprintln!("per-request footprint");
    let dev = served_footprint(t.stack, t.developer_token, o).await?;
    t.passthrough.footprints().take_means();
    load(t.passthrough_url, t.copilot_token, Mix::Chat, &short(o)).await;
    let floor = t.passthrough.footprints().take_means();
    let keep = linear_memory_keep_resident() as f64;
    writeln!(
        out,
        "\n### Per request, as Spin's pool pays it (non-streamed chat; keep-resident {} MiB)\n",
        keep / f64::from(1 << 20)
    )?;
    writeln!(
        out,
        "| target | memories | tables | memory at the end, KiB | rewritten on release, KiB | concurrent requests per Spin process (defaults) |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|")?;
    footprint_row(&mut out, "copilot-jit", &dev)?;
    footprint_row(&mut out, "bare pass-through", &floor)?;

    eprintln!("start cost");
    let (jit_start, jit_cycle) = start_cost(t.stack.gateway.as_ref(), 500).await?;
    let (bare_start, bare_cycle) = start_cost(t.passthrough, 500).await?;
    writeln!(out, "\n### Start cost (means of 500, no request served)\n")?;
    writeln!(
        out,
        "| target | instantiate µs | instantiate + release µs |"
    )?;
    writeln!(out, "|---|---:|---:|")?;
    writeln!(out, "| copilot-jit | {jit_start:.1} | {jit_cycle:.1} |")?;
    writeln!(
        out,
        "| bare pass-through | {bare_start:.1} | {bare_cycle:.1} |"
    )?;
    writeln!(
        out,
        "| ratio (target ≤ 2×) | {:.2}× | {:.2}× |",
        jit_start / bare_start,
        jit_cycle / bare_cycle
    )?;

    eprintln!("start cost of each component alone");
    writeln!(
        out,
        "\n### What each component adds to a request's start (alone, instantiate + release, means of 500)\n"
    )?;
    writeln!(out, "| component | µs |")?;
    writeln!(out, "|---|---:|")?;
    let engine = copilot_jit_testkit::host::engine()?;
    let mut sum = 0.0;
    for name in COMPONENTS {
        let us = alone_cycle(
            &engine,
            &root.join(format!("dist/components/{name}.wasm")),
            500,
        )
        .await?;
        sum += us;
        writeln!(out, "| {name} | {us:.1} |")?;
    }
    writeln!(out, "| sum of the six | {sum:.1} |")?;

    eprintln!("throughput: developer, contractor, bare");
    let contractor_token = contractor_session_token(t.stack).await?;
    let warm = short(o);
    load(&t.stack.url, t.developer_token, Mix::Chat, &warm).await;
    let developer = load(&t.stack.url, t.developer_token, Mix::Chat, o).await;
    load(&t.stack.url, &contractor_token, Mix::Chat, &warm).await;
    let contractor = load(&t.stack.url, &contractor_token, Mix::Chat, o).await;
    load(t.passthrough_url, t.copilot_token, Mix::Chat, &warm).await;
    let floor = load(t.passthrough_url, t.copilot_token, Mix::Chat, o).await;
    let one = Options {
        seconds: o.seconds.min(3),
        concurrency: 1,
        ..Options::default()
    };
    let developer_1 = load(&t.stack.url, t.developer_token, Mix::Chat, &one).await;
    let contractor_1 = load(&t.stack.url, &contractor_token, Mix::Chat, &one).await;
    writeln!(
        out,
        "\n### Chat throughput ({} s, {} clients) and who pays for Cedar\n",
        o.seconds, o.concurrency
    )?;
    writeln!(
        out,
        "| caller | req/s | ratio to bare (target ≥ 0.7×) | p50 ms | p99 ms | errors | p50 ms, one client |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|")?;
    for (name, f, f1) in [
        (
            "developer (build-time `use` shortcut)",
            &developer,
            Some(&developer_1),
        ),
        ("contractor (asks Cedar)", &contractor, Some(&contractor_1)),
        ("bare pass-through", &floor, None),
    ] {
        writeln!(
            out,
            "| {name} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} |",
            f.rps,
            f.rps / floor.rps,
            f.p50_ms,
            f.p99_ms,
            f.errors,
            f1.map_or("–".to_string(), |f| format!("{:.2}", f.p50_ms))
        )?;
    }
    writeln!(
        out,
        "\ncontractor ÷ developer: {:.2}× throughput, {:+.2} ms p50 with one client (target: equal within noise)",
        contractor.rps / developer.rps,
        contractor_1.p50_ms - developer_1.p50_ms
    )?;
    Ok(out)
}

fn read_shape(file: &Path) -> Result<Shape> {
    let bytes = std::fs::read(file)
        .with_context(|| format!("{} (run scripts/bench.sh)", file.display()))?;
    shape(&bytes)
}

fn shape_row(out: &mut String, name: &str, s: &Shape) -> Result<()> {
    let stacks: u64 = s.modules.iter().filter_map(|m| m.stack_bytes).sum();
    writeln!(
        out,
        "| {name} | {} | {} | {} | {:.0} | {:.0} | {:.0} |",
        s.core_instantiations,
        s.memories(),
        s.tables(),
        s.initial_memory_bytes() as f64 / 1024.0,
        stacks as f64 / 1024.0,
        s.data_bytes() as f64 / 1024.0
    )?;
    Ok(())
}

fn footprint_row(out: &mut String, name: &str, m: &FootprintMeans) -> Result<()> {
    let cap = (SPIN_MEMORIES / m.memories.max(1.0))
        .min(SPIN_TABLES / m.tables.max(1.0))
        .min(SPIN_INSTANCES)
        .floor();
    writeln!(
        out,
        "| {name} | {:.0} | {:.0} | {:.0} | {:.0} | {cap:.0} |",
        m.memories,
        m.tables,
        m.memory_bytes / 1024.0,
        m.reset_bytes / 1024.0
    )?;
    Ok(())
}

fn short(o: &Options) -> Options {
    Options {
        seconds: 1,
        concurrency: o.concurrency,
        ..Options::default()
    }
}

/// The footprint of the instances that served a short chat load.
async fn served_footprint(stack: &Stack, token: &str, o: &Options) -> Result<FootprintMeans> {
    stack.gateway.footprints().take_means();
    let f = load(&stack.url, token, Mix::Chat, &short(o)).await;
    // Work after the answer (the audit record) ends with the instance.
    tokio::time::sleep(Duration::from_millis(500)).await;
    anyhow::ensure!(f.errors == 0, "{} chats failed", f.errors);
    Ok(stack.gateway.footprints().take_means())
}

/// Mean µs to instantiate, and to instantiate and release (the pool's reset).
async fn start_cost(gateway: &Gateway, n: usize) -> Result<(f64, f64)> {
    for _ in 0..20 {
        gateway.instantiate_and_release_once().await?;
    }
    let mut start = Duration::ZERO;
    for _ in 0..n {
        start += gateway.instantiate_once().await?;
    }
    let mut cycle = Duration::ZERO;
    for _ in 0..n {
        cycle += gateway.instantiate_and_release_once().await?;
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    Ok((us(start), us(cycle)))
}

/// Mean µs to instantiate and release one component on its own, every
/// import a trap (nothing is called).
async fn alone_cycle(engine: &wasmtime::Engine, file: &Path, n: usize) -> Result<f64> {
    let component = wasmtime::component::Component::from_file(engine, file)
        .map_err(anyhow::Error::from)
        .with_context(|| file.display().to_string())?;
    let mut linker = wasmtime::component::Linker::<()>::new(engine);
    linker.define_unknown_imports_as_traps(&component)?;
    let pre = linker.instantiate_pre(&component)?;
    let mut total = Duration::ZERO;
    for i in 0..n + 20 {
        let mut store = wasmtime::Store::new(engine, ());
        let started = std::time::Instant::now();
        pre.instantiate_async(&mut store).await?;
        drop(store);
        if i >= 20 {
            total += started.elapsed();
        }
    }
    Ok(total.as_secs_f64() * 1e6 / n as f64)
}

/// A contractor's session token: the default policy names contractors in a
/// `use` forbid, so their calls ask Cedar instead of the build-time shortcut.
async fn contractor_session_token(stack: &Stack) -> Result<String> {
    let client = reqwest::Client::new();
    let cora = stack.person("cora", &["contractors"]);
    let created: Value = client
        .post(format!("{}/v1/access-requests", stack.url))
        .bearer_auth(&cora)
        .json(&json!({"scopes": ["chat", "completions"], "reason": "bench", "duration": "1h"}))
        .send()
        .await?
        .json()
        .await?;
    let id = created["request"]["id"]
        .as_str()
        .with_context(|| format!("no request created: {created}"))?
        .to_string();
    for approver in ["sec-1", "sec-2"] {
        let who = stack.person(approver, &["security"]);
        let r = client
            .post(format!("{}/v1/access-requests/{id}/approve", stack.url))
            .bearer_auth(&who)
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "approval failed: {}", r.status());
    }
    let minted: Value = client
        .post(format!("{}/v1/grants/{id}/token", stack.url))
        .bearer_auth(&cora)
        .send()
        .await?
        .json()
        .await?;
    let jwt = minted["access_token"]
        .as_str()
        .with_context(|| format!("no token: {minted}"))?;
    envelope_token(&stack.url, &format!("Bearer {jwt}")).await
}
