//! Signing a person in at the organisation's IdP from the gateway's pages:
//! OpenID Connect authorization code flow with PKCE (S256), `state` bound
//! to the browser that started it, `nonce` checked in the ID token; the
//! gateway is a confidential client. Then a browser session (cookie) for
//! the pages, with a CSRF token for every form.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::signin::sha256_hex;

/// A login at the IdP must finish within this (VS Code waits 120 s for the
/// whole device flow; people may be slower on other clients).
pub const LOGIN_TTL_SECS: u64 = 600;
/// A browser session on the pages: a working day.
pub const WEB_SESSION_TTL_SECS: u64 = 10 * 3600;
pub const SESSION_COOKIE: &str = "cjit_session";
/// Names the browser that started a login, so a `state` from another
/// browser (login CSRF, a stolen callback URL) is refused.
pub const LOGIN_COOKIE: &str = "cjit_login";
/// Before sign-in: the double-submit token of the code-entry form.
pub const FORM_COOKIE: &str = "cjit_form";
pub const CALLBACK_PATH: &str = "/login/callback";
/// Bounds on callback parameters (a longer value is refused, not cut).
const MAX_CODE: usize = 2048;
const STATE_LEN: usize = 64;
pub const SCOPES: &str = "openid email profile groups";

/// One login in flight, stored under its `state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    /// The device code's user code the person typed, if any.
    pub user_code: Option<String>,
    pub nonce: String,
    pub verifier: String,
    /// SHA-256 of the login cookie's value.
    pub browser: String,
    pub expires_at: u64,
    /// Where to go once signed in (a path on the gateway only).
    pub then: String,
}

/// A browser session on the pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebSession {
    pub principal: Value,
    pub csrf: String,
    pub created_at: u64,
    pub expires_at: u64,
}

pub fn login_key(state: &str) -> String {
    format!("login-state:{}", sha256_hex(state))
}

pub fn session_key(cookie_value: &str) -> String {
    format!("web-session:{}", sha256_hex(cookie_value))
}

/// RFC 7636 S256.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// `application/x-www-form-urlencoded` / query component encoding.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn encode_pairs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub struct AuthorizeAsk<'a> {
    pub endpoint: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub state: &'a str,
    pub nonce: &'a str,
    pub verifier: &'a str,
}

/// The IdP's authorization URL for one login.
pub fn authorize_url(a: &AuthorizeAsk) -> String {
    let query = encode_pairs(&[
        ("response_type", "code"),
        ("client_id", a.client_id),
        ("redirect_uri", a.redirect_uri),
        ("scope", SCOPES),
        ("state", a.state),
        ("nonce", a.nonce),
        ("code_challenge", &pkce_challenge(a.verifier)),
        ("code_challenge_method", "S256"),
    ]);
    let sep = if a.endpoint.contains('?') { '&' } else { '?' };
    format!("{}{sep}{query}", a.endpoint)
}

/// The token request's body (the client authenticates with HTTP Basic).
pub fn token_form(code: &str, redirect_uri: &str, verifier: &str) -> String {
    encode_pairs(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ])
}

/// RFC 6749 §2.3.1: id and secret form-encoded, then Basic.
pub fn basic_auth(client_id: &str, secret: &str) -> String {
    let pair = format!("{}:{}", percent_encode(client_id), percent_encode(secret));
    format!("Basic {}", STANDARD.encode(pair))
}

/// Why a callback is refused (each a readable page, never a 500).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackRefusal {
    /// The IdP answered with an error (the person cancelled, …).
    IdpError,
    Malformed,
    /// Unknown, used or expired `state`.
    UnknownState,
    /// The `state` was started in another browser.
    OtherBrowser,
    /// The ID token's `nonce` is not this login's.
    NonceMismatch,
}

impl CallbackRefusal {
    pub fn message(self) -> &'static str {
        match self {
            CallbackRefusal::IdpError => "The identity provider did not sign you in.",
            CallbackRefusal::Malformed => "This sign-in link is malformed.",
            CallbackRefusal::UnknownState => {
                "This sign-in link has expired or was already used. Start again."
            }
            CallbackRefusal::OtherBrowser => {
                "This sign-in was started in another browser. Start again here."
            }
            CallbackRefusal::NonceMismatch => {
                "The identity provider's answer does not belong to this sign-in."
            }
        }
    }
}

/// The callback's `code` and `state`, checked for shape.
pub fn callback_params(
    code: Option<&str>,
    state: Option<&str>,
    error: Option<&str>,
) -> Result<(String, String), CallbackRefusal> {
    if error.is_some() {
        return Err(CallbackRefusal::IdpError);
    }
    let (Some(code), Some(state)) = (code, state) else {
        return Err(CallbackRefusal::Malformed);
    };
    let state_ok = state.len() == STATE_LEN && state.bytes().all(|b| b.is_ascii_hexdigit());
    let code_ok = !code.is_empty() && code.len() <= MAX_CODE && !code.chars().any(char::is_control);
    if state_ok && code_ok {
        Ok((code.to_string(), state.to_string()))
    } else {
        Err(CallbackRefusal::Malformed)
    }
}

/// The stored login for a callback: live, and from this browser.
pub fn check_login(
    login: Option<LoginState>,
    browser_cookie: Option<&str>,
    now: u64,
) -> Result<LoginState, CallbackRefusal> {
    let login = login.ok_or(CallbackRefusal::UnknownState)?;
    if now >= login.expires_at {
        return Err(CallbackRefusal::UnknownState);
    }
    match browser_cookie {
        Some(c) if sha256_hex(c) == login.browser => Ok(login),
        _ => Err(CallbackRefusal::OtherBrowser),
    }
}

/// The ID token's `nonce` claim must be this login's.
pub fn nonce_matches(claims_json: &str, nonce: &str) -> bool {
    serde_json::from_str::<Value>(claims_json)
        .ok()
        .and_then(|c| c.get("nonce").and_then(Value::as_str).map(|n| n == nonce))
        .unwrap_or(false)
}

/// Only a path on the gateway itself may follow a login (no open redirect).
pub fn safe_then(then: Option<&str>) -> String {
    match then {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && p.len() <= 512
                && !p.chars().any(char::is_control) =>
        {
            p.to_string()
        }
        _ => "/access".to_string(),
    }
}

/// A cookie's value from the `cookie` header.
pub fn cookie(header: Option<&str>, name: &str) -> Option<String> {
    header?
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty() && v.len() <= 256)
}

/// `Secure` is left off only for plain-HTTP loopback development.
pub fn secure_cookies(public_url: &str) -> bool {
    !(public_url.starts_with("http://127.0.0.1")
        || public_url.starts_with("http://localhost")
        || public_url.starts_with("http://[::1]"))
}

pub fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )
}

pub fn clear_cookie(name: &str, secure: bool) -> String {
    set_cookie(name, "", 0, secure)
}

/// Constant-time comparison for CSRF tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorize_url_carries_state_nonce_and_s256() {
        let url = authorize_url(&AuthorizeAsk {
            endpoint: "https://idp/auth",
            client_id: "copilot-jit",
            redirect_uri: "https://gw/login/callback",
            state: "s1",
            nonce: "n1",
            verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        });
        assert!(url.starts_with("https://idp/auth?response_type=code&client_id=copilot-jit"));
        assert!(url.contains("redirect_uri=https%3A%2F%2Fgw%2Flogin%2Fcallback"));
        assert!(url.contains("scope=openid%20email%20profile%20groups"));
        // RFC 7636 appendix B.
        assert!(url.contains("code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(url.contains("code_challenge_method=S256&") || url.ends_with("S256"));
        assert!(url.contains("state=s1") && url.contains("nonce=n1"));
    }

    #[test]
    fn the_token_request_is_a_form_with_basic_auth() {
        assert_eq!(
            token_form("c/1", "https://gw/cb", "v"),
            "grant_type=authorization_code&code=c%2F1&redirect_uri=https%3A%2F%2Fgw%2Fcb&code_verifier=v"
        );
        assert_eq!(
            basic_auth("a", "b:c"),
            format!("Basic {}", STANDARD.encode("a:b%3Ac"))
        );
    }

    #[test]
    fn callbacks_are_checked_for_shape_state_browser_and_nonce() {
        let state = "a".repeat(64);
        assert_eq!(
            callback_params(None, None, Some("access_denied")),
            Err(CallbackRefusal::IdpError)
        );
        assert_eq!(
            callback_params(Some("c"), Some("short"), None),
            Err(CallbackRefusal::Malformed)
        );
        assert_eq!(
            callback_params(Some(&"c".repeat(5000)), Some(&state), None),
            Err(CallbackRefusal::Malformed)
        );
        assert!(callback_params(Some("code"), Some(&state), None).is_ok());
        let login = LoginState {
            user_code: None,
            nonce: "n".into(),
            verifier: "v".into(),
            browser: sha256_hex("browser-1"),
            expires_at: 100,
            then: "/access".into(),
        };
        assert_eq!(
            check_login(None, Some("browser-1"), 0),
            Err(CallbackRefusal::UnknownState)
        );
        assert_eq!(
            check_login(Some(login.clone()), Some("browser-2"), 0),
            Err(CallbackRefusal::OtherBrowser)
        );
        assert_eq!(
            check_login(Some(login.clone()), None, 0),
            Err(CallbackRefusal::OtherBrowser)
        );
        assert_eq!(
            check_login(Some(login.clone()), Some("browser-1"), 100),
            Err(CallbackRefusal::UnknownState)
        );
        assert!(check_login(Some(login), Some("browser-1"), 99).is_ok());
        assert!(nonce_matches(r#"{"nonce":"n1"}"#, "n1"));
        assert!(!nonce_matches(r#"{"nonce":"n2"}"#, "n1"));
        assert!(!nonce_matches("{}", "n1"));
    }

    #[test]
    fn only_local_paths_follow_a_login() {
        assert_eq!(safe_then(Some("/access?x=1")), "/access?x=1");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil",
            "evil",
            "/a\nb",
        ] {
            assert_eq!(safe_then(Some(bad)), "/access", "{bad}");
        }
        assert_eq!(safe_then(None), "/access");
    }

    #[test]
    fn cookies_are_read_and_set_strictly() {
        let h = Some("a=1; cjit_session=abc; b=");
        assert_eq!(cookie(h, "cjit_session").as_deref(), Some("abc"));
        assert_eq!(cookie(h, "b"), None);
        assert_eq!(cookie(None, "a"), None);
        let c = set_cookie("cjit_session", "v", 60, true);
        assert_eq!(
            c,
            "cjit_session=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(secure_cookies("https://gw.example"));
        assert!(secure_cookies("http://gw.example"));
        assert!(!secure_cookies("http://127.0.0.1:3000"));
        assert!(same_token("abc", "abc") && !same_token("abc", "abd") && !same_token("a", "ab"));
    }
}
