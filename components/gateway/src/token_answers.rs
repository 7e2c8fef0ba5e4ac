//! What the token endpoints take and give: the minted-token body (one shape
//! for a requester's grant token and a pipeline's RFC 8693 exchange) and the
//! exchange form a run posts.

use serde_json::{json, Value};

use crate::ask::KNOWN_SCOPES;
use crate::body::parse_json;
use crate::error::{ApiError, OAuthError};
use crate::routes::{query_params, Query};

pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ISSUED_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const SUBJECT_TOKEN_TYPES: &[&str] = &[
    "urn:ietf:params:oauth:token-type:id_token",
    "urn:ietf:params:oauth:token-type:jwt",
];
/// A pipeline token's lifetime unless the permitting policy says less.
pub const EXCHANGE_DEFAULT_SECS: u64 = 900;
/// What a run gets when it names no scope.
const EXCHANGE_DEFAULT_SCOPE: &str = "completions";

/// A freshly minted gateway token.
pub struct MintedToken<'a> {
    pub token: &'a str,
    pub token_id: &'a str,
    pub expires_at: u64,
    pub grant_id: &'a str,
    pub scopes: &'a [String],
}

/// The members every token answer has (RFC 8693 §2.2.1 and ours).
fn token_body(t: &MintedToken, now: u64) -> Value {
    json!({
        "access_token": t.token,
        "token_type": "Bearer",
        "issued_token_type": ISSUED_TOKEN_TYPE,
        "expires_in": t.expires_at.saturating_sub(now),
        "grant_id": t.grant_id,
    })
}

/// `POST /v1/grants/{id}/token`: also when it ends, its id and scopes.
pub fn grant_token_body(t: &MintedToken, now: u64) -> Value {
    let mut body = token_body(t, now);
    body["expires_at"] = json!(t.expires_at);
    body["token_id"] = json!(t.token_id);
    body["scopes"] = json!(t.scopes);
    body
}

/// `POST /v1/token-exchange`: the scopes as OAuth's space-separated `scope`.
pub fn exchange_token_body(t: &MintedToken, now: u64) -> Value {
    let mut body = token_body(t, now);
    body["scope"] = json!(t.scopes.join(" "));
    body
}

/// A token-exchange request, checked for its shape (not yet its token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeForm {
    pub subject_token: String,
    /// The `scope` parameter, if the run named one.
    pub scope: Option<String>,
}

/// Reads the form (`application/x-www-form-urlencoded`, or JSON when the
/// content type says so) and checks grant type and subject token type.
pub fn exchange_form(content_type: Option<&str>, body: &[u8]) -> Result<ExchangeForm, ApiError> {
    let form = match content_type {
        Some(t) if t.starts_with("application/json") => {
            let v: Value = parse_json(body)?;
            let fields = v
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            Query(fields)
        }
        _ => query_params(&format!("?{}", String::from_utf8_lossy(body))),
    };
    if form.get("grant_type").as_deref() != Some(TOKEN_EXCHANGE_GRANT) {
        return Err(ApiError::oauth(
            OAuthError::UnsupportedGrantType,
            format!("grant_type must be {TOKEN_EXCHANGE_GRANT}"),
        ));
    }
    let subject_token = form
        .get("subject_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::oauth(OAuthError::InvalidRequest, "subject_token is required"))?;
    let type_ok = form
        .get("subject_token_type")
        .is_some_and(|t| SUBJECT_TOKEN_TYPES.contains(&t.as_str()));
    if !type_ok {
        return Err(ApiError::oauth(
            OAuthError::InvalidRequest,
            "subject_token_type must be urn:ietf:params:oauth:token-type:id_token",
        ));
    }
    Ok(ExchangeForm {
        subject_token,
        scope: form.get("scope"),
    })
}

/// The scopes a run asks for (completions unless it names some), each a
/// known scope.
pub fn exchange_scopes(scope: Option<&str>) -> Result<Vec<String>, ApiError> {
    let scopes: Vec<String> = match scope {
        Some(s) => s.split_whitespace().map(str::to_string).collect(),
        None => vec![EXCHANGE_DEFAULT_SCOPE.to_string()],
    };
    match scopes.iter().find(|s| !KNOWN_SCOPES.contains(&s.as_str())) {
        Some(bad) => Err(ApiError::oauth(
            OAuthError::InvalidScope,
            format!("unknown scope {bad}"),
        )),
        None => Ok(scopes),
    }
}

/// A policy refusal: a scope the run named is `invalid_scope`; the default
/// scope refused means the run may not exchange at all.
pub fn exchange_refusal(scope_named: bool) -> OAuthError {
    if scope_named {
        OAuthError::InvalidScope
    } else {
        OAuthError::AccessDenied
    }
}

/// A pipeline token lasts the policy's `@max_duration`, at most the default.
pub fn exchange_token_secs(policy_max_secs: Option<u64>) -> u64 {
    policy_max_secs
        .unwrap_or(EXCHANGE_DEFAULT_SECS)
        .min(EXCHANGE_DEFAULT_SECS)
}

/// The repository and the grant's reason, from a GitHub Actions token's claims.
pub fn run_description(claims: &Value) -> (String, String) {
    let claim = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or("");
    (
        claim("repository").to_string(),
        format!(
            "GitHub Actions {} ({}) on {}",
            claim("workflow"),
            claim("event_name"),
            claim("ref")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minted(scopes: &[String]) -> MintedToken<'_> {
        MintedToken {
            token: "eyJ.x.y",
            token_id: "tok_1",
            expires_at: 1900,
            grant_id: "req_1",
            scopes,
        }
    }

    #[test]
    fn both_token_answers_share_the_oauth_members() {
        let scopes = vec!["chat".to_string(), "completions".to_string()];
        let grant = grant_token_body(&minted(&scopes), 1000);
        let exchange = exchange_token_body(&minted(&scopes), 1000);
        for body in [&grant, &exchange] {
            assert_eq!(body["access_token"], "eyJ.x.y");
            assert_eq!(body["token_type"], "Bearer");
            assert_eq!(body["issued_token_type"], ISSUED_TOKEN_TYPE);
            assert_eq!(body["expires_in"], 900);
            assert_eq!(body["grant_id"], "req_1");
        }
        assert_eq!(grant["expires_at"], 1900);
        assert_eq!(grant["token_id"], "tok_1");
        assert_eq!(grant["scopes"], json!(["chat", "completions"]));
        assert_eq!(exchange["scope"], "chat completions");
        assert!(exchange.get("token_id").is_none());
        assert_eq!(grant_token_body(&minted(&scopes), 5000)["expires_in"], 0);
    }

    fn form(body: &str) -> Result<ExchangeForm, ApiError> {
        exchange_form(Some("application/x-www-form-urlencoded"), body.as_bytes())
    }

    #[test]
    fn the_exchange_form_is_checked_in_order() {
        let grant = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange";
        let code = |r: Result<ExchangeForm, ApiError>| r.unwrap_err().body()["error"].clone();
        assert_eq!(code(form("grant_type=password")), "unsupported_grant_type");
        assert_eq!(code(form(grant)), "invalid_request");
        assert_eq!(
            code(form(&format!(
                "{grant}&subject_token=t&subject_token_type=saml"
            ))),
            "invalid_request"
        );
        let ok = form(&format!(
            "{grant}&subject_token=t.k.n&subject_token_type=urn:ietf:params:oauth:token-type:id_token&scope=chat+completions"
        ))
        .unwrap();
        assert_eq!(ok.subject_token, "t.k.n");
        assert_eq!(ok.scope.as_deref(), Some("chat completions"));
    }

    #[test]
    fn the_exchange_form_may_be_json() {
        let body = json!({
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "subject_token": "t",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        });
        let ok = exchange_form(Some("application/json"), body.to_string().as_bytes()).unwrap();
        assert_eq!((ok.subject_token.as_str(), ok.scope), ("t", None));
        let bad = exchange_form(Some("application/json"), b"{").unwrap_err();
        assert_eq!(bad.body()["error"]["code"], "bad_json");
    }

    #[test]
    fn runs_get_completions_unless_they_name_known_scopes() {
        assert_eq!(exchange_scopes(None).unwrap(), vec!["completions"]);
        assert_eq!(
            exchange_scopes(Some("chat  models")).unwrap(),
            vec!["chat", "models"]
        );
        let e = exchange_scopes(Some("chat root")).unwrap_err();
        assert_eq!(e.body()["error"], "invalid_scope");
        assert_eq!(exchange_refusal(true), OAuthError::InvalidScope);
        assert_eq!(exchange_refusal(false), OAuthError::AccessDenied);
    }

    #[test]
    fn pipeline_tokens_last_at_most_fifteen_minutes() {
        assert_eq!(exchange_token_secs(None), 900);
        assert_eq!(exchange_token_secs(Some(300)), 300);
        assert_eq!(exchange_token_secs(Some(4 * 3600)), 900);
    }

    #[test]
    fn a_run_is_described_by_its_claims() {
        let claims = json!({"repository": "acme/app", "workflow": "ci", "event_name": "push", "ref": "refs/heads/main"});
        assert_eq!(
            run_description(&claims),
            (
                "acme/app".to_string(),
                "GitHub Actions ci (push) on refs/heads/main".to_string()
            )
        );
        assert_eq!(run_description(&Value::Null).1, "GitHub Actions  () on ");
    }
}
