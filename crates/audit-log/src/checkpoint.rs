//! Checkpoints (C2SP tlog-checkpoint) as signed notes (C2SP signed-note,
//! Ed25519): `<origin>\n<size>\n<base64 root>\n`, a blank line, and one
//! signature line `— <name> <base64(key id ‖ signature)>` per signer.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

const ED25519: u8 = 0x01;
const DASH: &str = "\u{2014} ";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The note's text (what is signed).
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    fn parse_body(text: &str) -> Result<Checkpoint, String> {
        let mut lines = text.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or("no origin")?;
        let size = lines
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or("no tree size")?;
        let root: Hash = lines
            .next()
            .and_then(|r| STANDARD.decode(r).ok())
            .and_then(|r| r.try_into().ok())
            .ok_or("no root hash")?;
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
        })
    }
}

/// The 4-byte key id of an Ed25519 note key: SHA-256(name ‖ "\n" ‖ 0x01 ‖ key).
pub fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// The verifier key string tools like `note` and Tessera take:
/// `<name>+<key id hex>+<base64(0x01 ‖ key)>`.
pub fn verifier_key(name: &str, key: &VerifyingKey) -> String {
    let mut raw = vec![ED25519];
    raw.extend_from_slice(key.as_bytes());
    format!(
        "{name}+{}+{}",
        hex::encode(key_id(name, key)),
        STANDARD.encode(raw)
    )
}

/// Signs `checkpoint` as `name` (the log's origin).
pub fn sign(checkpoint: &Checkpoint, name: &str, key: &SigningKey) -> String {
    let body = checkpoint.body();
    let sig = key.sign(body.as_bytes());
    let mut blob = key_id(name, &key.verifying_key()).to_vec();
    blob.extend_from_slice(&sig.to_bytes());
    format!("{body}\n{DASH}{name} {}\n", STANDARD.encode(blob))
}

/// Opens a signed checkpoint: it must carry a valid signature by `key` under
/// the name `origin` names (other signers' lines, e.g. witnesses, are kept
/// out of the way, not checked).
pub fn open(note: &str, key: &VerifyingKey) -> Result<Checkpoint, String> {
    let (body, sigs) = note
        .split_once("\n\n")
        .ok_or("not a signed note (no blank line before signatures)")?;
    let body = format!("{body}\n");
    let checkpoint = Checkpoint::parse_body(&body)?;
    let id = key_id(&checkpoint.origin, key);
    for line in sigs.lines() {
        let Some(rest) = line.strip_prefix(DASH) else {
            return Err("a signature line does not start with an em dash".into());
        };
        let Some((name, blob)) = rest.split_once(' ') else {
            continue;
        };
        if name != checkpoint.origin {
            continue;
        }
        let Ok(blob) = STANDARD.decode(blob) else {
            continue;
        };
        if blob.len() != 68 || blob[..4] != id {
            continue;
        }
        let Ok(sig) = <[u8; 64]>::try_from(&blob[4..]) else {
            continue;
        };
        return key
            .verify(body.as_bytes(), &Signature::from_bytes(&sig))
            .map(|()| checkpoint)
            .map_err(|_| "the checkpoint's signature does not verify".to_string());
    }
    Err(format!(
        "the checkpoint carries no signature by the audit key as {}",
        checkpoint.origin
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_checkpoint_opens_and_an_edited_one_does_not() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let cp = Checkpoint {
            origin: "copilot-jit.example.com/audit".into(),
            size: 42,
            root: [7; 32],
        };
        let note = sign(&cp, &cp.origin, &key);
        assert!(note.starts_with("copilot-jit.example.com/audit\n42\n"));
        assert!(note.contains("\n\n\u{2014} copilot-jit.example.com/audit "));
        assert_eq!(open(&note, &key.verifying_key()), Ok(cp.clone()));
        let edited = note.replacen("\n42\n", "\n41\n", 1);
        assert!(open(&edited, &key.verifying_key()).is_err());
        let other = SigningKey::from_bytes(&[8; 32]);
        assert!(open(&note, &other.verifying_key()).is_err());
        let vkey = verifier_key(&cp.origin, &key.verifying_key());
        assert!(vkey.starts_with("copilot-jit.example.com/audit+"));
    }
}
