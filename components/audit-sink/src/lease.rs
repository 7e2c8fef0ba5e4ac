//! The sealer's lease: one KV value `{holder, until_ms}`, taken by one
//! compare-and-swap per seal (never per call). The holder id makes every
//! value unique to its writer, so a swap Spin's Redis store reports failed
//! can be read back and recognised as applied.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub holder: String,
    pub until_ms: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    /// Write this value to hold the lease.
    Claim(Vec<u8>),
    /// Someone else holds it until then.
    Held(String, u64),
    /// The value already is ours.
    Mine,
}

/// What to do with the lease's current value.
pub fn take(current: Option<&[u8]>, me: &str, now_ms: u64, ttl_ms: u64) -> Take {
    let lease: Option<Lease> = current.and_then(|c| serde_json::from_slice(c).ok());
    match lease {
        Some(l) if l.holder == me && l.until_ms > now_ms => Take::Mine,
        Some(l) if l.until_ms > now_ms => Take::Held(l.holder, l.until_ms),
        _ => Take::Claim(encode(&Lease {
            holder: me.to_string(),
            until_ms: now_ms + ttl_ms,
        })),
    }
}

/// The value that gives the lease back (expired, still naming its holder).
pub fn released(me: &str) -> Vec<u8> {
    encode(&Lease {
        holder: me.to_string(),
        until_ms: 0,
    })
}

fn encode(l: &Lease) -> Vec<u8> {
    // Serialising two plain fields cannot fail.
    serde_json::to_vec(l).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_until_it_expires_or_is_released() {
        let Take::Claim(a) = take(None, "a", 1000, 500) else {
            panic!("a free lease is claimed")
        };
        assert_eq!(take(Some(&a), "a", 1200, 500), Take::Mine);
        assert_eq!(take(Some(&a), "b", 1200, 500), Take::Held("a".into(), 1500));
        assert!(matches!(take(Some(&a), "b", 1500, 500), Take::Claim(_)));
        assert!(matches!(
            take(Some(&released("a")), "b", 1200, 500),
            Take::Claim(_)
        ));
        assert!(matches!(
            take(Some(b"garbage"), "b", 0, 500),
            Take::Claim(_)
        ));
    }
}
