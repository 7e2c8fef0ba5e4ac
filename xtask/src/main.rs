//! `cargo run -p xtask -- build`: builds every component for `wasm32-wasip2`
//! and composes them (wac-graph, the library behind `wac plug`) into
//! `dist/copilot-jit.wasm`, the one artifact `spin.toml` names as its source.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use wac_graph::{types::Package, CompositionGraph, EncodeOptions};

/// The HTTP component that receives requests; the others plug into its imports.
const SOCKET: &str = "gateway";
const PLUGS: &[&str] = &[
    "auth-validator",
    "grant-store",
    "token-minter",
    "masking-filter",
    "audit-sink",
];
const TARGET: &str = "wasm32-wasip2";

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

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
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
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata has no target_directory")
}

fn build() -> Result<()> {
    let root = workspace_root();
    let mut cmd = Command::new(cargo());
    cmd.current_dir(&root)
        .args(["build", "--release", "--target", TARGET]);
    for name in std::iter::once(&SOCKET).chain(PLUGS) {
        cmd.args(["-p", name]);
    }
    eprintln!("[1/2] building {} components for {TARGET}", PLUGS.len() + 1);
    if !cmd.status().context("running cargo build")?.success() {
        bail!("building the components failed");
    }

    let wasm_dir = target_dir(&root)?.join(TARGET).join("release");
    let dist = root.join("dist");
    std::fs::create_dir_all(dist.join("components"))?;

    eprintln!("[2/2] composing {SOCKET} with {}", PLUGS.join(", "));
    let mut graph = CompositionGraph::new();
    let mut register = |name: &str| -> Result<_> {
        let file = wasm_dir.join(format!("{}.wasm", name.replace('-', "_")));
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        std::fs::write(dist.join("components").join(format!("{name}.wasm")), &bytes)?;
        let package = Package::from_bytes(&format!("copilot-jit:{name}"), None, bytes, graph.types_mut())?;
        Ok(graph.register_package(package)?)
    };
    let socket = register(SOCKET)?;
    let plugs = PLUGS.iter().map(|p| register(p)).collect::<Result<Vec<_>>>()?;
    wac_graph::plug(&mut graph, plugs, socket)?;
    let bytes = graph.encode(EncodeOptions::default())?;
    let out = dist.join("copilot-jit.wasm");
    std::fs::write(&out, &bytes)?;
    eprintln!("wrote {} ({} KiB)", out.display(), bytes.len() / 1024);
    Ok(())
}
