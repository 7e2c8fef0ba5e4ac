//! The OAuth device flow (RFC 8628) as GitHub serves it, which every Copilot
//! client already speaks: codes, their life, and what a poll answers. The
//! state of one device code is a small record kept by compare-and-swap at
//! the edge; every decision about it is made here.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::routes::{query_params, Query};

pub const DEVICE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// How long a person has to enter the code and sign in at the IdP.
pub const DEVICE_CODE_TTL_SECS: u64 = 900;
/// The poll interval clients are told (GitHub's default).
pub const POLL_INTERVAL_SECS: u64 = 5;
/// RFC 8628 §3.5: each `slow_down` adds five seconds.
const SLOW_DOWN_STEP_SECS: u64 = 5;
/// The consonants of RFC 8628 §6.1's example: no vowels (no words), no
/// look-alikes, case-insensitive.
const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LEN: usize = 8;
/// Bounds on what a client may send (a longer value is refused, not cut).
pub const MAX_CLIENT_ID: usize = 128;
pub const MAX_SCOPE: usize = 512;
const MAX_DEVICE_CODE: usize = 128;

/// OAuth errors of the device flow, as GitHub names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceError {
    AuthorizationPending,
    SlowDown,
    ExpiredToken,
    AccessDenied,
    /// Unknown, malformed or already used device code.
    InvalidGrant,
    UnsupportedGrantType,
    InvalidRequest,
}

impl DeviceError {
    pub fn code(self) -> &'static str {
        match self {
            DeviceError::AuthorizationPending => "authorization_pending",
            DeviceError::SlowDown => "slow_down",
            DeviceError::ExpiredToken => "expired_token",
            DeviceError::AccessDenied => "access_denied",
            DeviceError::InvalidGrant => "invalid_grant",
            DeviceError::UnsupportedGrantType => "unsupported_grant_type",
            DeviceError::InvalidRequest => "invalid_request",
        }
    }

    fn description(self) -> &'static str {
        match self {
            DeviceError::AuthorizationPending => {
                "the code has not been entered and signed in to yet"
            }
            DeviceError::SlowDown => "polling too fast; wait the interval given",
            DeviceError::ExpiredToken => "the device code expired; start signing in again",
            DeviceError::AccessDenied => "signing in was refused",
            DeviceError::InvalidGrant => "the device code is unknown or was already used",
            DeviceError::UnsupportedGrantType => {
                "grant_type must be urn:ietf:params:oauth:grant-type:device_code"
            }
            DeviceError::InvalidRequest => "a required parameter is missing or too long",
        }
    }

    /// GitHub answers device-flow errors with 200 and an `error` member, and
    /// clients are written against that; malformed requests get 400.
    pub fn status(self) -> u16 {
        match self {
            DeviceError::UnsupportedGrantType | DeviceError::InvalidRequest => 400,
            _ => 200,
        }
    }

    pub fn body(self, interval: Option<u64>) -> Value {
        let mut body = json!({
            "error": self.code(),
            "error_description": self.description(),
            "error_uri": "https://docs.github.com/developers/apps/authorizing-oauth-apps#error-codes-for-the-device-flow",
        });
        if let Some(i) = interval {
            body["interval"] = json!(i);
        }
        body
    }
}

/// The OAuth parameters of a request, wherever the client put them: the
/// query string (VS Code, no body), a form body (the Copilot CLI) or JSON.
/// Body values win over query values of the same name.
pub fn oauth_params(path_with_query: &str, content_type: Option<&str>, body: &[u8]) -> Query {
    let mut params = query_params(path_with_query).0;
    let from_body = match content_type {
        Some(t) if t.trim_start().starts_with("application/json") => {
            serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .map(|o| {
                    o.into_iter()
                        .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
                        .collect()
                })
                .unwrap_or_default()
        }
        _ if body.is_empty() => Vec::new(),
        _ => query_params(&format!("?{}", String::from_utf8_lossy(body))).0,
    };
    for (k, v) in from_body.into_iter().rev() {
        params.insert(0, (k, v));
    }
    Query(params)
}

/// What `POST /login/device/code` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeAsk {
    pub client_id: String,
    pub scope: String,
}

/// Any client id is accepted (each editor has its own OAuth app) and recorded.
pub fn code_ask(params: &Query) -> Result<CodeAsk, DeviceError> {
    let client_id = params.get("client_id").unwrap_or_default();
    let scope = params.get("scope").unwrap_or_default();
    if client_id.len() > MAX_CLIENT_ID || scope.len() > MAX_SCOPE || !printable(&client_id) {
        return Err(DeviceError::InvalidRequest);
    }
    Ok(CodeAsk { client_id, scope })
}

/// What `POST /login/oauth/access_token` carries: the device code.
pub fn poll_ask(params: &Query) -> Result<String, DeviceError> {
    if params.get("grant_type").as_deref() != Some(DEVICE_GRANT_TYPE) {
        return Err(DeviceError::UnsupportedGrantType);
    }
    match params.get("device_code") {
        Some(c) if !c.is_empty() && c.len() <= MAX_DEVICE_CODE => Ok(c),
        _ => Err(DeviceError::InvalidRequest),
    }
}

fn printable(s: &str) -> bool {
    s.chars().all(|c| !c.is_control())
}

/// A user code from random bytes: `BCDF-GHJK` (20^8 ≈ 2^34.6 codes; each
/// lives 15 minutes and binding needs the person's own IdP sign-in).
pub fn user_code_from(random: &[u8; USER_CODE_LEN]) -> String {
    let chars: String = random
        .iter()
        .map(|b| USER_CODE_ALPHABET[usize::from(*b) % USER_CODE_ALPHABET.len()] as char)
        .collect();
    format!("{}-{}", &chars[..4], &chars[4..])
}

/// A code as a person typed it (any case, with or without the dash or
/// spaces), in its canonical form; `None` if it cannot be one of ours.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    if typed.len() > 32 {
        return None;
    }
    let chars: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let ours =
        chars.len() == USER_CODE_LEN && chars.bytes().all(|b| USER_CODE_ALPHABET.contains(&b));
    ours.then(|| format!("{}-{}", &chars[..4], &chars[4..]))
}

/// Store keys: the device code only as a hash (a leaked store does not let
/// anyone poll), the user code as typed into the page.
pub fn device_key(device_code: &str) -> String {
    format!("device-code:{}", crate::signin::sha256_hex(device_code))
}

pub fn user_code_key(user_code: &str) -> String {
    format!("user-code:{user_code}")
}

/// One device code's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceGrant {
    pub user_code: String,
    pub client_id: String,
    pub scope: String,
    pub created_at: u64,
    pub expires_at: u64,
    pub interval: u64,
    #[serde(default)]
    pub last_poll_at: Option<u64>,
    pub state: DeviceState,
    /// The last writer's id: keeps each written value unique (cas.rs).
    #[serde(default)]
    pub writer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeviceState {
    Pending,
    /// A person signed in at the IdP and took the code.
    Bound {
        principal: Value,
        bound_at: u64,
    },
    /// The person refused it on the page.
    Denied,
    /// The device got its credential; the code is spent.
    Redeemed {
        at: u64,
    },
}

impl DeviceGrant {
    pub fn new(ask: CodeAsk, user_code: String, now: u64) -> DeviceGrant {
        DeviceGrant {
            user_code,
            client_id: ask.client_id,
            scope: ask.scope,
            created_at: now,
            expires_at: now + DEVICE_CODE_TTL_SECS,
            interval: POLL_INTERVAL_SECS,
            last_poll_at: None,
            state: DeviceState::Pending,
            writer: String::new(),
        }
    }

    pub fn expired(&self, now: u64) -> bool {
        now >= self.expires_at
    }
}

/// `POST /login/device/code`'s answer.
pub fn code_answer(
    grant: &DeviceGrant,
    device_code: &str,
    verification_uri: &str,
    now: u64,
) -> Value {
    json!({
        "device_code": device_code,
        "user_code": grant.user_code,
        "verification_uri": verification_uri,
        "verification_uri_complete": format!("{verification_uri}?user_code={}", grant.user_code),
        "expires_in": grant.expires_at.saturating_sub(now),
        "interval": grant.interval,
    })
}

/// What one poll does to the record and answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Poll {
    /// Answer the error; store `next` (the poll time, a longer interval).
    Refuse(DeviceError, DeviceGrant),
    /// Issue a credential to `principal`; store the spent record.
    Redeem { principal: Value, next: DeviceGrant },
    /// Answer the error and store nothing.
    Final(DeviceError),
}

pub fn poll(grant: &DeviceGrant, now: u64) -> Poll {
    if matches!(grant.state, DeviceState::Redeemed { .. }) {
        return Poll::Final(DeviceError::InvalidGrant);
    }
    if grant.expired(now) {
        return Poll::Final(DeviceError::ExpiredToken);
    }
    let mut next = grant.clone();
    next.last_poll_at = Some(now);
    match &grant.state {
        DeviceState::Denied => Poll::Final(DeviceError::AccessDenied),
        DeviceState::Bound { principal, .. } => {
            next.state = DeviceState::Redeemed { at: now };
            Poll::Redeem {
                principal: principal.clone(),
                next,
            }
        }
        DeviceState::Pending | DeviceState::Redeemed { .. } => {
            let too_soon = grant
                .last_poll_at
                .is_some_and(|last| now.saturating_sub(last) < grant.interval);
            if too_soon {
                next.interval = grant.interval + SLOW_DOWN_STEP_SECS;
                Poll::Refuse(DeviceError::SlowDown, next)
            } else {
                Poll::Refuse(DeviceError::AuthorizationPending, next)
            }
        }
    }
}

/// Why a person cannot take a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindRefusal {
    Expired,
    /// Someone (maybe the same person) already took or refused it.
    AlreadyUsed,
}

impl BindRefusal {
    pub fn message(self) -> &'static str {
        match self {
            BindRefusal::Expired => "this code has expired; start signing in again on your device",
            BindRefusal::AlreadyUsed => {
                "this code was already used; start signing in again on your device"
            }
        }
    }
}

/// The person (`principal`, as stored) takes the code, or refuses it.
pub fn bind(
    grant: &DeviceGrant,
    principal: Option<Value>,
    now: u64,
) -> Result<DeviceGrant, BindRefusal> {
    if grant.state != DeviceState::Pending {
        return Err(BindRefusal::AlreadyUsed);
    }
    if grant.expired(now) {
        return Err(BindRefusal::Expired);
    }
    let mut next = grant.clone();
    next.state = match principal {
        Some(principal) => DeviceState::Bound {
            principal,
            bound_at: now,
        },
        None => DeviceState::Denied,
    };
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> DeviceGrant {
        DeviceGrant::new(
            CodeAsk {
                client_id: "01ab8ac9400c4e429b23".into(),
                scope: "read:user".into(),
            },
            "BCDF-GHJK".into(),
            1000,
        )
    }

    #[test]
    fn parameters_come_from_the_query_a_form_or_json() {
        let vscode = oauth_params(
            "/login/device/code?client_id=01ab&scope=read%3Auser+user%3Aemail",
            None,
            b"",
        );
        assert_eq!(
            code_ask(&vscode).unwrap(),
            CodeAsk {
                client_id: "01ab".into(),
                scope: "read:user user:email".into()
            }
        );
        let cli = oauth_params(
            "/login/device/code",
            Some("application/x-www-form-urlencoded"),
            b"client_id=Ov23ctDVkRmgkPke0Mmm&scope=read%3Auser%2Crepo",
        );
        assert_eq!(code_ask(&cli).unwrap().scope, "read:user,repo");
        let json = oauth_params(
            "/login/oauth/access_token?device_code=fromquery",
            Some("application/json; charset=utf-8"),
            br#"{"device_code":"frombody","grant_type":"urn:ietf:params:oauth:grant-type:device_code"}"#,
        );
        assert_eq!(poll_ask(&json).unwrap(), "frombody");
    }

    #[test]
    fn bad_parameters_are_refused_clearly() {
        let q = |s: &str| oauth_params(s, None, b"");
        let long = format!("/x?client_id={}", "a".repeat(MAX_CLIENT_ID + 1));
        assert_eq!(code_ask(&q(&long)), Err(DeviceError::InvalidRequest));
        assert_eq!(
            code_ask(&q("/x?client_id=a%0Ab")),
            Err(DeviceError::InvalidRequest)
        );
        assert_eq!(
            poll_ask(&q("/x?device_code=abc&grant_type=password")),
            Err(DeviceError::UnsupportedGrantType)
        );
        let huge = format!(
            "/x?grant_type={DEVICE_GRANT_TYPE}&device_code={}",
            "f".repeat(4096)
        );
        assert_eq!(poll_ask(&q(&huge)), Err(DeviceError::InvalidRequest));
        assert_eq!(DeviceError::InvalidRequest.status(), 400);
        assert_eq!(DeviceError::AuthorizationPending.status(), 200);
        assert_eq!(DeviceError::SlowDown.body(Some(10))["interval"], json!(10));
    }

    #[test]
    fn user_codes_are_short_unambiguous_and_typed_loosely() {
        let code = user_code_from(&[0, 1, 2, 3, 19, 20, 255, 7]);
        assert_eq!(code, "BCDF-ZBTK");
        assert_eq!(
            normalize_user_code("bcdf zbpj").as_deref(),
            Some("BCDF-ZBPJ")
        );
        assert_eq!(
            normalize_user_code("BCDFZBPJ").as_deref(),
            Some("BCDF-ZBPJ")
        );
        assert_eq!(
            normalize_user_code("BCDF-ZBPA"),
            None,
            "vowels are never in codes"
        );
        assert_eq!(normalize_user_code("BCD"), None);
        assert_eq!(normalize_user_code(&"B".repeat(4000)), None);
        assert!(device_key("secret-code").starts_with("device-code:"));
        assert!(!device_key("secret-code").contains("secret"));
    }

    #[test]
    fn polls_wait_slow_down_then_redeem_once() {
        let g = grant();
        let Poll::Refuse(DeviceError::AuthorizationPending, g) = poll(&g, 1001) else {
            panic!("first poll pends")
        };
        let Poll::Refuse(DeviceError::SlowDown, g) = poll(&g, 1002) else {
            panic!("a poll within the interval slows down")
        };
        assert_eq!(g.interval, 10);
        let bound = bind(&g, Some(json!({"subject": "alice"})), 1003).unwrap();
        let Poll::Redeem { principal, next } = poll(&bound, 1020) else {
            panic!("a bound code redeems")
        };
        assert_eq!(principal["subject"], "alice");
        assert_eq!(poll(&next, 1030), Poll::Final(DeviceError::InvalidGrant));
    }

    #[test]
    fn codes_expire_and_are_taken_by_one_person_once() {
        let g = grant();
        assert_eq!(
            poll(&g, 1000 + DEVICE_CODE_TTL_SECS),
            Poll::Final(DeviceError::ExpiredToken)
        );
        assert_eq!(
            bind(&g, Some(json!({})), 1000 + DEVICE_CODE_TTL_SECS),
            Err(BindRefusal::Expired)
        );
        let alice = bind(&g, Some(json!({"subject": "alice"})), 1001).unwrap();
        assert_eq!(
            bind(&alice, Some(json!({"subject": "mallory"})), 1002),
            Err(BindRefusal::AlreadyUsed)
        );
        let denied = bind(&g, None, 1001).unwrap();
        assert_eq!(poll(&denied, 1010), Poll::Final(DeviceError::AccessDenied));
        assert_eq!(
            bind(&denied, Some(json!({})), 1011),
            Err(BindRefusal::AlreadyUsed)
        );
    }

    #[test]
    fn records_round_trip_through_json() {
        let g = bind(&grant(), Some(json!({"subject": "alice"})), 1001).unwrap();
        let text = serde_json::to_string(&g).unwrap();
        assert!(text.contains(r#""state":"bound""#), "{text}");
        assert_eq!(serde_json::from_str::<DeviceGrant>(&text).unwrap(), g);
        let answer = code_answer(&g, "dc", "https://gw/login/device", 1100);
        assert_eq!(answer["expires_in"], 800);
        assert_eq!(answer["interval"], 5);
        assert_eq!(
            answer["verification_uri_complete"],
            "https://gw/login/device?user_code=BCDF-GHJK"
        );
    }
}
