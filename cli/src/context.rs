//! What every command starts from: which gateway, and the sign-in there.

use crate::args::Parsed;
use crate::credentials::{self, Login};
use crate::error::{CliError, Result};
use crate::gateway::{normalize_url, Gateway, DEFAULT_GATEWAY};

/// `--gateway`, else `COPILOT_JIT_GATEWAY`, else the signed-in gateway,
/// else the local development gateway.
pub fn gateway_url(parsed: &Parsed) -> Result<String> {
    if let Some(url) = parsed.value("--gateway") {
        return normalize_url(url);
    }
    if let Ok(url) = std::env::var("COPILOT_JIT_GATEWAY") {
        if !url.trim().is_empty() {
            return normalize_url(&url);
        }
    }
    if let Some(login) = credentials::current()? {
        return Ok(login.gateway);
    }
    Ok(DEFAULT_GATEWAY.to_string())
}

/// A signed-in person at their gateway.
pub struct Session {
    pub gateway: Gateway,
    pub login: Login,
    pub credential: String,
}

pub fn signed_in(parsed: &Parsed) -> Result<Session> {
    let url = gateway_url(parsed)?;
    let login = credentials::current()?.ok_or_else(|| {
        CliError::not_signed_in(format!(
            "not signed in: run `copilot-jit login --gateway {url}`"
        ))
    })?;
    if login.gateway != url {
        return Err(CliError::not_signed_in(format!(
            "signed in at {}, not {url}: run `copilot-jit login --gateway {url}`",
            login.gateway
        )));
    }
    let credential = credentials::secret(&login)?;
    Ok(Session {
        gateway: Gateway::new(&url, Some(credential.clone())),
        login,
        credential,
    })
}
