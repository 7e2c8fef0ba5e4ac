//! The pieces of the `copilot-jit` command line: reading an audit trail from
//! an S3-compatible bucket or a directory, and verifying it.

pub mod s3;
pub mod trail;
