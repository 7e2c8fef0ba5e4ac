//! What an audit record is and how it is kept: the signed, hash-chained
//! record (`record`), where it lives in object storage (`layout`), how
//! requests to that storage are signed (`sigv4`), and how a trail is checked
//! (`verify`). Pure Rust: audit-sink uses it inside the component, the
//! `copilot-jit` CLI natively.

pub mod layout;
pub mod record;
pub mod sigv4;
pub mod time;
pub mod verify;
