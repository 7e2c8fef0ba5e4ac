//! Sets the stack of this component's instance (`STACK_BYTES`).

/// The stack this component's deepest path needs, with room to spare
/// (tests/tests/deep_paths.rs drives those paths; a stack too small traps). A
/// record with hundreds of findings, and sealing, ran in 16 KiB. Not Rust's
/// default 1 MiB: Spin rewrites each memory's first 2 MiB when a request's
/// instance is released, so every byte of stack is reset on every request.
const STACK_BYTES: u32 = 64 * 1024;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=-zstack-size={STACK_BYTES}");
    }
}
