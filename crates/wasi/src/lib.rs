//! The host calls several components make, written once: reading Spin
//! variables (`config`) and sending outgoing wasi:http requests (`http`).
//!
//! A component imports only what it calls: the component model drops the
//! imports a component never uses, so linking this crate for `config` alone
//! (the token-minter) adds no HTTP import (`tests/tests/component_imports.rs`
//! checks each built component).
//!
//! A component that calls out generates its bindings with
//! [`bindings_with_http!`], which maps its wasi:http, wasi:io and
//! wasi:config imports onto this crate's types, so the shared client and the
//! component speak one set of types. A component that only reads variables
//! (the token-minter) maps just `config::store` itself.

pub mod config;
pub mod http;

/// wasi:io 0.2.12, for `with` mappings.
pub mod io {
    pub use wasip2::io::{error, poll, streams};
}

/// wasi:clocks 0.2.12, for `with` mappings.
pub mod clocks {
    pub use wasip2::clocks::monotonic_clock;
}

/// `wit_bindgen::generate!` for `world` in `wit/` (the component's crate is
/// in `components/`), with the interfaces this crate serves mapped onto its
/// types; everything else the world names is generated as usual.
#[macro_export]
macro_rules! bindings_with_http {
    ($world:tt) => {
        wit_bindgen::generate!({
            path: "../../wit",
            world: $world,
            with: {
                "wasi:config/store@0.2.0-draft-2024-09-27": ::copilot_jit_wasi::config::store,
                "wasi:http/types@0.2.12": ::copilot_jit_wasi::http::types,
                "wasi:http/outgoing-handler@0.2.12": ::copilot_jit_wasi::http::outgoing_handler,
                "wasi:io/error@0.2.12": ::copilot_jit_wasi::io::error,
                "wasi:io/poll@0.2.12": ::copilot_jit_wasi::io::poll,
                "wasi:io/streams@0.2.12": ::copilot_jit_wasi::io::streams,
                "wasi:clocks/monotonic-clock@0.2.12": ::copilot_jit_wasi::clocks::monotonic_clock,
            },
            generate_all,
        });
    };
}
