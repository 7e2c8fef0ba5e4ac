//! The gateway's Spin variables and their defaults. Read through a lookup
//! function, so the edge passes `wasi:config` and tests pass a map.

use copilot_jit_access_policy::SeatMode;

use crate::error::{ApiError, ErrorKind};
use crate::vault::VaultKeys;

/// A pipeline or requester token's lifetime when the ask names none.
const DEFAULT_TOKEN_TTL_SECS: u64 = 900;
/// The envelope's Copilot-shaped token lifetime.
const DEFAULT_COPILOT_TOKEN_TTL_SECS: u64 = 1800;
/// Group memberships captured at request, renewal or sign-in are trusted
/// this long by default: eight hours, the longest grant the default policy
/// allows, so a grant never outlives its requester's groups unchecked.
const DEFAULT_GROUPS_MAX_AGE_SECS: u64 = 28_800;
/// Most bytes a masked stream holds back by default.
const DEFAULT_HOLD_BACK_BYTES: u32 = 4096;

/// A service the gateway calls, with the variable that moves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// GitHub's API: the Copilot token exchange, `/user`.
    GitHubApi,
    /// GitHub's web host: the device flow and token endpoint people link
    /// their accounts with.
    GitHubWeb,
    /// Copilot's API: chat, models, embeddings, responses, messages.
    CopilotApi,
    /// Copilot's completions proxy.
    CopilotProxy,
    /// Copilot's telemetry service.
    CopilotTelemetry,
}

impl Upstream {
    fn variable(self) -> &'static str {
        match self {
            Upstream::GitHubApi => "github_api_url",
            Upstream::GitHubWeb => "github_url",
            Upstream::CopilotApi => "copilot_api_url",
            Upstream::CopilotProxy => "copilot_proxy_url",
            Upstream::CopilotTelemetry => "copilot_telemetry_url",
        }
    }

    fn default_url(self) -> &'static str {
        match self {
            Upstream::GitHubApi => "https://api.github.com",
            Upstream::GitHubWeb => "https://github.com",
            Upstream::CopilotApi => "https://api.githubcopilot.com",
            Upstream::CopilotProxy => "https://copilot-proxy.githubusercontent.com",
            Upstream::CopilotTelemetry => "https://copilot-telemetry.githubusercontent.com",
        }
    }
}

/// What masking needs from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskingSettings {
    pub fingerprint_key: String,
    pub max_hold_back: u32,
}

pub struct Settings<L: Fn(&str) -> Option<String>> {
    lookup: L,
}

impl<L: Fn(&str) -> Option<String>> Settings<L> {
    /// `lookup` returns a variable's value, `None` when unset or blank.
    pub fn new(lookup: L) -> Self {
        Settings { lookup }
    }

    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    /// The URL clients use, without a trailing `/`.
    pub fn public_url(&self) -> String {
        self.get("public_url")
            .unwrap_or_else(|| "http://127.0.0.1:3000".into())
            .trim_end_matches('/')
            .to_string()
    }

    /// A service's base URL, without a trailing `/`.
    pub fn upstream(&self, upstream: Upstream) -> String {
        self.get(upstream.variable())
            .unwrap_or_else(|| upstream.default_url().to_string())
            .trim_end_matches('/')
            .to_string()
    }

    /// The GitHub token of the shared Copilot seat (service identities).
    pub fn upstream_github_token(&self) -> Option<String> {
        self.get("upstream_github_token").filter(|t| !t.is_empty())
    }

    /// The shared seat's GitHub login, when set (else asked of GitHub).
    pub fn upstream_github_login(&self) -> Option<String> {
        self.get("upstream_github_login").filter(|t| !t.is_empty())
    }

    /// Whose seat a call uses when the policy names none: `own-seat` unless
    /// `upstream_mode` says `shared-seat`; any other value is refused.
    pub fn upstream_mode(&self) -> Result<SeatMode, ApiError> {
        match self.get("upstream_mode") {
            None => Ok(SeatMode::OwnSeat),
            Some(v) if v.trim().is_empty() => Ok(SeatMode::OwnSeat),
            Some(v) => SeatMode::parse(&v).ok_or_else(|| {
                ApiError::new(
                    ErrorKind::GatewayMisconfigured,
                    "the upstream mode is not configured",
                )
                .detail("variable upstream_mode must be own-seat or shared-seat")
            }),
        }
    }

    /// The OAuth client the gateway links GitHub accounts as.
    pub fn github_client_id(&self) -> String {
        self.get("github_oauth_client_id")
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| crate::seat::DEFAULT_CLIENT_ID.to_string())
    }

    /// Only for a client of the organisation's own that needs one to refresh.
    pub fn github_client_secret(&self) -> Option<String> {
        self.get("github_oauth_client_secret")
            .filter(|c| !c.is_empty())
    }

    pub fn github_oauth_scope(&self) -> String {
        self.get("github_oauth_scope")
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| crate::seat::DEFAULT_SCOPE.to_string())
    }

    /// The vault's keys: `vault_key` seals, `vault_previous_keys` still open.
    pub fn vault_keys(&self) -> Result<VaultKeys, ApiError> {
        let misconfigured = |detail: String| {
            ApiError::new(
                ErrorKind::GatewayMisconfigured,
                "the credential vault is not configured",
            )
            .detail(detail)
        };
        let current = self
            .get("vault_key")
            .filter(|k| !k.is_empty())
            .ok_or_else(|| misconfigured("variable vault_key is not set".into()))?;
        VaultKeys::parse(&current, self.get("vault_previous_keys").as_deref())
            .map_err(misconfigured)
    }

    /// Lifetime of a requester's gateway token; a value that is not a number
    /// falls back to the default.
    pub fn token_ttl_secs(&self) -> u64 {
        self.number("token_ttl_secs")
            .unwrap_or(DEFAULT_TOKEN_TTL_SECS)
    }

    pub fn copilot_token_ttl_secs(&self) -> u64 {
        self.number("copilot_token_ttl_secs")
            .unwrap_or(DEFAULT_COPILOT_TOKEN_TTL_SECS)
    }

    /// How long a device-flow sign-in lasts (a working day by default).
    pub fn signin_ttl_secs(&self) -> u64 {
        self.number("signin_ttl_secs")
            .filter(|s| *s > 0)
            .unwrap_or(crate::signin::DEFAULT_SIGNIN_TTL_SECS)
    }

    /// How long a Copilot call trusts group memberships captured earlier
    /// (at request, renewal or sign-in) before it asks for fresh ones.
    /// Unreadable or zero: calls are refused (fail closed).
    pub fn groups_max_age_secs(&self) -> Result<u64, ApiError> {
        match self.get("groups_max_age_secs") {
            None => Ok(DEFAULT_GROUPS_MAX_AGE_SECS),
            Some(v) if v.trim().is_empty() => Ok(DEFAULT_GROUPS_MAX_AGE_SECS),
            Some(v) => v.trim().parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                ApiError::new(
                    ErrorKind::GatewayMisconfigured,
                    "how long group memberships are trusted is not configured",
                )
                .detail("variable groups_max_age_secs must be a positive number of seconds")
            }),
        }
    }

    /// The IdP the pages send people to (the issuer the validator trusts).
    pub fn oidc_issuer(&self) -> Option<String> {
        self.get("oidc_issuer")
            .map(|i| i.trim_end_matches('/').to_string())
            .filter(|i| !i.is_empty())
    }

    pub fn oidc_issuer_origin(&self) -> String {
        self.get("oidc_issuer_origin").unwrap_or_default()
    }

    /// The gateway's client id at the IdP: `oidc_client_id`, else the first
    /// accepted audience (ID tokens carry the client id as `aud`).
    pub fn oidc_client_id(&self) -> String {
        self.get("oidc_client_id")
            .filter(|c| !c.is_empty())
            .or_else(|| {
                self.get("oidc_audience")
                    .and_then(|a| a.split(',').next().map(|s| s.trim().to_string()))
            })
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "copilot-jit".into())
    }

    /// The client secret; without one the pages cannot sign anyone in.
    pub fn oidc_client_secret(&self) -> Option<String> {
        self.get("oidc_client_secret").filter(|s| !s.is_empty())
    }

    fn number(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(|v| v.parse().ok())
    }

    /// The issuer whose workload tokens may be exchanged (none: no run may).
    pub fn github_actions_issuer(&self) -> String {
        self.get("github_actions_issuer").unwrap_or_default()
    }

    /// The approvers' webhook (Slack-compatible): the origin is public, the
    /// path is the secret. `None` unless both are set.
    pub fn webhook_url(&self) -> Option<String> {
        let path = self.get("notify_webhook_path")?;
        let origin = self.get("notify_webhook_origin")?;
        Some(format!(
            "{}/{}",
            origin.trim_end_matches('/'),
            path.trim_start_matches('/')
        ))
    }

    pub fn telemetry_forward(&self) -> bool {
        self.get("telemetry_forward").as_deref() == Some("true")
    }

    /// Whether stream frames that cannot be inspected are dropped (`"drop"`)
    /// rather than ending the stream (the default, `"fail"`).
    pub fn drop_unparseable_frames(&self) -> bool {
        self.get("masking_unparseable_frames").as_deref() == Some("drop")
    }

    /// The fingerprint key and hold-back; masking without a key, or with a
    /// hold-back that is not a number, is refused rather than guessed.
    pub fn masking(&self) -> Result<MaskingSettings, ApiError> {
        let misconfigured = |detail: &str| {
            ApiError::new(ErrorKind::GatewayMisconfigured, "masking is not configured")
                .detail(detail)
        };
        let fingerprint_key = self
            .get("masking_fingerprint_key")
            .ok_or_else(|| misconfigured("variable masking_fingerprint_key is not set"))?;
        let max_hold_back = match self.get("masking_hold_back_bytes") {
            None => DEFAULT_HOLD_BACK_BYTES,
            Some(v) => v.trim().parse::<u32>().map_err(|_| {
                misconfigured("variable masking_hold_back_bytes must be a whole number")
            })?,
        };
        Ok(MaskingSettings {
            fingerprint_key,
            max_hold_back,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Settings<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::new(move |name: &str| map.get(name).cloned())
    }

    #[test]
    fn urls_lose_their_trailing_slash_and_have_defaults() {
        let s = settings(&[
            ("public_url", "https://gw.example.com/"),
            ("copilot_api_url", "http://127.0.0.1:9000//"),
        ]);
        assert_eq!(s.public_url(), "https://gw.example.com");
        assert_eq!(s.upstream(Upstream::CopilotApi), "http://127.0.0.1:9000");
        assert_eq!(
            s.upstream(Upstream::CopilotProxy),
            "https://copilot-proxy.githubusercontent.com"
        );
        assert_eq!(settings(&[]).public_url(), "http://127.0.0.1:3000");
    }

    #[test]
    fn the_webhook_needs_origin_and_path() {
        let s = settings(&[
            ("notify_webhook_origin", "https://hooks.slack.com/"),
            ("notify_webhook_path", "/services/T0/B0/secret"),
        ]);
        assert_eq!(
            s.webhook_url().as_deref(),
            Some("https://hooks.slack.com/services/T0/B0/secret")
        );
        let no_path = settings(&[("notify_webhook_origin", "https://hooks.slack.com")]);
        assert_eq!(no_path.webhook_url(), None);
    }

    #[test]
    fn lifetimes_fall_back_to_their_defaults() {
        assert_eq!(settings(&[]).token_ttl_secs(), 900);
        assert_eq!(settings(&[("token_ttl_secs", "60")]).token_ttl_secs(), 60);
        assert_eq!(
            settings(&[("token_ttl_secs", "soon")]).token_ttl_secs(),
            900
        );
        assert_eq!(settings(&[]).copilot_token_ttl_secs(), 1800);
    }

    #[test]
    fn masking_without_a_key_or_with_a_bad_hold_back_is_refused() {
        let e = settings(&[]).masking().unwrap_err();
        assert_eq!((e.status(), e.kind.code()), (503, "gateway_misconfigured"));
        let e = settings(&[
            ("masking_fingerprint_key", "k"),
            ("masking_hold_back_bytes", "lots"),
        ])
        .masking()
        .unwrap_err();
        assert!(e.reason().contains("masking_hold_back_bytes"));
        let ok = settings(&[
            ("masking_fingerprint_key", "k"),
            ("masking_hold_back_bytes", " 512 "),
        ])
        .masking()
        .unwrap();
        assert_eq!(ok.max_hold_back, 512);
        let default = settings(&[("masking_fingerprint_key", "k")])
            .masking()
            .unwrap();
        assert_eq!(default.max_hold_back, 4096);
    }

    #[test]
    fn the_seat_settings_have_defaults_and_are_checked() {
        let none = settings(&[]);
        assert_eq!(none.upstream_mode().unwrap(), SeatMode::OwnSeat);
        assert_eq!(none.github_client_id(), "Iv1.b507a08c87ecfe98");
        assert_eq!(none.upstream(Upstream::GitHubWeb), "https://github.com");
        assert_eq!(none.github_oauth_scope(), "read:user");
        assert!(none.github_client_secret().is_none());
        assert_eq!(none.upstream_github_token(), None);
        let e = none.vault_keys().unwrap_err();
        assert_eq!(e.status(), 503);
        let shared = settings(&[("upstream_mode", "shared-seat")]);
        assert_eq!(shared.upstream_mode().unwrap(), SeatMode::SharedSeat);
        assert!(settings(&[("upstream_mode", "both")])
            .upstream_mode()
            .is_err());
        let key = "0101010101010101010101010101010101010101010101010101010101010101";
        assert!(settings(&[("vault_key", key)]).vault_keys().is_ok());
        assert!(settings(&[("vault_key", "x")]).vault_keys().is_err());
    }

    #[test]
    fn switches_are_on_only_when_spelled_out() {
        assert!(settings(&[("telemetry_forward", "true")]).telemetry_forward());
        assert!(!settings(&[("telemetry_forward", "yes")]).telemetry_forward());
        assert!(settings(&[("masking_unparseable_frames", "drop")]).drop_unparseable_frames());
        assert!(!settings(&[("masking_unparseable_frames", "fail")]).drop_unparseable_frames());
    }
}
