//! The GitHub API shapes clients read once signed in with a device-flow
//! credential: the user (`/api/v3/user`, `/user`), the API root's
//! `X-OAuth-Scopes`, meta, Copilot's user entitlement, and GitHub's 404
//! for features the gateway does not offer. Gateway tokens keep their own
//! answers (`copilot_api`).

use serde_json::json;

use super::copilot_api;
use super::signin::signed_in;
use super::wasi_http::settings;
use super::{Ctx, Reply};
use crate::error::{ApiError, ErrorKind};
use crate::signin::{self, github_meta, github_user, not_offered};

/// The credential in `Authorization`, when it is a GitHub-shaped one.
fn github_credential(ctx: &Ctx) -> Option<String> {
    ctx.bearer().filter(|b| signin::looks_like_github_token(b))
}

fn needs_sign_in() -> ApiError {
    ApiError::new(
        ErrorKind::Unauthenticated,
        format!("sign in first: {}/login/device", settings().public_url()),
    )
}

/// GitHub lists scopes comma-separated; clients send them either way.
fn oauth_scopes(scope: &str) -> String {
    scope
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `GET /api/v3/user`, `GET /user`.
pub(super) fn user(ctx: &mut Ctx) -> Result<Reply, ApiError> {
    let Some(credential) = github_credential(ctx) else {
        return copilot_api::user(ctx, true);
    };
    let (_, record) = signed_in(ctx, &credential)?;
    Ok(Reply::JsonWithHeaders(
        200,
        github_user(&record.principal, &settings().public_url()),
        vec![("x-oauth-scopes".into(), oauth_scopes(&record.scope))],
    ))
}

/// `GET /api/v3`: the API root; clients read `X-OAuth-Scopes`.
pub(super) fn api_root(ctx: &mut Ctx) -> Result<Reply, ApiError> {
    let credential = github_credential(ctx).ok_or_else(needs_sign_in)?;
    let (_, record) = signed_in(ctx, &credential)?;
    let base = format!("{}/api/v3", settings().public_url());
    Ok(Reply::JsonWithHeaders(
        200,
        json!({"current_user_url": format!("{base}/user"), "meta_url": format!("{base}/meta")}),
        vec![("x-oauth-scopes".into(), oauth_scopes(&record.scope))],
    ))
}

/// `GET /api/v3/meta`.
pub(super) fn meta() -> Result<Reply, ApiError> {
    Ok(Reply::Json(200, github_meta()))
}

/// `GET /copilot_internal/user` for a signed-in person: chat is enabled
/// (the grant is checked on each call, and its absence explained there), and
/// every endpoint is the gateway.
pub(super) fn copilot_user(ctx: &mut Ctx) -> Result<Reply, ApiError> {
    let Some(credential) = github_credential(ctx) else {
        return copilot_api::user(ctx, false);
    };
    let (hash, record) = signed_in(ctx, &credential)?;
    let public_url = settings().public_url();
    let user = github_user(&record.principal, &public_url);
    let unlimited = json!({"unlimited": true, "overage_permitted": false, "overage_count": 0,
                           "percent_remaining": 100.0, "entitlement": 0, "remaining": 0});
    Ok(Reply::Json(
        200,
        json!({
            "login": user["login"],
            "access_type_sku": "copilot_jit",
            "copilot_plan": "business",
            "chat_enabled": true,
            "can_signup_for_limited": false,
            "assigned_date": signin::rfc3339(record.created_at),
            "quota_reset_date": signin::rfc3339(record.expires_at),
            "organization_login_list": [],
            "organization_list": [],
            "analytics_tracking_id": signin::short_id(&hash),
            "quota_snapshots": {"chat": unlimited, "completions": unlimited, "premium_interactions": unlimited},
            "endpoints": {"api": public_url, "proxy": public_url, "telemetry": public_url, "origin-tracker": public_url},
            "request_access_url": signin::access_page(&public_url),
        }),
    ))
}

/// GitHub's 404 for what is not offered through the gateway.
pub(super) fn not_offered_reply() -> Result<Reply, ApiError> {
    Ok(Reply::Json(404, not_offered()))
}
