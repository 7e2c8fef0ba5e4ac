//! The audit-sink component: turns each interaction into an OCSF API
//! Activity record, hashes and signs it (`copilot-jit-audit-log`), and writes
//! it as one object to an S3-compatible bucket — no shared state, no KV
//! write on a healthy call. When the bucket is down or slow the record waits
//! in a bounded KV spool and ships later; without a bucket configured
//! records stay in KV (local development). A sealer, on a schedule, grows
//! the Merkle tree over the records and signs checkpoints.

pub mod claim;
pub mod exchange;
pub mod lease;
pub mod ocsf;
pub mod spool;
pub mod trail;

#[cfg(target_arch = "wasm32")]
mod edge;
