//! The credential vault's cipher: people's GitHub tokens (and the Copilot
//! tokens made from them) are sealed before they reach the key-value store,
//! with XChaCha20-Poly1305 under a key from a secret variable.
//!
//! - The key id is in every sealed value, so a key can be rotated: new
//!   writes use `vault_key`, values sealed under a key listed in
//!   `vault_previous_keys` still open.
//! - The associated data names what the value is (`purpose`) and whose it
//!   is (issuer and subject of the person), so a value copied under another
//!   person's key, or used for another purpose, does not open.
//! - The nonce is 24 random bytes, given by the caller (the edge draws them),
//!   so this module is deterministic and tested on the host.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const NONCE_LEN: usize = 24;
const AD_PREFIX: &[u8] = b"copilot-jit/vault/1";

/// What a sealed value is; part of the associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A person's GitHub tokens (access and refresh).
    GithubTokens,
    /// The Copilot token made from them, cached until `refresh_in`.
    CopilotToken,
    /// The device code of a link that is still pending.
    DeviceCode,
    /// The shared seat's cached Copilot token.
    SharedCopilotToken,
}

impl Purpose {
    fn name(self) -> &'static str {
        match self {
            Purpose::GithubTokens => "github-tokens",
            Purpose::CopilotToken => "copilot-token",
            Purpose::DeviceCode => "device-code",
            Purpose::SharedCopilotToken => "shared-copilot-token",
        }
    }
}

/// Whose a value is: a person as the IdP names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
}

/// A sealed value as stored: key id, nonce and ciphertext (with its tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub kid: String,
    pub nonce: String,
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultError {
    /// Sealed under a key that is neither `vault_key` nor a previous one.
    UnknownKey(String),
    /// The value does not open for this person and purpose: moved from
    /// another person's record, or altered.
    WrongOwnerOrTampered,
    /// Not a sealed value at all.
    Corrupt(String),
}

impl std::fmt::Display for VaultError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VaultError::UnknownKey(kid) => write!(f, "sealed under unknown vault key {kid}"),
            VaultError::WrongOwnerOrTampered => {
                f.write_str("does not open for this person (moved or altered)")
            }
            VaultError::Corrupt(e) => write!(f, "not a sealed value: {e}"),
        }
    }
}

/// One key and its id. Never printed: `Debug` shows the id only.
struct VaultKey {
    kid: String,
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VaultKey({})", self.kid)
    }
}

/// The id of a key: a hash of it under its own label (it reveals nothing
/// about the key), so rotating needs no second setting.
pub fn key_id(key: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(b"copilot-jit/vault-key-id\0");
    h.update(key);
    URL_SAFE_NO_PAD.encode(&h.finalize()[..9])
}

fn decode_key(text: &str) -> Result<[u8; 32], String> {
    copilot_jit_common::decode_seed(text)
        .map_err(|_| "a vault key is 32 bytes, as base64 or 64 hex digits".to_string())
}

impl VaultKey {
    fn new(text: &str) -> Result<VaultKey, String> {
        let key = decode_key(text)?;
        Ok(VaultKey {
            kid: key_id(&key),
            cipher: XChaCha20Poly1305::new((&key).into()),
        })
    }
}

/// The current key and the previous ones.
#[derive(Debug)]
pub struct VaultKeys {
    current: VaultKey,
    previous: Vec<VaultKey>,
}

fn associated_data(purpose: Purpose, owner: Owner<'_>, kid: &str) -> Vec<u8> {
    let mut ad = Vec::with_capacity(64 + owner.issuer.len() + owner.subject.len());
    for part in [
        AD_PREFIX,
        purpose.name().as_bytes(),
        kid.as_bytes(),
        owner.issuer.as_bytes(),
        owner.subject.as_bytes(),
    ] {
        // Length-prefixed: no two (issuer, subject) pairs give the same bytes.
        ad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        ad.extend_from_slice(part);
    }
    ad
}

impl VaultKeys {
    /// `current` is `vault_key`; `previous` is `vault_previous_keys`,
    /// comma-separated (older keys whose values must still open).
    pub fn parse(current: &str, previous: Option<&str>) -> Result<VaultKeys, String> {
        let current = VaultKey::new(current).map_err(|e| format!("vault_key: {e}"))?;
        let previous = previous
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| VaultKey::new(k).map_err(|e| format!("vault_previous_keys: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(VaultKeys { current, previous })
    }

    /// The id new values are sealed under.
    pub fn current_kid(&self) -> &str {
        &self.current.kid
    }

    pub fn seal(
        &self,
        purpose: Purpose,
        owner: Owner<'_>,
        plaintext: &[u8],
        nonce: &[u8; NONCE_LEN],
    ) -> Sealed {
        let key = &self.current;
        let ad = associated_data(purpose, owner, &key.kid);
        let data = key
            .cipher
            .encrypt(
                &XNonce::from(*nonce),
                Payload {
                    msg: plaintext,
                    aad: &ad,
                },
            )
            // XChaCha20-Poly1305 fails only on inputs beyond 256 GiB.
            .unwrap_or_default();
        Sealed {
            kid: key.kid.clone(),
            nonce: URL_SAFE_NO_PAD.encode(nonce),
            data: URL_SAFE_NO_PAD.encode(data),
        }
    }

    pub fn open(
        &self,
        purpose: Purpose,
        owner: Owner<'_>,
        sealed: &Sealed,
    ) -> Result<Vec<u8>, VaultError> {
        let key = std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|k| k.kid == sealed.kid)
            .ok_or_else(|| VaultError::UnknownKey(sealed.kid.clone()))?;
        let nonce = URL_SAFE_NO_PAD
            .decode(&sealed.nonce)
            .map_err(|e| VaultError::Corrupt(e.to_string()))?;
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| VaultError::Corrupt("nonce length".into()))?;
        let data = URL_SAFE_NO_PAD
            .decode(&sealed.data)
            .map_err(|e| VaultError::Corrupt(e.to_string()))?;
        let ad = associated_data(purpose, owner, &key.kid);
        key.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &data,
                    aad: &ad,
                },
            )
            .map_err(|_| VaultError::WrongOwnerOrTampered)
    }

    /// Seals a serializable value.
    pub fn seal_json<T: Serialize>(
        &self,
        purpose: Purpose,
        owner: Owner<'_>,
        value: &T,
        nonce: &[u8; NONCE_LEN],
    ) -> Sealed {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        let sealed = self.seal(purpose, owner, &bytes, nonce);
        wipe(bytes);
        sealed
    }

    pub fn open_json<T: for<'de> Deserialize<'de>>(
        &self,
        purpose: Purpose,
        owner: Owner<'_>,
        sealed: &Sealed,
    ) -> Result<T, VaultError> {
        let bytes = self.open(purpose, owner, sealed)?;
        let value = serde_json::from_slice(&bytes).map_err(|e| VaultError::Corrupt(e.to_string()));
        wipe(bytes);
        value
    }
}

/// Overwrites a plaintext buffer before it is freed (an instance lives for
/// one request, but its memory may be kept by the host's pool).
fn wipe(mut bytes: Vec<u8>) {
    zeroize::Zeroize::zeroize(&mut bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    const ALICE: Owner<'static> = Owner {
        issuer: "https://idp",
        subject: "alice",
    };
    const BOB: Owner<'static> = Owner {
        issuer: "https://idp",
        subject: "bob",
    };

    #[test]
    fn a_sealed_value_opens_for_its_owner_and_purpose_only() {
        let keys = VaultKeys::parse(&key(1), None).unwrap();
        let sealed = keys.seal(Purpose::GithubTokens, ALICE, b"ghu_secret", &[7; 24]);
        assert!(!sealed.data.contains("ghu_secret"));
        assert_eq!(
            keys.open(Purpose::GithubTokens, ALICE, &sealed).unwrap(),
            b"ghu_secret"
        );
        // Another person's record, another purpose: refused.
        assert_eq!(
            keys.open(Purpose::GithubTokens, BOB, &sealed),
            Err(VaultError::WrongOwnerOrTampered)
        );
        assert_eq!(
            keys.open(Purpose::CopilotToken, ALICE, &sealed),
            Err(VaultError::WrongOwnerOrTampered)
        );
        // Issuer and subject cannot trade characters.
        let shifted = Owner {
            issuer: "https://idpa",
            subject: "lice",
        };
        assert!(keys.open(Purpose::GithubTokens, shifted, &sealed).is_err());
        // An altered ciphertext does not open.
        let mut altered = sealed.clone();
        let mut raw = URL_SAFE_NO_PAD.decode(&altered.data).unwrap();
        raw[0] ^= 1;
        altered.data = URL_SAFE_NO_PAD.encode(raw);
        assert_eq!(
            keys.open(Purpose::GithubTokens, ALICE, &altered),
            Err(VaultError::WrongOwnerOrTampered)
        );
    }

    #[test]
    fn rotation_opens_old_values_and_seals_new_ones_under_the_new_key() {
        let old = VaultKeys::parse(&key(1), None).unwrap();
        let sealed = old.seal(Purpose::GithubTokens, ALICE, b"v1", &[1; 24]);
        let rotated = VaultKeys::parse(&key(2), Some(&format!(" {} ,", key(1)))).unwrap();
        assert_eq!(
            rotated.open(Purpose::GithubTokens, ALICE, &sealed).unwrap(),
            b"v1"
        );
        let new = rotated.seal(Purpose::GithubTokens, ALICE, b"v2", &[2; 24]);
        assert_eq!(new.kid, rotated.current_kid());
        assert_ne!(new.kid, sealed.kid);
        // Once the old key is dropped, its values no longer open.
        let only_new = VaultKeys::parse(&key(2), None).unwrap();
        assert_eq!(
            only_new.open(Purpose::GithubTokens, ALICE, &sealed),
            Err(VaultError::UnknownKey(sealed.kid.clone()))
        );
        assert!(only_new.open(Purpose::GithubTokens, ALICE, &new).is_ok());
    }

    #[test]
    fn keys_are_checked_and_never_printed() {
        assert!(VaultKeys::parse("short", None).is_err());
        assert!(VaultKeys::parse(&key(1), Some("nope")).is_err());
        assert!(VaultKeys::parse(&hex::encode([9u8; 32]), None).is_ok());
        let keys = VaultKeys::parse(&key(1), None).unwrap();
        let printed = format!("{keys:?}");
        assert!(!printed.contains(&key(1)), "{printed}");
        assert_eq!(key_id(&[1; 32]).len(), 12);
        assert_ne!(key_id(&[1; 32]), key_id(&[2; 32]));
    }

    #[test]
    fn values_round_trip_as_json() {
        let keys = VaultKeys::parse(&key(3), None).unwrap();
        let sealed = keys.seal_json(Purpose::CopilotToken, ALICE, &("tid=1", 5u64), &[3; 24]);
        let back: (String, u64) = keys
            .open_json(Purpose::CopilotToken, ALICE, &sealed)
            .unwrap();
        assert_eq!(back, ("tid=1".to_string(), 5));
    }
}
