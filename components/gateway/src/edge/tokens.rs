//! Gateway tokens: a requester's token for their grant, and the RFC 8693
//! exchange in which a GitHub Actions run trades its OIDC token for one.

use copilot_jit_access_policy::{Action, Resource};
use copilot_jit_common::unix_now as now;
use copilot_jit_wasi::http::types::IncomingRequest;
use serde_json::{json, Value};

use super::access_api::{load_request, store_error};
use super::copilot_jit::gateway::grants::{self, AccessRequest, RequestStatus};
use super::copilot_jit::gateway::types::PrincipalKind;
use super::copilot_jit::gateway::{auth, minter};
use super::grant_json::status_name;
use super::identity::{authenticate, failure_detail, same_person};
use super::policy;
use super::wasi_http::{read_request_body, settings};
use super::{Ctx, Reply};
use crate::ask;
use crate::body::{parse_optional_json, MAX_API_BODY};
use crate::error::{ApiError, ErrorKind, OAuthError};
use crate::token_answers::{
    exchange_form, exchange_refusal, exchange_scopes, exchange_token_body, exchange_token_secs,
    grant_token_body, run_description, MintedToken, EXCHANGE_DEFAULT_SECS,
};

/// The lifetime a requester asks for: `{"ttl": 600}`, `{"ttl": "10m"}`, or
/// `{"ttl": "grant"}` for a token that lasts as long as the grant (what an
/// IDE that re-exchanges with its start-up token needs).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TokenAsk {
    #[serde(default)]
    ttl: Option<ask::Duration>,
}

/// What the minter is asked for a token on `grant`, never past `not_after`.
pub(super) fn mint_request(
    grant: &AccessRequest,
    subject: &str,
    issuer_of_subject: &str,
    ttl_secs: u64,
    not_after: u64,
) -> minter::MintRequest {
    minter::MintRequest {
        grant_id: grant.id.clone(),
        subject: subject.to_string(),
        issuer_of_subject: issuer_of_subject.to_string(),
        scopes: grant.scopes.clone(),
        models: grant.models.clone(),
        ttl_secs,
        not_after,
    }
}

/// Names the minted token in the trace and answers with `body`'s shape of it.
fn minted_reply(
    ctx: &mut Ctx,
    minted: &minter::Minted,
    grant: &AccessRequest,
    body: fn(&MintedToken, u64) -> Value,
) -> Reply {
    ctx.trace.token_id = Some(minted.claims.token_id.clone());
    let token = MintedToken {
        token: &minted.token,
        token_id: &minted.claims.token_id,
        expires_at: minted.claims.expires_at,
        grant_id: &grant.id,
        scopes: &grant.scopes,
    };
    Reply::Json(200, body(&token, now()))
}

/// `POST /v1/grants/{id}/token`: only the requester, only while approved.
pub(super) fn issue_token(
    ctx: &mut Ctx,
    request: &IncomingRequest,
    id: &str,
) -> Result<Reply, ApiError> {
    let principal = authenticate(ctx)?;
    let body = read_request_body(request, MAX_API_BODY)?;
    let asked: TokenAsk = parse_optional_json(&body)?;
    let grant = load_request(ctx, id)?;
    if !same_person(&principal, &grant) {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "only the requester receives tokens for a grant",
        ));
    }
    if !grant.renewable {
        return Err(ApiError::new(
            ErrorKind::ExchangedGrant,
            "tokens for this grant come from the token exchange only; exchange a new identity token",
        ));
    }
    let (RequestStatus::Approved, Some(expires_at)) = (grant.status, grant.expires_at) else {
        return Err(ApiError::new(
            ErrorKind::GrantNotActiveForTokens,
            format!("the request is {}", status_name(grant.status)),
        )
        .with(json!({"status": status_name(grant.status)})));
    };
    let ttl = match &asked.ttl {
        None => settings().token_ttl_secs(),
        Some(ask::Duration::Text(t)) if t == "grant" => expires_at.saturating_sub(now()),
        Some(d) => d.seconds().filter(|s| *s > 0).ok_or_else(|| {
            ApiError::new(
                ErrorKind::BadTtl,
                "ttl must be seconds, text like \"10m\", or \"grant\"",
            )
        })?,
    };
    let minted = minter::mint(&mint_request(
        &grant,
        &principal.subject,
        &principal.issuer,
        ttl,
        expires_at,
    ))
    .map_err(|e| {
        ApiError::new(ErrorKind::MinterUnavailable, "no token could be minted")
            .detail(format!("{e:?}"))
    })?;
    Ok(minted_reply(ctx, &minted, &grant, grant_token_body))
}

/// `POST /v1/token-exchange` (RFC 8693): a GitHub Actions run trades its
/// OIDC token for a minutes-long gateway token, under the Actions policy.
/// The grant behind it is recorded like any other and is not renewable.
pub(super) fn token_exchange(ctx: &mut Ctx, request: &IncomingRequest) -> Result<Reply, ApiError> {
    let body = read_request_body(request, MAX_API_BODY)?;
    ctx.trace.bytes_in = body.len() as u64;
    let form = exchange_form(ctx.header("content-type").as_deref(), &body)?;
    let principal = auth::authenticate(&form.subject_token).map_err(|e| {
        ApiError::oauth(
            OAuthError::InvalidGrant,
            "the subject token was not accepted",
        )
        .detail(failure_detail(&e))
    })?;
    ctx.trace.principal = Some(principal.clone());
    if principal.kind != PrincipalKind::Workload
        || principal.issuer != settings().github_actions_issuer()
    {
        return Err(ApiError::oauth(
            OAuthError::InvalidGrant,
            "only GitHub Actions tokens can be exchanged; people request access",
        ));
    }
    // Each scope is the policy's to allow (action `exchange`).
    let scopes = exchange_scopes(form.scope.as_deref())?;
    let mut permits = Vec::new();
    for scope in &scopes {
        let d = policy::decide(
            &principal,
            Action::Exchange,
            &Resource::Scope(scope),
            json!({"duration_secs": EXCHANGE_DEFAULT_SECS}),
        )?;
        ctx.trace.policy_ids = d.policy_ids.clone();
        if !d.allowed {
            return Err(ApiError::oauth(
                exchange_refusal(form.scope.is_some()),
                format!("this run may not use {scope}: {}", d.explain()),
            )
            .detail(format!("policy: {}", d.explain())));
        }
        permits.extend(d.policy_ids);
    }
    permits.sort();
    permits.dedup();
    let requirements = copilot_jit_access_policy::requirements(&permits);
    let token_secs = exchange_token_secs(requirements.max_duration_secs);
    ctx.trace.policy_ids = permits.clone();
    let claims: Value = serde_json::from_str(&principal.claims_json).unwrap_or_default();
    let (repository, reason) = run_description(&claims);
    let grant = grants::create(&grants::NewRequest {
        requester: principal.clone(),
        scopes,
        models: Vec::new(),
        repository: Some(repository),
        reason,
        duration_secs: token_secs,
        required_approvals: 1,
        approver_groups: Vec::new(),
        pending_ttl_secs: 1,
        auto_approve: true,
        renewable: false,
        policy_ids: permits,
        renew_of: None,
        groups_confirmed_at: ctx.groups_confirmed_at,
    })
    .map_err(store_error)?;
    ctx.trace.grant_id = Some(grant.id.clone());
    let minted = minter::mint(&mint_request(
        &grant,
        &principal.subject,
        &principal.issuer,
        token_secs,
        grant.expires_at.unwrap_or_else(now),
    ))
    .map_err(|e| {
        ApiError::oauth(
            OAuthError::TemporarilyUnavailable,
            "no token could be minted",
        )
        .detail(format!("{e:?}"))
    })?;
    Ok(minted_reply(ctx, &minted, &grant, exchange_token_body))
}
