//! Masks event-typed SSE streams: the OpenAI Responses API
//! (`response.output_text.delta` …) and the Anthropic Messages API
//! (`content_block_delta` …). Framing is kept, `event:` lines included.
//!
//! Streamed text fields are masked per block with a bounded hold-back, like
//! chat streams. When a block ends (`*.done`, `content_block_stop`) its
//! held-back text is released as one more delta event, emitted before the
//! end event. Every other string of every event (the full texts in `done`
//! and `completed` events, tool inputs) is masked whole.

use crate::content;
use crate::sse::{data_payload, record, FramePolicy, LineFilter, Lines, SseError, TextMasker};
use serde_json::Value;
use std::collections::BTreeMap;

/// One streamed text: its event family and position, and where the text sits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    family: String,
    index: u64,
    sub_index: u64,
}

struct Streamed<M> {
    masker: M,
    /// The last delta event of this block, to shape the release event.
    template: Value,
    field: Field,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// Responses API: `delta` is the text.
    Delta,
    /// Messages API: `delta.<name>` is the text.
    DeltaMember(&'static str),
}

const MESSAGE_DELTA_FIELDS: [&str; 3] = ["text", "partial_json", "thinking"];

fn number(event: &Value, key: &str) -> u64 {
    event.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn kind(event: &Value) -> &str {
    event.get("type").and_then(Value::as_str).unwrap_or("")
}

pub struct TypedSseMasker<M: TextMasker> {
    lines: Lines,
    streamed: BTreeMap<Key, Streamed<M>>,
    new_masker: Box<dyn FnMut() -> M>,
    /// An `event:` line waits for its `data:` line, so that release events
    /// can go before the event that ends a block.
    pending_event_line: Option<Vec<u8>>,
    uses_event_lines: bool,
    transcript: String,
    frames: FramePolicy,
}

impl<M: TextMasker> TypedSseMasker<M> {
    pub fn new(new_masker: impl FnMut() -> M + 'static) -> Self {
        TypedSseMasker {
            lines: Lines::default(),
            streamed: BTreeMap::new(),
            new_masker: Box::new(new_masker),
            pending_event_line: None,
            uses_event_lines: false,
            transcript: String::new(),
            frames: FramePolicy::default(),
        }
    }

    /// By policy, frames that cannot be inspected are dropped (with their
    /// `event:` line) instead of ending the stream.
    pub fn dropping_unparseable(mut self, drop: bool) -> Self {
        self.frames.drop_unparseable = drop;
        self
    }

    fn mask_whole(&mut self, text: &str) -> String {
        let mut m = (self.new_masker)();
        let mut out = m.push(text);
        out.push_str(&m.finish());
        out
    }

    fn write_event(&self, event: &Value, out: &mut Vec<u8>) {
        if self.uses_event_lines {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(kind(event).as_bytes());
            out.push(b'\n');
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(event.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
    }

    /// The streamed text of a delta event, if it is one.
    fn delta_of(event: &Value) -> Option<(Key, Field)> {
        let t = kind(event);
        if let Some(family) = t.strip_suffix(".delta") {
            if event.get("delta").is_some_and(Value::is_string) {
                let sub = number(event, "content_index").max(number(event, "summary_index"));
                let key = Key {
                    family: family.to_string(),
                    index: number(event, "output_index"),
                    sub_index: sub,
                };
                return Some((key, Field::Delta));
            }
        }
        if t == "content_block_delta" {
            let delta = event.get("delta")?;
            let name = MESSAGE_DELTA_FIELDS
                .into_iter()
                .find(|f| delta.get(*f).is_some_and(Value::is_string))?;
            let key = Key {
                family: format!("content_block:{name}"),
                index: number(event, "index"),
                sub_index: 0,
            };
            return Some((key, Field::DeltaMember(name)));
        }
        None
    }

    fn text_mut(event: &mut Value, field: Field) -> Option<&mut String> {
        let slot = match field {
            Field::Delta => event.get_mut("delta")?,
            Field::DeltaMember(name) => event.get_mut("delta")?.get_mut(name)?,
        };
        match slot {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Keys a block-ending event closes.
    fn closed_by(&self, event: &Value) -> Vec<Key> {
        let t = kind(event);
        self.streamed
            .keys()
            .filter(|k| match t.strip_suffix(".done") {
                Some(family) => {
                    k.family == family
                        && k.index == number(event, "output_index")
                        && k.sub_index
                            == number(event, "content_index").max(number(event, "summary_index"))
                }
                None => {
                    t == "content_block_stop"
                        && k.family.starts_with("content_block:")
                        && k.index == number(event, "index")
                }
            })
            .cloned()
            .collect()
    }

    fn release(&mut self, key: &Key, out: &mut Vec<u8>) {
        let Some(mut s) = self.streamed.remove(key) else {
            return;
        };
        let rest = s.masker.finish();
        if rest.is_empty() {
            return;
        }
        if !key.family.starts_with("content_block:thinking")
            && s.field != Field::DeltaMember("partial_json")
        {
            record(&mut self.transcript, &rest);
        }
        if let Some(text) = Self::text_mut(&mut s.template, s.field) {
            *text = rest;
        }
        self.write_event(&s.template, out);
    }

    fn handle_data(&mut self, data: &str, out: &mut Vec<u8>) -> Result<(), SseError> {
        if data == "[DONE]" {
            self.release_all(out);
            out.extend_from_slice(b"data: [DONE]\n");
            return Ok(());
        }
        let Some(mut event) = self.frames.parse(data)? else {
            // Dropped by policy, with its `event:` line.
            self.pending_event_line = None;
            return Ok(());
        };
        if let Some((key, field)) = Self::delta_of(&event) {
            let new_masker = &mut self.new_masker;
            let entry = self.streamed.entry(key).or_insert_with(|| Streamed {
                masker: new_masker(),
                template: Value::Null,
                field,
            });
            if let Some(text) = Self::text_mut(&mut event, field) {
                let released = entry.masker.push(text);
                *text = released.clone();
                if field == Field::Delta || field == Field::DeltaMember("text") {
                    record(&mut self.transcript, &released);
                }
            }
            entry.template = event.clone();
        } else {
            for key in self.closed_by(&event) {
                self.release(&key, out);
            }
            let mut strings = Vec::new();
            content::for_each_string(&mut event, &mut |s| strings.push(s.clone()));
            let masked: Vec<String> = strings.iter().map(|s| self.mask_whole(s)).collect();
            let mut masked = masked.into_iter();
            content::for_each_string(&mut event, &mut |s| {
                if let Some(m) = masked.next() {
                    *s = m;
                }
            });
        }
        if let Some(line) = self.pending_event_line.take() {
            out.extend_from_slice(&line);
            out.push(b'\n');
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(event.to_string().as_bytes());
        out.push(b'\n');
        Ok(())
    }

    fn handle_line(&mut self, line: &[u8], out: &mut Vec<u8>) -> Result<(), SseError> {
        if line.is_empty() {
            if let Some(l) = self.pending_event_line.take() {
                out.extend_from_slice(&l);
                out.push(b'\n');
            }
            out.push(b'\n');
            return Ok(());
        }
        if line.starts_with(b"event:") {
            self.uses_event_lines = true;
            self.pending_event_line = Some(line.to_vec());
            return Ok(());
        }
        let Some(data) = data_payload(line)? else {
            // Comments and unknown fields carry no content; they are dropped.
            return Ok(());
        };
        self.handle_data(data, out)
    }

    fn release_all(&mut self, out: &mut Vec<u8>) {
        let keys: Vec<Key> = self.streamed.keys().cloned().collect();
        for key in keys {
            self.release(&key, out);
        }
    }
}

impl<M: TextMasker> LineFilter for TypedSseMasker<M> {
    fn lines(&mut self) -> &mut Lines {
        &mut self.lines
    }

    fn handle_line(&mut self, line: &[u8], out: &mut Vec<u8>) -> Result<(), SseError> {
        TypedSseMasker::handle_line(self, line, out)
    }

    fn release_all(&mut self, out: &mut Vec<u8>) {
        TypedSseMasker::release_all(self, out);
    }

    fn transcript_text(&self) -> &str {
        &self.transcript
    }

    fn dropped(&self) -> u32 {
        self.frames.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sse::word_masker::WordMasker;
    use crate::sse::StreamFilter;

    fn run(input: &str, split: usize) -> String {
        let mut m = TypedSseMasker::new(WordMasker::default);
        let mut out = Vec::new();
        for chunk in input.as_bytes().chunks(split) {
            out.extend(m.push(chunk).unwrap());
        }
        out.extend(m.finish().unwrap());
        String::from_utf8(out).unwrap()
    }

    fn event(kind: &str, data: serde_json::Value) -> String {
        format!("event: {kind}\ndata: {data}\n\n")
    }

    #[test]
    fn responses_stream_is_masked_across_deltas_and_in_done_events() {
        let input = [
            event("response.created", serde_json::json!({"type": "response.created", "response": {"id": "r1"}})),
            event("response.output_text.delta", serde_json::json!({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "key SE"})),
            event("response.output_text.delta", serde_json::json!({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "CRET and SEC"})),
            event("response.output_text.done", serde_json::json!({"type": "response.output_text.done", "output_index": 0, "content_index": 0, "text": "key SECRET and SEC"})),
            event("response.completed", serde_json::json!({"type": "response.completed", "response": {"output": [{"content": [{"text": "key SECRET and SEC"}]}]}})),
        ]
        .concat();
        for split in [1, 3, 17, 4096] {
            let out = run(&input, split);
            assert!(!out.contains("SECRET"), "{out}");
            // Every data line is one JSON object, preceded by its event line.
            let lines: Vec<&str> = out.lines().collect();
            for (i, l) in lines.iter().enumerate() {
                if let Some(d) = l.strip_prefix("data: ") {
                    let v: Value = serde_json::from_str(d).unwrap();
                    assert_eq!(
                        lines[i - 1],
                        format!("event: {}", v["type"].as_str().unwrap())
                    );
                }
            }
            // The deltas put together give the masked text, released before `done`.
            let deltas: String = lines
                .iter()
                .filter_map(|l| l.strip_prefix("data: "))
                .map(|d| serde_json::from_str::<Value>(d).unwrap())
                .take_while(|v| v["type"] != "response.output_text.done")
                .filter_map(|v| v["delta"].as_str().map(str::to_string))
                .collect();
            assert_eq!(deltas, "key ****** and SEC");
        }
    }

    #[test]
    fn messages_stream_releases_held_text_at_block_stop() {
        let input = [
            event("message_start", serde_json::json!({"type": "message_start", "message": {"id": "m1"}})),
            event("content_block_delta", serde_json::json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a SEC"}})),
            event("content_block_delta", serde_json::json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "RET b SE"}})),
            event("content_block_stop", serde_json::json!({"type": "content_block_stop", "index": 0})),
            event("message_stop", serde_json::json!({"type": "message_stop"})),
        ]
        .concat();
        let out = run(&input, 5);
        assert!(!out.contains("SECRET"), "{out}");
        let texts: String = out
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .filter_map(|v| v["delta"]["text"].as_str().map(str::to_string))
            .collect();
        assert_eq!(texts, "a ****** b SE");
        let stop = out.find("content_block_stop").unwrap();
        let last_delta = out.rfind("text_delta").unwrap();
        assert!(
            last_delta < stop,
            "held-back text comes before the block ends"
        );
    }
}
