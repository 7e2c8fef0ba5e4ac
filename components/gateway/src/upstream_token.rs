//! A Copilot token from the token endpoint (the shared seat's, or a
//! person's own): when a cached one is still good, and when a fresh one must
//! be fetched.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// KV key of the cached token.
pub const CACHE_KEY: &str = "upstream:copilot-token";
/// Refresh after this many seconds when the envelope names no `refresh_in`.
const DEFAULT_REFRESH_IN: u64 = 300;
/// Never use a token within this many seconds of its expiry.
const EXPIRY_MARGIN: u64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedToken {
    pub token: String,
    pub refresh_at: u64,
    /// The GitHub login of the shared seat, named in audit records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// The token sealed (`vault`), when a vault key is set; `token` is
    /// then empty in the stored entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<crate::vault::Sealed>,
}

/// Why a token endpoint's answer gave no token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeError {
    NotJson(String),
    NoToken,
}

impl std::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvelopeError::NotJson(e) => write!(f, "token envelope: {e}"),
            EnvelopeError::NoToken => write!(f, "token envelope has no token"),
        }
    }
}

impl CachedToken {
    pub fn is_fresh(&self, now: u64) -> bool {
        now < self.refresh_at
    }

    /// The token from a token endpoint's envelope, refreshed at
    /// `refresh_in`, and in any case a minute before it expires.
    pub fn from_envelope(body: &[u8], now: u64) -> Result<CachedToken, EnvelopeError> {
        let envelope: Value =
            serde_json::from_slice(body).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
        let token = envelope["token"].as_str().ok_or(EnvelopeError::NoToken)?;
        let refresh_in = envelope["refresh_in"]
            .as_u64()
            .unwrap_or(DEFAULT_REFRESH_IN);
        let refresh_at = now.saturating_add(refresh_in);
        let expires_at = envelope["expires_at"].as_u64().unwrap_or(refresh_at);
        Ok(CachedToken {
            token: token.to_string(),
            refresh_at: refresh_at.min(expires_at.saturating_sub(EXPIRY_MARGIN)),
            login: None,
            sealed: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(body: serde_json::Value, now: u64) -> CachedToken {
        CachedToken::from_envelope(body.to_string().as_bytes(), now).unwrap()
    }

    #[test]
    fn a_token_is_refreshed_at_refresh_in() {
        let t = cached(
            serde_json::json!({"token": "tid=1", "refresh_in": 1500, "expires_at": 1000 + 1800}),
            1000,
        );
        assert_eq!(t.token, "tid=1");
        assert_eq!(t.refresh_at, 2500);
        assert!(t.is_fresh(2499));
        assert!(!t.is_fresh(2500));
    }

    #[test]
    fn a_token_is_never_used_in_its_last_minute() {
        let t = cached(
            serde_json::json!({"token": "t", "refresh_in": 1500, "expires_at": 1100}),
            1000,
        );
        assert_eq!(t.refresh_at, 1040);
        // Already inside the margin: stale at once, so the next call refreshes.
        let t = cached(
            serde_json::json!({"token": "t", "refresh_in": 1500, "expires_at": 1030}),
            1000,
        );
        assert!(!t.is_fresh(1000));
    }

    #[test]
    fn without_timings_five_minutes_less_the_margin() {
        let t = cached(serde_json::json!({"token": "t"}), 1000);
        assert_eq!(t.refresh_at, 1000 + 300 - 60);
    }

    #[test]
    fn an_answer_without_a_token_is_an_error() {
        assert_eq!(
            CachedToken::from_envelope(br#"{"refresh_in": 5}"#, 0),
            Err(EnvelopeError::NoToken)
        );
        assert!(matches!(
            CachedToken::from_envelope(b"<html>", 0),
            Err(EnvelopeError::NotJson(_))
        ));
    }
}
