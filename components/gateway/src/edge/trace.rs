//! What one request did (`Trace`), filled in by its handler, and the audit
//! record written from it once the answer is out: the last phase of every
//! request, the Copilot call's `record` among them.

use std::time::Instant;

use copilot_jit_common::action::{Action, NotifyEvent};
use serde_json::Value;

use super::copilot_jit::gateway::types::{Finding as WitFinding, Principal};
use super::copilot_jit::gateway::{audit, grants};
use super::Ctx;
use crate::findings::Finding;
use crate::outcome::Outcome;

#[derive(Default)]
pub(super) struct Trace {
    pub action: Action,
    pub principal: Option<Principal>,
    pub grant_id: Option<String>,
    pub token_id: Option<String>,
    pub model: Option<String>,
    /// Set where the status alone does not say (blocked, cancelled, a
    /// stream that failed after its 200).
    pub outcome: Option<Outcome>,
    pub reason: Option<String>,
    pub findings: Vec<Finding>,
    pub prompt: Option<String>,
    pub response: Option<String>,
    pub upstream_status: Option<u16>,
    /// When the upstream call began, to time it to its end.
    pub upstream_started: Option<Instant>,
    pub ttfb_ms: Option<u64>,
    /// Whose seat the upstream call used, and its GitHub login.
    pub upstream_mode: Option<copilot_jit_access_policy::SeatMode>,
    pub upstream_login: Option<String>,
    pub policy_ids: Vec<String>,
    /// Webhook messages to send once the response is out.
    pub notifications: Vec<Notification>,
    /// The audit sink refused to take another record (storage down, spool
    /// full): the call is refused and leaves no record.
    pub unrecordable: bool,
    /// The authorized grant's "last record spooled" mark, as read: the
    /// record of this call updates it when that changes.
    pub grant_audit_spooled: Option<bool>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// A webhook message waiting to be sent.
pub(super) struct Notification {
    pub event: NotifyEvent,
    pub message: Value,
}

pub(super) fn from_wit(f: WitFinding) -> Finding {
    Finding {
        detector: f.detector,
        count: f.count,
        positions: f.positions,
        fingerprints: f.fingerprints,
    }
}

fn to_wit(f: &Finding) -> WitFinding {
    WitFinding {
        detector: f.detector.clone(),
        count: f.count,
        positions: f.positions.clone(),
        fingerprints: f.fingerprints.clone(),
    }
}

/// The client as its own headers name it.
fn client_info(ctx: &Ctx) -> audit::ClientInfo {
    audit::ClientInfo {
        editor_version: ctx.header("editor-version"),
        plugin_version: ctx.header("editor-plugin-version"),
        integration_id: ctx.header("copilot-integration-id"),
        user_agent: ctx.header("user-agent"),
    }
}

pub(super) fn record(ctx: &Ctx, status: u16, duration_ms: u64) {
    let t = &ctx.trace;
    let outcome = t.outcome.unwrap_or_else(|| Outcome::of_status(status));
    let event = audit::AuditEvent {
        request_id: ctx.request_id.clone(),
        client_request_id: ctx.client_request_id.clone(),
        principal: t.principal.clone(),
        grant_id: t.grant_id.clone(),
        token_id: t.token_id.clone(),
        method: ctx.method.clone(),
        path: ctx.endpoint().to_string(),
        action: t.action.name().to_string(),
        model: t.model.clone(),
        client: client_info(ctx),
        outcome: outcome.name().to_string(),
        status,
        reason: t.reason.clone(),
        policy_ids: t.policy_ids.clone(),
        findings: t.findings.iter().map(to_wit).collect(),
        prompt: t.prompt.clone(),
        response: t.response.clone(),
        upstream_status: t.upstream_status,
        bytes_in: t.bytes_in,
        bytes_out: t.bytes_out,
        duration_ms,
        upstream_ms: t.upstream_started.map(|at| at.elapsed().as_millis() as u64),
        ttfb_ms: t.ttfb_ms,
        upstream_mode: t.upstream_mode.map(|m| m.name().to_string()),
        upstream_login: t.upstream_login.clone(),
    };
    match audit::append(&event) {
        Ok(appended) => mark_grant(ctx, appended.spooled),
        Err(e) => eprintln!("audit record {} not stored: {e:?}", ctx.request_id),
    }
}

/// Tells the grant whether its calls must check the spool before they are
/// served: set when its record went to the spool, cleared when one is
/// stored again. One write when that changes, none on a healthy call.
fn mark_grant(ctx: &Ctx, spooled: bool) {
    let (Some(id), Some(marked)) = (&ctx.trace.grant_id, ctx.trace.grant_audit_spooled) else {
        return;
    };
    if marked != spooled {
        if let Err(e) = grants::keep_call_cache(id, None, Some(spooled)) {
            eprintln!("grant {id}: spool mark not updated: {e:?}");
        }
    }
}
