//! Secrets with no fixed bound: JWTs and PEM private keys.
//!
//! Each is recognised byte by byte, so the same code decides a whole text
//! (however long the token) and carries on across stream pieces when a token
//! outgrows the stream's hold-back: the stream then redacts from where the
//! token began and keeps swallowing it as it comes, never releasing it.

use super::bytes::{find, is_token_char, run_len};

/// What one more byte does to a recognition under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Part of the token; go on.
    More,
    /// The token ended just before this byte.
    EndBefore,
    /// The token ends with this byte.
    EndAfter,
    /// Not a token after all: the recognition stops before this byte.
    Fail,
}

/// How the header and the claims begin: `{"` in base64url.
const JWT_PREFIX: &[u8] = b"eyJ";

/// `eyJ….eyJ….<signature>`: three base64url parts, the first two of at
/// least 8 bytes after `eyJ`, the signature of at least 16.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Jwt {
    part: u8,
    /// Bytes of the current part seen so far, its `eyJ` included.
    len: usize,
}

impl Jwt {
    /// A token whose header and claims were read: its signature is next.
    pub(super) fn at_signature() -> Jwt {
        Jwt { part: 2, len: 0 }
    }

    pub(super) fn feed(&mut self, b: u8) -> Step {
        let prefix: &[u8] = if self.part < 2 { JWT_PREFIX } else { b"" };
        if let Some(expected) = prefix.get(self.len) {
            if b != *expected {
                return Step::Fail;
            }
            self.len += 1;
            return Step::More;
        }
        if is_token_char(b) {
            self.len += 1;
            return Step::More;
        }
        let run = self.len - prefix.len();
        match self.part {
            0 | 1 if b == b'.' && run >= 8 => {
                self.part += 1;
                self.len = 0;
                Step::More
            }
            2 if run >= 16 => Step::EndBefore,
            _ => Step::Fail,
        }
    }
}

impl Jwt {
    /// What feeding `bytes` one by one does, a prefix and a run of token
    /// bytes at a time: where and how the token ended, or `None` if it goes
    /// on.
    pub(super) fn read(&mut self, bytes: &[u8]) -> Option<(usize, Step)> {
        let mut k = 0;
        loop {
            if self.part < 2 && self.len < JWT_PREFIX.len() {
                let expected = &JWT_PREFIX[self.len..];
                let seen = &bytes[k..bytes.len().min(k + expected.len())];
                if let Some(m) = seen.iter().zip(expected).position(|(b, e)| b != e) {
                    self.len += m;
                    return Some((k + m, Step::Fail));
                }
                self.len += seen.len();
                k += seen.len();
                if seen.len() < expected.len() {
                    return None;
                }
            }
            let run = run_len(&bytes[k..], usize::MAX, is_token_char);
            self.len += run;
            k += run;
            let byte = *bytes.get(k)?;
            let step = self.feed(byte);
            if step != Step::More {
                return Some((k, step));
            }
            k += 1;
        }
    }
}

const PEM_END: &[u8] = b"-----END ";
pub(super) const PEM_TAIL: &[u8] = b"PRIVATE KEY-----";

/// A PEM body after its header: up to the first `-----END ` and then the
/// first `PRIVATE KEY-----`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct PemBody {
    seen_end: bool,
    /// The last bytes seen, newest last: markers may straddle pieces.
    recent: [u8; 16],
}

impl PemBody {
    pub(super) fn feed(&mut self, b: u8) -> Step {
        self.recent.copy_within(1.., 0);
        self.recent[15] = b;
        if !self.seen_end {
            self.seen_end = self.recent.ends_with(PEM_END);
            Step::More
        } else if self.recent.ends_with(PEM_TAIL) {
            Step::EndAfter
        } else {
            Step::More
        }
    }
}

impl PemBody {
    /// What feeding `bytes` one by one to a new body does, by search: how
    /// many bytes the key takes to its end, or the state after all of them.
    pub(super) fn read(bytes: &[u8]) -> Result<usize, PemBody> {
        let seen_end = match find(bytes, PEM_END) {
            Some(at) => {
                // The tail is looked for once the marker is seen: it ends
                // after the marker's last byte.
                let from = (at + PEM_END.len()).saturating_sub(PEM_TAIL.len() - 1);
                if let Some(tail) = find(&bytes[from..], PEM_TAIL) {
                    return Ok(from + tail + PEM_TAIL.len());
                }
                true
            }
            None => false,
        };
        let mut recent = [0u8; 16];
        let kept = bytes.len().min(recent.len());
        recent[16 - kept..].copy_from_slice(&bytes[bytes.len() - kept..]);
        Err(PemBody { seen_end, recent })
    }
}

/// A recognition that can continue past a stream piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Long {
    Jwt(Jwt),
    Pem(PemBody),
}

impl Long {
    pub(super) fn feed(&mut self, b: u8) -> Step {
        match self {
            Long::Jwt(jwt) => jwt.feed(b),
            Long::Pem(pem) => pem.feed(b),
        }
    }
}
