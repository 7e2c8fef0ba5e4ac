//! Copilot's own endpoints the gateway answers itself: the token envelope,
//! the signed-in user, agents, and telemetry.

use copilot_jit_common::unix_now as now;
use copilot_jit_wasi::http::types::IncomingRequest;
use copilot_jit_wasi::http::{Method, Request};
use serde_json::json;

use super::copilot_jit::gateway::{masking, minter};
use super::identity::{authorize, copilot_caller};
use super::proxy::{masking_context, seat_mode};
use super::seat;
use super::tokens::mint_request;
use super::wasi_http::{read_request_body, settings};
use super::{Ctx, Reply};
use crate::body::{parse_json, MAX_API_BODY, MAX_PROMPT_BODY};
use crate::config::Upstream;
use crate::copilot::{self, how_to_request};
use crate::error::{ApiError, ErrorKind};
use copilot_jit_access_policy::SeatMode;

/// Forwarded telemetry that does not arrive in time is given up.
const TELEMETRY_TIMEOUT_MS: u64 = 2000;

/// `GET /copilot_internal/v2/token`: the exchange clients perform, answered
/// with a fresh short-lived gateway token in Copilot's envelope. The upstream
/// Copilot token never leaves the gateway.
pub(super) fn token_envelope(ctx: &mut Ctx) -> Result<Reply, ApiError> {
    let settings = settings();
    let auth = authorize(ctx).map_err(|e| {
        // Clients show `error_details.message` on 403 and sign out on 401.
        let how_to = how_to_request(&settings.public_url());
        let body = copilot::error_envelope(&e.message, &how_to);
        e.or_copilot_shape(body)
    })?;
    let grant = &auth.grant;
    // With their own seat, a person who must link (again) is told here:
    // editors show the envelope's `error_details` and its link.
    let scope = if grant.scopes.iter().any(|s| s == "chat") {
        "chat"
    } else {
        grant.scopes.first().map(String::as_str).unwrap_or("chat")
    };
    if seat_mode(ctx, &grant.requester, scope)? == SeatMode::OwnSeat {
        ctx.trace.upstream_mode = Some(SeatMode::OwnSeat);
        if let Some(problem) = seat::seat_problem(&grant.requester)? {
            return Err(problem.error(&settings.public_url()));
        }
    }
    let minted = minter::seal_session(&mint_request(
        grant,
        &auth.claims.subject,
        &auth.claims.issuer_of_subject,
        settings.copilot_token_ttl_secs(),
        grant.expires_at.unwrap_or_else(now),
    ))
    .map_err(|e| {
        ApiError::new(ErrorKind::MinterUnavailable, "no token could be minted")
            .detail(format!("{e:?}"))
    })?;
    ctx.trace.token_id = Some(minted.claims.token_id.clone());
    let chat = grant.scopes.iter().any(|s| s == "chat");
    let expires_at = minted.claims.expires_at;
    Ok(Reply::Json(
        200,
        copilot::envelope(
            &settings.public_url(),
            &minted.token,
            expires_at,
            copilot::refresh_in(now(), expires_at),
            chat,
        ),
    ))
}

/// `GET /copilot_internal/user` and `GET /user` (`github_shape`), answered
/// from the grant.
pub(super) fn user(ctx: &mut Ctx, github_shape: bool) -> Result<Reply, ApiError> {
    let auth = authorize(ctx)?;
    let grant = &auth.grant;
    let login = grant
        .requester
        .email
        .clone()
        .unwrap_or_else(|| grant.requester.subject.clone());
    if github_shape {
        return Ok(Reply::Json(
            200,
            json!({"login": login, "name": grant.requester.name, "email": grant.requester.email, "type": "User"}),
        ));
    }
    let public_url = settings().public_url();
    let unlimited = json!({"unlimited": true, "overage_permitted": false, "overage_count": 0,
                           "percent_remaining": 100.0, "entitlement": 0, "remaining": 0});
    Ok(Reply::Json(
        200,
        json!({
            "login": login,
            "access_type_sku": "copilot_jit",
            "copilot_plan": "business",
            "chat_enabled": grant.scopes.iter().any(|s| s == "chat"),
            "can_signup_for_limited": false,
            "assigned_date": grant.granted_at,
            "quota_reset_date": grant.expires_at,
            "organization_login_list": [],
            "organization_list": [],
            "analytics_tracking_id": auth.claims.token_id,
            "quota_snapshots": {"chat": unlimited, "completions": unlimited, "premium_interactions": unlimited},
            "endpoints": {"api": public_url, "proxy": public_url, "telemetry": public_url, "origin-tracker": public_url},
            "grant": {"id": grant.id, "scopes": grant.scopes, "models": grant.models, "expires_at": grant.expires_at},
        }),
    ))
}

/// `POST /copilot_internal/notification`: the person answered the message
/// the gateway's refusal carried (its button or "Dismiss"). Nothing is kept,
/// so the message comes back while access is missing; the answer is
/// recorded under the person.
pub(super) fn notification_answered(
    ctx: &mut Ctx,
    request: &IncomingRequest,
) -> Result<Reply, ApiError> {
    let body = read_request_body(request, MAX_API_BODY)?;
    copilot_caller(ctx)?;
    let answer: serde_json::Value = parse_json(&body)?;
    if !copilot::answers_access_notification(&answer) {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            "the gateway sent no such notification",
        ));
    }
    Ok(Reply::Json(200, json!({})))
}

/// `GET /agents`: Copilot extensions, none through the gateway.
pub(super) fn agents(ctx: &mut Ctx) -> Result<Reply, ApiError> {
    authorize(ctx)?;
    Ok(Reply::Json(200, json!({"agents": []})))
}

/// Telemetry is accepted and dropped: it never reaches upstream and carries
/// no credential of the gateway.
pub(super) fn telemetry(ctx: &mut Ctx, request: &IncomingRequest) -> Result<Reply, ApiError> {
    if ctx.method == "POST" {
        let body = read_request_body(request, MAX_PROMPT_BODY)?;
        if settings().telemetry_forward() {
            forward_telemetry(ctx, &body);
        }
        return Ok(Reply::Json(200, json!({})));
    }
    // `GET` is the experiment-assignment lookup: no experiments, in the shape
    // the language server reads (it fails completions on anything else).
    Ok(Reply::Json(
        200,
        json!({"Features": [], "Flights": {}, "Configs": [], "ParameterGroups": [],
               "FlightingVersion": 0, "ImpressionId": "", "AssignmentContext": ""}),
    ))
}

/// Sends a client's telemetry on to Copilot's telemetry service, masked
/// like a response (telemetry can carry code) and with no credential: the
/// client's gateway token is not forwarded and the gateway's own is never
/// attached. Best effort: the client's answer does not depend on it.
fn forward_telemetry(ctx: &Ctx, body: &[u8]) {
    let Ok(text) = std::str::from_utf8(body) else {
        eprintln!("telemetry {} not forwarded: not UTF-8", ctx.request_id);
        return;
    };
    let Ok(masking_ctx) = masking_context(&[]) else {
        eprintln!(
            "telemetry {} not forwarded: masking unavailable",
            ctx.request_id
        );
        return;
    };
    let masked = masking::mask_response(text, &masking_ctx);
    let url = format!(
        "{}/telemetry",
        settings().upstream(Upstream::CopilotTelemetry)
    );
    let content_type = ctx
        .header("content-type")
        .unwrap_or_else(|| "application/json".into());
    let sent = Request::new(Method::Post, &url)
        .map(|r| {
            r.header("content-type", content_type)
                .timeout_ms(TELEMETRY_TIMEOUT_MS)
        })
        .and_then(|r| r.send(Some(masked.text.as_bytes())));
    match sent {
        Ok(r) if (200..300).contains(&r.status()) => {}
        Ok(r) => eprintln!(
            "telemetry {} forwarded, answered {}",
            ctx.request_id,
            r.status()
        ),
        Err(e) => eprintln!("telemetry {} not forwarded: {e}", ctx.request_id),
    }
}
