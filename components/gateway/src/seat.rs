//! Each person's own Copilot seat: the link between a person (issuer and
//! subject at the IdP) and their GitHub account, made with GitHub's device
//! flow run by the gateway as GitHub's client, and what is stored for it.
//!
//! Stored per person, under their opaque `person_key`:
//! - `seat:link:{pk}` — the link: GitHub login and id, state (linked or
//!   broken, and why), the GitHub tokens sealed (`vault`), and the refresh
//!   lease (at most one refresh in flight per person, by compare-and-swap);
//! - `seat:copilot:{pk}` — the Copilot token made from them, sealed, until
//!   its `refresh_in` (read on every call, written only when refreshed);
//! - `seat:pending:{pk}` — a link in progress: GitHub's user code for the
//!   page, the device code sealed, when GitHub may be polled next;
//! - `seat:login:{github id}` — whose that GitHub account is, so one
//!   account is never linked to two people.
//!
//! Decisions live here and are tested on the host; `edge::seat` does the
//! I/O.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{ApiError, ErrorKind};
use crate::vault::Sealed;
use crate::web_login::percent_encode;

/// The Copilot editor app's client id (the language server's own, also used
/// by LiteLLM and copilot-api): its tokens are known to be accepted by
/// Copilot's token endpoint.
pub const DEFAULT_CLIENT_ID: &str = "Iv1.b507a08c87ecfe98";
pub const DEFAULT_SCOPE: &str = "read:user";
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Where a person links (and re-links) their account.
pub const LINK_PAGE: &str = "/github/link";

/// A GitHub token is refreshed this long before it expires; until it
/// expires, calls that find a refresh in flight go on with it.
pub const REFRESH_AHEAD_SECS: u64 = 600;
/// Treated as expired this long before GitHub says (clock skew, the call).
const EXPIRY_MARGIN_SECS: u64 = 30;
/// A refresh lease: how long one caller may hold it before another may take it.
pub const LEASE_SECS: u64 = 20;
/// GitHub's default polling interval when its answer names none.
const DEFAULT_INTERVAL: u64 = 5;
/// RFC 8628 §3.5: `slow_down` adds five seconds.
const SLOW_DOWN_STEP: u64 = 5;

pub fn link_key(person_key: &str) -> String {
    format!("seat:link:{person_key}")
}

pub fn copilot_key(person_key: &str) -> String {
    format!("seat:copilot:{person_key}")
}

pub fn pending_key(person_key: &str) -> String {
    format!("seat:pending:{person_key}")
}

pub fn login_key(github_id: u64) -> String {
    format!("seat:login:{github_id}")
}

/// A person's GitHub tokens, as sealed in the link record.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GithubTokens {
    pub access_token: String,
    #[serde(default)]
    pub access_expires_at: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub refresh_expires_at: Option<u64>,
}

impl std::fmt::Debug for GithubTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubTokens")
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "…"))
            .finish_non_exhaustive()
    }
}

impl Drop for GithubTokens {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.access_token);
        if let Some(r) = self.refresh_token.as_mut() {
            zeroize::Zeroize::zeroize(r);
        }
    }
}

/// Whether a GitHub token is still good for the Copilot exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Good, and not close to expiry (or it never expires).
    Fresh,
    /// Still good, but within the refresh-ahead window.
    RefreshAhead,
    /// Expired (or about to): it must be refreshed before use.
    Expired,
}

impl GithubTokens {
    pub fn due(&self, now: u64) -> Due {
        match self.access_expires_at {
            None => Due::Fresh,
            Some(at) if now + EXPIRY_MARGIN_SECS >= at => Due::Expired,
            Some(at) if now + REFRESH_AHEAD_SECS >= at => Due::RefreshAhead,
            Some(_) => Due::Fresh,
        }
    }

    /// Whether a refresh token is at hand and not expired.
    pub fn can_refresh(&self, now: u64) -> bool {
        self.refresh_token.is_some() && self.refresh_expires_at.is_none_or(|at| now < at)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    Linked,
    /// A refresh was refused, or GitHub no longer takes the token: the
    /// person must link again.
    Broken,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub by: String,
    pub until: u64,
}

/// The link record (`seat:link:{pk}`). Only `tokens` is secret, and it is
/// sealed to the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub login: String,
    pub github_id: u64,
    pub linked_at: u64,
    pub state: LinkState,
    #[serde(default)]
    pub broken_reason: Option<String>,
    #[serde(default)]
    pub broken_at: Option<u64>,
    #[serde(default)]
    pub refreshed_at: Option<u64>,
    pub tokens: Sealed,
    /// Held while one caller refreshes the tokens.
    #[serde(default)]
    pub lease: Option<Lease>,
    /// This record's writer: every stored value is unique to its writer,
    /// as the compare-and-swap needs (see `copilot_jit_common::cas`).
    pub w: String,
}

impl Link {
    pub fn lease_held_by_other(&self, me: &str, now: u64) -> bool {
        self.lease
            .as_ref()
            .is_some_and(|l| l.by != me && l.until > now)
    }

    pub fn status_json(&self, public_url: &str) -> Value {
        match self.state {
            LinkState::Linked => json!({
                "status": "linked",
                "login": self.login,
                "linked_at": self.linked_at,
                "refreshed_at": self.refreshed_at,
            }),
            LinkState::Broken => json!({
                "status": "broken",
                "login": self.login,
                "linked_at": self.linked_at,
                "reason": self.broken_reason,
                "broken_at": self.broken_at,
                "link_url": format!("{public_url}{LINK_PAGE}"),
            }),
        }
    }
}

/// The cached Copilot token (`seat:copilot:{pk}`), sealed to the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopilotCache {
    pub login: String,
    pub refresh_at: u64,
    pub token: Sealed,
}

impl CopilotCache {
    pub fn is_fresh(&self, now: u64) -> bool {
        now < self.refresh_at
    }
}

/// A link in progress (`seat:pending:{pk}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLink {
    pub user_code: String,
    pub verification_uri: String,
    pub expires_at: u64,
    pub interval: u64,
    /// GitHub is not polled before this (its `interval`, `slow_down`).
    pub next_poll_at: u64,
    pub device_code: Sealed,
    pub w: String,
}

impl PendingLink {
    pub fn expired(&self, now: u64) -> bool {
        now >= self.expires_at
    }

    pub fn may_poll(&self, now: u64) -> bool {
        now >= self.next_poll_at
    }

    pub fn status_json(&self) -> Value {
        json!({
            "status": "pending",
            "user_code": self.user_code,
            "verification_uri": self.verification_uri,
            "expires_at": self.expires_at,
            "interval": self.interval,
        })
    }
}

/// GitHub's answer to `POST /login/device/code`.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceCodeAnswer {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub expires_in: u64,
    pub interval: u64,
}

impl std::fmt::Debug for DeviceCodeAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCodeAnswer")
            .field("user_code", &self.user_code)
            .finish_non_exhaustive()
    }
}

pub fn device_code_answer(status: u16, body: &[u8]) -> Result<DeviceCodeAnswer, String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| format!("GitHub answered {status} without JSON"))?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        return Err(format!("GitHub refused the device flow: {e}"));
    }
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| format!("GitHub's device code answer has no {k} (status {status})"))
    };
    let verification_uri = text("verification_uri")?;
    if !verification_uri.starts_with("https://") && !verification_uri.starts_with("http://") {
        return Err("GitHub's verification_uri is not a web address".into());
    }
    Ok(DeviceCodeAnswer {
        device_code: text("device_code")?,
        user_code: text("user_code")?,
        verification_uri,
        expires_in: v.get("expires_in").and_then(Value::as_u64).unwrap_or(900),
        interval: v
            .get("interval")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_INTERVAL),
    })
}

/// What GitHub's token endpoint answered (device or refresh grant). GitHub
/// answers its OAuth errors with 200 and an `error` member.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenAnswer {
    Tokens(GithubTokens),
    /// The person has not authorised yet.
    Pending,
    /// Polled too fast: the new interval, if GitHub named one.
    SlowDown(Option<u64>),
    /// The device code expired.
    Expired,
    /// The person refused on github.com.
    Denied,
    /// Any other refusal (a refresh token that is no longer good:
    /// `bad_refresh_token`, `invalid_grant`…), with GitHub's code.
    Refused(String),
}

pub fn token_answer(status: u16, body: &[u8], now: u64) -> TokenAnswer {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return TokenAnswer::Refused(format!("http_{status}"));
    };
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        return match e {
            "authorization_pending" => TokenAnswer::Pending,
            "slow_down" => TokenAnswer::SlowDown(v.get("interval").and_then(Value::as_u64)),
            "expired_token" => TokenAnswer::Expired,
            "access_denied" => TokenAnswer::Denied,
            other => TokenAnswer::Refused(other.chars().take(64).collect()),
        };
    }
    let Some(access_token) = v
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    else {
        return TokenAnswer::Refused(format!("http_{status}_without_token"));
    };
    let at = |k: &str| {
        v.get(k)
            .and_then(Value::as_u64)
            .map(|s| now.saturating_add(s))
    };
    TokenAnswer::Tokens(GithubTokens {
        access_token: access_token.to_string(),
        access_expires_at: at("expires_in"),
        refresh_token: v
            .get("refresh_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        refresh_expires_at: at("refresh_token_expires_in"),
    })
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn device_code_form(client_id: &str, scope: &str) -> String {
    form(&[("client_id", client_id), ("scope", scope)])
}

pub fn device_poll_form(client_id: &str, device_code: &str) -> String {
    form(&[
        ("client_id", client_id),
        ("device_code", device_code),
        ("grant_type", DEVICE_GRANT),
    ])
}

pub fn refresh_form(client_id: &str, client_secret: Option<&str>, refresh_token: &str) -> String {
    let mut pairs = vec![
        ("client_id", client_id),
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    if let Some(secret) = client_secret {
        pairs.push(("client_secret", secret));
    }
    form(&pairs)
}

/// The pending record after a poll that was refused for now; `None` when
/// the link attempt is over (expired or denied).
pub fn after_poll(pending: &PendingLink, answer: &TokenAnswer, now: u64) -> Option<PendingLink> {
    let mut next = pending.clone();
    match answer {
        TokenAnswer::Pending => {}
        TokenAnswer::SlowDown(interval) => {
            next.interval = interval.unwrap_or(pending.interval + SLOW_DOWN_STEP);
        }
        _ => return None,
    }
    next.next_poll_at = now + next.interval;
    Some(next)
}

/// `GET /user`: the account's login and numeric id (the id never changes;
/// logins can be renamed).
pub fn github_user(body: &[u8]) -> Option<(String, u64)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let login = v.get("login")?.as_str()?.to_string();
    let id = v.get("id")?.as_u64()?;
    (!login.is_empty()).then_some((login, id))
}

/// Why a call cannot be made with the person's own seat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeatProblem {
    /// No GitHub account is linked yet.
    NotLinked,
    /// The link is broken (refresh refused, token revoked): link again.
    Broken { login: String, reason: String },
    /// The linked account has no Copilot seat.
    NoCopilotSeat { login: String },
    /// The vault record does not open (moved from another person, altered,
    /// or sealed under a key no longer configured): link again.
    Unreadable(String),
}

impl SeatProblem {
    fn message(&self) -> String {
        match self {
            SeatProblem::NotLinked => "Copilot calls use your own GitHub account's Copilot seat: link your GitHub account first".into(),
            SeatProblem::Broken { login, .. } => format!(
                "the gateway can no longer use your GitHub account {login}: link it again"
            ),
            SeatProblem::NoCopilotSeat { login } => format!(
                "your GitHub account {login} has no Copilot seat; ask your organisation's Copilot administrator for one"
            ),
            SeatProblem::Unreadable(_) => "your GitHub link cannot be read: link your GitHub account again".into(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            SeatProblem::NotLinked => "github_link_needed",
            SeatProblem::Broken { .. } | SeatProblem::Unreadable(_) => "github_link_broken",
            SeatProblem::NoCopilotSeat { .. } => "no_copilot_seat",
        }
    }

    fn detail(&self) -> String {
        match self {
            SeatProblem::NotLinked => "own seat: no GitHub account linked".into(),
            SeatProblem::Broken { login, reason } => {
                format!("own seat: link of {login} broken: {reason}")
            }
            SeatProblem::NoCopilotSeat { login } => {
                format!("own seat: {login} has no Copilot seat")
            }
            SeatProblem::Unreadable(why) => format!("own seat: vault record unreadable: {why}"),
        }
    }

    /// A 403 in Copilot's shape (editors show `error_details.message` and
    /// its link) that also carries our `error` member.
    pub fn error(&self, public_url: &str) -> ApiError {
        let url = format!("{public_url}{LINK_PAGE}");
        let message = self.message();
        let body = json!({
            "message": message,
            "error_details": {
                "title": match self {
                    SeatProblem::NoCopilotSeat { .. } => "No Copilot seat",
                    SeatProblem::NotLinked => "Link your GitHub account",
                    _ => "Link your GitHub account again",
                },
                "message": message,
                "notification_id": "copilot-jit-github-link",
                "url": url,
            },
            "can_signup_for_limited": false,
            "error": {"code": self.code(), "message": message, "link_url": url},
        });
        ApiError::new(ErrorKind::SeatUnavailable, message)
            .detail(self.detail())
            .in_copilot_shape(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(expires: Option<u64>, refresh: bool) -> GithubTokens {
        GithubTokens {
            access_token: "ghu_a".into(),
            access_expires_at: expires,
            refresh_token: refresh.then(|| "ghr_r".into()),
            refresh_expires_at: None,
        }
    }

    #[test]
    fn tokens_are_refreshed_ahead_and_never_used_expired() {
        assert_eq!(tokens(None, false).due(u64::MAX / 2), Due::Fresh);
        let t = tokens(Some(10_000), true);
        assert_eq!(t.due(10_000 - REFRESH_AHEAD_SECS - 1), Due::Fresh);
        assert_eq!(t.due(10_000 - REFRESH_AHEAD_SECS), Due::RefreshAhead);
        assert_eq!(t.due(10_000 - 30), Due::Expired);
        assert!(t.can_refresh(0));
        assert!(!tokens(Some(1), false).can_refresh(0));
        let mut old = tokens(Some(1), true);
        old.refresh_expires_at = Some(100);
        assert!(!old.can_refresh(100));
        // Debug never shows a token.
        let shown = format!("{t:?}");
        assert!(
            !shown.contains("ghu_a") && !shown.contains("ghr_r"),
            "{shown}"
        );
    }

    #[test]
    fn token_answers_follow_githubs_shapes() {
        let now = 1000;
        let body = br#"{"access_token":"ghu_1","token_type":"bearer","scope":"","expires_in":28800,"refresh_token":"ghr_1","refresh_token_expires_in":15897600}"#;
        let TokenAnswer::Tokens(t) = token_answer(200, body, now) else {
            panic!("tokens");
        };
        assert_eq!(t.access_expires_at, Some(now + 28800));
        assert_eq!(t.refresh_token.as_deref(), Some("ghr_1"));
        assert_eq!(t.refresh_expires_at, Some(now + 15897600));
        let TokenAnswer::Tokens(t) =
            token_answer(200, br#"{"access_token":"gho_x","scope":"read:user"}"#, now)
        else {
            panic!("an OAuth app's token");
        };
        assert_eq!(
            (t.access_expires_at, t.refresh_token.is_none()),
            (None, true)
        );
        assert_eq!(
            token_answer(200, br#"{"error":"authorization_pending"}"#, now),
            TokenAnswer::Pending
        );
        assert_eq!(
            token_answer(200, br#"{"error":"slow_down","interval":10}"#, now),
            TokenAnswer::SlowDown(Some(10))
        );
        assert_eq!(
            token_answer(200, br#"{"error":"expired_token"}"#, now),
            TokenAnswer::Expired
        );
        assert_eq!(
            token_answer(200, br#"{"error":"access_denied"}"#, now),
            TokenAnswer::Denied
        );
        assert_eq!(
            token_answer(
                200,
                br#"{"error":"bad_refresh_token","error_description":"x"}"#,
                now
            ),
            TokenAnswer::Refused("bad_refresh_token".into())
        );
        assert_eq!(
            token_answer(502, b"<html>", now),
            TokenAnswer::Refused("http_502".into())
        );
    }

    #[test]
    fn polling_keeps_to_githubs_interval() {
        let pending = PendingLink {
            user_code: "ABCD-1234".into(),
            verification_uri: "https://github.com/login/device".into(),
            expires_at: 2000,
            interval: 5,
            next_poll_at: 1005,
            device_code: Sealed {
                kid: "k".into(),
                nonce: "n".into(),
                data: "d".into(),
            },
            w: "w".into(),
        };
        assert!(!pending.may_poll(1004));
        assert!(pending.may_poll(1005));
        let next = after_poll(&pending, &TokenAnswer::Pending, 1005).unwrap();
        assert_eq!(next.next_poll_at, 1010);
        let slower = after_poll(&pending, &TokenAnswer::SlowDown(None), 1005).unwrap();
        assert_eq!((slower.interval, slower.next_poll_at), (10, 1015));
        assert!(after_poll(&pending, &TokenAnswer::Denied, 1005).is_none());
        assert!(after_poll(&pending, &TokenAnswer::Expired, 1005).is_none());
        assert!(pending.expired(2000));
        assert_eq!(pending.status_json()["user_code"], "ABCD-1234");
    }

    #[test]
    fn device_code_answers_are_checked() {
        let a = device_code_answer(
            200,
            br#"{"device_code":"dc","user_code":"WXYZ-0000","verification_uri":"https://github.com/login/device","expires_in":899,"interval":5}"#,
        )
        .unwrap();
        assert_eq!(
            (a.user_code.as_str(), a.expires_in, a.interval),
            ("WXYZ-0000", 899, 5)
        );
        assert!(!format!("{a:?}").contains("\"dc\""));
        assert!(device_code_answer(200, br#"{"error":"unauthorized_client"}"#).is_err());
        assert!(device_code_answer(
            200,
            br#"{"device_code":"dc","user_code":"u","verification_uri":"javascript:x"}"#
        )
        .is_err());
        assert!(device_code_answer(404, b"Not Found").is_err());
    }

    #[test]
    fn forms_are_encoded() {
        assert_eq!(
            device_poll_form("Iv1.b507a08c87ecfe98", "a b"),
            "client_id=Iv1.b507a08c87ecfe98&device_code=a%20b&grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code"
        );
        assert_eq!(
            refresh_form("c", Some("s"), "ghr_1"),
            "client_id=c&grant_type=refresh_token&refresh_token=ghr_1&client_secret=s"
        );
        assert_eq!(
            device_code_form("c", "read:user"),
            "client_id=c&scope=read%3Auser"
        );
        assert_eq!(
            github_user(br#"{"login":"octo","id":7}"#),
            Some(("octo".into(), 7))
        );
        assert_eq!(github_user(br#"{"login":"","id":7}"#), None);
    }

    #[test]
    fn problems_answer_in_copilots_shape_with_the_link() {
        let e = SeatProblem::Broken {
            login: "octo".into(),
            reason: "bad_refresh_token".into(),
        }
        .error("https://gw");
        assert_eq!(e.status(), 403);
        let body = e.body();
        assert_eq!(body["error_details"]["url"], "https://gw/github/link");
        assert_eq!(body["error"]["code"], "github_link_broken");
        assert!(body["error_details"]["message"]
            .as_str()
            .unwrap()
            .contains("octo"));
        assert!(e.reason().contains("bad_refresh_token"));
        assert_eq!(
            SeatProblem::NotLinked.error("https://gw").body()["error"]["code"],
            "github_link_needed"
        );
    }

    #[test]
    fn a_lease_of_another_caller_holds_until_it_ends() {
        let link = Link {
            login: "octo".into(),
            github_id: 1,
            linked_at: 0,
            state: LinkState::Linked,
            broken_reason: None,
            broken_at: None,
            refreshed_at: None,
            tokens: Sealed {
                kid: "k".into(),
                nonce: "n".into(),
                data: "d".into(),
            },
            lease: Some(Lease {
                by: "a".into(),
                until: 100,
            }),
            w: "a".into(),
        };
        assert!(link.lease_held_by_other("b", 99));
        assert!(!link.lease_held_by_other("a", 99));
        assert!(!link.lease_held_by_other("b", 100));
        assert_eq!(link.status_json("https://gw")["status"], "linked");
    }
}
