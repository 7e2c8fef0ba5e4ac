//! Test kit for copilot-jit: a wasi:http host that runs the composed artifact
//! with Spin's interface versions, a mock Copilot upstream and a dev OIDC
//! issuer. Used by the end-to-end tests and by `copilot-jit-dev`.

pub mod artifact_shape;
pub mod browser;
pub mod connect_proxy;
pub mod dev_issuer;
pub mod footprint;
pub mod garage;
pub mod harness;
pub mod host;
pub mod kv;
pub mod language_server;
pub mod login_provider;
pub mod manifest;
pub mod masking_bench;
pub mod mock_github;
pub mod mock_upstream;
pub mod scenarios;
pub mod seats;
pub mod serve;
pub mod tls;
pub mod webdriver;
pub mod webhook;

/// Percent-encodes a query component (for redirects the mocks build).
pub fn web_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
