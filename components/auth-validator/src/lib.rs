//! The auth-validator component: verifies OIDC tokens from the configured
//! issuer. Keys come from the issuer's discovery document and JWKS over
//! outbound HTTP and are cached in `wasi:keyvalue`.

pub mod claims;
pub mod issuers;
pub mod jwt;

#[cfg(target_arch = "wasm32")]
mod bindings {
    use super::issuers::{self, Issuer, Kind};
    use super::jwt::{self, Failure, Jwks, Rejection};
    use copilot_jit_common::unix_now as now;

    // One set of wasi types for this component and the shared client.
    copilot_jit_wasi::bindings_with_http!("auth-validator");

    use copilot_jit::gateway::types::{Principal, PrincipalKind};
    use copilot_jit_wasi::config::variable;
    use copilot_jit_wasi::http::{BodyError, Method, Request};
    use exports::copilot_jit::gateway::auth::{AuthError, AuthFailure, Guest};
    use wasi::keyvalue::store;

    /// How long fetched keys are trusted before they are fetched again.
    const JWKS_TTL_SECS: u64 = 600;
    /// An unknown `kid` triggers at most one refetch per this interval
    /// (`oidc_jwks_refetch_secs`), so forged kids cannot drive a fetch storm.
    const REFETCH_INTERVAL_SECS: u64 = 30;
    const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
    /// An issuer that does not answer in time counts as unreachable: a
    /// token never waits longer than this per document.
    const IDP_TIMEOUT_MS: u64 = 3000;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct CachedJwks {
        fetched_at: u64,
        /// The last fetch tried, successful or not: refetches are counted
        /// from it, so an unreachable issuer is not asked on every token.
        #[serde(default)]
        attempted_at: u64,
        jwks: serde_json::Value,
    }

    fn fail(failure: AuthFailure, detail: impl Into<String>) -> AuthError {
        AuthError {
            failure,
            detail: detail.into(),
        }
    }

    fn from_rejection(r: Rejection) -> AuthError {
        let failure = match r.failure {
            Failure::Malformed => AuthFailure::Malformed,
            Failure::UnsupportedAlgorithm => AuthFailure::UnsupportedAlgorithm,
            Failure::UnknownIssuer => AuthFailure::UnknownIssuer,
            Failure::UnknownKey => AuthFailure::UnknownKey,
            Failure::BadSignature => AuthFailure::BadSignature,
            Failure::Expired => AuthFailure::Expired,
            Failure::NotYetValid => AuthFailure::NotYetValid,
            Failure::WrongAudience => AuthFailure::WrongAudience,
        };
        fail(failure, r.detail)
    }

    /// A bounded GET of a JSON document.
    fn http_get(url: &str) -> Result<Vec<u8>, String> {
        let response = Request::new(Method::Get, url)
            .and_then(|r| {
                r.header("accept", "application/json")
                    .timeout_ms(IDP_TIMEOUT_MS)
                    .send(None)
            })
            .map_err(|e| e.to_string())?;
        if response.status() != 200 {
            return Err(format!("{url} answered {}", response.status()));
        }
        response.read_body(MAX_DOCUMENT_BYTES).map_err(|e| match e {
            BodyError::TooLarge(_) => format!("{url} is too large"),
            other => other.to_string(),
        })
    }

    fn fetch_jwks(issuer: &str) -> Result<serde_json::Value, String> {
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let discovery: serde_json::Value =
            serde_json::from_slice(&http_get(&discovery_url)?).map_err(|e| e.to_string())?;
        let jwks_uri = discovery["jwks_uri"]
            .as_str()
            .ok_or("discovery document has no jwks_uri")?;
        let origin = variable("oidc_issuer_origin");
        if !issuers::jwks_uri_allowed(issuer, origin.as_deref(), jwks_uri) {
            return Err(format!(
                "discovery names keys outside the issuer's origin: {jwks_uri}"
            ));
        }
        serde_json::from_slice(&http_get(jwks_uri)?).map_err(|e| e.to_string())
    }

    /// Keys for `issuer` that know `kid`, from the cache or a fetch.
    fn keys_for(issuer: &str, kid: &str) -> Result<Jwks, AuthError> {
        let bucket = store::open("default")
            .map_err(|e| fail(AuthFailure::KeysUnavailable, format!("key cache: {e:?}")))?;
        let cache_key = format!("jwks:{issuer}");
        let now = now();
        let cached: Option<CachedJwks> = bucket
            .get(&cache_key)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let parse = |v: &serde_json::Value| serde_json::from_value::<Jwks>(v.clone()).ok();
        if let Some(c) = &cached {
            let fresh = now < c.fetched_at + JWKS_TTL_SECS;
            let interval = variable("oidc_jwks_refetch_secs")
                .and_then(|v| v.parse().ok())
                .unwrap_or(REFETCH_INTERVAL_SECS);
            let may_refetch = now >= c.fetched_at.max(c.attempted_at) + interval;
            let keys = parse(&c.jwks);
            if let Some(jwks) = &keys {
                if fresh && (jwks.find(kid).is_some() || !may_refetch) {
                    return Ok(jwks.clone());
                }
            }
            if !may_refetch {
                // Tried too recently (the issuer may be down): what we hold,
                // or nothing, but no fetch per token.
                return keys.ok_or_else(|| {
                    fail(
                        AuthFailure::KeysUnavailable,
                        "issuer keys are unavailable; the next fetch is throttled",
                    )
                });
            }
        }
        match fetch_jwks(issuer) {
            Ok(jwks) => {
                let entry = CachedJwks {
                    fetched_at: now,
                    attempted_at: now,
                    jwks: jwks.clone(),
                };
                if let Ok(bytes) = serde_json::to_vec(&entry) {
                    // A cache write failure only costs a refetch later.
                    let _ = bucket.set(&cache_key, &bytes);
                }
                parse(&jwks)
                    .ok_or_else(|| fail(AuthFailure::KeysUnavailable, "issuer JWKS is not valid"))
            }
            // Keys we still hold keep serving while the issuer is unreachable.
            Err(e) => {
                let entry = CachedJwks {
                    fetched_at: cached.as_ref().map_or(0, |c| c.fetched_at),
                    attempted_at: now,
                    jwks: cached
                        .as_ref()
                        .map_or(serde_json::Value::Null, |c| c.jwks.clone()),
                };
                if let Ok(bytes) = serde_json::to_vec(&entry) {
                    let _ = bucket.set(&cache_key, &bytes);
                }
                match cached.as_ref().and_then(|c| parse(&c.jwks)) {
                    Some(jwks) => Ok(jwks),
                    None => Err(fail(
                        AuthFailure::KeysUnavailable,
                        format!("fetching issuer keys: {e}"),
                    )),
                }
            }
        }
    }

    fn principal(
        claims: &serde_json::Map<String, serde_json::Value>,
        issuer: &Issuer,
    ) -> Result<Principal, AuthError> {
        let who = super::claims::identity(claims, issuer)
            .map_err(|why| fail(AuthFailure::Malformed, why))?;
        Ok(Principal {
            kind: match issuer.kind {
                Kind::Human => PrincipalKind::Human,
                Kind::Workload => PrincipalKind::Workload,
                Kind::Agent => PrincipalKind::Agent,
            },
            issuer: issuer.issuer.clone(),
            subject: who.subject,
            email: who.email,
            name: who.name,
            groups: who.groups,
            claims_json: serde_json::Value::Object(claims.clone()).to_string(),
        })
    }

    struct Component;

    impl Guest for Component {
        fn authenticate(bearer_token: String) -> Result<Principal, AuthError> {
            let issuers =
                issuers::configured(variable).map_err(|e| fail(AuthFailure::KeysUnavailable, e))?;
            let token = jwt::parse(&bearer_token).map_err(from_rejection)?;
            let iss = token
                .claims
                .get("iss")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            let issuer = issuers::select(&issuers, iss).ok_or_else(|| {
                fail(AuthFailure::UnknownIssuer, "iss names no configured issuer")
            })?;
            let allowed: Vec<&str> = issuer.algorithms.iter().map(String::as_str).collect();
            // Cheap checks first: no key fetch for a token that is not ours.
            token
                .validate_claims(&issuer.issuer, &issuer.audiences, now())
                .map_err(from_rejection)?;
            let kid = token
                .header
                .kid
                .as_deref()
                .ok_or_else(|| fail(AuthFailure::UnknownKey, "token has no kid"))?;
            let jwks = keys_for(&issuer.issuer, kid)?;
            let jwk = jwks
                .find(kid)
                .ok_or_else(|| fail(AuthFailure::UnknownKey, format!("issuer has no key {kid}")))?;
            token
                .verify_signature(jwk, &allowed)
                .map_err(from_rejection)?;
            principal(&token.claims, issuer)
        }
    }

    export!(Component);
}
