//! The gateway component: routing, the access API, the Copilot protocol and
//! the upstream call. Pure logic in the modules below; the wasi:http edge in
//! `edge`, compiled for wasm only.

pub mod content;
pub mod copilot;
pub mod policy;
pub mod routes;
pub mod sse;
pub mod typed_sse;

#[cfg(target_arch = "wasm32")]
mod edge;
