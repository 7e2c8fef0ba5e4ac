//! Talking to a copilot-jit gateway: JSON in and out, the sign-in
//! credential as `Authorization: token …`, and the gateway's JSON errors
//! turned into one line and an exit status.

use std::time::Duration;

use serde_json::Value;

use crate::error::{CliError, Exit, Result};

/// Where the commands go when nothing else is said: what
/// `scripts/run-dev.sh` serves.
pub const DEFAULT_GATEWAY: &str = "http://127.0.0.1:3000";

pub struct Gateway {
    pub url: String,
    credential: Option<String>,
    agent: ureq::Agent,
}

/// A gateway URL as people type it: scheme optional on loopback, no
/// trailing slash.
pub fn normalize_url(raw: &str) -> Result<String> {
    let raw = raw.trim();
    let bare = raw
        .strip_prefix("http://")
        .or_else(|| raw.strip_prefix("https://"));
    if bare.is_some_and(|rest| rest.trim_end_matches('/').is_empty()) {
        return Err(CliError::usage(format!("{raw:?} is not a gateway URL")));
    }
    let raw = raw.trim_end_matches('/');
    let with_scheme = if bare.is_some() {
        raw.to_string()
    } else if raw.starts_with("127.0.0.1") || raw.starts_with("localhost") {
        format!("http://{raw}")
    } else {
        format!("https://{raw}")
    };
    let host = with_scheme
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) || with_scheme.contains(['?', '#']) {
        return Err(CliError::usage(format!("{raw:?} is not a gateway URL")));
    }
    Ok(with_scheme)
}

impl Gateway {
    pub fn new(url: &str, credential: Option<String>) -> Gateway {
        Gateway {
            url: url.to_string(),
            credential,
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(10))
                .timeout(Duration::from_secs(60))
                .build(),
        }
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        self.call("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.call("POST", path, Some(body))
    }

    /// A form POST (the device flow's endpoints take forms, as GitHub's do).
    pub fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Result<Value> {
        let req = self
            .agent
            .post(&format!("{}{path}", self.url))
            .set("accept", "application/json");
        self.answer(path, req.send_form(fields))
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let mut req = self
            .agent
            .request(method, &format!("{}{path}", self.url))
            .set("accept", "application/json")
            .set(
                "user-agent",
                concat!("copilot-jit/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(c) = &self.credential {
            req = req.set("authorization", &format!("token {c}"));
        }
        let sent = match body {
            Some(b) => req
                .set("content-type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        self.answer(path, sent)
    }

    fn answer(
        &self,
        path: &str,
        sent: std::result::Result<ureq::Response, ureq::Error>,
    ) -> Result<Value> {
        let (status, text) = match sent {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(ureq::Error::Transport(t)) => {
                return Err(CliError::new(
                    Exit::Unreachable,
                    "unreachable",
                    format!(
                        "cannot reach the gateway at {}: {}",
                        self.url,
                        transport_reason(&t)
                    ),
                ))
            }
        };
        let json: Value = serde_json::from_str(&text).map_err(|_| {
            CliError::new(
                Exit::Unreachable,
                "not_a_gateway",
                format!(
                    "{} answered {path} with HTTP {status} and no JSON: is it a copilot-jit gateway?",
                    self.url
                ),
            )
        })?;
        if (200..300).contains(&status) {
            return Ok(json);
        }
        Err(refusal(status, &json, &self.url, path))
    }
}

fn transport_reason(t: &ureq::Transport) -> String {
    match t.kind() {
        ureq::ErrorKind::Dns => "no such host".into(),
        ureq::ErrorKind::ConnectionFailed => "connection refused".into(),
        ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme => "not a valid URL".into(),
        _ => t
            .message()
            .map(str::to_string)
            .unwrap_or_else(|| t.kind().to_string()),
    }
}

/// The gateway's `{"error": {code, message, explanation?}}` as one line.
fn refusal(status: u16, json: &Value, url: &str, path: &str) -> CliError {
    let error = &json["error"];
    let code = error["code"].as_str().unwrap_or("http_error").to_string();
    let mut message = error["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{url} answered {path} with HTTP {status}"));
    if let Some(why) = error["explanation"].as_str() {
        if !message.contains(why) {
            message = format!("{message} ({why})");
        }
    }
    let exit = match (status, code.as_str()) {
        (401, _) => {
            message = format!("{message}; run `copilot-jit login`");
            Exit::SignIn
        }
        (403, "policy_denied") => Exit::Denied,
        // The gateway found the input itself wrong (an unknown scope, …).
        (400, _) => Exit::Usage,
        (404, _) if error.is_null() => Exit::Unreachable,
        _ => Exit::Refused,
    };
    CliError::new(exit, &code, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_are_normalized() {
        assert_eq!(
            normalize_url("127.0.0.1:3000/").unwrap(),
            "http://127.0.0.1:3000"
        );
        assert_eq!(
            normalize_url("gw.corp.example").unwrap(),
            "https://gw.corp.example"
        );
        assert!(normalize_url("http://").is_err());
        assert!(normalize_url("http://a b").is_err());
    }

    #[test]
    fn refusals_name_their_exit_status() {
        let denied = json!({"error": {"code": "policy_denied", "message": "no", "explanation": "forbidden by x"}});
        let e = refusal(403, &denied, "u", "/p");
        assert_eq!(
            (e.exit, e.message.as_str()),
            (Exit::Denied, "no (forbidden by x)")
        );
        let expired = json!({"error": {"code": "invalid_gateway_token", "message": "this sign-in has expired; sign in again"}});
        assert_eq!(refusal(401, &expired, "u", "/p").exit, Exit::SignIn);
        assert_eq!(refusal(404, &json!({}), "u", "/p").exit, Exit::Unreachable);
    }
}
