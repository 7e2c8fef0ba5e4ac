//! Hostile and broken identity tokens, through the composed artifact: each
//! is refused with 401, the caller learns only the kind of failure, and the
//! audit record names the exact check that failed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use copilot_jit_testkit::dev_issuer::{now, Alg, DevIssuer, EC_KID, RSA_KID};
use copilot_jit_testkit::harness::Stack;
use serde_json::{json, Value};

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

struct Case {
    name: &'static str,
    token: String,
    /// The failure the audit record must start with.
    reason: &'static str,
}

fn cases(stack: &Stack, stranger: &DevIssuer) -> Vec<Case> {
    let iss = stack.issuer.issuer();
    let n = now();
    let claims = |extra: Value| {
        let mut c =
            json!({"iss": iss, "sub": "mallory", "aud": "copilot-jit", "iat": n, "exp": n + 300});
        if let (Some(obj), Value::Object(more)) = (c.as_object_mut(), extra) {
            for (k, v) in more {
                if v.is_null() {
                    obj.remove(&k);
                } else {
                    obj.insert(k, v);
                }
            }
        }
        c.to_string()
    };
    let rs = |header: &str, claims: &str| stack.issuer.sign_raw(Alg::Rs256, header, claims);
    let es = |header: &str, claims: &str| stack.issuer.sign_raw(Alg::Es256, header, claims);
    let rs_header = format!(r#"{{"alg":"RS256","kid":"{RSA_KID}"}}"#);
    let es_header = format!(r#"{{"alg":"ES256","kid":"{EC_KID}"}}"#);
    let good = rs(&rs_header, &claims(json!({})));
    let parts: Vec<&str> = good.split('.').collect();
    let unsigned = |alg: &str| {
        format!(
            "{}.{}.",
            b64(&format!(r#"{{"alg":"{alg}","kid":"{RSA_KID}"}}"#)),
            b64(&claims(json!({})))
        )
    };
    let c = |name, token: String, reason| Case {
        name,
        token,
        reason,
    };
    vec![
        // Not a JWS at all.
        c("one part", "abc".into(), "malformed"),
        c("two parts", "a.b".into(), "malformed"),
        c("four parts", format!("{good}.x"), "malformed"),
        c("empty parts", "..".into(), "malformed"),
        c(
            "header not base64url",
            format!("!!!.{}.{}", parts[1], parts[2]),
            "malformed",
        ),
        c(
            "header not JSON",
            format!("{}.{}.{}", b64("not json"), parts[1], parts[2]),
            "malformed",
        ),
        c(
            "header a JSON array",
            format!("{}.{}.{}", b64("[1]"), parts[1], parts[2]),
            "malformed",
        ),
        c(
            "alg a number",
            format!("{}.{}.{}", b64(r#"{"alg":256}"#), parts[1], parts[2]),
            "malformed",
        ),
        c(
            "alg missing",
            format!(
                "{}.{}.{}",
                b64(&format!(r#"{{"kid":"{RSA_KID}"}}"#)),
                parts[1],
                parts[2]
            ),
            "malformed",
        ),
        c(
            "payload not base64url",
            format!("{}.***.{}", parts[0], parts[2]),
            "malformed",
        ),
        c(
            "payload not JSON",
            format!("{}.{}.{}", parts[0], b64("{oops"), parts[2]),
            "malformed",
        ),
        c(
            "payload a JSON array",
            format!("{}.{}.{}", parts[0], b64("[]"), parts[2]),
            "malformed",
        ),
        c(
            "signature not base64url",
            format!("{}.{}.%%%", parts[0], parts[1]),
            "malformed",
        ),
        c(
            "larger than 16 KiB",
            format!("{}.{}.{}", parts[0], "A".repeat(17 * 1024), parts[2]),
            "malformed",
        ),
        c(
            "duplicate alg",
            rs(
                &format!(r#"{{"alg":"RS256","alg":"none","kid":"{RSA_KID}"}}"#),
                &claims(json!({})),
            ),
            "malformed",
        ),
        c(
            "duplicate kid",
            rs(
                &format!(r#"{{"alg":"RS256","kid":"{RSA_KID}","kid":"other"}}"#),
                &claims(json!({})),
            ),
            "malformed",
        ),
        c(
            "duplicate typ",
            rs(
                &format!(r#"{{"alg":"RS256","typ":"JWT","typ":"at+jwt","kid":"{RSA_KID}"}}"#),
                &claims(json!({})),
            ),
            "malformed",
        ),
        c(
            "duplicate sub",
            rs(
                &rs_header,
                &format!(
                    r#"{{"iss":"{iss}","sub":"a","sub":"admin","aud":"copilot-jit","exp":{}}}"#,
                    n + 300
                ),
            ),
            "malformed",
        ),
        c(
            "critical extension",
            rs(
                &format!(r#"{{"alg":"RS256","kid":"{RSA_KID}","crit":["b64"],"b64":false}}"#),
                &claims(json!({})),
            ),
            "malformed",
        ),
        c(
            "exp missing",
            rs(&rs_header, &claims(json!({"exp": null}))),
            "malformed",
        ),
        c(
            "exp a string",
            rs(&rs_header, &claims(json!({"exp": "tomorrow"}))),
            "malformed",
        ),
        c(
            "exp negative",
            rs(&rs_header, &claims(json!({"exp": -1}))),
            "malformed",
        ),
        c(
            "nbf a string",
            rs(&rs_header, &claims(json!({"nbf": "now"}))),
            "malformed",
        ),
        c(
            "sub missing",
            rs(&rs_header, &claims(json!({"sub": null}))),
            "malformed",
        ),
        c(
            "sub empty",
            rs(&rs_header, &claims(json!({"sub": ""}))),
            "malformed",
        ),
        // Algorithms.
        c("alg none", unsigned("none"), "unsupported-algorithm"),
        c("alg NONE", unsigned("NONE"), "unsupported-algorithm"),
        c("alg empty", unsigned(""), "unsupported-algorithm"),
        c(
            "HS256 keyed with the public key",
            unsigned("HS256"),
            "unsupported-algorithm",
        ),
        c("HS384", unsigned("HS384"), "unsupported-algorithm"),
        c("HS512", unsigned("HS512"), "unsupported-algorithm"),
        c("unknown alg", unsigned("RS1"), "unsupported-algorithm"),
        c(
            "ES256 header on the RSA key",
            es(
                &format!(r#"{{"alg":"ES256","kid":"{RSA_KID}"}}"#),
                &claims(json!({})),
            ),
            "unsupported-algorithm",
        ),
        c(
            "RS256 header on the EC key",
            rs(
                &format!(r#"{{"alg":"RS256","kid":"{EC_KID}"}}"#),
                &claims(json!({})),
            ),
            "unsupported-algorithm",
        ),
        c(
            "PS256 against a key bound to RS256",
            rs(
                &format!(r#"{{"alg":"PS256","kid":"{RSA_KID}"}}"#),
                &claims(json!({})),
            ),
            "unsupported-algorithm",
        ),
        c(
            "EdDSA on the RSA key",
            unsigned("EdDSA"),
            "unsupported-algorithm",
        ),
        // Issuer and audience.
        c(
            "another issuer",
            rs(&rs_header, &claims(json!({"iss": "https://evil.example"}))),
            "unknown-issuer",
        ),
        c(
            "issuer with a trailing slash",
            rs(&rs_header, &claims(json!({"iss": format!("{iss}/")}))),
            "unknown-issuer",
        ),
        c(
            "issuer missing",
            rs(&rs_header, &claims(json!({"iss": null}))),
            "unknown-issuer",
        ),
        c(
            "issuer a number",
            rs(&rs_header, &claims(json!({"iss": 7}))),
            "unknown-issuer",
        ),
        c(
            "another audience",
            rs(&rs_header, &claims(json!({"aud": "someone-else"}))),
            "wrong-audience",
        ),
        c(
            "audience missing",
            rs(&rs_header, &claims(json!({"aud": null}))),
            "wrong-audience",
        ),
        c(
            "audience list without us",
            rs(&rs_header, &claims(json!({"aud": ["a", "b"]}))),
            "wrong-audience",
        ),
        c(
            "audience empty list",
            rs(&rs_header, &claims(json!({"aud": []}))),
            "wrong-audience",
        ),
        c(
            "audience with different case",
            rs(&rs_header, &claims(json!({"aud": "Copilot-JIT"}))),
            "wrong-audience",
        ),
        // Time.
        c(
            "expired an hour ago",
            rs(&rs_header, &claims(json!({"exp": n - 3600}))),
            "expired",
        ),
        c(
            "expired beyond the skew",
            rs(&rs_header, &claims(json!({"exp": n - 120}))),
            "expired",
        ),
        c(
            "not valid for an hour",
            rs(&rs_header, &claims(json!({"nbf": n + 3600}))),
            "not-yet-valid",
        ),
        c(
            "issued in the future",
            rs(&rs_header, &claims(json!({"iat": n + 3600}))),
            "not-yet-valid",
        ),
        // Keys.
        c(
            "kid missing",
            rs(r#"{"alg":"RS256"}"#, &claims(json!({}))),
            "unknown-key",
        ),
        c(
            "kid unknown",
            rs(r#"{"alg":"RS256","kid":"nope"}"#, &claims(json!({}))),
            "unknown-key",
        ),
        c(
            "kid empty",
            rs(r#"{"alg":"RS256","kid":""}"#, &claims(json!({}))),
            "unknown-key",
        ),
        c(
            "jku pointing elsewhere is not followed",
            rs(
                r#"{"alg":"RS256","kid":"attacker","jku":"http://127.0.0.1:9/jwks"}"#,
                &claims(json!({})),
            ),
            "unknown-key",
        ),
        // Signatures.
        c(
            "payload changed after signing",
            format!(
                "{}.{}.{}",
                parts[0],
                b64(&claims(json!({"sub": "admin"}))),
                parts[2]
            ),
            "bad-signature",
        ),
        c(
            "header changed after signing",
            format!(
                "{}.{}.{}",
                b64(&format!(
                    r#"{{"alg":"RS256","kid":"{RSA_KID}","typ":"JWT"}}"#
                )),
                parts[1],
                parts[2]
            ),
            "bad-signature",
        ),
        c(
            "signed by another issuer's key, same kid",
            stranger.sign_raw(Alg::Rs256, &rs_header, &claims(json!({}))),
            "bad-signature",
        ),
        c(
            "embedded jwk is ignored",
            stranger.sign_raw(
                Alg::Rs256,
                &format!(r#"{{"alg":"RS256","kid":"{RSA_KID}","jwk":{{"kty":"RSA"}}}}"#),
                &claims(json!({})),
            ),
            "bad-signature",
        ),
        c(
            "signature truncated",
            format!(
                "{}.{}.{}",
                parts[0],
                parts[1],
                &parts[2][..(parts[2].len() / 2) & !3]
            ),
            "bad-signature",
        ),
        c(
            "signature empty",
            format!("{}.{}.", parts[0], parts[1]),
            "bad-signature",
        ),
        c(
            "ES256 signature of the wrong length",
            format!(
                "{}.{}.{}",
                b64(&es_header),
                b64(&claims(json!({}))),
                b64("short")
            ),
            "bad-signature",
        ),
        c(
            "ES256 signed by another key",
            stranger.sign_raw(Alg::Es256, &es_header, &claims(json!({}))),
            "bad-signature",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_tokens_are_refused_with_their_reason() {
    let stack = Stack::start().await.expect("stack");
    let stranger = DevIssuer::start().await.expect("a second issuer");
    let cases = cases(&stack, &stranger);
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let client = reqwest::Client::new();
    for (i, case) in cases.iter().enumerate() {
        let resp = client
            .post(format!("{}/v1/access-requests", stack.url))
            .header("authorization", format!("Bearer {}", case.token))
            .header("x-request-id", format!("hostile-{i}"))
            .json(&json!({"scopes": ["chat"], "reason": "x"}))
            .send()
            .await
            .expect("reachable");
        assert!(
            resp.headers().get("x-test-host-trap").is_none(),
            "{}",
            case.name
        );
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.expect("JSON");
        assert_eq!(status, 401, "{}: {body}", case.name);
        // The caller learns the kind of failure only, never the check's detail.
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(
            message == "the identity token was not accepted"
                || message == "the identity token has expired",
            "{}: {message}",
            case.name
        );
    }
    let records = stack.audit_records("").await.expect("audit");
    for (i, case) in cases.iter().enumerate() {
        let id = format!("hostile-{i}");
        let record = records
            .iter()
            .find(|r| r["unmapped"]["client_request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("{}: no audit record", case.name));
        let reason = record["unmapped"]["reason"].as_str().unwrap_or("");
        assert!(
            reason.starts_with(case.reason),
            "{}: audited {reason:?}, expected {}",
            case.name,
            case.reason
        );
        assert_eq!(record["unmapped"]["outcome"], "denied", "{}", case.name);
        assert!(
            !reason.contains(&case.token),
            "{}: the token itself is never recorded",
            case.name
        );
    }
}
