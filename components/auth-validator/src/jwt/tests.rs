use super::*;
use p256::ecdsa::{signature::hazmat::PrehashSigner, Signature, SigningKey};

fn es256_token(key: &SigningKey, header: serde_json::Value, claims: serde_json::Value) -> String {
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
    parsed
        .validate_claims("https://idp", &["gw".to_string()], 500)
        .unwrap();
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
            .and_then(|_| {
                parsed.validate_claims("https://idp", &["other".to_string(), "gw".to_string()], now)
            })
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
    // Duplicates are malformed, not "last one wins": in the header…
    let dup = format!(
        "{}.{}.AAAA",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","alg":"none","kid":"k1"}"#),
        URL_SAFE_NO_PAD.encode(claims(1000).to_string())
    );
    assert_eq!(check(&dup, 500), Failure::Malformed);
    // …and in the claims.
    let dup_sub = format!(
        "{}.{}.AAAA",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","kid":"k1"}"#),
        URL_SAFE_NO_PAD
            .encode(r#"{"iss":"https://idp","aud":"gw","sub":"a","sub":"admin","exp":1000}"#)
    );
    assert_eq!(check(&dup_sub, 500), Failure::Malformed);
    let crit = format!(
        "{}.{}.AAAA",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","kid":"k1","crit":["exp"]}"#),
        URL_SAFE_NO_PAD.encode(claims(1000).to_string())
    );
    assert_eq!(check(&crit, 500), Failure::Malformed);
}

mod algorithms {
    use super::super::*;
    use ed25519_dalek::Signer as _;
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use rsa::traits::PublicKeyParts;
    use std::sync::OnceLock;

    struct Keys {
        rsa: rsa::RsaPrivateKey,
        rsa_small: rsa::RsaPrivateKey,
        p256: p256::ecdsa::SigningKey,
        p384: p384::ecdsa::SigningKey,
        ed: ed25519_dalek::SigningKey,
    }

    fn keys() -> &'static Keys {
        static KEYS: OnceLock<Keys> = OnceLock::new();
        KEYS.get_or_init(|| {
            let mut rng = rand::thread_rng();
            Keys {
                rsa: rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap(),
                rsa_small: rsa::RsaPrivateKey::new(&mut rng, 1024).unwrap(),
                p256: p256::ecdsa::SigningKey::random(&mut rng),
                p384: p384::ecdsa::SigningKey::random(&mut rng),
                ed: ed25519_dalek::SigningKey::generate(&mut rng),
            }
        })
    }

    fn b64(b: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(b)
    }

    fn jwk_rsa(key: &rsa::RsaPrivateKey) -> Jwk {
        let p = key.to_public_key();
        Jwk {
            kty: "RSA".into(),
            kid: None,
            alg: None,
            crv: None,
            n: Some(b64(&p.n().to_bytes_be())),
            e: Some(b64(&p.e().to_bytes_be())),
            x: None,
            y: None,
        }
    }

    fn jwk(alg: &str) -> Jwk {
        let k = keys();
        match alg {
            "ES256" => {
                let pt = k.p256.verifying_key().to_encoded_point(false);
                Jwk {
                    kty: "EC".into(),
                    kid: None,
                    alg: None,
                    crv: Some("P-256".into()),
                    n: None,
                    e: None,
                    x: Some(b64(pt.x().unwrap())),
                    y: Some(b64(pt.y().unwrap())),
                }
            }
            "ES384" => {
                let pt = k.p384.verifying_key().to_encoded_point(false);
                Jwk {
                    kty: "EC".into(),
                    kid: None,
                    alg: None,
                    crv: Some("P-384".into()),
                    n: None,
                    e: None,
                    x: Some(b64(pt.x().unwrap())),
                    y: Some(b64(pt.y().unwrap())),
                }
            }
            "EdDSA" => Jwk {
                kty: "OKP".into(),
                kid: None,
                alg: None,
                crv: Some("Ed25519".into()),
                n: None,
                e: None,
                x: Some(b64(k.ed.verifying_key().as_bytes())),
                y: None,
            },
            _ => jwk_rsa(&k.rsa),
        }
    }

    /// Signs `header_alg` into the header and signs with `signing_alg`'s scheme.
    fn token(header_alg: &str, signing_alg: &str) -> String {
        let header = serde_json::json!({"alg": header_alg, "kid": "k"});
        let claims =
            serde_json::json!({"iss": "https://idp", "aud": "gw", "sub": "a", "exp": 1000});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let k = keys();
        let mut rng = rand::thread_rng();
        let m = input.as_bytes();
        let sig: Vec<u8> = match signing_alg {
            "RS256" => k
                .rsa
                .sign(
                    rsa::pkcs1v15::Pkcs1v15Sign::new::<Sha256>(),
                    &Sha256::digest(m),
                )
                .unwrap(),
            "RS384" => k
                .rsa
                .sign(
                    rsa::pkcs1v15::Pkcs1v15Sign::new::<Sha384>(),
                    &Sha384::digest(m),
                )
                .unwrap(),
            "RS512" => k
                .rsa
                .sign(
                    rsa::pkcs1v15::Pkcs1v15Sign::new::<Sha512>(),
                    &Sha512::digest(m),
                )
                .unwrap(),
            "PS256" => k
                .rsa
                .sign_with_rng(&mut rng, rsa::pss::Pss::new::<Sha256>(), &Sha256::digest(m))
                .unwrap(),
            "RS256-small" => k
                .rsa_small
                .sign(
                    rsa::pkcs1v15::Pkcs1v15Sign::new::<Sha256>(),
                    &Sha256::digest(m),
                )
                .unwrap(),
            "ES256" => {
                let s: p256::ecdsa::Signature = k.p256.sign_prehash(&Sha256::digest(m)).unwrap();
                s.to_bytes().to_vec()
            }
            "ES384" => {
                let s: p384::ecdsa::Signature = k.p384.sign_prehash(&Sha384::digest(m)).unwrap();
                s.to_bytes().to_vec()
            }
            "EdDSA" => k.ed.sign(m).to_bytes().to_vec(),
            _ => vec![0; 32],
        };
        format!("{input}.{}", b64(&sig))
    }

    fn verify(token: &str, jwk: &Jwk, allowed: &[&str]) -> Result<(), Failure> {
        let parsed = parse(token).map_err(|r| r.failure)?;
        parsed.verify_signature(jwk, allowed).map_err(|r| r.failure)
    }

    #[test]
    fn every_supported_algorithm_verifies_with_its_key() {
        for alg in SUPPORTED_ALGORITHMS {
            assert_eq!(
                verify(&token(alg, alg), &jwk(alg), SUPPORTED_ALGORITHMS),
                Ok(()),
                "{alg}"
            );
        }
    }

    #[test]
    fn algorithm_and_key_confusion_is_refused() {
        use Failure::*;
        let all = SUPPORTED_ALGORITHMS;
        let mut rsa_with_alg = jwk("RS256");
        rsa_with_alg.alg = Some("RS256".into());
        let mut p256_as_x25519 = jwk("EdDSA");
        p256_as_x25519.crv = Some("X25519".into());
        let cases: Vec<(&str, String, Jwk, &[&str], Failure)> = vec![
            (
                "alg none",
                token("none", "none"),
                jwk("RS256"),
                all,
                UnsupportedAlgorithm,
            ),
            (
                "HS256 with an RSA public key as secret",
                token("HS256", "none"),
                jwk("RS256"),
                all,
                UnsupportedAlgorithm,
            ),
            (
                "HS512",
                token("HS512", "none"),
                jwk("RS256"),
                all,
                UnsupportedAlgorithm,
            ),
            (
                "unknown alg",
                token("RS1", "none"),
                jwk("RS256"),
                all,
                UnsupportedAlgorithm,
            ),
            (
                "RS256 header, EC key",
                token("RS256", "RS256"),
                jwk("ES256"),
                all,
                UnsupportedAlgorithm,
            ),
            (
                "ES256 header, RSA key",
                token("ES256", "ES256"),
                jwk("RS256"),
                all,
                UnsupportedAlgorithm,
            ),
            (
                "EdDSA header, RSA key",
                token("EdDSA", "EdDSA"),
                jwk("RS256"),
                all,
                UnsupportedAlgorithm,
            ),
            (
                "ES256 header, P-384 key",
                token("ES256", "ES256"),
                jwk("ES384"),
                all,
                UnknownKey,
            ),
            (
                "ES384 header, P-256 key",
                token("ES384", "ES384"),
                jwk("ES256"),
                all,
                UnknownKey,
            ),
            (
                "EdDSA on another curve",
                token("EdDSA", "EdDSA"),
                p256_as_x25519,
                all,
                UnknownKey,
            ),
            (
                "RSA key under 2048 bits",
                token("RS256", "RS256-small"),
                jwk_rsa(&keys().rsa_small),
                all,
                UnknownKey,
            ),
            (
                "key bound to another alg",
                token("PS256", "PS256"),
                rsa_with_alg,
                all,
                UnsupportedAlgorithm,
            ),
            (
                "alg outside the issuer's list",
                token("RS256", "RS256"),
                jwk("RS256"),
                &["ES256"],
                UnsupportedAlgorithm,
            ),
            (
                "PS256 signature under RS256",
                token("RS256", "PS256"),
                jwk("RS256"),
                all,
                BadSignature,
            ),
            (
                "RS256 signature under RS384",
                token("RS384", "RS256"),
                jwk("RS256"),
                all,
                BadSignature,
            ),
            (
                "RS512 signature under PS256",
                token("PS256", "RS512"),
                jwk("RS256"),
                all,
                BadSignature,
            ),
            (
                "ES256 signature under EdDSA",
                token("EdDSA", "ES256"),
                jwk("EdDSA"),
                all,
                BadSignature,
            ),
            (
                "truncated ES384 signature",
                token("ES384", "ES256"),
                jwk("ES384"),
                all,
                BadSignature,
            ),
        ];
        for (name, token, key, allowed, expected) in cases {
            assert_eq!(verify(&token, &key, allowed), Err(expected), "{name}");
        }
        // A signature never covers a modified payload, whatever the algorithm.
        for alg in SUPPORTED_ALGORITHMS {
            let t = token(alg, alg);
            let parts: Vec<&str> = t.split('.').collect();
            let forged = b64(br#"{"iss":"https://idp","aud":"gw","sub":"admin","exp":1000}"#);
            let tampered = format!("{}.{}.{}", parts[0], forged, parts[2]);
            assert_eq!(
                verify(&tampered, &jwk(alg), all),
                Err(BadSignature),
                "{alg}"
            );
        }
    }
}
