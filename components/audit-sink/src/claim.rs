//! Claims on KV entries that one worker at a time may take (a spooled record
//! to ship, a pending event to seal): `claimed:{ms}:{writer}:{payload}`. The
//! writer id makes each claim unique, so a claim whose swap was reported
//! failed (Spin's Redis store) can be recognised as its own; a claim older
//! than the timeout is taken over (its worker died).

const PREFIX: &str = "claimed:";

/// A stored entry: its payload and, when claimed, by whom and since when.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub payload: &'a [u8],
    pub claim: Option<Claim<'a>>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Claim<'a> {
    pub at_ms: u64,
    pub writer: &'a str,
}

/// Reads an entry. Claims written before writer ids (`claimed:{ms}:{json}`)
/// read with an empty writer.
pub fn parse(stored: &[u8]) -> Entry<'_> {
    let Some(rest) = stored.strip_prefix(PREFIX.as_bytes()) else {
        return Entry {
            payload: stored,
            claim: None,
        };
    };
    let (ms, rest) = split_colon(rest).unwrap_or((b"0", rest));
    let at_ms = std::str::from_utf8(ms)
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let (writer, payload) = match rest.first() {
        Some(b'{') | None => ("", rest),
        Some(_) => match split_colon(rest) {
            Some((w, p)) => (std::str::from_utf8(w).unwrap_or(""), p),
            None => ("", rest),
        },
    };
    Entry {
        payload,
        claim: Some(Claim { at_ms, writer }),
    }
}

fn split_colon(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&b| b == b':')?;
    Some((&bytes[..at], &bytes[at + 1..]))
}

/// The stored form of a claim on `payload`.
pub fn claimed(at_ms: u64, writer: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{PREFIX}{at_ms}:{writer}:").into_bytes();
    out.extend_from_slice(payload);
    out
}

/// What a worker may do with an entry it found.
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    /// Claim it (write `claimed(..)`).
    Claim,
    /// It is this worker's claim already.
    Mine,
    /// Another live worker holds it.
    Held,
}

pub fn take(entry: &Entry<'_>, writer: &str, now_ms: u64, timeout_ms: u64) -> Take {
    match &entry.claim {
        None => Take::Claim,
        Some(c) if !writer.is_empty() && c.writer == writer => Take::Mine,
        Some(c) if now_ms.saturating_sub(c.at_ms) >= timeout_ms => Take::Claim,
        Some(_) => Take::Held,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_round_trip_with_their_writer() {
        let stored = claimed(1234, "w1", br#"{"a":1}"#);
        let e = parse(&stored);
        assert_eq!(e.payload, br#"{"a":1}"#);
        assert_eq!(
            e.claim,
            Some(Claim {
                at_ms: 1234,
                writer: "w1"
            })
        );
        assert_eq!(parse(b"{\"b\":2}").claim, None);
    }

    #[test]
    fn old_claims_without_a_writer_still_read() {
        let e = parse(br#"claimed:99:{"a":1}"#);
        assert_eq!(e.payload, br#"{"a":1}"#);
        assert_eq!(
            e.claim,
            Some(Claim {
                at_ms: 99,
                writer: ""
            })
        );
    }

    #[test]
    fn a_worker_takes_free_or_stale_entries_and_knows_its_own() {
        let free = parse(b"{}");
        assert_eq!(take(&free, "w1", 10, 100), Take::Claim);
        let stored = claimed(1000, "w1", b"{}");
        let held = parse(&stored);
        assert_eq!(take(&held, "w1", 1050, 100), Take::Mine);
        assert_eq!(take(&held, "w2", 1050, 100), Take::Held);
        assert_eq!(take(&held, "w2", 1100, 100), Take::Claim);
        // An empty writer never matches (old claims).
        let old = parse(br#"claimed:1000:{}"#);
        assert_eq!(take(&old, "", 1050, 100), Take::Held);
    }
}
