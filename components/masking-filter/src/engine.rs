//! Secret detection without run-time pattern compilation.
//!
//! One automaton built at compile time (`anchors`) finds the positions where
//! any detector can begin, in one linear pass; each is then confirmed by its
//! detector's exact matcher, written as code (`probes`, `long`). Matching is
//! greedy, left to right, on bytes; all patterns are ASCII, so match
//! boundaries are always UTF-8 char boundaries. A whole text is read as far
//! as a token goes; a stream holds back at most its window and then redacts a
//! token that outgrows it from where it began, so what a stream releases is
//! what whole-text masking produces, and never less masked.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

// The anchor table itself is read by the build script and the tests.
pub mod adversarial;
#[cfg_attr(not(test), allow(dead_code))]
mod anchor_spec;
mod anchors;
mod bytes;
mod long;
mod memo;
use anchor_spec::Start;
use bytes::is_token_char;
use long::{Long, Step};
use memo::Memo;

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
    /// A token still going when the stream window is full: it is redacted
    /// from `keep` and followed as it streams.
    Long {
        keep: usize,
        long: Long,
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
    /// How far a detector may look: a stream's hold-back, unbounded for a
    /// whole text.
    limit: usize,
    /// Where `text` starts in the scanned buffer.
    pos: usize,
    memo: &'a Memo,
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

/// The most a stream holds back: 4 KiB covers a JWT with a large claim set
/// and a PEM key block; every other detector decides within 256 bytes, text
/// that cannot begin a match is never held at all, and a token longer than
/// the window is redacted from its start as it streams on.
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

/// Where a built-in detector is in `BUILTIN_DETECTORS` (at compile time).
const fn builtin_index(name: &str) -> usize {
    let mut i = 0;
    while i < BUILTIN_DETECTORS.len() {
        let (a, b) = (BUILTIN_DETECTORS[i].name.as_bytes(), name.as_bytes());
        let mut same = a.len() == b.len();
        let mut k = 0;
        while same && k < a.len() {
            same = a[k] == b[k];
            k += 1;
        }
        if same {
            return i;
        }
        i += 1;
    }
    panic!("no such built-in detector")
}
const JWT: usize = builtin_index("jwt");
const CARD: usize = builtin_index("credit-card");

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

    /// A smaller hold-back means less delay on text that could begin a JWT
    /// or PEM key; a longer token is then redacted from where it began
    /// before its end is seen (on a stream only: whole texts are unbounded).
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
    /// Counts one finding; its fingerprint is computed only while kept.
    fn add(
        &mut self,
        detector: &'static str,
        position: u64,
        fingerprint: impl FnOnce() -> Option<String>,
    ) {
        let f = self.0.entry(detector).or_default();
        f.count += 1;
        if f.positions.len() < MAX_FINDING_DETAILS {
            f.positions.push(position);
        }
        if f.fingerprints.len() < MAX_FINDING_DETAILS {
            f.fingerprints.extend(fingerprint());
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

type Mac = hmac::SimpleHmac<sha2::Sha256>;

/// A keyed MAC for one value's fingerprint; none without a key.
fn fingerprint_mac(key: &[u8]) -> Option<Mac> {
    if key.is_empty() {
        return None;
    }
    <Mac as hmac::Mac>::new_from_slice(key).ok()
}

/// The first 8 bytes of the MAC, as 16 hex digits.
fn fingerprint_hex(mac: Mac) -> String {
    use hmac::Mac as _;
    let digest = mac.finalize().into_bytes();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    digest[..8]
        .iter()
        .flat_map(|b| {
            [
                HEX[usize::from(b >> 4)] as char,
                HEX[usize::from(b & 15)] as char,
            ]
        })
        .collect()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    pub text: String,
    pub findings: Findings,
    pub blocked: bool,
}

/// Writes what stands in for a redacted value.
fn push_replacement(out: &mut String, name: &str) {
    out.push_str("[REDACTED:");
    out.push_str(name);
    out.push(']');
}

/// Which positions a scan probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Positions {
    /// Only where the anchors automaton says a detector can begin.
    Anchored,
    /// Every position: the reference the anchored scan is tested against.
    #[cfg_attr(not(test), allow(dead_code))]
    Every,
}

/// What one position holds.
enum Decision {
    /// No detector matches here.
    Pass,
    /// A detector cannot decide before more text arrives.
    Undecided,
    Hit {
        index: usize,
        detector: &'static Detector,
        len: usize,
        keep: usize,
    },
    Long {
        index: usize,
        detector: &'static Detector,
        keep: usize,
        long: Long,
    },
}

/// Tries the detectors in priority order at `at` (those in `detectors`: the
/// others cannot begin here): the first that matches wins, unless one
/// before it cannot decide yet.
fn decide(at: &At, at_end: bool, detectors: anchors::Detectors) -> Decision {
    let Some(&first) = at.text.first() else {
        return Decision::Pass;
    };
    let word_start = !at
        .prev
        .is_some_and(|p| p.is_ascii_alphanumeric() || p == b'_');
    let mut undecided = false;
    let mut try_one = |index: usize, detector: &'static Detector| {
        if !detector.may_start(first, word_start) {
            return None;
        }
        let decision = match detector.probe(at) {
            Probe::Match { len, keep } => Decision::Hit {
                index,
                detector,
                len,
                keep,
            },
            Probe::Long { keep, long } => Decision::Long {
                index,
                detector,
                keep,
                long,
            },
            Probe::NeedMore if !at_end && at.text.len() <= at.limit => {
                undecided = true;
                return None;
            }
            _ => return None,
        };
        // An earlier detector might still match here: wait for it.
        Some(if undecided {
            Decision::Undecided
        } else {
            decision
        })
    };
    // Only the detectors whose anchor fired here, in order: the set bits,
    // lowest first; then every one past the 64th.
    let mut bits = detectors;
    while bits != 0 {
        let index = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        let Some(detector) = BUILTIN_DETECTORS
            .get(index)
            .or_else(|| ORG_DETECTORS.get(index - BUILTIN_DETECTORS.len()))
        else {
            break;
        };
        if let Some(decision) = try_one(index, detector) {
            return decision;
        }
    }
    for (k, detector) in ORG_DETECTORS.iter().enumerate() {
        let index = BUILTIN_DETECTORS.len() + k;
        if index >= 64 {
            if let Some(decision) = try_one(index, detector) {
                return decision;
            }
        }
    }
    if undecided {
        Decision::Undecided
    } else {
        Decision::Pass
    }
}

/// A token followed past the stream window (`Probe::Long`).
struct LongRun {
    detector: &'static str,
    /// Where its finding is, from the stream's start.
    position: u64,
    /// Redacted (the replacement is out already) or allowed (passes as is).
    redact: bool,
    mac: Option<Mac>,
    long: Long,
}

impl core::fmt::Debug for LongRun {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LongRun")
            .field("detector", &self.detector)
            .field("position", &self.position)
            .field("redact", &self.redact)
            .finish_non_exhaustive()
    }
}

impl LongRun {
    /// Follows the token through `bytes`: how many belong to it, and
    /// whether it ended there.
    fn feed(&mut self, bytes: &[u8]) -> (usize, bool) {
        use hmac::Mac as _;
        for (k, b) in bytes.iter().enumerate() {
            let (used, ended) = match self.long.feed(*b) {
                Step::More => (k + 1, false),
                Step::EndAfter => (k + 1, true),
                Step::EndBefore | Step::Fail => (k, true),
            };
            if ended {
                if let Some(mac) = self.mac.as_mut() {
                    mac.update(&bytes[..used]);
                }
                return (used, true);
            }
        }
        if let Some(mac) = self.mac.as_mut() {
            mac.update(bytes);
        }
        (bytes.len(), false)
    }

    fn record(self, findings: &mut Findings) {
        if self.redact {
            findings.add(self.detector, self.position, || {
                self.mac.map(fingerprint_hex)
            });
        }
    }
}

/// What a scan decided: how much of the text is done, and a token it left
/// to follow as the stream goes on.
struct Scanned {
    consumed: usize,
    long: Option<LongRun>,
}

/// One scan of a buffer: whole text (`at_end`) or a stream's pending bytes.
struct Scanner<'a> {
    profile: &'a Profile,
    direction: Direction,
    at_end: bool,
    /// The byte before the buffer, for left boundaries.
    prev: Option<u8>,
    /// Where the buffer starts in the stream, for finding positions.
    offset: u64,
    positions: Positions,
    anchors: Option<&'a anchors::Anchors>,
}

impl Scanner<'_> {
    /// Scans `text`, appending decided output to `out`. With `at_end ==
    /// false`, stops at the first position a detector cannot decide yet, or
    /// where a token outgrows the window.
    fn scan(
        &self,
        text: &str,
        out: &mut String,
        findings: &mut Findings,
        blocked: &mut bool,
    ) -> Scanned {
        let bytes = text.as_bytes();
        // Complete input gets the sentinel once, not a copy per position.
        let padded;
        let scanned: &[u8] = if self.at_end {
            padded = [bytes, &[0u8]].concat();
            &padded
        } else {
            bytes
        };
        let limit = if self.at_end {
            usize::MAX
        } else {
            self.profile.hold_back
        };
        // Before `fast_end` only candidates are probed; after it (the last
        // bytes of a stream piece, where an anchor may be cut short) every
        // position is.
        let mut fast_end = match self.positions {
            Positions::Every => 0,
            Positions::Anchored if self.at_end => bytes.len(),
            // A short stream piece is cheaper to probe position by position
            // than to run the automaton over.
            Positions::Anchored if bytes.len() < 4 * anchors::TAIL => 0,
            Positions::Anchored => bytes.len().saturating_sub(anchors::TAIL),
        };
        while !text.is_char_boundary(fast_end) {
            fast_end -= 1;
        }
        let mut candidates = anchors::Candidates::new(
            self.anchors.cloned().or_else(anchors::anchors),
            bytes,
            self.at_end,
            fast_end,
        );
        // Keyed once per scan, and only when something is found.
        let keyed_once = core::cell::OnceCell::new();
        let keyed = || {
            keyed_once
                .get_or_init(|| fingerprint_mac(&self.profile.fingerprint_key))
                .clone()
        };
        let fingerprint_of = |value: &[u8]| {
            keyed().map(|mut mac| {
                use hmac::Mac as _;
                mac.update(value);
                fingerprint_hex(mac)
            })
        };
        let memo = Memo::new(self.positions == Positions::Anchored);
        let detector_count = BUILTIN_DETECTORS.len() + ORG_DETECTORS.len();
        let mut i = 0;
        let mut copied_from = 0;
        while i < bytes.len() {
            let mut detectors = anchors::ANY_DETECTOR;
            if i < fast_end {
                (i, detectors) = candidates
                    .next_from(i)
                    .unwrap_or((fast_end, anchors::ANY_DETECTOR));
                if i >= bytes.len() {
                    break;
                }
            }
            let detectors = detectors & !memo.failing(i);
            let window_end = scanned.len().min(i.saturating_add(limit).saturating_add(1));
            let decision = if detectors == 0 && detector_count <= 64 {
                // Every detector that could begin here is known to fail.
                Decision::Pass
            } else {
                let at = At {
                    text: &scanned[i..window_end],
                    prev: if i == 0 {
                        self.prev
                    } else {
                        Some(bytes[i - 1])
                    },
                    complete: self.at_end && window_end == scanned.len(),
                    limit,
                    pos: i,
                    memo: &memo,
                };
                decide(&at, self.at_end, detectors)
            };
            match decision {
                Decision::Pass => {
                    i += 1;
                    while i < bytes.len() && !text.is_char_boundary(i) {
                        i += 1;
                    }
                }
                Decision::Undecided => break,
                Decision::Hit {
                    index,
                    detector,
                    len,
                    keep,
                } => {
                    let action = self.profile.action(index, self.direction);
                    if action != Action::Allow {
                        // Allowed text passes whole: nothing else may fire inside it.
                        out.push_str(&text[copied_from..i + keep]);
                        findings.add(detector.name, self.offset + (i + keep) as u64, || {
                            fingerprint_of(&bytes[i + keep..i + len])
                        });
                        *blocked |= action == Action::Block;
                        push_replacement(out, detector.name);
                        copied_from = i + len;
                    }
                    i += len;
                }
                Decision::Long {
                    index,
                    detector,
                    keep,
                    long,
                } => {
                    // Only a stream window fills up; its tokens are never
                    // refused, only redacted or allowed.
                    let redact = self.profile.action(index, self.direction) != Action::Allow;
                    let mut mac = None;
                    if redact {
                        out.push_str(&text[copied_from..i + keep]);
                        push_replacement(out, detector.name);
                        mac = keyed().map(|mut m| {
                            use hmac::Mac as _;
                            m.update(&bytes[i + keep..window_end]);
                            m
                        });
                    } else {
                        out.push_str(&text[copied_from..window_end]);
                    }
                    return Scanned {
                        consumed: window_end,
                        long: Some(LongRun {
                            detector: detector.name,
                            position: self.offset + (i + keep) as u64,
                            redact,
                            mac,
                            long,
                        }),
                    };
                }
            }
        }
        let i = i.min(bytes.len());
        out.push_str(&text[copied_from..i]);
        Scanned {
            consumed: i,
            long: None,
        }
    }
}

pub fn scan(text: &str, direction: Direction) -> Scan {
    scan_with(text, &Profile::default(), direction)
}

/// Masks `text` whole with the actions of `profile`.
pub fn scan_with(text: &str, profile: &Profile, direction: Direction) -> Scan {
    scan_whole(text, profile, direction, Positions::Anchored)
}

fn scan_whole(text: &str, profile: &Profile, direction: Direction, positions: Positions) -> Scan {
    let mut out = String::with_capacity(text.len());
    let mut findings = Findings::default();
    let mut blocked = false;
    let scanner = Scanner {
        profile,
        direction,
        at_end: true,
        prev: None,
        offset: 0,
        positions,
        anchors: None,
    };
    scanner.scan(text, &mut out, &mut findings, &mut blocked);
    Scan {
        text: out,
        findings,
        blocked,
    }
}

/// Incremental masking of one response text stream. Holds back at most the
/// profile's window: only a tail that could still become a match.
#[derive(Debug)]
pub struct StreamMasker {
    profile: Profile,
    pending: String,
    /// Bytes already released: positions count from the stream's start.
    offset: u64,
    /// The last byte already released: left boundaries need it.
    prev: Option<u8>,
    findings: Findings,
    /// A token that outgrew the window, followed until it ends.
    long: Option<LongRun>,
    positions: Positions,
    anchors: Option<anchors::Anchors>,
}

impl Default for StreamMasker {
    fn default() -> Self {
        StreamMasker::with_profile(Profile::default())
    }
}

impl StreamMasker {
    pub fn with_profile(profile: Profile) -> StreamMasker {
        StreamMasker {
            profile,
            pending: String::new(),
            offset: 0,
            prev: None,
            findings: Findings::default(),
            long: None,
            positions: Positions::Anchored,
            anchors: anchors::anchors(),
        }
    }

    pub fn push(&mut self, text: &str) -> String {
        self.pending.push_str(text);
        self.advance(false)
    }

    pub fn finish(&mut self) -> String {
        let out = self.advance(true);
        // The stream is over: a token still followed ends here.
        if let Some(run) = self.long.take() {
            run.record(&mut self.findings);
        }
        out
    }

    /// Releases what can be decided: a followed token first, then a scan,
    /// which may hand on a new token to follow.
    fn advance(&mut self, at_end: bool) -> String {
        let mut out = String::with_capacity(self.pending.len());
        loop {
            if let Some(run) = self.long.as_mut() {
                let (used, ended) = run.feed(self.pending.as_bytes());
                if !run.redact {
                    out.push_str(&self.pending[..used]);
                }
                self.release(used);
                if !ended {
                    break;
                }
                if let Some(run) = self.long.take() {
                    run.record(&mut self.findings);
                }
            }
            let scanner = Scanner {
                profile: &self.profile,
                direction: Direction::Response,
                at_end,
                prev: self.prev,
                offset: self.offset,
                positions: self.positions,
                anchors: self.anchors.as_ref(),
            };
            let mut blocked = false;
            let scanned = scanner.scan(&self.pending, &mut out, &mut self.findings, &mut blocked);
            self.release(scanned.consumed);
            match scanned.long {
                Some(run) => self.long = Some(run),
                None => break,
            }
        }
        out
    }

    /// Drops the first `consumed` pending bytes, which are decided.
    fn release(&mut self, consumed: usize) {
        if consumed > 0 {
            self.prev = Some(self.pending.as_bytes()[consumed - 1]);
            self.offset += consumed as u64;
            self.pending.drain(..consumed);
        }
    }

    pub fn held_back(&self) -> usize {
        self.pending.len()
    }

    pub fn findings(&self) -> &Findings {
        &self.findings
    }
}

#[cfg(test)]
mod anchored_tests;
#[cfg(test)]
mod shortcut_tests;
#[cfg(test)]
mod tests;
