//! The pieces of the `copilot-jit` command line: the people's commands
//! (sign-in, access requests, approvals, client settings) against a
//! gateway, and reading and verifying an audit trail.

pub mod access;
pub mod approvals;
pub mod args;
pub mod audit;
pub mod configure;
pub mod context;
pub mod credentials;
pub mod error;
pub mod gateway;
pub mod help;
pub mod keyring;
pub mod output;
pub mod s3;
pub mod session;
pub mod trail;
