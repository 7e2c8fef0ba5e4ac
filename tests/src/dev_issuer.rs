//! A development OIDC issuer on loopback: discovery document and JWKS, and
//! real RS256 / ES256 signatures over whatever claims a test chooses. For
//! the gateway's pages it also signs people in: a form asking who you are
//! (name and groups, no password: development only), then the authorization
//! code flow with PKCE for the client secret `DEV_CLIENT_SECRET`.

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
/// The gateway's client secret at the dev issuer (`oidc_client_secret`).
pub const DEV_CLIENT_SECRET: &str = "dev-only-client-secret";

/// A login waiting for its code to be exchanged.
struct PendingCode {
    subject: String,
    groups: Vec<String>,
    nonce: String,
    challenge: String,
    redirect_uri: String,
    client_id: String,
    expires_at: u64,
}

type Codes = Arc<std::sync::Mutex<std::collections::HashMap<String, PendingCode>>>;

fn html(status: u16, body: String) -> hyper::Response<crate::serve::Body> {
    let mut r = hyper::Response::new(crate::serve::full(body));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_REQUEST);
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `application/x-www-form-urlencoded` pairs, decoded (the mocks read forms with it).
pub fn form_params(text: &str) -> std::collections::HashMap<String, String> {
    text.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// What the sign-in form carries over from the authorization request.
const LOGIN_FORM_FIELDS: [&str; 6] = [
    "client_id",
    "redirect_uri",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
];

/// `GET /authorize`: who are you? (development: any name, any groups).
fn login_form(
    params: &std::collections::HashMap<String, String>,
) -> hyper::Response<crate::serve::Body> {
    let hidden: String = LOGIN_FORM_FIELDS
        .iter()
        .map(|k| {
            format!(
                "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                escape(params.get(*k).map(String::as_str).unwrap_or(""))
            )
        })
        .collect();
    html(
        200,
        format!(
            "<!doctype html><title>Dev IdP sign-in</title><h1>Development sign-in</h1>\
<p>Any name signs in (no password: this issuer is for development only).</p>\
<form method=\"post\" action=\"/authorize\">{hidden}\
<p><label>Name <input name=\"login\" value=\"alice\" required></label></p>\
<p><label>Groups <input name=\"groups\" value=\"developers\"></label> (try copilot-approvers, copilot-auditors)</p>\
<button type=\"submit\">Sign in</button></form>"
        ),
    )
}

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
        let codes: Codes = Arc::default();
        let task = serve(listener, move |req: Received| {
            let keys = served.clone();
            let issuer = issuer.clone();
            let codes = codes.clone();
            async move {
                let path_only = req.path.split('?').next().unwrap_or("").to_string();
                match (req.method.as_str(), path_only.as_str()) {
                    ("GET", "/authorize") => return login_form(&query_decoded(&req.path)),
                    ("POST", "/authorize") => {
                        return authorized(&codes, &String::from_utf8_lossy(&req.body))
                    }
                    ("POST", "/oauth/token") => return code_exchange(&keys, &issuer, &codes, &req),
                    _ => {}
                }
                match req.path.as_str() {
                    "/.well-known/openid-configuration" => json_response(
                        200,
                        &serde_json::json!({
                            "issuer": issuer,
                            "jwks_uri": format!("{issuer}/jwks"),
                            "authorization_endpoint": format!("{issuer}/authorize"),
                            "token_endpoint": format!("{issuer}/oauth/token"),
                            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                            "response_types_supported": ["id_token", "code"],
                            "code_challenge_methods_supported": ["S256"],
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

    /// Opens `url` in `browser` signed out: the gateway sends it here, the
    /// development sign-in form is filled in as `login` in `groups`, and
    /// the page the gateway comes back to is returned.
    pub async fn browser_sign_in(
        browser: &mut crate::browser::Browser,
        url: &str,
        login: &str,
        groups: &str,
    ) -> crate::browser::Page {
        let first = browser.get(url).await;
        assert_eq!(first.status, 303, "{}", first.text);
        let form = browser.follow(first).await;
        DevIssuer::fill_sign_in_form(browser, form, login, groups).await
    }

    /// Fills in and sends the development sign-in `form` as `login` in
    /// `groups`; the page the gateway comes back to.
    pub async fn fill_sign_in_form(
        browser: &mut crate::browser::Browser,
        form: crate::browser::Page,
        login: &str,
        groups: &str,
    ) -> crate::browser::Page {
        assert!(form.text.contains("Development sign-in"), "{}", form.text);
        let hidden: Vec<(String, String)> = LOGIN_FORM_FIELDS
            .iter()
            .map(|k| (k.to_string(), form.input(k).unwrap_or_default()))
            .collect();
        let mut fields: Vec<(&str, &str)> = hidden
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        fields.push(("login", login));
        fields.push(("groups", groups));
        let signed_in = browser
            .post_form(&form.form_action().expect("action"), &fields)
            .await;
        browser.follow(signed_in).await
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

fn query_decoded(path: &str) -> std::collections::HashMap<String, String> {
    form_params(path.split_once('?').map(|(_, q)| q).unwrap_or(""))
}

/// `POST /authorize`: the person said who they are; back to the client
/// with a one-time code.
fn authorized(codes: &Codes, body: &str) -> hyper::Response<crate::serve::Body> {
    let p = form_params(body);
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    let redirect_uri = get("redirect_uri");
    if get("code_challenge_method") != "S256"
        || get("code_challenge").is_empty()
        || redirect_uri.is_empty()
    {
        return html(
            400,
            "<h1>PKCE (S256) and a redirect URI are required</h1>".into(),
        );
    }
    let code = hex::encode(rand::random::<[u8; 16]>());
    let pending = PendingCode {
        subject: get("login"),
        groups: get("groups")
            .split(',')
            .map(|g| g.trim().to_string())
            .filter(|g| !g.is_empty())
            .collect(),
        nonce: get("nonce"),
        challenge: get("code_challenge"),
        redirect_uri: redirect_uri.clone(),
        client_id: get("client_id"),
        expires_at: now() + 300,
    };
    if let Ok(mut c) = codes.lock() {
        c.insert(code.clone(), pending);
    }
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let to = format!(
        "{redirect_uri}{sep}code={code}&state={}",
        crate::web_encode(&get("state"))
    );
    let mut r = html(303, String::new());
    if let Ok(v) = hyper::header::HeaderValue::from_str(&to) {
        r.headers_mut().insert("location", v);
    }
    r
}

/// `POST /oauth/token`: the client secret, the code once, PKCE checked.
fn code_exchange(
    keys: &Keys,
    issuer: &str,
    codes: &Codes,
    req: &Received,
) -> hyper::Response<crate::serve::Body> {
    let refuse = |e: &str| json_response(400, &serde_json::json!({"error": e}));
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("copilot-jit:{DEV_CLIENT_SECRET}"))
    );
    if req.header("authorization").as_deref() != Some(expected.as_str()) {
        return json_response(401, &serde_json::json!({"error": "invalid_client"}));
    }
    let p = form_params(&String::from_utf8_lossy(&req.body));
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    let Some(pending) = codes.lock().ok().and_then(|mut c| c.remove(&get("code"))) else {
        return refuse("invalid_grant");
    };
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(get("code_verifier").as_bytes()));
    if challenge != pending.challenge
        || get("redirect_uri") != pending.redirect_uri
        || now() >= pending.expires_at
    {
        return refuse("invalid_grant");
    }
    let mut claims = person_claims(
        issuer,
        &pending.subject,
        &pending.groups,
        &pending.client_id,
    );
    claims["nonce"] = serde_json::json!(pending.nonce);
    let token = sign_with(keys, Alg::Rs256, &claims);
    json_response(
        200,
        &serde_json::json!({"id_token": token, "token_type": "Bearer", "expires_in": 3600}),
    )
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
