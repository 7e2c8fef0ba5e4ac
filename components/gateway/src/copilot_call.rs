//! Decisions about one proxied Copilot call: whether the grant covers it,
//! which model it names, where it goes upstream, when the gateway retries
//! with a fresh credential, and how the answer comes back.

use serde_json::{json, Value};

use crate::config::Upstream;
use crate::copilot;
use crate::error::{ApiError, ErrorKind};
use crate::routes::CopilotCall;

/// How much of a failed upstream answer a client sees (masked).
const MAX_UPSTREAM_ERROR_CHARS: usize = 2000;

/// Whether a grant's scopes cover the call. Model listings serve every
/// grant: clients need them whatever they were granted.
pub fn scope_granted(call: &CopilotCall, scopes: &[String]) -> bool {
    if call.is_listing() {
        !scopes.is_empty()
    } else {
        scopes.iter().any(|s| s == call.scope())
    }
}

/// Whether a grant's models allow `model` (a grant naming none allows all).
pub fn model_granted(models: &[String], model: &str) -> bool {
    models.is_empty() || models.iter().any(|m| m == model)
}

/// The model a call names: in the path for engine completions, else the
/// body's `model`.
pub fn named_model(call: &CopilotCall, body: &Value) -> Option<String> {
    match call {
        CopilotCall::EngineCompletions { model } => Some(model.clone()),
        _ => body
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

/// The model a generating call uses, checked against the grant. A call that
/// names none (or not as a string) would get upstream's default, which
/// neither the grant's model list nor a model policy could see: refused.
pub fn checked_model(
    call: &CopilotCall,
    body: &Value,
    granted: &[String],
) -> Result<Option<String>, ApiError> {
    if call.is_listing() {
        return Ok(None);
    }
    let Some(model) = named_model(call, body) else {
        return Err(if granted.is_empty() {
            ApiError::new(
                ErrorKind::BadRequest,
                "the request must name its model (a string `model` field)",
            )
        } else {
            ApiError::new(
                ErrorKind::ModelNotGranted,
                format!(
                    "your grant allows only {}; this call names no model",
                    granted.join(", ")
                ),
            )
        });
    };
    if !model_granted(granted, &model) {
        return Err(ApiError::new(
            ErrorKind::ModelNotGranted,
            format!("your grant does not include model {model}"),
        ));
    }
    Ok(Some(model))
}

pub fn wants_stream(body: &Value) -> bool {
    body.get("stream").and_then(Value::as_bool).unwrap_or(false)
}

/// Which Copilot host serves the call.
pub fn upstream_of(call: &CopilotCall) -> Upstream {
    if call.uses_proxy_host() {
        Upstream::CopilotProxy
    } else {
        Upstream::CopilotApi
    }
}

/// Whether an upstream answer to attempt `attempt` (0 first) calls for the
/// one retry with a freshly exchanged Copilot token: the cached one may have
/// been revoked upstream before its refresh time.
pub fn retry_with_fresh_token(status: u16, attempt: u32) -> bool {
    matches!(status, 401 | 403) && attempt == 0
}

/// How a stream is framed, so the right masker keeps its framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `data:` lines of chat or completions chunks.
    Chunks,
    /// `event:` lines with per-block deltas (Responses, Messages).
    EventTyped,
}

/// Which parts of a whole answer are masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WholeMasking {
    /// Listings carry no generated text.
    Nothing,
    /// Shapes vary by API: every string is masked.
    EveryString,
    /// The generated text fields of chat, completions and embeddings.
    ResponseText,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerShape {
    /// Masked as it passes, never buffered whole.
    Stream(Framing),
    /// Read whole (bounded), masked field by field.
    Whole(WholeMasking),
    /// Upstream said no: its answer becomes an error clients understand.
    UpstreamError,
}

/// Stream or whole: a 200 streams when upstream says it is an event stream
/// or the client asked for one.
pub fn answer_shape(
    call: &CopilotCall,
    upstream_status: u16,
    content_type: &str,
    wants_stream: bool,
) -> AnswerShape {
    let event_typed = matches!(call, CopilotCall::Responses | CopilotCall::Messages);
    if upstream_status != 200 {
        AnswerShape::UpstreamError
    } else if content_type.contains("event-stream") || wants_stream {
        AnswerShape::Stream(if event_typed {
            Framing::EventTyped
        } else {
            Framing::Chunks
        })
    } else if call.is_listing() {
        AnswerShape::Whole(WholeMasking::Nothing)
    } else if event_typed {
        AnswerShape::Whole(WholeMasking::EveryString)
    } else {
        AnswerShape::Whole(WholeMasking::ResponseText)
    }
}

/// The status and body a client gets for a failed upstream answer. Its
/// JSON passes as it is when the status does too; otherwise the upstream
/// text, cut and masked with `mask`, is kept in our shape, since clients
/// match error bodies by substring.
pub fn upstream_error(status: u16, body: &[u8], mask: impl FnOnce(&str) -> String) -> (u16, Value) {
    let client_status = copilot::client_status(status);
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if client_status == status => (status, v),
        _ => {
            let text: String = String::from_utf8_lossy(body)
                .chars()
                .take(MAX_UPSTREAM_ERROR_CHARS)
                .collect();
            (
                client_status,
                json!({"error": {"code": format!("upstream_{status}"), "message": mask(&text)}}),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_call_needs_its_scope_and_listings_need_any() {
        let chat = CopilotCall::ChatCompletions;
        let completions = CopilotCall::EngineCompletions {
            model: "gpt-4o".into(),
        };
        assert!(scope_granted(&chat, &scopes(&["chat"])));
        assert!(!scope_granted(&chat, &scopes(&["completions"])));
        assert!(scope_granted(&completions, &scopes(&["completions"])));
        assert!(scope_granted(
            &CopilotCall::Models,
            &scopes(&["completions"])
        ));
        assert!(!scope_granted(&CopilotCall::Models, &[]));
        assert!(!scope_granted(&CopilotCall::Embeddings, &scopes(&["chat"])));
    }

    #[test]
    fn models_are_limited_only_when_the_grant_names_some() {
        assert!(model_granted(&[], "o1"));
        assert!(model_granted(&scopes(&["gpt-4o"]), "gpt-4o"));
        assert!(!model_granted(&scopes(&["gpt-4o"]), "o1"));
    }

    #[test]
    fn the_model_comes_from_the_path_or_the_body() {
        let body = json!({"model": "o1", "stream": true});
        let engine = CopilotCall::EngineCompletions {
            model: "gpt-41-copilot".into(),
        };
        assert_eq!(
            named_model(&engine, &body).as_deref(),
            Some("gpt-41-copilot")
        );
        assert_eq!(
            named_model(&CopilotCall::ChatCompletions, &body).as_deref(),
            Some("o1")
        );
        assert_eq!(
            named_model(&CopilotCall::ChatCompletions, &json!({"model": 3})),
            None
        );
        assert!(wants_stream(&body));
        assert!(!wants_stream(&json!({"stream": "yes"})));
        assert_eq!(upstream_of(&engine), Upstream::CopilotProxy);
        assert_eq!(upstream_of(&CopilotCall::Messages), Upstream::CopilotApi);
    }

    #[test]
    fn only_the_first_refusal_is_retried() {
        assert!(retry_with_fresh_token(401, 0));
        assert!(retry_with_fresh_token(403, 0));
        assert!(!retry_with_fresh_token(401, 1));
        assert!(!retry_with_fresh_token(429, 0));
        assert!(!retry_with_fresh_token(200, 0));
    }

    #[test]
    fn answers_stream_when_upstream_or_the_client_says_so() {
        let chat = CopilotCall::ChatCompletions;
        assert_eq!(
            answer_shape(&chat, 200, "text/event-stream", false),
            AnswerShape::Stream(Framing::Chunks)
        );
        assert_eq!(
            answer_shape(&chat, 200, "application/json", true),
            AnswerShape::Stream(Framing::Chunks)
        );
        assert_eq!(
            answer_shape(&CopilotCall::Messages, 200, "text/event-stream", false),
            AnswerShape::Stream(Framing::EventTyped)
        );
        assert_eq!(
            answer_shape(&chat, 200, "application/json", false),
            AnswerShape::Whole(WholeMasking::ResponseText)
        );
        assert_eq!(
            answer_shape(&CopilotCall::Responses, 200, "application/json", false),
            AnswerShape::Whole(WholeMasking::EveryString)
        );
        assert_eq!(
            answer_shape(&CopilotCall::Models, 200, "application/json", false),
            AnswerShape::Whole(WholeMasking::Nothing)
        );
        // An error never streams, even when the client asked for a stream.
        assert_eq!(
            answer_shape(&chat, 429, "text/event-stream", true),
            AnswerShape::UpstreamError
        );
    }

    #[test]
    fn upstream_errors_keep_their_json_unless_the_status_changes() {
        let (status, body) = upstream_error(429, br#"{"error": {"message": "slow down"}}"#, |t| {
            t.to_string()
        });
        assert_eq!(
            (status, body["error"]["message"].as_str()),
            (429, Some("slow down"))
        );
        // The gateway's credential failed: a 502, in our shape, text masked.
        let (status, body) = upstream_error(401, br#"{"message": "bad token ghu_x"}"#, |t| {
            t.replace("ghu_x", "[REDACTED]")
        });
        assert_eq!(status, 502);
        assert_eq!(body["error"]["code"], "upstream_401");
        assert_eq!(
            body["error"]["message"],
            r#"{"message": "bad token [REDACTED]"}"#
        );
        let (status, body) = upstream_error(500, &[b'x'; 5000], |t| t.to_string());
        assert_eq!(status, 500);
        assert_eq!(body["error"]["message"].as_str().map(str::len), Some(2000));
    }
}

#[cfg(test)]
mod model_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_generating_call_must_name_a_granted_model() {
        let chat = CopilotCall::ChatCompletions;
        let limited = vec!["gpt-4o".to_string()];
        assert_eq!(
            checked_model(&chat, &json!({"model": "gpt-4o"}), &limited).ok(),
            Some(Some("gpt-4o".into()))
        );
        for body in [json!({}), json!({"model": 4}), json!({"model": null})] {
            let refused = checked_model(&chat, &body, &limited).err().map(|e| e.kind);
            assert_eq!(refused, Some(ErrorKind::ModelNotGranted), "{body}");
            let refused = checked_model(&chat, &body, &[]).err().map(|e| e.kind);
            assert_eq!(refused, Some(ErrorKind::BadRequest), "{body}");
        }
        let other = checked_model(&chat, &json!({"model": "o1-preview"}), &limited);
        assert_eq!(
            other.err().map(|e| e.kind),
            Some(ErrorKind::ModelNotGranted)
        );
        assert_eq!(
            checked_model(&CopilotCall::Models, &json!({}), &limited).ok(),
            Some(None)
        );
    }
}
