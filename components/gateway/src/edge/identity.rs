//! Who is calling: OIDC callers (people, agents, pipelines), holders of a
//! gateway token and its grant, auditors and approvers.

use copilot_jit_access_policy::{Action, Resource};
use serde_json::json;

use super::access_api::store_error;
use super::copilot_jit::gateway::grants::{self, AccessRequest, RequestStatus};
use super::copilot_jit::gateway::types::Principal;
use super::copilot_jit::gateway::{auth, minter};
use super::grant_json::status_name;
use super::policy::{self, clock_context, facts};
use super::wasi_http::settings;
use super::Ctx;
use crate::copilot::{self, how_to_request};
use crate::error::{ApiError, ErrorKind};
use crate::group_age;
use copilot_jit_common::unix_now as now;

/// Stable names for the audit record (and SIEM queries), not Rust debug text.
fn failure_name(f: auth::AuthFailure) -> &'static str {
    use auth::AuthFailure::*;
    match f {
        Malformed => "malformed",
        UnsupportedAlgorithm => "unsupported-algorithm",
        UnknownIssuer => "unknown-issuer",
        UnknownKey => "unknown-key",
        BadSignature => "bad-signature",
        Expired => "expired",
        NotYetValid => "not-yet-valid",
        WrongAudience => "wrong-audience",
        KeysUnavailable => "keys-unavailable",
    }
}

/// The failed check and its detail, for the audit record only.
pub(super) fn failure_detail(e: &auth::AuthError) -> String {
    format!("{}: {}", failure_name(e.failure), e.detail)
}

/// The caller of the access API: an OIDC token, or a person's live
/// device-flow sign-in (what the `copilot-jit` command holds), which stands
/// for the person it was issued to, with the groups they had then.
pub(super) fn authenticate(ctx: &mut Ctx) -> Result<Principal, ApiError> {
    if let Some(presented) = ctx
        .bearer()
        .filter(|t| crate::signin::looks_like_github_token(t))
    {
        let (_, record) = super::signin::signed_in(ctx, &presented)?;
        ctx.groups_confirmed_at = Some(record.created_at);
        return Ok(super::signin::principal_from_json(&record.principal));
    }
    authenticate_oidc(ctx)
}

/// The caller, from their OIDC token only: for what a sign-in must not do
/// itself (sign further devices in, read the audit trail).
pub(super) fn authenticate_oidc(ctx: &mut Ctx) -> Result<Principal, ApiError> {
    let token = ctx.bearer().ok_or_else(|| {
        ApiError::new(
            ErrorKind::Unauthenticated,
            "send an OIDC token as 'Authorization: Bearer <token>'",
        )
    })?;
    let principal = auth::authenticate(&token).map_err(|e| {
        let refusal = match e.failure {
            auth::AuthFailure::KeysUnavailable => ApiError::new(
                ErrorKind::IdentityUnavailable,
                "the identity provider's keys cannot be fetched",
            ),
            auth::AuthFailure::Expired => {
                ApiError::new(ErrorKind::TokenExpired, "the identity token has expired")
            }
            _ => ApiError::new(
                ErrorKind::InvalidToken,
                "the identity token was not accepted",
            ),
        };
        refusal.detail(failure_detail(&e))
    })?;
    ctx.groups_confirmed_at = Some(issued_at(&principal).unwrap_or_else(now));
    ctx.trace.principal = Some(principal.clone());
    Ok(principal)
}

/// When the IdP issued the token `principal` came from (`iat`), if it
/// says and that is not in the future.
fn issued_at(principal: &Principal) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(&principal.claims_json)
        .ok()?
        .get("iat")?
        .as_u64()
        .filter(|iat| *iat <= now())
}

/// A call under `grant` is decided with the groups the grant captured;
/// past `groups_max_age_secs` they are not trusted and the call is refused
/// (in Copilot's shape, which editors show) until a renewal or a new
/// sign-in has the IdP vouch for them again.
pub(super) fn groups_still_trusted(grant: &AccessRequest) -> Result<(), ApiError> {
    let s = settings();
    let max_age = s.groups_max_age_secs()?;
    let Some(age) = group_age::stale_age(grant.groups_confirmed_at, now(), max_age) else {
        return Ok(());
    };
    let (message, body) =
        group_age::stale_refusal(age, max_age, &crate::signin::access_page(&s.public_url()));
    Err(ApiError::new(ErrorKind::GroupsStale, message)
        .detail(format!(
            "groups confirmed {age} s ago, trusted for {max_age} s"
        ))
        .in_copilot_shape(body))
}

pub(super) fn same_person(p: &Principal, r: &AccessRequest) -> bool {
    p.subject == r.requester.subject && p.issuer == r.requester.issuer
}

/// The caller, if the policy lets them read the audit trail.
pub(super) fn require_auditor(ctx: &mut Ctx) -> Result<Principal, ApiError> {
    let principal = authenticate_oidc(ctx)?;
    let d = policy::decide(
        &principal,
        Action::ReadAudit,
        &Resource::AuditTrail,
        json!({}),
    )?;
    ctx.trace.policy_ids = d.policy_ids.clone();
    ApiError::unless_allowed(d, ErrorKind::NotAnAuditor, |_| {
        "the audit trail is for auditors".into()
    })?;
    Ok(principal)
}

/// Whether `principal` may approve (and so decide) `request` now.
pub(super) fn may_decide(principal: &Principal, request: &AccessRequest) -> Result<bool, ApiError> {
    Ok(policy::decide(
        principal,
        Action::Approve,
        &Resource::AccessRequest(facts(request)),
        clock_context(json!({"comment": ""})),
    )?
    .allowed)
}

/// A verified gateway token and the grant behind it, still active.
pub(super) struct Authorized {
    pub claims: minter::TokenClaims,
    pub grant: AccessRequest,
}

/// Checks what a Copilot client presents: a gateway JWT, or the Copilot-shaped
/// token string from the envelope that carries one. The signature is checked
/// without storage; the grant is read so revocation takes effect at once.
pub(super) fn authorize(ctx: &mut Ctx) -> Result<Authorized, ApiError> {
    authorize_for(ctx, None)
}

/// How to get access, for refusals of Copilot calls.
fn how_to() -> serde_json::Value {
    how_to_request(&settings().public_url())
}

/// As `authorize`, for a call that needs `scope`: a device-flow sign-in
/// credential opens the person's active grant for it, looked up now.
pub(super) fn authorize_for(ctx: &mut Ctx, scope: Option<&str>) -> Result<Authorized, ApiError> {
    let presented = ctx.bearer().ok_or_else(|| {
        ApiError::new(
            ErrorKind::Unauthenticated,
            "this call needs a gateway token; request access first",
        )
        .with(how_to())
    })?;
    if crate::signin::looks_like_github_token(&presented) {
        return super::signin::authorize_signed_in(ctx, &presented, scope);
    }
    let (claims, grant) = gateway_token_holder(ctx, &presented)?;
    if grant.status != RequestStatus::Approved {
        return Err(ApiError::new(
            ErrorKind::GrantNotActive,
            format!("your grant is {}", status_name(grant.status)),
        )
        .with(how_to()));
    }
    groups_still_trusted(&grant)?;
    Ok(Authorized { claims, grant })
}

/// A gateway token checked (its signature or MAC, without storage), and
/// its grant as it is now, whatever its status.
fn gateway_token_holder(
    ctx: &mut Ctx,
    presented: &str,
) -> Result<(minter::TokenClaims, AccessRequest), ApiError> {
    // Envelope session tokens carry a MAC (cheap); gateway JWTs a signature.
    let checked = if copilot::is_session_token(presented) {
        minter::open_session(presented)
    } else {
        minter::verify(presented)
    };
    let claims = checked.map_err(|e| {
        let message = match e {
            minter::MinterError::Expired => {
                "the gateway token has expired; get a new one from your grant"
            }
            _ => "the gateway token was not accepted",
        };
        ApiError::new(ErrorKind::InvalidGatewayToken, message)
            .with(how_to())
            .detail(format!("{e:?}"))
    })?;
    ctx.trace.grant_id = Some(claims.grant_id.clone());
    ctx.trace.token_id = Some(claims.token_id.clone());
    let grant = grants::get(&claims.grant_id).map_err(store_error)?;
    ctx.trace.principal = Some(grant.requester.clone());
    Ok((claims, grant))
}

/// Who holds what a Copilot client presents (a sign-in credential or a
/// gateway token), active grant or not: for answers about the person, not
/// for access.
pub(super) fn copilot_caller(ctx: &mut Ctx) -> Result<Principal, ApiError> {
    let presented = ctx.bearer().ok_or_else(|| {
        ApiError::new(
            ErrorKind::Unauthenticated,
            "this call needs the credential your editor signed in with",
        )
    })?;
    if crate::signin::looks_like_github_token(&presented) {
        let (_, record) = super::signin::signed_in(ctx, &presented)?;
        return Ok(super::signin::principal_from_json(&record.principal));
    }
    Ok(gateway_token_holder(ctx, &presented)?.1.requester)
}
