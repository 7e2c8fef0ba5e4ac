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
use alloc::vec::Vec;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Block,
    Redact,
    Allow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Prompt,
    Response,
}

/// Outcome of trying a detector at one position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    /// A match of `len` bytes whose first `keep` bytes stay (a key name).
    Match {
        len: usize,
        keep: usize,
    },
    /// The text ends before the detector can decide.
    NeedMore,
    NoMatch,
}

fn matched(len: usize) -> Probe {
    Probe::Match { len, keep: 0 }
}

/// What a detector sees: the text from this position (bounded by
/// `MAX_MATCH_LEN`) and the byte just before it, for left boundaries.
/// When the input is complete the text ends with a NUL sentinel that no
/// detector accepts, so every run is known to end.
struct At<'a> {
    text: &'a [u8],
    prev: Option<u8>,
    complete: bool,
    /// How far a detector may look: the configured hold-back.
    limit: usize,
}

/// How a detector looks at the text.
#[derive(Clone, Copy)]
enum Check {
    Builtin(fn(&At) -> Probe),
    /// A case-insensitive literal (organisation markers, code names).
    Literal(&'static [u8]),
    /// A host name ending in this suffix (internal domains).
    HostSuffix(&'static [u8]),
}

struct Detector {
    name: &'static str,
    check: Check,
    /// Whether a match can begin with this byte (`true`: at a word start),
    /// so that most positions skip the probe entirely.
    starts: fn(u8, bool) -> bool,
}

impl Detector {
    fn may_start(&self, b: u8, word_start: bool) -> bool {
        match self.check {
            Check::Builtin(_) => (self.starts)(b, word_start),
            Check::Literal(l) => l.first().is_some_and(|f| f.eq_ignore_ascii_case(&b)),
            Check::HostSuffix(_) => word_start && b.is_ascii_alphanumeric(),
        }
    }

    fn probe(&self, at: &At) -> Probe {
        match self.check {
            Check::Builtin(probe) => probe(at),
            Check::Literal(literal) => probe_literal(at, literal),
            Check::HostSuffix(suffix) => probe_host_suffix(at, suffix),
        }
    }
}

/// Longest text any detector needs to see to decide, and so the most a
/// stream holds back: 4 KiB covers a JWT with a large claim set and a PEM
/// key block; every other detector decides within 256 bytes, and text that
/// cannot begin a match is never held at all.
pub const MAX_MATCH_LEN: usize = 4096;
/// The smallest configurable hold-back: every fixed-shape secret fits.
pub const MIN_HOLD_BACK: usize = 256;

const fn builtin(
    name: &'static str,
    starts: fn(u8, bool) -> bool,
    probe: fn(&At) -> Probe,
) -> Detector {
    Detector {
        name,
        check: Check::Builtin(probe),
        starts,
    }
}

/// For generated (organisation) detectors `may_start` reads the check itself.
fn any_byte(_: u8, _: bool) -> bool {
    true
}

/// In priority order: at one position the first detector that matches
/// wins; the organisation's come after these.
const BUILTIN_DETECTORS: &[Detector] = &[
    builtin("github-token", |b, _| b == b'g', probe_github_token),
    builtin(
        "gitlab-token",
        |b, _| b == b'g',
        |at| probe_fixed(at.text, b"glpat-", 20, is_token_char),
    ),
    builtin("slack-token", |b, _| b == b'x', probe_slack),
    builtin("stripe-key", |b, _| b == b's' || b == b'r', probe_stripe),
    builtin(
        "google-api-key",
        |b, _| b == b'A',
        |at| probe_fixed(at.text, b"AIza", 35, is_token_char),
    ),
    builtin(
        "npm-token",
        |b, _| b == b'n',
        |at| probe_fixed(at.text, b"npm_", 36, is_alnum),
    ),
    builtin(
        "aws-access-key-id",
        |b, _| b == b'A',
        probe_aws_access_key_id,
    ),
    builtin(
        "aws-secret-access-key",
        |b, w| w && matches!(b, b'a' | b'A' | b's' | b'S'),
        probe_aws_secret,
    ),
    builtin("jwt", |b, w| w && b == b'e', probe_jwt),
    builtin("private-key", |b, _| b == b'-', probe_private_key),
    builtin(
        "password-assignment",
        |b, _| matches!(b.to_ascii_lowercase(), b'p' | b's' | b'a' | b'c'),
        probe_assignment,
    ),
    builtin("credit-card", |b, _| b.is_ascii_digit(), probe_card),
    builtin("iban", |b, w| w && b.is_ascii_uppercase(), probe_iban),
    builtin("us-ssn", |b, _| b.is_ascii_digit(), probe_ssn),
    builtin("email", |b, w| w && b.is_ascii_alphanumeric(), probe_email),
    builtin("phone", |b, _| b == b'+', probe_phone),
];

include!(concat!(env!("OUT_DIR"), "/detectors.rs"));

fn all_detectors() -> impl Iterator<Item = &'static Detector> {
    BUILTIN_DETECTORS.iter().chain(ORG_DETECTORS.iter())
}

/// The actions that apply to one caller: the policy's base actions, with
/// the overrides of the caller's groups (the most permissive one wins).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// (prompt, response) per detector, in `all_detectors()` order.
    actions: Vec<(Action, Action)>,
    fingerprint_key: Vec<u8>,
    /// Bytes a stream may hold back (MIN_HOLD_BACK..=MAX_MATCH_LEN).
    hold_back: usize,
}

fn permissiveness(a: Action) -> u8 {
    match a {
        Action::Block => 0,
        Action::Redact => 1,
        Action::Allow => 2,
    }
}

impl Profile {
    pub fn for_groups(groups: &[&str]) -> Profile {
        let actions = all_detectors()
            .map(|d| {
                let base = BASE_ACTIONS
                    .iter()
                    .find(|(n, _, _)| *n == d.name)
                    .map(|(_, p, r)| (*p, *r))
                    .unwrap_or((Action::Redact, Action::Redact));
                GROUP_ACTIONS
                    .iter()
                    .filter(|(g, n, _, _)| *n == d.name && groups.contains(g))
                    .fold(None::<(Action, Action)>, |best, (_, _, p, r)| match best {
                        None => Some((*p, *r)),
                        Some((bp, br)) => Some((
                            if permissiveness(*p) > permissiveness(bp) {
                                *p
                            } else {
                                bp
                            },
                            if permissiveness(*r) > permissiveness(br) {
                                *r
                            } else {
                                br
                            },
                        )),
                    })
                    .unwrap_or(base)
            })
            .collect();
        Profile {
            actions,
            fingerprint_key: Vec::new(),
            hold_back: MAX_MATCH_LEN,
        }
    }

    /// A smaller hold-back trades whole-JWT and whole-PEM matching (longer
    /// ones lose only what fits) for less delay on text that could begin one.
    pub fn with_hold_back(mut self, bytes: usize) -> Profile {
        self.hold_back = bytes.clamp(MIN_HOLD_BACK, MAX_MATCH_LEN);
        self
    }

    /// Findings carry keyed fingerprints of the values under `key`.
    pub fn with_fingerprint_key(mut self, key: &[u8]) -> Profile {
        self.fingerprint_key = key.to_vec();
        self
    }

    fn action(&self, index: usize, direction: Direction) -> Action {
        let (p, r) = self
            .actions
            .get(index)
            .copied()
            .unwrap_or((Action::Redact, Action::Redact));
        match direction {
            Direction::Prompt => p,
            // A response already streaming cannot be refused: block redacts.
            Direction::Response if r == Action::Block => Action::Redact,
            Direction::Response => r,
        }
    }
}

impl Default for Profile {
    fn default() -> Self {
        Profile::for_groups(&[])
    }
}

mod probes;
use probes::*;

/// How many positions and fingerprints a finding keeps.
pub const MAX_FINDING_DETAILS: usize = 16;

/// What one detector found: how often, where, and keyed fingerprints of
/// the values — never the values themselves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Finding {
    pub count: u32,
    pub positions: Vec<u64>,
    pub fingerprints: Vec<String>,
}

/// Findings per detector, in a stable order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings(BTreeMap<&'static str, Finding>);

impl Findings {
    fn add(&mut self, detector: &'static str, position: u64, fingerprint: Option<String>) {
        let f = self.0.entry(detector).or_default();
        f.count += 1;
        if f.positions.len() < MAX_FINDING_DETAILS {
            f.positions.push(position);
        }
        if let Some(fp) = fingerprint.filter(|_| f.fingerprints.len() < MAX_FINDING_DETAILS) {
            f.fingerprints.push(fp);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Finding)> + '_ {
        self.0.iter().map(|(k, v)| (*k, v))
    }

    pub fn counts(&self) -> Vec<(&'static str, u32)> {
        self.0.iter().map(|(k, v)| (*k, v.count)).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// HMAC-SHA256 of a matched value under the fingerprint key, 16 hex digits.
fn fingerprint(key: &[u8], value: &[u8]) -> Option<String> {
    use hmac::{Mac, SimpleHmac};
    if key.is_empty() {
        return None;
    }
    let mut mac = <SimpleHmac<sha2::Sha256> as Mac>::new_from_slice(key).ok()?;
    mac.update(value);
    let digest = mac.finalize().into_bytes();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    Some(
        digest[..8]
            .iter()
            .flat_map(|b| {
                [
                    HEX[usize::from(b >> 4)] as char,
                    HEX[usize::from(b & 15)] as char,
                ]
            })
            .collect(),
    )
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
#[allow(clippy::too_many_arguments)]
fn scan_into(
    text: &str,
    profile: &Profile,
    direction: Direction,
    at_end: bool,
    prev: Option<u8>,
    offset: u64,
    out: &mut String,
    findings: &mut Findings,
    blocked: &mut bool,
) -> usize {
    let bytes = text.as_bytes();
    // Complete input gets the sentinel once, not a copy per position.
    let padded;
    let scanned: &[u8] = if at_end {
        padded = [bytes, &[0u8]].concat();
        &padded
    } else {
        bytes
    };
    let mut i = 0;
    let mut copied_from = 0;
    while i < bytes.len() {
        let limit = profile.hold_back;
        let window_end = scanned.len().min(i + limit + 1);
        let window = &scanned[i..window_end];
        let at = At {
            text: window,
            prev: if i == 0 { prev } else { Some(bytes[i - 1]) },
            complete: at_end && window_end == scanned.len(),
            limit,
        };
        let mut hit = None;
        let mut undecided = false;
        let first = bytes[i];
        let word_start = !at
            .prev
            .is_some_and(|p| p.is_ascii_alphanumeric() || p == b'_');
        for (index, detector) in all_detectors().enumerate() {
            if !detector.may_start(first, word_start) {
                continue;
            }
            match detector.probe(&at) {
                Probe::Match { len, keep } => {
                    hit = Some((index, detector, len, keep));
                    break;
                }
                Probe::NeedMore if !at_end && window.len() <= limit => undecided = true,
                _ => {}
            }
        }
        if let Some((index, detector, len, keep)) = hit {
            if undecided {
                // An earlier detector might still match here: wait for it.
                break;
            }
            let action = profile.action(index, direction);
            if action == Action::Allow {
                // Allowed text passes whole: nothing else may fire inside it.
                i += len;
                continue;
            }
            out.push_str(&text[copied_from..i + keep]);
            findings.add(
                detector.name,
                offset + (i + keep) as u64,
                fingerprint(&profile.fingerprint_key, &bytes[i + keep..i + len]),
            );
            if action == Action::Block {
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
    scan_with(text, &Profile::default(), direction)
}

/// Masks `text` whole with the actions of `profile`.
pub fn scan_with(text: &str, profile: &Profile, direction: Direction) -> Scan {
    let mut out = String::with_capacity(text.len());
    let mut findings = Findings::default();
    let mut blocked = false;
    scan_into(
        text,
        profile,
        direction,
        true,
        None,
        0,
        &mut out,
        &mut findings,
        &mut blocked,
    );
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
    profile: Profile,
    pending: String,
    /// Bytes already released: positions count from the stream's start.
    offset: u64,
    /// The last byte already released: left boundaries need it.
    prev: Option<u8>,
    findings: Findings,
}

impl StreamMasker {
    pub fn with_profile(profile: Profile) -> StreamMasker {
        StreamMasker {
            profile,
            ..StreamMasker::default()
        }
    }

    pub fn push(&mut self, text: &str) -> String {
        self.pending.push_str(text);
        let mut out = String::with_capacity(self.pending.len());
        let mut blocked = false;
        let consumed = scan_into(
            &self.pending,
            &self.profile,
            Direction::Response,
            false,
            self.prev,
            self.offset,
            &mut out,
            &mut self.findings,
            &mut blocked,
        );
        if consumed > 0 {
            self.prev = Some(self.pending.as_bytes()[consumed - 1]);
            self.offset += consumed as u64;
        }
        self.pending.drain(..consumed);
        out
    }

    pub fn finish(&mut self) -> String {
        let pending = core::mem::take(&mut self.pending);
        let mut out = String::with_capacity(pending.len());
        let mut blocked = false;
        scan_into(
            &pending,
            &self.profile,
            Direction::Response,
            true,
            self.prev,
            self.offset,
            &mut out,
            &mut self.findings,
            &mut blocked,
        );
        if let Some(last) = pending.as_bytes().last() {
            self.prev = Some(*last);
        }
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
mod tests;
