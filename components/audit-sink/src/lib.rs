//! The audit-sink component: turns each interaction into an OCSF API
//! Activity record, signs and chains it (`copilot-jit-audit-log`), and ships
//! it to an S3-compatible bucket. When the bucket is down or slow the record
//! waits in a bounded KV spool and ships later; without a bucket configured
//! records stay in KV (local development).

pub mod claim;
pub mod exchange;
pub mod ocsf;
pub mod trail;

#[cfg(target_arch = "wasm32")]
mod bindings;
