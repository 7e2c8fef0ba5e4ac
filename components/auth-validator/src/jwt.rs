//! Strict JWT verification (RS256, ES256) against a JWKS. Pure: the JWKS and
//! the clock are the caller's.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Tokens larger than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Accepted clock difference between the issuer and us.
pub const CLOCK_SKEW_SECS: u64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Malformed,
    UnsupportedAlgorithm,
    UnknownIssuer,
    UnknownKey,
    BadSignature,
    Expired,
    NotYetValid,
    WrongAudience,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub failure: Failure,
    pub detail: String,
}

fn reject(failure: Failure, detail: impl Into<String>) -> Rejection {
    Rejection {
        failure,
        detail: detail.into(),
    }
}

#[derive(Debug, Deserialize)]
pub struct Header {
    pub alg: String,
    pub kid: Option<String>,
}

/// A parsed but not yet verified token.
pub struct Unverified<'a> {
    pub header: Header,
    pub claims: serde_json::Map<String, serde_json::Value>,
    signing_input: &'a str,
    signature: Vec<u8>,
}

pub fn parse(token: &str) -> Result<Unverified<'_>, Rejection> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(reject(Failure::Malformed, "token too large"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(reject(Failure::Malformed, "not a compact JWS"));
    };
    let b64 = |part: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| reject(Failure::Malformed, format!("{what} is not base64url")))
    };
    // serde_json refuses duplicate struct fields, so a second `alg` is an error.
    let header: Header = serde_json::from_slice(&b64(h, "header")?)
        .map_err(|e| reject(Failure::Malformed, format!("header: {e}")))?;
    let claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&b64(c, "payload")?)
            .map_err(|e| reject(Failure::Malformed, format!("payload: {e}")))?;
    let signature = b64(s, "signature")?;
    Ok(Unverified {
        header,
        claims,
        signing_input: &token[..h.len() + 1 + c.len()],
        signature,
    })
}

#[derive(Debug, Clone, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub kid: Option<String>,
    pub alg: Option<String>,
    pub crv: Option<String>,
    pub n: Option<String>,
    pub e: Option<String>,
    pub x: Option<String>,
    pub y: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwks {
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
    }
}

fn field(v: &Option<String>, name: &str) -> Result<Vec<u8>, Rejection> {
    let text = v
        .as_deref()
        .ok_or_else(|| reject(Failure::UnknownKey, format!("JWK has no {name}")))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| reject(Failure::UnknownKey, format!("JWK {name} is not base64url")))
}

impl Unverified<'_> {
    /// Verifies the signature with `jwk`. The algorithm must be allowed and
    /// must fit the key type: no `none`, no HMAC, no key confusion.
    pub fn verify_signature(&self, jwk: &Jwk, allowed: &[&str]) -> Result<(), Rejection> {
        let alg = self.header.alg.as_str();
        if !allowed.contains(&alg) {
            return Err(reject(
                Failure::UnsupportedAlgorithm,
                format!("algorithm {alg} is not allowed"),
            ));
        }
        if jwk.alg.as_deref().is_some_and(|a| a != alg) {
            return Err(reject(
                Failure::UnsupportedAlgorithm,
                "algorithm does not match the key",
            ));
        }
        let digest = Sha256::digest(self.signing_input.as_bytes());
        match (alg, jwk.kty.as_str()) {
            ("RS256", "RSA") => {
                use rsa::{pkcs1v15::Pkcs1v15Sign, traits::PublicKeyParts, BigUint, RsaPublicKey};
                let n = BigUint::from_bytes_be(&field(&jwk.n, "n")?);
                let e = BigUint::from_bytes_be(&field(&jwk.e, "e")?);
                let key = RsaPublicKey::new(n, e)
                    .map_err(|e| reject(Failure::UnknownKey, format!("RSA key: {e}")))?;
                if key.size() < 256 {
                    return Err(reject(
                        Failure::UnknownKey,
                        "RSA keys under 2048 bits are refused",
                    ));
                }
                key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &self.signature)
                    .map_err(|_| reject(Failure::BadSignature, "RS256 signature does not verify"))
            }
            ("ES256", "EC") => {
                use p256::ecdsa::{signature::hazmat::PrehashVerifier, Signature, VerifyingKey};
                if jwk.crv.as_deref() != Some("P-256") {
                    return Err(reject(Failure::UnknownKey, "ES256 needs a P-256 key"));
                }
                let (x, y) = (field(&jwk.x, "x")?, field(&jwk.y, "y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(reject(
                        Failure::UnknownKey,
                        "P-256 coordinates must be 32 bytes",
                    ));
                }
                let mut sec1 = vec![4u8];
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                let key = VerifyingKey::from_sec1_bytes(&sec1)
                    .map_err(|_| reject(Failure::UnknownKey, "invalid P-256 point"))?;
                let sig = Signature::from_slice(&self.signature).map_err(|_| {
                    reject(Failure::BadSignature, "ES256 signature must be 64 bytes")
                })?;
                key.verify_prehash(&digest, &sig)
                    .map_err(|_| reject(Failure::BadSignature, "ES256 signature does not verify"))
            }
            _ => Err(reject(
                Failure::UnsupportedAlgorithm,
                format!("algorithm {alg} does not fit a {} key", jwk.kty),
            )),
        }
    }

    /// Checks issuer, audience and the time claims (`exp` is required).
    pub fn validate_claims(&self, issuer: &str, audience: &str, now: u64) -> Result<(), Rejection> {
        let c = &self.claims;
        if c.get("iss").and_then(|v| v.as_str()) != Some(issuer) {
            return Err(reject(
                Failure::UnknownIssuer,
                "iss does not match the issuer",
            ));
        }
        let aud_ok = match c.get("aud") {
            Some(serde_json::Value::String(a)) => a == audience,
            Some(serde_json::Value::Array(list)) => {
                list.iter().any(|a| a.as_str() == Some(audience))
            }
            _ => false,
        };
        if !aud_ok {
            return Err(reject(
                Failure::WrongAudience,
                "aud does not name this gateway",
            ));
        }
        let number = |name: &str| -> Result<Option<u64>, Rejection> {
            match c.get(name) {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(Some)
                    .ok_or_else(|| reject(Failure::Malformed, format!("{name} is not a number"))),
            }
        };
        let exp = number("exp")?.ok_or_else(|| reject(Failure::Malformed, "exp is missing"))?;
        if now >= exp.saturating_add(CLOCK_SKEW_SECS) {
            return Err(reject(Failure::Expired, "token has expired"));
        }
        if number("nbf")?.is_some_and(|nbf| nbf > now + CLOCK_SKEW_SECS) {
            return Err(reject(Failure::NotYetValid, "nbf is in the future"));
        }
        if number("iat")?.is_some_and(|iat| iat > now + CLOCK_SKEW_SECS) {
            return Err(reject(Failure::NotYetValid, "iat is in the future"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::{signature::hazmat::PrehashSigner, Signature, SigningKey};

    fn es256_token(
        key: &SigningKey,
        header: serde_json::Value,
        claims: serde_json::Value,
    ) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig: Signature = key.sign_prehash(&Sha256::digest(input.as_bytes())).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    fn jwk(key: &SigningKey) -> Jwk {
        let point = key.verifying_key().to_encoded_point(false);
        Jwk {
            kty: "EC".into(),
            kid: Some("k1".into()),
            alg: None,
            crv: Some("P-256".into()),
            n: None,
            e: None,
            x: Some(URL_SAFE_NO_PAD.encode(point.x().unwrap())),
            y: Some(URL_SAFE_NO_PAD.encode(point.y().unwrap())),
        }
    }

    fn claims(exp: u64) -> serde_json::Value {
        serde_json::json!({"iss": "https://idp", "aud": ["gw"], "sub": "alice", "exp": exp, "iat": 100})
    }

    #[test]
    fn a_good_es256_token_verifies() {
        let key = SigningKey::random(&mut rand::thread_rng());
        let token = es256_token(
            &key,
            serde_json::json!({"alg": "ES256", "kid": "k1"}),
            claims(1000),
        );
        let parsed = parse(&token).unwrap();
        parsed
            .verify_signature(&jwk(&key), &["RS256", "ES256"])
            .unwrap();
        parsed.validate_claims("https://idp", "gw", 500).unwrap();
    }

    #[test]
    fn hostile_tokens_are_rejected_with_reasons() {
        let key = SigningKey::random(&mut rand::thread_rng());
        let other = SigningKey::random(&mut rand::thread_rng());
        let good_header = serde_json::json!({"alg": "ES256", "kid": "k1"});
        let check = |token: &str, now: u64| -> Failure {
            let parsed = match parse(token) {
                Ok(p) => p,
                Err(r) => return r.failure,
            };
            parsed
                .verify_signature(&jwk(&key), &["RS256", "ES256"])
                .and_then(|_| parsed.validate_claims("https://idp", "gw", now))
                .expect_err("must be rejected")
                .failure
        };
        let t = |h: serde_json::Value, c: serde_json::Value| es256_token(&key, h, c);
        assert_eq!(
            check(&t(good_header.clone(), claims(100)), 500),
            Failure::Expired
        );
        assert_eq!(
            check(
                &t(
                    serde_json::json!({"alg": "none", "kid": "k1"}),
                    claims(1000)
                ),
                500
            ),
            Failure::UnsupportedAlgorithm
        );
        assert_eq!(
            check(
                &t(
                    serde_json::json!({"alg": "HS256", "kid": "k1"}),
                    claims(1000)
                ),
                500
            ),
            Failure::UnsupportedAlgorithm
        );
        assert_eq!(
            check(&es256_token(&other, good_header.clone(), claims(1000)), 500),
            Failure::BadSignature
        );
        let mut wrong_aud = claims(1000);
        wrong_aud["aud"] = "someone-else".into();
        assert_eq!(
            check(&t(good_header.clone(), wrong_aud), 500),
            Failure::WrongAudience
        );
        let mut wrong_iss = claims(1000);
        wrong_iss["iss"] = "https://evil".into();
        assert_eq!(
            check(&t(good_header.clone(), wrong_iss), 500),
            Failure::UnknownIssuer
        );
        let mut no_exp = claims(1000);
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            check(&t(good_header.clone(), no_exp), 500),
            Failure::Malformed
        );
        let mut future = claims(5000);
        future["nbf"] = 4000.into();
        assert_eq!(
            check(&t(good_header.clone(), future), 500),
            Failure::NotYetValid
        );
        assert_eq!(check("a.b", 500), Failure::Malformed);
        assert_eq!(
            check(&"x".repeat(MAX_TOKEN_BYTES + 1), 500),
            Failure::Malformed
        );
        // A duplicate `alg` in the header is malformed, not "last one wins".
        let dup = format!(
            "{}.{}.AAAA",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","alg":"none","kid":"k1"}"#),
            URL_SAFE_NO_PAD.encode(claims(1000).to_string())
        );
        assert_eq!(check(&dup, 500), Failure::Malformed);
    }
}
