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

fn probe_literal(at: &At, literal: &[u8]) -> Probe {
    let t = at.text;
    let known = t.len().min(literal.len());
    if !t[..known].eq_ignore_ascii_case(&literal[..known]) {
        return Probe::NoMatch;
    }
    if t.len() < literal.len() {
        return Probe::NeedMore;
    }
    matched(literal.len())
}

/// `name.corp.example` for suffix `.corp.example`: a whole host name (no
/// host character before it) with at least one label before the suffix.
fn probe_host_suffix(at: &At, suffix: &[u8]) -> Probe {
    let host_char = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
    let t = at.text;
    if at.prev.is_some_and(host_char) || !t.first().is_some_and(|b| b.is_ascii_alphanumeric()) {
        return Probe::NoMatch;
    }
    let run = t.iter().take(254).take_while(|b| host_char(**b)).count();
    if run == t.len() && run < 254 {
        return Probe::NeedMore;
    }
    let mut end = run;
    while end > 0 && t[end - 1] == b'.' {
        end -= 1;
    }
    let host = &t[..end];
    if host.len() > suffix.len() && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix) {
        matched(end)
    } else {
        Probe::NoMatch
    }
}

/// Matches `prefix` followed by exactly `len` bytes accepted by `class`.
fn probe_fixed(text: &[u8], prefix: &[u8], len: usize, class: fn(u8) -> bool) -> Probe {
    match probe_run(text, prefix, len, len, class) {
        // A longer run is another kind of string, not this token; and until
        // the next byte arrives nobody knows.
        Probe::Match { len: n, .. } => match text.get(n) {
            None => Probe::NeedMore,
            Some(b) if class(*b) => Probe::NoMatch,
            Some(_) => matched(n),
        },
        other => other,
    }
}

/// `prefix` then a run of `min..=max` bytes in `class`; the run must end
/// (or reach `max`) before the detector decides.
fn probe_run(text: &[u8], prefix: &[u8], min: usize, max: usize, class: fn(u8) -> bool) -> Probe {
    let known = text.len().min(prefix.len());
    if text[..known] != prefix[..known] {
        return Probe::NoMatch;
    }
    if text.len() < prefix.len() {
        return Probe::NeedMore;
    }
    let body = &text[prefix.len()..];
    let run = body.iter().take(max).take_while(|b| class(**b)).count();
    if run == body.len() && run < max {
        return Probe::NeedMore;
    }
    if run < min {
        return Probe::NoMatch;
    }
    matched(prefix.len() + run)
}

/// The first match among alternatives; otherwise undecided if any is.
fn any_of(probes: &[Probe]) -> Probe {
    if let Some(m) = probes.iter().find(|p| matches!(p, Probe::Match { .. })) {
        return *m;
    }
    if probes.contains(&Probe::NeedMore) {
        Probe::NeedMore
    } else {
        Probe::NoMatch
    }
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn is_alnum_underscore(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn is_upper_alnum(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

fn starts_word(at: &At) -> bool {
    !at.prev
        .is_some_and(|p| p.is_ascii_alphanumeric() || p == b'_')
}

fn probe_github_token(at: &At) -> Probe {
    let t = at.text;
    let p = |prefix: &[u8]| probe_fixed(t, prefix, 36, is_alnum);
    any_of(&[
        p(b"ghp_"),
        p(b"gho_"),
        p(b"ghu_"),
        p(b"ghs_"),
        p(b"ghr_"),
        probe_fixed(t, b"github_pat_", 82, is_alnum_underscore),
    ])
}

fn probe_slack(at: &At) -> Probe {
    let p = |prefix: &[u8]| probe_run(at.text, prefix, 10, 72, is_token_char);
    any_of(&[
        p(b"xoxb-"),
        p(b"xoxa-"),
        p(b"xoxp-"),
        p(b"xoxr-"),
        p(b"xoxs-"),
    ])
}

fn probe_stripe(at: &At) -> Probe {
    let p = |prefix: &[u8]| probe_run(at.text, prefix, 24, 99, is_alnum);
    any_of(&[
        p(b"sk_live_"),
        p(b"rk_live_"),
        p(b"sk_test_"),
        p(b"rk_test_"),
    ])
}

fn probe_aws_access_key_id(at: &At) -> Probe {
    let t = at.text;
    any_of(&[
        probe_fixed(t, b"AKIA", 16, is_upper_alnum),
        probe_fixed(t, b"ASIA", 16, is_upper_alnum),
    ])
}

/// Case-insensitive `key`, then blanks or quotes, `=` or `:`, blanks: the
/// length of that lead-in and whether the value opens with a quote.
fn lead_in(text: &[u8], key: &[u8]) -> Result<(usize, bool), Probe> {
    let known = text.len().min(key.len());
    if !text[..known].eq_ignore_ascii_case(&key[..known]) {
        return Err(Probe::NoMatch);
    }
    if text.len() < key.len() {
        return Err(Probe::NeedMore);
    }
    let mut i = key.len();
    while i < text.len() && i < key.len() + 8 && b"\"' \t".contains(&text[i]) {
        i += 1;
    }
    if i >= text.len() {
        return Err(Probe::NeedMore);
    }
    if text[i] != b'=' && text[i] != b':' {
        return Err(Probe::NoMatch);
    }
    i += 1;
    while i < text.len() && i < key.len() + 16 && b" \t".contains(&text[i]) {
        i += 1;
    }
    if i >= text.len() {
        return Err(Probe::NeedMore);
    }
    let quoted = text[i] == b'"' || text[i] == b'\'';
    if quoted {
        i += 1;
    }
    Ok((i, quoted))
}

/// `aws_secret_access_key = <40 base64 chars>`: the value only is redacted.
fn probe_aws_secret(at: &At) -> Probe {
    if !starts_word(at) {
        return Probe::NoMatch;
    }
    let mut outcome = Probe::NoMatch;
    for key in [&b"aws_secret_access_key"[..], b"secretaccesskey"] {
        match lead_in(at.text, key) {
            Err(Probe::NeedMore) => outcome = Probe::NeedMore,
            Err(_) => {}
            Ok((keep, _)) => match probe_fixed(&at.text[keep..], b"", 40, is_base64) {
                Probe::Match { len, .. } => {
                    return Probe::Match {
                        len: keep + len,
                        keep,
                    }
                }
                Probe::NeedMore => outcome = Probe::NeedMore,
                Probe::NoMatch => {}
            },
        }
    }
    outcome
}

/// `password = value` and friends (6–128 bytes): the value is redacted. Keys
/// may end an identifier (`DB_PASSWORD`). A quoted value is a literal; an
/// unquoted one must not look like code (an identifier, a dotted path, a call).
fn probe_assignment(at: &At) -> Probe {
    const KEYS: [&[u8]; 9] = [
        b"password",
        b"passwd",
        b"pwd",
        b"secret",
        b"api_key",
        b"apikey",
        b"client_secret",
        b"auth_token",
        b"access_token",
    ];
    // Not in the middle of a longer word (`passwordless`, `secretary` fail at `=`).
    if at.prev.is_some_and(|p| p.is_ascii_alphanumeric()) {
        return Probe::NoMatch;
    }
    let mut outcome = Probe::NoMatch;
    for key in KEYS {
        match lead_in(at.text, key) {
            Err(Probe::NeedMore) => outcome = Probe::NeedMore,
            Err(_) => {}
            Ok((keep, quoted)) => {
                let value = |b: u8| b.is_ascii_graphic() && !b"\"'`,;()[]{}<>".contains(&b);
                match probe_run(&at.text[keep..], b"", 6, 128, value) {
                    Probe::Match { len, .. } => {
                        let v = &at.text[keep..keep + len];
                        let code_like = v
                            .iter()
                            .all(|b| b.is_ascii_alphabetic() || *b == b'_' || *b == b'.')
                            || at.text.get(keep + len) == Some(&b'(');
                        if quoted || !code_like {
                            return Probe::Match {
                                len: keep + len,
                                keep,
                            };
                        }
                    }
                    Probe::NeedMore => outcome = Probe::NeedMore,
                    Probe::NoMatch => {}
                }
            }
        }
    }
    outcome
}

/// `eyJ….eyJ….<signature>`: three base64url parts, at most MAX_MATCH_LEN.
fn probe_jwt(at: &At) -> Probe {
    let t = at.text;
    if !starts_word(at) {
        return Probe::NoMatch;
    }
    let mut i = 0;
    for (part, prefix) in [(0, &b"eyJ"[..]), (1, b"eyJ"), (2, b"")] {
        let rest = &t[i..];
        let known = rest.len().min(prefix.len());
        if rest[..known] != prefix[..known] {
            return Probe::NoMatch;
        }
        if rest.len() < prefix.len() {
            return Probe::NeedMore;
        }
        let run = rest[prefix.len()..]
            .iter()
            .take_while(|b| is_token_char(**b))
            .count();
        i += prefix.len() + run;
        if i >= t.len() {
            return if t.len() >= at.limit {
                Probe::NoMatch
            } else {
                Probe::NeedMore
            };
        }
        if part < 2 {
            if t[i] != b'.' || run < 8 {
                return Probe::NoMatch;
            }
            i += 1;
        } else if run < 16 {
            return Probe::NoMatch;
        }
    }
    matched(i)
}

/// A PEM private key: from `-----BEGIN … PRIVATE KEY-----` to the matching
/// END line, bounded by MAX_MATCH_LEN (a longer block still loses its header).
fn probe_private_key(at: &At) -> Probe {
    const HEAD: &[u8] = b"-----BEGIN ";
    const TAIL: &[u8] = b"PRIVATE KEY-----";
    const END: &[u8] = b"-----END ";
    let t = at.text;
    let known = t.len().min(HEAD.len());
    if t[..known] != HEAD[..known] {
        return Probe::NoMatch;
    }
    if t.len() < HEAD.len() {
        return Probe::NeedMore;
    }
    let header_limit = t.len().min(HEAD.len() + 40 + TAIL.len());
    let Some(header_end) =
        (HEAD.len() + TAIL.len()..=header_limit).find(|e| t[..*e].ends_with(TAIL))
    else {
        let plausible = t[HEAD.len()..header_limit]
            .iter()
            .all(|b| b.is_ascii_uppercase() || *b == b' ' || *b == b'-');
        return if plausible && t.len() < HEAD.len() + 40 + TAIL.len() {
            Probe::NeedMore
        } else {
            Probe::NoMatch
        };
    };
    if !t[HEAD.len()..header_end - TAIL.len()]
        .iter()
        .all(|b| b.is_ascii_uppercase() || *b == b' ')
    {
        return Probe::NoMatch;
    }
    // The body up to the END line; a block cut short is key material to its
    // end, and one longer than the window loses at least its header.
    let to_end = if at.complete { t.len() - 1 } else { header_end };
    match t[header_end..].windows(END.len()).position(|w| w == END) {
        Some(p) => {
            let end_start = header_end + p;
            match t[end_start..].windows(TAIL.len()).position(|w| w == TAIL) {
                Some(q) => matched(end_start + q + TAIL.len()),
                None if !at.complete && t.len() < at.limit => Probe::NeedMore,
                None => matched(to_end),
            }
        }
        None if !at.complete && t.len() < at.limit => Probe::NeedMore,
        None => matched(to_end),
    }
}

fn luhn_ok(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(*d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// 13–19 digits, optionally in groups split by single spaces or dashes,
/// passing the Luhn check, not inside a longer number.
fn probe_card(at: &At) -> Probe {
    let t = at.text;
    if at.prev.is_some_and(|p| p.is_ascii_digit()) || !t.first().is_some_and(u8::is_ascii_digit) {
        return Probe::NoMatch;
    }
    let mut digits = [0u8; 19];
    let mut count = 0;
    let mut i = 0;
    while i < t.len() {
        let b = t[i];
        if b.is_ascii_digit() {
            if count == digits.len() {
                return Probe::NoMatch;
            }
            digits[count] = b - b'0';
            count += 1;
            i += 1;
        } else if (b == b' ' || b == b'-') && t.get(i + 1).is_some_and(u8::is_ascii_digit) {
            i += 1;
        } else if (b == b' ' || b == b'-') && i + 1 == t.len() {
            return Probe::NeedMore;
        } else {
            break;
        }
    }
    if i == t.len() {
        return Probe::NeedMore;
    }
    if t[i].is_ascii_alphanumeric() || count < 13 || !luhn_ok(&digits[..count]) {
        return Probe::NoMatch;
    }
    // Trailing separators are not part of the number.
    matched(i)
}

/// Two letters, two check digits, 11–30 alphanumerics; ISO 13616 mod 97.
fn probe_iban(at: &At) -> Probe {
    let t = at.text;
    if !starts_word(at) {
        return Probe::NoMatch;
    }
    let shape = |i: usize, b: u8| match i {
        0 | 1 => b.is_ascii_uppercase(),
        2 | 3 => b.is_ascii_digit(),
        _ => is_upper_alnum(b),
    };
    let run = t
        .iter()
        .enumerate()
        .take(34)
        .take_while(|(i, b)| shape(*i, **b))
        .count();
    if run == t.len() && run < 34 {
        return Probe::NeedMore;
    }
    if run < 15 || t.get(run).is_some_and(|b| b.is_ascii_alphanumeric()) {
        return Probe::NoMatch;
    }
    let iban = &t[..run];
    let rearranged = iban[4..].iter().chain(&iban[..4]);
    let mut remainder: u32 = 0;
    for b in rearranged {
        let value = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A') + 10
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    if remainder == 1 {
        matched(run)
    } else {
        Probe::NoMatch
    }
}

/// `AAA-GG-SSSS` with the rules SSA applies: no 000, 666 or 9xx area,
/// no 00 group, no 0000 serial; not inside a longer number.
fn probe_ssn(at: &At) -> Probe {
    let t = at.text;
    if at.prev.is_some_and(|p| p.is_ascii_digit() || p == b'-') {
        return Probe::NoMatch;
    }
    let shape = b"ddd-dd-dddd";
    for (i, kind) in shape.iter().enumerate() {
        let Some(b) = t.get(i) else {
            return Probe::NeedMore;
        };
        let ok = if *kind == b'd' {
            b.is_ascii_digit()
        } else {
            *b == b'-'
        };
        if !ok {
            return Probe::NoMatch;
        }
    }
    match t.get(shape.len()) {
        None => return Probe::NeedMore,
        Some(b) if b.is_ascii_digit() || *b == b'-' => return Probe::NoMatch,
        Some(_) => {}
    }
    let (area, group, serial) = (&t[0..3], &t[4..6], &t[7..11]);
    if area == b"000" || area == b"666" || area[0] == b'9' || group == b"00" || serial == b"0000" {
        return Probe::NoMatch;
    }
    matched(shape.len())
}

/// `local@domain.tld` (local ≤ 64, domain ≤ 255, alphabetic TLD ≥ 2).
fn probe_email(at: &At) -> Probe {
    let t = at.text;
    let local_char = |b: u8| b.is_ascii_alphanumeric() || b"._%+-".contains(&b);
    if at.prev.is_some_and(local_char) || !t.first().is_some_and(|b| b.is_ascii_alphanumeric()) {
        return Probe::NoMatch;
    }
    let local = t.iter().take(65).take_while(|b| local_char(**b)).count();
    if local == t.len() && local <= 64 {
        return Probe::NeedMore;
    }
    if local > 64 || t[local] != b'@' {
        return Probe::NoMatch;
    }
    let domain_start = local + 1;
    let domain_char = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
    let domain = t[domain_start..]
        .iter()
        .take(256)
        .take_while(|b| domain_char(**b))
        .count();
    if domain_start + domain == t.len() && domain <= 255 {
        return Probe::NeedMore;
    }
    // A trailing dot ends a sentence, not the domain.
    let mut end = domain_start + domain;
    while end > domain_start && t[end - 1] == b'.' {
        end -= 1;
    }
    // `git@github.com:org/repo` is an scp-style address, not a mailbox.
    if t.get(domain_start + domain) == Some(&b':') {
        return Probe::NoMatch;
    }
    let host = &t[domain_start..end];
    let Some(dot) = host.iter().rposition(|b| *b == b'.') else {
        return Probe::NoMatch;
    };
    let tld = &host[dot + 1..];
    if dot == 0 || tld.len() < 2 || !tld.iter().all(u8::is_ascii_alphabetic) {
        return Probe::NoMatch;
    }
    matched(end)
}

/// International numbers only (`+` and 8–15 digits, single spaces or dashes
/// between groups): local formats collide with too much ordinary code.
fn probe_phone(at: &At) -> Probe {
    let t = at.text;
    if at.prev.is_some_and(|p| p.is_ascii_alphanumeric()) {
        return Probe::NoMatch;
    }
    match t.first() {
        None => return Probe::NeedMore,
        Some(b'+') => {}
        Some(_) => return Probe::NoMatch,
    }
    let mut digits = 0;
    let mut i = 1;
    while i < t.len() {
        let b = t[i];
        if b.is_ascii_digit() {
            digits += 1;
            if digits > 15 {
                return Probe::NoMatch;
            }
            i += 1;
        } else if (b == b' ' || b == b'-')
            && digits > 0
            && t.get(i + 1).is_some_and(u8::is_ascii_digit)
        {
            i += 1;
        } else if (b == b' ' || b == b'-') && i + 1 == t.len() {
            return Probe::NeedMore;
        } else {
            break;
        }
    }
    if i == t.len() {
        return Probe::NeedMore;
    }
    if t[i].is_ascii_alphanumeric() || digits < 8 {
        return Probe::NoMatch;
    }
    matched(i)
}

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
        assert_eq!(s.findings.counts(), vec![("github-token", 1)]);
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
        // Cut short: everything after the header is key material.
        assert_eq!(response.text, "[REDACTED:private-key]");
        let block = "key:\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIA\nAwEHoUQDQgAE\n-----END EC PRIVATE KEY-----\nafter";
        assert_eq!(
            scan(block, Direction::Response).text,
            "key:\n[REDACTED:private-key]\nafter"
        );
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

    fn masked_as(text: &str) -> Vec<(&'static str, u32)> {
        scan(text, Direction::Response).findings.counts()
    }

    #[test]
    fn every_detector_finds_its_secret() {
        let pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY-----";
        let cases = [
            ("gitlab-token", "glpat-abcdefghij0123456789"),
            ("slack-token", "xoxb-123456789012-abcdefGHIJ"),
            ("stripe-key", "sk_live_abcdefghijklmnopqrstuvwx"),
            ("google-api-key", "AIzaSyA-abcdefghijklmnopqrstuvwxyz01234"),
            ("npm-token", "npm_abcdefghijklmnopqrstuvwxyz0123456789"),
            ("aws-secret-access-key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            ("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
            ("private-key", pem),
            ("password-assignment", "password = \"hunter2hunter2\""),
            ("password-assignment", "DB_PASSWORD: s3cr3t-value"),
            ("credit-card", "card 4111 1111 1111 1111 ok"),
            ("credit-card", "4242-4242-4242-4242"),
            ("iban", "pay to DE89370400440532013000 now"),
            ("us-ssn", "ssn 123-45-6789."),
            ("email", "mail alice.smith+ci@example.co.uk."),
            ("phone", "call +44 20 7946 0958 today"),
        ];
        for (name, text) in cases {
            let found = masked_as(text);
            assert!(
                found.iter().any(|(d, _)| *d == name),
                "{name} not found in {text:?}: {found:?}"
            );
            assert!(scan(text, Direction::Response)
                .text
                .contains(&format!("[REDACTED:{name}]")));
        }
        // Assignments keep their key; only the value goes.
        assert_eq!(
            scan("password=hunter2hunter2;", Direction::Prompt).text,
            "password=[REDACTED:password-assignment];"
        );
    }

    #[test]
    fn ordinary_code_and_data_are_left_alone() {
        for text in [
            "let id = \"123e4567-e89b-12d3-a456-426614174000\";",
            "integrity sha512-Fo8HPo0ZpBtQlKQ8a7ZNOgh1RZ8DFs1FzxXwEq5pVvX4TZ5GwdSC7i0GkJMZj9qUFbXGJB2WPCq1w==",
            "\"resolved\": \"https://registry.npmjs.org/x/-/x-1.0.0.tgz#3f786850e387550fdab836ed7e6dc881de23001b\"",
            "<img src=\"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==\">",
            "for i in 0..1234567890123 { total += i }",
            "timestamp 1700000000123, port 8080, version 1.2.3",
            "let password = read_password(); // no literal here",
            "if (secret == null) return;",
            "git@github.com:org/repo.git",
            "user@localhost",
            "4111 1111 1111 1112",
            "GB00WEST12345698765432 is not a valid IBAN checksum",
            "000-12-3456 and 123-00-4567 are not issued",
            "x = 1 + 44207946",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
            "eyJ-not-a-token",
        ] {
            let s = scan(text, Direction::Response);
            assert_eq!(s.text, text, "{:?}", s.findings);
        }
    }

    /// A tiny deterministic generator: the property test needs no crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn streamed_output_equals_whole_text_for_random_inputs_and_splits() {
        let pieces = [
            "ghp_0123456789abcdefghijABCDEFGHIJ012345",
            "AKIAIOSFODNN7EXAMPLE",
            "glpat-abcdefghij0123456789",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P",
            "password: hunter2hunter2",
            "4111 1111 1111 1111",
            "DE89370400440532013000",
            "123-45-6789",
            "bob@example.com",
            "+1 415 555 0100",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN ",
            "ghp_",
            "eyJ",
            "+",
            "4111 ",
            "pass",
            "@",
            ".",
            " ",
            "\n",
            "é✓",
            "code()",
            "x = 42;",
            "AKIA",
            "xoxb-",
            "sk_live_",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..400 {
            let mut text = String::new();
            for _ in 0..rng.below(12) + 1 {
                text.push_str(pieces[rng.below(pieces.len())]);
            }
            let whole = scan(&text, Direction::Response).text;
            let mut masker = StreamMasker::default();
            let mut streamed = String::new();
            let mut rest = text.as_str();
            while !rest.is_empty() {
                let mut cut = (rng.below(rest.len()) + 1).min(rest.len());
                while !rest.is_char_boundary(cut) {
                    cut += 1;
                }
                streamed.push_str(&masker.push(&rest[..cut]));
                assert!(masker.held_back() <= MAX_MATCH_LEN);
                rest = &rest[cut..];
            }
            streamed.push_str(&masker.finish());
            assert_eq!(streamed, whole, "input {text:?}");
        }
    }

    #[test]
    fn organisation_detectors_come_from_the_policy_file() {
        let s = scan(
            "Status: Confidential. See Project NIGHTINGALE on build7.corp.acme.example.",
            Direction::Response,
        );
        assert_eq!(
            s.text,
            "Status: [REDACTED:confidential-marker]. See [REDACTED:project-codename] on [REDACTED:internal-hostname]."
        );
        // The marker blocks prompts; other hosts are untouched.
        assert!(scan("this is CONFIDENTIAL", Direction::Prompt).blocked);
        let other = "see build7.corp.acme.example.com and corp.acme.example";
        assert_eq!(scan(other, Direction::Response).text, other);
    }

    #[test]
    fn groups_vary_the_actions() {
        let text = "mail bob@example.com about CONFIDENTIAL plans";
        let everyone = scan_with(text, &Profile::for_groups(&[]), Direction::Prompt);
        assert!(everyone.blocked);
        assert!(everyone.text.contains("[REDACTED:email]"));
        let security = scan_with(
            text,
            &Profile::for_groups(&["developers", "security-team"]),
            Direction::Prompt,
        );
        assert!(
            !security.blocked,
            "the marker only redacts for the security team"
        );
        assert!(
            security.text.contains("bob@example.com"),
            "e-mail is allowed for them: {}",
            security.text
        );
        assert!(security.text.contains("[REDACTED:confidential-marker]"));
        // Secrets stay redacted for everyone.
        let gh = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
        assert!(!scan_with(
            gh,
            &Profile::for_groups(&["security-team"]),
            Direction::Prompt
        )
        .text
        .contains("ghp_"));
        // A streamed response follows the same profile.
        let mut m = StreamMasker::with_profile(Profile::for_groups(&["security-team"]));
        let mut out = m.push("write to bob@exam");
        out.push_str(&m.push("ple.com now"));
        out.push_str(&m.finish());
        assert_eq!(out, "write to bob@example.com now");
    }

    #[test]
    fn the_hold_back_is_configurable_and_streams_still_equal_whole_text() {
        let jwt = format!(
            "eyJhbGciOiJSUzI1NiJ9.eyJ{}.{}",
            "a".repeat(600),
            "s".repeat(64)
        );
        let text = format!("token {jwt} end");
        let small = Profile::for_groups(&[]).with_hold_back(300);
        // Longer than the window: not matched whole, and never held longer.
        let whole = scan_with(&text, &small, Direction::Response).text;
        let mut m = StreamMasker::with_profile(small);
        let mut out = String::new();
        for piece in text.as_bytes().chunks(5) {
            out.push_str(&m.push(core::str::from_utf8(piece).unwrap()));
            assert!(m.held_back() <= 300);
        }
        out.push_str(&m.finish());
        assert_eq!(out, whole);
        // The default window takes it whole.
        assert_eq!(
            scan(&text, Direction::Response).text,
            "token [REDACTED:jwt] end"
        );
        assert_eq!(
            Profile::for_groups(&[]).with_hold_back(1).hold_back,
            MIN_HOLD_BACK
        );
    }

    #[test]
    fn findings_carry_positions_and_keyed_fingerprints_not_values() {
        let gh = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
        let text = format!("a {gh} b {gh} password=hunter2hunter2");
        let profile = Profile::for_groups(&[]).with_fingerprint_key(b"k1");
        let s = scan_with(&text, &profile, Direction::Response);
        let found: Vec<(&str, &Finding)> = s.findings.iter().collect();
        let (_, gh_finding) = found.iter().find(|(d, _)| *d == "github-token").unwrap();
        assert_eq!(gh_finding.count, 2);
        assert_eq!(gh_finding.positions, vec![2, 45]);
        assert_eq!(gh_finding.fingerprints.len(), 2);
        assert_eq!(
            gh_finding.fingerprints[0], gh_finding.fingerprints[1],
            "same secret, same fingerprint"
        );
        let (_, pw) = found
            .iter()
            .find(|(d, _)| *d == "password-assignment")
            .unwrap();
        assert_eq!(
            pw.positions,
            vec![text.find("hunter2").unwrap() as u64],
            "the value, not the key"
        );
        assert_ne!(pw.fingerprints[0], gh_finding.fingerprints[0]);
        // Another key, other fingerprints; no key, none.
        let other = scan_with(
            &text,
            &Profile::for_groups(&[]).with_fingerprint_key(b"k2"),
            Direction::Response,
        );
        assert_ne!(
            other.findings.iter().next().unwrap().1.fingerprints,
            gh_finding.fingerprints
        );
        assert!(scan(&text, Direction::Response)
            .findings
            .iter()
            .all(|(_, f)| f.fingerprints.is_empty()));
        // Nothing in a finding spells the value.
        let rendered = format!("{:?}", s.findings);
        assert!(!rendered.contains("ghp_") && !rendered.contains("hunter2"));
        // A stream reports the same positions as the whole text.
        let mut m = StreamMasker::with_profile(profile.clone());
        let mut streamed = Findings::default();
        for chunk in text.as_bytes().chunks(7) {
            m.push(core::str::from_utf8(chunk).unwrap());
        }
        m.finish();
        streamed.0 = m.findings().0.clone();
        assert_eq!(streamed, s.findings);
    }
}
