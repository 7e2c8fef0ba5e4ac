//! The spool's layout in the key-value store, found without listing keys.
//!
//! While storage is down, records wait in KV under numbers taken in
//! order: `audit-spool-next` is incremented atomically and the record is
//! written at `audit-spool:{n}`. Readers walk from a low-water mark to the
//! last number taken, so a flush, a catch-up or a query reads only the
//! spool, never the whole keyspace (wasi:keyvalue lists every key).
//!
//! A shipped entry is overwritten with a tombstone (empty), not deleted:
//! an absent number is then one whose writer has not stored it yet (it
//! took the number a moment ago) or died between the two steps. The mark
//! moves over tombstones at once and over an absent number only once it
//! has been absent for longer than a writer can take.

use serde::{Deserialize, Serialize};

pub const ENTRY_PREFIX: &str = "audit-spool:";

/// An absent number older than this is a writer that died.
pub const HOLE_TIMEOUT_MS: u64 = 120_000;

pub fn entry_key(n: u64) -> String {
    format!("{ENTRY_PREFIX}{n:012}")
}

/// The stored entry: the record's object name, a newline, its line.
pub fn encode(name: &str, line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 1 + line.len());
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(line);
    out
}

/// (name, line) of an entry's payload; `None` for a tombstone or bytes
/// that are no entry.
pub fn decode(payload: &[u8]) -> Option<(&str, &[u8])> {
    let at = payload.iter().position(|&b| b == b'\n')?;
    let name = std::str::from_utf8(&payload[..at]).ok()?;
    (!name.is_empty()).then_some((name, &payload[at + 1..]))
}

/// What a reader found at one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A record still waiting (or claimed by a flusher).
    Waiting,
    /// Shipped.
    Tombstone,
    /// Not written (yet).
    Absent,
}

/// The low-water mark: every number below `low` is shipped. `hole` is the
/// absent number the mark waits at and when it was first seen absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub low: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hole: Option<(u64, u64)>,
}

impl Mark {
    /// The first number a reader looks at (numbers start at 1).
    pub fn first(&self) -> u64 {
        self.low.max(1)
    }

    /// The mark after a reader saw `slots`, in order from `first()`: it
    /// moves over tombstones, and over an absent number only once that
    /// number has been absent for `HOLE_TIMEOUT_MS`.
    pub fn after(&self, slots: &[Slot], now_ms: u64) -> Mark {
        let mut low = self.first();
        let mut hole = None;
        for slot in slots {
            match slot {
                Slot::Tombstone => low += 1,
                Slot::Waiting => break,
                Slot::Absent => {
                    let since = match self.hole {
                        Some((n, since)) if n == low => since,
                        _ => now_ms,
                    };
                    if now_ms.saturating_sub(since) >= HOLE_TIMEOUT_MS {
                        low += 1;
                    } else {
                        hole = Some((low, since));
                        break;
                    }
                }
            }
        }
        Mark { low, hole }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Slot::*;

    #[test]
    fn entries_keep_their_name_and_line() {
        let bytes = encode("dt=2026-12-02/aud_1.json", b"{\"a\":1}");
        assert_eq!(
            decode(&bytes),
            Some(("dt=2026-12-02/aud_1.json", &b"{\"a\":1}"[..]))
        );
        assert_eq!(decode(b""), None, "a tombstone");
        assert_eq!(decode(b"no newline"), None);
        assert_eq!(entry_key(42), "audit-spool:000000000042");
    }

    #[test]
    fn the_mark_moves_over_tombstones_and_stops_at_a_waiting_record() {
        let mark = Mark::default();
        assert_eq!(mark.first(), 1);
        let next = mark.after(&[Tombstone, Tombstone, Waiting, Tombstone], 0);
        assert_eq!(next, Mark { low: 3, hole: None });
        assert_eq!(next.after(&[], 0), Mark { low: 3, hole: None });
    }

    #[test]
    fn an_absent_number_holds_the_mark_until_its_writer_must_have_died() {
        let mark = Mark { low: 5, hole: None };
        let waiting = mark.after(&[Tombstone, Absent, Tombstone], 1_000);
        assert_eq!(
            waiting,
            Mark {
                low: 6,
                hole: Some((6, 1_000))
            }
        );
        // Still absent, not long enough: the mark keeps its first sighting.
        let later = waiting.after(&[Absent, Tombstone], 1_000 + HOLE_TIMEOUT_MS - 1);
        assert_eq!(later, waiting);
        // Absent for the whole timeout: moved over.
        let moved = later.after(&[Absent, Tombstone, Waiting], 1_000 + HOLE_TIMEOUT_MS);
        assert_eq!(moved, Mark { low: 8, hole: None });
        // Written meanwhile: the record waits, the mark stays for it.
        let written = waiting.after(&[Waiting], 1_000 + HOLE_TIMEOUT_MS);
        assert_eq!(written, Mark { low: 6, hole: None });
    }
}
