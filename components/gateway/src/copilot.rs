//! Copilot's own protocol, as real clients parse it (see the protocol
//! reference): the token envelope, the token string, model listings and the
//! statuses clients react to.

use serde_json::{json, Value};

/// Whether a presented token is a Copilot-shaped session token
/// (`key=value;…:mac`) rather than a gateway JWT (`header.claims.signature`).
pub fn is_session_token(presented: &str) -> bool {
    presented.starts_with("tid=") && presented.contains(':')
}

/// Seconds until clients should fetch a new token. Clients use a token until
/// about `now + refresh_in + 60` and VS Code refreshes at `refresh_in - 240`,
/// so leave two minutes before the real expiry.
pub fn refresh_in(now: u64, expires_at: u64) -> u64 {
    let left = expires_at.saturating_sub(now);
    if left > 240 {
        left - 120
    } else {
        (left / 2).max(1)
    }
}

/// The token envelope (`GET /copilot_internal/v2/token`), with every endpoint
/// pointing back at the gateway.
pub fn envelope(
    public_url: &str,
    token: &str,
    expires_at: u64,
    refresh_in: u64,
    chat: bool,
) -> Value {
    json!({
        "token": token,
        "expires_at": expires_at,
        "refresh_in": refresh_in,
        "sku": "copilot_jit",
        "individual": false,
        "chat_enabled": chat,
        "chat_jetbrains_enabled": chat,
        "code_quote_enabled": false,
        "codesearch": false,
        "copilotignore_enabled": false,
        "public_suggestions": "disabled",
        "telemetry": "disabled",
        "endpoints": {
            "api": public_url,
            "proxy": public_url,
            "telemetry": public_url,
            "origin-tracker": public_url,
        },
    })
}

/// The `notification_id` of the gateway's one message to editors (in the
/// `error_details` of every refusal): access is missing.
pub const ACCESS_NOTIFICATION_ID: &str = "copilot-jit-access";

/// Whether a client's answer to a message (`POST
/// /copilot_internal/notification`, `{"notification_id": …}`) answers the
/// gateway's own: the only one it ever sends.
pub fn answers_access_notification(body: &Value) -> bool {
    body.get("notification_id").and_then(Value::as_str) == Some(ACCESS_NOTIFICATION_ID)
}

/// How to get access, for answers to calls without a usable grant.
pub fn how_to_request(public_url: &str) -> Value {
    json!({
        "how_to_request_access": {
            "request": {
                "method": "POST",
                "url": format!("{public_url}/v1/access-requests"),
                "headers": {"authorization": "Bearer <your OIDC token>"},
                "body": {"scopes": ["chat", "completions"], "reason": "<why>", "duration": "1h"}
            },
            "then": format!("POST {public_url}/v1/grants/<request id>/token once approved")
        }
    })
}

/// The 403 envelope clients show to the developer (`error_details.message`).
pub fn error_envelope(message: &str, how_to: &Value) -> Value {
    json!({
        "message": message,
        "error_details": {
            "title": "Copilot access needed",
            "message": message,
            "notification_id": ACCESS_NOTIFICATION_ID,
            "url": how_to["how_to_request_access"]["request"]["url"],
        },
        "can_signup_for_limited": false,
    })
    .as_object()
    .map(|o| {
        let mut o = o.clone();
        if let Some(h) = how_to.get("how_to_request_access") {
            o.insert("how_to_request_access".into(), h.clone());
        }
        Value::Object(o)
    })
    .unwrap_or_default()
}

/// Keeps only the models a grant allows (all when it names none), leaving
/// every field of the kept entries untouched: the language server drops the
/// whole list if a required field is missing.
pub fn filter_models(body: &mut Value, allowed: &[String]) {
    if allowed.is_empty() {
        return;
    }
    if let Some(data) = body.get_mut("data").and_then(Value::as_array_mut) {
        data.retain(|m| {
            m.get("id")
                .and_then(Value::as_str)
                .is_some_and(|id| allowed.iter().any(|a| a == id))
        });
    }
}

/// What the client sees for an upstream failure. Upstream 401/403 after the
/// gateway's own refresh mean the gateway's credential failed, not the
/// client's: a 502 keeps clients from discarding a good gateway token.
pub fn client_status(upstream: u16) -> u16 {
    match upstream {
        401 | 403 => 502,
        s => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_gateways_own_notification_is_answered() {
        let envelope = error_envelope("no grant", &how_to_request("https://gw"));
        let sent = &envelope["error_details"]["notification_id"];
        assert!(answers_access_notification(
            &json!({ "notification_id": sent })
        ));
        for other in [
            json!({"notification_id": "not_signed_up"}),
            json!({"notification_id": 7}),
            json!({}),
            json!([ACCESS_NOTIFICATION_ID]),
        ] {
            assert!(!answers_access_notification(&other), "{other}");
        }
    }

    #[test]
    fn session_tokens_and_jwts_are_told_apart() {
        assert!(is_session_token("tid=t1;exp=1;chat=1:abcd"));
        assert!(!is_session_token(
            "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0.c2ln"
        ));
        assert!(!is_session_token("tid=x"));
    }

    #[test]
    fn refresh_comes_before_expiry() {
        assert_eq!(refresh_in(1000, 1000 + 1800), 1680);
        assert_eq!(refresh_in(1000, 1100), 50);
        assert_eq!(refresh_in(1000, 1000), 1);
        for left in [2u64, 60, 241, 900, 1800] {
            // Clients are told to refresh before the token ends.
            assert!(refresh_in(0, left) < left, "{left}");
        }
    }

    #[test]
    fn models_are_filtered_without_touching_fields() {
        let mut body = json!({"object": "list", "data": [
            {"id": "gpt-4o", "name": "GPT-4o", "capabilities": {"type": "chat"}},
            {"id": "o1", "name": "o1"}
        ]});
        filter_models(&mut body, &["gpt-4o".into()]);
        assert_eq!(body["data"].as_array().unwrap().len(), 1);
        assert_eq!(body["data"][0]["capabilities"]["type"], "chat");
        let mut all = json!({"data": [{"id": "a"}, {"id": "b"}]});
        filter_models(&mut all, &[]);
        assert_eq!(all["data"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn the_error_envelope_tells_how_to_get_access() {
        let how = how_to_request("http://gw");
        assert_eq!(
            how["how_to_request_access"]["then"],
            "POST http://gw/v1/grants/<request id>/token once approved"
        );
        let e = error_envelope("no grant", &how);
        assert_eq!(e["error_details"]["message"], "no grant");
        assert_eq!(e["error_details"]["url"], "http://gw/v1/access-requests");
        assert!(e["how_to_request_access"].is_object());
        assert_eq!(client_status(401), 502);
        assert_eq!(client_status(429), 429);
    }
}
