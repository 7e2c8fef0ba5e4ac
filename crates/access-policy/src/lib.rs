//! The access policy: Cedar policies from `policies/`, validated against the
//! schema and compiled in by `build.rs`. At run time the policy set is
//! decoded from Cedar's binary (protobuf) form — no policy text is parsed —
//! and each decision says which policies decided and, for permits, the
//! approval requirements their annotations state.

use std::collections::BTreeSet;

use cedar_policy::proto::traits::Protobuf;
use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request,
};
use serde_json::{json, Value};

/// Approval annotations of one policy, as written.
#[derive(Debug, Clone, Copy)]
pub struct Annotated {
    pub auto_approve: Option<bool>,
    pub approver_groups: &'static [&'static str],
    pub min_approvals: Option<u32>,
    pub max_duration_secs: Option<u64>,
    pub pending_ttl_secs: Option<u64>,
}

include!(concat!(env!("OUT_DIR"), "/requirements.rs"));

/// The compiled policy set (Cedar protobuf).
static COMPILED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/policies.pb"));

/// What the permitting policies require, merged strictest-first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Requirements {
    pub auto_approve: bool,
    pub approver_groups: Vec<String>,
    pub min_approvals: u32,
    pub max_duration_secs: Option<u64>,
    pub pending_ttl_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The policies that decided: the permits for an allow, the forbids for
    /// an explicit deny, none for "nothing permits".
    pub policy_ids: Vec<String>,
    /// Policies that could not be evaluated (they count as not applying).
    pub errors: Vec<String>,
    pub requirements: Requirements,
}

impl Decision {
    /// Human words for a denial.
    pub fn explain(&self) -> String {
        if self.allowed {
            format!("permitted by {}", self.policy_ids.join(", "))
        } else if self.policy_ids.is_empty() {
            "no policy permits this".to_string()
        } else {
            format!("forbidden by {}", self.policy_ids.join(", "))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Request,
    Approve,
    Deny,
    Revoke,
    Renew,
    Use,
    Exchange,
    ReadAudit,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Request => "request",
            Action::Approve => "approve",
            Action::Deny => "deny",
            Action::Revoke => "revoke",
            Action::Renew => "renew",
            Action::Use => "use",
            Action::Exchange => "exchange",
            Action::ReadAudit => "read_audit",
        }
    }

    pub fn parse(name: &str) -> Option<Action> {
        [
            Action::Request,
            Action::Approve,
            Action::Deny,
            Action::Revoke,
            Action::Renew,
            Action::Use,
            Action::Exchange,
            Action::ReadAudit,
        ]
        .into_iter()
        .find(|a| a.name() == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Human,
    Workload,
    Agent,
}

/// Who asks.
#[derive(Debug, Clone)]
pub struct Principal<'a> {
    pub kind: Kind,
    pub subject: &'a str,
    pub issuer: &'a str,
    pub email: &'a str,
    pub groups: &'a [String],
    /// A workload's token claims (repository, ref, environment, …).
    pub claims: Option<&'a Value>,
}

/// An access request or grant, as policies see it.
#[derive(Debug, Clone)]
pub struct RequestFacts<'a> {
    pub id: &'a str,
    pub requester: &'a str,
    pub requester_issuer: &'a str,
    pub scopes: &'a [String],
    pub approver_groups: &'a [String],
    pub duration_secs: u64,
    pub status: &'a str,
}

#[derive(Debug, Clone)]
pub enum Resource<'a> {
    Scope(&'a str),
    AccessRequest(RequestFacts<'a>),
    AuditTrail,
}

#[derive(Debug)]
pub enum PolicyError {
    /// The compiled policy set could not be loaded (a broken build).
    Load(String),
    /// The question could not be put to Cedar (bad ids, context shape).
    Query(String),
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyError::Load(e) => write!(f, "policy set: {e}"),
            PolicyError::Query(e) => write!(f, "policy query: {e}"),
        }
    }
}

pub struct Engine {
    set: PolicySet,
}

fn uid(kind: &str, id: &str) -> Result<EntityUid, PolicyError> {
    let name: EntityTypeName = kind
        .parse()
        .map_err(|e| PolicyError::Query(format!("entity type {kind}: {e}")))?;
    Ok(EntityUid::from_type_name_and_id(name, EntityId::new(id)))
}

fn principal_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Human => "User",
        Kind::Workload => "Workload",
        Kind::Agent => "Agent",
    }
}

fn principal_entity(p: &Principal<'_>) -> Value {
    let mut attrs = json!({
        "subject": p.subject,
        "issuer": p.issuer,
        "groups": p.groups,
    });
    match p.kind {
        Kind::Human => attrs["email"] = json!(p.email),
        Kind::Agent => {}
        Kind::Workload => {
            let claim = |k: &str| {
                p.claims
                    .and_then(|c| c.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            attrs["repository"] = json!(claim("repository"));
            attrs["repository_owner"] = json!(claim("repository_owner"));
            attrs["ref"] = json!(claim("ref"));
            attrs["environment"] = json!(claim("environment"));
            attrs["workflow"] = json!(claim("job_workflow_ref"));
            attrs["event"] = json!(claim("event_name"));
        }
    }
    json!({
        "uid": {"type": principal_type(p.kind), "id": p.subject},
        "attrs": attrs,
        "parents": p.groups.iter().map(|g| json!({"type": "Group", "id": g})).collect::<Vec<_>>(),
    })
}

/// Merges the annotations of the permitting policies, strictest first.
pub fn requirements(policy_ids: &[String]) -> Requirements {
    let annotated: Vec<&Annotated> = policy_ids
        .iter()
        .filter_map(|id| ANNOTATED.iter().find(|(k, _)| k == id).map(|(_, a)| a))
        .collect();
    let says_auto = |a: &&Annotated| a.auto_approve == Some(true);
    let auto_approve = !annotated.is_empty() && annotated.iter().all(says_auto);
    let min_approvals = annotated
        .iter()
        .filter(|a| !says_auto(a))
        .filter_map(|a| {
            a.min_approvals
                .or((!a.approver_groups.is_empty()).then_some(1))
        })
        .max()
        .unwrap_or(1);
    // Approvers: those of the policies that ask for the most approvals.
    let mut groups = BTreeSet::new();
    for a in annotated.iter().filter(|a| !says_auto(a)) {
        if a.min_approvals.unwrap_or(1) == min_approvals {
            groups.extend(a.approver_groups.iter().map(|g| g.to_string()));
        }
    }
    Requirements {
        auto_approve,
        approver_groups: groups.into_iter().collect(),
        min_approvals,
        max_duration_secs: annotated.iter().filter_map(|a| a.max_duration_secs).min(),
        pending_ttl_secs: annotated.iter().filter_map(|a| a.pending_ttl_secs).min(),
    }
}

impl Engine {
    /// Decodes the compiled policy set (once per instance; no text parsing).
    pub fn load() -> Result<Engine, PolicyError> {
        PolicySet::decode_unchecked(COMPILED)
            .map(|set| Engine { set })
            .map_err(|e| PolicyError::Load(e.to_string()))
    }

    /// How many policies were compiled in.
    pub fn len(&self) -> usize {
        self.set.policies().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn decide(
        &self,
        principal: &Principal<'_>,
        action: Action,
        resource: &Resource<'_>,
        context: Value,
    ) -> Result<Decision, PolicyError> {
        let mut entities = vec![principal_entity(principal)];
        for g in principal.groups {
            entities.push(json!({"uid": {"type": "Group", "id": g}, "attrs": {}, "parents": []}));
        }
        let resource_uid = match resource {
            Resource::Scope(name) => {
                entities.push(
                    json!({"uid": {"type": "Scope", "id": name}, "attrs": {}, "parents": []}),
                );
                uid("Scope", name)?
            }
            Resource::AccessRequest(r) => {
                entities.push(json!({
                    "uid": {"type": "AccessRequest", "id": r.id},
                    "attrs": {
                        "requester": r.requester,
                        "requester_issuer": r.requester_issuer,
                        "scopes": r.scopes,
                        "approver_groups": r.approver_groups,
                        "duration_secs": r.duration_secs,
                        "status": r.status,
                    },
                    "parents": [],
                }));
                uid("AccessRequest", r.id)?
            }
            Resource::AuditTrail => {
                entities.push(json!({"uid": {"type": "AuditTrail", "id": "main"}, "attrs": {}, "parents": []}));
                uid("AuditTrail", "main")?
            }
        };
        let entities = Entities::from_json_value(Value::Array(entities), None)
            .map_err(|e| PolicyError::Query(e.to_string()))?;
        let context = Context::from_json_value(context, None)
            .map_err(|e| PolicyError::Query(e.to_string()))?;
        let request = Request::new(
            uid(principal_type(principal.kind), principal.subject)?,
            uid("Action", action.name())?,
            resource_uid,
            context,
            None,
        )
        .map_err(|e| PolicyError::Query(e.to_string()))?;
        let response = Authorizer::new().is_authorized(&request, &self.set, &entities);
        let allowed = response.decision() == CedarDecision::Allow;
        let mut policy_ids: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        policy_ids.sort();
        let errors = response
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
            .collect();
        let requirements = if allowed {
            requirements(&policy_ids)
        } else {
            Requirements::default()
        };
        Ok(Decision {
            allowed,
            policy_ids,
            errors,
            requirements,
        })
    }
}

/// UTC hour (0–23) and weekday (0 = Monday) of a Unix time, for contexts.
pub fn clock(unix_secs: u64) -> (i64, i64) {
    let hour = (unix_secs % 86_400 / 3600) as i64;
    // 1970-01-01 was a Thursday (3 when Monday is 0).
    let weekday = ((unix_secs / 86_400 + 3) % 7) as i64;
    (hour, weekday)
}

#[cfg(test)]
mod policy_cases;
