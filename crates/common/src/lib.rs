//! Pure helpers shared by several components. No WIT bindings here: each
//! component keeps its own host imports.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    unix_now_ms() / 1000
}

pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A 32-byte Ed25519 seed from a Spin variable: 64 hex digits, or standard or
/// URL-safe base64.
pub fn decode_seed(text: &str) -> Result<[u8; 32], &'static str> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).map_err(|_| "the key is not hex")?
    } else {
        STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .map_err(|_| "the key is not base64 or hex")?
    };
    bytes
        .try_into()
        .map_err(|_| "the key must be a 32-byte Ed25519 seed")
}

/// A stable key id: a fingerprint of the public key, so that rotating a key
/// needs no second setting.
pub fn key_id(public_key: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(public_key)[..12])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitUrl<'a> {
    pub https: bool,
    pub authority: &'a str,
    /// Path with query, at least "/".
    pub path: &'a str,
}

/// Splits an absolute `http`/`https` URL for a wasi:http request.
pub fn split_url(url: &str) -> Result<SplitUrl<'_>, String> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("unsupported URL {url}"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("URL {url} has no host"));
    }
    Ok(SplitUrl {
        https,
        authority,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_decode_from_base64_and_hex() {
        assert_eq!(decode_seed(&STANDARD.encode([1u8; 32])).unwrap(), [1; 32]);
        assert_eq!(
            decode_seed(&URL_SAFE_NO_PAD.encode([3u8; 32])).unwrap(),
            [3; 32]
        );
        assert_eq!(decode_seed(&hex::encode([2u8; 32])).unwrap(), [2; 32]);
        assert!(decode_seed("short").is_err());
        assert!(decode_seed(&STANDARD.encode([1u8; 16])).is_err());
    }

    #[test]
    fn urls_split_for_wasi_http() {
        let u = split_url("https://api.github.com/copilot_internal/v2/token?x=1").unwrap();
        assert_eq!(
            (u.https, u.authority, u.path),
            (true, "api.github.com", "/copilot_internal/v2/token?x=1")
        );
        assert_eq!(split_url("http://127.0.0.1:8080").unwrap().path, "/");
        assert!(split_url("ftp://x").is_err());
        assert!(split_url("https:///path").is_err());
    }

    #[test]
    fn key_ids_are_stable_and_distinct() {
        assert_eq!(key_id(b"a"), key_id(b"a"));
        assert_ne!(key_id(b"a"), key_id(b"b"));
        assert_eq!(key_id(b"a").len(), 16);
    }
}
