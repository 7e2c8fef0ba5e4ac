//! Where text lives in Copilot request and response bodies. Masking works on
//! these fields only, so the JSON around them is never disturbed.

use serde_json::Value;

/// Visits every prompt text a client sends: chat `messages[].content` (plain
/// or as text parts), tool call arguments, completions `prompt` and `suffix`,
/// embeddings `input`.
pub fn for_each_prompt_text(body: &mut Value, f: &mut dyn FnMut(&mut String)) {
    if let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) {
        for message in messages {
            match message.get_mut("content") {
                Some(Value::String(s)) => f(s),
                Some(Value::Array(parts)) => {
                    for part in parts {
                        if let Some(Value::String(s)) = part.get_mut("text") {
                            f(s);
                        }
                    }
                }
                _ => {}
            }
            for_each_tool_call_arguments(message, f);
        }
    }
    // Completions `prompt`/`suffix`, embeddings and Responses `input`,
    // Responses `instructions`, Messages `system`: plain strings, lists of
    // strings, or items whose `content` / `text` hold the text.
    for field in ["prompt", "suffix", "input", "instructions", "system"] {
        match body.get_mut(field) {
            Some(Value::String(s)) => f(s),
            Some(Value::Array(items)) => {
                for item in items {
                    match item {
                        Value::String(s) => f(s),
                        Value::Object(_) => for_each_item_text(item, f),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
}

fn for_each_item_text(item: &mut Value, f: &mut dyn FnMut(&mut String)) {
    if let Some(Value::String(s)) = item.get_mut("text") {
        f(s);
    }
    match item.get_mut("content") {
        Some(Value::String(s)) => f(s),
        Some(Value::Array(parts)) => {
            for part in parts {
                if let Some(Value::String(s)) = part.get_mut("text") {
                    f(s);
                }
            }
        }
        _ => {}
    }
    for key in ["arguments", "output"] {
        if let Some(Value::String(s)) = item.get_mut(key) {
            f(s);
        }
    }
}

fn for_each_tool_call_arguments(holder: &mut Value, f: &mut dyn FnMut(&mut String)) {
    if let Some(calls) = holder.get_mut("tool_calls").and_then(Value::as_array_mut) {
        for call in calls {
            if let Some(Value::String(s)) = call.pointer_mut("/function/arguments") {
                f(s);
            }
        }
    }
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

/// Visits every generated text in a whole (non-streamed) response body.
pub fn for_each_response_text(body: &mut Value, f: &mut dyn FnMut(&mut String)) {
    if let Some(choices) = body.get_mut("choices").and_then(Value::as_array_mut) {
        for choice in choices {
            if let Some(Value::String(s)) = choice.get_mut("text") {
                f(s);
            }
            if let Some(message) = choice.get_mut("message") {
                if let Some(Value::String(s)) = message.get_mut("content") {
                    f(s);
                }
                for_each_tool_call_arguments(message, f);
            }
        }
    }
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
        (seen, body)
    }

    #[test]
    fn finds_every_prompt_text() {
        let body = serde_json::json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": [{"type": "text", "text": "part"}, {"type": "image_url", "image_url": {"url": "data:"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": "{\"a\":1}"}}]}
            ],
            "prompt": "p", "suffix": "s"
        });
        let (seen, out) = collect(body, true);
        assert_eq!(seen, vec!["sys", "part", "{\"a\":1}", "p", "s"]);
        assert_eq!(out["messages"][1]["content"][0]["text"], "PART");
        assert_eq!(out["model"], "gpt-4o");
    }

    #[test]
    fn finds_responses_and_messages_prompts() {
        let body = serde_json::json!({
            "instructions": "be brief",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "r1"}]},
                      {"type": "function_call_output", "output": "r2"}],
            "system": [{"type": "text", "text": "s1"}]
        });
        let (seen, _) = collect(body, true);
        assert_eq!(seen, vec!["r1", "r2", "be brief", "s1"]);
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
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "hi"}},
                {"index": 1, "text": "code"}
            ]
        });
        let (seen, out) = collect(body, false);
        assert_eq!(seen, vec!["hi", "code"]);
        assert_eq!(out["choices"][1]["text"], "CODE");
    }
}
