//! The GitHub side of the mock upstream, for people's own seats: accounts,
//! GitHub's device flow (`POST /login/device/code`, `POST
//! /login/oauth/access_token` with the device and `refresh_token` grants,
//! OAuth errors answered with 200 as GitHub does), expiring user tokens with
//! rotating refresh tokens, `GET /user`, and which account each Copilot token
//! was made for. Plain state and decisions; `mock_upstream` serves them.

use crate::dev_issuer::form_params;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

/// The client id the mock expects (the Copilot editor app's, the gateway's default).
pub const CLIENT_ID: &str = "Iv1.b507a08c87ecfe98";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

#[derive(Clone, Debug, PartialEq, Eq)]
enum DeviceState {
    Pending,
    Authorized(String),
    Denied,
    Redeemed,
}

#[derive(Clone, Debug)]
struct Device {
    user_code: String,
    expires_at: u64,
    interval: u64,
    last_poll: Option<u64>,
    state: DeviceState,
}

#[derive(Clone, Debug)]
struct Account {
    id: u64,
    seat: bool,
}

#[derive(Clone, Debug)]
struct UserToken {
    login: String,
    expires_at: Option<u64>,
}

#[derive(Default)]
pub struct Github {
    pub client_id: String,
    accounts: HashMap<String, Account>,
    devices: HashMap<String, Device>,
    user_tokens: HashMap<String, UserToken>,
    refresh_tokens: HashMap<String, (String, u64)>,
    /// Access tokens expire after this long (a GitHub App's user tokens:
    /// 8 h, with refresh tokens); `None`: they never do (an OAuth app's).
    pub user_token_ttl: Option<u64>,
    pub device_interval: u64,
    refuse_refresh: HashSet<String>,
    /// `refresh_token` grants asked, per login (refused ones included).
    refreshes: HashMap<String, usize>,
    device_polls: usize,
    /// Every secret handed out (device codes, access and refresh tokens).
    secrets: Vec<String>,
}

fn random_token(prefix: &str) -> String {
    format!("{prefix}{:036x}", rand::random::<u128>())
}

fn oauth_error(code: &str) -> (u16, Value) {
    (
        200,
        json!({"error": code, "error_description": format!("mock: {code}")}),
    )
}

impl Github {
    pub fn new() -> Github {
        Github {
            client_id: CLIENT_ID.to_string(),
            device_interval: 1,
            ..Github::default()
        }
    }

    fn account(&mut self, login: &str) -> Account {
        let next = 1000 + self.accounts.len() as u64;
        self.accounts
            .entry(login.to_string())
            .or_insert(Account {
                id: next,
                seat: true,
            })
            .clone()
    }

    /// `POST /login/device/code`.
    pub fn device_code(
        &mut self,
        params: &HashMap<String, String>,
        base: &str,
        now: u64,
    ) -> (u16, Value) {
        if params.get("client_id") != Some(&self.client_id) {
            return (
                401,
                json!({"error": "unauthorized_client", "error_description": "unknown client_id"}),
            );
        }
        let device_code = random_token("dc_");
        let user_code = format!(
            "{:04X}-{:04X}",
            rand::random::<u16>(),
            rand::random::<u16>()
        );
        self.secrets.push(device_code.clone());
        self.devices.insert(
            device_code.clone(),
            Device {
                user_code: user_code.clone(),
                expires_at: now + 900,
                interval: self.device_interval,
                last_poll: None,
                state: DeviceState::Pending,
            },
        );
        (
            200,
            json!({"device_code": device_code, "user_code": user_code,
                   "verification_uri": format!("{base}/login/device"),
                   "expires_in": 900, "interval": self.device_interval}),
        )
    }

    /// The person authorises the code on "github.com" as `login`.
    pub fn authorize(&mut self, user_code: &str, login: &str) -> bool {
        self.account(login);
        self.set_state(user_code, DeviceState::Authorized(login.to_string()))
    }

    pub fn deny(&mut self, user_code: &str) -> bool {
        self.set_state(user_code, DeviceState::Denied)
    }

    fn set_state(&mut self, user_code: &str, state: DeviceState) -> bool {
        let wanted = user_code.trim().to_uppercase();
        match self
            .devices
            .values_mut()
            .find(|d| d.user_code == wanted && d.state == DeviceState::Pending)
        {
            Some(d) => {
                d.state = state;
                true
            }
            None => false,
        }
    }

    fn issue(&mut self, login: &str, now: u64) -> Value {
        let access = random_token("ghu_");
        self.secrets.push(access.clone());
        self.user_tokens.insert(
            access.clone(),
            UserToken {
                login: login.to_string(),
                expires_at: self.user_token_ttl.map(|t| now + t),
            },
        );
        let mut answer = json!({"access_token": access, "token_type": "bearer", "scope": ""});
        if let Some(ttl) = self.user_token_ttl {
            let refresh = random_token("ghr_");
            self.secrets.push(refresh.clone());
            self.refresh_tokens
                .insert(refresh.clone(), (login.to_string(), now + 15_897_600));
            answer["expires_in"] = json!(ttl);
            answer["refresh_token"] = json!(refresh);
            answer["refresh_token_expires_in"] = json!(15_897_600);
        }
        answer
    }

    /// `POST /login/oauth/access_token`: the device grant (pending until
    /// authorised, `slow_down` when polled faster than the interval, one
    /// token per code) and the `refresh_token` grant (which rotates it).
    pub fn access_token(&mut self, params: &HashMap<String, String>, now: u64) -> (u16, Value) {
        if params.get("client_id") != Some(&self.client_id) {
            return oauth_error("incorrect_client_credentials");
        }
        match params.get("grant_type").map(String::as_str) {
            Some(DEVICE_GRANT) => {
                self.device_polls += 1;
                let code = params.get("device_code").cloned().unwrap_or_default();
                let Some(device) = self.devices.get_mut(&code) else {
                    return oauth_error("bad_verification_code");
                };
                if now >= device.expires_at {
                    return oauth_error("expired_token");
                }
                if device
                    .last_poll
                    .is_some_and(|last| now < last + device.interval)
                {
                    device.interval += 5;
                    device.last_poll = Some(now);
                    return (
                        200,
                        json!({"error": "slow_down", "interval": device.interval}),
                    );
                }
                device.last_poll = Some(now);
                match device.state.clone() {
                    DeviceState::Pending => oauth_error("authorization_pending"),
                    DeviceState::Denied => oauth_error("access_denied"),
                    DeviceState::Redeemed => oauth_error("bad_verification_code"),
                    DeviceState::Authorized(login) => {
                        device.state = DeviceState::Redeemed;
                        (200, self.issue(&login, now))
                    }
                }
            }
            Some("refresh_token") => {
                let presented = params.get("refresh_token").cloned().unwrap_or_default();
                let Some((login, expires)) = self.refresh_tokens.get(&presented).cloned() else {
                    return oauth_error("bad_refresh_token");
                };
                *self.refreshes.entry(login.clone()).or_default() += 1;
                if self.refuse_refresh.contains(&login) || now >= expires {
                    return oauth_error("bad_refresh_token");
                }
                // The refresh token is spent; the old access token ends too.
                self.refresh_tokens.remove(&presented);
                self.user_tokens
                    .retain(|_, t| t.login != login || t.expires_at.is_none());
                (200, self.issue(&login, now))
            }
            _ => oauth_error("unsupported_grant_type"),
        }
    }

    /// The login a live user token belongs to.
    pub fn user_of(&self, token: &str, now: u64) -> Option<String> {
        self.user_tokens
            .get(token)
            .filter(|t| t.expires_at.is_none_or(|e| now < e))
            .map(|t| t.login.clone())
    }

    /// `GET /user` for a user token.
    pub fn user(&self, token: &str, now: u64) -> Option<Value> {
        let login = self.user_of(token, now)?;
        let account = self.accounts.get(&login)?;
        Some(json!({"login": login, "id": account.id, "type": "User"}))
    }

    pub fn has_seat(&self, login: &str) -> bool {
        self.accounts.get(login).is_some_and(|a| a.seat)
    }

    pub fn remove_seat(&mut self, login: &str) {
        if let Some(a) = self.accounts.get_mut(login) {
            a.seat = false;
        }
    }

    /// Refresh tokens of `login` are refused from now on.
    pub fn refuse_refresh(&mut self, login: &str) {
        self.refuse_refresh.insert(login.to_string());
    }

    /// The app's authorization of `login` is revoked on github.com: every
    /// access and refresh token of it ends.
    pub fn revoke_user_tokens(&mut self, login: &str) {
        self.user_tokens.retain(|_, t| t.login != login);
        self.refresh_tokens.retain(|_, (l, _)| l != login);
    }

    pub fn refreshes(&self, login: &str) -> usize {
        self.refreshes.get(login).copied().unwrap_or(0)
    }

    pub fn device_polls(&self) -> usize {
        self.device_polls
    }

    pub fn secrets(&self) -> Vec<String> {
        self.secrets.clone()
    }
}

/// Parameters of a form body, a JSON body or the query string.
pub fn params(path: &str, content_type: Option<&str>, body: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if let Some((_, q)) = path.split_once('?') {
        out.extend(form_params(q));
    }
    if content_type.is_some_and(|c| c.contains("json")) {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
            for (k, v) in map {
                if let Some(s) = v.as_str() {
                    out.insert(k, s.to_string());
                }
            }
        }
    } else {
        out.extend(form_params(&String::from_utf8_lossy(body)));
    }
    out
}
