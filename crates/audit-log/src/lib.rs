//! What an audit record is and how it is kept: the signed record
//! (`record`), where it lives in object storage (`layout`), how requests to
//! that storage are signed (`sigv4`), the RFC 6962 tree over the records
//! (`merkle`) stored as C2SP tiles (`tiles`) under signed checkpoints
//! (`checkpoint`), the sealer that grows it (`seal`) and the verifier that
//! checks it (`verify`), over any object store (`store`). Pure Rust:
//! audit-sink uses it inside the component, the `copilot-jit` CLI natively.

pub mod checkpoint;
pub mod layout;
pub mod merkle;
pub mod record;
pub mod seal;
pub mod sigv4;
pub mod store;
pub mod tiles;
pub mod time;
pub mod verify;
