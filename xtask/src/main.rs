//! `cargo run -p xtask -- build`: builds every component for `wasm32-wasip2`
//! and composes them (wac-graph, the library behind `wac plug`) into
//! `dist/copilot-jit.wasm`, the one artifact `spin.toml` names as its source.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use wac_graph::{types::Package, CompositionGraph, EncodeOptions, NodeId};

mod preinit;

/// The HTTP component that receives requests; the others plug into its imports.
const SOCKET: &str = "gateway";
/// In dependency order: masking-filter first, it exports the shared `types`.
const PLUGS: &[&str] = &[
    "masking-filter",
    "auth-validator",
    "grant-store",
    "token-minter",
    "audit-sink",
];
const TARGET: &str = "wasm32-wasip2";
/// Components built without std, in their own cargo invocation.
const NO_STD: &[&str] = &["masking-filter"];
const OWN_PACKAGE: &str = "copilot-jit:gateway/";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("build") => build(),
        _ => {
            eprintln!("usage: cargo run -p xtask -- build");
            std::process::exit(2);
        }
    }
}

/// The workspace being built, found from the current directory at run time:
/// the build cache may be shared by several clones, so the path this binary
/// was compiled at says nothing.
fn workspace_root() -> Result<PathBuf> {
    let out = Command::new(cargo())
        .args(["locate-project", "--workspace", "--message-format", "plain"])
        .output()
        .context("running cargo locate-project")?;
    if !out.status.success() {
        bail!("run this inside the copilot-jit workspace");
    }
    let manifest = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    manifest
        .parent()
        .map(Path::to_path_buf)
        .context("the workspace manifest has no folder")
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

fn target_dir(root: &Path) -> Result<PathBuf> {
    let out = Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata has no target_directory")
}

fn build() -> Result<()> {
    let root = workspace_root()?;
    eprintln!("[1/3] building {} components for {TARGET}", PLUGS.len() + 1);
    // The no_std masking filter builds alone: cargo unifies features across
    // the packages of one invocation, and the others' `std` features would
    // reach its dependencies.
    let (alone, together): (Vec<&str>, Vec<&str>) = std::iter::once(SOCKET)
        .chain(PLUGS.iter().copied())
        .partition(|name| NO_STD.contains(name));
    for group in [alone, together] {
        let mut cmd = Command::new(cargo());
        cmd.current_dir(&root)
            .args(["build", "--release", "--target", TARGET]);
        for name in &group {
            cmd.args(["-p", name]);
        }
        if !cmd.status().context("running cargo build")?.success() {
            bail!("building {} failed", group.join(", "));
        }
    }

    let wasm_dir = target_dir(&root)?.join(TARGET).join("release");
    let dist = root.join("dist");
    std::fs::create_dir_all(dist.join("components"))?;

    eprintln!("[2/3] pre-initialising {SOCKET} (wizer)");
    let started = std::time::Instant::now();
    let socket_file = wasm_dir.join(format!("{}.wasm", SOCKET.replace('-', "_")));
    let socket = std::fs::read(&socket_file)
        .with_context(|| format!("reading {}", socket_file.display()))?;
    let socket = preinit::preinitialize(&socket)?;
    eprintln!("      done in {:.1} s", started.elapsed().as_secs_f64());

    eprintln!("[3/3] composing {SOCKET} with {}", PLUGS.join(", "));
    let mut graph = CompositionGraph::new();
    let mut packages = Vec::new();
    for name in PLUGS.iter().chain(std::iter::once(&SOCKET)) {
        let bytes = if *name == SOCKET {
            socket.clone()
        } else {
            let file = wasm_dir.join(format!("{}.wasm", name.replace('-', "_")));
            std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?
        };
        std::fs::write(dist.join("components").join(format!("{name}.wasm")), &bytes)?;
        let package = Package::from_bytes(
            &format!("copilot-jit:{name}"),
            None,
            bytes,
            graph.types_mut(),
        )?;
        packages.push((*name, graph.register_package(package)?));
    }
    // Every import of our own package is wired to the component exporting it;
    // host imports (wasi:*) stay imports of the composed artifact.
    let mut provided: HashMap<String, NodeId> = HashMap::new();
    let mut socket_instance = None;
    for (name, package) in packages {
        let ty = graph[package].ty();
        let imports: Vec<String> = graph.types()[ty].imports.keys().cloned().collect();
        let exports: Vec<String> = graph.types()[ty].exports.keys().cloned().collect();
        let instance = graph.instantiate(package);
        for import in imports.iter().filter(|i| i.starts_with(OWN_PACKAGE)) {
            let source = provided
                .get(import)
                .with_context(|| format!("{name} imports {import}, which no component exports"))?;
            graph.set_instantiation_argument(instance, import, *source)?;
        }
        for export in exports.iter().filter(|e| e.starts_with(OWN_PACKAGE)) {
            let node = graph.alias_instance_export(instance, export)?;
            provided.entry(export.clone()).or_insert(node);
        }
        if name == SOCKET {
            socket_instance = Some((instance, exports));
        }
    }
    let (instance, exports) = socket_instance.context("the gateway was not composed")?;
    for export in exports
        .iter()
        .filter(|e| e.starts_with("wasi:http/incoming-handler"))
    {
        let handler = graph.alias_instance_export(instance, export)?;
        graph.export(handler, export)?;
    }
    let bytes = graph.encode(EncodeOptions::default())?;
    let out = dist.join("copilot-jit.wasm");
    std::fs::write(&out, &bytes)?;
    eprintln!("wrote {} ({} KiB)", out.display(), bytes.len() / 1024);
    Ok(())
}
