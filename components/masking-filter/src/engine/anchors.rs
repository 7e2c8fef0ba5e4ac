//! Candidate positions from one pre-built automaton.
//!
//! The build script compiles every detector's anchor (`anchor_spec.rs`, and
//! the organisation's markers and host suffixes) into one reverse dense DFA
//! that reports all matches. Scanning a buffer backwards, each match ends at
//! a forward position where some detector can begin; only those positions
//! are probed. The DFA is embedded as bytes and read in place: nothing is
//! built or validated per request (a test validates the bytes).

use super::anchor_spec::Start;
use super::{ANCHOR_STARTS, LONGEST_ANCHOR};
use alloc::vec::Vec;
use regex_automata::dfa::{dense, Automaton};
use regex_automata::util::primitives::StateID;
use regex_automata::Anchored;

#[repr(C)]
struct Aligned<B: ?Sized> {
    _align: [u32; 0],
    bytes: B,
}

static ANCHORS_DFA: &Aligned<[u8]> = &Aligned {
    _align: [],
    bytes: *include_bytes!(concat!(env!("OUT_DIR"), "/anchors.dfa")),
};

pub(super) fn anchors_dfa_bytes() -> &'static [u8] {
    &ANCHORS_DFA.bytes
}

/// Bytes from a buffer's end within which an anchor may still be incomplete.
pub(super) const TAIL: usize = LONGEST_ANCHOR;

struct Anchors {
    dfa: dense::DFA<&'static [u32]>,
    start: StateID,
}

fn anchors() -> Option<Anchors> {
    // SAFETY: the bytes are what `to_bytes_little_endian` wrote at build time
    // with this crate's regex-automata version, for a little-endian target
    // (wasm32 and the host tests); `embedded_dfa_is_valid` checks them with
    // the validating `from_bytes`.
    let (dfa, _) = unsafe { dense::DFA::from_bytes_unchecked(anchors_dfa_bytes()) }.ok()?;
    let start = dfa.universal_start_state(Anchored::No)?;
    Some(Anchors { dfa, start })
}

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._%+-".contains(&b)
}

fn is_host(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.'
}

/// The longest e-mail local part (`probe_email`).
const MAX_LOCAL: usize = 64;
/// How much of a host name `probe_host_suffix` reads.
const MAX_HOST: usize = 254;

/// Start of the run of `class` bytes ending just before `end`, looking back
/// at most `max + 1` bytes; `None` when the run is longer than `max`.
fn run_start(text: &[u8], end: usize, max: usize, class: fn(u8) -> bool) -> Option<usize> {
    let mut s = end;
    while s > 0 && class(text[s - 1]) {
        if end - s == max {
            return None;
        }
        s -= 1;
    }
    Some(s)
}

/// Which detectors a candidate is for: bit `i` for detector `i` (anchor
/// pattern `i` is detector `i`'s), all bits where any may begin.
pub(super) type Detectors = u64;
pub(super) const ANY_DETECTOR: Detectors = u64::MAX;

fn detector_bit(pattern: usize) -> Detectors {
    if pattern < 64 {
        1 << pattern
    } else {
        ANY_DETECTOR
    }
}

/// The positions of `text` to probe, ascending, each with the detectors
/// that may begin there: every anchor's position, plus position 0 (whose
/// left context lies in an earlier piece). With `complete == false` the runs
/// that reach the end are added too (they may still become an address or a
/// host name); positions in the last `TAIL` bytes are the caller's to probe
/// one by one.
pub(super) fn candidates(text: &[u8], complete: bool) -> Vec<(u32, Detectors)> {
    let mut found: Vec<(u32, Detectors)> = Vec::new();
    if text.is_empty() {
        return found;
    }
    let Some(Anchors { dfa, start }) = anchors() else {
        // Unreachable with the embedded bytes (a test proves it); fail safe:
        // probe every position for every detector.
        return (0..text.len() as u32).map(|i| (i, ANY_DETECTOR)).collect();
    };
    // The lowest byte known to belong to the host run the last suffix was
    // found in (the scan goes backwards, so later suffixes reuse it).
    let mut host_low: Option<usize> = None;
    let mut add = |found: &mut Vec<(u32, Detectors)>, pattern: usize, at: usize| {
        let rule = ANCHOR_STARTS.get(pattern).copied().unwrap_or(Start::Here);
        let candidate = match rule {
            Start::Here => Some(at),
            Start::AfterContext => Some(at + 1),
            Start::BeforeAt => run_start(text, at, MAX_LOCAL, is_local).filter(|s| *s < at),
            Start::HostRun => {
                let mut s = host_low.filter(|low| *low <= at).unwrap_or(at);
                while s > 0 && is_host(text[s - 1]) && at - s < MAX_HOST {
                    s -= 1;
                }
                host_low = Some(s);
                let whole_run = s == 0 || !is_host(text[s - 1]);
                (whole_run && at - s < MAX_HOST).then_some(s)
            }
        };
        if let Some(c) = candidate.filter(|c| *c < text.len()) {
            found.push((c as u32, detector_bit(pattern)));
        }
    };
    let mut state = start;
    for (at, byte) in text.iter().enumerate().rev() {
        // SAFETY: `state` is the start state or came from the DFA's own
        // transition table, whose ids the validated bytes keep in range.
        state = unsafe { dfa.next_state_unchecked(state, *byte) };
        if dfa.is_special_state(state) && dfa.is_match_state(state) {
            // Matches are reported one byte late: they start after `at`.
            for m in 0..dfa.match_len(state) {
                add(&mut found, dfa.match_pattern(state, m).as_usize(), at + 1);
            }
        }
    }
    state = dfa.next_eoi_state(state);
    if dfa.is_match_state(state) {
        for m in 0..dfa.match_len(state) {
            add(&mut found, dfa.match_pattern(state, m).as_usize(), 0);
        }
    }
    found.push((0, ANY_DETECTOR));
    if !complete {
        let end = text.len();
        if let Some(s) = run_start(text, end, MAX_LOCAL, is_local) {
            found.push((s as u32, ANY_DETECTOR));
        }
        if let Some(s) = run_start(text, end, MAX_HOST - 1, is_host) {
            found.push((s as u32, ANY_DETECTOR));
        }
    }
    // Nearly sorted (the scan went backwards): reversing makes it almost
    // ascending, which the sort handles in linear time.
    found.reverse();
    found.sort_unstable_by_key(|(at, _)| *at);
    found.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.1 |= later.1;
        }
        same
    });
    found
}
