//! What the gateway takes from a client's headers (its credential, its
//! request id) and which headers pass between client and Copilot.

/// Client headers that steer routing or billing upstream: forwarded unchanged.
pub const FORWARDED_REQUEST_HEADERS: &[&str] = &[
    "accept",
    "openai-intent",
    "openai-organization",
    "x-initiator",
    "x-interaction-id",
    "x-interaction-type",
    "copilot-integration-id",
    "copilot-vision-request",
    "editor-version",
    "editor-plugin-version",
    "x-github-api-version",
    "user-agent",
];

/// Upstream headers clients read (timing, deployment, back-off).
pub const FORWARDED_RESPONSE_HEADERS: &[&str] = &[
    "openai-processing-ms",
    "azureml-model-deployment",
    "x-copilot-experiment",
    "retry-after",
];

/// A client's `X-Request-Id`, kept only when it is short printable ASCII:
/// it is echoed in headers and written to the audit record.
pub fn clean_request_id(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
}

/// The credential in an `Authorization` value: `Bearer <token>`, or
/// `token <token>` as Copilot clients send it.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    let accepted = scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token");
    (accepted && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_only_when_safe_to_echo() {
        let id = |s: &str| clean_request_id(Some(s.to_string()));
        assert_eq!(id("3f2a-retry-1").as_deref(), Some("3f2a-retry-1"));
        assert_eq!(id(""), None);
        assert_eq!(id("has space"), None);
        assert_eq!(id("line\nbreak"), None);
        assert_eq!(id("é"), None);
        assert_eq!(id(&"x".repeat(128)).map(|v| v.len()), Some(128));
        assert_eq!(id(&"x".repeat(129)), None);
        assert_eq!(clean_request_id(None), None);
    }

    #[test]
    fn bearer_and_token_schemes_carry_the_credential() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("token gho_x"), Some("gho_x"));
        assert_eq!(bearer_token("Basic YWxhZGRpbg=="), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("token "), None);
        assert_eq!(bearer_token("abc"), None);
    }
}
