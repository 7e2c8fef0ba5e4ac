//! Pure helpers shared by several components. No WIT bindings here: each
//! component keeps its own host imports.

pub mod action;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};

pub mod cas;

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

/// A person's stable, opaque key (the same in every component): their
/// grants' index and their sign-ins are stored under it. Issuer and subject
/// together name a person; the hash keeps free text out of store keys.
pub fn person_key(issuer: &str, subject: &str) -> String {
    let mut h = Sha256::new();
    h.update(issuer.as_bytes());
    h.update([0u8]);
    h.update(subject.as_bytes());
    hex::encode(&h.finalize()[..16])
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

/// Follows a cursor-paged listing (KV `list-keys`, S3 ListObjectsV2) to its
/// end: `page(cursor)` returns one page and the cursor of the next, if any.
/// A store that hands back the cursor it was given ends the walk rather than
/// looping forever.
pub fn all_pages<T, E>(
    mut page: impl FnMut(Option<&str>) -> Result<(Vec<T>, Option<String>), E>,
) -> Result<Vec<T>, E> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let (mut batch, next) = page(cursor.as_deref())?;
        items.append(&mut batch);
        match next {
            Some(next) if cursor.as_deref() != Some(next.as_str()) => cursor = Some(next),
            _ => return Ok(items),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_person_key_separates_issuer_from_subject() {
        let k = super::person_key("https://idp", "alice");
        assert_eq!(k.len(), 32);
        assert_eq!(k, super::person_key("https://idp", "alice"));
        assert_ne!(super::person_key("https://idpa", "lice"), k);
    }

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
    fn pages_are_followed_to_the_end_and_a_stuck_cursor_stops() {
        let pages = [
            (vec![1, 2], Some("a")),
            (vec![3], Some("b")),
            (vec![4], None),
        ];
        let mut seen = Vec::new();
        let all: Result<Vec<i32>, ()> = all_pages(|cursor| {
            seen.push(cursor.map(str::to_string));
            let i = seen.len() - 1;
            Ok((pages[i].0.clone(), pages[i].1.map(str::to_string)))
        });
        assert_eq!(all, Ok(vec![1, 2, 3, 4]));
        assert_eq!(seen, vec![None, Some("a".into()), Some("b".into())]);
        let stuck: Result<Vec<i32>, ()> = all_pages(|_| Ok((vec![7], Some("same".into()))));
        assert_eq!(stuck, Ok(vec![7, 7]));
        let failed: Result<Vec<i32>, &str> = all_pages(|_| Err("down"));
        assert_eq!(failed, Err("down"));
    }

    #[test]
    fn key_ids_are_stable_and_distinct() {
        assert_eq!(key_id(b"a"), key_id(b"a"));
        assert_ne!(key_id(b"a"), key_id(b"b"));
        assert_eq!(key_id(b"a").len(), 16);
    }
}
