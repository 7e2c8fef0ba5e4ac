//! The approvers' webhook: a Slack-compatible message for each new request
//! and each decision, sent after the answer. A failed delivery never undoes
//! the decision; each delivery, or its failure, has its own audit record.

use std::time::Instant;

use copilot_jit_common::action::{Action, NotifyEvent};
use copilot_jit_wasi::http::{HttpError, Method, Request};
use serde_json::json;

use super::copilot_jit::gateway::audit;
use super::copilot_jit::gateway::grants::{AccessRequest, RequestStatus};
use super::copilot_jit::gateway::types::Principal;
use super::grant_json::request_json;
use super::trace::Notification;
use super::wasi_http::settings;
use super::Ctx;
use crate::outcome::Outcome;
use crate::slack;

/// A webhook that does not answer in time counts as failed.
const WEBHOOK_TIMEOUT_MS: u64 = 3000;

fn who(p: &Principal) -> String {
    p.email.clone().unwrap_or_else(|| p.subject.clone())
}

/// A person as the message text names them, escaped like everything a
/// person or their IdP controls.
fn who_text(p: &Principal) -> String {
    slack::escape(&who(p))
}

/// Queues the message for a new request, approved at once or pending.
pub(super) fn created(ctx: &mut Ctx, r: &AccessRequest) {
    let settings = settings();
    if settings.webhook_url().is_none() {
        return;
    }
    let link = format!("{}/v1/access-requests/{}", settings.public_url(), r.id);
    let (event, text) = if r.status == RequestStatus::Approved {
        (
            NotifyEvent::AutoApproved,
            format!(
                "{} was granted {} for {}s at once (policy {}). {link}",
                who_text(&r.requester),
                r.scopes.join(", "),
                r.duration_secs,
                r.policy_ids.join(", ")
            ),
        )
    } else {
        (
            NotifyEvent::Requested,
            format!(
                "{} asks for {} for {}s: \"{}\". Needs {} approval(s) from {}. {link}",
                who_text(&r.requester),
                r.scopes.join(", "),
                r.duration_secs,
                slack::escape(&r.reason),
                r.required_approvals,
                r.approver_groups.join(", ")
            ),
        )
    };
    ctx.trace.notifications.push(Notification {
        event,
        message: json!({
            "text": text,
            "copilot_jit": {"event": event.name(), "request": request_json(r)},
        }),
    });
}

/// Queues the message for a decision that settled the request.
pub(super) fn decided(ctx: &mut Ctx, r: &AccessRequest, by: &Principal, comment: &str) {
    if settings().webhook_url().is_none() {
        return;
    }
    let (event, verb) = match r.status {
        RequestStatus::Approved => (NotifyEvent::Approved, "approved"),
        RequestStatus::Denied => (NotifyEvent::Denied, "denied"),
        RequestStatus::Revoked => (NotifyEvent::Revoked, "revoked"),
        _ => return,
    };
    let comment = if comment.is_empty() {
        String::new()
    } else {
        format!(": \"{}\"", slack::escape(comment))
    };
    ctx.trace.notifications.push(Notification {
        event,
        message: json!({
            "text": format!(
                "{}: your request {} for {} was {verb} by {}{comment}",
                who_text(&r.requester),
                r.id,
                r.scopes.join(", "),
                who_text(by)
            ),
            "copilot_jit": {
                "event": event.name(),
                "request": request_json(r),
                "by": who(by),
                "requester": who(&r.requester),
            },
        }),
    });
}

/// Why a message was not delivered.
enum DeliveryError {
    Unreachable(HttpError),
    Refused(u16),
}

/// What is recorded and logged: the kind of failure, never the host's
/// message, which can spell the webhook's secret URL.
impl std::fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeliveryError::Unreachable(e) => f.write_str(match e {
                HttpError::Url(_) => "the webhook URL is not a valid URL",
                HttpError::Headers(_) => "the request headers were refused",
                HttpError::NotSent(_) => "not sent (host not allowed, unreachable or timed out)",
                HttpError::BodyNotWritten(_) => "the message could not be written",
                HttpError::NoResponse(_) => "no response",
            }),
            DeliveryError::Refused(status) => write!(f, "webhook answered {status}"),
        }
    }
}

fn post(url: &str, body: &[u8]) -> Result<u16, DeliveryError> {
    let response = Request::new(Method::Post, url)
        .map(|r| {
            r.header("content-type", "application/json")
                .timeout_ms(WEBHOOK_TIMEOUT_MS)
        })
        .and_then(|r| r.send(Some(body)))
        .map_err(DeliveryError::Unreachable)?;
    match response.status() {
        s @ 200..=299 => Ok(s),
        s => Err(DeliveryError::Refused(s)),
    }
}

/// Sends the queued messages, each with its own audit record.
pub(super) fn deliver(ctx: &Ctx) {
    if ctx.trace.notifications.is_empty() {
        return;
    }
    let Some(url) = settings().webhook_url() else {
        return;
    };
    for Notification { event, message } in &ctx.trace.notifications {
        let started = Instant::now();
        let body = message.to_string().into_bytes();
        let result = post(&url, &body);
        let (outcome, reason, status) = match &result {
            Ok(s) => (Outcome::Allowed, None, *s),
            Err(e) => (
                Outcome::Failed,
                Some(format!("webhook not delivered: {e}")),
                502,
            ),
        };
        if let Err(e) = &result {
            eprintln!("notification for {} not delivered: {e}", ctx.request_id);
        }
        let record = audit::AuditEvent {
            request_id: ctx.request_id.clone(),
            client_request_id: None,
            principal: ctx.trace.principal.clone(),
            grant_id: ctx.trace.grant_id.clone(),
            token_id: None,
            method: "POST".into(),
            // The webhook path is a secret: never recorded.
            path: "/notify/webhook".into(),
            action: Action::Notify(*event).name().to_string(),
            model: None,
            client: audit::ClientInfo {
                editor_version: None,
                plugin_version: None,
                integration_id: None,
                user_agent: None,
            },
            outcome: outcome.name().into(),
            status,
            reason,
            policy_ids: Vec::new(),
            findings: Vec::new(),
            prompt: None,
            response: None,
            upstream_status: result.as_ref().ok().copied(),
            bytes_in: 0,
            bytes_out: body.len() as u64,
            duration_ms: started.elapsed().as_millis() as u64,
            upstream_ms: None,
            ttfb_ms: None,
            upstream_mode: None,
            upstream_login: None,
        };
        if let Err(e) = audit::append(&record) {
            eprintln!("audit record for a notification not stored: {e:?}");
        }
    }
}
