//! What a caller may put in an access request, checked before policy sees
//! it: known scopes, a reason, a readable duration. Who may ask for what, who
//! approves and for how long is the Cedar policy (`policies/`, see
//! `edge/policy.rs`).

use serde::Deserialize;

pub const KNOWN_SCOPES: &[&str] = &["chat", "completions", "models", "embeddings"];
const MAX_REASON_CHARS: usize = 1000;
/// Grant length when the request names none (bounded by the policy's maximum).
pub const DEFAULT_DURATION_SECS: u64 = 3600;
/// A pending request expires after this unless its policy says otherwise.
pub const DEFAULT_PENDING_TTL_SECS: u64 = 3600;

/// What a caller asks for in `POST /v1/access-requests`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessAsk {
    pub scopes: Vec<String>,
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub duration: Option<Duration>,
    pub reason: String,
    #[serde(default)]
    pub repository: Option<String>,
}

/// What a grant holder asks for in `POST /v1/grants/{id}/renew`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewAsk {
    #[serde(default)]
    pub duration: Option<Duration>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A duration as seconds (`900`) or text (`"15m"`, `"1h"`, `"90s"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Duration {
    Seconds(u64),
    Text(String),
}

impl Duration {
    pub fn seconds(&self) -> Option<u64> {
        match self {
            Duration::Seconds(s) => Some(*s),
            Duration::Text(t) => {
                let t = t.trim();
                let (number, unit) =
                    t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
                let n: u64 = number.parse().ok()?;
                let factor = match unit {
                    "" | "s" => 1,
                    "m" => 60,
                    "h" => 3600,
                    _ => return None,
                };
                n.checked_mul(factor)
            }
        }
    }
}

/// A malformed ask, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadAsk {
    pub field: &'static str,
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> BadAsk {
    BadAsk {
        field,
        message: message.into(),
    }
}

/// The asked duration in seconds (None: the default), if well formed.
pub fn duration_secs(d: &Option<Duration>) -> Result<Option<u64>, BadAsk> {
    match d {
        None => Ok(None),
        Some(d) => d.seconds().filter(|s| *s > 0).map(Some).ok_or_else(|| {
            bad(
                "duration",
                "duration must be seconds or text like \"15m\" or \"2h\"",
            )
        }),
    }
}

pub fn check_reason(reason: &str) -> Result<(), BadAsk> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(bad(
            "reason",
            format!("give a reason of 1 to {MAX_REASON_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Checks an ask's shape; returns the asked duration (None: the default).
pub fn check_ask(ask: &AccessAsk) -> Result<Option<u64>, BadAsk> {
    if ask.scopes.is_empty() {
        return Err(bad("scopes", "ask for at least one scope"));
    }
    if let Some(unknown) = ask
        .scopes
        .iter()
        .find(|s| !KNOWN_SCOPES.contains(&s.as_str()))
    {
        return Err(bad(
            "scopes",
            format!(
                "unknown scope {unknown:?}; known scopes: {}",
                KNOWN_SCOPES.join(", ")
            ),
        ));
    }
    check_reason(&ask.reason)?;
    duration_secs(&ask.duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(json: serde_json::Value) -> AccessAsk {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn durations_read_as_seconds_or_text() {
        let d = |j| duration_secs(&Some(serde_json::from_value(j).unwrap()));
        assert_eq!(d(serde_json::json!(900)), Ok(Some(900)));
        assert_eq!(d(serde_json::json!("15m")), Ok(Some(900)));
        assert_eq!(d(serde_json::json!("2h")), Ok(Some(7200)));
        assert!(d(serde_json::json!("soon")).is_err());
        assert!(d(serde_json::json!(0)).is_err());
        assert_eq!(duration_secs(&None), Ok(None));
    }

    #[test]
    fn bad_asks_name_the_field() {
        let field = |j| check_ask(&ask(j)).unwrap_err().field;
        assert_eq!(
            field(serde_json::json!({"scopes": ["root"], "reason": "x"})),
            "scopes"
        );
        assert_eq!(
            field(serde_json::json!({"scopes": [], "reason": "x"})),
            "scopes"
        );
        assert_eq!(
            field(serde_json::json!({"scopes": ["chat"], "reason": " "})),
            "reason"
        );
        assert_eq!(
            field(serde_json::json!({"scopes": ["chat"], "reason": "x", "duration": "soon"})),
            "duration"
        );
        assert_eq!(
            check_ask(&ask(
                serde_json::json!({"scopes": ["chat"], "reason": "x", "duration": "30m"})
            )),
            Ok(Some(1800))
        );
    }
}
