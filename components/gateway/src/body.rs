//! Request bodies: how large they may be and how JSON is read from them.

use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorKind};

/// Largest body accepted on the access API.
pub const MAX_API_BODY: usize = 64 * 1024;
/// Largest prompt body accepted for Copilot calls (and telemetry).
pub const MAX_PROMPT_BODY: usize = 4 * 1024 * 1024;
/// Largest non-streamed upstream body the gateway will inspect.
pub const MAX_UPSTREAM_BODY: usize = 16 * 1024 * 1024;

pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorKind::BodyTooLarge,
        format!("request bodies are limited to {limit} bytes"),
    )
}

pub fn unreadable() -> ApiError {
    ApiError::new(ErrorKind::BadBody, "the request body could not be read")
}

/// Whether a declared `content-length` already exceeds `limit`, so the body
/// need not be read to refuse it. A header that is not a number decides
/// nothing: the read itself is bounded.
pub fn declared_too_large(content_length: Option<&str>, limit: usize) -> bool {
    content_length
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|n| n > limit)
}

/// A JSON body that must be there.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::new(ErrorKind::BadJson, "a JSON body is required"));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            ErrorKind::BadJson,
            format!("the body is not valid JSON for this call: {e}"),
        )
    })
}

/// A body that may be left out: empty (or blank) means the defaults.
pub fn parse_optional_json<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse_json(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Default, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Comment {
        #[serde(default)]
        comment: String,
    }

    #[test]
    fn a_required_body_must_be_json_of_the_right_shape() {
        let empty = parse_json::<Comment>(b"").unwrap_err();
        assert_eq!(
            (empty.status(), empty.message.as_str()),
            (400, "a JSON body is required")
        );
        assert_eq!(
            parse_json::<Comment>(b"not json").unwrap_err().status(),
            400
        );
        assert_eq!(
            parse_json::<Comment>(br#"{"other": 1}"#).unwrap_err().kind,
            ErrorKind::BadJson
        );
        assert_eq!(
            parse_json::<Comment>(br#"{"comment": "ok"}"#).unwrap(),
            Comment {
                comment: "ok".into()
            }
        );
    }

    #[test]
    fn an_optional_body_may_be_empty_or_blank() {
        assert_eq!(
            parse_optional_json::<Comment>(b"").unwrap(),
            Comment::default()
        );
        assert_eq!(
            parse_optional_json::<Comment>(b" \n").unwrap(),
            Comment::default()
        );
        assert!(parse_optional_json::<Comment>(b"{").is_err());
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_before_reading() {
        assert!(declared_too_large(Some("65537"), MAX_API_BODY));
        assert!(!declared_too_large(Some(" 65536 "), MAX_API_BODY));
        assert!(!declared_too_large(Some("lots"), MAX_API_BODY));
        assert!(!declared_too_large(None, MAX_API_BODY));
        assert_eq!(too_large(MAX_API_BODY).status(), 413);
    }
}
