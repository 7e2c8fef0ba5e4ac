//! The gateway's questions to the Cedar policy (crate
//! `copilot-jit-access-policy`): who may request, decide, revoke, renew,
//! use, exchange and read the audit. The compiled policy set is decoded once
//! per instance, and only when a request needs a decision.

use std::sync::OnceLock;

use copilot_jit_access_policy::{
    Action, Decision, Engine, Kind, PolicyError, Principal as PolicyPrincipal, RequestFacts,
    Resource,
};
use serde_json::{json, Value};

use super::copilot_jit::gateway::grants::AccessRequest;
use super::copilot_jit::gateway::types::{Principal, PrincipalKind};
use super::grant_json::status_name;
use super::Ctx;
use crate::error::{ApiError, ErrorKind};

fn engine() -> Result<&'static Engine, ApiError> {
    static ENGINE: OnceLock<Result<Engine, PolicyError>> = OnceLock::new();
    ENGINE.get_or_init(Engine::load).as_ref().map_err(|e| {
        ApiError::new(
            ErrorKind::PolicyUnavailable,
            "the access policy could not be loaded",
        )
        .detail(e.to_string())
    })
}

/// Builds the policy engine and Cedar's tables ahead of any request (the
/// build's pre-initialisation; see `wizer-initialize` in the WIT world).
pub(super) fn warm_up() {
    if let Ok(engine) = engine() {
        engine.warm_up();
    }
}

pub(super) fn facts(r: &AccessRequest) -> RequestFacts<'_> {
    RequestFacts {
        id: &r.id,
        requester: &r.requester.subject,
        requester_issuer: &r.requester.issuer,
        scopes: &r.scopes,
        approver_groups: &r.approver_groups,
        duration_secs: r.duration_secs,
        status: status_name(r.status),
    }
}

/// UTC hour and weekday for contexts.
pub(super) fn clock() -> (i64, i64) {
    copilot_jit_access_policy::clock(copilot_jit_common::unix_now())
}

/// `extra` with the hour and weekday policies may test.
pub(super) fn clock_context(extra: Value) -> Value {
    let (hour, weekday) = clock();
    let mut c = json!({"hour": hour, "weekday": weekday});
    if let (Some(c), Value::Object(extra)) = (c.as_object_mut(), extra) {
        c.extend(extra);
    }
    c
}

/// Asks the policy. Evaluation errors inside a policy make it not apply
/// (Cedar's semantics); a question that cannot be asked fails closed.
pub(super) fn decide(
    principal: &Principal,
    action: Action,
    resource: &Resource<'_>,
    context: Value,
) -> Result<Decision, ApiError> {
    // Only workload policies read token claims; the hot path (`use` by a
    // person) does not pay for parsing them.
    let claims: Value = if principal.kind == PrincipalKind::Workload {
        serde_json::from_str(&principal.claims_json).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let who = PolicyPrincipal {
        kind: match principal.kind {
            PrincipalKind::Human => Kind::Human,
            PrincipalKind::Workload => Kind::Workload,
            PrincipalKind::Agent => Kind::Agent,
        },
        subject: &principal.subject,
        issuer: &principal.issuer,
        email: principal.email.as_deref().unwrap_or(""),
        groups: &principal.groups,
        claims: Some(&claims),
    };
    let decision = engine()?
        .decide(&who, action, resource, context)
        .map_err(|e| {
            ApiError::new(
                ErrorKind::PolicyUnavailable,
                "the access policy could not be asked",
            )
            .detail(e.to_string())
        })?;
    for e in &decision.errors {
        eprintln!("policy evaluation error ({}): {e}", action.name());
    }
    Ok(decision)
}

/// The policy's view of one access request for `action`, recorded in the
/// trace (the audit names the deciding policies).
pub(super) fn decide_on_request(
    ctx: &mut Ctx,
    principal: &Principal,
    action: Action,
    request: &AccessRequest,
    context: Value,
) -> Result<Decision, ApiError> {
    let d = decide(
        principal,
        action,
        &Resource::AccessRequest(facts(request)),
        context,
    )?;
    ctx.trace.policy_ids = d.policy_ids.clone();
    Ok(d)
}
