//! Where text lives in Copilot request and response bodies. Masking works on
//! string values in place, so the JSON around them is never disturbed.
//!
//! The rule: every string a client sends, and every string a model answers,
//! is text to inspect — unless its field is known to hold something else
//! (an id, a role, a model name, an enumeration, image bytes). New fields,
//! nested content arrays, tool results and reasoning summaries are therefore
//! inspected without anyone listing them.

use serde_json::{Map, Value};

/// Fields whose strings are identifiers or enumerations, never prose or
/// code: skipped, with everything under them.
const NON_TEXT_KEYS: &[&str] = &[
    "id",
    "model",
    "role",
    "type",
    "object",
    "status",
    "finish_reason",
    "stop_reason",
    "tool_call_id",
    "call_id",
    "tool_use_id",
    "system_fingerprint",
    "previous_response_id",
    "media_type",
    "encoding_format",
    "service_tier",
];

/// Image bytes are not text: a data URL (`image_url`, `input_image`) or an
/// Anthropic base64 `source` with an image media type.
fn is_image_data(holder: &Map<String, Value>, key: &str, value: &Value) -> bool {
    let Value::String(s) = value else {
        return false;
    };
    let data_url = key.ends_with("url") && s.starts_with("data:image/") && s.contains(";base64,");
    let base64_source = key == "data"
        && holder.get("type").and_then(Value::as_str) == Some("base64")
        && holder
            .get("media_type")
            .and_then(Value::as_str)
            .is_some_and(|m| m.starts_with("image/"));
    data_url || base64_source
}

/// Visits every text string in `value` (object keys untouched), skipping
/// the fields `NON_TEXT_KEYS` names and image data.
pub fn for_each_text(value: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter_mut().for_each(|v| for_each_text(v, f)),
        Value::Object(map) => {
            let skipped: Vec<String> = map
                .iter()
                .filter(|(k, v)| NON_TEXT_KEYS.contains(&k.as_str()) || is_image_data(map, k, v))
                .map(|(k, _)| k.clone())
                .collect();
            for (k, v) in map.iter_mut() {
                if !skipped.contains(k) {
                    for_each_text(v, f);
                }
            }
        }
        _ => {}
    }
}

/// Visits every prompt text a client sends: messages and their content
/// parts, tool calls and tool results, completions `prompt` and `suffix`,
/// Responses `input` items, `instructions`, Messages `system` — and any
/// other string field that is not known to be non-text.
pub fn for_each_prompt_text(body: &mut Value, f: &mut dyn FnMut(&mut String)) {
    for_each_text(body, f)
}

/// Visits every string in a JSON document (keys untouched): the fail-safe
/// for answer shapes with no dedicated walker.
pub fn for_each_string(body: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match body {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter_mut().for_each(|v| for_each_string(v, f)),
        Value::Object(map) => map.values_mut().for_each(|v| for_each_string(v, f)),
        _ => {}
    }
}

/// Visits every generated text in a whole (non-streamed) response body:
/// message content (plain or parts), refusals, reasoning, tool-call
/// arguments, completions text, and any other text field.
pub fn for_each_response_text(body: &mut Value, f: &mut dyn FnMut(&mut String)) {
    for_each_text(body, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(mut body: Value, prompt: bool) -> (Vec<String>, Value) {
        let mut seen = Vec::new();
        let mut f = |s: &mut String| {
            seen.push(s.clone());
            *s = s.to_uppercase();
        };
        if prompt {
            for_each_prompt_text(&mut body, &mut f);
        } else {
            for_each_response_text(&mut body, &mut f);
        }
        seen.sort();
        (seen, body)
    }

    #[test]
    fn finds_every_prompt_text() {
        let body = serde_json::json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": [{"type": "text", "text": "part"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUtJQQ=="}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "tool output"}
            ],
            "prompt": "p", "suffix": "s"
        });
        let (seen, out) = collect(body, true);
        assert_eq!(
            seen,
            vec!["f", "p", "part", "s", "sys", "tool output", "{\"a\":1}"]
        );
        assert_eq!(out["messages"][1]["content"][0]["text"], "PART");
        assert_eq!(out["model"], "gpt-4o");
        assert_eq!(out["messages"][2]["tool_calls"][0]["id"], "call_1");
        assert_eq!(
            out["messages"][1]["content"][1]["image_url"]["url"],
            "data:image/png;base64,QUtJQQ=="
        );
    }

    #[test]
    fn finds_responses_and_messages_prompts() {
        let body = serde_json::json!({
            "instructions": "be brief",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "r1"}]},
                      {"type": "function_call_output", "call_id": "c1", "output": "r2"},
                      {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "r3"}]},
                      {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "r4"}]}],
            "system": [{"type": "text", "text": "s1"}]
        });
        let (seen, _) = collect(body, true);
        assert_eq!(seen, vec!["be brief", "r1", "r2", "r3", "r4", "s1"]);
    }

    #[test]
    fn finds_anthropic_tool_results_and_nested_content() {
        let body = serde_json::json!({
            "model": "claude-sonnet-4",
            "messages": [{"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "key file"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "nested"}]},
                {"type": "tool_use", "id": "toolu_3", "name": "read", "input": {"path": "/etc/secret"}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
            ]}]
        });
        let (seen, out) = collect(body, true);
        assert_eq!(seen, vec!["/etc/secret", "key file", "nested", "read"]);
        assert_eq!(
            out["messages"][0]["content"][3]["source"]["data"],
            "iVBORw0KGgo="
        );
    }

    #[test]
    fn every_string_is_visited() {
        let mut body = serde_json::json!({"a": ["x", {"b": "y", "n": 1}], "c": null});
        let mut seen = Vec::new();
        for_each_string(&mut body, &mut |s| seen.push(s.clone()));
        seen.sort();
        assert_eq!(seen, vec!["x", "y"]);
    }

    #[test]
    fn finds_every_response_text() {
        let body = serde_json::json!({
            "id": "chatcmpl-1",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "hi", "refusal": "no",
                  "reasoning_text": "why", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}},
                {"index": 1, "text": "code", "finish_reason": "stop"},
                {"index": 2, "message": {"content": [{"type": "text", "text": "part"}]}}
            ],
            "model": "gpt-4o"
        });
        let (seen, out) = collect(body, false);
        assert_eq!(seen, vec!["code", "f", "hi", "no", "part", "why", "{}"]);
        assert_eq!(out["choices"][1]["text"], "CODE");
        assert_eq!(out["id"], "chatcmpl-1");
    }
}
