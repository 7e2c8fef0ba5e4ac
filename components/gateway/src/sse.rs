//! Masks Copilot SSE streams as they pass. Upstream framing is kept line for
//! line (one JSON object per `data:` line, blank separators, `[DONE]` last);
//! only text fields change. Each text field of each choice has its own
//! masker, so a secret split across events is still caught, while text that
//! cannot start a match is released at once.

use serde_json::Value;
use std::collections::BTreeMap;

/// Longest line accepted from upstream before the stream is failed.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// How much masked response text is kept for the audit record.
pub const MAX_TRANSCRIPT_BYTES: usize = 64 * 1024;

pub trait TextMasker {
    fn push(&mut self, text: &str) -> String;
    fn finish(&mut self) -> String;
}

/// A streamed body filter: bytes in as they arrive, bytes out to the client.
pub trait StreamFilter {
    fn push(&mut self, chunk: &[u8]) -> Result<Vec<u8>, SseError>;
    /// Upstream ended: releases held-back text and any unterminated line.
    fn finish(&mut self) -> Result<Vec<u8>, SseError>;
    /// Masked response text seen so far (bounded), for the audit record.
    fn transcript(&self) -> &str;
    /// Frames dropped because they could not be inspected (by policy).
    fn dropped_frames(&self) -> u32;
}

/// A filter that works line by line; `StreamFilter` follows from it.
pub trait LineFilter {
    fn lines(&mut self) -> &mut Lines;
    fn handle_line(&mut self, line: &[u8], out: &mut Vec<u8>) -> Result<(), SseError>;
    /// Releases everything still held back (the upstream ended).
    fn release_all(&mut self, out: &mut Vec<u8>);
    fn transcript_text(&self) -> &str;
    fn dropped(&self) -> u32;
}

impl<F: LineFilter> StreamFilter for F {
    fn push(&mut self, chunk: &[u8]) -> Result<Vec<u8>, SseError> {
        let mut out = Vec::new();
        let mut lines = std::mem::take(self.lines());
        let result = lines.feed(chunk, |line| self.handle_line(line, &mut out));
        *self.lines() = lines;
        result.map(|_| out)
    }

    fn finish(&mut self) -> Result<Vec<u8>, SseError> {
        let mut out = Vec::new();
        let line = self.lines().rest();
        if !line.is_empty() {
            self.handle_line(&line, &mut out)?;
        }
        self.release_all(&mut out);
        Ok(out)
    }

    fn transcript(&self) -> &str {
        self.transcript_text()
    }

    fn dropped_frames(&self) -> u32 {
        self.dropped()
    }
}

/// Splits a byte stream into lines, bounded in length.
#[derive(Default)]
pub struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    pub fn feed(
        &mut self,
        chunk: &[u8],
        mut on_line: impl FnMut(&[u8]) -> Result<(), SseError>,
    ) -> Result<(), SseError> {
        let mut start = 0;
        for (i, b) in chunk.iter().enumerate() {
            if *b == b'\n' {
                self.partial.extend_from_slice(&chunk[start..i]);
                start = i + 1;
                let line = std::mem::take(&mut self.partial);
                on_line(line.strip_suffix(b"\r").unwrap_or(&line))?;
            }
        }
        self.partial.extend_from_slice(&chunk[start..]);
        if self.partial.len() > MAX_LINE_BYTES {
            return Err(SseError::LineTooLong);
        }
        Ok(())
    }

    /// The unterminated last line, if any.
    pub fn rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.partial)
    }
}

/// Appends to a bounded transcript.
pub fn record(transcript: &mut String, text: &str) {
    if transcript.len() + text.len() <= MAX_TRANSCRIPT_BYTES {
        transcript.push_str(text);
    }
}

/// The payload of a `data:` line, trimmed; `None` for any other line.
pub fn data_payload(line: &[u8]) -> Result<Option<&str>, SseError> {
    let Some(data) = line.strip_prefix(b"data:") else {
        return Ok(None);
    };
    std::str::from_utf8(data)
        .map(|d| Some(d.trim()))
        .map_err(|_| SseError::Unparseable("event is not UTF-8".into()))
}

/// The unparseable-frame policy: such a frame ends the stream (default) or
/// is dropped and counted. It is never passed on.
#[derive(Debug, Default)]
pub struct FramePolicy {
    pub drop_unparseable: bool,
    pub dropped: u32,
}

impl FramePolicy {
    /// The event in `data`, or `None` when policy drops a frame it cannot parse.
    pub fn parse(&mut self, data: &str) -> Result<Option<Value>, SseError> {
        match serde_json::from_str(data) {
            Ok(v) => Ok(Some(v)),
            Err(_) if self.drop_unparseable => {
                self.dropped += 1;
                Ok(None)
            }
            Err(e) => Err(SseError::Unparseable(format!("event is not JSON: {e}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    LineTooLong,
    Unparseable(String),
}

/// Why a stream was ended, as the audit record and the error event say it.
impl std::fmt::Display for SseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SseError::LineTooLong => write!(f, "an upstream event was too long to inspect"),
            SseError::Unparseable(m) => write!(f, "an upstream event could not be inspected ({m})"),
        }
    }
}

/// The last event of a stream the gateway ends: an error in the shape
/// clients read from `data:` lines, so they stop rather than wait.
pub fn error_event(why: &str) -> String {
    format!(
        "data: {}\n\n",
        serde_json::json!({"error": {"code": "gateway_stream_error", "message": why}})
    )
}

/// Which text of a choice: its content/text, another text member of its
/// delta (`refusal`, `reasoning_content` …), or one tool call's arguments.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Content,
    Member(String),
    ToolArguments(u64),
}

pub struct SseMasker<M: TextMasker> {
    lines: Lines,
    maskers: BTreeMap<(u64, Slot), M>,
    new_masker: Box<dyn FnMut() -> M>,
    /// Last event seen, the template for events that flush held-back text.
    last_event: Option<Value>,
    /// Completions streams carry `choices[].text`, chat streams `delta.content`.
    completions_shape: bool,
    transcript: String,
    done: bool,
    frames: FramePolicy,
}

impl<M: TextMasker> SseMasker<M> {
    pub fn new(new_masker: impl FnMut() -> M + 'static) -> Self {
        SseMasker {
            lines: Lines::default(),
            maskers: BTreeMap::new(),
            new_masker: Box::new(new_masker),
            last_event: None,
            completions_shape: false,
            transcript: String::new(),
            done: false,
            frames: FramePolicy::default(),
        }
    }

    /// By policy, frames that cannot be inspected are dropped instead of
    /// ending the stream. They never pass unmasked.
    pub fn dropping_unparseable(mut self, drop: bool) -> Self {
        self.frames.drop_unparseable = drop;
        self
    }

    fn record(&mut self, text: &str) {
        record(&mut self.transcript, text);
    }

    fn handle_line(&mut self, line: &[u8], out: &mut Vec<u8>) -> Result<(), SseError> {
        if line.is_empty() {
            out.push(b'\n');
            return Ok(());
        }
        let Some(data) = data_payload(line)? else {
            // Comments and other fields are not part of Copilot's framing and
            // would be misread by clients that treat every line as data.
            return Ok(());
        };
        if data == "[DONE]" {
            self.flush_all(out);
            self.done = true;
            out.extend_from_slice(b"data: [DONE]\n");
            return Ok(());
        }
        let Some(mut event) = self.frames.parse(data)? else {
            return Ok(());
        };
        self.mask_event(&mut event);
        self.last_event = Some(event.clone());
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(event.to_string().as_bytes());
        out.push(b'\n');
        Ok(())
    }

    /// Streamed text fields go through their slot's masker; every other
    /// string of the event (events without `choices`, content arrays,
    /// names, anything new) is masked whole: nothing passes unread.
    fn mask_event(&mut self, event: &mut Value) {
        let mut choices = event.get_mut("choices").map(std::mem::take);
        self.mask_rest_whole(event);
        if let (Some(slot), Some(choices)) = (event.get_mut("choices"), choices.take()) {
            *slot = choices;
        }
        let Some(choices) = event.get_mut("choices").and_then(Value::as_array_mut) else {
            return;
        };
        for choice in choices {
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            let finished = choice.get("finish_reason").is_some_and(|r| !r.is_null());
            let streamed: Vec<(&str, Value)> = ["text", "delta"]
                .into_iter()
                .filter_map(|k| Some((k, std::mem::take(choice.get_mut(k)?))))
                .collect();
            self.mask_rest_whole(choice);
            for (k, v) in streamed {
                if let Some(slot) = choice.get_mut(k) {
                    *slot = v;
                }
            }
            if let Some(Value::String(text)) = choice.get_mut("text") {
                self.completions_shape = true;
                *text = self.mask(index, Slot::Content, text, finished);
            } else if choice.get("text").is_some_and(Value::is_null) && finished {
                let rest = self.flush_slot(index, Slot::Content);
                if let Some(obj) = choice.as_object_mut() {
                    obj.insert("text".into(), Value::String(rest));
                }
            }
            let Some(delta) = choice.get_mut("delta") else {
                continue;
            };
            self.mask_delta(index, delta, finished);
        }
    }

    /// Every text string of `value`, each masked whole.
    fn mask_rest_whole(&mut self, value: &mut Value) {
        let new_masker = &mut self.new_masker;
        crate::content::for_each_text(value, &mut |s| {
            let mut masker = new_masker();
            let mut masked = masker.push(s);
            masked.push_str(&masker.finish());
            *s = masked;
        });
    }

    fn mask_delta(&mut self, index: u64, delta: &mut Value, finished: bool) {
        match delta.get_mut("content") {
            Some(Value::String(text)) => *text = self.mask(index, Slot::Content, text, finished),
            _ if finished => {
                let rest = self.flush_slot(index, Slot::Content);
                if !rest.is_empty() {
                    match delta.as_object_mut() {
                        Some(obj) => {
                            obj.insert("content".into(), Value::String(rest));
                        }
                        // A malformed delta still carries the released text.
                        None => *delta = serde_json::json!({ "content": rest }),
                    }
                }
            }
            _ => {}
        }
        if let Some(members) = delta.as_object_mut() {
            for (key, value) in members.iter_mut() {
                match value {
                    Value::String(text) if key != "content" && key != "role" => {
                        *text = self.mask(index, Slot::Member(key.clone()), text, finished);
                    }
                    Value::String(_) => {}
                    // Content arrays and other shapes: masked whole.
                    _ if key != "tool_calls" => self.mask_rest_whole(value),
                    _ => {}
                }
            }
        }
        if let Some(calls) = delta.get_mut("tool_calls").and_then(Value::as_array_mut) {
            for (position, call) in calls.iter_mut().enumerate() {
                let tool = call
                    .get("index")
                    .and_then(Value::as_u64)
                    .unwrap_or(position as u64);
                let arguments = call.pointer_mut("/function/arguments").map(std::mem::take);
                self.mask_rest_whole(call);
                if let (Some(slot), Some(arguments)) =
                    (call.pointer_mut("/function/arguments"), arguments)
                {
                    *slot = arguments;
                }
                if let Some(Value::String(args)) = call.pointer_mut("/function/arguments") {
                    *args = self.mask(index, Slot::ToolArguments(tool), args, finished);
                }
            }
        }
        if finished {
            // A finished choice releases every text it still holds back.
            let held: Vec<Slot> = self
                .maskers
                .keys()
                .filter(|(i, s)| *i == index && *s != Slot::Content)
                .map(|(_, s)| s.clone())
                .collect();
            for slot in held {
                let rest = self.flush_slot(index, slot.clone());
                if rest.is_empty() {
                    continue;
                }
                let Some(members) = delta.as_object_mut() else {
                    continue;
                };
                match slot {
                    Slot::ToolArguments(tool) => {
                        if let Value::Array(calls) = members
                            .entry("tool_calls")
                            .or_insert_with(|| Value::Array(Vec::new()))
                        {
                            calls.push(
                                serde_json::json!({"index": tool, "function": {"arguments": rest}}),
                            );
                        }
                    }
                    Slot::Member(key) => {
                        members.insert(key, Value::String(rest));
                    }
                    Slot::Content => {}
                }
            }
        }
    }

    fn mask(&mut self, index: u64, slot: Slot, text: &str, finished: bool) -> String {
        let masker = self
            .maskers
            .entry((index, slot.clone()))
            .or_insert_with(&mut self.new_masker);
        let mut released = masker.push(text);
        let is_content = slot == Slot::Content;
        if finished {
            released.push_str(&masker.finish());
            self.maskers.remove(&(index, slot));
        }
        if is_content {
            self.record(&released);
        }
        released
    }

    fn flush_slot(&mut self, index: u64, slot: Slot) -> String {
        let is_content = slot == Slot::Content;
        let rest = self
            .maskers
            .remove(&(index, slot))
            .map(|mut m| m.finish())
            .unwrap_or_default();
        if is_content {
            self.record(&rest);
        }
        rest
    }

    /// Emits one event per choice that still holds text back (a stream that
    /// ends without `finish_reason`), shaped like the events before it.
    fn flush_all(&mut self, out: &mut Vec<u8>) {
        let keys: Vec<(u64, Slot)> = self.maskers.keys().cloned().collect();
        for (index, slot) in keys {
            let rest = self.flush_slot(index, slot.clone());
            if rest.is_empty() || self.done {
                continue;
            }
            let mut event = match &self.last_event {
                Some(Value::Object(map)) => map.clone(),
                _ => serde_json::Map::new(),
            };
            let choice = match (slot, self.completions_shape) {
                (Slot::Content, true) => {
                    serde_json::json!({"index": index, "text": rest, "finish_reason": null})
                }
                (Slot::Content, false) => {
                    serde_json::json!({"index": index, "delta": {"content": rest}, "finish_reason": null})
                }
                (Slot::Member(key), _) => {
                    serde_json::json!({"index": index, "delta": {key: rest}, "finish_reason": null})
                }
                (Slot::ToolArguments(tool), _) => serde_json::json!({
                    "index": index,
                    "delta": {"tool_calls": [{"index": tool, "function": {"arguments": rest}}]},
                    "finish_reason": null
                }),
            };
            event.insert("choices".into(), Value::Array(vec![choice]));
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(Value::Object(event).to_string().as_bytes());
            out.extend_from_slice(b"\n\n");
        }
    }
}

impl<M: TextMasker> LineFilter for SseMasker<M> {
    fn lines(&mut self) -> &mut Lines {
        &mut self.lines
    }

    fn handle_line(&mut self, line: &[u8], out: &mut Vec<u8>) -> Result<(), SseError> {
        SseMasker::handle_line(self, line, out)
    }

    fn release_all(&mut self, out: &mut Vec<u8>) {
        self.flush_all(out);
    }

    fn transcript_text(&self) -> &str {
        &self.transcript
    }

    fn dropped(&self) -> u32 {
        self.frames.dropped
    }
}

/// A masker for tests: hides the word SECRET, holding back any tail that
/// could begin it, as the real masking filter does with secrets.
#[cfg(test)]
pub mod word_masker {
    use super::TextMasker;

    #[derive(Default)]
    pub struct WordMasker(String);

    impl TextMasker for WordMasker {
        fn push(&mut self, text: &str) -> String {
            self.0.push_str(text);
            let masked = self.0.replace("SECRET", "******");
            let keep = (1..6)
                .rev()
                .find(|n| masked.len() >= *n && "SECRET".starts_with(&masked[masked.len() - n..]))
                .unwrap_or(0);
            let (out, held) = masked.split_at(masked.len() - keep);
            let out = out.to_string();
            self.0 = held.to_string();
            out
        }
        fn finish(&mut self) -> String {
            std::mem::take(&mut self.0).replace("SECRET", "******")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::word_masker::WordMasker;

    fn chat_event(content: &str, finish: Option<&str>) -> String {
        format!(
            "data: {}\n\n",
            serde_json::json!({"id": "c1", "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]})
        )
    }

    fn run(input: &str, split_every: usize) -> (String, String) {
        let mut masker = SseMasker::new(WordMasker::default);
        let mut out = Vec::new();
        for chunk in input.as_bytes().chunks(split_every) {
            out.extend(masker.push(chunk).unwrap());
        }
        out.extend(masker.finish().unwrap());
        (
            String::from_utf8(out).unwrap(),
            masker.transcript().to_string(),
        )
    }

    fn contents(output: &str) -> String {
        output
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| {
                let v: Value = serde_json::from_str(d).unwrap();
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn a_stream_ended_by_the_gateway_says_why_in_a_data_event() {
        let why = SseError::Unparseable("expected value".into()).to_string();
        assert_eq!(
            why,
            "an upstream event could not be inspected (expected value)"
        );
        let event = error_event(&why);
        let data = event
            .strip_prefix("data: ")
            .and_then(|e| e.strip_suffix("\n\n"))
            .unwrap();
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["error"]["code"], "gateway_stream_error");
        assert_eq!(v["error"]["message"], why);
    }

    #[test]
    fn a_secret_split_across_events_is_masked_at_any_chunking() {
        let input = [
            chat_event("the key is SE", None),
            chat_event("CR", None),
            chat_event("ET ok", Some("stop")),
            "data: [DONE]\n\n".to_string(),
        ]
        .concat();
        for split in [1, 2, 7, 64, 4096] {
            let (out, transcript) = run(&input, split);
            assert!(!out.contains("SECRET") && !out.contains("\"CR\""), "{out}");
            assert_eq!(contents(&out), "the key is ****** ok");
            assert_eq!(transcript, "the key is ****** ok");
            assert!(out.ends_with("data: [DONE]\n\n"));
            // One JSON object per data line, blank line after each.
            assert_eq!(out.matches("data: ").count(), 4);
            assert_eq!(out.matches("\n\n").count(), 4);
        }
    }

    #[test]
    fn held_back_text_is_released_when_the_stream_ends_without_finish() {
        let input = [chat_event("abc SEC", None), "data: [DONE]\n\n".to_string()].concat();
        let (out, _) = run(&input, 3);
        assert_eq!(contents(&out), "abc SEC");
        assert!(out.ends_with("data: [DONE]\n\n"));
    }

    #[test]
    fn completions_text_and_comments() {
        let event = serde_json::json!({"choices": [{"index": 0, "text": "x SECRET", "finish_reason": "stop"}]});
        let input = format!(": keep-alive\ndata:{event}\r\n\r\ndata: [DONE]\n\n");
        let (out, _) = run(&input, 5);
        assert!(!out.contains("keep-alive"));
        assert!(out.contains("x ******"));
    }

    #[test]
    fn odd_shapes_pass_without_panicking() {
        let input = concat!(
            "data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"a SEC\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b SEC\"}}]}\n\n",
            "data: {\"choices\":[7,{\"index\":0,\"delta\":\"x\",\"finish_reason\":\"stop\"}]}\n\n",
            "data: 5\n\n",
            "data: [1,2]\n\n",
            "data: [DONE]\n\n",
        );
        let (out, transcript) = run(input, 3);
        assert!(out.ends_with("data: [DONE]\n\n"));
        // Held-back text of both choices is released, whatever came around it.
        assert_eq!(out.matches("SEC").count(), 2, "{out}");
        assert_eq!(transcript.matches("SEC").count(), 2);
    }

    #[test]
    fn every_string_of_a_chat_event_is_masked_not_only_the_listed_fields() {
        let input = concat!(
            // No `choices` at all.
            "data: {\"error\":{\"message\":\"the SECRET leaked\"},\"model\":\"gpt-4o\"}\n\n",
            // A refusal and reasoning streamed across events, a secret split.
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"refusal\":\"no SE\",\"reasoning_content\":\"think SEC\"}}]}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"CRET\",\"reasoning_content\":\"RET\"}}]}\n\n",
            // Content as an array of parts, and a tool call's name.
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":[{\"type\":\"text\",\"text\":\"a SECRET\"}],\"tool_calls\":[{\"index\":0,\"id\":\"t1\",\"function\":{\"name\":\"SECRET\",\"arguments\":\"{}\"}}]}}]}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        for split in [1, 7, 1000] {
            let (out, _) = run(input, split);
            assert!(!out.contains("SECRET"), "split {split}: {out}");
            let streamed = |member: &str| -> String {
                out.lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                    .filter_map(|v| {
                        v["choices"][0]["delta"][member]
                            .as_str()
                            .map(str::to_string)
                    })
                    .collect()
            };
            assert_eq!(streamed("refusal"), "no ******", "split {split}");
            assert_eq!(
                streamed("reasoning_content"),
                "think ******",
                "split {split}"
            );
            // Identifiers and model names are not text: untouched.
            assert!(out.contains("\"model\":\"gpt-4o\"") && out.contains("\"id\":\"c1\""));
        }
    }

    #[test]
    fn unparseable_events_can_be_dropped_by_policy() {
        let mut masker = SseMasker::new(WordMasker::default).dropping_unparseable(true);
        let mut out = masker
            .push(b"data: {not json\n\ndata: {\"choices\":[]}\n\n")
            .unwrap();
        out.extend(masker.finish().unwrap());
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("not json"));
        assert!(out.contains("{\"choices\":[]}"));
        assert_eq!(masker.dropped_frames(), 1);
    }

    #[test]
    fn unparseable_events_fail_closed() {
        let mut masker = SseMasker::new(WordMasker::default);
        assert!(matches!(
            masker.push(b"data: {not json\n"),
            Err(SseError::Unparseable(_))
        ));
        let mut masker = SseMasker::new(WordMasker::default);
        assert_eq!(
            masker.push(&vec![b'a'; MAX_LINE_BYTES + 1]),
            Err(SseError::LineTooLong)
        );
    }
}
