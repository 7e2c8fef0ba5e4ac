//! The issuers the gateway trusts, from Spin variables: the organisation's
//! IdP for people (and agents), and GitHub Actions for pipelines.

use crate::jwt::SUPPORTED_ALGORITHMS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Human,
    Workload,
    Agent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    /// The `iss` value, also the base of its discovery document.
    pub issuer: String,
    /// Accepted audiences (`oidc_audience` may list several, comma-separated).
    pub audiences: Vec<String>,
    pub algorithms: Vec<String>,
    /// The claim that identifies a person (`oidc_subject_claim`, `sub`).
    pub subject_claim: String,
    pub groups_claim: String,
    pub email_claim: String,
    pub name_claim: String,
    pub kind: Kind,
    /// GitHub Actions tokens: the subject is the workflow run's repository and ref.
    pub github_actions: bool,
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Reads every configured issuer. An unknown algorithm or kind is an error:
/// the gateway then refuses every token rather than guess.
pub fn configured(get: impl Fn(&str) -> Option<String>) -> Result<Vec<Issuer>, String> {
    let mut issuers = Vec::new();
    let algorithms = |name: &str| -> Result<Vec<String>, String> {
        let names = match get(name) {
            Some(v) => list(&v),
            None => SUPPORTED_ALGORITHMS.iter().map(|a| a.to_string()).collect(),
        };
        match names
            .iter()
            .find(|a| !SUPPORTED_ALGORITHMS.contains(&a.as_str()))
        {
            Some(bad) => Err(format!("variable {name} names unsupported algorithm {bad}")),
            None => Ok(names),
        }
    };
    if let Some(issuer) = get("oidc_issuer") {
        let kind = match get("oidc_principal_kind").as_deref() {
            None | Some("human") => Kind::Human,
            Some("workload") => Kind::Workload,
            Some("agent") => Kind::Agent,
            Some(other) => {
                return Err(format!(
                    "variable oidc_principal_kind: unknown kind {other}"
                ))
            }
        };
        issuers.push(Issuer {
            issuer,
            audiences: {
                let audiences = list(&get("oidc_audience").unwrap_or_default());
                if audiences.is_empty() {
                    return Err("variable oidc_audience is not set".into());
                }
                audiences
            },
            algorithms: algorithms("oidc_algorithms")?,
            subject_claim: get("oidc_subject_claim").unwrap_or_else(|| "sub".into()),
            groups_claim: get("oidc_groups_claim").unwrap_or_else(|| "groups".into()),
            email_claim: get("oidc_email_claim").unwrap_or_else(|| "email".into()),
            name_claim: get("oidc_name_claim").unwrap_or_else(|| "name".into()),
            kind,
            github_actions: false,
        });
    }
    // GitHub Actions is trusted only when an audience is configured for it.
    if let (Some(issuer), Some(audience)) =
        (get("github_actions_issuer"), get("github_actions_audience"))
    {
        issuers.push(Issuer {
            issuer,
            audiences: list(&audience),
            // GitHub signs Actions tokens with RS256.
            algorithms: vec!["RS256".into()],
            subject_claim: "sub".into(),
            groups_claim: String::new(),
            email_claim: String::new(),
            name_claim: String::new(),
            kind: Kind::Workload,
            github_actions: true,
        });
    }
    if issuers.is_empty() {
        return Err("no issuer is configured (oidc_issuer)".into());
    }
    Ok(issuers)
}

/// The issuer a token names, compared exactly (no trailing-slash games).
pub fn select<'a>(issuers: &'a [Issuer], iss: &str) -> Option<&'a Issuer> {
    issuers.iter().find(|i| i.issuer == iss)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn both_issuers_when_configured() {
        let issuers = configured(vars(&[
            ("oidc_issuer", "https://idp"),
            ("oidc_audience", "gw"),
            (
                "github_actions_issuer",
                "https://token.actions.githubusercontent.com",
            ),
            ("github_actions_audience", "gw"),
        ]))
        .unwrap();
        assert_eq!(issuers.len(), 2);
        assert_eq!(select(&issuers, "https://idp").unwrap().kind, Kind::Human);
        let actions = select(&issuers, "https://token.actions.githubusercontent.com").unwrap();
        assert!(actions.github_actions && actions.kind == Kind::Workload);
        assert!(select(&issuers, "https://idp/").is_none());
    }

    #[test]
    fn actions_are_off_without_an_audience_and_bad_config_fails() {
        let issuers = configured(vars(&[
            ("oidc_issuer", "https://idp"),
            ("oidc_audience", "gw"),
            (
                "github_actions_issuer",
                "https://token.actions.githubusercontent.com",
            ),
        ]))
        .unwrap();
        assert_eq!(issuers.len(), 1);
        assert!(configured(vars(&[])).is_err());
        assert!(configured(vars(&[
            ("oidc_issuer", "https://idp"),
            ("oidc_audience", "gw"),
            ("oidc_algorithms", "HS256")
        ]))
        .is_err());
        assert!(configured(vars(&[
            ("oidc_issuer", "https://idp"),
            ("oidc_audience", "gw"),
            ("oidc_principal_kind", "robot")
        ]))
        .is_err());
        assert!(configured(vars(&[("oidc_issuer", "https://idp")])).is_err());
    }
}

/// `scheme://host[:port]` of an absolute http(s) URL.
pub fn origin_of(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(&url[..url.len() - rest.len() + authority.len()])
}

/// Keys are fetched only from the issuer's own origin (or the configured
/// `oidc_issuer_origin`): a discovery document must not send the gateway to
/// another host the app may reach (the bucket, Copilot, the webhook).
pub fn jwks_uri_allowed(issuer: &str, issuer_origin: Option<&str>, jwks_uri: &str) -> bool {
    let Some(keys) = origin_of(jwks_uri) else {
        return false;
    };
    let same =
        |o: Option<&str>| o.is_some_and(|o| o.trim_end_matches('/').eq_ignore_ascii_case(keys));
    same(origin_of(issuer)) || same(issuer_origin)
}

#[cfg(test)]
mod origin_tests {
    use super::*;

    #[test]
    fn keys_come_from_the_issuers_origin_only() {
        let iss = "https://login.example.com/tenant/v2.0";
        assert!(jwks_uri_allowed(
            iss,
            None,
            "https://login.example.com/tenant/keys"
        ));
        assert!(jwks_uri_allowed(
            iss,
            Some("https://keys.example.com"),
            "https://keys.example.com/k"
        ));
        for other in [
            "https://s3.example.com/bucket/keys",
            "https://login.example.com.evil.example/keys",
            "https://user@login.example.com/keys",
            "http://login.example.com/tenant/keys",
            "ftp://login.example.com/keys",
            "/relative/keys",
        ] {
            assert!(!jwks_uri_allowed(iss, None, other), "{other}");
        }
        assert_eq!(
            origin_of("http://127.0.0.1:8080/x?y"),
            Some("http://127.0.0.1:8080")
        );
    }
}
