//! Candidate positions from one pre-built automaton.
//!
//! The build script compiles every detector's anchor (`anchor_spec.rs`, and
//! the organisation's markers and host suffixes) into one reverse dense DFA
//! that reports all matches. Scanning a buffer backwards, each match ends at
//! a forward position where some detector can begin; only those positions
//! are probed. The DFA is embedded as bytes and read in place: nothing is
//! built or validated per request (a test validates the bytes).

use super::bytes::{is_host, is_local};
use super::probes::email_domain;
use super::Probe;
use super::{LONGEST_ANCHOR, MATCH_STARTS, WIDEST_ANCHOR};
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

/// The automaton, read from the embedded bytes: load it once per stream,
/// not once per piece.
#[derive(Clone, Debug)]
pub(super) struct Anchors {
    dfa: dense::DFA<&'static [u32]>,
    start: StateID,
}

pub(super) fn anchors() -> Option<Anchors> {
    // SAFETY: the bytes are what `to_bytes_little_endian` wrote at build time
    // with this crate's regex-automata version, for a little-endian target
    // (wasm32 and the host tests); `embedded_dfa_is_valid` checks them with
    // the validating `from_bytes`.
    let (dfa, _) = unsafe { dense::DFA::from_bytes_unchecked(anchors_dfa_bytes()) }.ok()?;
    let start = dfa.universal_start_state(Anchored::No)?;
    Some(Anchors { dfa, start })
}

/// The longest e-mail local part (`probe_email`).
const MAX_LOCAL: usize = 64;
/// How much of a host name `probe_host_suffix` reads.
const MAX_HOST: usize = 254;

/// Start of the run of `class` bytes ending just before `end`, looking back
/// at most `max + 1` bytes; `None` when the run is longer than `max`.
#[inline]
fn run_start(text: &[u8], end: usize, max: usize, class: impl Fn(u8) -> bool) -> Option<usize> {
    let low = end.saturating_sub(max + 1);
    let s = text[low..end]
        .iter()
        .rposition(|b| !class(*b))
        .map_or(low, |k| low + k + 1);
    (end - s <= max).then_some(s)
}

/// Which detectors a candidate is for: bit `i` for detector `i` (anchor
/// pattern `i` is detector `i`'s), all bits where any may begin.
pub(super) type Detectors = u64;
pub(super) const ANY_DETECTOR: Detectors = u64::MAX;

/// Bytes per block: the candidates of one block are found together, in a
/// list that stays small and is reused, so a text dense with candidates
/// costs no more memory than an ordinary one.
const BLOCK: usize = 16 * 1024;
/// Scans interleaved over a block's parts: each DFA step waits on the table
/// read of the step before, so one scan leaves the CPU mostly idle.
const LANES: usize = 4;
/// How far past a candidate its anchor can end: a run's anchor (`@`, a host
/// suffix) lies up to a run's length after the run's start.
const REACH: usize = MAX_HOST + WIDEST_ANCHOR + 1;

/// The positions of a buffer to probe, ascending, each with the detectors
/// that may begin there: every anchor's position, plus position 0 (whose
/// left context lies in an earlier piece). With `complete == false` the runs
/// that reach the end are added too (they may still become an address or a
/// host name). Found a block at a time, from wherever the caller asks.
pub(super) struct Candidates<'t> {
    text: &'t [u8],
    complete: bool,
    /// None at or past this: the caller probes the rest one by one.
    end: usize,
    anchors: Option<Anchors>,
    /// The lanes hold the candidates below this, from where the block began.
    block_end: usize,
    lanes: [Lane; LANES],
    /// The lane read from: the lanes' ranges ascend, each lane's list
    /// descends, so its last entry is the next candidate.
    reading: usize,
}

impl<'t> Candidates<'t> {
    pub(super) fn new(
        anchors: Option<Anchors>,
        text: &'t [u8],
        complete: bool,
        end: usize,
    ) -> Candidates<'t> {
        Candidates {
            text,
            complete,
            end: end.min(text.len()),
            anchors,
            block_end: 0,
            lanes: Default::default(),
            reading: LANES,
        }
    }

    /// The first candidate at or after `at`, if one is before the end.
    #[inline]
    pub(super) fn next_from(&mut self, at: usize) -> Option<(usize, Detectors)> {
        loop {
            while let Some(lane) = self.lanes.get_mut(self.reading) {
                while let Some(&(c, d)) = lane.found.last() {
                    if c as usize >= at {
                        return Some((c as usize, d));
                    }
                    lane.found.pop();
                }
                self.reading += 1;
            }
            let from = at.max(self.block_end);
            if from >= self.end {
                return None;
            }
            self.fill(from, (from + BLOCK).min(self.end));
        }
    }

    /// Finds the candidates in `from..to`.
    #[inline(never)]
    fn fill(&mut self, from: usize, to: usize) {
        let text = self.text;
        self.block_end = to;
        self.reading = 0;
        let lanes = if to - from >= LANES * REACH { LANES } else { 1 };
        let part = (to - from).div_ceil(lanes);
        for (j, lane) in self.lanes.iter_mut().enumerate() {
            let low = (from + j * part).min(to);
            let high = if j < lanes { (low + part).min(to) } else { low };
            lane.reset(text, (low, high));
        }
        let Some(anchors) = &self.anchors else {
            // Unreachable with the embedded bytes (a test proves it); fail
            // safe: probe every position for every detector.
            for lane in self.lanes.iter_mut() {
                for i in (lane.low..lane.high).rev() {
                    lane.push(i, ANY_DETECTOR);
                }
            }
            return;
        };
        for lane in self.lanes.iter_mut() {
            lane.state = anchors.start;
        }
        if lanes == LANES {
            interleaved(anchors, text, &mut self.lanes);
        }
        for lane in self.lanes.iter_mut().take(lanes) {
            lane.finish(anchors, text);
        }
        if from == 0 {
            self.lanes[0].push(0, ANY_DETECTOR);
        }
        if !self.complete && to + REACH >= text.len() {
            let end = text.len();
            let runs = [
                run_start(text, end, MAX_LOCAL, is_local),
                run_start(text, end, MAX_HOST - 1, is_host),
            ];
            for s in runs.into_iter().flatten() {
                for lane in self.lanes.iter_mut() {
                    lane.push(s, ANY_DETECTOR);
                }
            }
        }
        for lane in self.lanes.iter_mut() {
            lane.sort();
        }
    }
}

/// One backward scan for the candidates in `low..high`: it starts far
/// enough past `high` to see every anchor of those candidates whole.
#[derive(Default)]
struct Lane {
    low: usize,
    high: usize,
    /// The next byte to read is the one before this.
    at: usize,
    /// The last byte to read: the context byte of a candidate at `low` is
    /// the one before it, and a match shows one byte late.
    stop: usize,
    state: StateID,
    /// The lowest byte known to belong to the host run the last suffix was
    /// found in (the scan goes backwards, so later suffixes reuse it).
    host_low: Option<usize>,
    /// Descending, mostly.
    found: Vec<(u32, Detectors)>,
    /// Whether `found` is out of order.
    unsorted: bool,
}

impl Lane {
    /// Ready for the candidates in `low..high` of `text`.
    fn reset(&mut self, text: &[u8], (low, high): (usize, usize)) {
        self.low = low;
        self.high = high;
        self.stop = low.saturating_sub(2);
        self.at = if low < high {
            text.len().min(high + REACH)
        } else {
            self.stop
        };
        self.host_low = None;
        self.found.clear();
        self.unsorted = false;
    }

    /// Strictly descending: a run's start may lie before anchors found after
    /// it, and runs at a stream's end come last.
    fn sort(&mut self) {
        if !self.unsorted {
            return;
        }
        self.found
            .sort_unstable_by_key(|(at, _)| core::cmp::Reverse(*at));
        self.found.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 |= later.1;
            }
            same
        });
    }

    /// The rest of the scan, and the matches at the text's start.
    fn finish(&mut self, anchors: &Anchors, text: &[u8]) {
        let (mut at, mut state) = (self.at, self.state);
        while at > self.stop {
            at -= 1;
            state = step(anchors, state, text[at]);
            if anchors.dfa.is_special_state(state) {
                // Matches are reported one byte late: they start after `at`.
                self.matched(anchors, text, state, at + 1);
            }
        }
        if self.stop == 0 {
            self.matched(anchors, text, anchors.dfa.next_eoi_state(state), 0);
        }
    }

    #[cold]
    #[inline(never)]
    fn matched(&mut self, anchors: &Anchors, text: &[u8], state: StateID, at: usize) {
        let row = state.as_usize() >> anchors.dfa.stride2();
        let Some(&[here, after, before_at, host_run]) = MATCH_STARTS.get(row) else {
            return;
        };
        // Pushed descending, as the scan goes.
        if after != 0 {
            self.push(at + 1, after);
        }
        if here != 0 {
            self.push(at, here);
        }
        if before_at != 0 {
            if let Some(s) = run_start(text, at, MAX_LOCAL, is_local).filter(|s| *s < at) {
                // An address that this buffer already shows is none is
                // dropped here (a probe sees no more of it than this, and
                // one cut short by the text's end is kept).
                let may_be = text[s].is_ascii_alphanumeric()
                    && email_domain(&text[s..], at - s + 1) != Probe::NoMatch;
                if s == 0 || may_be {
                    self.push(s, before_at);
                }
            }
        }
        if host_run != 0 {
            let mut s = self.host_low.filter(|low| *low <= at).unwrap_or(at);
            while s > 0 && is_host(text[s - 1]) && at - s < MAX_HOST {
                s -= 1;
            }
            self.host_low = Some(s);
            let whole_run = s == 0 || !is_host(text[s - 1]);
            if whole_run && at - s < MAX_HOST {
                self.push(s, host_run);
            }
        }
    }

    fn push(&mut self, candidate: usize, detectors: Detectors) {
        if !(self.low..self.high).contains(&candidate) {
            return;
        }
        match self.found.last_mut() {
            Some(last) if last.0 as usize == candidate => last.1 |= detectors,
            last => {
                self.unsorted |= last.is_some_and(|last| (last.0 as usize) < candidate);
                self.found.push((candidate as u32, detectors));
            }
        }
    }
}

/// One DFA step.
#[inline(always)]
fn step(anchors: &Anchors, state: StateID, byte: u8) -> StateID {
    // SAFETY: `state` is the start state or came from the DFA's own
    // transition table, whose ids the validated bytes keep in range.
    unsafe { anchors.dfa.next_state_unchecked(state, byte) }
}

/// The lanes' scans, step by step together for as long as all go on; the
/// states stay in registers, apart from the lanes' lists.
fn interleaved(anchors: &Anchors, text: &[u8], lanes: &mut [Lane; LANES]) {
    let steps = lanes.iter().map(|l| l.at - l.stop).min().unwrap_or(0);
    // Each lane's bytes for these steps: equal lengths, so indexing needs
    // no bounds check.
    let bytes: [&[u8]; LANES] = core::array::from_fn(|j| &text[lanes[j].at - steps..lanes[j].at]);
    let mut state = [anchors.start; LANES];
    for k in (0..steps).rev() {
        for j in 0..LANES {
            state[j] = step(anchors, state[j], bytes[j][k]);
            if anchors.dfa.is_special_state(state[j]) {
                let at = lanes[j].at - steps + k;
                lanes[j].matched(anchors, text, state[j], at + 1);
            }
        }
    }
    for (lane, state) in lanes.iter_mut().zip(state) {
        lane.at -= steps;
        lane.state = state;
    }
}
