//! Gateway tokens: compact Ed25519 JWTs (`alg: EdDSA`) with a `kid`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// The audience every gateway token carries; tokens for anything else are refused.
pub const AUDIENCE: &str = "copilot-jit";
/// Upper bound on any token's lifetime; the grant's end bounds it first.
pub const MAX_TTL_SECS: u64 = 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    Config(String),
    Invalid(String),
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    /// Issuer of the subject's identity (the OIDC issuer).
    pub sis: String,
    pub jti: String,
    /// Grant id.
    pub gid: String,
    pub scp: Vec<String>,
    pub mdl: Vec<String>,
    pub iat: u64,
    pub exp: u64,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
    kid: String,
}

pub struct TokenKey {
    signing: SigningKey,
    kid: String,
    issuer: String,
}

impl TokenKey {
    pub fn new(seed: [u8; 32], issuer: &str) -> Self {
        let signing = SigningKey::from_bytes(&seed);
        let kid = copilot_jit_common::key_id(signing.verifying_key().as_bytes());
        TokenKey {
            signing,
            kid,
            issuer: issuer.to_string(),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let header = Header {
            alg: "EdDSA".into(),
            typ: "JWT".into(),
            kid: self.kid.clone(),
        };
        let encode = |v: &dyn erased::Json| -> Result<String, TokenError> {
            Ok(URL_SAFE_NO_PAD.encode(v.to_json()?))
        };
        let signing_input = format!("{}.{}", encode(&header)?, encode(claims)?);
        let signature = self.signing.sign(signing_input.as_bytes());
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        ))
    }

    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let invalid = |why: &str| TokenError::Invalid(why.to_string());
        if token.len() > 8192 {
            return Err(invalid("token too large"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("not a compact JWT"));
        };
        let header: Header = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(h)
                .map_err(|_| invalid("header is not base64url"))?,
        )
        .map_err(|_| invalid("header is not valid JSON"))?;
        if header.alg != "EdDSA" {
            return Err(invalid("algorithm not accepted"));
        }
        if header.kid != self.kid {
            return Err(invalid("unknown key id"));
        }
        let sig_bytes: [u8; 64] = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| invalid("signature is not base64url"))?
            .try_into()
            .map_err(|_| invalid("signature has the wrong length"))?;
        let signing_input_len = h.len() + 1 + c.len();
        self.signing
            .verifying_key()
            .verify(
                &token.as_bytes()[..signing_input_len],
                &Signature::from_bytes(&sig_bytes),
            )
            .map_err(|_| invalid("bad signature"))?;
        let claims: Claims = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(c)
                .map_err(|_| invalid("claims are not base64url"))?,
        )
        .map_err(|_| invalid("claims are not valid JSON"))?;
        if claims.iss != self.issuer || claims.aud != AUDIENCE {
            return Err(invalid("token was issued for another audience"));
        }
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The JWKS document (RFC 8037 OKP key) for this key.
    pub fn jwks(&self) -> String {
        serde_json::json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "alg": "EdDSA",
                "use": "sig",
                "kid": self.kid,
                "x": URL_SAFE_NO_PAD.encode(self.verifying_key().as_bytes()),
            }]
        })
        .to_string()
    }
}

/// Lifetime of a new token: the requested TTL, capped by MAX_TTL_SECS and the grant's end.
pub fn expiry(now: u64, ttl_secs: u64, not_after: u64) -> u64 {
    (now + ttl_secs.clamp(1, MAX_TTL_SECS)).min(not_after)
}

mod erased {
    use super::TokenError;

    pub trait Json {
        fn to_json(&self) -> Result<Vec<u8>, TokenError>;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Result<Vec<u8>, TokenError> {
            serde_json::to_vec(self).map_err(|e| TokenError::Config(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            iss: "http://gw".into(),
            aud: AUDIENCE.into(),
            sub: "alice".into(),
            sis: "http://idp".into(),
            jti: "t1".into(),
            gid: "g1".into(),
            scp: vec!["chat".into()],
            mdl: vec![],
            iat: 100,
            exp,
        }
    }

    #[test]
    fn round_trip_and_expiry() {
        let key = TokenKey::new([7; 32], "http://gw");
        let token = key.sign(&claims(200)).unwrap();
        assert_eq!(key.verify(&token, 150).unwrap(), claims(200));
        assert_eq!(key.verify(&token, 200), Err(TokenError::Expired));
    }

    #[test]
    fn tampering_and_foreign_keys_are_refused() {
        let key = TokenKey::new([7; 32], "http://gw");
        let other = TokenKey::new([8; 32], "http://gw");
        let token = key.sign(&claims(200)).unwrap();
        assert!(other.verify(&token, 150).is_err());
        let mut forged = claims(200);
        forged.sub = "mallory".into();
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], forged_body, parts[2]);
        assert!(matches!(
            key.verify(&tampered, 150),
            Err(TokenError::Invalid(_))
        ));
        let wrong_issuer = TokenKey::new([7; 32], "http://elsewhere");
        assert!(wrong_issuer.verify(&token, 150).is_err());
        assert!(key.verify("a.b", 150).is_err());
        assert!(key.verify("", 150).is_err());
    }

    #[test]
    fn expiry_is_bounded_by_grant_and_cap() {
        assert_eq!(expiry(1000, 600, 5000), 1600);
        assert_eq!(expiry(1000, 600, 1300), 1300);
        assert_eq!(expiry(1000, 999_999, u64::MAX), 1000 + MAX_TTL_SECS);
    }
}
