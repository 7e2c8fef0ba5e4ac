//! The gateway component: routing, the access API, the Copilot protocol and
//! the upstream call. Every decision lives in the plain modules below and is
//! tested on the host; `edge`, compiled for wasm only, does the wasi:http,
//! KV and component calls and nothing it would need a test for.

pub mod ask;
pub mod body;
pub mod config;
pub mod content;
pub mod copilot;
pub mod copilot_call;
pub mod device_flow;
pub mod error;
pub mod findings;
pub mod group_age;
pub mod headers;
pub mod outcome;
pub mod pages;
pub mod routes;
pub mod seat;
pub mod signin;
pub mod slack;
pub mod sse;
pub mod token_answers;
pub mod typed_sse;
pub mod upstream_token;
pub mod vault;
pub mod web_login;

#[cfg(target_arch = "wasm32")]
mod edge;
