//! Who a verified token names: the claims the issuer's settings point at.
//!
//! People are identified by a stable claim (`oidc_subject_claim`): Entra ID
//! issues a different `sub` per registered app, so with several audiences
//! `sub` would make one person two (two approvals, or approving their own
//! request); its `oid` is the same for every app. E-mail addresses are kept
//! lower-case (they are compared, and approvers read them) and dropped when
//! the issuer says they are not verified.

use super::issuers::Issuer;
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub groups: Vec<String>,
}

fn text(claims: &Map<String, Value>, key: &str) -> Option<String> {
    claims
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// `email_verified` as issuers send it: a boolean, or the strings some send.
fn unverified(claims: &Map<String, Value>) -> bool {
    match claims.get("email_verified") {
        Some(Value::Bool(verified)) => !verified,
        Some(Value::String(verified)) => verified != "true",
        _ => false,
    }
}

/// The identity in `claims` under `issuer`'s settings; `Err` names the
/// missing subject claim.
pub fn identity(claims: &Map<String, Value>, issuer: &Issuer) -> Result<Identity, String> {
    let subject = text(claims, &issuer.subject_claim)
        .ok_or_else(|| format!("the subject claim {} is missing", issuer.subject_claim))?;
    let email = if issuer.github_actions || unverified(claims) {
        None
    } else {
        text(claims, &issuer.email_claim).map(|e| e.to_lowercase())
    };
    // A workflow run is known by its repository.
    let name = if issuer.github_actions {
        text(claims, "repository")
    } else {
        text(claims, &issuer.name_claim)
    };
    let groups = match claims.get(&issuer.groups_claim) {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|g| g.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    Ok(Identity {
        subject,
        email,
        name,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuers::Kind;
    use serde_json::json;

    fn issuer(subject_claim: &str) -> Issuer {
        Issuer {
            issuer: "https://login.example".into(),
            audiences: vec!["app-a".into(), "app-b".into()],
            algorithms: vec!["RS256".into()],
            subject_claim: subject_claim.into(),
            groups_claim: "roles".into(),
            email_claim: "preferred_username".into(),
            name_claim: "display".into(),
            kind: Kind::Human,
            github_actions: false,
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn the_configured_claims_name_the_person() {
        let from_a = claims(
            json!({"sub": "pairwise-a", "oid": "person-1", "roles": ["security"],
            "preferred_username": "Ada@Example.COM", "display": "Ada", "email": "other@example.com"}),
        );
        let from_b = claims(
            json!({"sub": "pairwise-b", "oid": "person-1", "roles": "security",
            "preferred_username": "ada@example.com", "display": "Ada"}),
        );
        let a = identity(&from_a, &issuer("oid")).unwrap();
        let b = identity(&from_b, &issuer("oid")).unwrap();
        assert_eq!(a, b, "one person, whichever app the token is for");
        assert_eq!(a.email.as_deref(), Some("ada@example.com"));
        assert_eq!(a.name.as_deref(), Some("Ada"));
        assert_eq!(a.groups, vec!["security"]);
        assert_ne!(
            identity(&from_a, &issuer("sub")).unwrap().subject,
            identity(&from_b, &issuer("sub")).unwrap().subject
        );
        assert!(identity(&claims(json!({"sub": "x"})), &issuer("oid")).is_err());
    }

    #[test]
    fn unverified_addresses_are_not_shown() {
        for verified in [json!(false), json!("false")] {
            let c = claims(
                json!({"oid": "p", "preferred_username": "a@example.com", "email_verified": verified}),
            );
            assert_eq!(identity(&c, &issuer("oid")).unwrap().email, None);
        }
        for verified in [json!(true), json!("true")] {
            let c = claims(
                json!({"oid": "p", "preferred_username": "a@example.com", "email_verified": verified}),
            );
            assert!(identity(&c, &issuer("oid")).unwrap().email.is_some());
        }
    }
}
