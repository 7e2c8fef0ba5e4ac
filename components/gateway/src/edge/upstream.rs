//! The shared seat's Copilot token (service identities, and everyone under
//! `upstream_mode = "shared-seat"`): from the KV cache while it is fresh,
//! else exchanged with the gateway-held GitHub token. Its GitHub login is
//! `upstream_github_login`, else asked of GitHub (`/user`) at each exchange.

use copilot_jit_common::unix_now as now;
use copilot_jit_wasi::http::{Method, Request};

use super::copilot_jit::gateway::grants::{self, AccessRequest};
use super::wasi::keyvalue::store;
use super::wasi_http::settings;
use crate::config::Upstream;
use crate::error::{ApiError, ErrorKind};
use crate::upstream_token::{CachedToken, CACHE_KEY};
use crate::vault::{Owner, Purpose, VaultKeys, NONCE_LEN};

/// The associated data of the shared seat's sealed token.
const SHARED: Owner<'static> = Owner {
    issuer: "copilot-jit",
    subject: "shared-seat",
};

/// Largest token-endpoint answer read.
const MAX_ENVELOPE_BYTES: usize = 256 * 1024;

fn unavailable(detail: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorKind::UpstreamUnavailable,
        "the gateway could not obtain upstream access",
    )
    .detail(detail.to_string())
}

/// The Copilot token and the shared seat's login: the grant's copy of the
/// cached entry while it is fresh (no read beside the grant), else the KV
/// cache (then copied into the grant), else fresh from the token endpoint
/// — also when `force_refresh` (upstream refused the cached one).
pub(super) fn copilot_token(
    force_refresh: bool,
    grant: &AccessRequest,
) -> Result<(String, String), ApiError> {
    let settings = settings();
    // With a vault key the cached token is sealed like people's.
    let keys = settings.vault_keys().ok();
    if !force_refresh {
        let copy = grant.call_cache.shared_upstream.as_deref();
        if let Some(found) = copy.and_then(|c| usable(c.as_bytes(), keys.as_ref())) {
            return Ok(found);
        }
    }
    let bucket = store::open("default").map_err(|e| unavailable(format!("kv: {e:?}")))?;
    if !force_refresh {
        if let Some(bytes) = bucket.get(CACHE_KEY).ok().flatten() {
            if let Some(found) = usable(&bytes, keys.as_ref()) {
                copy_into(grant, &bytes);
                return Ok(found);
            }
        }
    }
    let github_token = settings.upstream_github_token().ok_or_else(|| {
        ApiError::new(
            ErrorKind::GatewayMisconfigured,
            "the gateway has no upstream credential configured",
        )
    })?;
    let url = format!(
        "{}/copilot_internal/v2/token",
        settings.upstream(Upstream::GitHubApi)
    );
    let response = Request::new(Method::Get, &url)
        .map(|r| {
            r.header("authorization", format!("token {github_token}"))
                .header("accept", "application/json")
                .header("user-agent", "copilot-jit/0.1")
        })
        .and_then(|r| r.send(None))
        .map_err(unavailable)?;
    let status = response.status();
    let body = response
        .read_body(MAX_ENVELOPE_BYTES)
        .map_err(unavailable)?;
    if status != 200 {
        return Err(unavailable(format!("token endpoint answered {status}")));
    }
    let mut entry = CachedToken::from_envelope(&body, now()).map_err(unavailable)?;
    entry.login = settings
        .upstream_github_login()
        .or_else(|| shared_login(&settings.upstream(Upstream::GitHubApi), &github_token));
    let mut stored = entry.clone();
    if let Some(keys) = &keys {
        let mut nonce = [0u8; NONCE_LEN];
        if getrandom::fill(&mut nonce).is_ok() {
            stored.sealed =
                Some(keys.seal_json(Purpose::SharedCopilotToken, SHARED, &entry.token, &nonce));
            stored.token.clear();
        }
    }
    if let Ok(bytes) = serde_json::to_vec(&stored) {
        // A failed cache write costs one more exchange later, nothing else.
        let _ = bucket.set(CACHE_KEY, &bytes);
        copy_into(grant, &bytes);
    }
    Ok((entry.token, entry.login.unwrap_or_default()))
}

/// The token and login of a cached entry (as KV holds it) while it is
/// fresh and can be opened.
fn usable(bytes: &[u8], keys: Option<&VaultKeys>) -> Option<(String, String)> {
    let cached: CachedToken = serde_json::from_slice(bytes).ok()?;
    if !cached.is_fresh(now()) {
        return None;
    }
    let token = match (&cached.sealed, keys) {
        (Some(sealed), Some(keys)) => keys
            .open_json::<String>(Purpose::SharedCopilotToken, SHARED, sealed)
            .ok()?,
        (None, _) if !cached.token.is_empty() => cached.token,
        _ => return None,
    };
    Some((token, cached.login.unwrap_or_default()))
}

/// Copies the cached entry into the grant, so that its next calls read
/// only the grant: one write per grant per token (about every 25 minutes).
/// A failed write costs one more read later, nothing else.
fn copy_into(grant: &AccessRequest, bytes: &[u8]) {
    let Ok(entry) = std::str::from_utf8(bytes) else {
        return;
    };
    if grant.call_cache.shared_upstream.as_deref() != Some(entry) {
        if let Err(e) = grants::keep_call_cache(&grant.id, Some(entry), None) {
            eprintln!("grant {}: upstream token not cached: {e:?}", grant.id);
        }
    }
}

/// The shared seat's login, from GitHub (`GET /user`); none if it cannot be had.
fn shared_login(api: &str, github_token: &str) -> Option<String> {
    let response = Request::new(Method::Get, &format!("{api}/user"))
        .map(|r| {
            r.header("authorization", format!("token {github_token}"))
                .header("accept", "application/json")
                .header("user-agent", "copilot-jit/0.1")
        })
        .and_then(|r| r.send(None))
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    let body = response.read_body(MAX_ENVELOPE_BYTES).ok()?;
    crate::seat::github_user(&body).map(|(login, _)| login)
}
