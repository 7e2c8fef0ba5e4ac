//! Access requests and grants as the API and the webhooks show them.

use serde_json::{json, Value};

use super::copilot_jit::gateway::grants::{AccessRequest, DecisionKind, RequestStatus};
use super::copilot_jit::gateway::types::PrincipalKind;

pub(super) fn status_name(s: RequestStatus) -> &'static str {
    match s {
        RequestStatus::Pending => "pending",
        RequestStatus::Approved => "approved",
        RequestStatus::Denied => "denied",
        RequestStatus::Expired => "expired",
        RequestStatus::Revoked => "revoked",
    }
}

pub(super) fn kind_name(k: PrincipalKind) -> &'static str {
    match k {
        PrincipalKind::Human => "human",
        PrincipalKind::Workload => "workload",
        PrincipalKind::Agent => "agent",
    }
}

fn decision_name(k: DecisionKind) -> &'static str {
    match k {
        DecisionKind::Approve => "approve",
        DecisionKind::Deny => "deny",
        DecisionKind::Revoke => "revoke",
    }
}

pub(super) fn request_json(r: &AccessRequest) -> Value {
    json!({
        "id": r.id,
        "status": status_name(r.status),
        "requester": {
            "kind": kind_name(r.requester.kind),
            "issuer": r.requester.issuer,
            "subject": r.requester.subject,
            "email": r.requester.email,
            "groups": r.requester.groups,
            "groups_confirmed_at": r.groups_confirmed_at,
        },
        "scopes": r.scopes,
        "models": r.models,
        "repository": r.repository,
        "reason": r.reason,
        "duration_secs": r.duration_secs,
        "created_at": r.created_at,
        "pending_expires_at": r.pending_expires_at,
        "required_approvals": r.required_approvals,
        "approver_groups": r.approver_groups,
        "decisions": r.decisions.iter().map(|d| json!({
            "kind": decision_name(d.kind),
            "by": d.by_subject,
            "comment": d.comment,
            "at": d.at,
        })).collect::<Vec<_>>(),
        "granted_at": r.granted_at,
        "expires_at": r.expires_at,
        "renewable": r.renewable,
        "policy_ids": r.policy_ids,
        "renew_of": r.renew_of,
    })
}

pub(super) fn requirements_json(r: &copilot_jit_access_policy::Requirements) -> Value {
    json!({
        "auto_approve": r.auto_approve,
        "approver_groups": r.approver_groups,
        "min_approvals": r.min_approvals,
        "max_duration_secs": r.max_duration_secs,
        "pending_ttl_secs": r.pending_ttl_secs,
    })
}
