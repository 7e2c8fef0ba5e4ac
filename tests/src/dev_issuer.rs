//! A development OIDC issuer on loopback: discovery document and JWKS, and
//! real RS256 / ES256 signatures over whatever claims a test chooses.

use crate::serve::{json_response, serve, Received};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::{signature::hazmat::PrehashSigner, Signature};
use rsa::pkcs1v15::Pkcs1v15Sign;
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
}

struct Keys {
    rsa: rsa::RsaPrivateKey,
    ec: p256::ecdsa::SigningKey,
}

pub struct DevIssuer {
    pub addr: SocketAddr,
    keys: Arc<Keys>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DevIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub const RSA_KID: &str = "dev-rsa-1";
pub const EC_KID: &str = "dev-ec-1";

fn jwks(keys: &Keys) -> serde_json::Value {
    let public = keys.rsa.to_public_key();
    let point = keys.ec.verifying_key().to_encoded_point(false);
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    serde_json::json!({"keys": [
        {"kty": "RSA", "kid": RSA_KID, "alg": "RS256", "use": "sig",
         "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be())},
        {"kty": "EC", "kid": EC_KID, "alg": "ES256", "use": "sig", "crv": "P-256",
         "x": b64(&point.x().map(|x| x.to_vec()).unwrap_or_default()),
         "y": b64(&point.y().map(|y| y.to_vec()).unwrap_or_default())}
    ]})
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl DevIssuer {
    pub async fn start() -> anyhow::Result<DevIssuer> {
        let (listener, addr) = crate::host::loopback_listener().await?;
        let mut rng = rand::thread_rng();
        let keys = Arc::new(Keys {
            rsa: rsa::RsaPrivateKey::new(&mut rng, 2048)?,
            ec: p256::ecdsa::SigningKey::random(&mut rng),
        });
        let served = keys.clone();
        let issuer = format!("http://{addr}");
        let task = serve(listener, move |req: Received| {
            let keys = served.clone();
            let issuer = issuer.clone();
            async move {
                match req.path.as_str() {
                    "/.well-known/openid-configuration" => json_response(
                        200,
                        &serde_json::json!({
                            "issuer": issuer,
                            "jwks_uri": format!("{issuer}/jwks"),
                            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                            "response_types_supported": ["id_token"],
                            "subject_types_supported": ["public"],
                        }),
                    ),
                    "/jwks" => json_response(200, &jwks(&keys)),
                    p if p.starts_with("/token?") => {
                        // Development only: mints an identity token for curl users.
                        let params = query(p);
                        let sub = params.get("sub").cloned().unwrap_or_else(|| "alice".into());
                        let groups: Vec<String> = params
                            .get("groups")
                            .map(|g| {
                                g.split(',')
                                    .filter(|s| !s.is_empty())
                                    .map(str::to_string)
                                    .collect()
                            })
                            .unwrap_or_default();
                        let audience = params
                            .get("aud")
                            .cloned()
                            .unwrap_or_else(|| "copilot-jit".into());
                        let token = sign_with(
                            &keys,
                            Alg::Rs256,
                            &person_claims(&issuer, &sub, &groups, &audience),
                        );
                        json_response(
                            200,
                            &serde_json::json!({"id_token": token, "token_type": "Bearer", "expires_in": 3600}),
                        )
                    }
                    _ => json_response(404, &serde_json::json!({"error": "not_found"})),
                }
            }
        });
        Ok(DevIssuer { addr, keys, task })
    }

    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A token for `subject` in `groups`, valid for an hour, for `audience`.
    pub fn token_for(&self, subject: &str, groups: &[&str], audience: &str) -> String {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        self.sign(
            Alg::Rs256,
            person_claims(&self.issuer(), subject, &groups, audience),
        )
    }

    /// Signs any claims (tests choose them freely, including broken ones).
    pub fn sign(&self, alg: Alg, claims: serde_json::Value) -> String {
        sign_with(&self.keys, alg, &claims)
    }

    /// Signs `header` and `claims` as given (any `alg`, `kid` or extra
    /// fields), with the issuer's key for `alg`.
    pub fn sign_raw(&self, alg: Alg, header: &str, claims: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(signature(&self.keys, alg, &input))
        )
    }
}

fn person_claims(
    issuer: &str,
    subject: &str,
    groups: &[String],
    audience: &str,
) -> serde_json::Value {
    let now = now();
    serde_json::json!({
        "iss": issuer, "sub": subject, "aud": audience,
        "email": format!("{subject}@example.com"), "name": subject,
        "groups": groups, "iat": now, "nbf": now, "exp": now + 3600,
    })
}

fn query(path: &str) -> std::collections::HashMap<String, String> {
    path.split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%2C", ",").replace("%40", "@")))
        .collect()
}

fn sign_with(keys: &Keys, alg: Alg, claims: &serde_json::Value) -> String {
    let (name, kid) = match alg {
        Alg::Rs256 => ("RS256", RSA_KID),
        Alg::Es256 => ("ES256", EC_KID),
    };
    let header = serde_json::json!({"alg": name, "typ": "JWT", "kid": kid});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = signature(keys, alg, &input);
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn signature(keys: &Keys, alg: Alg, input: &str) -> Vec<u8> {
    let digest = Sha256::digest(input.as_bytes());
    match alg {
        Alg::Rs256 => keys
            .rsa
            .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
            .unwrap_or_default(),
        Alg::Es256 => {
            let sig: Result<Signature, _> = keys.ec.sign_prehash(&digest);
            sig.map(|s| s.to_bytes().to_vec()).unwrap_or_default()
        }
    }
}
