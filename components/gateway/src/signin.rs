//! Sign-in credentials: what the device flow gives a person's client. It is
//! identity, not access: every Copilot call made with it looks up the
//! person's active grant at call time.
//!
//! The credential is shaped like a GitHub user-to-server token (`gho_` and
//! base62), because the Copilot CLI checks the prefix before sending it. It
//! is 238 random bits; the store keeps only its SHA-256 (the record's key),
//! so verifying it is one read and no write, and deleting the record revokes
//! it at once.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const CREDENTIAL_PREFIX: &str = "gho_";
/// Random base62 characters after the prefix (≈ 238 bits).
pub const CREDENTIAL_CHARS: usize = 40;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// How long a sign-in lasts unless `signin_ttl_secs` says otherwise: a
/// working day.
pub const DEFAULT_SIGNIN_TTL_SECS: u64 = 10 * 3600;
/// Sign-ins a person's device list keeps (the oldest fall out and end).
pub const MAX_SIGNINS_PER_PERSON: usize = 20;

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A credential from random bytes (each byte picks a base62 character; the
/// small modulo bias costs less than a bit over forty characters).
pub fn credential_from(random: &[u8; CREDENTIAL_CHARS]) -> String {
    let chars: String = random
        .iter()
        .map(|b| BASE62[usize::from(*b) % BASE62.len()] as char)
        .collect();
    format!("{CREDENTIAL_PREFIX}{chars}")
}

/// Whether a presented token has our credential's shape (checked before
/// any read, so odd input never reaches the store).
pub fn is_credential(presented: &str) -> bool {
    presented
        .strip_prefix(CREDENTIAL_PREFIX)
        .is_some_and(|rest| {
            rest.len() == CREDENTIAL_CHARS && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// Whether a presented token looks like any GitHub token (`gho_`, `ghu_`,
/// …) rather than a gateway JWT or envelope token.
pub fn looks_like_github_token(presented: &str) -> bool {
    presented.len() > 4 && presented.starts_with("gh") && presented.as_bytes().get(3) == Some(&b'_')
}

/// The sign-in's id: the credential's hash. Its first 16 digits name it on
/// pages and in audit records.
pub fn credential_hash(credential: &str) -> String {
    sha256_hex(credential)
}

pub fn signin_key(hash: &str) -> String {
    format!("signin:{hash}")
}

pub fn signins_of_key(person_key: &str) -> String {
    format!("signins-of:{person_key}")
}

pub fn short_id(hash: &str) -> &str {
    hash.get(..16).unwrap_or(hash)
}

/// One sign-in: whose it is and which client took it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignIn {
    /// The principal as the IdP's token named it (kind, issuer, subject,
    /// email, name, groups, claims).
    pub principal: Value,
    pub client_id: String,
    pub scope: String,
    pub created_at: u64,
    pub expires_at: u64,
}

impl SignIn {
    pub fn live(&self, now: u64) -> bool {
        now < self.expires_at
    }
}

/// A person's sign-ins, for the devices list and for sign-out everywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInIndex {
    pub entries: Vec<SignInEntry>,
    /// The last writer's id: keeps each written value unique (cas.rs).
    #[serde(default)]
    pub w: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInEntry {
    pub hash: String,
    pub client_id: String,
    pub created_at: u64,
    pub expires_at: u64,
}

impl SignInIndex {
    /// Adds a sign-in, dropping ended ones; returns the hashes that fell out
    /// (beyond the bound), whose records the caller deletes.
    pub fn add(&mut self, entry: SignInEntry, now: u64) -> Vec<String> {
        self.entries
            .retain(|e| e.expires_at > now && e.hash != entry.hash);
        self.entries.push(entry);
        let excess = self.entries.len().saturating_sub(MAX_SIGNINS_PER_PERSON);
        self.entries.drain(..excess).map(|e| e.hash).collect()
    }

    pub fn remove(&mut self, short: &str) -> Option<SignInEntry> {
        let at = self
            .entries
            .iter()
            .position(|e| short_id(&e.hash) == short)?;
        Some(self.entries.remove(at))
    }
}

/// A known client's name for the devices list, from its OAuth client id.
pub fn client_name(client_id: &str) -> &str {
    match client_id {
        "01ab8ac9400c4e429b23" => "Visual Studio Code",
        "Ov23ctDVkRmgkPke0Mmm" => "GitHub Copilot CLI",
        "Iv1.b507a08c87ecfe98" => "GitHub Copilot language server",
        "copilot-jit-cli" => "copilot-jit command line",
        "" => "unnamed client",
        other => other,
    }
}

/// A GitHub-style numeric id for a person: stable, below 2^48 (exact in
/// JavaScript numbers), from issuer and subject.
pub fn numeric_id(issuer: &str, subject: &str) -> u64 {
    let key = copilot_jit_common::person_key(issuer, subject);
    u64::from_str_radix(&key[..12], 16).unwrap_or(0) + 1
}

/// A GitHub-style login (letters, digits, single hyphens): the e-mail's
/// local part, else the subject.
pub fn login_of(email: Option<&str>, subject: &str) -> String {
    let base = email
        .and_then(|e| e.split('@').next())
        .filter(|l| !l.is_empty())
        .unwrap_or(subject);
    let mut login = String::new();
    for c in base.chars() {
        if c.is_ascii_alphanumeric() {
            login.push(c);
        } else if !login.ends_with('-') && !login.is_empty() {
            login.push('-');
        }
    }
    let login = login.trim_end_matches('-');
    if login.is_empty() {
        "user".into()
    } else {
        login.chars().take(39).collect()
    }
}

/// The signed-in person as GitHub's `GET /user` answers (VS Code reads `id`
/// and `login`; the CLI also `email` and `name`).
pub fn github_user(principal: &Value, public_url: &str) -> Value {
    let text = |k: &str| principal.get(k).and_then(Value::as_str);
    let subject = text("subject").unwrap_or_default();
    let login = login_of(text("email"), subject);
    json!({
        "login": login,
        "id": numeric_id(text("issuer").unwrap_or_default(), subject),
        "node_id": format!("U_{}", short_id(&sha256_hex(subject))),
        "type": "User",
        "site_admin": false,
        "name": text("name"),
        "email": text("email"),
        "html_url": format!("{public_url}/access"),
        "url": format!("{public_url}/api/v3/user"),
    })
}

/// Unix seconds as RFC 3339 UTC (`2026-12-02T04:33:27Z`), as GitHub's API
/// writes dates (the Copilot CLI checks `assigned_date` is a string).
pub fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// `GET /api/v3/meta` on a GitHub Enterprise Server.
pub fn github_meta() -> Value {
    json!({
        "verifiable_password_authentication": false,
        "installed_version": "3.14.0",
    })
}

/// The page where a signed-in person asks for access.
pub fn access_page(public_url: &str) -> String {
    format!("{public_url}/access")
}

/// Copilot's 403 answer for a signed-in person without an active grant:
/// editors show `error_details.message` and offer `url`.
pub fn access_needed(scope: Option<&str>, public_url: &str) -> (String, Value) {
    let what = scope.map_or("Copilot".to_string(), |s| format!("Copilot {s}"));
    let message = format!(
        "You are signed in, but you have no active grant for {what}. Request access at {}; once it is approved, try again.",
        access_page(public_url)
    );
    let body = json!({
        "message": message,
        "error_details": {
            "title": "Copilot access needed",
            "message": message,
            "notification_id": crate::copilot::ACCESS_NOTIFICATION_ID,
            "url": access_page(public_url),
        },
        "can_signup_for_limited": false,
    });
    (message, body)
}

/// The GitHub API's 404, for what the gateway does not offer.
pub fn not_offered() -> Value {
    json!({
        "message": "Not Found",
        "documentation_url": "https://docs.github.com/rest",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_look_like_github_user_tokens() {
        let c = credential_from(&[61; CREDENTIAL_CHARS]);
        assert_eq!(c, format!("gho_{}", "z".repeat(CREDENTIAL_CHARS)));
        assert!(is_credential(&c));
        assert!(c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        assert!(!is_credential("gho_short"));
        assert!(!is_credential(&format!(
            "gho_{}",
            "-".repeat(CREDENTIAL_CHARS)
        )));
        assert!(!is_credential(&format!(
            "ghu_{}",
            "a".repeat(CREDENTIAL_CHARS)
        )));
        assert!(looks_like_github_token("ghu_abc"));
        assert!(!looks_like_github_token("eyJhbGciOi.x.y"));
    }

    #[test]
    fn only_the_hash_is_a_key() {
        let c = credential_from(&[7; CREDENTIAL_CHARS]);
        let key = signin_key(&credential_hash(&c));
        assert!(!key.contains(&c[4..]));
        assert_eq!(short_id(&credential_hash(&c)).len(), 16);
    }

    #[test]
    fn the_device_list_drops_ended_and_excess_sign_ins() {
        let entry = |hash: &str, expires_at| SignInEntry {
            hash: hash.into(),
            client_id: "c".into(),
            created_at: 0,
            expires_at,
        };
        let mut index = SignInIndex::default();
        assert!(index.add(entry("old", 10), 0).is_empty());
        index.add(entry("new", 100), 20);
        assert_eq!(index.entries.len(), 1, "ended sign-ins leave the list");
        let mut dropped = Vec::new();
        for i in 0..MAX_SIGNINS_PER_PERSON {
            dropped.extend(index.add(entry(&format!("h{i:02}"), 100), 20));
        }
        assert_eq!(dropped, vec!["new".to_string()]);
        assert!(index.remove("h00").is_some());
        assert!(index.remove("nope").is_none());
    }

    #[test]
    fn people_get_github_shaped_ids_and_logins() {
        assert_eq!(
            login_of(Some("alice.smith@example.com"), "x"),
            "alice-smith"
        );
        assert_eq!(login_of(None, "00u1_abc"), "00u1-abc");
        assert_eq!(login_of(Some("@x"), "--"), "user");
        let id = numeric_id("https://idp", "alice");
        assert!(id > 0 && id < (1 << 48) + 1);
        let user = github_user(
            &json!({"issuer": "https://idp", "subject": "alice", "email": "alice@example.com"}),
            "https://gw",
        );
        assert_eq!(user["login"], "alice");
        assert_eq!(user["id"], id);
        assert_eq!(user["email"], "alice@example.com");
    }

    #[test]
    fn dates_are_written_as_github_does() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_186_007), "2026-12-02T04:33:27Z");
    }

    #[test]
    fn the_access_needed_answer_links_the_request_page() {
        let (message, body) = access_needed(Some("chat"), "https://gw");
        assert!(message.contains("https://gw/access"), "{message}");
        assert_eq!(body["error_details"]["url"], "https://gw/access");
        assert_eq!(body["error_details"]["message"], message.as_str());
        assert_eq!(client_name("Ov23ctDVkRmgkPke0Mmm"), "GitHub Copilot CLI");
    }
}
