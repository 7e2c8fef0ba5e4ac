//! The token-minter component: mints and verifies gateway tokens.
//! Capabilities: wasi:config only (the signing key and issuer).

pub mod session;
pub mod token;

#[cfg(target_arch = "wasm32")]
mod bindings {
    use super::session::{SessionError, SessionKey};
    use super::token::{self, Claims, TokenError, TokenKey, AUDIENCE};
    use copilot_jit_common::unix_now as now;

    wit_bindgen::generate!({
        path: "../../wit",
        world: "token-minter",
        // The shared variable reader's types; nothing else is imported.
        with: {
            "wasi:config/store@0.2.0-draft-2024-09-27": copilot_jit_wasi::config::store,
        },
        generate_all,
    });

    use exports::copilot_jit::gateway::minter::{
        Guest, MintRequest, Minted, MinterError, TokenClaims,
    };

    fn variable(name: &str) -> Result<String, MinterError> {
        copilot_jit_wasi::config::required(name).map_err(|e| MinterError::Config(e.to_string()))
    }

    fn seed() -> Result<[u8; 32], MinterError> {
        copilot_jit_common::decode_seed(&variable("token_signing_key")?)
            .map_err(|e| MinterError::Config(format!("token_signing_key: {e}")))
    }

    fn issuer() -> Result<String, MinterError> {
        Ok(variable("public_url")?.trim_end_matches('/').to_string())
    }

    fn key() -> Result<TokenKey, MinterError> {
        Ok(TokenKey::new(seed()?, &issuer()?))
    }

    fn claims_for(req: MintRequest, issuer: String) -> Result<Claims, MinterError> {
        let now = now();
        if req.not_after <= now {
            return Err(MinterError::Expired);
        }
        Ok(Claims {
            iss: issuer,
            aud: AUDIENCE.to_string(),
            sub: req.subject,
            sis: req.issuer_of_subject,
            jti: token_id()?,
            gid: req.grant_id,
            scp: req.scopes,
            mdl: req.models,
            iat: now,
            exp: token::expiry(now, req.ttl_secs, req.not_after),
        })
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
            let claims = claims_for(req, key.issuer().to_string())?;
            let token = key.sign(&claims).map_err(from_token)?;
            Ok(Minted {
                token,
                claims: to_wit(claims),
            })
        }

        fn verify(token: String) -> Result<TokenClaims, MinterError> {
            key()?.verify(&token, now()).map(to_wit).map_err(from_token)
        }

        fn seal_session(req: MintRequest) -> Result<Minted, MinterError> {
            let key = SessionKey::from_seed(&seed()?);
            let chat = req.scopes.iter().any(|s| s == "chat");
            let claims = claims_for(req, issuer()?)?;
            Ok(Minted {
                token: key.seal(&claims, chat),
                claims: to_wit(claims),
            })
        }

        fn open_session(token: String) -> Result<TokenClaims, MinterError> {
            SessionKey::from_seed(&seed()?)
                .open(&token, now(), &issuer()?, AUDIENCE)
                .map(to_wit)
                .map_err(|e| match e {
                    SessionError::Expired => MinterError::Expired,
                    SessionError::Invalid(m) => MinterError::InvalidToken(m.to_string()),
                })
        }

        fn jwks() -> Result<String, MinterError> {
            Ok(key()?.jwks())
        }
    }

    export!(Component);
}
