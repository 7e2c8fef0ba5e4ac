//! Secret detection without run-time pattern compilation.
//!
//! Every detector is a fixed-shape matcher written as code, so an instance
//! pays nothing to start. Matching is greedy, left to right, on bytes; all
//! patterns are ASCII, so match boundaries are always UTF-8 char boundaries.
//! A decision at position `i` depends only on `text[i .. i + MAX_MATCH_LEN]`,
//! which is what lets the stream masker hold back a bounded tail and still
//! produce exactly what whole-text masking produces.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Block,
    Redact,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Prompt,
    Response,
}

/// Outcome of trying a detector at one position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    /// A complete match of this many bytes.
    Match(usize),
    /// The text ends before the detector can decide.
    NeedMore,
    NoMatch,
}

struct Detector {
    name: &'static str,
    prompt_action: Action,
    response_action: Action,
    probe: fn(&[u8]) -> Probe,
}

impl Detector {
    fn action(&self, direction: Direction) -> Action {
        match direction {
            Direction::Prompt => self.prompt_action,
            Direction::Response => self.response_action,
        }
    }
}

/// Longest text any detector needs to see to decide (github_pat_ + 82).
pub const MAX_MATCH_LEN: usize = 93;

const DETECTORS: &[Detector] = &[
    Detector {
        name: "github-token",
        prompt_action: Action::Redact,
        response_action: Action::Redact,
        probe: probe_github_token,
    },
    Detector {
        name: "aws-access-key-id",
        prompt_action: Action::Redact,
        response_action: Action::Redact,
        probe: probe_aws_access_key_id,
    },
    Detector {
        name: "private-key",
        prompt_action: Action::Block,
        response_action: Action::Redact,
        probe: probe_private_key_header,
    },
];

/// Matches `prefix` followed by exactly `len` bytes accepted by `class`.
fn probe_fixed(text: &[u8], prefix: &[u8], len: usize, class: fn(u8) -> bool) -> Probe {
    let known = text.len().min(prefix.len());
    if text[..known] != prefix[..known] {
        return Probe::NoMatch;
    }
    if text.len() < prefix.len() {
        return Probe::NeedMore;
    }
    let body = &text[prefix.len()..];
    let seen = body.len().min(len);
    if !body[..seen].iter().all(|b| class(*b)) {
        return Probe::NoMatch;
    }
    if seen < len {
        return Probe::NeedMore;
    }
    Probe::Match(prefix.len() + len)
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn is_alnum_underscore(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_upper_alnum(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

fn probe_github_token(text: &[u8]) -> Probe {
    let mut need_more = false;
    for prefix in [b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_"] {
        match probe_fixed(text, prefix, 36, is_alnum) {
            Probe::Match(n) => return Probe::Match(n),
            Probe::NeedMore => need_more = true,
            Probe::NoMatch => {}
        }
    }
    match probe_fixed(text, b"github_pat_", 82, is_alnum_underscore) {
        Probe::Match(n) => Probe::Match(n),
        Probe::NeedMore => Probe::NeedMore,
        Probe::NoMatch if need_more => Probe::NeedMore,
        Probe::NoMatch => Probe::NoMatch,
    }
}

fn probe_aws_access_key_id(text: &[u8]) -> Probe {
    let mut need_more = false;
    for prefix in [b"AKIA", b"ASIA"] {
        match probe_fixed(text, prefix, 16, is_upper_alnum) {
            Probe::Match(n) => return Probe::Match(n),
            Probe::NeedMore => need_more = true,
            Probe::NoMatch => {}
        }
    }
    if need_more {
        Probe::NeedMore
    } else {
        Probe::NoMatch
    }
}

/// `-----BEGIN <WORDS >PRIVATE KEY-----`, bounded to MAX_MATCH_LEN.
fn probe_private_key_header(text: &[u8]) -> Probe {
    const HEAD: &[u8] = b"-----BEGIN ";
    const TAIL: &[u8] = b"PRIVATE KEY-----";
    let known = text.len().min(HEAD.len());
    if text[..known] != HEAD[..known] {
        return Probe::NoMatch;
    }
    if text.len() < HEAD.len() {
        return Probe::NeedMore;
    }
    let limit = text.len().min(MAX_MATCH_LEN);
    for end in HEAD.len() + TAIL.len()..=limit {
        if text[..end].ends_with(TAIL) {
            let words = &text[HEAD.len()..end - TAIL.len()];
            if words.iter().all(|b| b.is_ascii_uppercase() || *b == b' ') {
                return Probe::Match(end);
            }
            return Probe::NoMatch;
        }
    }
    let tail_ok = text[HEAD.len()..limit]
        .iter()
        .all(|b| b.is_ascii_uppercase() || *b == b' ' || *b == b'-');
    if tail_ok && text.len() < MAX_MATCH_LEN {
        Probe::NeedMore
    } else {
        Probe::NoMatch
    }
}

/// Counts per detector, in a stable order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings(BTreeMap<&'static str, u32>);

impl Findings {
    fn add(&mut self, detector: &'static str) {
        *self.0.entry(detector).or_insert(0) += 1;
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u32)> + '_ {
        self.0.iter().map(|(k, v)| (*k, *v))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    pub text: String,
    pub findings: Findings,
    pub blocked: bool,
}

fn replacement(name: &str) -> String {
    format!("[REDACTED:{name}]")
}

/// Scans `text[start..]`, appending decided output to `out`. With
/// `at_end == false`, stops at the first position a detector cannot decide
/// yet and returns it; otherwise returns `text.len()`.
fn scan_into(
    text: &str,
    direction: Direction,
    at_end: bool,
    out: &mut String,
    findings: &mut Findings,
    blocked: &mut bool,
) -> usize {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut copied_from = 0;
    while i < bytes.len() {
        let window = &bytes[i..bytes.len().min(i + MAX_MATCH_LEN)];
        let mut hit = None;
        let mut undecided = false;
        for detector in DETECTORS {
            match (detector.probe)(window) {
                Probe::Match(n) => {
                    hit = Some((detector, n));
                    break;
                }
                Probe::NeedMore if !at_end && window.len() < MAX_MATCH_LEN => undecided = true,
                _ => {}
            }
        }
        if let Some((detector, len)) = hit {
            if undecided {
                // An earlier detector might still match here: wait for it.
                break;
            }
            out.push_str(&text[copied_from..i]);
            findings.add(detector.name);
            if detector.action(direction) == Action::Block {
                *blocked = true;
            }
            out.push_str(&replacement(detector.name));
            i += len;
            copied_from = i;
            continue;
        }
        if undecided {
            break;
        }
        i += 1;
        while i < bytes.len() && !text.is_char_boundary(i) {
            i += 1;
        }
    }
    out.push_str(&text[copied_from..i]);
    i
}

pub fn scan(text: &str, direction: Direction) -> Scan {
    let mut out = String::with_capacity(text.len());
    let mut findings = Findings::default();
    let mut blocked = false;
    scan_into(text, direction, true, &mut out, &mut findings, &mut blocked);
    Scan {
        text: out,
        findings,
        blocked,
    }
}

/// Incremental masking of one response text stream. Holds back at most
/// `MAX_MATCH_LEN - 1` bytes: only a tail that could still become a match.
#[derive(Debug, Default)]
pub struct StreamMasker {
    pending: String,
    findings: Findings,
}

impl StreamMasker {
    pub fn push(&mut self, text: &str) -> String {
        self.pending.push_str(text);
        let mut out = String::with_capacity(self.pending.len());
        let mut blocked = false;
        let consumed = scan_into(
            &self.pending,
            Direction::Response,
            false,
            &mut out,
            &mut self.findings,
            &mut blocked,
        );
        self.pending.drain(..consumed);
        out
    }

    pub fn finish(&mut self) -> String {
        let pending = core::mem::take(&mut self.pending);
        let mut out = String::with_capacity(pending.len());
        let mut blocked = false;
        scan_into(
            &pending,
            Direction::Response,
            true,
            &mut out,
            &mut self.findings,
            &mut blocked,
        );
        out
    }

    pub fn held_back(&self) -> usize {
        self.pending.len()
    }

    pub fn findings(&self) -> &Findings {
        &self.findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    const GH: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    const AWS: &str = "AKIAIOSFODNN7EXAMPLE";

    #[test]
    fn github_token_is_redacted_and_counted() {
        let s = scan(&format!("token={GH} ok"), Direction::Response);
        assert_eq!(s.text, "token=[REDACTED:github-token] ok");
        assert_eq!(
            s.findings.iter().collect::<Vec<_>>(),
            vec![("github-token", 1)]
        );
        assert!(!s.blocked);
    }

    #[test]
    fn fine_grained_pat_is_redacted() {
        let pat = format!("github_pat_{}", "A1_b".repeat(20) + "xy");
        assert_eq!(pat.len(), 93);
        let s = scan(&pat, Direction::Prompt);
        assert_eq!(s.text, "[REDACTED:github-token]");
    }

    #[test]
    fn aws_key_id_is_redacted() {
        let s = scan(&format!("id {AWS}."), Direction::Prompt);
        assert_eq!(s.text, "id [REDACTED:aws-access-key-id].");
    }

    #[test]
    fn private_key_blocks_prompts_and_is_redacted_in_responses() {
        let text = "-----BEGIN RSA PRIVATE KEY-----\nMIIE...";
        let prompt = scan(text, Direction::Prompt);
        assert!(prompt.blocked);
        let response = scan(text, Direction::Response);
        assert!(!response.blocked);
        assert!(response.text.starts_with("[REDACTED:private-key]\n"));
    }

    #[test]
    fn ordinary_code_is_untouched() {
        for text in [
            "let ghp = 1; // gh_ not a token",
            "sha512-3f786850e387550fdab836ed7e6dc881de23001b AKIA short",
            "uuid 123e4567-e89b-12d3-a456-426614174000",
            "-----BEGIN CERTIFICATE-----",
            "ghp_tooshort",
            "héllo wörld ✓",
        ] {
            let s = scan(text, Direction::Response);
            assert_eq!(s.text, text);
            assert!(s.findings.is_empty(), "{text}");
        }
    }

    fn stream_in_pieces(text: &str, cuts: &[usize]) -> String {
        let mut masker = StreamMasker::default();
        let mut out = String::new();
        let mut last = 0;
        for &cut in cuts {
            if cut <= last || cut >= text.len() || !text.is_char_boundary(cut) {
                continue;
            }
            out.push_str(&masker.push(&text[last..cut]));
            assert!(masker.held_back() < MAX_MATCH_LEN);
            last = cut;
        }
        out.push_str(&masker.push(&text[last..]));
        out.push_str(&masker.finish());
        out
    }

    #[test]
    fn stream_equals_whole_text_for_every_single_cut() {
        let text = format!("a {GH} b {AWS} -----BEGIN EC PRIVATE KEY----- é ghp_x AKIA1");
        let whole = scan(&text, Direction::Response).text;
        for cut in 0..text.len() {
            assert_eq!(stream_in_pieces(&text, &[cut]), whole, "cut at {cut}");
        }
    }

    #[test]
    fn stream_equals_whole_text_byte_by_byte() {
        let text = format!("{GH}{GH} x {AWS}");
        let cuts: Vec<usize> = (1..text.len()).collect();
        assert_eq!(
            stream_in_pieces(&text, &cuts),
            scan(&text, Direction::Response).text
        );
    }

    #[test]
    fn text_that_cannot_start_a_match_is_released_at_once() {
        let mut masker = StreamMasker::default();
        assert_eq!(masker.push("hello world "), "hello world ");
        assert_eq!(masker.push("see gh"), "see ");
        assert_eq!(masker.held_back(), 2);
    }
}
