//! Session tokens in Copilot's own format: `key=value;…:<hex HMAC>`.
//! Clients split them on `:` and `;` to read fields (`tid`, `exp`, `sku`,
//! `chat`); only the gateway verifies the MAC. Free-text values (subject,
//! issuer, lists) are base64url so they never contain `;`, `:` or `=`.

use crate::token::Claims;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    Invalid(&'static str),
    Expired,
}

pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// Derived from the token signing seed: no second secret to manage, and
    /// rotating the signing key rotates this one.
    pub fn from_seed(seed: &[u8; 32]) -> SessionKey {
        let mut h = Sha256::new();
        h.update(b"copilot-jit/session-mac/v1");
        h.update(seed);
        SessionKey(h.finalize().into())
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; a 32-byte key never fails.
        <HmacSha256 as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }

    pub fn seal(&self, c: &Claims, chat: bool) -> String {
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s.as_bytes());
        let fields = format!(
            "tid={};exp={};iat={};sku=copilot_jit;st=dotcom;chat={};8kp=1;gid={};sub={};sis={};scp={};mdl={}",
            c.jti,
            c.exp,
            c.iat,
            u8::from(chat),
            b64(&c.gid),
            b64(&c.sub),
            b64(&c.sis),
            b64(&c.scp.join(",")),
            b64(&c.mdl.join(",")),
        );
        let mut mac = self.mac();
        mac.update(fields.as_bytes());
        format!("{fields}:{}", hex::encode(mac.finalize().into_bytes()))
    }

    pub fn open(
        &self,
        token: &str,
        now: u64,
        issuer: &str,
        audience: &str,
    ) -> Result<Claims, SessionError> {
        if token.len() > 8192 {
            return Err(SessionError::Invalid("token too large"));
        }
        let (fields, tag) = token
            .rsplit_once(':')
            .ok_or(SessionError::Invalid("no MAC"))?;
        let tag = hex::decode(tag).map_err(|_| SessionError::Invalid("MAC is not hex"))?;
        let mut mac = self.mac();
        mac.update(fields.as_bytes());
        mac.verify_slice(&tag)
            .map_err(|_| SessionError::Invalid("bad MAC"))?;
        let get = |key: &str| {
            fields
                .split(';')
                .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
                .ok_or(SessionError::Invalid("missing field"))
        };
        let text = |key: &str| -> Result<String, SessionError> {
            let bytes = URL_SAFE_NO_PAD
                .decode(get(key)?)
                .map_err(|_| SessionError::Invalid("field is not base64url"))?;
            String::from_utf8(bytes).map_err(|_| SessionError::Invalid("field is not UTF-8"))
        };
        let number = |key: &str| -> Result<u64, SessionError> {
            get(key)?
                .parse()
                .map_err(|_| SessionError::Invalid("field is not a number"))
        };
        let list = |key: &str| -> Result<Vec<String>, SessionError> {
            Ok(text(key)?
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect())
        };
        let claims = Claims {
            iss: issuer.to_string(),
            aud: audience.to_string(),
            sub: text("sub")?,
            sis: text("sis")?,
            jti: get("tid")?.to_string(),
            gid: text("gid")?,
            scp: list("scp")?,
            mdl: list("mdl")?,
            iat: number("iat")?,
            exp: number("exp")?,
        };
        if claims.exp <= now {
            return Err(SessionError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            iss: "http://gw".into(),
            aud: "copilot-jit".into(),
            sub: "alice@example.com".into(),
            sis: "https://idp:8443/realms/a;b=c".into(),
            jti: "t1".into(),
            gid: "req_1".into(),
            scp: vec!["chat".into(), "completions".into()],
            mdl: vec![],
            iat: 100,
            exp: 200,
        }
    }

    #[test]
    fn sessions_round_trip_and_parse_like_copilot_tokens() {
        let key = SessionKey::from_seed(&[9; 32]);
        let token = key.seal(&claims(), true);
        assert_eq!(token.matches(':').count(), 1, "{token}");
        let fields: Vec<(&str, &str)> = token
            .split(':')
            .next()
            .unwrap()
            .split(';')
            .map(|f| f.split_once('=').expect("key=value"))
            .collect();
        assert!(fields.contains(&("tid", "t1")) && fields.contains(&("chat", "1")));
        assert_eq!(
            key.open(&token, 150, "http://gw", "copilot-jit").unwrap(),
            claims()
        );
        assert_eq!(
            key.open(&token, 200, "http://gw", "copilot-jit"),
            Err(SessionError::Expired)
        );
    }

    #[test]
    fn forged_or_foreign_sessions_are_refused() {
        let key = SessionKey::from_seed(&[9; 32]);
        let token = key.seal(&claims(), true);
        let other = SessionKey::from_seed(&[8; 32]);
        assert!(other.open(&token, 150, "i", "a").is_err());
        let longer = token.replace("exp=200", "exp=999");
        assert!(key.open(&longer, 150, "i", "a").is_err());
        assert!(key.open("tid=x;exp=1", 0, "i", "a").is_err());
        assert!(key.open("tid=x:zz", 0, "i", "a").is_err());
    }
}
