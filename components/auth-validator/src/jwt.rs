//! Strict JWT verification (RS256, ES256) against a JWKS. Pure: the JWKS and
//! the clock are the caller's.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256, Sha384, Sha512};

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
    /// Critical extensions (RFC 7515 §4.1.11): we understand none, so any refuses.
    pub crit: Option<serde_json::Value>,
}

/// A JSON object that refuses duplicate keys: `{"sub":"a","sub":"b"}` must
/// not mean whichever the parser kept.
struct UniqueObject(serde_json::Map<String, serde_json::Value>);

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<UniqueObject, A::Error> {
                let mut out = serde_json::Map::new();
                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                    if out.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!("duplicate field {k}")));
                    }
                    out.insert(k, v);
                }
                Ok(UniqueObject(out))
            }
        }
        d.deserialize_map(Visitor)
    }
}

fn unique_object(
    bytes: &[u8],
    what: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, Rejection> {
    serde_json::from_slice::<UniqueObject>(bytes)
        .map(|o| o.0)
        .map_err(|e| reject(Failure::Malformed, format!("{what}: {e}")))
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
    // Duplicate keys anywhere in header or claims are refused, not resolved.
    let header_map = unique_object(&b64(h, "header")?, "header")?;
    let header: Header = serde_json::from_value(serde_json::Value::Object(header_map))
        .map_err(|e| reject(Failure::Malformed, format!("header: {e}")))?;
    if header.crit.is_some() {
        return Err(reject(
            Failure::Malformed,
            "header names critical extensions",
        ));
    }
    let claims = unique_object(&b64(c, "payload")?, "payload")?;
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

/// Algorithms the verifier implements; issuers allow a subset.
pub const SUPPORTED_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA",
];

fn rsa_key(jwk: &Jwk) -> Result<rsa::RsaPublicKey, Rejection> {
    use rsa::{traits::PublicKeyParts, BigUint, RsaPublicKey};
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
    Ok(key)
}

/// An uncompressed SEC1 point from a JWK's `x` and `y`.
fn ec_point(jwk: &Jwk, curve: &str, len: usize) -> Result<Vec<u8>, Rejection> {
    if jwk.crv.as_deref() != Some(curve) {
        return Err(reject(
            Failure::UnknownKey,
            format!("the key is not on {curve}"),
        ));
    }
    let (x, y) = (field(&jwk.x, "x")?, field(&jwk.y, "y")?);
    if x.len() != len || y.len() != len {
        return Err(reject(
            Failure::UnknownKey,
            format!("{curve} coordinates must be {len} bytes"),
        ));
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(4);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok(point)
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
        if !allowed.contains(&alg) || !SUPPORTED_ALGORITHMS.contains(&alg) {
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
        let input = self.signing_input.as_bytes();
        let sig = &self.signature;
        let bad = |what: &str| reject(Failure::BadSignature, format!("{alg} signature {what}"));
        // The key type must fit the algorithm: no RSA key read as an EC key,
        // no public key used as an HMAC secret.
        match (alg, jwk.kty.as_str()) {
            ("RS256" | "RS384" | "RS512" | "PS256", "RSA") => {
                use rsa::{pkcs1v15::Pkcs1v15Sign, pss::Pss};
                let key = rsa_key(jwk)?;
                let verified = match alg {
                    "RS256" => {
                        key.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(input), sig)
                    }
                    "RS384" => {
                        key.verify(Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(input), sig)
                    }
                    "RS512" => {
                        key.verify(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(input), sig)
                    }
                    _ => key.verify(Pss::new::<Sha256>(), &Sha256::digest(input), sig),
                };
                verified.map_err(|_| bad("does not verify"))
            }
            ("ES256", "EC") => {
                use p256::ecdsa::{signature::hazmat::PrehashVerifier, Signature, VerifyingKey};
                let point = ec_point(jwk, "P-256", 32)?;
                let key = VerifyingKey::from_sec1_bytes(&point)
                    .map_err(|_| reject(Failure::UnknownKey, "invalid P-256 point"))?;
                let sig = Signature::from_slice(sig).map_err(|_| bad("must be 64 bytes"))?;
                key.verify_prehash(&Sha256::digest(input), &sig)
                    .map_err(|_| bad("does not verify"))
            }
            ("ES384", "EC") => {
                use p384::ecdsa::{signature::hazmat::PrehashVerifier, Signature, VerifyingKey};
                let point = ec_point(jwk, "P-384", 48)?;
                let key = VerifyingKey::from_sec1_bytes(&point)
                    .map_err(|_| reject(Failure::UnknownKey, "invalid P-384 point"))?;
                let sig = Signature::from_slice(sig).map_err(|_| bad("must be 96 bytes"))?;
                key.verify_prehash(&Sha384::digest(input), &sig)
                    .map_err(|_| bad("does not verify"))
            }
            ("EdDSA", "OKP") => {
                if jwk.crv.as_deref() != Some("Ed25519") {
                    return Err(reject(Failure::UnknownKey, "EdDSA needs an Ed25519 key"));
                }
                let x: [u8; 32] = field(&jwk.x, "x")?
                    .try_into()
                    .map_err(|_| reject(Failure::UnknownKey, "Ed25519 keys are 32 bytes"))?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&x)
                    .map_err(|_| reject(Failure::UnknownKey, "invalid Ed25519 key"))?;
                let sig: [u8; 64] = sig
                    .as_slice()
                    .try_into()
                    .map_err(|_| bad("must be 64 bytes"))?;
                key.verify_strict(input, &ed25519_dalek::Signature::from_bytes(&sig))
                    .map_err(|_| bad("does not verify"))
            }
            _ => Err(reject(
                Failure::UnsupportedAlgorithm,
                format!("algorithm {alg} does not fit a {} key", jwk.kty),
            )),
        }
    }

    /// Checks issuer, audience and the time claims (`exp` is required).
    /// `audiences`: the token must name at least one of them.
    pub fn validate_claims(
        &self,
        issuer: &str,
        audiences: &[String],
        now: u64,
    ) -> Result<(), Rejection> {
        let c = &self.claims;
        if c.get("iss").and_then(|v| v.as_str()) != Some(issuer) {
            return Err(reject(
                Failure::UnknownIssuer,
                "iss does not match the issuer",
            ));
        }
        let aud_ok = match c.get("aud") {
            Some(serde_json::Value::String(a)) => audiences.contains(a),
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .any(|a| a.as_str().is_some_and(|a| audiences.iter().any(|x| x == a))),
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
mod tests;
