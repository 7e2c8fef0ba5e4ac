//! The gateway's errors. Each kind owns its status and its code, so a code
//! cannot go out with a status it does not mean; the message is for the
//! caller, `detail` for the audit record only.

use copilot_jit_access_policy::Decision;
use serde_json::{json, Value};

use crate::ask::BadAsk;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadBody,
    BadJson,
    /// An access ask with a bad field (`field` names it).
    BadRequest,
    BadQuery,
    BadComment,
    BadTtl,
    Unauthenticated,
    TokenExpired,
    InvalidToken,
    InvalidGatewayToken,
    Forbidden,
    PolicyDenied,
    DurationExceedsPolicy,
    NotAnApprover,
    NotAnAuditor,
    ScopeNotGranted,
    ModelNotGranted,
    PromptBlocked,
    /// A Copilot call to be made with the caller's own seat, which is not
    /// usable: no GitHub account linked, the link broken, no Copilot seat.
    SeatUnavailable,
    /// A Copilot call whose grant is no longer approved: the credential no
    /// longer opens anything (403).
    GrantNotActive,
    /// The grant's captured groups are older than `groups_max_age_secs`:
    /// renew or sign in again (403).
    GroupsStale,
    /// A token asked for a grant that is not approved (yet or any more):
    /// a conflict with the grant's state (409).
    GrantNotActiveForTokens,
    /// Tokens for an exchanged grant come from the exchange only (403).
    ExchangedGrant,
    /// Only a granted, renewable request can be renewed (409).
    NotRenewable,
    NotFound,
    NoRecords,
    MethodNotAllowed,
    InvalidState,
    BodyTooLarge,
    Internal,
    UpstreamUnavailable,
    UpstreamFailed,
    UpstreamUnreadable,
    IdentityUnavailable,
    Busy,
    StorageUnavailable,
    PolicyIncomplete,
    PolicyUnavailable,
    MinterUnavailable,
    AuditUnavailable,
    AuditStorageUnavailable,
    GatewayMisconfigured,
    /// RFC 6749 §5.2 errors of the token exchange, in OAuth's own shape.
    OAuth(OAuthError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthError {
    UnsupportedGrantType,
    InvalidRequest,
    InvalidGrant,
    InvalidScope,
    AccessDenied,
    TemporarilyUnavailable,
}

impl OAuthError {
    pub fn code(self) -> &'static str {
        match self {
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::InvalidRequest => "invalid_request",
            OAuthError::InvalidGrant => "invalid_grant",
            OAuthError::InvalidScope => "invalid_scope",
            OAuthError::AccessDenied => "access_denied",
            OAuthError::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            OAuthError::AccessDenied => 403,
            OAuthError::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        use ErrorKind::*;
        match self {
            BadBody | BadJson | BadRequest | BadQuery | BadComment | BadTtl => 400,
            Unauthenticated | TokenExpired | InvalidToken | InvalidGatewayToken => 401,
            Forbidden
            | PolicyDenied
            | DurationExceedsPolicy
            | NotAnApprover
            | NotAnAuditor
            | ScopeNotGranted
            | ModelNotGranted
            | PromptBlocked
            | SeatUnavailable
            | GrantNotActive
            | GroupsStale
            | ExchangedGrant => 403,
            NotFound | NoRecords => 404,
            MethodNotAllowed => 405,
            InvalidState | NotRenewable | GrantNotActiveForTokens => 409,
            BodyTooLarge => 413,
            Internal => 500,
            UpstreamUnavailable | UpstreamFailed | UpstreamUnreadable => 502,
            IdentityUnavailable
            | Busy
            | StorageUnavailable
            | PolicyIncomplete
            | PolicyUnavailable
            | MinterUnavailable
            | AuditUnavailable
            | AuditStorageUnavailable
            | GatewayMisconfigured => 503,
            OAuth(e) => e.status(),
        }
    }

    pub fn code(self) -> &'static str {
        use ErrorKind::*;
        match self {
            BadBody => "bad_body",
            BadJson => "bad_json",
            BadRequest => "bad_request",
            BadQuery => "bad_query",
            BadComment => "bad_comment",
            BadTtl => "bad_ttl",
            Unauthenticated => "unauthenticated",
            TokenExpired => "token_expired",
            InvalidToken => "invalid_token",
            InvalidGatewayToken => "invalid_gateway_token",
            Forbidden => "forbidden",
            PolicyDenied => "policy_denied",
            DurationExceedsPolicy => "duration_exceeds_policy",
            NotAnApprover => "not_an_approver",
            NotAnAuditor => "not_an_auditor",
            ScopeNotGranted => "scope_not_granted",
            ModelNotGranted => "model_not_granted",
            PromptBlocked => "prompt_blocked",
            SeatUnavailable => "seat_unavailable",
            GrantNotActive | GrantNotActiveForTokens => "grant_not_active",
            GroupsStale => "groups_stale",
            ExchangedGrant | NotRenewable => "not_renewable",
            NotFound => "not_found",
            NoRecords => "no_records",
            MethodNotAllowed => "method_not_allowed",
            InvalidState => "invalid_state",
            BodyTooLarge => "body_too_large",
            Internal => "internal",
            UpstreamUnavailable => "upstream_unavailable",
            UpstreamFailed => "upstream_failed",
            UpstreamUnreadable => "upstream_unreadable",
            IdentityUnavailable => "identity_unavailable",
            Busy => "busy",
            StorageUnavailable => "storage_unavailable",
            PolicyIncomplete => "policy_incomplete",
            PolicyUnavailable => "policy_unavailable",
            MinterUnavailable => "minter_unavailable",
            AuditUnavailable => "audit_unavailable",
            AuditStorageUnavailable => "audit_storage_unavailable",
            GatewayMisconfigured => "gateway_misconfigured",
            OAuth(e) => e.code(),
        }
    }
}

/// An error answered as JSON.
#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    // Boxed: errors travel through every `?`, and JSON values are large.
    extra: Option<Box<Value>>,
    pub detail: Option<String>,
    /// A body in Copilot's error shape, sent instead of ours (clients of the
    /// token envelope show `error_details.message`).
    copilot_body: Option<Box<Value>>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            extra: None,
            detail: None,
            copilot_body: None,
        }
    }

    pub fn oauth(error: OAuthError, description: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::OAuth(error), description)
    }

    /// A 403 that names the deciding policies and explains the decision.
    pub fn denied(kind: ErrorKind, decision: &Decision, message: impl Into<String>) -> Self {
        ApiError::new(kind, message)
            .with(json!({
                "policy_ids": decision.policy_ids,
                "explanation": decision.explain(),
            }))
            .detail(format!("policy: {}", decision.explain()))
    }

    /// `decision` when it allows; else the denial of `kind`, with the
    /// message `message` makes of the decision.
    pub fn unless_allowed(
        decision: Decision,
        kind: ErrorKind,
        message: impl FnOnce(&Decision) -> String,
    ) -> Result<Decision, ApiError> {
        if decision.allowed {
            Ok(decision)
        } else {
            let message = message(&decision);
            Err(ApiError::denied(kind, &decision, message))
        }
    }

    /// Members added to `error` beside code and message.
    pub fn with(mut self, extra: Value) -> Self {
        self.extra = Some(Box::new(extra));
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Sends `body` (Copilot's error shape) instead of ours.
    pub fn in_copilot_shape(mut self, body: Value) -> Self {
        self.copilot_body = Some(Box::new(body));
        self
    }

    /// As `in_copilot_shape`, unless the error already has a Copilot body
    /// (a sign-in's answer names the request page).
    pub fn or_copilot_shape(self, body: Value) -> Self {
        if self.copilot_body.is_some() {
            self
        } else {
            self.in_copilot_shape(body)
        }
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// What the audit record gives as the reason.
    pub fn reason(&self) -> String {
        self.detail.clone().unwrap_or_else(|| self.message.clone())
    }

    pub fn body(&self) -> Value {
        if let Some(body) = &self.copilot_body {
            return (**body).clone();
        }
        if let ErrorKind::OAuth(e) = self.kind {
            // RFC 6749 §5.2: token-exchange clients read these two fields.
            return json!({"error": e.code(), "error_description": self.message});
        }
        let mut error = json!({"code": self.kind.code(), "message": self.message});
        if let (Some(Value::Object(extra)), Some(obj)) =
            (self.extra.as_deref(), error.as_object_mut())
        {
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone());
            }
        }
        json!({ "error": error })
    }
}

impl From<BadAsk> for ApiError {
    fn from(b: BadAsk) -> Self {
        ApiError::new(ErrorKind::BadRequest, b.message).with(json!({"field": b.field}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use copilot_jit_access_policy::Requirements;

    #[test]
    fn our_errors_carry_code_message_and_extra_members() {
        let e = ApiError::new(ErrorKind::ScopeNotGranted, "no chat")
            .with(json!({"how_to_request_access": {"then": "ask"}}))
            .detail("for the audit");
        assert_eq!(e.status(), 403);
        let body = e.body();
        assert_eq!(body["error"]["code"], "scope_not_granted");
        assert_eq!(body["error"]["message"], "no chat");
        assert_eq!(body["error"]["how_to_request_access"]["then"], "ask");
        assert!(!body.to_string().contains("for the audit"), "detail leaked");
        assert_eq!(e.reason(), "for the audit");
        assert_eq!(ApiError::new(ErrorKind::NotFound, "gone").reason(), "gone");
    }

    #[test]
    fn one_code_keeps_the_status_its_situation_means() {
        assert_eq!(ErrorKind::GrantNotActive.status(), 403);
        assert_eq!(ErrorKind::GrantNotActiveForTokens.status(), 409);
        assert_eq!(
            ErrorKind::GrantNotActiveForTokens.code(),
            "grant_not_active"
        );
        assert_eq!(ErrorKind::ExchangedGrant.status(), 403);
        assert_eq!(ErrorKind::NotRenewable.status(), 409);
        assert_eq!(ErrorKind::BodyTooLarge.status(), 413);
        assert_eq!(ErrorKind::UpstreamUnavailable.status(), 502);
        assert_eq!(ErrorKind::AuditUnavailable.status(), 503);
    }

    #[test]
    fn oauth_errors_use_the_rfc_shape() {
        let e = ApiError::oauth(OAuthError::InvalidScope, "this run may not use chat")
            .with(json!({"policy_ids": ["p"]}));
        assert_eq!(e.status(), 400);
        assert_eq!(
            e.body(),
            json!({"error": "invalid_scope", "error_description": "this run may not use chat"})
        );
        assert_eq!(
            ApiError::oauth(OAuthError::AccessDenied, "no").status(),
            403
        );
        assert_eq!(
            ApiError::oauth(OAuthError::TemporarilyUnavailable, "later").status(),
            503
        );
    }

    #[test]
    fn a_denial_names_the_deciding_policies() {
        let decision = Decision {
            allowed: false,
            policy_ids: vec!["contractors-no-preview".into()],
            errors: Vec::new(),
            requirements: Requirements::default(),
        };
        let e = ApiError::denied(ErrorKind::PolicyDenied, &decision, "not this model");
        let body = e.body();
        assert_eq!(e.status(), 403);
        assert_eq!(body["error"]["policy_ids"][0], "contractors-no-preview");
        assert!(body["error"]["explanation"]
            .as_str()
            .is_some_and(|x| x.contains("contractors-no-preview")));
        assert!(e.reason().starts_with("policy: "));
    }

    #[test]
    fn only_a_refusal_becomes_an_error() {
        let decision = |allowed| Decision {
            allowed,
            policy_ids: vec!["p".into()],
            errors: Vec::new(),
            requirements: Requirements::default(),
        };
        let kept = ApiError::unless_allowed(decision(true), ErrorKind::NotAnAuditor, |_| {
            unreachable!("no message for an allowed decision")
        });
        assert!(kept.is_ok_and(|d| d.allowed));
        let refused = ApiError::unless_allowed(decision(false), ErrorKind::NotAnAuditor, |d| {
            format!("no: {}", d.explain())
        })
        .unwrap_err();
        assert_eq!(refused.kind, ErrorKind::NotAnAuditor);
        assert_eq!(refused.message, "no: forbidden by p");
        assert_eq!(refused.body()["error"]["policy_ids"][0], "p");
    }

    #[test]
    fn a_copilot_shaped_body_replaces_ours() {
        let e = ApiError::new(ErrorKind::GrantNotActive, "your grant is revoked")
            .in_copilot_shape(json!({"message": "your grant is revoked"}));
        assert_eq!(e.body(), json!({"message": "your grant is revoked"}));
        assert_eq!(e.status(), 403);
    }

    #[test]
    fn a_bad_ask_names_its_field() {
        let e = ApiError::from(BadAsk {
            field: "scopes",
            message: "ask for at least one scope".into(),
        });
        assert_eq!(e.status(), 400);
        assert_eq!(e.body()["error"]["field"], "scopes");
    }
}
