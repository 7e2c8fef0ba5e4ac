//! Least privilege, checked on the built artifacts: each component imports
//! only the host capabilities its role needs (DESIGN §2).

use copilot_jit_testkit::harness::workspace_root;
use std::collections::BTreeSet;
use wasmtime::component::Component;
use wasmtime::Engine;

/// Interfaces that grant a capability (storage, network, configuration,
/// files) or call another component. Everything else a Rust component may
/// import (clocks, random, stdio, streams) grants no capability.
fn is_capability(name: &str) -> bool {
    [
        "wasi:http/outgoing-handler",
        "wasi:keyvalue/",
        "wasi:config/",
        "wasi:filesystem/",
        "wasi:sockets/",
        "copilot-jit:",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

fn imports(engine: &Engine, file: &str) -> Vec<String> {
    let path = workspace_root().join("dist").join(file);
    let component = Component::from_file(engine, &path)
        .unwrap_or_else(|e| panic!("{} must be built first: {e}", path.display()));
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect()
}

fn capabilities(engine: &Engine, file: &str) -> BTreeSet<String> {
    imports(engine, file)
        .into_iter()
        .filter(|n| is_capability(n))
        .map(|n| n.split('@').next().unwrap_or(&n).to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn each_component_imports_only_its_capabilities() {
    let engine = Engine::default();
    let expected = [
        (
            "components/gateway.wasm",
            set(&[
                "wasi:http/outgoing-handler",
                "wasi:keyvalue/store",
                "wasi:keyvalue/atomics",
                "wasi:config/store",
                "copilot-jit:gateway/auth",
                "copilot-jit:gateway/grants",
                "copilot-jit:gateway/minter",
                "copilot-jit:gateway/masking",
                "copilot-jit:gateway/audit",
                "copilot-jit:gateway/types",
            ]),
        ),
        (
            "components/auth-validator.wasm",
            set(&[
                "wasi:http/outgoing-handler",
                "wasi:keyvalue/store",
                "wasi:config/store",
                "copilot-jit:gateway/types",
            ]),
        ),
        (
            "components/grant-store.wasm",
            set(&[
                "wasi:keyvalue/store",
                "wasi:keyvalue/atomics",
                "copilot-jit:gateway/types",
            ]),
        ),
        ("components/token-minter.wasm", set(&["wasi:config/store"])),
        ("components/masking-filter.wasm", set(&[])),
        (
            "components/audit-sink.wasm",
            set(&[
                "wasi:config/store",
                "wasi:keyvalue/store",
                "wasi:keyvalue/atomics",
                "wasi:http/outgoing-handler",
                "copilot-jit:gateway/types",
            ]),
        ),
    ];
    for (file, want) in expected {
        assert_eq!(
            capabilities(&engine, file),
            want,
            "{file} imports other capabilities than its role needs"
        );
    }
}

#[test]
fn masking_filter_imports_no_host_interface() {
    let engine = Engine::default();
    let host_imports: Vec<String> = imports(&engine, "components/masking-filter.wasm")
        .into_iter()
        .filter(|n| !n.starts_with("copilot-jit:"))
        .collect();
    assert!(
        host_imports.is_empty(),
        "masking-filter imports {host_imports:?}"
    );
}

#[test]
fn the_composed_artifact_needs_only_host_interfaces() {
    let engine = Engine::default();
    let all = capabilities(&engine, "copilot-jit.wasm");
    assert!(
        all.iter().all(|n| !n.starts_with("copilot-jit:")),
        "unplugged imports: {all:?}"
    );
    assert_eq!(
        all,
        set(&[
            "wasi:http/outgoing-handler",
            "wasi:keyvalue/store",
            "wasi:keyvalue/atomics",
            "wasi:config/store"
        ])
    );
    let names = imports(&engine, "copilot-jit.wasm");
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with("wasi:filesystem") && !n.starts_with("wasi:sockets")),
        "{names:?}"
    );
}
