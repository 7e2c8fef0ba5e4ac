//! The token-minter component: mints and verifies gateway tokens.
//! Capabilities: wasi:config only (the signing key and issuer).

pub mod token;

#[cfg(target_arch = "wasm32")]
mod bindings {
    use super::token::{self, Claims, TokenError, TokenKey, AUDIENCE};
    use copilot_jit_common::unix_now as now;

    wit_bindgen::generate!({
        path: "../../wit",
        world: "token-minter",
        generate_all,
    });

    use exports::copilot_jit::gateway::minter::{
        Guest, MintRequest, Minted, MinterError, TokenClaims,
    };
    use wasi::config::store as config;

    fn variable(name: &str) -> Result<String, MinterError> {
        match config::get(name) {
            Ok(Some(v)) if !v.trim().is_empty() => Ok(v),
            Ok(_) => Err(MinterError::Config(format!("variable {name} is not set"))),
            Err(_) => Err(MinterError::Config(format!(
                "variable {name} cannot be read"
            ))),
        }
    }

    fn key() -> Result<TokenKey, MinterError> {
        let seed = copilot_jit_common::decode_seed(&variable("token_signing_key")?)
            .map_err(|e| MinterError::Config(format!("token_signing_key: {e}")))?;
        Ok(TokenKey::new(
            seed,
            variable("public_url")?.trim_end_matches('/'),
        ))
    }

    fn from_token(e: TokenError) -> MinterError {
        match e {
            TokenError::Config(m) => MinterError::Config(m),
            TokenError::Invalid(m) => MinterError::InvalidToken(m),
            TokenError::Expired => MinterError::Expired,
        }
    }

    fn to_wit(c: Claims) -> TokenClaims {
        TokenClaims {
            token_id: c.jti,
            grant_id: c.gid,
            subject: c.sub,
            issuer_of_subject: c.sis,
            scopes: c.scp,
            models: c.mdl,
            issued_at: c.iat,
            expires_at: c.exp,
        }
    }

    fn token_id() -> Result<String, MinterError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| MinterError::Config(e.to_string()))?;
        Ok(hex::encode(bytes))
    }

    struct Component;

    impl Guest for Component {
        fn mint(req: MintRequest) -> Result<Minted, MinterError> {
            let key = key()?;
            let now = now();
            if req.not_after <= now {
                return Err(MinterError::Expired);
            }
            let claims = Claims {
                iss: key.issuer().to_string(),
                aud: AUDIENCE.to_string(),
                sub: req.subject,
                sis: req.issuer_of_subject,
                jti: token_id()?,
                gid: req.grant_id,
                scp: req.scopes,
                mdl: req.models,
                iat: now,
                exp: token::expiry(now, req.ttl_secs, req.not_after),
            };
            let token = key.sign(&claims).map_err(from_token)?;
            Ok(Minted {
                token,
                claims: to_wit(claims),
            })
        }

        fn verify(token: String) -> Result<TokenClaims, MinterError> {
            key()?.verify(&token, now()).map(to_wit).map_err(from_token)
        }

        fn jwks() -> Result<String, MinterError> {
            Ok(key()?.jwks())
        }
    }

    export!(Component);
}
